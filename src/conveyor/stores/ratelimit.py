"""The rate-limit store: every policy of one request decided in one atomic step.

A check hands the store one :class:`Hit` per policy (whose quota, which
algorithm, its limit and window, the request's cost). The store reads each
policy's stored state, asks every policy whether it admits the request, and
writes the consumed states only if all of them do: a request refused by one
policy takes nothing from the others. Each store does this in its own atomic
step (memory: one lock; SQLite: one transaction; Redis: one Lua script), and
the time of the decision is the backend's clock, never a server's.

The rule itself is written twice: here in Python (:data:`RULES`, which the
memory and SQLite stores and the per-process limiter run) and in
``redis/lua/ratelimit.lua``. ``tests/conformance/test_ratelimit.py`` keeps
them one rule. What a state means to a caller (remaining, reset, retry after)
is derived above the stores, in ``conveyor/ratelimit/quota.py``.

Stored states, by algorithm (all integers, times in ms unless said):

- ``gcra``: the theoretical arrival time of the next request, in µs.
- ``fixed-window``: ``(window index, count in it)``.
- ``sliding-window``: ``(window index, count in it, count in the one before)``.
- ``concurrency``: ``{lease token: lease expiry}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol

import msgspec

from conveyor.errors import BadInputError

MAX_KEY_LENGTH = 512
"""Longest subject or policy name a store accepts (they become key names)."""


class Algorithm(StrEnum):
    """How a policy counts."""

    GCRA = "gcra"
    """Generic cell rate algorithm: one stored time per key, exact, bursts up to ``burst``."""
    SLIDING_WINDOW = "sliding-window"
    """The current window's count plus the previous one's, weighted by their overlap."""
    FIXED_WINDOW = "fixed-window"
    """A counter per window of the clock; resets at each window's end."""
    CONCURRENCY = "concurrency"
    """Requests in flight, each holding a slot under a lease until released or expired."""

    @property
    def code(self) -> str:
        """One letter that names the algorithm in stored keys."""
        return _CODES[self]


_CODES = {
    Algorithm.GCRA: "g",
    Algorithm.SLIDING_WINDOW: "s",
    Algorithm.FIXED_WINDOW: "f",
    Algorithm.CONCURRENCY: "c",
}


class Hit(msgspec.Struct, frozen=True, gc=False):
    """One policy of one check, as a store applies it (a msgspec Struct: the per-process
    limiter builds one per check, and a Struct is built three times faster than a tuple
    class)."""

    subject: str
    """Whose quota (an API key's digest, a user, an address); keys of one subject share a
    Redis Cluster slot, so a check on one subject is one script."""
    policy: str
    algorithm: Algorithm
    limit: int
    """Requests per window (gcra, windows) or in flight (concurrency)."""
    window_ms: int
    """The window; for a concurrency policy, the lease: a slot not released by then comes
    back by itself."""
    interval_us: int
    """gcra: the emission interval, ``window / limit`` in µs (0 for the other algorithms)."""
    burst: int
    """gcra: units admitted at once from an idle start (the limit unless set)."""
    cost: int
    """Units the request takes (concurrency policies take one slot whatever the cost)."""


class HitState(msgspec.Struct, frozen=True, gc=False):
    """What a store answers for one hit, read after the step."""

    allowed: bool
    """Whether this policy alone admits the request."""
    value: int
    """gcra: the arrival time in µs (never before now); windows: the current window's count;
    concurrency: leases held."""
    extra: int
    """sliding-window: the previous window's count; concurrency: the earliest lease expiry
    (ms, 0 when none is held); otherwise 0."""


class Checked(msgspec.Struct, frozen=True):
    """A store's answer to one check (or read)."""

    now_ms: int
    """The clock reading the decision was made at."""
    admitted: bool
    """Every policy admitted, and (for a check) every one was charged."""
    states: list[HitState]


class RateLimitStore(Protocol):
    """Where rate-limit state lives: one per backend (``backend.rate_limits``)."""

    budget: float
    """Seconds a call may take: each answers, or raises ``StoreUnavailableError``, within
    about this long (the app's ``rate_limit_budget``, else the store's default)."""

    async def check(self, hits: Sequence[Hit], token: str) -> Checked:
        """Charge every hit if all admit the request (all or nothing). Concurrency
        hits take a slot under ``token`` until :meth:`release` or the lease ends."""
        ...

    async def peek(self, hits: Sequence[Hit]) -> Checked:
        """What :meth:`check` would answer now, changing nothing."""
        ...

    async def release(self, hits: Sequence[Hit], token: str) -> None:
        """Give back the slots ``token`` holds under these concurrency hits."""
        ...

    async def reset(self, keys: Sequence[tuple[str, str]]) -> None:
        """Forget the state of each ``(subject, policy)``, whatever its algorithm."""
        ...

    async def ping(self) -> None:
        """One cheap round trip; ``StoreUnavailableError`` when it fails."""
        ...

    async def close(self) -> None: ...


