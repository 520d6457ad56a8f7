"""What a job search asks and how every store answers it: one index per criterion.

A :class:`JobQuery` names up to one value per criterion: the job id (exact,
or a prefix), the task, and index keys: a searchable payload field
(``f:customer_id=42``, extracted at enqueue, see ``jobs/search.py``), the
error type (``e:ValueError``) and a word of the error message
(``w:bounced``) of a failed job. A store keeps one index per criterion and
drives a search by one of them, chosen here (:meth:`JobQuery.driver`, the
most selective first); every other criterion is checked on each entry the
driving index yields, and at most :data:`SEARCH_CANDIDATES` entries are
examined per call, so a search never scans the store however rare its
matches. A page may therefore come back short with a cursor to go on from.

The error keys of a failed job are derived from its error JSON by
:func:`error_keys`, the one tokenizer: stores index them when a job fails
and drop them when it leaves the failed state (a retry, a delete).

Cursors are opaque strings: the last ``(created_at, id)`` a page reached (the
id alone for an id-prefix search, whose index is ordered by id).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypeVar

import msgspec

from conveyor.errors import BadInputError
from conveyor.stores.base import JobState

SEARCH_CANDIDATES = 1_000
"""Entries of the driving index a search examines per call (per queue on Redis)."""
MAX_PAGE = 200
"""The largest page a listing or search returns."""

FIELD = "f:"
"""Index keys of searchable payload fields: ``f:<name>=<value>``."""
ERROR_TYPE = "e:"
"""Index keys of a failed job's error type: ``e:<type>``."""
ERROR_WORD = "w:"
"""Index keys of the words of a failed job's error message: ``w:<word>``."""
ERROR_PREFIXES = (ERROR_TYPE, ERROR_WORD)

MAX_KEY_CHARS = 256
"""Longest index key; a longer value is refused when searched for (and never indexed)."""
MAX_ERROR_WORDS = 16
"""Words of one error message that are indexed (the first distinct ones)."""
MESSAGE_CHARS = 2_000
"""How much of an error message is read for words."""
_WORD = re.compile(r"[^\W\d]\w{2,39}")
"""A word: a letter (or _) then 2..39 letters, digits or _; shorter ones are not indexed."""

Driver = Literal["id", "prefix", "key", "task"]


class JobQuery(msgspec.Struct, frozen=True, gc=False):
    """A search: every criterion given must hold (at least one besides queue and state)."""

    queue: str | None = None
    state: JobState | None = None
    job_id: str | None = None
    """Exactly this id."""
    job_id_prefix: str | None = None
    task: str | None = None
    keys: tuple[str, ...] = ()
    """Index keys the job must have: :func:`field_key`, :func:`error_type_key`,
    :func:`error_word_key`."""

    def driver(self) -> tuple[Driver, str]:
        """The criterion whose index drives the search, and its value.

        An exact id first (one lookup), then an id prefix, then an index key
        (a payload field before an error word before an error type: the most
        selective first), then the task.
        """
        if self.job_id is not None:
            return "id", self.job_id
        if self.job_id_prefix is not None:
            return "prefix", self.job_id_prefix
        if self.keys:
            return "key", min(self.keys, key=_selectivity)
        if self.task is not None:
            return "task", self.task
        raise BadInputError("a search needs an id, a task, a field or an error criterion")

    def other_keys(self) -> list[str]:
        """The index keys the driving one does not already guarantee."""
        kind, value = self.driver()
        return [k for k in self.keys if not (kind == "key" and k == value)]


def _selectivity(key: str) -> int:
    return {FIELD: 0, ERROR_WORD: 1, ERROR_TYPE: 2}.get(key[:2], 3)


def job_field_keys(search_keys: Iterable[str]) -> list[str]:
    """The index keys of a new job's ``search_keys`` (``name=text`` each)."""
    return [FIELD + key for key in search_keys]


def joined_keys(keys: Iterable[str]) -> str:
    """Index keys one a line, as the Redis store keeps them (a key holds no newline)."""
    return "\n".join(keys)


def field_key(name: str, value: str) -> str:
    """The index key of a searchable field's value (``value`` as ``jobs/search.py`` writes it)."""
    return _checked(f"{FIELD}{name}={value}")


