"""Rate limits on every store, on a manual clock.

The rule is written three times (Python for memory, SQLite and the per-process
limiter; Lua for Redis; PL/pgSQL for PostgreSQL): every test here runs on each
store, so they stay one rule. Times are chosen against windows aligned to the clock's start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor import (
    BadInputError,
    Conveyor,
    ProgrammingError,
    RateLimitedError,
    RatePolicy,
)
from conveyor.clock import ManualClock
from conveyor.stores.ratelimit import Algorithm, Hit

START_MS = 1_800_000_000_000 - 1_800_000_000_000 % 3_600_000
"""A whole hour: every window of the tests starts at the clock's start."""


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[Conveyor]:
    # A budget that a loaded machine never runs past: these tests are about what the
    # store decides, and a check past its budget would be decided in this process.
    app = Conveyor(
        store_url, clock=ManualClock(START_MS), rate_limit_budget=10.0, log_level="WARNING"
    )
    async with app:
        yield app
        assert app.rate_limits.metrics.store_failures == 0


def clock_of(app: Conveyor) -> ManualClock:
    assert isinstance(app.clock, ManualClock)
    return app.clock


async def allowed(app: Conveyor, policies: list[str], key: str = "user:1", **kw: object) -> bool:
    decision = await app.rate_limits.check(*policies, key=key, **kw)  # type: ignore[arg-type]
    return decision.allowed


# -- GCRA ------------------------------------------------------------------------------


async def test_gcra_admits_a_burst_of_the_limit_then_one_per_interval(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("api", "5/10s"))  # one request per 2 s, 5 at once
    results = [await allowed(app, ["api"]) for _ in range(6)]
    assert results == [True] * 5 + [False]

    denied = await app.rate_limits.check("api", key="user:1")
    (quota,) = denied.quotas
    assert (quota.limit, quota.window, quota.remaining) == (5, 10.0, 0)
    assert quota.retry_after == pytest.approx(2.0)
    assert quota.reset == pytest.approx(10.0)
    assert denied.violated == [quota] and denied.retry_after == pytest.approx(2.0)

    clock_of(app).advance(1.999)
    assert not await allowed(app, ["api"])
    clock_of(app).advance(0.001)
    assert await allowed(app, ["api"])
    assert not await allowed(app, ["api"])


async def test_gcra_remaining_counts_down_and_refills_with_time(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("api", "20/minute"))
    decisions = [await app.rate_limits.check("api", key="k") for _ in range(3)]
    assert [d.quotas[0].remaining for d in decisions] == [19, 18, 17]
    assert decisions[-1].quotas[0].reset == pytest.approx(9.0)  # 3 requests x 3 s
    clock_of(app).advance(6)
    usage = await app.rate_limits.usage("api", "k")
    assert usage.remaining == 19 and usage.reset == pytest.approx(3.0)


async def test_gcra_burst_below_the_limit_spreads_requests(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("api", "60/minute", burst=2))
    assert [await allowed(app, ["api"]) for _ in range(3)] == [True, True, False]
    clock_of(app).advance(1)
    assert await allowed(app, ["api"])


async def test_a_cost_takes_several_units_and_a_cost_over_the_burst_is_refused(
    app: Conveyor,
) -> None:
    app.rate_limits.add(RatePolicy("api", "10/10s"))
    first = await app.rate_limits.check("api", key="k", cost=7)
    assert first.allowed and first.quotas[0].remaining == 3
    denied = await app.rate_limits.check("api", key="k", cost=4)
    assert not denied.allowed and denied.quotas[0].remaining == 3
    assert denied.retry_after == pytest.approx(1.0)
    with pytest.raises(BadInputError, match="more than"):
        await app.rate_limits.check("api", key="k", cost=11)


# -- windows ---------------------------------------------------------------------------


async def test_fixed_window_counts_per_window_and_resets_at_its_end(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("login", "3/minute", algorithm="fixed-window"))
    clock_of(app).advance(50)
    assert [await allowed(app, ["login"]) for _ in range(4)] == [True, True, True, False]
    denied = await app.rate_limits.check("login", key="user:1")
    assert denied.retry_after == pytest.approx(10.0) and denied.quotas[0].reset == 10.0
    clock_of(app).advance(10)
    assert [await allowed(app, ["login"]) for _ in range(4)] == [True, True, True, False]


async def test_sliding_window_weighs_the_previous_window_by_its_overlap(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("search", "10/minute", algorithm="sliding-window"))
    assert all([await allowed(app, ["search"]) for _ in range(10)])
    assert not await allowed(app, ["search"])
    clock_of(app).advance(90)  # half of the full previous window still counts: 5
    assert [await allowed(app, ["search"]) for _ in range(6)] == [True] * 5 + [False]
    denied = await app.rate_limits.check("search", key="user:1")
    quota = denied.quotas[0]
    assert (quota.remaining, quota.violated) == (0, True)
    # 5 + 10 * (60 - 30 - w) / 60 + 1 <= 10  ->  w >= 6 s
    assert quota.retry_after == pytest.approx(6.0)
    clock_of(app).advance(6)
    assert await allowed(app, ["search"])


