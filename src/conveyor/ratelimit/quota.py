"""What one policy says about one request: everything a header or a 429 body needs.

A store answers with raw states (``stores/ratelimit.py``: a GCRA arrival time, a
window's counts, leases held); :func:`quota_of` derives from one of them the
limit, the window, what remains, when the quota is whole again and how long a
refused request should wait. Derived here once, for every store.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.stores.ratelimit import Algorithm, Hit, HitState


@dataclass(frozen=True, slots=True)
class RateQuota:
    """One policy's view of one request.

    ``limit`` and ``window`` (seconds) are the policy's rate for ``tier``; ``remaining``
    is what is left after this request (or, when it was refused, what is left
    without it); ``reset`` is seconds until the whole quota is available again;
    ``retry_after`` is seconds until this request would pass this policy (0 when
    it does). ``violated`` is True for the policies that refused the request.
    For a concurrency policy the window is the lease, ``remaining`` the free slots
    and ``reset`` the time until the oldest slot's lease ends (an upper bound:
    a release frees a slot sooner).
    """

    policy: str
    tier: str | None
    algorithm: Algorithm
    limit: int
    window: float
    remaining: int
    reset: float
    retry_after: float
    violated: bool


def quota_of(hit: Hit, state: HitState, now_ms: int, tier: str | None) -> RateQuota:
    """The quota a store's answer for ``hit`` amounts to."""
    if hit.algorithm is Algorithm.GCRA:
        remaining, reset_ms, retry_ms = _gcra(hit, state, now_ms)
    elif hit.algorithm is Algorithm.CONCURRENCY:
        remaining = max(0, hit.limit - state.value)
        reset_ms = max(0, state.extra - now_ms) if state.extra else 0
        retry_ms = 0 if state.allowed else reset_ms
    else:
        remaining, reset_ms, retry_ms = _window(hit, state, now_ms)
    return RateQuota(
        hit.policy,
        tier,
        hit.algorithm,
        hit.limit,
        hit.window_ms / 1000,
        remaining,
        reset_ms / 1000,
        retry_ms / 1000,
        not state.allowed,
    )


def _gcra(hit: Hit, state: HitState, now_ms: int) -> tuple[int, float, float]:
    interval = hit.interval_us
    now = now_ms * 1000
    tolerance = hit.burst * interval
    arrival = state.value
    remaining = max(0, (now + tolerance - arrival) // interval)
    retry = 0 if state.allowed else max(0, arrival + hit.cost * interval - tolerance - now)
    return remaining, (arrival - now) / 1000, retry / 1000


def _window(hit: Hit, state: HitState, now_ms: int) -> tuple[int, int, int]:
    window = hit.window_ms
    elapsed = now_ms % window
    to_end = window - elapsed
    current = state.value
    if hit.algorithm is Algorithm.FIXED_WINDOW:
        remaining = max(0, hit.limit - current)
        return remaining, (to_end if current else 0), (0 if state.allowed else to_end)
    previous = state.extra
    used = previous * to_end + current * window
    remaining = max(0, (hit.limit * window - used) // window)
    reset = window + to_end if current else (to_end if previous else 0)
    return remaining, reset, 0 if state.allowed else _sliding_wait(hit, state, elapsed)


def _sliding_wait(hit: Hit, state: HitState, elapsed: int) -> int:
    """Milliseconds until the sliding estimate leaves room for ``hit.cost`` more."""
    window, limit, cost = hit.window_ms, hit.limit, hit.cost
    current, previous = state.value, state.extra
    if current + cost <= limit:
        # previous * (window - elapsed - wait) <= (limit - current - cost) * window
        room = (limit - current - cost) * window
        return max(0, window - elapsed - room // previous) if previous else 0
    # Only once this window is the previous one: current * (window - e) <= (limit - cost) * window
    room = (limit - cost) * window
    return (window - elapsed) + max(0, window - room // current)
