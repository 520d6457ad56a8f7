"""Compute on miss for one cache namespace: the hot path of ``@cached`` and ``get_or_set``.

:meth:`Resolver.fresh_local` answers a fresh local hit in microseconds
(starting an XFetch early refresh when expiry nears); :meth:`Resolver.resolve_slow`
does the rest: the shared tier, joining or starting the one computation of a
key (``stampede.py``), and stale-while-revalidate.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import msgspec

from conveyor.cache.core import CacheCore
from conveyor.cache.decoding import MISSING, decode
from conveyor.cache.options import TTL, CacheOptions, _Default, resolve_ttl
from conveyor.cache.serializer import has_header, open_envelope
from conveyor.cache.stampede import Recipe, computation, is_fresh
from conveyor.cache.stats import NamespaceStats
from conveyor.errors import BadInputError

RecipeSource = Recipe | Callable[[], Recipe]


class Resolver:
    """Reads through both tiers and computes once on a miss, for one namespace."""

    def __init__(self, core: CacheCore, options: CacheOptions, namespace: str) -> None:
        self.namespace = namespace
        self._core = core
        self._local = core.local
        self._clock = core.clock
        self._stats: NamespaceStats = core.namespace_stats(namespace)
        self._default_ttl = options.default_ttl
        self._stale_ttl = options.stale_ttl
        self._presets = options.presets

    def ttl_seconds(self, ttl: TTL | _Default) -> float | None:
        """Seconds of a TTL (a number, a timedelta, a preset name or the default)."""
        return resolve_ttl(ttl, self._default_ttl, self._presets)

    def tags(self, tags: Iterable[str]) -> list[str]:
        """Tags as stored: scoped to the namespace."""
        return [f"{self.namespace}:{tag}" for tag in tags]

    def stale_ttl(self, stale_ttl: float | None) -> float:
        return self._stale_ttl if stale_ttl is None else stale_ttl

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background; the cache waits for it when it closes."""
        self._core.spawn(work)

    def recipe(
        self,
        full: str,
        factory: Callable[[], Awaitable[Any]],
        ttl: TTL | _Default,
        tags: Iterable[str],
        stale_ttl: float | None,
        hard_timeout: float | None,
    ) -> Recipe:
        return Recipe(
            full,
            factory,
            self.ttl_seconds(ttl),
            self.stale_ttl(stale_ttl),
            self.tags(tags),
            hard_timeout,
            self._stats,
        )

    def fresh_local(
        self, full: str, decoder: msgspec.json.Decoder[Any] | None, recipe: RecipeSource
    ) -> Any:
        """The hot path: a fresh local value or ``MISSING`` (may start an early refresh)."""
        entry = self._local.get(full)
        if entry is None:
            return MISSING
        now = self._clock.now_ms() / 1000
        if entry.fresh_until <= now:
            return MISSING
        value = decode(entry.body, decoder)
        if value is MISSING:
            return MISSING
        self._stats.local_hits += 1
        if entry.compute_ms and self._core.early_refresh_beta:
            # XFetch: refresh with a probability that grows as expiry nears, scaled by
            # how long the value took to compute.
            gap = entry.compute_ms / 1000 * self._core.early_refresh_beta
            gap *= -math.log(random.random() or 1e-12)
            if now + gap >= entry.fresh_until and full not in self._core.inflight:
                self._stats.early_refreshes += 1
                computation(
                    self._core, recipe if isinstance(recipe, Recipe) else recipe(), wait=False
                )
        return value

    async def resolve(
        self, recipe: Recipe, decoder: msgspec.json.Decoder[Any] | None, soft_timeout: float | None
    ) -> Any:
        value = self.fresh_local(recipe.key, decoder, recipe)
        if value is not MISSING:
            return value
        return await self.resolve_slow(recipe, decoder, soft_timeout)

    async def resolve_slow(
        self, recipe: Recipe, decoder: msgspec.json.Decoder[Any] | None, soft_timeout: float | None
    ) -> Any:
        stats = self._stats
        task = self._core.inflight.get(recipe.key)
        stale = MISSING
        if task is None:
            found = await self.lookup(recipe.key, decoder)
            if found is not MISSING and found[0]:
                return found[1]
            stale = MISSING if found is MISSING else found[1]
            task = computation(self._core, recipe)
        if stale is not MISSING:
            # Stale-while-revalidate: the task refreshes behind us. With a soft timeout,
            # give the refresh that long first.
            if soft_timeout is not None:
                done, _ = await asyncio.wait({task}, timeout=soft_timeout)
                refreshed = task.result() if done and not task.exception() else None
                if refreshed is not None:
                    return self.decoded(recipe.key, refreshed, decoder)
            stats.stale += 1
            return stale
        stats.misses += 1
        data = await asyncio.shield(task)
        while data is None:  # an early refresh that found another process computing
            data = await asyncio.shield(computation(self._core, recipe))
        return self.decoded(recipe.key, data, decoder)

    @staticmethod
    def decoded(full: str, data: bytes, decoder: msgspec.json.Decoder[Any] | None) -> Any:
        value = decode(open_envelope(data).body, decoder)
        if value is MISSING:
            raise BadInputError(f"the value computed for {full!r} does not decode as asked")
        return value

    async def lookup(self, full: str, decoder: msgspec.json.Decoder[Any] | None) -> Any:
        """(fresh, value) from either tier, or MISSING."""
        entry = self._local.get(full)
        stale: Any = MISSING
        if entry is not None:
            stale = decode(entry.body, decoder)
        version = await self._core.read_version(full)
        data = await self._core.coalesced_get(full)
        if isinstance(data, bytes):
            value = decode(open_envelope(data).body, decoder)
            if value is not MISSING:
                if is_fresh(data, self._clock.now_ms()):
                    if has_header(data):
                        self._local.fill(full, data, version)
                    self._stats.shared_hits += 1
                    return (True, value)
                stale = value
        return MISSING if stale is MISSING else (False, stale)
