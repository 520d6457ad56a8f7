"""What readiness says of the store's memory: its eviction policy, and whether it is full.

A Redis job store runs only under ``noeviction`` unless the application opted
out (``redis_allow_eviction_risking_job_loss``); then it is DEGRADED, since a
full server may delete jobs. Under ``noeviction`` a server at ``maxmemory``
refuses every write (enqueues fail with ``StoreFullError``, workers retry):
DEGRADED until memory is freed. Stores that neither cap memory nor evict
(memory, SQLite) are OK.
"""

from __future__ import annotations

from conveyor.observability.health import CheckResult, Status
from conveyor.stores.backend import StoreMemory

MEASUREMENT = "evictionPolicy"


def memory_check(memory: StoreMemory | None) -> CheckResult:
    """The ``store_memory`` check's result for what the store reported."""
    if memory is None:
        return CheckResult(Status.OK, "the store neither caps its memory nor evicts")
    limit = (
        f"{_mb(memory.used_bytes)} used of {_mb(memory.max_bytes)}"
        if memory.max_bytes
        else (f"{_mb(memory.used_bytes)} used, no maxmemory")
    )
    problems = []
    if memory.evicts:
        problems.append(f"maxmemory-policy {memory.eviction_policy} may evict jobs")
    if memory.full:
        problems.append("full: writes are refused until memory is freed")
    status = Status.DEGRADED if problems else Status.OK
    detail = "; ".join([*problems, f"maxmemory-policy {memory.eviction_policy}", limit])
    return CheckResult(status, detail, measurement=MEASUREMENT, observed=memory.eviction_policy)


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
