"""The answer to one rate-limit check: allowed or not, and each policy's quota."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec

from conveyor.errors import RateLimitedError
from conveyor.ratelimit.quota import RateQuota, quota_of
from conveyor.stores.ratelimit import Checked, Hit

Release = Callable[[], Awaitable[None]]


class RateDecision(msgspec.Struct):
    """Whether a request may go ahead, and why, per policy.

    ``allowed``: every policy admitted it (and each was charged). ``quotas``: one
    :class:`RateQuota` per policy, in the order checked (limit, window, remaining,
    reset, retry after: the ``RateLimit`` headers and a 429 body are built from
    them). ``violated``: the quotas that refused it. ``retry_after``: seconds until a
    refused request would pass every policy that refused it. ``tier``: the tier it was
    counted under. ``degraded``: the shared store could not be reached and this
    process decided alone (fail open).

    A request that took concurrency slots gives them back with :meth:`release`.
    """

    # A msgspec Struct: built on every check, and a Struct is built several times faster
    # than a class with __slots__. Quotas are derived only when asked for.
    allowed: bool
    tier: str | None
    degraded: bool
    _hits: Sequence[Hit]
    _checked: Checked
    _release: Release | None = None
    _quotas: list[RateQuota] | None = None

    @property
    def quotas(self) -> list[RateQuota]:
        """Each policy's quota, in the order the policies were checked."""
        if self._quotas is None:
            checked = self._checked
            self._quotas = [
                quota_of(hit, state, checked.now_ms, self.tier)
                for hit, state in zip(self._hits, checked.states, strict=True)
            ]
        return self._quotas

    @property
    def violated(self) -> list[RateQuota]:
        """The quotas that refused the request (empty when it is allowed)."""
        return [quota for quota in self.quotas if quota.violated]

    @property
    def retry_after(self) -> float:
        """Seconds until the request would pass every policy that refused it (0 if allowed)."""
        return max((quota.retry_after for quota in self.violated), default=0.0)

    @property
    def holds_slots(self) -> bool:
        """Whether the request holds concurrency slots that :meth:`release` gives back."""
        return self._release is not None

    async def release(self) -> None:
        """Give back the concurrency slots this request holds (once; no-op otherwise)."""
        release, self._release = self._release, None
        if release is not None:
            await release()

    def __repr__(self) -> str:
        shown = ", ".join(f"{q.policy}: {q.remaining}/{q.limit}" for q in self.quotas)
        verdict = "allowed" if self.allowed else f"denied, retry in {self.retry_after:g}s"
        return f"<RateDecision {verdict} tier={self.tier!r} [{shown}]>"


def refusal(decision: RateDecision) -> RateLimitedError:
    """The error of a limiter's refusal: its message names the violated policies."""
    violated = ", ".join(q.policy for q in decision.violated) or "?"
    tier = f" (tier {decision.tier})" if decision.tier else ""
    message = f"rate limited by {violated}{tier}; retry in {decision.retry_after:g}s"
    return RateLimitedError(message, decision.retry_after, decision=decision)
