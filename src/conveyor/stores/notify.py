"""Wake coroutines of this process that wait for something a store wrote.

A store writes from any thread (the SQLite writer thread, the sync facade's
loop) while readers wait on their own event loops, so waking goes through
``call_soon_threadsafe`` to each waiter's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Notifier:
    """Read :attr:`version` before looking, then ``wait(version, ...)``: nothing is missed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self.version = 0

    def notify(self) -> None:
        """Wake every waiter (callable from any thread)."""
        with self._lock:
            self.version += 1
            waiters, self._waiters = self._waiters, set()
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, since: int, timeout: float) -> None:
        """Return once notified after ``version`` was ``since``, or after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        waiter = (loop, loop.create_future())
        with self._lock:
            if self.version != since:
                return
            self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await waiter[1]
        finally:
            with self._lock:
                self._waiters.discard(waiter)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def read_when_ready(
    read: Callable[[], Awaitable[tuple[str, list[T]]]],
    notifier: Notifier,
    block: float,
    poll: float,
) -> tuple[str, list[T]]:
    """Call ``read`` until it finds something, for up to ``block`` seconds.

    Between reads, wait for a notification of this process, or ``poll``
    seconds for writes of other processes.
    """
    deadline = time.monotonic() + block
    while True:
        since = notifier.version
        cursor, found = await read()
        remaining = deadline - time.monotonic()
        if found or remaining <= 0:
            return cursor, found
        await notifier.wait(since, min(remaining, poll))
