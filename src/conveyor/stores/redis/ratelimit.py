"""Rate limits on Redis: one ``ratelimit.lua`` script per check, sent at most once.

Keys are ``cv:rl:{<subject>}:<policy>:<algorithm code>``: every policy of one
subject shares the subject's hash tag, so on a cluster a check on one subject
is one script on one slot. A check over several subjects on a cluster (a user's
and an address's quota) is one script per slot, in order; when a later one
refuses, the earlier ones are refunded, so the request still takes nothing
(though another request may see the charge for that instant). On one server
every check is one script, whatever its keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.crc import key_slot

from conveyor.clock import Clock
from conveyor.stores.ratelimit import Checked, Hit, HitState
from conveyor.stores.redis.connection import RedisConnection

WHAT = "rate-limit check"


def state_key(subject: str, policy: str, code: str) -> str:
    return f"cv:rl:{{{subject}}}:{policy}:{code}"


def _args(hits: Sequence[Hit]) -> list[Any]:
    args: list[Any] = []
    for hit in hits:
        code = hit.algorithm.code
        args += [code, hit.limit, hit.window_ms, hit.interval_us, hit.burst, hit.cost]
    return args


def _keys(hits: Sequence[Hit]) -> list[str]:
    return [state_key(hit.subject, hit.policy, hit.algorithm.code) for hit in hits]


def _checked(reply: list[int], now: int) -> Checked:
    states = [HitState(reply[i] == 1, reply[i + 1], reply[i + 2]) for i in range(1, len(reply), 3)]
    return Checked(now, reply[0] == 1, states)


class RedisRateLimitStore:
    """A :class:`~conveyor.stores.ratelimit.RateLimitStore` on Redis.

    It opens a connection of its own (on first use) whose socket timeouts are the
    budget: redis-py then bounds every read, write and connect by it, with no
    timer of ours on top, and checks never queue behind job traffic.
    """

    DEFAULT_BUDGET = 0.05

    def __init__(self, url: str, clock: Clock, budget: float | None = None) -> None:
        self.budget = budget or self.DEFAULT_BUDGET
        self._conn = RedisConnection(url, timeout=self.budget)
        self._clock = clock
        self._open = False
        self._opening: asyncio.Lock | None = None

    async def _ready(self) -> None:
        if self._open:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not self._open:
                await self._conn.open()
                self._open = True

    async def check(self, hits: Sequence[Hit], token: str) -> Checked:
        if not self._open:
            await self._ready()
        if self._conn.is_cluster and len({hit.subject for hit in hits}) > 1:
            return await self._check_slots(hits, self._groups(hits), self._clock.now_ms(), token)
        now = self._clock.now_ms()  # the hot path: one script, as few layers as can be
        args = ["check", now, token]
        for hit in hits:
            args += [hit.algorithm.code, hit.limit, hit.window_ms, hit.interval_us, hit.burst]
            args.append(hit.cost)
        reply = await self._conn.run_script_once("ratelimit", _keys(hits), args, what=WHAT)
        return _checked(reply, now)

    async def peek(self, hits: Sequence[Hit]) -> Checked:
        await self._ready()
        now = self._clock.now_ms()
        states: list[HitState | None] = [None] * len(hits)
        for indexes in self._groups(hits):
            part = await self._run("peek", [hits[i] for i in indexes], now, "")
            for i, state in zip(indexes, part.states, strict=True):
                states[i] = state
        found = [state for state in states if state is not None]
        return Checked(now, all(state.allowed for state in found), found)

    async def release(self, hits: Sequence[Hit], token: str) -> None:
        await self._ready()
        for indexes in self._groups(hits):
            await self._send("release", [hits[i] for i in indexes], self._clock.now_ms(), token)

    async def reset(self, keys: Sequence[tuple[str, str]]) -> None:
        await self._ready()
        for subject, policy in keys:  # a subject's keys share a slot: one DEL each
            names = [state_key(subject, policy, code) for code in "gfsc"]
            await self._conn.call(self._conn.client.delete, *names)

    async def ping(self) -> None:
        await self._ready()
        await self._conn.ping()

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self._conn.close()

    # -- helpers ---------------------------------------------------------------------

    def _groups(self, hits: Sequence[Hit]) -> list[list[int]]:
        """Indexes of ``hits`` by cluster slot (one group on a single server)."""
        if not self._conn.is_cluster or len({hit.subject for hit in hits}) == 1:
            return [list(range(len(hits)))]
        groups: dict[int, list[int]] = {}
        for i, hit in enumerate(hits):
            groups.setdefault(key_slot(state_key(hit.subject, "", "").encode()), []).append(i)
        return list(groups.values())

    async def _send(self, op: str, hits: Sequence[Hit], now: int, token: str) -> Any:
        args = [op, now, token, *_args(hits)]
        return await self._conn.run_script_once("ratelimit", _keys(hits), args, what=WHAT)

    async def _run(self, op: str, hits: Sequence[Hit], now: int, token: str) -> Checked:
        return _checked(await self._send(op, hits, now, token), now)

    async def _check_slots(
        self, hits: Sequence[Hit], groups: list[list[int]], now: int, token: str
    ) -> Checked:
        states: list[HitState | None] = [None] * len(hits)
        charged: list[list[int]] = []
        admitted = True
        for indexes in groups:
            part = await self._run(
                "check" if admitted else "peek", [hits[i] for i in indexes], now, token
            )
            if admitted and part.admitted:
                charged.append(indexes)
            elif admitted:
                admitted = False
                for done in charged:  # give back what the earlier slots took, then look again
                    done_hits = [hits[i] for i in done]
                    await self._send("refund", done_hits, now, token)
                    again = await self._run("peek", done_hits, now, token)
                    for i, state in zip(done, again.states, strict=True):
                        states[i] = state
            for i, state in zip(indexes, part.states, strict=True):
                states[i] = state
        found = [state for state in states if state is not None]
        return Checked(now, admitted, found)
