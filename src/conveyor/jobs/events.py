"""Job events as an async iterator: ``app.jobs.events(job_id=..., queue=...)``.

Stores write each event in the same step as the change it reports (a
capped stream per queue on Redis, the ``job_events`` table on SQLite, a
ring in memory), so a reader that holds a cursor misses nothing that
happened after it subscribed, across reconnects and while the store keeps
the events (at least the newest ``EVENTS_KEPT``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection

from conveyor.stores.base import JobEvent, JobEventKind, JobStore

BLOCK_SECONDS = 1.0
"""Longest one read waits for an event before the iterator reads again."""
BATCH = 500


class JobEvents:
    """A subscription: events from the moment it was created, oldest first.

    >>> async for event in app.jobs.events(queue="reports"):
    ...     print(event.kind, event.job_id)
    """

    def __init__(
        self,
        store: JobStore,
        opener: Callable[[], Awaitable[None]],
        *,
        job_id: str | None = None,
        queue: str | None = None,
        kinds: Collection[JobEventKind] | None = None,
        cursor: str | None = None,
    ) -> None:
        self.store = store
        self._open = opener
        self.job_id = job_id
        self.queue = queue
        self.kinds = None if kinds is None else frozenset(kinds)
        self.cursor = cursor
        """Where the subscription is; ``None`` until it starts (at the end of the log)."""

    async def start(self) -> JobEvents:
        """Fix the starting point now (else the first read does); returns itself."""
        if self.cursor is None:
            await self._open()
            self.cursor = await self.store.events_start()
        return self

    async def next_batch(self, block: float = BLOCK_SECONDS) -> list[JobEvent]:
        """The matching events since the last call; waits up to ``block`` s for some."""
        await self.start()
        assert self.cursor is not None
        queues = None if self.queue is None else [self.queue]
        self.cursor, events = await self.store.read_events(self.cursor, queues, BATCH, block)
        return [e for e in events if self._wanted(e)]

    def _wanted(self, event: JobEvent) -> bool:
        if self.job_id is not None and event.job_id != self.job_id:
            return False
        return self.kinds is None or event.kind in self.kinds

    def __aiter__(self) -> AsyncIterator[JobEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JobEvent]:
        while True:
            for event in await self.next_batch():
                yield event
