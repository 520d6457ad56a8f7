"""A rate-limit policy: a name, an algorithm, and a rate for each tier.

>>> api = RatePolicy("api", {"free": "20/minute", "pro": "100/minute"})
>>> api.rate("pro")
Rate(limit=100, window=60.0)
>>> login = RatePolicy("login", "5/minute", algorithm="fixed-window")   # every tier alike
>>> exports = RatePolicy("exports", {"free": 1, "pro": 4}, algorithm="concurrency", lease=300)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias

import msgspec

from conveyor.errors import BadInputError
from conveyor.ratelimit.rates import MAX_LIMIT, Rate, RateLike, to_rate
from conveyor.stores.ratelimit import MAX_KEY_LENGTH, Algorithm, Hit

AlgorithmName: TypeAlias = Literal["gcra", "sliding-window", "fixed-window", "concurrency"]
DEFAULT_LEASE = 60.0
"""Seconds a concurrency slot is held unless released first (a crashed holder's comes back)."""


class RatePolicy:
    """A named limit with a rate per tier (or one rate for every tier).

    ``algorithm``: ``"gcra"`` (the default: exact, one stored value per key, admits up
    to ``burst`` requests at once from idle, then one per ``window / limit``),
    ``"sliding-window"``, ``"fixed-window"`` or ``"concurrency"`` (requests in flight:
    a rate is then an int, the slots, each held at most ``lease`` seconds).
    ``burst`` (GCRA only) defaults to the limit, which admits ``limit`` requests at once.
    Tiers keep the order they are given in: the next tier of ``"free"`` is the one
    given after it.
    """

    __slots__ = ("_hits", "_rates", "algorithm", "burst", "lease", "name")

    def __init__(
        self,
        name: str,
        rates: RateLike | int | Mapping[str, RateLike | int],
        *,
        algorithm: AlgorithmName | Algorithm = "gcra",
        burst: int | None = None,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        if not isinstance(name, str) or not name or len(name) > MAX_KEY_LENGTH or ":" in name:
            raise BadInputError(
                f"a rate-limit policy's name must be 1..{MAX_KEY_LENGTH} characters"
                f" without ':', got {name!r}"
            )
        try:
            self.algorithm = Algorithm(algorithm)
        except ValueError:
            known = ", ".join(a.value for a in Algorithm)
            raise BadInputError(f"policy {name}: algorithm must be one of {known}") from None
        if burst is not None and (
            self.algorithm is not Algorithm.GCRA or not 1 <= burst <= MAX_LIMIT
        ):
            raise BadInputError(f"policy {name}: burst is for gcra policies, 1..{MAX_LIMIT}")
        self.name = name
        self.burst = burst
        self.lease = lease
        tiers = rates if isinstance(rates, Mapping) else {"": rates}
        if not tiers:
            raise BadInputError(f"policy {name}: give a rate, or a rate for each tier")
        self._rates = {tier: self._rate(tier, value) for tier, value in tiers.items()}
        self._hits: dict[tuple[str | None, int], Hit] = {}

    def _rate(self, tier: str, value: RateLike | int) -> Rate:
        if not isinstance(tier, str):
            raise BadInputError(f"policy {self.name}: tier names are strings, got {tier!r}")
        try:
            if self.algorithm is Algorithm.CONCURRENCY and isinstance(value, int):
                return Rate(value, self.lease)
            if isinstance(value, int):
                raise BadInputError(f"a bare number is a concurrency limit, got {value!r}")
            return to_rate(value)
        except BadInputError as exc:
            where = f" tier {tier!r}" if tier else ""
            raise BadInputError(f"policy {self.name}{where}: {exc}") from None

    @property
    def tiers(self) -> list[str]:
        """The tiers this policy names, in order (empty: one rate for every tier)."""
        return [tier for tier in self._rates if tier]

    def rate(self, tier: str | None = None) -> Rate:
        """The rate of ``tier`` (None: the first tier). ``BadInputError`` for a tier this
        policy does not name."""
        rates = self._rates
        if "" in rates:
            return rates[""]
        if tier is None:
            return next(iter(rates.values()))
        found = rates.get(tier)
        if found is None:
            raise BadInputError(
                f"rate-limit policy {self.name!r} has no rate for tier {tier!r}"
                f" (it has {', '.join(rates)})"
            )
        return found

    def tier_of(self, tier: str | None) -> str | None:
        """The tier a check with ``tier`` is counted under (None for a policy of one rate)."""
        if "" in self._rates:
            return tier
        return next(iter(self._rates)) if tier is None else tier

    def hit(self, subject: str, tier: str | None, cost: int) -> Hit:
        """The store's view of one check of ``subject`` under this policy."""
        return msgspec.structs.replace(self.shape(tier, cost), subject=subject)

    def shape(self, tier: str | None, cost: int) -> Hit:
        """The hit of this policy for ``tier`` and ``cost`` with an empty subject
        (cached: the per-process limiter keys its states apart)."""
        key = (tier if "" not in self._rates else "", cost)
        shape = self._hits.get(key)
        if shape is None:
            shape = self._shape(tier, cost)
            if len(self._hits) < 64:  # a few tiers x the costs in use, never unbounded
                self._hits[key] = shape
        return shape

    def _shape(self, tier: str | None, cost: int) -> Hit:
        rate = self.rate(tier)
        burst = self.burst or rate.limit
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
            raise BadInputError(f"a rate-limit cost is an integer >= 1, got {cost!r}")
        capacity = burst if self.algorithm is Algorithm.GCRA else rate.limit
        if cost > capacity and self.algorithm is not Algorithm.CONCURRENCY:
            raise BadInputError(
                f"cost {cost} is more than policy {self.name!r} ever admits at once ({capacity})"
            )
        window_ms = rate.window_ms
        interval_us = 0
        if self.algorithm is Algorithm.GCRA:
            interval_us = max(1, (window_ms * 2000 + rate.limit) // (2 * rate.limit))
        return Hit("", self.name, self.algorithm, rate.limit, window_ms, interval_us, burst, cost)

    def describe(self) -> dict[str, object]:
        """The policy as plain data (the CLI's listing, the settings' form)."""
        concurrency = self.algorithm is Algorithm.CONCURRENCY
        rates: dict[str, object] = {
            tier or "*": rate.limit if concurrency else str(rate)
            for tier, rate in self._rates.items()
        }
        described: dict[str, object] = {"name": self.name, "algorithm": self.algorithm.value}
        described["rates"] = rates
        if self.burst is not None:
            described["burst"] = self.burst
        if self.algorithm is Algorithm.CONCURRENCY:
            described["lease"] = self.lease
        return described

    def __repr__(self) -> str:
        return f"RatePolicy({self.name!r}, {self.describe()['rates']!r}, {self.algorithm.value!r})"