async def test_sliding_window_forgets_everything_after_two_windows(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("search", "2/10s", algorithm="sliding-window"))
    assert [await allowed(app, ["search"]) for _ in range(3)] == [True, True, False]
    clock_of(app).advance(20)
    usage = await app.rate_limits.usage("search", "user:1")
    assert (usage.remaining, usage.reset) == (2, 0.0)


# -- concurrency -----------------------------------------------------------------------


async def test_concurrency_caps_requests_in_flight_until_one_is_released(app: Conveyor) -> None:
    exports = app.rate_limits.add(
        RatePolicy("exports", {"free": 2}, algorithm="concurrency", lease=30)
    )
    limiter = app.rate_limits.limiter(exports)
    first = await limiter.check("acct", tier="free")
    second = await limiter.check("acct", tier="free")
    third = await limiter.check("acct", tier="free")
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert third.quotas[0].remaining == 0 and not third.holds_slots
    assert third.quotas[0].retry_after == pytest.approx(30.0)  # the oldest lease's end
    await first.release()
    await first.release()  # once only
    again = await limiter.check("acct", tier="free")
    assert again.allowed and again.quotas[0].remaining == 0
    assert not (await limiter.check("acct", tier="free")).allowed


async def test_a_crashed_holders_slot_comes_back_when_its_lease_ends(app: Conveyor) -> None:
    exports = app.rate_limits.add(RatePolicy("exports", 1, algorithm="concurrency", lease=30))
    limiter = app.rate_limits.limiter(exports)
    assert (await limiter.check("acct")).allowed  # never released: its holder "crashed"
    clock_of(app).advance(29.999)
    assert not (await limiter.check("acct")).allowed
    clock_of(app).advance(0.001)
    assert (await limiter.check("acct")).allowed


async def test_a_token_that_holds_a_slot_takes_it_again_and_renews_its_lease(
    app: Conveyor,
) -> None:
    store = app.backend.rate_limits
    hit = Hit("acct", "exports", Algorithm.CONCURRENCY, 1, 30_000, 0, 0, 1)
    assert (await store.check([hit], "t1")).admitted
    clock_of(app).advance(20)
    again = await store.check([hit], "t1")  # the same holder: its one slot, a new lease
    assert again.admitted and again.states[0].value == 1
    assert again.states[0].extra == START_MS + 50_000
    assert not (await store.check([hit], "t2")).admitted
    clock_of(app).advance(20)  # past the first lease, within the second
    assert not (await store.check([hit], "t2")).admitted


async def test_hold_releases_its_slot_however_the_block_ends(app: Conveyor) -> None:
    exports = app.rate_limits.add(RatePolicy("exports", 1, algorithm="concurrency"))
    limiter = app.rate_limits.limiter(exports)

    async def fail_while_holding() -> None:
        async with limiter.hold("acct"):
            with pytest.raises(RateLimitedError) as refused:
                await limiter.hit("acct")
            assert refused.value.decision is not None
            assert refused.value.decision.violated[0].policy == "exports"
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail_while_holding()
    async with limiter.hold("acct") as decision:
        assert decision.allowed


# -- several policies ------------------------------------------------------------------


async def test_a_request_refused_by_one_policy_takes_nothing_from_the_others(
    app: Conveyor,
) -> None:
    app.rate_limits.add(
        RatePolicy("api", "10/minute"),
        RatePolicy("expensive", "1/hour", algorithm="fixed-window"),
        RatePolicy("search", "10/minute", algorithm="sliding-window"),
        RatePolicy("exports", 5, algorithm="concurrency"),
    )
    policies = ["api", "search", "exports", "expensive"]
    assert await allowed(app, policies)
    for _ in range(3):
        denied = await app.rate_limits.check(*policies, key="user:1")
        assert not denied.allowed and not denied.holds_slots
        assert [q.policy for q in denied.violated] == ["expensive"]
        assert [q.remaining for q in denied.quotas] == [9, 9, 4, 0]
    assert (await app.rate_limits.usage("api", "user:1")).remaining == 9
    assert (await app.rate_limits.usage("search", "user:1")).remaining == 9
    assert (await app.rate_limits.usage("exports", "user:1")).remaining == 4


async def test_every_violated_policy_is_named_and_the_wait_is_the_longest(
    app: Conveyor,
) -> None:
    app.rate_limits.add(RatePolicy("a", "1/10s"), RatePolicy("b", "1/minute"))
    assert await allowed(app, ["a", "b"])
    denied = await app.rate_limits.check("a", "b", key="user:1")
    assert [q.policy for q in denied.violated] == ["a", "b"]
    assert denied.retry_after == pytest.approx(60.0)


