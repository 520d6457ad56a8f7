"""Reading jobs page by page: listings by state, searches, a job's timeline, the workers.

These are :class:`~conveyor.jobs.client.JobClient`'s reads for an operator
(the management API and the dashboard read through them): each is one
bounded store call that seeks an index (``stores/search.py``), whatever the
number of jobs. Pages are cursor-based: ``page.next`` gives the next one.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import BadInputError
from conveyor.jobs.search import search_value
from conveyor.stores.base import JobEvent, JobRecord, JobState, JobStore, WorkerInfo
from conveyor.stores.search import (
    MAX_PAGE,
    JobQuery,
    decode_cursor,
    error_type_key,
    error_word_key,
    field_key,
)

if TYPE_CHECKING:
    from conveyor.jobs.job import Job
    from conveyor.jobs.task import Task

DEFAULT_PAGE = 50
MAX_TIMELINE = 100


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of jobs, newest first; ``next`` is the cursor of the following page.

    A search page may hold fewer jobs than asked (even none) while ``next`` is
    set: each call examines a bounded number of candidates. Keep paging until
    ``next`` is None.
    """

    jobs: list[Job[Any]]
    next: str | None


class JobPages:
    """The paged reads of ``app.jobs`` (mixed into :class:`~conveyor.jobs.client.JobClient`)."""

    store: JobStore
    _open: Callable[[], Awaitable[None]]

    def _job(self, record: JobRecord) -> Job[Any]:
        raise NotImplementedError  # JobClient's

    async def list_page(
        self,
        state: JobState | str,
        queue: str | None = None,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> JobPage:
        """Jobs in ``state`` (of ``queue``, or of every queue), newest first.

        >>> page = await app.jobs.list_page("failed", "emails", limit=20)
        >>> more = await app.jobs.list_page("failed", "emails", cursor=page.next)

        A job enqueued or moved while you page never makes a page repeat or skip
        an older one.
        """
        _check_page(cursor, limit)
        await self._open()
        page = await self.store.list_page(queue, parse_state(state), cursor, limit)
        return JobPage([self._job(r) for r in page.records], page.next)

    async def list(
        self,
        state: JobState | str,
        queue: str | None = None,
        *,
        offset: int = 0,
        limit: int = 50,
    ) -> builtins.list[Job[Any]]:
        """Jobs in ``state``, newest first, ``limit`` (<= 1000) from ``offset``.

        Walks :meth:`list_page` past the first ``offset`` jobs (the cost grows
        with ``offset``; prefer cursors).
        """
        if not 0 < limit <= 1000 or offset < 0:
            raise BadInputError("limit must be 1..1000 and offset >= 0")
        await self._open()
        wanted = parse_state(state)
        records: builtins.list[JobRecord] = []
        cursor: str | None = None
        skip = offset
        while len(records) < limit:
            page = await self.store.list_page(queue, wanted, cursor, MAX_PAGE)
            fresh = page.records[skip:]
            skip = max(0, skip - len(page.records))
            records += fresh[: limit - len(records)]
            cursor = page.next
            if cursor is None:
                break
        return [self._job(r) for r in records]

    async def search(
        self,
        *,
        queue: str | None = None,
        state: JobState | str | None = None,
        job_id: str | None = None,
        id_prefix: str | None = None,
        task: Task[Any, Any] | str | None = None,
        error_type: str | None = None,
        error_word: str | None = None,
        field: tuple[str, Any] | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> JobPage:
        """Jobs matching every criterion given, from the store's indexes.

        >>> page = await app.jobs.search(field=("customer_id", 42))
        >>> page = await app.jobs.search(error_type="TimeoutError", queue="emails")
        >>> page = await app.jobs.search(id_prefix="01a2", state="failed")

        Criteria: an exact ``job_id`` or an ``id_prefix``; a ``task`` (or its
        name); the ``error_type`` (exception class name) or a word of the error
        message (``error_word``) of a failed job; a payload ``field`` declared
        searchable by its task (``@app.task(search=["customer_id"])``) and its
        value. ``queue`` and ``state`` narrow any of them. Results come newest
        first (by id for ``id_prefix``). Each call examines a bounded number of
        candidates, so a page may be short while ``next`` is set.
        """
        _check_page(cursor, limit)
        query = build_query(queue, state, job_id, id_prefix, task, error_type, error_word, field)
        await self._open()
        page = await self.store.search(query, cursor, limit)
        return JobPage([self._job(r) for r in page.records], page.next)

    async def events_of(self, job_id: str, limit: int = MAX_TIMELINE) -> builtins.list[JobEvent]:
        """The timeline of one job: its newest ``limit`` events but progress, oldest
        first (retrying, stalled, completed, failed, cancelled); empty once it is gone."""
        if not 0 < limit <= MAX_TIMELINE:
            raise BadInputError(f"limit must be 1..{MAX_TIMELINE}, got {limit!r}")
        await self._open()
        return await self.store.events_of(job_id, limit)

    async def workers(self) -> builtins.list[WorkerInfo]:
        """Workers heartbeating into the store: queues, concurrency, running jobs, version."""
        await self._open()
        return await self.store.workers()


def build_query(
    queue: str | None,
    state: JobState | str | None,
    job_id: str | None,
    id_prefix: str | None,
    task: Task[Any, Any] | str | None,
    error_type: str | None,
    error_word: str | None,
    field: tuple[str, Any] | None,
) -> JobQuery:
    """A store query from the client's criteria; ``BadInputError`` for one that cannot be."""
    for name, text in (("job_id", job_id), ("id_prefix", id_prefix), ("error_type", error_type)):
        if text is not None and (not isinstance(text, str) or not text):
            raise BadInputError(f"{name} must be a non-empty string, got {text!r}")
    keys: builtins.list[str] = []
    if field is not None:
        if not (isinstance(field, tuple) and len(field) == 2 and isinstance(field[0], str)):
            raise BadInputError(f"field is a (name, value) pair, got {field!r}")
        keys.append(field_key(field[0], search_value(field[1])))
    if error_word is not None:
        keys.append(error_word_key(str(error_word)))
    if error_type is not None:
        keys.append(error_type_key(error_type))
    task_name = task if task is None or isinstance(task, str) else task.name
    query = JobQuery(
        queue=queue,
        state=None if state is None else parse_state(state),
        job_id=job_id,
        job_id_prefix=id_prefix,
        task=task_name,
        keys=tuple(keys),
    )
    query.driver()  # refuses a query with no criterion
    return query


def parse_state(state: JobState | str) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise BadInputError(f"unknown job state {state!r}; use one of {names}") from None


def _check_page(cursor: str | None, limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_PAGE:
        raise BadInputError(f"limit must be 1..{MAX_PAGE}, got {limit!r}")
    decode_cursor(cursor)
