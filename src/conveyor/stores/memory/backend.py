"""The memory backend: every store in this process's memory (tests, ephemeral use)."""

from __future__ import annotations

from conveyor.clock import Clock
from conveyor.stores.backend import BackendSettings
from conveyor.stores.cache import SharedTier, TierOptions
from conveyor.stores.memory.audit import MemoryAuditStore
from conveyor.stores.memory.dedupe import MemoryDedupeStore
from conveyor.stores.memory.events import MemoryEventStore
from conveyor.stores.memory.flows import MemoryFlows, MemoryFlowStore
from conveyor.stores.memory.history import MemoryHistory
from conveyor.stores.memory.jobs import MemoryJobStore
from conveyor.stores.memory.limits import MemoryLimitsStore
from conveyor.stores.memory.ratelimit import MemoryRateLimitStore
from conveyor.stores.memory.schedules import MemoryScheduleStore
from conveyor.stores.memory.state import MemoryState


class MemoryBackend:
    """A :class:`~conveyor.stores.backend.Backend` whose data lives in one :class:`MemoryState`."""

    def __init__(self, url: str, settings: BackendSettings, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        state = MemoryState(clock)
        flows = MemoryFlows(state)
        state.flows = flows
        self.jobs = MemoryJobStore(state, url)
        self.flows = MemoryFlowStore(state, flows)
        self.schedules = MemoryScheduleStore(state)
        self.limits = MemoryLimitsStore(state)
        self.rate_limits = MemoryRateLimitStore(state, settings.rate_limit_budget)
        self.dedupe = MemoryDedupeStore(state)
        self.events = MemoryEventStore()
        self.history = MemoryHistory(state)
        self.audit = MemoryAuditStore(state)

    async def open(self, *, create: bool = True) -> None:
        return None  # nothing to connect; data lives as long as the backend

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    def twin(self) -> MemoryBackend:
        return self  # the data is this process's: another loop shares it (under the lock)

    @classmethod
    def url_problems(cls, url: str) -> list[str]:
        return []

    @classmethod
    def cache_tier(
        cls, url: str, origin: str, options: TierOptions, clock: Clock
    ) -> SharedTier | None:
        return None  # the local tier is all there is