async def test_one_step_charges_several_subjects_all_or_nothing(app: Conveyor) -> None:
    """At the store: a user's and an address's quota in one check (on a cluster two
    slots, refunded when the second refuses)."""
    store = app.backend.rate_limits

    def hit(subject: str, policy: str, limit: int) -> Hit:
        return Hit(subject, policy, Algorithm.FIXED_WINDOW, limit, 60_000, 0, limit, 1)

    pair = [hit("user:1", "per-user", 5), hit("ip:10.0.0.1", "per-ip", 1)]
    first = await store.check(pair, "")
    assert first.admitted
    second = await store.check(pair, "")
    assert not second.admitted
    assert [s.allowed for s in second.states] == [True, False]
    assert [s.value for s in second.states] == [1, 1]
    peeked = await store.peek(pair)
    assert [s.value for s in peeked.states] == [1, 1]


# -- tiers -----------------------------------------------------------------------------


async def test_each_tier_gets_its_own_rate_and_the_first_tier_is_the_default(
    app: Conveyor,
) -> None:
    app.rate_limits.add(RatePolicy("api", {"free": "2/minute", "pro": "4/minute"}))
    assert [await allowed(app, ["api"], key="a", tier="pro") for _ in range(5)] == [True] * 4 + [
        False
    ]
    assert [await allowed(app, ["api"], key="b") for _ in range(3)] == [True, True, False]
    decision = await app.rate_limits.check("api", key="b")
    assert decision.tier == "free" and decision.quotas[0].tier == "free"
    with pytest.raises(BadInputError, match="no rate for tier 'gold'"):
        await app.rate_limits.check("api", key="b", tier="gold")
    assert app.rate_limits.tiers == ["free", "pro"]
    assert app.rate_limits.next_tier("free") == "pro" and app.rate_limits.next_tier("pro") is None


async def test_an_upgrade_keeps_what_was_used(app: Conveyor) -> None:
    """Counts carry over to the new tier's rate; GCRA keeps usage as time, so an
    upgraded key waits less (here 15 s for pro, against 30 s for free)."""
    app.rate_limits.add(
        RatePolicy("daily", {"free": "2/day", "pro": "4/day"}, algorithm="fixed-window"),
        RatePolicy("api", {"free": "2/minute", "pro": "4/minute"}),
    )
    assert [await allowed(app, ["daily"], tier="free") for _ in range(3)] == [True, True, False]
    assert [await allowed(app, ["daily"], tier="pro") for _ in range(3)] == [True, True, False]
    assert [await allowed(app, ["api"], tier="free") for _ in range(3)] == [True, True, False]
    clock_of(app).advance(15)
    assert not await allowed(app, ["api"], tier="free")
    assert await allowed(app, ["api"], tier="pro")


# -- operations ------------------------------------------------------------------------


async def test_usage_changes_nothing_and_reset_forgets(app: Conveyor) -> None:
    app.rate_limits.add(
        RatePolicy("api", "3/minute"), RatePolicy("exports", 1, algorithm="concurrency")
    )
    assert await allowed(app, ["api", "exports"])
    for _ in range(3):
        usage = await app.rate_limits.usage("api", "user:1")
        assert usage.remaining == 2 and not usage.violated
    assert (await app.rate_limits.usage("exports", "user:1")).remaining == 0
    assert (await app.rate_limits.usage("exports", "user:1")).violated
    await app.rate_limits.reset("api", "user:1")
    await app.rate_limits.reset("exports", "user:1")
    assert (await app.rate_limits.usage("api", "user:1")).remaining == 3
    assert (await app.rate_limits.usage("exports", "user:1")).remaining == 1
    assert (await app.rate_limits.usage("api", "user:2")).remaining == 3


async def test_subjects_and_policies_are_counted_apart(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("a", "1/minute"), RatePolicy("b", "1/minute"))
    assert await allowed(app, ["a"], key="user:1")
    assert await allowed(app, ["a"], key="user:2")
    assert await allowed(app, ["b"], key="user:1")
    assert not await allowed(app, ["a"], key="user:1")


async def test_a_policy_that_changes_algorithm_starts_afresh(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("api", "1/minute"))
    assert await allowed(app, ["api"])
    other = RatePolicy("api", "1/minute", algorithm="fixed-window")
    with pytest.raises(ProgrammingError, match="another policy"):
        app.rate_limits.limiter(other)
    fresh = Conveyor(app.settings.store_url, clock=app.clock, log_level="WARNING")
    async with fresh:
        fresh.rate_limits.add(RatePolicy("api", "1/minute", algorithm="fixed-window"))
        assert (await fresh.rate_limits.check("api", key="user:1")).allowed


async def test_the_decisions_are_counted_by_policy_tier_and_outcome(app: Conveyor) -> None:
    app.rate_limits.add(RatePolicy("api", {"free": "1/minute", "pro": "5/minute"}))
    for _ in range(3):
        await app.rate_limits.check("api", key="user:1", tier="free")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families((await app.metrics_text()).decode())
        for sample in family.samples
    }

    def decisions(outcome: str) -> float:
        labels = {"policy": "api", "tier": "free", "outcome": outcome, "store": "shared"}
        return samples[("conveyor_ratelimit_decisions_total", tuple(sorted(labels.items())))]

    assert (decisions("allowed"), decisions("denied")) == (1, 2)
    assert samples[("conveyor_ratelimit_degraded", ())] == 0
