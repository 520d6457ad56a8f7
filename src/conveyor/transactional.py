"""Enqueue jobs and publish events inside the application's own database transaction.

On a PostgreSQL store, ``app.within(conn)`` writes through the connection the
application is already using, in its open transaction: the jobs (and the
deliveries of the events) exist if and only if that transaction commits, and
workers are woken when it does. No outbox table and no relay are needed.

    async with pool.connection() as conn, conn.transaction():   # psycopg 3
        await conn.execute("INSERT INTO orders (id) VALUES (%s)", (order_id,))
        await app.within(conn).enqueue(send_receipt.call(order_id))
        await app.within(conn).publish(OrderPlaced(order_id=order_id))

``conn`` is a psycopg ``Connection`` / ``AsyncConnection``, an asyncpg
``Connection``, or a SQLAlchemy ``Connection`` / ``Session`` / ``AsyncConnection``
/ ``AsyncSession`` on the same PostgreSQL database as the store. Sync
connections use ``enqueue_sync`` / ``publish_sync``. Any other store raises
``NotSupportedError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.errors import BadInputError, NotFoundError, NotSupportedError
from conveyor.events.envelope import EventMeta
from conveyor.events.sql import Sql
from conveyor.jobs.options import Call
from conveyor.masking import mask_url
from conveyor.stores.base import NewJob

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.stores.transactional import AppTransactionSql


class InTransaction:
    """Jobs and events written in the transaction of one application connection
    (``app.within(conn)``); committing or rolling back is the application's."""

    def __init__(self, app: Conveyor, conn: Any) -> None:
        statements = app.backend.app_transactions
        if statements is None:
            raise NotSupportedError(
                "enqueueing in the application's transaction needs a PostgreSQL store;"
                f" this app's store is {app.settings.masked_url}"
            )
        sql = Sql(conn)
        if sql.dialect != "postgresql":
            raise NotSupportedError(
                "app.within() needs a connection to the store's PostgreSQL database,"
                f" got a {sql.dialect} connection"
            )
        self._app = app
        self._sql = sql
        self._statements: AppTransactionSql = statements

    # -- jobs ------------------------------------------------------------------

    async def enqueue(self, *calls: Call[Any]) -> list[str]:
        """Insert jobs for ``calls`` (``task.call(...)``) in the transaction; their ids.

        A job id that exists already (``task.options(job_id=...)``) inserts nothing
        and gives that id, as ``enqueue`` does.
        """
        jobs = self._jobs(calls)
        await self._app.open()  # makes the store's schema if this app never opened it
        statement, params = self._statements.enqueue(jobs, self._app.clock.now_ms())
        await self._run_async(statement, params)
        return [job.id for job in jobs]

    def enqueue_sync(self, *calls: Call[Any]) -> list[str]:
        """``enqueue`` on a sync connection or session."""
        jobs = self._jobs(calls)
        statement, params = self._statements.enqueue(jobs, self._app.clock.now_ms())
        self._run(statement, params)
        return [job.id for job in jobs]

    def _jobs(self, calls: Sequence[Call[Any]]) -> list[NewJob]:
        if not calls:
            raise BadInputError("give at least one task.call(...) to enqueue")
        if any(c.options.debounce is not None or c.options.throttle is not None for c in calls):
            raise NotSupportedError("debounce and throttle keys cannot be used in a transaction")
        now = self._app.clock.now_ms()
        return [self._app.jobs.build(call, now) for call in calls]

    # -- events ----------------------------------------------------------------

    async def publish(
        self,
        event: object,
        *,
        event_id: str | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        request_id: str | None = None,
    ) -> EventMeta:
        """Deliver ``event`` to every subscribed group, if the transaction commits.

        The groups are the ones recorded in the store (read in the transaction)
        and this process's own subscriptions; ``event_id`` and the rest are as in
        ``app.events.publish``.
        """
        publisher = self._app.events.publisher
        envelope = publisher.envelope(
            event, event_id=event_id, source=source, trace_id=trace_id, request_id=request_id
        )
        await self._app.open()
        rows = await self._run_async(self._statements.groups(), ())
        now = self._app.clock.now_ms()
        jobs = publisher.deliveries([envelope], publisher.merge_routes(_groups(rows)), now)
        if jobs:
            await self._run_async(*self._statements.enqueue(jobs, now))
        return envelope.meta()

    def publish_sync(
        self,
        event: object,
        *,
        event_id: str | None = None,
        source: str | None = None,
        trace_id: str | None = None,
        request_id: str | None = None,
    ) -> EventMeta:
        """``publish`` on a sync connection or session."""
        publisher = self._app.events.publisher
        envelope = publisher.envelope(
            event, event_id=event_id, source=source, trace_id=trace_id, request_id=request_id
        )
        rows = self._run(self._statements.groups(), ())
        now = self._app.clock.now_ms()
        jobs = publisher.deliveries([envelope], publisher.merge_routes(_groups(rows)), now)
        if jobs:
            self._run(*self._statements.enqueue(jobs, now))
        return envelope.meta()

    # -- running statements on the application's connection ----------------------

    def _run(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._sql.execute(statement, params)
        except BadInputError:
            raise
        except Exception as exc:
            missing = self._missing_store(exc)
            if missing is None:
                raise
            raise missing from exc

    async def _run_async(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return await self._sql.execute_async(statement, params)
        except BadInputError:
            raise
        except Exception as exc:
            missing = self._missing_store(exc)
            if missing is None:
                raise
            raise missing from exc

    def _missing_store(self, exc: Exception) -> NotFoundError | None:
        state = _sqlstate(exc)
        if state is None or not self._statements.missing_store(state):
            return None
        store = mask_url(self._app.settings.store_url)
        return NotFoundError(
            f"the connection's database holds no conveyor store ({store}): give"
            " app.within() a connection to the store's database, after the app was"
            " opened once (await app.open()) so that its schema exists"
        )


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver's error, also when SQLAlchemy wraps it."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        for attribute in ("sqlstate", "pgcode"):
            state = getattr(candidate, attribute, None)
            if isinstance(state, str):
                return state
    return None


def _groups(rows: list[tuple[Any, ...]]) -> dict[str, bytes]:
    return {str(group): bytes(spec) for group, spec in rows}