def error_type_key(error_type: str) -> str:
    return _checked(f"{ERROR_TYPE}{error_type}")


def error_word_key(word: str) -> str:
    """The index key of one word of an error message; ``BadInputError`` if it is not a word."""
    found = _WORD.fullmatch(word.strip().lower())
    if found is None:
        raise BadInputError(
            f"{word!r} is not a searchable word: 3..40 letters, digits or _, starting with a letter"
        )
    return f"{ERROR_WORD}{found.group()}"


def _checked(key: str) -> str:
    if len(key) > MAX_KEY_CHARS:
        raise BadInputError(f"search values are at most {MAX_KEY_CHARS - 8} characters")
    if "\n" in key:
        raise BadInputError("a search value holds no line break")
    return key


class _ErrorHead(msgspec.Struct):
    """The part of a stored error the index reads (the traceback is skipped unparsed)."""

    type: str | None = None
    message: str | None = None


_ERROR_HEAD = msgspec.json.Decoder(_ErrorHead)


def error_keys(error: bytes | None) -> list[str]:
    """The index keys of a failed job's error JSON: its type and the first distinct words
    of its message (lowercase). An error that is not such JSON has none."""
    if not error:
        return []
    try:
        head = _ERROR_HEAD.decode(error)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []
    keys: list[str] = []
    if head.type and len(head.type) + len(ERROR_TYPE) <= MAX_KEY_CHARS and "\n" not in head.type:
        keys.append(ERROR_TYPE + head.type)
    if head.message:
        words = dict.fromkeys(_WORD.findall(head.message[:MESSAGE_CHARS].lower()))
        keys += [ERROR_WORD + w for w in list(words)[:MAX_ERROR_WORDS]]
    return keys


# -- cursors -------------------------------------------------------------------------


class Position(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Where a page stopped: the last ``(created_at, id)`` it reached (``created_at`` 0
    for an id-prefix search)."""

    created_at: int
    id: str

    def key(self) -> tuple[int, str]:
        return (self.created_at, self.id)


_POSITION = msgspec.json.Decoder(Position)


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor names; ``BadInputError`` for a string no page gave."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return _POSITION.decode(raw)
    except (ValueError, binascii.Error, msgspec.DecodeError, msgspec.ValidationError):
        raise BadInputError(f"not a page cursor: {cursor[:80]!r}") from None


def prefix_end(prefix: str) -> str:
    """The least string above every string that starts with ``prefix`` (code point order)."""
    return prefix + "\U0010ffff"


# -- walking an ordered index (memory, and Redis merging its queues) ----------------------

T = TypeVar("T")


def walk(
    ordered: Iterable[T],
    position: Callable[[T], Position],
    matches: Callable[[T], bool],
    limit: int,
    budget: int = SEARCH_CANDIDATES,
) -> tuple[list[T], Position | None]:
    """Take the matches among the first ``budget`` entries of ``ordered`` (already after
    the cursor), up to ``limit``; and where the next page starts (None: the end)."""
    found: list[T] = []
    last: T | None = None
    for examined, entry in enumerate(ordered):
        if len(found) >= limit or examined >= budget:
            return found, position(last) if last is not None else None
        last = entry
        if matches(entry):
            found.append(entry)
    return found, None


def merge_pages(
    pages: Sequence[tuple[list[T], Position | None]],
    position: Callable[[T], Position],
    limit: int,
) -> tuple[list[T], Position | None]:
    """Merge per-queue pages (each newest first, each stopped at its own position) into
    one: entries past the newest stop of an unfinished queue wait for the next call,
    since that queue has not been read down to them yet."""
    stops = [stop.key() for _, stop in pages if stop is not None]
    boundary = max(stops, default=None)
    merged: list[T] = []
    ordered = heapq.merge(
        *(entries for entries, _ in pages), key=lambda e: position(e).key(), reverse=True
    )
    for entry in ordered:
        if boundary is not None and position(entry).key() <= boundary:
            break
        if len(merged) == limit:
            return merged, position(merged[-1])
        merged.append(entry)
    return merged, None if boundary is None else Position(*boundary)
