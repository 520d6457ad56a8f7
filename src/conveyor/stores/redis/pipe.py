"""One pipelined connection for the Redis store's scripts (one server, plain TCP).

Every transition is one ``EVALSHA``. Sent through redis-py, each call takes a
pooled connection, writes, waits for its own reply and gives the connection
back: its layers cost about as much as the loopback round trip itself, and N
coroutines enqueueing at once make N round trips on N connections. Here
every script call of the event loop goes through one socket: the commands
queued during one pass of the loop leave in one write, and the replies come
back in order, each to its caller's future (Redis answers a connection's
commands in the order it sent them). So concurrent callers share round trips,
and a lone caller pays only for packing, one write and one parse (hiredis).

Only requests that do not block the server belong here (scripts, never
``BLPOP``). A command goes out at once when no reply is awaited, else with the
others of the loop's pass. Every request is bounded by the pipe's ``timeout``
without a timer of its own: one watchdog per connection wakes at the oldest
unanswered request's deadline; past it, every waiting request fails with
``TimeoutError`` and the connection is dropped (a server that does not answer
in time may never), so the next request connects afresh. A cancelled request
leaves its reply to be read and dropped. Errors are redis-py's exception
classes, so ``connection.store_error`` types them as it types every other call's.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis.connection import parse_url

_ERRORS: dict[str, type[redis_errors.RedisError]] = {
    "NOSCRIPT": redis_errors.NoScriptError,
    "OOM": redis_errors.OutOfMemoryError,
    "READONLY": redis_errors.ReadOnlyError,
    "LOADING": redis_errors.BusyLoadingError,
    "MASTERDOWN": redis_errors.MasterDownError,
    "TRYAGAIN": redis_errors.TryAgainError,
    "NOPERM": redis_errors.NoPermissionError,
    "NOAUTH": redis_errors.AuthenticationError,
    "WRONGPASS": redis_errors.AuthenticationError,
}
"""Error replies by their first word, as redis-py raises them (the word is dropped)."""


def reply_error(message: str) -> redis_errors.RedisError:
    """The redis-py exception for an error reply."""
    code, _, rest = message.partition(" ")
    kind = _ERRORS.get(code)
    return kind(rest) if kind is not None else redis_errors.ResponseError(message)


def pack(*args: Any) -> bytes:
    """RESP-encode one command (hiredis's C packer)."""
    packed: bytes = hiredis.pack_command(args)
    return packed


class ScriptPipe:
    """Requests of one event loop over one socket, pipelined; reconnects when needed."""

    def __init__(self, url: str, timeout: float) -> None:
        self.timeout = timeout
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self._host = str(options.get("host") or "localhost")
        self._port = int(options.get("port") or 6379)
        hello: list[bytes] = []
        if options.get("password") is not None:
            user = options.get("username")
            auth = ("AUTH", user, options["password"]) if user else ("AUTH", options["password"])
            hello.append(pack(*auth))
        if int(options.get("db") or 0):
            hello.append(pack("SELECT", int(options["db"])))
        self._hello = hello
        self._protocol: _Resp | None = None
        self._connecting: asyncio.Future[_Resp] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop the socket belongs to (requests from another loop must not use it)."""

    @staticmethod
    def serves(url: str) -> bool:
        """Whether ``url`` is a server this pipe reaches (TCP without TLS)."""
        return url.startswith("redis://")

    def usable(self) -> bool:
        """Whether the running loop may use this pipe (its socket is of one loop)."""
        return self.loop is None or self.loop is asyncio.get_running_loop()

    async def request(self, packed: bytes) -> Any:
        """Send one packed command and return its reply (an error reply is raised);
        ``TimeoutError`` if none came within ``timeout``."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connect()
        reply = await protocol.send(packed)
        if isinstance(reply, hiredis.ReplyError):
            raise reply_error(str(reply))
        return reply

    async def _connect(self) -> _Resp:
        if self._connecting is not None:  # another caller is connecting: wait for it
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            async with asyncio.timeout(self.timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Resp(self.timeout), self._host, self._port
                )
            for command in self._hello:
                reply = await protocol.send(command)
                if isinstance(reply, hiredis.ReplyError):
                    protocol.abort()
                    raise reply_error(str(reply))
        except BaseException as exc:
            failed, self._connecting = self._connecting, None
            failed.set_exception(redis_errors.ConnectionError(f"connecting failed: {exc!r}"))
            failed.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        self.loop, self._protocol = loop, protocol
        ready, self._connecting = self._connecting, None
        ready.set_result(protocol)
        return protocol

    def reset(self) -> None:
        """Drop the socket: requests in flight fail with ``ConnectionError``."""
        if self._protocol is not None:
            self._protocol.abort()
            self._protocol = None

    def close(self) -> None:
        self.reset()


class _Resp(asyncio.Protocol):
    """RESP over one transport: a command goes out at once when no reply is awaited,
    else in one write per loop pass; replies come back in order to the futures that
    wait for them, and a watchdog fails them all once the oldest waits past ``timeout``."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._reader = hiredis.Reader()
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        """Each request awaiting its reply and when it was sent (loop time), oldest first."""
        self._watchdog: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport instance: uvloop's
        # (what `conveyor serve` runs on) derives from none of asyncio's classes.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.closed:
            raise redis_errors.ConnectionError("connection closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._waiting and self._transport is not None:
            # Nothing in flight: send at once (a lone caller saves a pass of the loop).
            self._transport.write(packed)
        else:
            # Replies are awaited: gather what this pass of the loop sends into one write.
            if not self._out:
                loop.call_soon(self._flush)
            self._out.append(packed)
        now = loop.time()
        self._waiting.append((future, now))
        if self._watchdog is None:
            self._watchdog = loop.call_at(now + self._timeout, self._watch)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and not self.closed and out:
            self._transport.write(b"".join(out))

    def _watch(self) -> None:
        """At the oldest waiting request's deadline: past it, fail every waiting request
        and drop the connection; else wake again at the new oldest's deadline."""
        self._watchdog = None
        if not self._waiting or self.closed:
            return
        deadline = self._waiting[0][1] + self._timeout
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:
            self._watchdog = loop.call_at(deadline, self._watch)
            return
        self._fail_waiting(TimeoutError(f"no reply within {self._timeout:g} s"))
        self.abort()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if not self._waiting:  # a reply nobody asked for: the stream is out of step
                self.abort()
                return
            future, _ = self._waiting.popleft()
            if not future.done():  # a caller that gave up (cancelled) reads nothing
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._out = []
        self._fail_waiting(redis_errors.ConnectionError(f"connection lost: {exc!r}"))

    def _fail_waiting(self, error: Exception) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()  # connection_lost follows, failing what still waits
