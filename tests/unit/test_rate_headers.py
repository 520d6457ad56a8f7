"""The rate-limit headers, read back with a real Structured Field Values parser (http-sf)."""

from __future__ import annotations

import http_sf

from conveyor.ratelimit.quota import RateQuota
from conveyor.stores.ratelimit import Algorithm
from conveyor.web.ratelimit.headers import rate_limit_headers, retry_after


def quota(
    policy: str,
    *,
    limit: int = 20,
    window: float = 60.0,
    remaining: int = 10,
    reset: float = 30.0,
    retry: float = 0.0,
    violated: bool = False,
    algorithm: Algorithm = Algorithm.GCRA,
) -> RateQuota:
    return RateQuota(policy, "free", algorithm, limit, window, remaining, reset, retry, violated)


def fields(headers: list[tuple[bytes, bytes]]) -> dict[str, bytes]:
    found = dict(headers)
    assert len(found) == len(headers), "a header came twice"
    return {name.decode(): value for name, value in found.items()}


def parsed(value: bytes) -> list[tuple[object, dict[str, object]]]:
    members = http_sf.parse(value, tltype="list")
    assert isinstance(members, list)
    return [(m[0], dict(m[1])) for m in members if isinstance(m, tuple)]


def test_each_policy_is_one_list_member_with_its_quota_window_remaining_and_reset() -> None:
    quotas = [
        quota("api", limit=20, window=60, remaining=19, reset=2.001),
        quota("expensive", limit=10, window=3600, remaining=9, reset=360),
    ]
    headers = fields(rate_limit_headers(quotas, "free", refused=False, legacy=False))
    assert parsed(headers["ratelimit-policy"]) == [
        ("api", {"q": 20, "w": 60}),
        ("expensive", {"q": 10, "w": 3600}),
    ]
    # t is rounded up: a reset in 2.001 s is not announced as 2 s
    assert parsed(headers["ratelimit"]) == [
        ("api", {"r": 19, "t": 3}),
        ("expensive", {"r": 9, "t": 360}),
    ]
    assert "retry-after" not in headers


def test_policy_names_are_strings_escaped_by_the_serializer() -> None:
    headers = fields(
        rate_limit_headers([quota('we "quote" \\ it')], None, refused=False, legacy=False)
    )
    assert parsed(headers["ratelimit-policy"])[0][0] == 'we "quote" \\ it'


def test_a_refused_request_lists_the_violated_policies_and_retry_after_is_never_earlier() -> None:
    quotas = [
        quota("api", remaining=0, reset=60, retry=2.2, violated=True),
        quota("burst", limit=5, window=1, remaining=0, reset=1, retry=0.4, violated=True),
        quota("daily", limit=1000, window=86_400, remaining=900, reset=8640),
    ]
    headers = fields(rate_limit_headers(quotas, "free", refused=True, legacy=False))
    limits = parsed(headers["ratelimit"])
    assert [name for name, _ in limits] == ["api", "burst"]  # not the daily quota
    assert len(parsed(headers["ratelimit-policy"])) == 3
    wait = int(headers["retry-after"])
    assert wait == 3
    for _, params in limits:
        assert isinstance(params["t"], int)
        assert wait >= params["t"]


def test_a_window_that_is_not_whole_seconds_is_left_out_not_rounded() -> None:
    headers = fields(
        rate_limit_headers([quota("fast", limit=5, window=1.5)], None, refused=False, legacy=False)
    )
    assert parsed(headers["ratelimit-policy"]) == [("fast", {"q": 5})]


def test_a_concurrency_policy_counts_concurrent_requests_and_has_no_reset() -> None:
    slots = quota(
        "exports", limit=2, window=300, remaining=0, reset=299, retry=299, violated=True,
        algorithm=Algorithm.CONCURRENCY,
    )  # fmt: skip
    headers = fields(rate_limit_headers([slots], "free", refused=True, legacy=False))
    assert parsed(headers["ratelimit-policy"]) == [
        ("exports", {"q": 2, "qu": "concurrent-requests"})
    ]
    assert parsed(headers["ratelimit"]) == [("exports", {"r": 0})]
    assert headers["retry-after"] == b"1"  # a slot comes back when a request ends


def test_the_legacy_family_describes_the_tightest_policy() -> None:
    quotas = [
        quota("api", limit=20, window=60, remaining=15, reset=15),
        quota("expensive", limit=10, window=3600, remaining=2, reset=2880),
    ]
    headers = fields(rate_limit_headers(quotas, "free", refused=False, legacy=True))
    assert headers["x-ratelimit-tier"] == b"free"
    assert headers["x-ratelimit-limit"] == b"10"
    assert headers["x-ratelimit-window"] == b"3600"
    assert headers["x-ratelimit-remaining"] == b"2"
    assert headers["x-ratelimit-reset"] == b"2880"


def test_the_legacy_family_is_off_unless_asked_for() -> None:
    headers = fields(rate_limit_headers([quota("api")], "free", refused=False, legacy=False))
    assert not [name for name in headers if name.startswith("x-")]


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after([quota("a", retry=0.001, violated=True)]) == 1
    assert retry_after([quota("a", retry=59.0004, violated=True)]) == 60
    assert retry_after([quota("a", retry=3.0, violated=True)]) == 3
