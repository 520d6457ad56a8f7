"""The per-process limiter (scope="local", and the fallback of a shared one) and the
cached tier lookup: no store, a manual clock."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import BadInputError, Conveyor, RatePolicy
from conveyor.clock import ManualClock
from conveyor.stores.ratelimit import RateTable


def local_app() -> tuple[Conveyor, ManualClock]:
    clock = ManualClock(1_800_000_000_000 - 1_800_000_000_000 % 3_600_000)
    return Conveyor("memory://", clock=clock), clock


async def test_a_local_limiter_decides_at_once_in_this_process() -> None:
    app, clock = local_app()
    limiter = app.rate_limits.limiter(RatePolicy("api", "3/minute"), scope="local")
    assert [limiter.check_local("k").allowed for _ in range(4)] == [True, True, True, False]
    assert not (await limiter.check("k")).allowed  # the async form counts in the same table
    clock.advance(20)
    decision = limiter.check_local("k")
    assert decision.allowed and not decision.degraded
    assert decision.quotas[0].remaining == 0 and decision.quotas[0].reset == pytest.approx(60)


async def test_a_local_limiter_keeps_the_all_or_nothing_rule() -> None:
    app, _ = local_app()
    limiter = app.rate_limits.limiter(
        RatePolicy("a", "5/minute"),
        RatePolicy("b", "1/minute", algorithm="fixed-window"),
        RatePolicy("c", 3, algorithm="concurrency"),
        scope="local",
    )
    first = limiter.check_local("k")
    assert first.allowed and first.holds_slots
    denied = limiter.check_local("k")
    assert [q.remaining for q in denied.quotas] == [4, 0, 2]
    await first.release()
    assert (await limiter.usage("k")).quotas[2].remaining == 3


async def test_local_counts_are_not_shared_counts() -> None:
    app, _ = local_app()
    api = app.rate_limits.add(RatePolicy("api", "1/minute"))
    local = app.rate_limits.limiter(api, scope="local")
    shared = app.rate_limits.limiter(api)
    assert local.check_local("k").allowed and not local.check_local("k").allowed
    async with app:
        assert (await shared.check("k")).allowed


def test_the_local_table_stays_within_its_bound() -> None:
    table = RateTable(max_keys=100)
    shape = RatePolicy("api", "1/minute").shape(None, 1)
    other = RatePolicy("other", "1/minute", algorithm="fixed-window").shape(None, 1)
    for n in range(1000):
        table.check_one(other if n % 2 else shape, f"user:{n}", 1_000_000 + n, "")
    assert len(table.states) <= 100
    # What has expired goes first: keys of an idle minute ago are all dropped.
    table.check_one(shape, "late", 10_000_000, "")
    table.trim(10_000_000)
    assert list(table.states) == [("api", "late")]


async def test_a_tier_lookup_caches_and_shares_the_applications_answer() -> None:
    app, clock = local_app()
    calls: list[str] = []
    release = asyncio.Event()

    async def tier_for(api_key: str) -> str:
        calls.append(api_key)
        await release.wait()
        return "pro" if api_key.startswith("pro") else "free"

    lookup = app.rate_limits.tier_lookup(tier_for, ttl=60)
    waiting = [asyncio.create_task(lookup("pro-1")) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["pro"] * 5
    assert await lookup("pro-1") == "pro" and calls == ["pro-1"]
    clock.advance(61)
    assert await lookup("pro-1") == "pro" and calls == ["pro-1", "pro-1"]
    lookup.forget("pro-1")
    assert await lookup("pro-1") == "pro" and len(calls) == 3


async def test_a_failed_tier_lookup_is_not_cached_and_a_sync_function_works() -> None:
    app, _ = local_app()
    answers = iter([RuntimeError("billing is down"), "free"])

    def tier_for(user: int) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, str)
        return answer

    lookup = app.rate_limits.tier_lookup(tier_for, max_entries=1)
    with pytest.raises(RuntimeError, match="billing"):
        await lookup(7)
    assert await lookup(7) == "free"
    assert lookup.calls == 2


async def test_a_bad_key_is_a_clear_error_on_every_path() -> None:
    app, _ = local_app()
    api = app.rate_limits.add(RatePolicy("api", "3/minute"))
    for limiter in (app.rate_limits.limiter(api, scope="local"), app.rate_limits.limiter(api)):
        for key in ("", "x" * 513, 5):
            with pytest.raises(BadInputError, match="key"):
                await limiter.check(key)  # type: ignore[arg-type]
            with pytest.raises(BadInputError, match="key"):
                limiter.check_local(key)  # type: ignore[arg-type]
