"""The checks of one service and of one request.

``ServiceRateLimits`` is what the middleware and every route's dependency
share: the app's limiters (one per set of policies, failure policy and scope,
built on first use), the options and how callers are found. ``RequestLimits``
is one request's part, kept in its ASGI scope: its identity (found once), the
decisions it got (for its headers) and the concurrency slots it holds (given
back when the response ends, by the middleware).

A request is checked against each policy once: a route's policies that the
middleware already checked are not charged again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from starlette.types import Scope

from conveyor.app import Conveyor
from conveyor.errors import NotFoundError, ProgrammingError
from conveyor.ratelimit.decision import RateDecision, refusal
from conveyor.ratelimit.limiter import Failure, RateLimiter
from conveyor.ratelimit.quota import RateQuota
from conveyor.web.ratelimit.callers import Callers, Identity
from conveyor.web.ratelimit.headers import Header, rate_limit_headers
from conveyor.web.ratelimit.options import RateLimitOptions

SCOPE_KEY = "conveyor.rate_limits"
"""Where a request's :class:`RequestLimits` is kept in its ASGI scope."""
LimiterScope = Literal["shared", "local"]
LimiterKey = tuple[tuple[str, ...], Failure | None, LimiterScope]


class ServiceRateLimits:
    """One service's rate limits over HTTP."""

    def __init__(self, app: Conveyor, options: RateLimitOptions) -> None:
        self.app = app
        self.options = options
        self.callers = Callers(app, options)
        self.legacy_headers = app.settings.rate_limit_legacy_headers
        self._limiters: dict[LimiterKey, RateLimiter] = {}

    @property
    def in_use(self) -> bool:
        """Whether the app declares any policy (else requests pass untouched)."""
        return bool(self.app.rate_limits.policies)

    def limiter(
        self, policies: tuple[str, ...], failure: Failure | None, scope: LimiterScope
    ) -> RateLimiter:
        """The app's limiter of ``policies`` (``ProgrammingError`` for an unknown name)."""
        key = (policies, failure, scope)
        found = self._limiters.get(key)
        if found is None:
            try:
                found = self.app.rate_limits.limiter(*policies, scope=scope, failure=failure)
            except NotFoundError as exc:
                raise ProgrammingError(f"rate limit of {list(policies)}: {exc}") from None
            self._limiters[key] = found
        return found

    def problems(self, policies: Sequence[str]) -> list[str]:
        """What is wrong with checking ``policies`` (names not declared)."""
        declared = [policy.name for policy in self.app.rate_limits.policies]
        known = ", ".join(declared) or "none"
        return [
            f"rate-limit policy {name!r} is not declared (declared: {known})"
            for name in policies
            if name not in declared
        ]


class RequestLimits:
    """One request's rate limits (``scope[SCOPE_KEY]``)."""

    __slots__ = ("_by_policy", "_identity", "decisions", "scope", "service")

    def __init__(self, service: ServiceRateLimits, scope: Scope) -> None:
        self.service = service
        self.scope = scope
        self.decisions: list[RateDecision] = []
        self._by_policy: dict[str, RateDecision] = {}
        self._identity: Identity | None = None

    async def check(
        self,
        policies: tuple[str, ...],
        *,
        cost: int = 1,
        failure: Failure | None = None,
        scope: LimiterScope = "shared",
    ) -> RateDecision:
        """Charge the request under ``policies`` (those it was not charged under yet), in
        one step; ``RateLimitedError`` when one refuses it."""
        fresh = tuple(name for name in policies if name not in self._by_policy)
        if not fresh:
            return self._by_policy[policies[0]]
        limiter = self.service.limiter(fresh, failure, scope)
        identity = await self.identity()
        decision = await limiter.check(identity.key, tier=identity.tier, cost=cost)
        self.record(decision)
        if not decision.allowed:
            raise refusal(decision)
        return decision

    async def identity(self) -> Identity:
        if self._identity is None:
            self._identity = await self.service.callers.identify(self.scope)
        return self._identity

    def record(self, decision: RateDecision) -> None:
        """Keep ``decision`` for the response's headers (and its slots for release)."""
        if any(decision is seen for seen in self.decisions):
            return
        self.decisions.append(decision)
        for quota in decision.quotas:
            self._by_policy.setdefault(quota.policy, decision)

    @property
    def holds_slots(self) -> bool:
        return any(decision.holds_slots for decision in self.decisions)

    @property
    def refused(self) -> bool:
        return any(not decision.allowed for decision in self.decisions)

    def quotas(self) -> list[RateQuota]:
        return [quota for decision in self.decisions for quota in decision.quotas]

    def headers(self) -> list[Header]:
        """The rate-limit headers of this request's response."""
        if not self.decisions:
            return []
        tier = self.decisions[0].tier
        return rate_limit_headers(
            self.quotas(), tier, refused=self.refused, legacy=self.service.legacy_headers
        )

    async def release(self) -> None:
        """Give back every concurrency slot the request holds."""
        for decision in self.decisions:
            if decision.holds_slots:
                await decision.release()
