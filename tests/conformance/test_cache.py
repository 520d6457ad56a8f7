"""The cache's behaviour, the same on every tier layout.

``memory`` is the local tier alone, ``sqlite`` local + a SQLite file, ``redis``
and ``redis-cluster`` local + Redis. Tests that need a second process's view
use a second ``Cache`` on the same URL (its own local tier, connections and
origin), which is what another process has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from conveyor import (
    BadInputError,
    Cache,
    CacheTimeoutError,
    Conveyor,
    ProgrammingError,
    SerializationError,
)
from conveyor.clock import ManualClock

CacheFactory = Callable[..., Cache]


@pytest.fixture
async def make_cache(store_url: str) -> AsyncIterator[CacheFactory]:
    caches: list[Cache] = []

    def make(**options: Any) -> Cache:
        # These tests pin what the cache does, not how long a shared call may take
        # (tests/integration/test_cache_outage.py and tests/unit/test_cache_budget.py
        # do): a generous budget, so that a loaded machine (two suites on two cores)
        # does not turn a slow commit into a degraded call.
        options.setdefault("budget", 5.0)
        cache = Cache(store_url, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        await cache.close()


@pytest.fixture
def shared(store_url: str) -> bool:
    return not store_url.startswith("memory://")


@dataclasses.dataclass
class User:
    id: int
    name: str
    born: dt.date


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


# -- the basic API ---------------------------------------------------------------


async def test_set_get_delete_exists(make_cache: CacheFactory) -> None:
    cache = make_cache()
    assert await cache.get("k") is None
    assert await cache.get("k", "fallback") == "fallback"
    await cache.set("k", {"a": [1, 2, None], "b": "x"})
    assert await cache.get("k") == {"a": [1, 2, None], "b": "x"}
    assert await cache.exists("k")
    assert await cache.delete("k") == 1
    assert not await cache.exists("k")
    assert await cache.get("k") is None
    assert await cache.delete("k") == 0


async def test_a_cached_none_is_a_hit(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await cache.set("none", None)
    assert await cache.exists("none")
    assert await cache.get("none", "fallback") is None


async def test_a_value_read_is_a_copy(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await cache.set("list", [1, 2])
    got = await cache.get("list")
    got.append(3)
    assert await cache.get("list") == [1, 2]


async def test_values_expire_after_their_ttl(make_cache: CacheFactory) -> None:
    clock = ManualClock()
    cache = make_cache(clock=clock)
    await cache.set("short", 1, ttl=0.2)
    await cache.set("long", 2, ttl=60)
    await cache.set("forever", 3, ttl=None)
    assert await cache.get("short") == 1
    clock.advance(0.3)
    assert await cache.get("short") is None
    assert await cache.get("long") == 2
    assert await cache.ttl("forever") == math.inf
    assert await cache.ttl("missing") is None
    left = await cache.ttl("long")
    assert left is not None and 50 < left <= 60


async def test_ttl_presets_and_their_configuration(make_cache: CacheFactory) -> None:
    cache = make_cache(
        presets={"SHORT": 60, "MEDIUM": 300, "LONG": 1800, "HOUR": 3600, "DAY": 86400, "TINY": 5}
    )
    await cache.set("a", 1, ttl="SHORT")
    await cache.set("b", 1, ttl="tiny")
    a, b = await cache.ttl("a"), await cache.ttl("b")
    assert a is not None and 50 < a <= 60
    assert b is not None and 0 < b <= 5
    with pytest.raises(ProgrammingError, match="unknown TTL preset"):
        await cache.set("c", 1, ttl="FORTNIGHT")


async def test_get_many_and_set_many(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await cache.set_many({"a": 1, "b": [2], "c": {"x": 3}}, ttl=60)
    assert await cache.get_many(["a", "b", "missing", "c"]) == [1, [2], None, {"x": 3}]
    other = make_cache()  # nothing in its local tier: all from the shared one (or misses)
    values = await other.get_many(["a", "b", "c"])
    assert values == ([1, [2], {"x": 3}] if not other.url.startswith("memory") else [None] * 3)


async def test_incr_and_decr(make_cache: CacheFactory) -> None:
    cache = make_cache()
    assert await cache.incr("n") == 1
    assert await cache.incr("n", 10) == 11
    assert await cache.decr("n", 2) == 9
    assert await cache.get("n") == 9
    await cache.set("text", "abc")
    with pytest.raises(BadInputError, match="not a counter"):
        await cache.incr("text")
    assert await cache.get("text") == "abc"
    # A value written by set() is not a counter, on every store (even an integer).
    await cache.set("five", 5)
    with pytest.raises(BadInputError, match="not a counter"):
        await cache.incr("five")
    assert await cache.get("five") == 5


async def test_expire_gives_a_key_a_new_ttl(make_cache: CacheFactory) -> None:
    clock = ManualClock()
    cache = make_cache(clock=clock)
    await cache.set("k", "v", ttl=60)
    assert await cache.expire("k", 0.2)
    assert not await cache.expire("missing", 10)
    clock.advance(0.3)
    assert await cache.get("k") is None
    await cache.set("p", "v", ttl=60)
    assert await cache.expire("p", None)
    assert await cache.ttl("p") == math.inf


async def test_namespaces_keep_keys_tags_and_stats_apart(make_cache: CacheFactory) -> None:
    cache = make_cache()
    users, orders = cache.namespace("users"), cache.namespace("orders")
    await users.set("1", "ada", tags=["t"])
    await orders.set("1", "order-1", tags=["t"])
    assert await users.get("1") == "ada"
    assert await orders.get("1") == "order-1"
    await users.invalidate_tags("t")
    assert await users.get("1") is None
    assert await orders.get("1") == "order-1"
    await orders.clear()
    assert await orders.get("1") is None
    assert users.stats().misses == 1
    assert orders.stats().local_hits == 2
    with pytest.raises(BadInputError):
        cache.namespace("a:b")


@pytest.mark.parametrize("name", ["tag", "lock"])
async def test_namespaces_the_shared_tier_reserves_are_refused(
    make_cache: CacheFactory, store_url: str, name: str
) -> None:
    cache = make_cache()
    with pytest.raises(BadInputError, match="reserved"):
        cache.namespace(name)
    with pytest.raises(BadInputError, match="reserved"):
        Cache(store_url, namespace=name)
    users = cache.namespace("users")  # so nothing can clear or overwrite users' tag sets
    await users.set("1", "ada", tags=["team"])
    await users.invalidate_tags("team")
    assert await make_cache().namespace("users").get("1") is None


async def test_invalidate_by_tag(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await cache.set("u1", 1, tags=["team:1"])
    await cache.set("u2", 2, tags=["team:1", "admins"])
    await cache.set("u3", 3, tags=["team:2"])
    await cache.invalidate_tags("team:1")
    assert await cache.get_many(["u1", "u2", "u3"]) == [None, None, 3]


async def test_pattern_invalidation_in_batches(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await cache.set_many({f"user:{i}": i for i in range(1200)}, ttl=60)
    await cache.set_many({"order:1": 1, "user": 0}, ttl=60)
    assert await cache.delete_matching("user:*") == 1200
    assert await cache.get("user:7") is None
    assert await cache.get_many(["order:1", "user"]) == [1, 0]


async def test_unserializable_values_raise_a_typed_error(make_cache: CacheFactory) -> None:
    cache = make_cache()
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        await cache.set("bad", object())
    with pytest.raises(SerializationError):
        await cache.set_many({"ok": 1, "bad": {1, 2}.__iter__()})
    assert await cache.get("ok") is None  # nothing half-written


async def test_large_values_are_compressed_and_read_back(make_cache: CacheFactory) -> None:
    cache = make_cache(compress_threshold=100)
    big = {"rows": ["x" * 50] * 200}
    await cache.set("big", big)
    assert await cache.get("big") == big
    assert await make_cache().get("big") in (big, None)


async def test_typed_get_decodes_into_the_type(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await cache.set("user", User(1, "ada", dt.date(1815, 12, 10)))
    assert await cache.get("user", type=User) == User(1, "ada", dt.date(1815, 12, 10))


# -- get_or_set, stampede, stale ----------------------------------------------------


async def test_get_or_set_computes_once_for_concurrent_misses(make_cache: CacheFactory) -> None:
    cache = make_cache()
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "computed"

    results = await asyncio.gather(*(cache.get_or_set("k", factory, ttl=60) for _ in range(200)))
    assert results == ["computed"] * 200
    assert calls == 1
    assert await cache.get_or_set("k", factory, ttl=60) == "computed"
    assert calls == 1


async def test_two_caches_on_one_store_compute_once(make_cache: CacheFactory, shared: bool) -> None:
    if not shared:
        pytest.skip("local-only caches share nothing")
    first, second = make_cache(), make_cache()
    calls = 0

    async def factory() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return 42

    both = [first.get_or_set("k", factory, ttl=60), second.get_or_set("k", factory, ttl=60)]
    assert await asyncio.gather(*both) == [42, 42]
    assert calls == 1


async def test_a_failing_factory_raises_to_every_waiter_and_caches_nothing(
    make_cache: CacheFactory,
) -> None:
    cache = make_cache()

    async def factory() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("boom")

    results = await asyncio.gather(
        *(cache.get_or_set("k", factory) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert not await cache.exists("k")


async def test_stale_while_revalidate(make_cache: CacheFactory) -> None:
    clock = ManualClock()
    cache = make_cache(clock=clock)
    version = 0

    async def factory() -> int:
        nonlocal version
        version += 1
        return version

    assert await cache.get_or_set("k", factory, ttl=0.2, stale_ttl=30) == 1
    clock.advance(0.3)
    assert await cache.get("k") is None  # stale is not served unless asked for
    assert await cache.get("k", allow_stale=True) == 1
    assert await cache.get_or_set("k", factory, ttl=0.2, stale_ttl=30) == 1  # stale, refreshing
    await eventually(lambda: _equals(cache.get("k"), 2))
    assert cache.stats().stale >= 1


async def _equals(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)


async def test_hard_timeout_raises_and_soft_timeout_serves_stale(make_cache: CacheFactory) -> None:
    clock = ManualClock()  # expiry by the clock; the timeouts themselves are real time
    cache = make_cache(clock=clock)

    async def slow() -> int:
        await asyncio.sleep(5)
        return 2

    with pytest.raises(CacheTimeoutError):
        await cache.get_or_set("k", slow, ttl=60, hard_timeout=0.1)
    assert not await cache.exists("k")

    async def one() -> int:
        return 1

    await cache.get_or_set("s", one, ttl=0.1, stale_ttl=60)
    clock.advance(0.2)

    async def slow_refresh() -> int:
        await asyncio.sleep(0.3)
        return 2

    assert await cache.get_or_set("s", slow_refresh, ttl=60, soft_timeout=0.05) == 1
    await eventually(lambda: _equals(cache.get("s"), 2))


async def test_early_refresh_recomputes_before_expiry(make_cache: CacheFactory) -> None:
    cache = make_cache(early_refresh_beta=1e9)  # so large that every hit refreshes
    calls = 0

    async def factory() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    assert await cache.get_or_set("k", factory, ttl=60) == 1
    assert await cache.get_or_set("k", factory, ttl=60) == 1  # served, refresh started
    await eventually(lambda: _equals(cache.get("k"), 2))
    assert cache.stats().early_refreshes >= 1


async def test_a_miss_joining_an_early_refresh_that_found_the_lock_taken_computes(
    make_cache: CacheFactory, shared: bool
) -> None:
    if not shared:
        pytest.skip("local-only caches have no cross-process lock")
    from conveyor.cache.stampede import encode_entry, store

    # So large that every hit refreshes: at 1.0, one draw in about 170 skipped the refresh.
    cache, other = make_cache(early_refresh_beta=1e9), make_cache()
    await cache.open()
    await other.open()
    full = cache.full_key("k")
    other_tier = other._core.shared
    assert other_tier is not None
    token = await other_tier.try_lock(full, 30_000)  # another process computes k
    assert token is not None
    # A value that took hours to compute.
    data, expires_at = encode_entry(cache._core, "old", 60, 5.0, compute_ms=10_000_000)
    await store(cache._core, full, data, expires_at, [])
    tier = cache._core.shared
    assert tier is not None
    real_try_lock, gate = tier.try_lock, asyncio.Event()

    async def gated_try_lock(key: str, ttl_ms: int) -> Any:
        await gate.wait()
        return await real_try_lock(key, ttl_ms)

    tier.try_lock = gated_try_lock  # type: ignore[method-assign]

    async def factory() -> str:
        return "new"

    assert await cache.get_or_set("k", factory, ttl=60) == "old"  # starts the early refresh
    refresh = cache._core.inflight[full]
    cache.local.delete(full)  # the next call misses locally and joins the refresh
    waiter = asyncio.create_task(cache.get_or_set("k", factory, ttl=60, stale_ttl=0))
    await asyncio.sleep(0)
    gate.set()
    assert await refresh is None  # the lock was taken: the refresh gave up
    await other_tier.unlock(full, token)
    assert await waiter in ("old", "new")


# -- decorators -----------------------------------------------------------------


async def test_cached_decorator_keys_by_template_and_returns_typed_values(
    make_cache: CacheFactory,
) -> None:
    cache = make_cache()
    calls: list[int] = []

    @cache.cached(ttl=60, key="user:{user_id}", tags=["team:{team}"])
    async def load_user(user_id: int, team: int = 0, *, verbose: bool = False) -> User:
        calls.append(user_id)
        return User(user_id, f"user-{user_id}", dt.date(2000, 1, user_id))

    assert await load_user(1) == User(1, "user-1", dt.date(2000, 1, 1))
    assert await load_user(user_id=1, verbose=True) == User(1, "user-1", dt.date(2000, 1, 1))
    assert isinstance(await load_user(1), User)
    assert await load_user(2, team=5) == User(2, "user-2", dt.date(2000, 1, 2))
    assert calls == [1, 2]
    assert await cache.get("user:1", type=User) == User(1, "user-1", dt.date(2000, 1, 1))
    await cache.invalidate_tags("team:5")
    await load_user(2, 5)
    assert calls == [1, 2, 2]
    assert load_user.__name__ == "load_user"


async def test_cached_without_a_template_keys_on_every_argument(make_cache: CacheFactory) -> None:
    cache = make_cache()
    calls = 0

    @cache.cached(ttl=60)
    async def add(a: int, b: int) -> int:
        nonlocal calls
        calls += 1
        return a + b

    assert [await add(1, 2), await add(1, 2), await add(2, 1), await add(a=1, b=2)] == [3, 3, 3, 3]
    assert calls == 2


async def test_evict_and_put_decorators(make_cache: CacheFactory) -> None:
    cache = make_cache()
    store = {1: "ada"}

    @cache.cached(ttl=60, key="name:{uid}")
    async def name(uid: int) -> str:
        return store[uid]

    @cache.evict(key="name:{uid}")
    async def rename(uid: int, new: str) -> None:
        store[uid] = new

    @cache.put(ttl=60, key="name:{uid}")
    async def set_name(uid: int, new: str) -> str:
        store[uid] = new
        return new

    assert await name(1) == "ada"
    store[1] = "changed behind the cache"
    assert await name(1) == "ada"
    await rename(1, "grace")
    assert await name(1) == "grace"
    await set_name(1, "hopper")
    store[1] = "not read"
    assert await name(1) == "hopper"


def test_decorators_reject_bad_templates_at_decoration(store_url: str) -> None:
    cache = Cache(store_url)
    with pytest.raises(ProgrammingError, match="names no plain parameter"):

        @cache.cached(key="user:{nope}")
        async def f(user_id: int) -> int:
            return user_id

    with pytest.raises(ProgrammingError, match="async function"):

        @cache.cached()  # type: ignore[arg-type]
        def g(x: int) -> int:
            return x


# -- other processes -------------------------------------------------------------


async def test_a_write_removes_the_key_from_other_local_tiers(
    make_cache: CacheFactory, shared: bool
) -> None:
    if not shared:
        pytest.skip("local-only caches share nothing")
    writer, reader = make_cache(), make_cache()
    await writer.open()
    await reader.open()
    await writer.set("k", "v1", ttl=60)
    assert await reader.get("k") == "v1"  # now in the reader's local tier
    await asyncio.sleep(0.1)  # let the first publication pass
    await writer.set("k", "v2", ttl=60)
    await eventually(lambda: _equals(reader.get("k"), "v2"))
    await writer.delete("k")
    await eventually(lambda: _equals(reader.get("k"), None))
    await writer.set("t", 1, tags=["x"])
    assert await reader.get("t") == 1
    await writer.invalidate_tags("x")
    await eventually(lambda: _equals(reader.get("t"), None))
    await writer.set("p:1", 1)
    assert await reader.get("p:1") == 1
    await writer.delete_matching("p:*")
    await eventually(lambda: _equals(reader.get("p:1"), None))


def _hold_shared_replies(cache: Cache) -> tuple[asyncio.Event, asyncio.Event]:
    """Delay the replies of the shared tier's reads: the value is read, then the reader
    resumes only once ``release`` is set (a slow network). Returns (fetched, release)."""
    tier = cache._core.shared
    assert tier is not None
    fetched, release = asyncio.Event(), asyncio.Event()

    def held(real: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any) -> Any:
            data = await real(*args)
            fetched.set()
            await release.wait()
            return data

        return call

    for name in ("get", "get_many"):
        setattr(tier, name, held(getattr(tier, name)))
    return fetched, release


def _release_shared_replies(cache: Cache) -> None:
    for name in ("get", "get_many"):
        delattr(cache._core.shared, name)


async def _not_local(cache: Cache, key: str) -> bool:
    return cache.local.get(cache.full_key(key)) is None


async def _read(cache: Cache, how: str) -> Any:
    if how == "get":
        return await cache.get("k")
    if how == "get_many":
        return (await cache.get_many(["k"]))[0]

    async def factory() -> str:
        return "computed"

    return await cache.get_or_set("k", factory, ttl=60)


@pytest.mark.parametrize("how", ["get", "get_many", "get_or_set"])
async def test_a_read_racing_a_write_does_not_put_the_old_value_back(
    make_cache: CacheFactory, shared: bool, how: str
) -> None:
    if not shared:
        pytest.skip("local-only caches have no shared round trip to race")
    cache = make_cache()
    await cache.open()
    await cache.set("k", "v1", ttl=60)
    cache.local.clear()  # the next read asks the shared tier
    fetched, release = _hold_shared_replies(cache)
    reader = asyncio.create_task(_read(cache, how))
    await fetched.wait()  # the read has v1 in hand
    await cache.set("k", "v2", ttl=60)
    release.set()
    assert await reader == "v1"  # it started before the write: fine
    _release_shared_replies(cache)
    assert await cache.get("k") == "v2"  # the local tier was not refilled with v1


@pytest.mark.parametrize("how", ["invalidate_tags", "delete", "set"])
async def test_a_computation_racing_an_invalidation_does_not_store_its_older_value(
    make_cache: CacheFactory, how: str
) -> None:
    # A request computes a result from the database; meanwhile a write commits and
    # invalidates it (by tag, by key, or with a new value). The computation, begun
    # before the write, must not put its older value in the cache once it ends.
    cache = make_cache()
    computing, finish = asyncio.Event(), asyncio.Event()
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        computing.set()
        await finish.wait()
        return f"computed {calls}"

    reader = asyncio.create_task(cache.get_or_set("k", factory, ttl=60, tags=["t"]))
    await computing.wait()
    if how == "invalidate_tags":
        await cache.invalidate_tags("t")
    elif how == "delete":
        await cache.delete("k")
    else:
        await cache.set("k", "written", ttl=60)
    finish.set()
    assert await reader == "computed 1"  # its caller gets what it computed
    expected = "written" if how == "set" else None
    assert await cache.get("k") == expected
    other = make_cache()  # nor did it reach the shared tier
    assert await other.get("k") == (expected if other._core.shared is not None else None)
    finish.clear()
    if how != "set":  # the next miss computes again
        finish.set()
        assert await cache.get_or_set("k", factory, ttl=60, tags=["t"]) == "computed 2"


@pytest.mark.parametrize("how", ["get", "get_many", "get_or_set"])
async def test_an_invalidation_arriving_during_a_read_is_not_lost(
    make_cache: CacheFactory, shared: bool, how: str
) -> None:
    if not shared:
        pytest.skip("local-only caches share nothing")
    writer, reader = make_cache(), make_cache()
    await writer.open()
    await reader.open()
    await writer.set("k", "v1", ttl=60)
    await writer.set("probe", 1, ttl=60)
    # Let those sets' publications reach the reader before it reads (one arriving late
    # would drop "probe" from its local tier, and the wait below would end too early):
    # invalidations arrive in order, so once a later one (the fence's) is handled, so are they.
    reader.local.put(reader.full_key("fence"), b"1")
    await writer.delete("fence")
    await eventually(lambda: _not_local(reader, "fence"))
    reader.local.clear()
    assert await reader.get("probe") == 1  # in the reader's local tier
    fetched, release = _hold_shared_replies(reader)
    task = asyncio.create_task(_read(reader, how))
    await fetched.wait()  # the reader has v1 in hand
    await writer.set("k", "v2", ttl=60)
    await writer.delete("probe")  # published after k's invalidation
    await eventually(lambda: _not_local(reader, "probe"))  # so k's was handled too
    release.set()
    assert await task == "v1"
    _release_shared_replies(reader)
    assert await reader.get("k") == "v2"


# -- stats, metrics, the app -------------------------------------------------------


async def test_stats_count_hits_misses_and_hit_rate(make_cache: CacheFactory) -> None:
    cache = make_cache()
    await cache.get("missing")
    await cache.set("k", 1)
    await cache.get("k")
    await cache.get("k")
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.sets) == (2, 1, 1)
    assert stats.hit_rate == pytest.approx(2 / 3)
    assert stats.to_dict()["hit_rate"] == pytest.approx(2 / 3)


async def test_app_cache_reports_into_the_app_registry_and_health(
    store_url: str, tmp_path: Any
) -> None:
    app = Conveyor(store_url, log_level="WARNING")
    async with app:
        await app.cache.set("k", 1)
        await app.cache.get("k")
        await app.cache.namespace("users").get("nope")
        text = (await app.metrics_text()).decode()
        assert 'conveyor_cache_hits_total{namespace="default",tier="local"} 1.0' in text
        assert 'conveyor_cache_misses_total{namespace="users"} 1.0' in text
        report = await app.health.readiness()
        assert report.checks["cache"].status.value == "ok"
    assert app._cache is not None and not app._cache._core.background
