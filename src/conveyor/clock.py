"""Where conveyor reads the time: a clock that tests can replace.

Stores, the worker and the cache read wall time (integer milliseconds since
the Unix epoch, the unit of every stored time) and sleep through one
:class:`Clock`. Production uses :data:`SYSTEM_CLOCK`; a test builds its app
with a :class:`ManualClock` and moves time with :meth:`ManualClock.advance`
instead of sleeping until a lease, a TTL or a debounce window runs out::

    clock = ManualClock()
    app = Conveyor("memory://", clock=clock)
    ...
    clock.advance(31)          # the lease has now expired for every store

The clock governs what conveyor decides by time: leases and stalls, delays
and retries, schedules, debounce and throttle windows, retention, heartbeats,
cache TTLs and the worker's periodic loops. A caller's own patience (the
timeout of ``job.wait()``, a worker's shutdown deadline) and I/O budgets
stay on real time. Servers keep their own time for what they expire by
themselves (a Redis key with a TTL): stores never rely on that for a
decision, only to free memory after the clock-based decision was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from typing import Protocol

from conveyor.errors import ProgrammingError


class Clock(Protocol):
    """Wall time in milliseconds, a monotonic reading in seconds, and sleeping."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` of this clock's time have passed."""
        ...

    async def sleep_or_wake(self, event: asyncio.Event, seconds: float) -> None:
        """Sleep up to ``seconds`` of this clock's time, returning early once ``event`` is set."""
        ...


class SystemClock:
    """The real time of this machine."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_or_wake(self, event: asyncio.Event, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when :meth:`advance` is called (tests).

    Sleepers on any event loop or thread wake once the clock reaches their
    deadline. ``sleep(0)`` (and negative durations) yield once without
    waiting, as ``asyncio.sleep(0)`` does.
    """

    def __init__(self, start_ms: int | None = None) -> None:
        self._now_ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        self._elapsed = 0.0
        self._lock = threading.Lock()
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._order), future))
        await future

    async def sleep_or_wake(self, event: asyncio.Event, seconds: float) -> None:
        if event.is_set():
            return
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait((sleeper, waiter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper now due."""
        if seconds < 0:
            raise ProgrammingError("a clock never goes back")
        with self._lock:
            self._elapsed += seconds
            self._now_ms += round(seconds * 1000)
            due: list[asyncio.Future[None]] = []
            while self._sleepers and self._sleepers[0][0] <= self._elapsed:
                due.append(heapq.heappop(self._sleepers)[2])
        for future in due:
            future.get_loop().call_soon_threadsafe(_wake, future)

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting for this clock to advance."""
        with self._lock:
            return sum(1 for _, _, f in self._sleepers if not f.done())

    def __repr__(self) -> str:
        return f"ManualClock(now_ms={self._now_ms})"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled sleeper is done already
        future.set_result(None)
