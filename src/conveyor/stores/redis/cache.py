"""The cache's shared tier on Redis or Redis Cluster.

Key layout (``prefix`` is ``cv:cache:`` unless configured):

    {prefix}{namespace}:{key}        a value (the serializer's bytes), PX expiry
    {prefix}tag:{namespace}:{tag}    SET of the full keys written with that tag
    {prefix}lock:{full key}          the stampede lock: a random token, SET NX PX
    {prefix}invalidations            the pub/sub channel every process listens on

No key carries a hash tag, so values spread over a cluster's slots; every
multi-key step is a non-transactional pipeline (redis-py splits it by slot),
and nothing needs two keys in one script. Classic pub/sub reaches every node
of a cluster.

Each write publishes what it changed on the channel, in the same pipeline.
The listener drops those keys from this process's local tier and wakes
stampede waiters. Every (re)subscription is confirmed by the server, and each
confirmation flushes the local tier: messages sent while the subscription
was down are lost, so nothing local can be trusted after a reconnect.

On one server, GET is hand-packed on a pooled connection: redis-py's generic
command path costs a good part of a loopback round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from conveyor.errors import BadInputError
from conveyor.masking import mask_url
from conveyor.stores.cache import NOT_A_COUNTER, Invalidation, InvalidationSink
from conveyor.stores.redis.connection import connect

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
"""
_message_decoder = msgspec.json.Decoder(tuple[str, list[tuple[str, list[str]]]])
_encoder = msgspec.json.Encoder()
_LISTEN_BACKOFF = (0.05, 0.5)


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisCacheTier:
    """A :class:`~conveyor.stores.cache.SharedTier` on Redis (one server or a cluster)."""

    default_budget = 0.05
    """A round trip to an in-memory server."""

    def __init__(
        self, url: str, *, origin: str, prefix: str = "cv:cache:", timeout: float = 5.0
    ) -> None:
        self.url = url
        self.origin = origin
        self.prefix = prefix
        self.channel = f"{prefix}invalidations"
        self._timeout = timeout
        self._client: Any = None
        self._cluster = "+cluster://" in url
        self._unlock: Any = None
        self._sink: InvalidationSink | None = None
        self._stopping = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._first_subscription = asyncio.Event()
        self.subscribed = False

    # -- lifecycle -------------------------------------------------------------

    async def open(self, sink: InvalidationSink) -> None:
        if self._client is not None:
            return
        self._client = connect(self.url, timeout=self._timeout)
        self._unlock = self._client.register_script(_UNLOCK)
        self._sink = sink
        self._stopping.clear()
        self._listener = asyncio.create_task(self._listen(), name="conveyor-cache-listener")
        # Connect (and learn a cluster's slots) now, outside any call's budget, and start
        # with the invalidation feed up. If Redis is down the cache starts degraded.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._timeout):
                if self._cluster:
                    await self._client.initialize()
                await self._client.ping()
                await self._first_subscription.wait()

    async def close(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
        self._wake_all()

    async def ping(self) -> None:
        await self._client.ping()
        if not self.subscribed:
            raise ConnectionError(f"invalidation feed of {mask_url(self.url)} is down")

    # -- reads -----------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        if self._cluster:
            value: bytes | None = await self._client.get(key)
            return value
        raw = key.encode()
        pool = self._client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(
                b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(raw), raw), check_health=False
            )
            reply: bytes | None = await conn.read_response()
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        return reply

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        if self._cluster:
            values: list[bytes | None] = await self._client.mget_nonatomic(list(keys))
            return values
        found: list[bytes | None] = await self._client.mget(list(keys))
        return found

    async def exists(self, key: str) -> bool:
        return bool(await self._client.exists(key))

    async def ttl_ms(self, key: str) -> int | None:
        left: int = await self._client.pttl(key)
        return None if left == -2 else left

    # -- writes (each tells the other processes in the same round trip) ---------

    async def set_many(
        self, items: Sequence[tuple[str, bytes, int | None]], tags: Sequence[str]
    ) -> None:
        pipe = self._client.pipeline(transaction=False)
        latest: int | None = 0
        for key, data, expires_at in items:
            if expires_at is None:
                pipe.set(key, data)
                latest = None
            else:
                pipe.set(key, data, pxat=expires_at)
                if latest is not None:
                    latest = max(latest, expires_at)
        keys = [key for key, _, _ in items]
        for tag in tags:
            tag_key = self._tag_key(tag)
            pipe.sadd(tag_key, *keys)
            if latest is None:
                pipe.persist(tag_key)
            else:
                pipe.execute_command("PEXPIREAT", tag_key, latest, "GT")
                pipe.execute_command("PEXPIREAT", tag_key, latest, "NX")
        await self._execute(pipe, [("k", keys)])

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("UNLINK", key)
        replies = await self._execute(pipe, [("k", list(keys))])
        return sum(int(r) for r in replies)

    async def incr(self, key: str, by: int) -> int:
        pipe = self._client.pipeline(transaction=False)
        pipe.incrby(key, by)
        try:
            replies = await self._execute(pipe, [("k", [key])])
        except ResponseError as exc:
            if "not an integer" not in str(exc):
                raise  # an outage (out of memory, read-only): the cache's breaker counts it
            raise BadInputError(f"cannot increment {key!r}: {NOT_A_COUNTER}") from exc
        value: int = replies[0]
        return value

    async def expire(self, key: str, expires_at: int | None) -> bool:
        pipe = self._client.pipeline(transaction=False)
        if expires_at is None:
            pipe.persist(key)
        else:
            pipe.pexpireat(key, expires_at)
        replies = await self._execute(pipe, [("k", [key])])
        if expires_at is None:
            return bool(replies[0]) or bool(await self._client.exists(key))
        return bool(replies[0])

    async def invalidate_tags(self, tags: Sequence[str]) -> list[str]:
        tag_keys = [self._tag_key(tag) for tag in tags]
        pipe = self._client.pipeline(transaction=False)
        for tag_key in tag_keys:
            pipe.smembers(tag_key)
        members = await pipe.execute()
        keys = sorted({m.decode() for found in members for m in found})
        pipe = self._client.pipeline(transaction=False)
        for key in [*keys, *tag_keys]:
            pipe.execute_command("UNLINK", key)
        await self._execute(pipe, [("k", keys)])
        return keys

    async def delete_matching(self, prefix: str, pattern: str, batch: int) -> int:
        deleted = 0
        chunk: list[str] = []
        match = glob_escape(prefix) + pattern
        async for key in self._client.scan_iter(match=match, count=batch):
            chunk.append(key.decode())
            if len(chunk) >= batch:
                deleted += await self._unlink(chunk)
                chunk = []
        if chunk:
            deleted += await self._unlink(chunk)
        await self.publish(self.origin, [("p", [prefix, pattern])])
        return deleted

    async def _unlink(self, keys: list[str]) -> int:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("UNLINK", key)
        return sum(int(r) for r in await pipe.execute())

    async def publish(self, origin: str, invalidations: Sequence[Invalidation]) -> None:
        await self._client.publish(self.channel, _encoder.encode((origin, list(invalidations))))

    async def _execute(self, pipe: Any, invalidations: list[Invalidation]) -> list[Any]:
        """Run ``pipe`` and publish ``invalidations``: in the same round trip on one
        server (a cluster pipeline refuses PUBLISH, so it goes right after)."""
        message = _encoder.encode((self.origin, invalidations))
        if self._cluster:
            replies = await pipe.execute()
            await self._client.publish(self.channel, message)
            return list(replies)
        pipe.publish(self.channel, message)
        return list(await pipe.execute())[:-1]

    def _tag_key(self, tag: str) -> str:
        return f"{self.prefix}tag:{tag}"

    # -- the stampede lock -----------------------------------------------------

    async def try_lock(self, key: str, ttl_ms: int) -> str | None:
        # The waiter is registered before asking, so an unlock published while the
        # answer is on its way still wakes it.
        loop = asyncio.get_running_loop()
        waiter = self._waiters.get(key)
        if waiter is None or waiter.done():
            self._waiters[key] = loop.create_future()
        token = secrets.token_hex(8)
        taken = await self._client.set(f"{self.prefix}lock:{key}", token, nx=True, px=ttl_ms)
        if taken:
            self._waiters.pop(key, None)
            return token
        return None

    async def wait_unlocked(self, key: str, timeout: float) -> None:
        waiter = self._waiters.get(key)
        if waiter is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            pass
        finally:
            if self._waiters.get(key) is waiter:
                del self._waiters[key]

    async def unlock(self, key: str, token: str) -> None:
        message = _encoder.encode((self.origin, [("u", [key])]))
        lock_key = f"{self.prefix}lock:{key}"
        await self._unlock(keys=[lock_key], args=[token, self.channel, message])

    def _wake(self, keys: list[str]) -> None:
        for key in keys:
            waiter = self._waiters.get(key)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _wake_all(self) -> None:
        self._wake(list(self._waiters))

    # -- the invalidation feed -------------------------------------------------

    async def _listen(self) -> None:
        delay = _LISTEN_BACKOFF[0]
        while not self._stopping.is_set():
            try:
                await self._subscribe_and_read()
                delay = _LISTEN_BACKOFF[0]
            except Exception:  # the connection broke: flush on the next subscription
                self.subscribed = False
                self._wake_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, _LISTEN_BACKOFF[1])

    async def _subscribe_and_read(self) -> None:
        pubsub = self._client.pubsub()
        try:
            async with asyncio.timeout(self._timeout):
                await pubsub.subscribe(self.channel)
            while not self._stopping.is_set():
                message = await pubsub.get_message(timeout=0.2)
                if message is not None:
                    self._on_message(message)
        finally:
            self.subscribed = False
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _on_message(self, message: dict[str, Any]) -> None:
        assert self._sink is not None
        kind = message.get("type")
        if kind == "subscribe":
            # Confirmed (again): whatever was published while we were away is lost.
            self.subscribed = True
            self._first_subscription.set()
            self._sink("", [])
            self._wake_all()
            return
        if kind != "message":
            return
        try:
            origin, invalidations = _message_decoder.decode(message["data"])
        except msgspec.DecodeError:
            return
        for what, items in invalidations:
            if what in ("k", "u"):
                self._wake(items)
        if origin != self.origin:
            self._sink(origin, [i for i in invalidations if i[0] != "u"])