def check_key(what: str, value: str) -> None:
    """``BadInputError`` unless ``value`` can name a stored quota."""
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
        raise BadInputError(f"a rate-limit {what} must be 1..{MAX_KEY_LENGTH} characters")


# -- the rule, in Python ---------------------------------------------------------------


Stored = Any
"""A stored state (see the module docstring), or None for none."""


class Rule(Protocol):
    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> tuple[bool, Stored]:
        """Whether ``hit`` admits the request on ``stored``, and the state once charged."""
        ...

    def observe(self, hit: Hit, stored: Stored, now_ms: int) -> tuple[int, int]:
        """``(value, extra)`` of ``stored`` as seen at ``now_ms`` (see :class:`HitState`)."""
        ...

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        """When ``stored`` means nothing any more (ms): it may be dropped from then on."""
        ...


class Gcra:
    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> tuple[bool, Stored]:
        now = now_ms * 1000
        base = stored if stored is not None and stored > now else now
        after = base + hit.cost * hit.interval_us
        return after - now <= hit.burst * hit.interval_us, after

    def observe(self, hit: Hit, stored: Stored, now_ms: int) -> tuple[int, int]:
        now = now_ms * 1000
        return (stored if stored is not None and stored > now else now), 0

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        return -(-int(stored) // 1000)


class FixedWindow:
    """A counter per window. A state from a later window than the clock's (a check
    stamped just before a window ended, arriving after one stamped just after) wins, so
    the count never goes back a window."""

    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> tuple[bool, Stored]:
        index, count = self._current(hit, stored, now_ms)
        return count + hit.cost <= hit.limit, (index, count + hit.cost)

    def observe(self, hit: Hit, stored: Stored, now_ms: int) -> tuple[int, int]:
        return self._current(hit, stored, now_ms)[1], 0

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        return int((stored[0] + 1) * hit.window_ms)

    @staticmethod
    def _current(hit: Hit, stored: Stored, now_ms: int) -> tuple[int, int]:
        index = now_ms // hit.window_ms
        if stored is None or stored[0] < index:
            return index, 0
        return stored[0], stored[1]


class SlidingWindow:
    """Cloudflare's sliding-window counter, in integers (so Lua and SQLite agree exactly).

    The estimate is ``previous * (window - elapsed) / window + current``; a request
    passes when ``estimate + cost <= limit``, i.e. when
    ``previous * (window - elapsed) + (current + cost) * window <= limit * window``.
    As in a fixed window, a state from a later window than the clock's wins.
    """

    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> tuple[bool, Stored]:
        window = hit.window_ms
        index, current, previous = self._current(hit, stored, now_ms)
        elapsed = max(0, now_ms - index * window)
        used = previous * (window - elapsed) + (current + hit.cost) * window
        return used <= hit.limit * window, (index, current + hit.cost, previous)

    def observe(self, hit: Hit, stored: Stored, now_ms: int) -> tuple[int, int]:
        _, current, previous = self._current(hit, stored, now_ms)
        return current, previous

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        return int((stored[0] + 2) * hit.window_ms)

    @staticmethod
    def _current(hit: Hit, stored: Stored, now_ms: int) -> tuple[int, int, int]:
        """``(window index, its count, the previous window's count)`` at ``now_ms``."""
        index = now_ms // hit.window_ms
        if stored is None or stored[0] < index - 1:
            return index, 0, 0
        if stored[0] == index - 1:
            return index, 0, stored[1]
        return stored[0], stored[1], stored[2]


class Concurrency:
    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> tuple[bool, Stored]:
        leases = {t: until for t, until in (stored or {}).items() if until > now_ms}
        allowed = len(leases) < hit.limit or token in leases
        leases[token] = now_ms + hit.window_ms
        return allowed, leases

    def observe(self, hit: Hit, stored: Stored, now_ms: int) -> tuple[int, int]:
        live = [until for until in (stored or {}).values() if until > now_ms]
        return len(live), min(live, default=0)

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        return max(stored.values(), default=0)


RULES: dict[Algorithm, Rule] = {
    Algorithm.GCRA: Gcra(),
    Algorithm.FIXED_WINDOW: FixedWindow(),
    Algorithm.SLIDING_WINDOW: SlidingWindow(),
    Algorithm.CONCURRENCY: Concurrency(),
}


def decide(
    hits: Sequence[Hit],
    read: Callable[[Hit], Stored],
    now_ms: int,
    token: str,
    *,
    charge: bool,
) -> tuple[Checked, dict[int, Stored]]:
    """Apply every hit to the states ``read`` returns: the answer, and the states to
    write (by hit index): all of them if every hit admits and ``charge``, else none."""
    stored = [read(hit) for hit in hits]
    verdicts = [
        RULES[hit.algorithm].admit(hit, state, now_ms, token)
        for hit, state in zip(hits, stored, strict=True)
    ]
    admitted = all(allowed for allowed, _ in verdicts)
    writes = {i: after for i, (_, after) in enumerate(verdicts)} if admitted and charge else {}
    states = [
        HitState(allowed, *RULES[hit.algorithm].observe(hit, writes.get(i, stored[i]), now_ms))
        for i, (hit, (allowed, _)) in enumerate(zip(hits, verdicts, strict=True))
    ]
    return Checked(now_ms, admitted, states), writes


def released(stored: Stored, token: str) -> Stored:
    """A concurrency state without ``token``'s slot (None once no slot is held)."""
    if not stored or token not in stored:
        return stored
    rest = {t: until for t, until in stored.items() if t != token}
    return rest or None


class RateTable:
    """Rate-limit states in a dict: the memory store and the per-process limiter.

    Not locked: the memory store takes its backend's lock around each call, and the
    per-process limiter runs on one event loop, where a call that never awaits is
    already atomic. Bounded by ``max_keys``: past it, states that mean nothing any
    more are dropped, then the oldest (a dropped state only makes a limit forget).
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self.states: dict[tuple[str, str], Stored] = {}
        """``(policy, subject)`` -> stored state."""
        self._shapes: dict[str, Hit] = {}
        """The latest hit of each policy: how to tell when its states expire."""

    def check(self, hits: Sequence[Hit], now_ms: int, token: str, *, charge: bool) -> Checked:
        states = self.states
        checked, writes = decide(
            hits, lambda hit: states.get((hit.policy, hit.subject)), now_ms, token, charge=charge
        )
        for index, after in writes.items():
            hit = hits[index]
            states[hit.policy, hit.subject] = after
            self._shapes[hit.policy] = hit
        if writes and len(states) > self.max_keys:
            self.trim(now_ms)
        return checked

    def check_one(self, shape: Hit, subject: str, now_ms: int, token: str) -> Checked:
        """:meth:`check` of one policy (``shape``: its hit, whatever the subject), charged:
        the per-process limiter's path, kept short."""
        key = (shape.policy, subject)
        states = self.states
        rule = RULES[shape.algorithm]
        stored = states.get(key)
        allowed, after = rule.admit(shape, stored, now_ms, token)
        if allowed:
            stored = states[key] = after
            if len(states) > self.max_keys:
                self._shapes[shape.policy] = shape
                self.trim(now_ms)
        return Checked(now_ms, allowed, [HitState(allowed, *rule.observe(shape, stored, now_ms))])

    def release(self, hits: Sequence[Hit], token: str) -> None:
        for hit in hits:
            if hit.algorithm is not Algorithm.CONCURRENCY:
                continue
            key = (hit.policy, hit.subject)
            after = released(self.states.get(key), token)
            if after is None:
                self.states.pop(key, None)
            else:
                self.states[key] = after

    def reset(self, keys: Sequence[tuple[str, str]]) -> None:
        for subject, policy in keys:
            self.states.pop((policy, subject), None)

    def trim(self, now_ms: int) -> None:
        """Drop states whose time has passed, then the oldest, down to ``max_keys``."""
        shapes = self._shapes
        stale = [
            key
            for key, stored in self.states.items()
            if RULES[shapes[key[0]].algorithm].expires_at(shapes[key[0]], stored) <= now_ms
        ]
        for key in stale:
            del self.states[key]
        keep = self.max_keys * 9 // 10  # room, so the next writes do not trim again at once
        while len(self.states) > keep:
            del self.states[next(iter(self.states))]
