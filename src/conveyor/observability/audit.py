"""``app.audit``: the log of destructive actions (who, what, when, how many), kept bounded.

The management layer records each destructive action it performs (a clean,
a remove, a bulk retry, a purge, a reset...) with the actor, the target and
what the action touched; operators page through it newest first. The store
keeps the newest ``audit_keep`` entries younger than ``audit_days``.
(The event bus's ``AuditLog`` is another thing: a handler that records
chosen event types in the application's own SQL table.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from conveyor.clock import Clock
from conveyor.config import Settings
from conveyor.errors import BadInputError
from conveyor.stores.audit import AuditEntry, AuditStore

MAX_PAGE = 200
MAX_TEXT = 500


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recorded action: ``counts`` says what it touched (``{"removed": 3}``)."""

    id: str
    at: datetime
    actor: str
    action: str
    target: str
    counts: dict[str, int]
    request_id: str | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Entries newest first; ``next`` is the cursor of the older ones (None: no more)."""

    entries: list[AuditRecord]
    next: str | None


_COUNTS = msgspec.json.Decoder(dict[str, int])


class AuditClient:
    """``app.audit``: record destructive actions and read them back."""

    def __init__(
        self,
        store: AuditStore,
        clock: Clock,
        settings: Settings,
        opener: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.clock = clock
        self.keep = settings.audit_keep
        self.keep_ms = int(settings.audit_days * 86_400_000)
        self._open = opener

    async def record(
        self,
        actor: str,
        action: str,
        target: str,
        counts: Mapping[str, int] | None = None,
        *,
        request_id: str | None = None,
    ) -> AuditRecord:
        """Append one entry: ``actor`` (who: a key's name, ``loopback``...), ``action``
        (``jobs.clean``), ``target`` (``queue:emails``), ``counts`` (``{"removed": 3}``).

        >>> await app.audit.record("ops-key", "jobs.clean", "queue:emails", {"removed": 120})
        """
        for name, text in (("actor", actor), ("action", action), ("target", target)):
            if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
                raise BadInputError(f"{name} must be 1..{MAX_TEXT} characters, got {text!r}")
        counted = dict(counts or {})
        if not all(isinstance(k, str) and type(v) is int for k, v in counted.items()):
            raise BadInputError(f"counts maps names to integers, got {counts!r}")
        entry = AuditEntry(
            at=self.clock.now_ms(),
            actor=actor,
            action=action,
            target=target,
            counts=msgspec.json.encode(counted),
            request_id=request_id,
        )
        await self._open()
        entry_id = await self.store.append(entry, self.keep, self.keep_ms)
        return _record(msgspec.structs.replace(entry, id=entry_id))

    async def page(self, cursor: str | None = None, limit: int = 50) -> AuditPage:
        """Entries newest first, ``limit`` (<= 200) at a time, older than ``cursor``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_PAGE:
            raise BadInputError(f"limit must be 1..{MAX_PAGE}, got {limit!r}")
        if cursor is not None and not (
            isinstance(cursor, str) and cursor.isascii() and cursor.isdigit()
        ):
            raise BadInputError(f"not an audit cursor: {cursor!r}")
        await self._open()
        page = await self.store.page(cursor, limit)
        return AuditPage([_record(e) for e in page.entries], page.next)


def _record(entry: AuditEntry) -> AuditRecord:
    return AuditRecord(
        id=entry.id,
        at=datetime.fromtimestamp(entry.at / 1000, UTC),
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        counts=_COUNTS.decode(entry.counts),
        request_id=entry.request_id,
    )
