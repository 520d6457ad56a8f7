"""Searchable payload fields: which values of a call a task indexes, and how they are written.

A task declares ``@app.task(search=["customer_id", "order.id"])``: a path is
a parameter of the function, then attribute or key names into its value.
At enqueue each path's value is written as text (:func:`field_text`) and the
job carries ``name=text`` in ``NewJob.search_keys``; the store indexes it.
A search for ``("customer_id", 42)`` writes its value the same way, so it
finds exactly the jobs enqueued with that value (``42`` and ``"42"`` are the
same text). A value that is missing, None, a list or an object, or longer
than the key limit, is not indexed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from conveyor.errors import BadInputError, ProgrammingError
from conveyor.stores.search import FIELD, MAX_KEY_CHARS

_MISSING = object()


def check_paths(signature: inspect.Signature, paths: Iterable[str], task: str) -> tuple[str, ...]:
    """The declared search paths, each starting with a parameter of the function."""
    if isinstance(paths, str):
        raise ProgrammingError(f"task {task}: search is a list of paths, got {paths!r}")
    checked: list[str] = []
    for path in paths:
        parts = path.split(".") if isinstance(path, str) else []
        if not parts or not all(part.isidentifier() for part in parts):
            raise ProgrammingError(f"task {task}: search path {path!r} is not a dotted name")
        if parts[0] not in signature.parameters:
            raise ProgrammingError(
                f"task {task}: search path {path!r} names no parameter of the function"
            )
        checked.append(path)
    return tuple(dict.fromkeys(checked))


def field_text(value: Any) -> str | None:
    """A field value as the index writes it (None: such a value is not indexed)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        encoded = msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError):
        return None
    if encoded[:1] == b'"':
        text: str = msgspec.json.decode(encoded)
        return text
    if encoded[:1] in (b"[", b"{") or encoded == b"null":
        return None
    return encoded.decode()


def search_value(value: Any) -> str:
    """:func:`field_text` for a value searched for; ``BadInputError`` if none could match."""
    text = field_text(value)
    if text is None:
        raise BadInputError(f"a field is searched by a text, number or boolean, got {value!r}")
    return text


def search_keys(
    signature: inspect.Signature,
    paths: Sequence[str],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> list[str]:
    """``name=text`` for each declared path that has an indexable value in this call."""
    if not paths:
        return []
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:  # checked before; a JSON payload read back may not bind
        return []
    bound.apply_defaults()
    keys: list[str] = []
    for path in paths:
        head, *rest = path.split(".")
        value = _follow(bound.arguments.get(head, _MISSING), rest)
        text = None if value is _MISSING else field_text(value)
        if text is not None and len(FIELD) + len(path) + 1 + len(text) <= MAX_KEY_CHARS:
            keys.append(f"{path}={text}")
    return keys


def _follow(value: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if value is _MISSING or value is None:
            return _MISSING
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        else:
            value = getattr(value, part, _MISSING)
    return value
