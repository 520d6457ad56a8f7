"""The one connection of a Redis backend, which all of its stores share.

``redis://`` and ``rediss://`` (TLS) reach one server (username, password and
db index in the URL as usual); ``redis+cluster://`` and ``rediss+cluster://``
reach a cluster through any of its nodes. Every call is bounded by
``timeout`` and connection trouble becomes ``StoreUnavailableError``, so an
outage surfaces as a typed error instead of a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from conveyor.errors import StoreFullError, StoreRefusedError, StoreUnavailableError
from conveyor.masking import mask_url
from conveyor.stores.failures import StoreFailures
from conveyor.stores.redis.keys import QUEUES_KEY, job_key, meta_key
from conveyor.stores.redis.pipe import ScriptPipe, pack
from conveyor.stores.redis.scripts import script_source

T = TypeVar("T")
RedisClient = Redis | RedisCluster
_FAILURES = (redis_errors.RedisError, redis_errors.RedisClusterException, TimeoutError, OSError)
"""What a Redis call may raise (RedisClusterException is not a RedisError)."""
_REPLY_KINDS = {"BUSY": "busy", "LOADING": "loading", "MASTERDOWN": "unreachable"}
"""Error replies, by their first word, that say "come back later" (redis-py has no class)."""


def store_error(exc: BaseException, where: str) -> StoreUnavailableError | StoreRefusedError:
    """The conveyor error for a failed Redis call: ``StoreFullError`` for a server at
    ``maxmemory``, ``StoreUnavailableError`` (with its ``kind``) for what a later try may
    not meet, ``StoreRefusedError`` for a refusal (a script error, WRONGTYPE, an ACL)."""
    name = type(exc).__name__
    if isinstance(exc, redis_errors.OutOfMemoryError):
        return StoreFullError(f"{where} is out of memory (maxmemory): {exc}")
    if isinstance(exc, redis_errors.ReadOnlyError):
        return StoreUnavailableError(f"{where} refused for now: {name}: {exc}", "read_only")
    if isinstance(exc, redis_errors.TryAgainError):
        return StoreUnavailableError(f"{where} refused for now: {name}: {exc}", "busy")
    if isinstance(exc, redis_errors.TimeoutError | TimeoutError):
        return StoreUnavailableError(f"{where} is unreachable: {name}: {exc}", "timeout")
    if isinstance(exc, redis_errors.ConnectionError | OSError):
        return StoreUnavailableError(f"{where} is unreachable: {name}: {exc}", "unreachable")
    if isinstance(exc, redis_errors.ClusterError | redis_errors.RedisClusterException):
        # A cluster none of whose nodes answers is as unreachable as a refused connection.
        return StoreUnavailableError(f"{where}: {name}: {exc}", "unreachable")
    if isinstance(exc, redis_errors.ResponseError):
        kind = _REPLY_KINDS.get(str(exc).split(" ", 1)[0])
        if kind is not None:
            return StoreUnavailableError(f"{where} refused for now: {exc}", kind)
        return StoreRefusedError(f"{where} refused: {exc}")
    return StoreRefusedError(f"{where} failed: {name}: {exc}")


def connect(url: str, *, timeout: float) -> RedisClient:
    """A redis-py client for a conveyor URL (not yet connected)."""
    if "+cluster://" in url:
        return RedisCluster.from_url(
            url.replace("+cluster://", "://", 1),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
    return Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
    )


class RedisConnection:
    """A client, its registered scripts, and what this process knows of the queues."""

    def __init__(self, url: str, *, timeout: float, failures: StoreFailures | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.failures = StoreFailures() if failures is None else failures
        """Where every failed call is counted by kind (the app's metrics listen)."""
        self.is_cluster = "+cluster://" in url
        self._client: RedisClient | None = None
        self._scripts: dict[str, Any] = {}
        self.known_queues: set[str] = set()
        """Queues this process has recorded in ``cv:queues``."""
        self._pipe = ScriptPipe(url, timeout) if ScriptPipe.serves(url) else None
        """Scripts' own pipelined socket (one server over TCP; else redis-py's pool)."""
        self.held: dict[str, str] = {}
        """Queue of each job this process holds a lease on, so lease calls need no lookup."""

    # -- lifecycle -------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The redis-py client (typed Any: with decode_responses=False replies are bytes)."""
        if self._client is None:
            raise StoreUnavailableError(f"Redis store {mask_url(self.url)} is not open", "other")
        return self._client

    async def open(self) -> None:
        if self._client is not None:
            return
        client = connect(self.url, timeout=self.timeout)
        self._client = client
        self._scripts = {}
        try:
            await self.call(client.ping)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def ping(self) -> None:
        await self.call(self.client.ping)

    # -- calls -----------------------------------------------------------------

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run one Redis call; a failure becomes a typed error (``store_error``)."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            async with asyncio.timeout(self.timeout):
                try:
                    return await fn(*args, **kwargs)
                except redis_errors.ConnectionError:
                    # A pooled connection may have died with a server restart; one more
                    # try gets a fresh one. (Scripts are token-checked or idempotent, so
                    # a script that did run before the reply was lost does no harm.)
                    return await fn(*args, **kwargs)
        except _FAILURES as exc:
            if isinstance(exc, TimeoutError) and self._pipe is not None:
                self._pipe.reset()  # a server that did not answer in time may never
            raise self.failures.record(
                store_error(exc, f"Redis store {mask_url(self.url)}")
            ) from None

    async def pipelined(self, command: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run one read command many times in one round trip (per node on a cluster)."""
        if not calls:
            return []

        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for args in calls:
                getattr(pipe, command)(*args)
            return list(await pipe.execute())

        return await self.call(run)

    def script(self, name: str) -> Any:
        """Script ``name`` (a redis-py ``Script``) registered on the current client,
        e.g. to queue on a pipeline; redis-py loads it on NOSCRIPT."""
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = self.client.register_script(script_source(name))
        return found

    async def run_script(self, name: str, queue: str, args: Sequence[Any]) -> Any:
        """Run script ``name`` over the keys of ``queue``."""
        script = self.script(name)
        if self.is_cluster:  # redis-py routes it to the slot of its one key
            return await self.call(script, keys=[meta_key(queue)], args=list(args))
        command = _pack_command(["EVALSHA", script.sha, 1, meta_key(queue), *args])
        pipe = self._pipe
        if pipe is None or not pipe.usable():
            return await self.call(self._evalsha_packed, script, command)
        # The hot path of every transition. The pipe bounds each request by the
        # timeout itself, so no per-call timer (``call``'s costs about a tenth of a
        # one-by-one enqueue); failures are typed and retried as ``call`` does.
        try:
            try:
                return await self._evalsha_piped(pipe, script, command)
            except redis_errors.ConnectionError:  # e.g. a server restart closed the socket
                return await self._evalsha_piped(pipe, script, command)
        except _FAILURES as exc:
            raise self.failures.record(
                store_error(exc, f"Redis store {mask_url(self.url)}")
            ) from None

    async def run_script_once(
        self, name: str, keys: Sequence[str], args: Sequence[Any], *, what: str
    ) -> Any:
        """Run script ``name`` over ``keys`` (one slot on a cluster) at most once.

        Unlike :meth:`call`, nothing is sent again after a connection error or a
        timeout: the script may have run before the reply was lost, and a script
        that counts (a rate-limit check) would count twice. Only ``NOSCRIPT`` (the
        server restarted or was flushed: the script did not run) loads it and sends
        it again. Failures become ``StoreUnavailableError`` naming ``what``.
        """
        script = self.script(name)
        command = ["EVALSHA", script.sha, len(keys), *keys, *args]
        try:
            if self.is_cluster:
                return await self._evalsha_on_node(script, command)
            packed, pipe = _pack_command(command), self._pipe
            if pipe is not None and pipe.usable():  # the pipe never sends a request twice
                return await self._evalsha_piped(pipe, script, packed)
            return await self._evalsha_packed(script, packed)
        except _FAILURES as exc:  # also OOM, READONLY, LOADING replies: never a refusal here
            error = store_error(exc, f"{what} on Redis {mask_url(self.url)}")
            if isinstance(error, StoreRefusedError):
                error = StoreUnavailableError(str(error), "other")
            raise self.failures.record(error) from None

    async def _evalsha_on_node(self, script: Any, command: list[Any]) -> Any:
        # Naming the node turns off the cluster client's retries (it would send the
        # script again after a connection error); MOVED and ASK are still followed.
        node = self.client.get_node_from_key(command[3])
        try:
            return await self.client.execute_command(*command, target_nodes=node)
        except redis_errors.NoScriptError:
            await self.client.execute_command("SCRIPT LOAD", script.script, target_nodes=node)
            return await self.client.execute_command(*command, target_nodes=node)

    @staticmethod
    async def _evalsha_piped(pipe: ScriptPipe, script: Any, command: bytes) -> Any:
        """A packed EVALSHA through the pipe (``pipe.py``), where concurrent callers share
        round trips; on NOSCRIPT (the server restarted or was flushed) load it and resend."""
        try:
            return await pipe.request(command)
        except redis_errors.NoScriptError:
            await pipe.request(pack("SCRIPT", "LOAD", script.script))
            return await pipe.request(command)

    async def _evalsha_packed(self, script: Any, command: bytes) -> Any:
        """Send a packed EVALSHA on a pooled connection; on NOSCRIPT load and send it again."""
        pool = self.client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(command, check_health=False)
            try:
                return await conn.read_response()
            except redis_errors.NoScriptError:  # the server restarted or was flushed
                await conn.send_command("SCRIPT", "LOAD", script.script)
                await conn.read_response()
                await conn.send_packed_command(command, check_health=False)
                return await conn.read_response()
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    # -- queues and where jobs are -------------------------------------------

    async def remember_queues(self, queues: Iterable[str]) -> None:
        """Record queues in ``cv:queues`` (once per process)."""
        new = set(queues) - self.known_queues
        if new:
            await self.call(self.client.sadd, QUEUES_KEY, *new)
            self.known_queues |= new

    async def all_queues(self) -> list[str]:
        names = await self.call(self.client.smembers, QUEUES_KEY)
        return sorted(n.decode() for n in names)

    async def locate(self, job_id: str) -> str | None:
        """The queue that holds ``job_id`` (ids are unique per queue)."""
        queues = await self.all_queues()
        found = await self.pipelined("exists", [(job_key(q, job_id),) for q in queues])
        for queue, exists in zip(queues, found, strict=True):
            if exists:
                return queue
        return None

    async def queue_of_held(self, job_id: str) -> str | None:
        """The queue of a job this process holds (no round trip), else looked up."""
        return self.held.get(job_id) or await self.locate(job_id)

    def forget_held(self, job_ids: Iterable[str]) -> None:
        for job_id in list(job_ids):
            self.held.pop(job_id, None)


def _pack_command(args: Sequence[Any]) -> bytes:
    """RESP-encode a command with hiredis's C packer (redis-py's generic one is slow)."""
    packed: bytes = hiredis.pack_command(tuple(args))
    return packed
