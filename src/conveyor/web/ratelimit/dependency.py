"""``rate_limit(...)``: a route's own rate limits, as a FastAPI dependency.

    @api.post("/exports", dependencies=[Depends(rate_limit("expensive"))])
    async def export() -> ...: ...

    @api.get("/search")
    async def search(quota: Annotated[RateDecision, Depends(rate_limit("api", "search"))]):
        ...  # quota.quotas: what is left

The policies of one ``rate_limit`` are checked together, in one step: a
request one of them refuses takes nothing from the others. Policies the
service's global ones already charged in this request are not charged again.
The check runs before the endpoint (and before its body is read); the
service's rate-limit layer adds the headers, answers the 429, and gives a
concurrency policy's slots back when the response has ended.
"""

from __future__ import annotations

from starlette.requests import Request

from conveyor.errors import ProgrammingError
from conveyor.ratelimit.decision import RateDecision
from conveyor.ratelimit.limiter import Failure
from conveyor.web.ratelimit.checks import SCOPE_KEY, LimiterScope, RequestLimits


class RateLimit:
    """A route's rate limit (made by :func:`rate_limit`); FastAPI calls it per request."""

    __slots__ = ("cost", "failure", "policies", "scope")

    def __init__(
        self, policies: tuple[str, ...], cost: int, failure: Failure | None, scope: LimiterScope
    ) -> None:
        problems = []
        if not policies or not all(isinstance(p, str) and p for p in policies):
            problems.append("name at least one policy")
        if len(set(policies)) != len(policies):
            problems.append(f"each policy once, got {list(policies)}")
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
            problems.append(f"cost is an integer >= 1, got {cost!r}")
        if failure not in (None, "open", "closed"):
            problems.append(f"failure is 'open', 'closed' or None, got {failure!r}")
        if scope not in ("shared", "local"):
            problems.append(f"scope is 'shared' or 'local', got {scope!r}")
        if problems:
            raise ProgrammingError(f"rate_limit: {'; '.join(problems)}")
        self.policies = policies
        self.cost = cost
        self.failure = failure
        self.scope = scope

    async def __call__(self, request: Request) -> RateDecision:
        limits = request.scope.get(SCOPE_KEY)
        if not isinstance(limits, RequestLimits):
            raise ProgrammingError(
                "rate_limit needs the app to be a conveyor service (as_service) that"
                " declares rate-limit policies"
            )
        return await limits.check(
            self.policies, cost=self.cost, failure=self.failure, scope=self.scope
        )

    def __repr__(self) -> str:
        return f"rate_limit({', '.join(map(repr, self.policies))}, cost={self.cost})"


def rate_limit(
    *policies: str,
    cost: int = 1,
    failure: Failure | None = None,
    scope: LimiterScope = "shared",
) -> RateLimit:
    """A FastAPI dependency that charges each request under ``policies`` (declared names).

    ``cost``: the units a request takes. ``failure``: what happens when the shared store
    cannot answer (``"open"``: decide in this process; ``"closed"``: 503; default: the
    ``rate_limit_failure`` setting). ``scope="local"`` counts in this process only.
    The dependency's value is the :class:`~conveyor.RateDecision`.
    """
    return RateLimit(policies, cost, failure, scope)
