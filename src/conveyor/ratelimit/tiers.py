"""An application's tier function, cached: API key (or user) -> tier.

The function is the application's (a database or billing lookup); a request
must not pay for it every time. Results are kept ``ttl`` seconds of the app's
clock, at most ``max_entries`` of them, and concurrent lookups of one key share
one call. A lookup that raises is not cached.

>>> tier_of = app.rate_limits.tier_lookup(plans.tier_for_api_key, ttl=300)
>>> decision = await limiter.check(rate_key(api_key=key), tier=await tier_of(key))
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import BadInputError

K = TypeVar("K")


class TierLookup(Generic[K]):
    """``await lookup(key)`` -> the tier ``fn(key)`` gave, cached ``ttl`` seconds."""

    def __init__(
        self,
        fn: Callable[[K], str | Awaitable[str]],
        *,
        ttl: float = 60.0,
        max_entries: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not ttl >= 0 or max_entries < 1:
            raise BadInputError("a tier lookup needs ttl >= 0 seconds and max_entries >= 1")
        self._fn = fn
        self._ttl_ms = round(ttl * 1000)
        self._max = max_entries
        self._clock = clock
        self._cached: OrderedDict[K, tuple[str, int]] = OrderedDict()
        self._pending: dict[K, asyncio.Future[str]] = {}
        self.calls = 0
        """How many times the application's function ran."""

    async def __call__(self, key: K) -> str:
        found = self._cached.get(key)
        if found is not None and found[1] > self._clock.now_ms():
            return found[0]
        task = self._pending.get(key)
        if task is None:
            # A task no caller owns: a caller that goes away cancels only its own wait.
            task = self._pending[key] = asyncio.ensure_future(self._lookup(key))
            task.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(task)

    async def _lookup(self, key: K) -> str:
        self.calls += 1
        tier = self._fn(key)
        if inspect.isawaitable(tier):
            tier = await tier
        if not isinstance(tier, str):
            raise BadInputError(f"the tier function returned {tier!r}, not a tier name")
        self._remember(key, tier)
        return tier

    def _settled(self, key: K, task: asyncio.Future[str]) -> None:
        self._pending.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: an error no caller waited for is not logged

    def _remember(self, key: K, tier: str) -> None:
        self._cached[key] = (tier, self._clock.now_ms() + self._ttl_ms)
        self._cached.move_to_end(key)
        while len(self._cached) > self._max:
            self._cached.popitem(last=False)

    def forget(self, key: K | None = None) -> None:
        """Drop ``key``'s cached tier (every key's with None): after an upgrade."""
        if key is None:
            self._cached.clear()
        else:
            self._cached.pop(key, None)
