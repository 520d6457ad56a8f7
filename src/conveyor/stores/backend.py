"""The backend seam: one object per storage backend builds all of its stores.

A backend package (``stores/memory``, ``stores/sqlite``, ``stores/redis``,
``stores/postgres``)
holds one class implementing :class:`Backend`. Its stores share the
backend's one typed connection (a memory state, a SQLite database, a Redis
connection), never another store's private attributes, and read time from
its clock. :mod:`conveyor.stores.registry` picks the class from the URL's
scheme; nothing else in conveyor names a backend.

Every backend counts its failed calls by kind (:class:`StoreFailures`) and
says what its server reports of memory (:class:`StoreMemory`; None for a
store that neither caps nor evicts).

The cache's shared tier is built apart (:meth:`BackendType.cache_tier`):
``Cache(url)`` is usable without an app, it often lives on another server
(an LRU Redis) and it holds connections of its own (a pub/sub feed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from conveyor.clock import Clock
    from conveyor.stores.audit import AuditStore
    from conveyor.stores.base import JobStore
    from conveyor.stores.cache import SharedTier, TierOptions
    from conveyor.stores.dedupe import DedupeStore
    from conveyor.stores.events import EventStore
    from conveyor.stores.failures import StoreFailures
    from conveyor.stores.flows import FlowStore
    from conveyor.stores.history import MetricsHistory
    from conveyor.stores.limits import LimitsStore
    from conveyor.stores.ratelimit import RateLimitStore
    from conveyor.stores.schedules import ScheduleStore
    from conveyor.stores.transactional import AppTransactionSql


SAFE_EVICTION_POLICY = "noeviction"
"""The one Redis ``maxmemory-policy`` under which no acknowledged job can be evicted."""


@dataclass(frozen=True, slots=True)
class StoreMemory:
    """What a store's server says of its memory (on a cluster: its fullest primary,
    or one whose policy is not ``noeviction``)."""

    eviction_policy: str
    """Redis's ``maxmemory-policy``: ``noeviction``, ``allkeys-lru``, ..."""
    used_bytes: int
    """Memory that counts against the limit (Redis: used, less what it does not count)."""
    max_bytes: int
    """The limit (``maxmemory``); 0: none."""

    @property
    def full(self) -> bool:
        """At the limit: under ``noeviction`` every write is refused (``StoreFullError``)."""
        return self.max_bytes > 0 and self.used_bytes >= self.max_bytes

    @property
    def evicts(self) -> bool:
        """The server may delete keys (jobs) to make room."""
        return self.eviction_policy != SAFE_EVICTION_POLICY


class BackendSettings(Protocol):
    """The settings a backend is built with (``conveyor.config.Settings`` has them all)."""

    @property
    def store_timeout(self) -> float:
        """Seconds a connection or call may take before it counts as failed."""
        ...

    @property
    def sqlite_synchronous(self) -> str:
        """SQLite's ``synchronous`` pragma: NORMAL or FULL."""
        ...

    @property
    def rate_limit_budget(self) -> float | None:
        """Seconds a rate-limit check may wait on the store (None: the backend's default)."""
        ...

    @property
    def redis_allow_eviction_risking_job_loss(self) -> bool:
        """Open a Redis job store whose server may evict keys (refused unless True)."""
        ...


class Backend(Protocol):
    """Every store of one backend over one set of connections.

    The stores are built with the backend (cheap objects) and work once
    :meth:`open` has connected it.
    """

    url: str
    clock: Clock
    jobs: JobStore
    flows: FlowStore
    schedules: ScheduleStore
    limits: LimitsStore
    rate_limits: RateLimitStore
    dedupe: DedupeStore
    events: EventStore
    app_transactions: AppTransactionSql | None
    """Statements that enqueue inside the application's own transaction (``app.within``);
    None when this backend's data is not in a database the application writes to."""
    failures: StoreFailures
    """Failed calls of the backend's connection, by kind (the app's metrics listen)."""
    history: MetricsHistory
    audit: AuditStore

    async def open(self, *, create: bool = True) -> None:
        """Connect (idempotent). With ``create=False`` a store that does not exist
        yet is not made: ``NotFoundError`` names what was looked for (the CLI's
        admin commands read stores, they never create one)."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """One cheap round trip; ``StoreUnavailableError`` when it fails."""
        ...

    async def memory(self) -> StoreMemory | None:
        """The server's eviction policy and memory use (None: the store neither caps
        its memory nor evicts: memory, SQLite)."""
        ...

    def twin(self) -> Backend:
        """A backend over the same data with connections of its own, for another
        event loop (the sync facade's thread). A backend whose data lives in
        this process returns itself."""
        ...


class BackendType(Protocol):
    """What the registry needs of a backend class."""

    def __call__(self, url: str, settings: BackendSettings, clock: Clock) -> Backend: ...

    def url_problems(self, url: str) -> list[str]:
        """What is wrong with ``url`` for this backend (its scheme is one of its own)."""
        ...

    def cache_tier(
        self, url: str, origin: str, options: TierOptions, clock: Clock
    ) -> SharedTier | None:
        """The cache's shared tier at ``url`` (None: the local tier is all there is)."""
        ...
