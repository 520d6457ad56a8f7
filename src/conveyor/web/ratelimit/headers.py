"""The rate-limit headers of a response, from the decisions its request got.

After the IETF httpapi ratelimit-headers draft (-09 on): two Structured Field
lists (RFC 9651), serialized by ``http_sf``, one member per policy:

    RateLimit-Policy: "api";q=20;w=60, "expensive";q=10;w=3600
    RateLimit: "api";r=19;t=3, "expensive";r=9;t=360

``q`` is the policy's limit in the request's tier and ``w`` its window in
seconds (left out when the window is not a whole number of seconds: the draft
has no sub-second windows); a concurrency policy is ``qu="concurrent-requests"``
without a window. ``r`` is what remains and ``t`` the seconds, rounded up,
until the whole quota is back (omitted for concurrency: a slot comes back
when a request ends, not at a time).

On a 429 ``RateLimit`` lists only the policies that refused the request, with
``t`` the seconds until the request would pass, and ``Retry-After`` is the
largest of them: never earlier than any ``t`` it is sent with, as the draft
asks (a request refused by a concurrency policy alone retries after
``CONCURRENCY_RETRY_AFTER``). Quotas that are not violated say when they are
whole again, which a retry does not need.

The legacy family (settings ``rate_limit_legacy_headers``) describes one
policy: on a 429 the one that keeps the request waiting longest, else the one
with the least remaining: ``X-RateLimit-Tier``, ``X-RateLimit-Limit``,
``X-RateLimit-Window`` (seconds), ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (seconds until the whole quota is back).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import http_sf

from conveyor.ratelimit.quota import RateQuota
from conveyor.stores.ratelimit import Algorithm

CONCURRENCY_RETRY_AFTER = 1
"""Seconds a request refused only by a concurrency policy is told to wait: its slot
comes back when a request in flight ends (the lease is only an upper bound)."""
MAX_INTEGER = 999_999_999_999_999
"""The largest Integer a Structured Field holds."""

Header = tuple[bytes, bytes]
PolicyMember = tuple[str, int, int | None, bool]
"""(name, quota, window in whole seconds or None, concurrency?)."""
LimitMember = tuple[str, int, int | None]
"""(name, remaining, seconds until more quota or None)."""


def rate_limit_headers(
    quotas: Sequence[RateQuota], tier: str | None, *, refused: bool, legacy: bool
) -> list[Header]:
    """The headers of a response whose request got ``quotas`` (all of its policies)."""
    if not quotas:
        return []
    shown = [q for q in quotas if q.violated] if refused else list(quotas)
    if not shown:  # refused, but not by these policies (an error after the check)
        shown = list(quotas)
        refused = False
    policies = tuple(_policy_member(q) for q in quotas)
    limits = tuple((q.policy, q.remaining, _seconds_to_more(q)) for q in shown)
    headers = [
        (b"ratelimit-policy", _serialize_policies(policies)),
        (b"ratelimit", _serialize_limits(limits)),
    ]
    if refused:
        headers.append((b"retry-after", str(retry_after(shown)).encode()))
    if legacy:
        headers.extend(_legacy(_described(shown, refused), tier))
    return headers


def retry_after(violated: Sequence[RateQuota]) -> int:
    """Whole seconds until a refused request would pass every policy that refused it."""
    waits = [
        CONCURRENCY_RETRY_AFTER if q.algorithm is Algorithm.CONCURRENCY else _ceil(q.retry_after)
        for q in violated
    ]
    return max(1, *waits) if waits else 1


def _seconds_to_more(quota: RateQuota) -> int | None:
    if quota.algorithm is Algorithm.CONCURRENCY:
        return None
    return _ceil(quota.retry_after if quota.violated else quota.reset)


def _policy_member(quota: RateQuota) -> PolicyMember:
    if quota.algorithm is Algorithm.CONCURRENCY:
        return (quota.policy, quota.limit, None, True)
    window = quota.window if quota.window == int(quota.window) else None
    return (quota.policy, quota.limit, None if window is None else int(window), False)


# The values repeat from request to request (a policy's members, the remaining counts
# and waits of busy keys): each distinct list is serialized by http_sf once.


@functools.lru_cache(maxsize=1024)
def _serialize_policies(members: tuple[PolicyMember, ...]) -> bytes:
    items: http_sf.ListType = []
    for name, quota, window, concurrency in members:
        params: dict[str, http_sf.types.BareItemType] = {"q": min(quota, MAX_INTEGER)}
        if concurrency:
            params["qu"] = "concurrent-requests"
        elif window is not None:
            params["w"] = window
        items.append((name, params))
    return http_sf.ser(items).encode("ascii")


@functools.lru_cache(maxsize=4096)
def _serialize_limits(members: tuple[LimitMember, ...]) -> bytes:
    items: http_sf.ListType = []
    for name, remaining, seconds in members:
        params: dict[str, http_sf.types.BareItemType] = {"r": min(remaining, MAX_INTEGER)}
        if seconds is not None:
            params["t"] = min(seconds, MAX_INTEGER)
        items.append((name, params))
    return http_sf.ser(items).encode("ascii")


def _described(shown: Sequence[RateQuota], refused: bool) -> RateQuota:
    if refused:
        return max(shown, key=lambda q: q.retry_after)
    return min(shown, key=lambda q: (q.remaining, -q.reset))


def _legacy(quota: RateQuota, tier: str | None) -> list[Header]:
    headers = [
        (b"x-ratelimit-limit", str(quota.limit).encode()),
        (b"x-ratelimit-window", f"{quota.window:g}".encode()),
        (b"x-ratelimit-remaining", str(quota.remaining).encode()),
        (b"x-ratelimit-reset", str(_ceil(quota.reset)).encode()),
    ]
    if tier:
        headers.insert(0, (b"x-ratelimit-tier", tier.encode("latin-1", "replace")))
    return headers


def _ceil(seconds: float) -> int:
    # Times are whole microseconds: a float a hair above a whole second (binary noise,
    # never a real microsecond) is that second; anything more is the next one.
    return max(0, math.ceil(round(seconds, 6)))
