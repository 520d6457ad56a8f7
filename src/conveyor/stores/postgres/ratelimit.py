"""Rate limits in PostgreSQL: every check is one call of ``{schema}.rate_check``.

The rule is the PL/pgSQL function in ``sql/functions/ratelimit.sql`` (one round
trip, each key locked for its transaction, so the checks of one key are decided
one after the other, whatever the number of processes). The store has a small
pool of its own, opened on first use, so a check per request never queues
behind the workers' exchanges, and every call is bounded by the budget. Its
tables live in the backend's schema, which the backend's open makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from conveyor.clock import Clock
from conveyor.stores.postgres.connection import PostgresConnection
from conveyor.stores.ratelimit import Checked, Hit, HitState

POOL_SIZE = 4
"""Connections of the rate-limit pool (a check holds one for one round trip)."""
SWEEP_EVERY_MS = 10_000
"""How often (app clock) a process's check also deletes the states whose time has passed."""

_CHECK = (
    "SELECT * FROM {schema}.rate_check($1::boolean, $2::bigint, $3::text, $4::boolean,"
    " $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[],"
    " $11::bigint[], $12::bigint[])"
)
_RELEASE = "SELECT {schema}.rate_release($1::text, $2::text[], $3::text[])"
_RESET = "SELECT {schema}.rate_reset($1::text[], $2::text[])"


class PostgresRateLimitStore:
    """A :class:`~conveyor.stores.ratelimit.RateLimitStore` in the PostgreSQL schema."""

    DEFAULT_BUDGET = 0.25
    """A network round trip to a database that may be busy with job traffic."""

    def __init__(self, url: str, clock: Clock, budget: float | None = None) -> None:
        self.budget = budget or self.DEFAULT_BUDGET
        self.db = PostgresConnection(url, timeout=self.budget)
        self.clock = clock
        self._opening: asyncio.Lock | None = None
        self._swept_at = 0

    async def _ready(self) -> None:
        if self.db.is_open:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not self.db.is_open:
                await self.db.open(max_size=POOL_SIZE)

    async def check(self, hits: Sequence[Hit], token: str) -> Checked:
        return await self._call(hits, token, charge=True)

    async def peek(self, hits: Sequence[Hit]) -> Checked:
        return await self._call(hits, "", charge=False)

    async def _call(self, hits: Sequence[Hit], token: str, *, charge: bool) -> Checked:
        await self._ready()
        now = self.clock.now_ms()
        sweep = charge and now - self._swept_at >= SWEEP_EVERY_MS
        if sweep:
            self._swept_at = now
        row = await self.db.fetchrow(
            _CHECK,
            charge,
            now,
            token,
            sweep,
            [hit.subject for hit in hits],
            [hit.policy for hit in hits],
            [hit.algorithm.code for hit in hits],
            [hit.limit for hit in hits],
            [hit.window_ms for hit in hits],
            [hit.interval_us for hit in hits],
            [hit.burst for hit in hits],
            [hit.cost for hit in hits],
        )
        assert row is not None
        states = [
            HitState(ok, value, extra)
            for ok, value, extra in zip(row["allowed"], row["vals"], row["extras"], strict=True)
        ]
        return Checked(now, row["admitted"], states)

    async def release(self, hits: Sequence[Hit], token: str) -> None:
        await self._ready()
        await self.db.execute(
            _RELEASE, token, [hit.subject for hit in hits], [hit.policy for hit in hits]
        )

    async def reset(self, keys: Sequence[tuple[str, str]]) -> None:
        await self._ready()
        await self.db.execute(
            _RESET, [subject for subject, _ in keys], [policy for _, policy in keys]
        )

    async def ping(self) -> None:
        await self._ready()
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()
