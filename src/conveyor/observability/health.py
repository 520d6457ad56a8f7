"""Health as an aggregate of component checks.

Liveness never depends on a dependency (a dead store must not get the
process restarted in a loop); readiness does. Later components (cache,
events, HTTP) add their own checks with :meth:`Health.add_check`.
"""

from __future__ import annotations

import asyncio
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
    """The result of one health check."""

    status: Status
    detail: str = ""
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Overall status and every check's result."""

    status: Status
    checks: dict[str, CheckResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "checks": {
                name: {"status": c.status.value, "detail": c.detail, "duration_ms": c.duration_ms}
                for name, c in self.checks.items()
            },
        }


Check = Callable[[], Awaitable[CheckResult]]


@dataclass(slots=True)
class _Registered:
    check: Check
    critical: bool


class Health:
    """``app.health``: ``await app.health.readiness()`` and ``liveness()``."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._checks: dict[str, _Registered] = {}

    def add_check(self, name: str, check: Check, *, critical: bool = True) -> None:
        """A critical check that fails makes readiness DOWN; others make it DEGRADED."""
        self._checks[name] = _Registered(check, critical)

    async def liveness(self) -> HealthReport:
        return HealthReport(Status.OK)

    async def readiness(self) -> HealthReport:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n].check) for n in names))
        checks = dict(zip(names, results, strict=True))
        status = Status.OK
        for name, result in checks.items():
            if result.status is Status.OK:
                continue
            if self._checks[name].critical and result.status is Status.DOWN:
                status = Status.DOWN
            elif status is Status.OK:
                status = Status.DEGRADED
        return HealthReport(status, checks)

    async def _run(self, check: Check) -> CheckResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                result = await check()
        except TimeoutError:
            result = CheckResult(Status.DOWN, f"no answer within {self.timeout}s")
        except Exception as exc:  # a failing check is a result, not a crash
            result = CheckResult(Status.DOWN, f"{type(exc).__name__}: {exc}")
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult(result.status, result.detail, round(elapsed, 2))
