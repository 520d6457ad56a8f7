"""The backend seam: one object per storage backend builds all of its stores.

A backend package (``stores/memory``, ``stores/sqlite``, ``stores/redis``)
holds one class implementing :class:`Backend`. Its stores share the
backend's one typed connection (a memory state, a SQLite database, a Redis
connection), never another store's private attributes, and read time from
its clock. :mod:`conveyor.stores.registry` picks the class from the URL's
scheme; nothing else in conveyor names a backend.

The cache's shared tier is built apart (:meth:`BackendType.cache_tier`):
``Cache(url)`` is usable without an app, it often lives on another server
(an LRU Redis) and it holds connections of its own (a pub/sub feed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from conveyor.clock import Clock
    from conveyor.stores.audit import AuditStore
    from conveyor.stores.base import JobStore
    from conveyor.stores.cache import SharedTier, TierOptions
    from conveyor.stores.dedupe import DedupeStore
    from conveyor.stores.events import EventStore
    from conveyor.stores.flows import FlowStore
    from conveyor.stores.history import MetricsHistory
    from conveyor.stores.limits import LimitsStore
    from conveyor.stores.ratelimit import RateLimitStore
    from conveyor.stores.schedules import ScheduleStore


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
