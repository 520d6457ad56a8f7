"""``Cache``: a two-tier cache (in-process LRU in front of SQLite or Redis).

>>> cache = Cache("redis://localhost:6379/0")          # or Cache() for local only
>>> await cache.set("user:7", {"name": "Ada"}, ttl="SHORT", tags=["team:3"])
>>> await cache.get("user:7")
{'name': 'Ada'}
>>> users = cache.namespace("users")
>>> @users.cached(ttl=300, key="user:{user_id}")
... async def load_user(user_id: int) -> User: ...

Reads check the local tier first, then the shared one (filling the local
tier); writes go through both and tell every other process to drop the key.
An outage of the shared tier never raises: calls answer from the local tier
within ``budget`` (see ``core.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import msgspec

from conveyor.cache import decorators, http
from conveyor.cache.core import FAILED, CacheCore, glob_regex, new_origin
from conveyor.cache.decoding import MISSING, decode, decoder_for
from conveyor.cache.local import NEVER, LocalTier
from conveyor.cache.options import (
    DEFAULT,
    TTL,
    CacheOptions,
    _Default,
    validate,
)
from conveyor.cache.resolver import Resolver
from conveyor.cache.serializer import (
    Serializer,
    encode_plain,
    has_header,
    open_envelope,
    with_expiry,
)
from conveyor.cache.stampede import encode_entry, is_fresh, store
from conveyor.cache.stats import NamespaceStats, SharedStats
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.config import mask_url
from conveyor.errors import BadInputError, CacheUnavailableError, ConfigError
from conveyor.observability.health import CheckResult, Status
from conveyor.stores.cache import NOT_A_COUNTER, SharedTier, TierOptions
from conveyor.stores.registry import backend_type, url_problems

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=Callable[..., Awaitable[Any]])
RESERVED_NAMESPACES = frozenset({"tag", "lock"})
"""Redis keeps tag sets under ``{prefix}tag:`` and stampede locks under ``{prefix}lock:``:
a namespace of that name would read, overwrite or clear them."""


def make_shared_tier(
    url: str, origin: str, options: CacheOptions, clock: Clock
) -> SharedTier | None:
    """The shared tier at ``url``, built by the backend that serves its scheme."""
    problems = url_problems(url)
    if problems:
        raise ConfigError([f"cache url: {problem}" for problem in problems])
    tier_options = TierOptions(
        prefix=options.prefix, timeout=options.timeout, sync_interval=options.sync_interval
    )
    return backend_type(url).cache_tier(url, origin, tier_options, clock)


class Cache:
    """A two-tier cache; ``Cache(url, **options)`` alone or ``app.cache`` in an app.

    ``url``: ``memory://`` (the local tier alone), ``sqlite:///path.db`` (local +
    a SQLite file shared by the processes of one machine), ``redis://``,
    ``rediss://``, ``redis+cluster://`` (local + Redis), ``postgresql://`` (local +
    tables in the store's schema, invalidations by NOTIFY). Options: see
    :class:`~conveyor.cache.options.CacheOptions`.
    """

    def __init__(
        self,
        url: str = "memory://",
        *,
        namespace: str = "default",
        clock: Clock = SYSTEM_CLOCK,
        **options: Any,
    ) -> None:
        try:
            opts = CacheOptions(**options)
        except TypeError as exc:
            raise ConfigError([f"cache: {exc}"]) from None
        validate(opts)
        origin = new_origin()
        shared = make_shared_tier(url, origin, opts, clock)
        local = LocalTier(
            max_entries=opts.local_max_entries, max_bytes=opts.local_max_bytes, clock=clock
        )
        serializer = Serializer(
            compress_threshold=opts.compress_threshold, max_bytes=opts.max_value_bytes
        )
        core = CacheCore(
            shared,
            local,
            serializer,
            origin=origin,
            budget=opts.budget or (shared.default_budget if shared else 0.05),
            lock_ttl=opts.lock_ttl,
            early_refresh_beta=opts.early_refresh_beta,
            bulk_budget=opts.timeout,
            clock=clock,
        )
        self._setup(url, core, opts, namespace)

    def _setup(self, url: str, core: CacheCore, opts: CacheOptions, namespace: str) -> None:
        if not namespace or ":" in namespace:
            raise BadInputError(
                f"a cache namespace is a non-empty name without ':', got {namespace!r}"
            )
        if namespace in RESERVED_NAMESPACES:
            raise BadInputError(
                f"the cache namespace {namespace!r} is reserved: the shared tier keeps its "
                f"own keys there (reserved: {', '.join(sorted(RESERVED_NAMESPACES))})"
            )
        self.url = url
        self._clock = core.clock
        self.name = namespace
        self.options = opts
        self._core = core
        self._prefix = f"{opts.prefix}{namespace}:"
        self._resolver = Resolver(core, opts, namespace)
        self._stats = core.namespace_stats(namespace)
        self._stale_ttl = opts.stale_ttl
        self._local = core.local

    def namespace(self, name: str) -> Cache:
        """A view of this cache whose keys, tags and stats are apart from the others'."""
        view = Cache.__new__(Cache)
        view._setup(self.url, self._core, self.options, name)
        return view

    def __repr__(self) -> str:
        return f"<Cache {mask_url(self.url)} namespace={self.name!r}>"

    # -- the parts, for the decorators, metrics and health ------------------------

    @property
    def local(self) -> LocalTier:
        return self._core.local

    @property
    def breaker(self) -> Any:
        return self._core.breaker

    @property
    def shared_stats(self) -> SharedStats:
        return self._core.shared_stats

    def full_key(self, key: str) -> str:
        return self._prefix + key

    def _tags(self, tags: Iterable[str]) -> list[str]:
        return self._resolver.tags(tags)

    def _bulk(self, count: int) -> float | None:
        """Many keys in one call: the budget grows with them, up to the bulk budget."""
        if count <= 32:
            return None
        return min(self._core.bulk_budget, self._core.budget * count / 32)

    def _ttl(self, ttl: TTL | _Default) -> float | None:
        return self._resolver.ttl_seconds(ttl)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Connect the shared tier (also done on first use)."""
        await self._core.open()

    async def close(self) -> None:
        """Finish or cancel background refreshes, then close the shared tier's connections."""
        await self._core.close()

    async def __aenter__(self) -> Cache:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- reads -----------------------------------------------------------------

    async def get(
        self, key: str, default: Any = None, *, type: Any = None, allow_stale: bool = False
    ) -> Any:
        """The value of ``key`` (decoded as ``type`` if given), or ``default``."""
        found = await self._lookup(self._prefix + key, decoder_for(type), allow_stale)
        return default if found is MISSING else found

    async def _lookup(
        self, full: str, decoder: msgspec.json.Decoder[Any] | None, allow_stale: bool
    ) -> Any:
        stats = self._stats
        entry = self._local.get(full)
        stale: Any = MISSING
        if entry is not None:
            value = decode(entry.body, decoder)
            if value is not MISSING:
                if entry.fresh_until > self._clock.now_ms() / 1000:
                    stats.local_hits += 1
                    return value
                stale = value
        version = await self._core.read_version(full)
        data = await self._core.shared_call(lambda s: s.get(full))
        if isinstance(data, bytes):
            envelope = open_envelope(data)
            value = decode(envelope.body, decoder)
            if value is not MISSING:
                if envelope.fresh_until == 0 or envelope.fresh_until > self._clock.now_ms():
                    if has_header(data):
                        self._local.fill(full, data, version)
                    stats.shared_hits += 1
                    return value
                stale = value
        if stale is not MISSING and allow_stale:
            stats.stale += 1
            return stale
        stats.misses += 1
        return MISSING

    async def get_many(self, keys: Sequence[str], *, type: Any = None) -> list[Any]:
        """Values of ``keys`` in order (None for a miss); the shared tier is asked once."""
        decoder = decoder_for(type)
        values: list[Any] = [None] * len(keys)
        missing: list[int] = []
        now = self._clock.now_ms() / 1000
        for i, key in enumerate(keys):
            entry = self._local.get(self._prefix + key)
            value = MISSING if entry is None else decode(entry.body, decoder)
            if value is not MISSING and entry is not None and entry.fresh_until > now:
                values[i] = value
                self._stats.local_hits += 1
            else:
                missing.append(i)
        if missing:
            fulls = [self._prefix + keys[i] for i in missing]
            await self._core.read_version(fulls[0])
            versions = [self._local.version(full) for full in fulls]
            found = await self._core.shared_call(
                lambda s: s.get_many(fulls), budget=self._bulk(len(fulls))
            )
            datas: list[bytes | None] = [None] * len(fulls) if found is FAILED else found  # type: ignore[assignment]
            for i, full, data, version in zip(missing, fulls, datas, versions, strict=True):
                value = (
                    MISSING
                    if data is None or not is_fresh(data, self._clock.now_ms())
                    else decode(open_envelope(data).body, decoder)
                )
                if value is MISSING:
                    self._stats.misses += 1
                    continue
                if data is not None and has_header(data):
                    self._local.fill(full, data, version)
                values[i] = value
                self._stats.shared_hits += 1
        return values

    async def exists(self, key: str) -> bool:
        full = self._prefix + key
        entry = self._local.get(full)
        if entry is not None and entry.fresh_until > self._clock.now_ms() / 1000:
            return True
        found = await self._core.shared_call(lambda s: s.get(full))
        return isinstance(found, bytes) and is_fresh(found, self._clock.now_ms())

    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires (stale window included); ``math.inf`` if never; None
        if there is no such key."""
        full = self._prefix + key
        left = await self._core.shared_call(lambda s: s.ttl_ms(full))
        if left is FAILED:
            entry = self._local.get(full)
            if entry is None:
                return None
            return (
                entry.expires_at - self._clock.now_ms() / 1000
                if entry.expires_at != NEVER
                else NEVER
            )
        if left is None:
            return None
        return NEVER if left == -1 else max(0.0, left / 1000)  # type: ignore[operator]

    # -- writes ----------------------------------------------------------------

    async def set(
        self,
        key: str,
        value: Any,
        ttl: TTL | _Default = DEFAULT,
        *,
        tags: Iterable[str] = (),
        stale_ttl: float | None = None,
    ) -> None:
        """Store ``value`` under ``key`` in both tiers (JSON; a typed error if it is not)."""
        seconds = self._ttl(ttl)
        stale = self._stale_ttl if stale_ttl is None else stale_ttl
        data, expires_at = encode_entry(self._core, value, seconds, stale)
        await store(self._core, self._prefix + key, data, expires_at, self._tags(tags))
        self._stats.sets += 1

    async def set_many(
        self,
        items: Mapping[str, Any],
        ttl: TTL | _Default = DEFAULT,
        *,
        tags: Iterable[str] = (),
        stale_ttl: float | None = None,
    ) -> None:
        """Store several values in one shared-tier round trip; nothing is written if one of
        them cannot be encoded."""
        seconds = self._ttl(ttl)
        stale = self._stale_ttl if stale_ttl is None else stale_ttl
        await self._core.ready()
        full_tags = self._tags(tags)
        rows = [
            (self._prefix + key, *encode_entry(self._core, value, seconds, stale))
            for key, value in items.items()
        ]
        for full, data, _ in rows:
            self._local.put(full, data, tags=full_tags)
        keys = [full for full, _, _ in rows]
        await self._core.shared_write(
            lambda s: s.set_many(rows, full_tags), keys=keys, budget=self._bulk(len(rows))
        )
        self._stats.sets += len(rows)

    async def delete(self, *keys: str) -> int:
        """Remove keys from both tiers and from every other process's local tier."""
        await self._core.ready()
        fulls = [self._prefix + key for key in keys]
        local = self._local.delete_many(fulls)
        deleted = await self._core.shared_write(
            lambda s: s.delete(fulls), keys=fulls, budget=self._bulk(len(fulls))
        )
        self._stats.deletes += len(fulls)
        return local if deleted is FAILED or self._core.shared is None else deleted  # type: ignore[return-value]

    async def incr(self, key: str, by: int = 1) -> int:
        """Add ``by`` to the integer at ``key`` (0 if absent) and return the result."""
        full = self._prefix + key
        if self._core.shared is None:
            return self._incr_local(full, by)
        result = await self._core.shared_write(lambda s: s.incr(full, by), keys=[full])
        self._local.delete(full)
        if result is FAILED:
            raise CacheUnavailableError(f"cannot increment {key!r}: the shared tier is unreachable")
        return result  # type: ignore[return-value]

    async def decr(self, key: str, by: int = 1) -> int:
        return await self.incr(key, -by)

    def _incr_local(self, full: str, by: int) -> int:
        entry = self._local.get(full)
        current = 0 if entry is None else decode(entry.body, None)
        if (
            not isinstance(current, int)
            or isinstance(current, bool)
            or (entry is not None and has_header(entry.data))  # written by set(), as elsewhere
        ):
            raise BadInputError(f"cannot increment {full!r}: {NOT_A_COUNTER}")
        expires_at = NEVER if entry is None else entry.expires_at
        self._local.put(full, encode_plain(current + by), expires_at, entry.tags if entry else ())
        return current + by

    async def expire(self, key: str, ttl: TTL) -> bool:
        """Give ``key`` a new TTL (None: never expires); False if there is no such key."""
        seconds = self._ttl(ttl)
        full = self._prefix + key
        now = self._clock.now_ms()
        fresh_until = 0 if seconds is None else now + int(seconds * 1000)
        expires_at = None if seconds is None else fresh_until + int(self._stale_ttl * 1000)
        if self._core.shared is None:
            entry = self._local.get(full)
            if entry is None:
                return False
            data = (
                with_expiry(entry.data, fresh_until, expires_at or 0)
                if has_header(entry.data)
                else entry.data
            )
            self._local.put(full, data, (expires_at / 1000) if expires_at else NEVER, entry.tags)
            return True
        found = await self._core.shared_call(lambda s: s.get(full))
        self._local.delete(full)
        if not isinstance(found, bytes):
            return False
        data = found
        if not has_header(data):  # a counter
            return (
                await self._core.shared_write(lambda s: s.expire(full, expires_at), keys=[full])
                is True
            )
        data = with_expiry(data, fresh_until, expires_at or 0)
        await self._core.shared_write(
            lambda s: s.set_many([(full, data, expires_at)], []), keys=[full]
        )
        return True

    async def invalidate_tags(self, *tags: str) -> int:
        """Delete every key written with any of ``tags``, everywhere."""
        await self._core.ready()
        full_tags = self._tags(tags)
        self._local.invalidated_tags(full_tags)
        doomed = self._local.keys_tagged(full_tags)
        self._local.delete_many(doomed)
        keys = await self._core.shared_write(lambda s: s.invalidate_tags(full_tags), tags=full_tags)
        if keys is FAILED or self._core.shared is None:
            return len(doomed)
        self._local.delete_many(keys)  # type: ignore[arg-type]
        return len(keys)  # type: ignore[arg-type]

    async def delete_matching(self, pattern: str) -> int:
        """Delete keys of this namespace matching a glob (``user:*``), in batches (SCAN)."""
        await self._core.ready()
        doomed = self._local.delete_matching(glob_regex(self._prefix, pattern))
        prefix = self._prefix
        deleted = await self._core.shared_write(
            lambda s: s.delete_matching(prefix, pattern, 500),
            patterns=[(prefix, pattern)],
            budget=self._core.bulk_budget,
        )
        return len(doomed) if deleted is FAILED or self._core.shared is None else deleted  # type: ignore[return-value]

    async def clear(self) -> int:
        """Delete every key of this namespace."""
        return await self.delete_matching("*")

    # -- compute on miss -------------------------------------------------------

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        ttl: TTL | _Default = DEFAULT,
        *,
        tags: Iterable[str] = (),
        stale_ttl: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
        type: Any = None,
    ) -> T:
        """The cached value, or ``await factory()`` stored under ``key`` (computed once
        across processes however many callers miss at once)."""
        resolver = self._resolver
        recipe = resolver.recipe(self._prefix + key, factory, ttl, tags, stale_ttl, hard_timeout)
        result: T = await resolver.resolve(recipe, decoder_for(type), soft_timeout)
        return result

    # -- decorators ------------------------------------------------------------

    def cached(
        self,
        ttl: TTL | _Default = DEFAULT,
        *,
        key: str | None = None,
        tags: Sequence[str] = (),
        stale_ttl: float | None = None,
        soft_timeout: float | None = None,
        hard_timeout: float | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Cache an async function's result: ``@cache.cached(ttl=60, key="user:{user_id}")``.

        ``key`` and ``tags`` are templates over the parameters, compiled once
        here. The result is decoded as the function's return annotation
        (dataclasses, Structs and datetimes come back as such).
        """
        return decorators.cached(
            self,
            self._resolver,
            ttl,
            key=key,
            tags=tags,
            stale_ttl=stale_ttl,
            soft_timeout=soft_timeout,
            hard_timeout=hard_timeout,
        )

    def evict(
        self, *, key: str | None = None, tags: Sequence[str] = ()
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """After the function returns, delete ``key`` (a template) and the ``tags``."""
        return decorators.evict(self, key=key, tags=tags)

    def put(
        self,
        ttl: TTL | _Default = DEFAULT,
        *,
        key: str | None = None,
        tags: Sequence[str] = (),
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Always run the function and store its result under ``key`` (a template)."""
        return decorators.put(self, self._resolver, ttl, key=key, tags=tags)

    def response(
        self,
        ttl: TTL | _Default = DEFAULT,
        *,
        vary_query: Sequence[str] = (),
        vary_headers: Sequence[str] = (),
        tags: Sequence[str] = (),
        stale_ttl: float = 0.0,
        statuses: Sequence[int] = (200,),
        cache_authenticated: bool = False,
    ) -> Callable[[E], E]:
        """Cache a Starlette/FastAPI endpoint's responses (see ``conveyor.cache.http``)."""
        return http.cached_response(
            self,
            self._resolver,
            ttl,
            vary_query=vary_query,
            vary_headers=vary_headers,
            tags=tags,
            stale_ttl=stale_ttl,
            statuses=statuses,
            cache_authenticated=cache_authenticated,
        )

    def invalidates(self, *tags: str) -> Callable[[E], E]:
        """After a write endpoint answers 2xx, drop the cached responses tagged ``tags``."""
        return http.invalidates(self, tags)

    # -- stats and health ------------------------------------------------------

    def stats(self) -> NamespaceStats:
        """This namespace's counters (hits, misses, stale, hit_rate...)."""
        return self._stats

    def stats_by_namespace(self) -> dict[str, NamespaceStats]:
        return dict(self._core.stats)

    @property
    def degraded(self) -> bool:
        """True while the shared tier is unreachable (the circuit is open)."""
        return self._core.shared is not None and self._core.breaker.is_open

    async def check_health(self) -> CheckResult:
        """OK, or DEGRADED while the shared tier is unreachable (served from the local tier)."""
        core = self._core
        if core.shared is None:
            return CheckResult(Status.OK, "local tier only")
        try:
            async with asyncio.timeout(max(core.budget, 1.0)):
                await core.open()
                await core.shared.ping()
        except Exception as exc:
            return CheckResult(
                Status.DEGRADED, f"shared tier unreachable ({type(exc).__name__}); serving local"
            )
        if core.breaker.is_open:
            return CheckResult(Status.DEGRADED, "circuit open; serving from the local tier")
        return CheckResult(Status.OK, mask_url(self.url))
