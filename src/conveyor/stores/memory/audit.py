"""The audit log in this process's memory, under the state's lock."""

from __future__ import annotations

import msgspec

from conveyor.stores.audit import AuditEntry, AuditPage
from conveyor.stores.memory.state import MemoryState


class MemoryAuditStore:
    """An :class:`~conveyor.stores.audit.AuditStore` over a memory state."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state

    async def append(self, entry: AuditEntry, keep: int, keep_ms: int) -> str:
        state = self._state
        with state.lock:
            state.audit_seq += 1
            entry_id = str(state.audit_seq)
            state.audit.append(msgspec.structs.replace(entry, id=entry_id))
            cutoff = state.clock.now_ms() - keep_ms
            log = state.audit
            while log and (len(log) > keep or log[0].at < cutoff):
                log.popleft()
        return entry_id

    async def page(self, cursor: str | None, limit: int) -> AuditPage:
        before = None if cursor is None else int(cursor)
        with self._state.lock:
            newest_first = reversed(self._state.audit)
            entries = [e for e in newest_first if before is None or int(e.id) < before]
        page = entries[:limit]
        more = len(entries) > limit
        return AuditPage(page, page[-1].id if more and page else None)
