"""Repositories: a model's queries over a session, with pagination metadata and timings.

    async with database.reading() as session:
        page = await Repository(Order, session).find(spec, page=2, size=20)
    page.to_json(view)  # {"items": [...], "page": 2, "size": 20, "total": 57,
                        #  "hasNext": true, "hasPrev": true}

The session (and so the transaction) is the caller's: a command opens
``database.writing()`` and everything it does through any repository commits
or rolls back together. Every call is timed into
``service_db_query_duration_seconds{repository, operation}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from conveyor import BadInputError

from .backbone import metrics
from .specification import Spec

M = TypeVar("M")
T = TypeVar("T")
MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000
"""Pages past this are refused: the offset stays far inside a 64-bit SQL integer."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing and where it sits in the whole."""

    items: list[T]
    page: int
    size: int
    total: int

    @property
    def has_next(self) -> bool:
        return self.page * self.size < self.total

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    def to_json(self, view: Callable[[T], Any]) -> dict[str, Any]:
        return {
            "items": [view(item) for item in self.items],
            "page": self.page,
            "size": self.size,
            "total": self.total,
            "hasNext": self.has_next,
            "hasPrev": self.has_prev,
        }


def check_page(page: int, size: int) -> None:
    if not 1 <= page <= MAX_PAGE or not 1 <= size <= MAX_PAGE_SIZE:
        raise BadInputError(f"page is 1..{MAX_PAGE} and size 1..{MAX_PAGE_SIZE}")


class Repository(Generic[M]):
    """Queries over one model in the caller's session."""

    def __init__(self, model: type[M], session: AsyncSession, name: str | None = None) -> None:
        self.model = model
        self.session = session
        self.name = name or model.__name__.lower()

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            metrics.query_duration.labels(self.name, operation).observe(elapsed)

    async def get(self, ident: Any) -> M | None:
        with self.timed("get"):
            return await self.session.get(self.model, ident)

    async def get_for_update(self, ident: Any) -> M | None:
        """The row, locked for the rest of the transaction (``FOR UPDATE`` on PostgreSQL;
        a writing session on SQLite already holds the write lock)."""
        with self.timed("get"):
            return await self.session.get(self.model, ident, with_for_update=True)

    def add(self, row: M) -> M:
        self.session.add(row)
        return row

    def add_all(self, rows: Sequence[M]) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        """Write pending rows now (ids assigned), still inside the transaction."""
        with self.timed("flush"):
            await self.session.flush()

    async def find(
        self,
        spec: Spec | None = None,
        *,
        page: int = 1,
        size: int = 20,
        order_by: Sequence[ColumnElement[Any] | Any] = (),
        where: Sequence[ColumnElement[bool]] = (),
    ) -> Page[M]:
        """One page of the rows ``spec`` (and the plain ``where`` clauses) select."""
        check_page(page, size)
        query: Select[Any] = select(self.model)
        if spec is not None:
            query = query.where(spec.to_sql(self.model))
        for clause in where:
            query = query.where(clause)
        with self.timed("count"):
            total = await self.session.scalar(
                select(func.count()).select_from(query.order_by(None).subquery())
            )
        with self.timed("find"):
            rows = await self.session.scalars(
                query.order_by(*order_by).limit(size).offset((page - 1) * size)
            )
            items = list(rows)
        return Page(items, page, size, int(total or 0))
