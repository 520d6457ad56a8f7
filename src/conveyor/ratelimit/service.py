"""``app.rate_limits``: an app's policies, its limiters, and the operations on them.

Policies come from settings (``rate_limits={...}`` or ``CONVEYOR_RATE_LIMITS``)
and from code (:meth:`RateLimits.add`). Every limiter of an app shares one
guarded store (one circuit breaker: the store's health is one fact), one
per-process table (what a local limiter counts, and what a shared one falls
back to) and one set of decision counters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry

from conveyor.clock import Clock
from conveyor.errors import BadInputError, NotFoundError, ProgrammingError
from conveyor.observability.health import CheckResult, Status
from conveyor.ratelimit.decision import RateDecision
from conveyor.ratelimit.keys import TrustedProxies
from conveyor.ratelimit.limiter import Failure, RateLimiter, SharedStore
from conveyor.ratelimit.metrics import RateMetrics, RateMetricsCollector
from conveyor.ratelimit.policies import RatePolicy
from conveyor.ratelimit.quota import RateQuota
from conveyor.ratelimit.tiers import TierLookup
from conveyor.stores.ratelimit import RateTable

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.stores.backend import Backend

K = TypeVar("K")


def settings_problems(settings: Settings) -> list[str]:
    """What is wrong with the rate limits of ``settings`` (checked with the others at load)."""
    problems = []
    try:
        TrustedProxies(settings.trusted_proxies)
    except BadInputError as exc:
        problems.append(f"trusted_proxies: {exc}")
    for name, spec in settings.rate_limits.items():
        try:
            policies = policies_from_settings({name: spec})
        except BadInputError as exc:
            problems.append(f"rate_limits.{name}: {exc}")
            continue
        tiers = settings.rate_limit_tiers
        unknown = [t for t in policies[0].tiers if tiers and t not in tiers]
        if unknown:
            problems.append(f"rate_limits.{name}: tiers {unknown} are not in rate_limit_tiers")
    return problems


def policies_from_settings(specs: Mapping[str, Any]) -> list[RatePolicy]:
    """The policies settings declare (``BadInputError`` names the first bad one)."""
    policies = []
    for name, spec in specs.items():
        if isinstance(spec, str):
            policies.append(RatePolicy(name, spec))
            continue
        if (spec.rate is None) == (not spec.tiers):
            raise BadInputError(f"rate_limits.{name}: give either 'rate' or 'tiers'")
        policies.append(
            RatePolicy(
                name,
                spec.rate if spec.rate is not None else dict(spec.tiers),
                algorithm=spec.algorithm,
                burst=spec.burst,
                lease=spec.lease,
            )
        )
    return policies


class RateLimits:
    """An app's rate limits: ``app.rate_limits``.

    >>> api = app.rate_limits.add(RatePolicy("api", {"free": "20/minute", "pro": "100/minute"}))
    >>> decision = await app.rate_limits.check("api", key="user:42", tier="free")
    >>> decision.allowed, decision.quotas[0].remaining
    (True, 19)
    """

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        clock: Clock,
        registry: CollectorRegistry,
        ensure_open: Callable[[], Awaitable[None]],
    ) -> None:
        self._clock = clock
        self._declared_tiers = list(settings.rate_limit_tiers)
        self.tiers: list[str] = list(self._declared_tiers)
        """Tier names, lowest first: as settings list them, else as policies name them."""
        self.failure: Failure = settings.rate_limit_failure
        store = backend.rate_limits
        self.budget = store.budget
        """Seconds a shared check waits on the store at most (``rate_limit_budget``)."""
        self.metrics = RateMetrics()
        self.table = RateTable(settings.rate_limit_local_keys)
        self._shared = SharedStore(store, ensure_open, self.metrics)
        self._policies: dict[str, RatePolicy] = {}
        self._limiters: dict[tuple[str, ...], RateLimiter] = {}
        registry.register(RateMetricsCollector(self.metrics, lambda: self._shared.breaker.is_open))
        for policy in policies_from_settings(settings.rate_limits):
            self.add(policy)

    # -- policies --------------------------------------------------------------------

    def add(self, policy: RatePolicy, *more: RatePolicy) -> RatePolicy:
        """Declare policies in code; returns the first. A name is declared once."""
        for declared in (policy, *more):
            if declared.name in self._policies:
                raise ProgrammingError(f"rate-limit policy {declared.name!r} is already declared")
            unknown = [t for t in declared.tiers if t not in self.tiers]
            if unknown and self._declared_tiers:
                raise BadInputError(
                    f"policy {declared.name!r} names tiers {unknown} that rate_limit_tiers"
                    f" does not list ({', '.join(self._declared_tiers)})"
                )
            self.tiers.extend(unknown)
            self._policies[declared.name] = declared
        return policy

    def policy(self, name: str) -> RatePolicy:
        """The policy declared as ``name`` (``NotFoundError`` if none is)."""
        found = self._policies.get(name)
        if found is None:
            known = ", ".join(self._policies) or "none"
            raise NotFoundError(f"no rate-limit policy {name!r} (declared: {known})")
        return found

    @property
    def policies(self) -> list[RatePolicy]:
        """Every declared policy, in declaration order."""
        return list(self._policies.values())

    def next_tier(self, tier: str | None) -> str | None:
        """The tier after ``tier`` (the upgrade a 429 body can offer), None for the last."""
        if tier not in self.tiers:
            return None
        index = self.tiers.index(tier)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None

    # -- limiters --------------------------------------------------------------------

    def limiter(
        self,
        *policies: RatePolicy | str,
        scope: str = "shared",
        failure: Failure | None = None,
    ) -> RateLimiter:
        """A limiter that checks ``policies`` together (by object or declared name).

        ``scope="shared"`` counts in the app's store (every process sees one count);
        ``"local"`` in this process only. ``failure`` (``"open"``/``"closed"``)
        defaults to ``rate_limit_failure``.
        """
        if scope not in ("shared", "local"):
            raise BadInputError(f"scope must be 'shared' or 'local', got {scope!r}")
        resolved = [self.policy(p) if isinstance(p, str) else p for p in policies]
        for policy in resolved:
            if self._policies.get(policy.name, policy) is not policy:
                raise ProgrammingError(f"another policy is declared as {policy.name!r}")
        return RateLimiter(
            resolved,
            shared=self._shared if scope == "shared" else None,
            table=self.table,
            clock=self._clock,
            metrics=self.metrics,
            tiers=self.tiers,
            failure=self.failure if failure is None else failure,
        )

    async def check(
        self, *policies: str, key: str, tier: str | None = None, cost: int = 1
    ) -> RateDecision:
        """Check declared policies by name, together, on the shared store."""
        limiter = self._limiters.get(policies)
        if limiter is None:
            limiter = self._limiters[policies] = self.limiter(*policies)
        return await limiter.check(key, tier=tier, cost=cost)

    def tier_lookup(
        self,
        lookup: Callable[[K], str | Awaitable[str]],
        *,
        ttl: float = 60.0,
        max_entries: int = 10_000,
    ) -> TierLookup[K]:
        """Cache an application function from a key (an API key, a user) to its tier."""
        return TierLookup(lookup, ttl=ttl, max_entries=max_entries, clock=self._clock)

    # -- operations ------------------------------------------------------------------

    async def usage(self, policy: str, key: str, tier: str | None = None) -> RateQuota:
        """``key``'s quota under ``policy`` now, from the shared store (changes nothing)."""
        decision = await self.limiter(policy).usage(key, tier=tier)
        return decision.quotas[0]

    async def reset(self, policy: str, key: str) -> None:
        """Forget ``key``'s usage under ``policy`` (shared store and this process)."""
        await self.limiter(policy).reset(key)

    def describe(self) -> list[dict[str, object]]:
        """Every policy as plain data (what ``conveyor ratelimit policies`` prints)."""
        return [policy.describe() for policy in self._policies.values()]

    # -- health ----------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        """Whether checks skip the shared store now (its circuit is open)."""
        return self._shared.breaker.is_open

    async def check_health(self) -> CheckResult:
        """OK, or DEGRADED while the shared store cannot be reached."""
        shared = self._shared
        if not shared.used:
            return CheckResult(Status.OK, "not in use")
        how = "deciding in this process" if self.failure == "open" else "refusing (fail closed)"
        if shared.breaker.is_open:
            return CheckResult(Status.DEGRADED, f"store unreachable ({shared.last_error}); {how}")
        try:
            await shared.store.ping()
        except Exception as exc:
            return CheckResult(Status.DEGRADED, f"store unreachable ({type(exc).__name__}); {how}")
        return CheckResult(Status.OK, f"{len(self._policies)} policies")
