"""The answers of a refused request: 429 quota exceeded, 503 limits unavailable.

The 429 is RFC 9457 problem details of the draft's ``quota-exceeded`` type
with its ``violated-policies`` member, and the tier context the products'
clients read, as extension members:

    {"type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
     "title": "Quota exceeded", "status": 429,
     "detail": "Free tier rate limit exceeded. Upgrade to Pro for higher limits.",
     "instance": "/api/reports", "request_id": "...",
     "violated-policies": ["api"],
     "message": "Free tier rate limit exceeded. Upgrade to Pro for higher limits.",
     "code": "RATE_LIMIT_EXCEEDED", "retryAfter": 3, "currentTier": "free",
     "upgradeUrl": "/api/subscription/checkout", "limits": {"current": 20, "pro": 100}}

``limits`` and the message describe the violated policy that keeps the
request waiting longest: its limit in the caller's tier and in the next tier
(``app.rate_limits.next_tier``). The upgrade is offered only when the next
tier allows more. ``retryAfter`` equals the ``Retry-After`` header.

A limiter that fails closed and cannot reach its store answers 503, with no
store detail (the log has it) and ``Retry-After: 1``: the store's circuit
lets a probe through within half a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.errors import BadInputError, RateLimitUnavailableError
from conveyor.ratelimit.quota import RateQuota
from conveyor.ratelimit.service import RateLimits
from conveyor.web.problems import Problem
from conveyor.web.ratelimit.headers import retry_after
from conveyor.web.ratelimit.options import RateLimitOptions

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
EXCEEDED_CODE = "RATE_LIMIT_EXCEEDED"
UNAVAILABLE_CODE = "RATE_LIMIT_UNAVAILABLE"
UNAVAILABLE_RETRY_AFTER = 1


def quota_exceeded(
    quotas: Sequence[RateQuota], tier: str | None, limits: RateLimits, options: RateLimitOptions
) -> Problem:
    """The 429 of a request refused by the violated ones among ``quotas``."""
    violated = [quota for quota in quotas if quota.violated]
    wait = retry_after(violated)
    longest = max(violated, key=lambda q: q.retry_after)
    upgrade = _upgrade(longest, tier, limits)
    message = options.messages.get(tier or "") or _default_message(tier, upgrade)
    body_limits: dict[str, int] = {"current": longest.limit}
    if upgrade is not None:
        body_limits[upgrade[0]] = upgrade[1]
    extensions: dict[str, Any] = {
        "violated-policies": [quota.policy for quota in violated],
        "message": message,
        "code": EXCEEDED_CODE,
        "retryAfter": wait,
    }
    if tier:
        extensions["currentTier"] = tier
    if options.upgrade_url:
        extensions["upgradeUrl"] = options.upgrade_url
    extensions["limits"] = body_limits
    return Problem(429, "Quota exceeded", message, QUOTA_EXCEEDED, extensions)


def limits_unavailable(error: RateLimitUnavailableError) -> Problem:
    """The 503 of a request a fail-closed limiter could not check."""
    return Problem(
        503,
        "Service Unavailable",
        "The rate limits of this request could not be checked; try again shortly.",
        extensions={"code": UNAVAILABLE_CODE, "policies": list(error.policies)},
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


def _upgrade(quota: RateQuota, tier: str | None, limits: RateLimits) -> tuple[str, int] | None:
    """(next tier, its limit under ``quota``'s policy) when that tier allows more."""
    following = limits.next_tier(tier)
    if following is None:
        return None
    try:
        rate = limits.policy(quota.policy).rate(following)
    except BadInputError:  # the policy names no rate for that tier
        return None
    more = rate.limit / rate.window > quota.limit / quota.window
    return (following, rate.limit) if more else None


def _default_message(tier: str | None, upgrade: tuple[str, int] | None) -> str:
    if not tier:
        return "Rate limit exceeded."
    message = f"{_title(tier)} tier rate limit exceeded."
    if upgrade is not None:
        message += f" Upgrade to {_title(upgrade[0])} for higher limits."
    return message


def _title(tier: str) -> str:
    return tier[:1].upper() + tier[1:]
