"""Rates, policies and settings: what is accepted, and the clear error for what is not."""

from __future__ import annotations

import pytest

from conveyor import BadInputError, ConfigError, Conveyor, Rate, RatePolicy
from conveyor.stores.ratelimit import Algorithm


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [
        ("20/minute", 20, 60.0),
        ("20/min", 20, 60.0),
        ("20/m", 20, 60.0),
        ("100/10s", 100, 10.0),
        ("100/10", 100, 10.0),
        ("1000 per hour", 1000, 3600.0),
        ("5/1.5s", 5, 1.5),
        ("3/2 days", 3, 172_800.0),
        ("7/HRS", 7, 3600.0),
        ("50/500ms", 50, 0.5),
    ],
)
def test_rates_are_written_as_limit_per_window(text: str, limit: int, window: float) -> None:
    assert Rate.parse(text) == Rate(limit, window)


@pytest.mark.parametrize("text", ["", "x", "20", "20/fortnight", "-1/s", "0/s", "20/0s", "1/2y"])
def test_a_malformed_rate_is_a_clear_error(text: str) -> None:
    with pytest.raises(BadInputError, match="rate"):
        Rate.parse(text)


def test_a_rate_reads_back_as_it_is_written() -> None:
    assert [str(Rate.parse(t)) for t in ("20/minute", "10/hour", "5/day", "100/10s")] == [
        "20/minute",
        "10/hour",
        "5/day",
        "100/10s",
    ]


def test_a_policy_has_a_rate_per_tier_in_order() -> None:
    api = RatePolicy("api", {"free": "20/minute", "pro": (100, 60), "enterprise": Rate(500, 60)})
    assert api.tiers == ["free", "pro", "enterprise"]
    assert api.rate("pro") == Rate(100, 60.0) and api.rate() == Rate(20, 60.0)
    with pytest.raises(BadInputError, match="no rate for tier 'gold'"):
        api.rate("gold")
    single = RatePolicy("login", "5/minute")
    assert single.tiers == [] and single.rate("anything") == Rate(5, 60.0)


def test_gcra_spreads_a_window_over_its_limit_in_microseconds() -> None:
    hit = RatePolicy("api", "3/s").hit("user:1", None, 1)
    assert (hit.interval_us, hit.burst, hit.window_ms) == (333_333, 3, 1000)
    assert RatePolicy("api", "100/10s", burst=5).hit("k", None, 2).burst == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "", "rates": "1/s"}, "name"),
        ({"name": "a:b", "rates": "1/s"}, "name"),
        ({"name": "api", "rates": {}}, "give a rate"),
        ({"name": "api", "rates": "1/s", "algorithm": "leaky"}, "algorithm"),
        ({"name": "api", "rates": "1/s", "burst": 0}, "burst"),
        ({"name": "api", "rates": "1/s", "algorithm": "fixed-window", "burst": 2}, "burst"),
        ({"name": "api", "rates": {"free": "x"}}, "tier 'free'"),
        ({"name": "api", "rates": 5}, "concurrency"),
    ],
)
def test_a_bad_policy_is_refused_with_what_is_wrong(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        RatePolicy(**kwargs)  # type: ignore[arg-type]


def test_a_concurrency_policy_counts_slots_held_for_a_lease() -> None:
    exports = RatePolicy("exports", {"free": 1, "pro": 4}, algorithm="concurrency", lease=300)
    assert exports.rate("pro") == Rate(4, 300.0)
    assert exports.algorithm is Algorithm.CONCURRENCY
    assert exports.describe() == {
        "name": "exports",
        "algorithm": "concurrency",
        "rates": {"free": 1, "pro": 4},
        "lease": 300,
    }


def test_policies_are_declared_in_settings_and_every_problem_is_listed() -> None:
    app = Conveyor(
        "memory://",
        rate_limits={
            "api": {"tiers": {"free": "20/minute", "pro": "100/minute"}},
            "login": "5/minute",
            "search": {"rate": "10/s", "algorithm": "sliding-window"},
        },
    )
    assert [p.name for p in app.rate_limits.policies] == ["api", "login", "search"]
    assert app.rate_limits.policy("search").algorithm is Algorithm.SLIDING_WINDOW
    assert app.rate_limits.tiers == ["free", "pro"]
    with pytest.raises(ConfigError) as error:
        Conveyor(
            "memory://",
            rate_limits={"a": "20/fortnight", "b": {"rate": "1/s", "tiers": {"x": "1/s"}}},
            rate_limit_tiers=["free"],
        )
    problems = error.value.problems
    assert len(problems) == 2
    assert "rate_limits.a" in problems[0] and "rate_limits.b" in problems[1]


def test_settings_may_fix_the_tier_order() -> None:
    app = Conveyor(
        "memory://",
        rate_limits={"api": {"tiers": {"pro": "100/minute", "free": "20/minute"}}},
        rate_limit_tiers=["free", "pro", "enterprise"],
    )
    assert app.rate_limits.next_tier("free") == "pro"
    with pytest.raises(BadInputError, match="rate_limit_tiers"):
        app.rate_limits.add(RatePolicy("other", {"gold": "1/s"}))
    with pytest.raises(ConfigError, match="not in rate_limit_tiers"):
        Conveyor(
            "memory://", rate_limits={"x": {"tiers": {"gold": "1/s"}}}, rate_limit_tiers=["free"]
        )
