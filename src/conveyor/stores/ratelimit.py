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


Verdict = tuple[bool, Stored, int, int, int, int]
"""What a rule says of one hit: whether it admits the request, the state once charged,
then :class:`HitState`'s ``(value, extra)`` once charged and as the state stands."""


class Rule(Protocol):
    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> Verdict:
        """Whether ``hit`` admits the request on ``stored`` (None: no state), and more:
        see :data:`Verdict`."""
        ...

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        """When ``stored`` means nothing any more (ms): it may be dropped from then on."""
        ...


class Gcra:
    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> Verdict:
        now = now_ms * 1000
        base = stored if stored is not None and stored > now else now
        after = base + hit.cost * hit.interval_us
        return after - now <= hit.burst * hit.interval_us, after, after, 0, base, 0

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        return -(-int(stored) // 1000)


class FixedWindow:
    """A counter per window. A state from a later window than the clock's (a check
    stamped just before a window ended, arriving after one stamped just after) wins, so
    the count never goes back a window."""

    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> Verdict:
        index = now_ms // hit.window_ms
        count = 0
        if stored is not None and stored[0] >= index:
            index, count = stored
        charged = count + hit.cost
        return charged <= hit.limit, (index, charged), charged, 0, count, 0

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        return int((stored[0] + 1) * hit.window_ms)


class SlidingWindow:
    """Cloudflare's sliding-window counter, in integers (so Lua and SQLite agree exactly).

    The estimate is ``previous * (window - elapsed) / window + current``; a request
    passes when ``estimate + cost <= limit``, i.e. when
    ``previous * (window - elapsed) + (current + cost) * window <= limit * window``.
    As in a fixed window, a state from a later window than the clock's wins.
    """

    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> Verdict:
        window = hit.window_ms
        index = now_ms // window
        current = previous = 0
        if stored is not None and stored[0] == index - 1:
            previous = stored[1]
        elif stored is not None and stored[0] >= index:
            index, current, previous = stored
        elapsed = max(0, now_ms - index * window)
        charged = current + hit.cost
        allowed = previous * (window - elapsed) + charged * window <= hit.limit * window
        return allowed, (index, charged, previous), charged, previous, current, previous

    def expires_at(self, hit: Hit, stored: Stored) -> int:
        return int((stored[0] + 2) * hit.window_ms)


class Concurrency:
    """Slots held under leases: ``{token: lease expiry}``; a lease that ended is no slot.
    A token that holds a slot already takes it again (its lease starts anew)."""

    def admit(self, hit: Hit, stored: Stored, now_ms: int, token: str) -> Verdict:
        leases = {t: until for t, until in (stored or {}).items() if until > now_ms}
        allowed = len(leases) < hit.limit or token in leases
        standing = (len(leases), min(leases.values(), default=0))
        leases[token] = now_ms + hit.window_ms
        return allowed, leases, len(leases), min(leases.values()), *standing

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
    verdicts = [RULES[hit.algorithm].admit(hit, read(hit), now_ms, token) for hit in hits]
    admitted = all(verdict[0] for verdict in verdicts)
    if admitted and charge:
        states = [HitState(True, v[2], v[3]) for v in verdicts]
        return Checked(now_ms, True, states), {i: v[1] for i, v in enumerate(verdicts)}
    states = [HitState(v[0], v[4], v[5]) for v in verdicts]
    return Checked(now_ms, admitted, states), {}


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
        verdict = RULES[shape.algorithm].admit(shape, states.get(key), now_ms, token)
        if verdict[0]:
            states[key] = verdict[1]
            if len(states) > self.max_keys:
                self._shapes.setdefault(shape.policy, shape)
                self.trim(now_ms)
            return Checked(now_ms, True, [HitState(True, verdict[2], verdict[3])])
        return Checked(now_ms, False, [HitState(False, verdict[4], verdict[5])])

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
        stale = []
        for key, stored in self.states.items():
            shape = shapes.get(key[0])  # unknown until that policy's state is trimmed once
            if shape is not None and RULES[shape.algorithm].expires_at(shape, stored) <= now_ms:
                stale.append(key)
        for key in stale:
            del self.states[key]
        keep = self.max_keys * 9 // 10  # room, so the next writes do not trim again at once
        while len(self.states) > keep:
            del self.states[next(iter(self.states))]
