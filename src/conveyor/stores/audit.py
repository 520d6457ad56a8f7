"""The audit store protocol: who did what destructive thing, newest first, bounded.

An entry is written by the management layer for each destructive action
(a clean, a remove, a bulk retry, a purge...) with what it touched. The
store keeps the newest ``keep`` entries younger than ``keep_ms`` (both decided
above, ``observability/audit.py``), trimming in the step that appends.
"""

from __future__ import annotations

from typing import Protocol

import msgspec


class AuditEntry(msgspec.Struct, frozen=True, gc=False):
    """One destructive action. ``counts`` is JSON (what it touched, e.g. ``{"removed": 3}``);
    ``id`` is given by the store when it appends the entry (its place in the log)."""

    at: int
    actor: str
    action: str
    target: str
    counts: bytes = b"{}"
    request_id: str | None = None
    id: str = ""


class AuditPage(msgspec.Struct, gc=False):
    entries: list[AuditEntry]
    next: str | None = None


class AuditStore(Protocol):
    """What the audit log needs of a store. Every method is one atomic step."""

    async def append(self, entry: AuditEntry, keep: int, keep_ms: int) -> str:
        """Append ``entry``; drop entries beyond the newest ``keep`` and those older than
        ``keep_ms`` (by the store's clock). Returns the new entry's id."""
        ...

    async def page(self, cursor: str | None, limit: int) -> AuditPage:
        """Up to ``limit`` entries, newest first, older than ``cursor`` (an entry id)."""
        ...
