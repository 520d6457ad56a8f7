"""The limiter: a set of policies checked together, on the shared store or in this process.

A shared check is one store step for every policy of the request (all or
nothing), bounded by the store's budget (``rate_limit_budget``) and skipped
while the store's circuit is open. When the store cannot answer, the limiter
follows its failure policy:
``"open"`` (the default) decides on this process's own table, as a local
limiter would; ``"closed"`` raises :class:`RateLimitUnavailableError` (a 503).
A call that ran out of budget is never sent again: the script may have run,
and a second one would count the request twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Literal, TypeAlias, TypeVar

from conveyor.cache.breaker import CircuitBreaker
from conveyor.clock import Clock
from conveyor.errors import (
    BadInputError,
    RateLimitUnavailableError,
    StoreUnavailableError,
)
from conveyor.ratelimit.decision import RateDecision, refusal
from conveyor.ratelimit.metrics import RateMetrics
from conveyor.ratelimit.policies import RatePolicy
from conveyor.stores.ratelimit import (
    MAX_KEY_LENGTH,
    Algorithm,
    Checked,
    Hit,
    RateLimitStore,
    RateTable,
)

T = TypeVar("T")
Failure: TypeAlias = Literal["open", "closed"]


class SharedStore:
    """An app's rate-limit store behind a circuit breaker: what its limiters share.

    ``call`` answers None instead of raising when the store failed or ran past its
    budget, or is skipped while the circuit is open.
    """

    def __init__(
        self,
        store: RateLimitStore,
        ensure_open: Callable[[], Awaitable[None]],
        metrics: RateMetrics,
    ) -> None:
        self.store = store
        self.breaker = CircuitBreaker()
        self.last_error = ""
        self.used = False
        self._ensure_open = ensure_open
        self._metrics = metrics

    async def call(self, op: Callable[[RateLimitStore], Awaitable[T]]) -> T | None:
        """``op`` on the store (which bounds itself by its budget), or None if it failed."""
        if not self.breaker.allow():
            return None
        try:
            if not self.used:
                await self._ensure_open()
                self.used = True
            result = await op(self.store)
        except asyncio.CancelledError:
            self.breaker.abandon()
            raise
        except StoreUnavailableError as exc:
            self.breaker.failure()
            self._metrics.store_failures += 1
            self.last_error = str(exc)
            return None
        self.breaker.success()
        return result

    async def direct(self) -> RateLimitStore:
        """The store itself, opened (operations: usage, reset; errors propagate)."""
        await self._ensure_open()
        self.used = True
        return self.store


class RateLimiter:
    """Policies checked together for one request: ``await limiter.check(key, tier=...)``.

    Built by ``app.rate_limits.limiter(...)``. ``key`` is whose quota the request
    uses (see :func:`~conveyor.ratelimit.keys.rate_key`); ``tier`` picks each
    policy's rate (None: the first tier); ``cost`` is how many units it takes.
    ``scope="local"`` keeps every count in this process (no store round trip);
    ``failure`` says what a shared limiter does when its store is slow or down.
    """

    def __init__(
        self,
        policies: Sequence[RatePolicy],
        *,
        shared: SharedStore | None,
        table: RateTable,
        clock: Clock,
        metrics: RateMetrics,
        tiers: Sequence[str],
        failure: Failure = "open",
    ) -> None:
        if not policies:
            raise BadInputError("a rate limiter needs at least one policy")
        names = [policy.name for policy in policies]
        if len(set(names)) != len(names):
            raise BadInputError(f"a rate limiter checks each policy once, got {names}")
        if failure not in ("open", "closed"):
            raise BadInputError(f"failure must be 'open' or 'closed', got {failure!r}")
        self.policies = tuple(policies)
        self.failure: Failure = failure
        self.scope = "local" if shared is None else "shared"
        self._shared = shared
        self._table = table
        self._clock = clock
        self._decisions = metrics.decisions
        self._rejected = metrics.rejected
        self._tiers = tiers
        self._leases = any(p.algorithm is Algorithm.CONCURRENCY for p in policies)
        self._single = policies[0] if len(policies) == 1 else None

    def __repr__(self) -> str:
        names = ", ".join(policy.name for policy in self.policies)
        return f"<RateLimiter [{names}] scope={self.scope} failure={self.failure}>"

    # -- checks ------------------------------------------------------------------

    async def check(self, key: str, *, tier: str | None = None, cost: int = 1) -> RateDecision:
        """Charge ``key`` one request (``cost`` units) under every policy, if all admit it."""
        shared = self._shared
        if shared is None:
            return self.check_local(key, tier=tier, cost=cost)
        tier = self._tier(tier)
        hits = self._hits(key, tier, cost)
        token = secrets.token_hex(8) if self._leases else ""
        checked = await shared.call(lambda store: store.check(hits, token))
        if checked is None:
            if self.failure == "closed":
                self._count_unavailable(tier)
                raise RateLimitUnavailableError(
                    [policy.name for policy in self.policies], shared.last_error or "circuit open"
                )
            return self._local(key, hits, tier, token, degraded=True)
        self._count(hits, checked, tier, "shared")
        release = None
        if self._leases and checked.admitted:
            release = self._shared_release(hits, token)
        return RateDecision(checked.admitted, tier, False, hits, checked, release)

    def check_local(self, key: str, *, tier: str | None = None, cost: int = 1) -> RateDecision:
        """:meth:`check` on this process's counts alone, without waiting: what a local
        limiter does, and what a shared one falls back to (fail open)."""
        tier = self._tier(tier)
        single = self._single
        if single is None or self._leases:
            return self._local(key, self._hits(key, tier, cost), tier, "", degraded=False)
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            self._hits(key, tier, cost)  # raises the error
        shape = single.shape(tier, cost)
        checked = self._table.check_one(shape, key, self._clock.now_ms(), "")
        label = self._tier_label(tier)
        outcome = "allowed" if checked.admitted else "denied"
        self._decisions[single.name, label, outcome, "local"] += 1
        if not checked.admitted:
            self._rejected[label] += 1
        return RateDecision(checked.admitted, tier, False, (shape,), checked)

    async def hit(self, key: str, *, tier: str | None = None, cost: int = 1) -> RateDecision:
        """:meth:`check`, raising :class:`RateLimitedError` when the request is refused."""
        decision = await self.check(key, tier=tier, cost=cost)
        if not decision.allowed:
            raise refusal(decision)
        return decision

    @contextlib.asynccontextmanager
    async def hold(
        self, key: str, *, tier: str | None = None, cost: int = 1
    ) -> AsyncIterator[RateDecision]:
        """``async with limiter.hold(key):`` :meth:`hit`, then give back the concurrency
        slots the request took when the block ends (however it ends)."""
        decision = await self.hit(key, tier=tier, cost=cost)
        try:
            yield decision
        finally:
            await decision.release()

    # -- operations --------------------------------------------------------------

    async def usage(self, key: str, *, tier: str | None = None) -> RateDecision:
        """What a check of one unit would answer now, changing nothing (from the shared
        store; ``StoreUnavailableError`` if it cannot answer)."""
        tier = self._tier(tier)
        hits = self._hits(key, tier, 1)
        if self._shared is None:
            checked = self._table.check(hits, self._clock.now_ms(), "", charge=False)
        else:
            checked = await (await self._shared.direct()).peek(hits)
        return RateDecision(checked.admitted, tier, False, hits, checked)

    async def reset(self, key: str) -> None:
        """Forget ``key``'s usage under every policy of this limiter (all tiers)."""
        self._hits(key, None, 1)  # the key is checked like any other
        keys = [(key, policy.name) for policy in self.policies]
        self._table.reset(keys)
        if self._shared is not None:
            await (await self._shared.direct()).reset(keys)

    # -- helpers -----------------------------------------------------------------

    def _tier(self, tier: str | None) -> str | None:
        if tier is None:
            return self._tiers[0] if self._tiers else None
        if not isinstance(tier, str):
            raise BadInputError(f"a tier is a string, got {tier!r}")
        return tier

    def _tier_label(self, tier: str | None) -> str:
        """The tier as a metric label: a declared tier, or ``other`` (labels stay bounded)."""
        if tier is None:
            return ""
        return tier if tier in self._tiers else "other"

    def _hits(self, key: str, tier: str | None, cost: int) -> list[Hit]:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise BadInputError(f"a rate-limit key must be 1..{MAX_KEY_LENGTH} characters")
        return [policy.hit(key, tier, cost) for policy in self.policies]

    def _local(
        self, key: str, hits: list[Hit], tier: str | None, token: str, *, degraded: bool
    ) -> RateDecision:
        token = token or (secrets.token_hex(8) if self._leases else "")
        checked = self._table.check(hits, self._clock.now_ms(), token, charge=True)
        self._count(hits, checked, tier, "local")
        release = None
        if self._leases and checked.admitted:
            table = self._table

            async def release_locally() -> None:
                table.release(hits, token)

            release = release_locally
        return RateDecision(checked.admitted, tier, degraded, hits, checked, release)

    def _shared_release(self, hits: list[Hit], token: str) -> Callable[[], Awaitable[None]]:
        shared = self._shared
        assert shared is not None
        leased = [hit for hit in hits if hit.algorithm is Algorithm.CONCURRENCY]

        async def release() -> None:
            # A release that fails is not retried: the lease ends by itself.
            await shared.call(lambda store: store.release(leased, token))

        return release

    def _count(self, hits: list[Hit], checked: Checked, tier: str | None, store: str) -> None:
        label = self._tier_label(tier)
        decisions = self._decisions
        if checked.admitted:
            for hit in hits:
                decisions[hit.policy, label, "allowed", store] += 1
            return
        self._rejected[label] += 1
        for hit, state in zip(hits, checked.states, strict=True):
            if not state.allowed:
                decisions[hit.policy, label, "denied", store] += 1

    def _count_unavailable(self, tier: str | None) -> None:
        label = self._tier_label(tier)
        for policy in self.policies:
            self._decisions[policy.name, label, "unavailable", "shared"] += 1
