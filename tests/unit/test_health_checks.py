"""Health checks: parallel, each within its timeout, one shared round, reused briefly."""

from __future__ import annotations

import asyncio
import time

from conveyor.observability.health import CheckResult, Health, Status
from conveyor.observability.store_health import memory_check
from conveyor.stores.backend import StoreMemory


def counting(delay: float = 0.0, status: Status = Status.OK) -> tuple[list[int], object]:
    calls: list[int] = []

    async def check() -> CheckResult:
        calls.append(1)
        await asyncio.sleep(delay)
        return CheckResult(status, "detail")

    return calls, check


async def test_a_check_past_its_own_timeout_is_down_and_the_others_still_answer() -> None:
    health = Health(timeout=5)
    _, slow = counting(delay=2)
    _, quick = counting()
    health.add_check("slow", slow, timeout=0.05)  # type: ignore[arg-type]
    health.add_check("quick", quick)  # type: ignore[arg-type]
    started = time.monotonic()
    report = await health.readiness()
    assert time.monotonic() - started < 1
    assert report.checks["slow"].status is Status.DOWN
    assert "0.05s" in report.checks["slow"].detail
    assert report.checks["quick"].status is Status.OK
    assert report.status is Status.DOWN


async def test_checks_run_in_parallel() -> None:
    health = Health()
    for name in ("a", "b", "c"):
        health.add_check(name, counting(delay=0.2)[1])  # type: ignore[arg-type]
    started = time.monotonic()
    await health.readiness()
    assert time.monotonic() - started < 0.5


async def test_callers_during_a_round_share_it() -> None:
    health = Health()
    calls, check = counting(delay=0.1)
    health.add_check("store", check)  # type: ignore[arg-type]
    reports = await asyncio.gather(*(health.readiness() for _ in range(5)))
    assert len(calls) == 1
    assert all(r is reports[0] for r in reports)


async def test_a_report_is_reused_within_max_age_only() -> None:
    health = Health()
    calls, check = counting()
    health.add_check("store", check)  # type: ignore[arg-type]
    await health.readiness(max_age=60)
    await health.readiness(max_age=60)
    assert len(calls) == 1
    await health.readiness()  # max_age 0: a fresh round
    assert len(calls) == 2


async def test_a_failing_non_critical_check_degrades_instead_of_failing() -> None:
    health = Health()
    health.add_check("store", counting()[1])  # type: ignore[arg-type]
    health.add_check("cache", counting(status=Status.DOWN)[1], critical=False)  # type: ignore[arg-type]
    report = await health.readiness()
    assert report.status is Status.DEGRADED
    assert report.critical == frozenset({"store"})


async def test_a_check_that_raises_is_down_with_the_error() -> None:
    health = Health()

    async def broken() -> CheckResult:
        raise ConnectionError("refused")

    health.add_check("store", broken)
    report = await health.readiness()
    assert report.status is Status.DOWN
    assert report.checks["store"].detail == "ConnectionError: refused"


def test_store_memory_is_ok_under_noeviction_with_room_and_reports_the_policy() -> None:
    result = memory_check(StoreMemory("noeviction", used_bytes=1_000, max_bytes=4_000_000))
    assert result.status is Status.OK
    assert (result.measurement, result.observed) == ("evictionPolicy", "noeviction")


def test_store_memory_is_degraded_when_full_or_when_the_server_may_evict() -> None:
    full = memory_check(StoreMemory("noeviction", used_bytes=4_000_001, max_bytes=4_000_000))
    assert full.status is Status.DEGRADED
    assert "writes are refused" in full.detail
    evicting = memory_check(StoreMemory("allkeys-lru", used_bytes=0, max_bytes=0))
    assert evicting.status is Status.DEGRADED
    assert evicting.observed == "allkeys-lru"


def test_store_memory_is_ok_for_stores_that_neither_cap_nor_evict() -> None:
    result = memory_check(None)
    assert result.status is Status.OK
    assert result.observed is None
