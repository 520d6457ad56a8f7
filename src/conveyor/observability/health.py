"""Health as an aggregate of component checks.

Liveness never depends on a dependency (a dead store must not get the
process restarted in a loop); readiness does. Later components (cache,
events, HTTP) add their own checks with :meth:`Health.add_check`.

Checks run in parallel, each within its own timeout (a check that does not
answer in time is DOWN, never a hang). A report may be reused for a short
while (``readiness(max_age=...)``): probes from several load balancers then
cost the store one round of checks, and callers that arrive while a round
is running wait for it instead of starting another.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """Health of a component or of the whole app."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The result of one health check.

    ``duration_ms`` is measured by :class:`Health` (it is the check's
    observed latency); a check leaves it at 0. A check that reads a value
    worth reporting (the store's eviction policy) gives it as ``observed``
    under the name ``measurement`` (``/health`` shows it as
    ``"<check>:<measurement>"``).
    """

    status: Status
    detail: str = ""
    duration_ms: float = 0.0
    measurement: str = ""
    observed: str | float | None = None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Overall status and every check's result, as of ``checked_at`` (Unix seconds)."""

    status: Status
    checks: dict[str, CheckResult] = field(default_factory=dict)
    checked_at: float = field(default_factory=time.time)
    critical: frozenset[str] = frozenset()
    """Names of the checks whose failure makes the whole report DOWN."""

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "checks": {name: _check_dict(c) for name, c in self.checks.items()},
        }


def _check_dict(result: CheckResult) -> dict[str, object]:
    found: dict[str, object] = {
        "status": result.status.value,
        "detail": result.detail,
        "duration_ms": result.duration_ms,
    }
    if result.observed is not None:
        found[result.measurement or "observed"] = result.observed
    return found


Check = Callable[[], Awaitable[CheckResult]]


@dataclass(slots=True)
class _Registered:
    check: Check
    critical: bool
    timeout: float | None


class Health:
    """``app.health``: ``await app.health.readiness()`` and ``liveness()``."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        """Default time a check may take before it counts as DOWN."""
        self._checks: dict[str, _Registered] = {}
        self._last: tuple[float, HealthReport] | None = None
        self._running: asyncio.Future[HealthReport] | None = None

    def add_check(
        self, name: str, check: Check, *, critical: bool = True, timeout: float | None = None
    ) -> None:
        """A critical check that fails makes readiness DOWN; others make it DEGRADED.

        ``timeout``: seconds this check may take (default: ``Health.timeout``).
        """
        self._checks[name] = _Registered(check, critical, timeout)
        self._last = None

    async def liveness(self) -> HealthReport:
        return HealthReport(Status.OK)

    async def readiness(self, max_age: float = 0.0) -> HealthReport:
        """Run every check in parallel; reuse a report younger than ``max_age`` seconds."""
        last = self._last
        if last is not None and time.monotonic() - last[0] < max_age:
            return last[1]
        if self._running is None:
            self._running = asyncio.ensure_future(self._check_all())
            self._running.add_done_callback(self._forget_round)
        # shield: a caller that gives up (a probe's timeout) does not cancel the others' round
        return await asyncio.shield(self._running)

    def _forget_round(self, done: asyncio.Future[HealthReport]) -> None:
        self._running = None
        if not done.cancelled() and done.exception() is None:
            self._last = (time.monotonic(), done.result())

    async def _check_all(self) -> HealthReport:
        names = list(self._checks)
        registered = [self._checks[n] for n in names]
        results = await asyncio.gather(*(self._run(r) for r in registered))
        checks = dict(zip(names, results, strict=True))
        status = Status.OK
        for reg, result in zip(registered, results, strict=True):
            if result.status is Status.OK:
                continue
            if reg.critical and result.status is Status.DOWN:
                status = Status.DOWN
            elif status is Status.OK:
                status = Status.DEGRADED
        critical = frozenset(n for n, r in zip(names, registered, strict=True) if r.critical)
        return HealthReport(status, checks, critical=critical)

    async def _run(self, registered: _Registered) -> CheckResult:
        timeout = self.timeout if registered.timeout is None else registered.timeout
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                result = await registered.check()
        except TimeoutError:
            result = CheckResult(Status.DOWN, f"no answer within {timeout}s")
        except Exception as exc:  # a failing check is a result, not a crash
            result = CheckResult(Status.DOWN, f"{type(exc).__name__}: {exc}")
        elapsed = (time.perf_counter() - started) * 1000
        return dataclasses.replace(result, duration_ms=round(elapsed, 2))
