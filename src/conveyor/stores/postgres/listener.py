"""A LISTEN connection that stays up: reconnects with backoff, says when it (re)connected.

Notifications reach ``on_message(payload)`` on the event loop that started the
listener. While the connection is down nothing arrives, so users fall back to
polling (the job store) or treat every reconnect as "anything may have
changed" (the cache tier's ``on_connect``). A ping every few seconds finds a
server that stopped answering without closing the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog

from conveyor.stores.postgres.connection import PostgresConnection

_log = structlog.get_logger("conveyor.stores.postgres")
PING_SECONDS = 5.0
MAX_BACKOFF = 0.5


class Listener:
    """LISTEN on ``channel`` over a connection of its own, kept up until :meth:`stop`."""

    def __init__(
        self,
        db: PostgresConnection,
        channel: str,
        on_message: Callable[[str], None],
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.channel = channel
        self._on_message = on_message
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()
        """Set while notifications are being received."""

    def start(self) -> None:
        """Connect in the background (idempotent)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=f"conveyor-listen-{self.channel}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            task, self._task = self._task, None
            with contextlib.suppress(Exception):
                await task

    async def _run(self) -> None:
        backoff = 0.02
        while not self._stopping.is_set():
            try:
                await self._listen_once()
                backoff = 0.02
            except Exception as exc:  # down, refused, timed out: try again soon
                _log.debug("listener disconnected", channel=self.channel, error=repr(exc))
            self.connected.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._stopping.wait()
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen_once(self) -> None:
        conn = await self.db.connect()
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await self.db.call(lambda: conn.add_listener(self.channel, self._deliver))
            self.connected.set()
            if self._on_connect is not None:
                self._on_connect()
            while not self._stopping.is_set() and not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PING_SECONDS):
                        await _first(self._stopping, lost)
                if not self._stopping.is_set() and not lost.is_set():
                    await self.db.call(lambda: conn.execute("SELECT 1"))
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await conn.close()
            if not conn.is_closed():
                conn.terminate()

    def _deliver(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        self._on_message(str(payload))


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
