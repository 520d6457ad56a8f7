"""``/api/v1/publishers`` and ``/api/v1/analytics``: record events, read cached rollups."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from sqlalchemy import insert, select

from conveyor import BadInputError, NotFoundError, rate_limit
from examples.service.accounts.keys import Authenticated
from examples.service.backbone import backbone, database, metrics
from examples.service.database import now_utc
from examples.service.inputs import Body, IsoDate, IsoDateTime
from examples.service.repository import MAX_PAGE, Repository

from .models import AnalyticsEvent, Publisher
from .queries import daily_series, default_window, hourly_series, latest_weekly_report
from .rollups import HTTP_TAG, ZONE, aggregate_day, local_now

router = APIRouter(tags=["analytics"])
MAX_RANGE_DAYS = 366


class NewPublisher(Body):
    name: str = Field(min_length=1, max_length=100)


class EventIn(Body):
    publisherId: str = Field(min_length=1, max_length=24)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    value: float = Field(default=1.0, allow_inf_nan=False)
    occurredAt: IsoDateTime | None = None


class EventsIn(Body):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class RollupIn(Body):
    day: IsoDate | None = None
    """Default: today, in the service's time zone."""


@backbone.cache.cached(ttl="HOUR", key="publisher-owner:{publisher_id}")
async def owner_of(publisher_id: str) -> int | None:
    async with database.reading() as session:
        return await session.scalar(
            select(Publisher.account_id).where(Publisher.id == publisher_id)
        )


async def owned_publisher(publisher_id: str, caller: Authenticated) -> str:
    """The path's publisher, if the caller's account owns it (else 404, before any cache)."""
    if await owner_of(publisher_id) != caller.account_id:
        raise NotFoundError(f"no publisher {publisher_id}")
    return publisher_id


OwnedPublisher = Annotated[str, Depends(owned_publisher)]


@router.post("/publishers", status_code=201)
async def create_publisher(body: NewPublisher, caller: Authenticated) -> dict[str, Any]:
    publisher = Publisher(
        id="pub_" + secrets.token_hex(6), account_id=caller.account_id, name=body.name
    )
    async with database.writing() as session:
        session.add(publisher)
    return {"publisherId": publisher.id, "name": publisher.name}


@router.get("/publishers")
async def list_publishers(
    caller: Authenticated,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    async with database.reading() as session:
        found = await Repository(Publisher, session).find(
            where=[Publisher.account_id == caller.account_id],
            page=page,
            size=size,
            order_by=[Publisher.created_at, Publisher.id],
        )
    return found.to_json(lambda p: {"publisherId": p.id, "name": p.name})


@router.post("/analytics/events", status_code=202)
async def record_events(body: EventsIn, caller: Authenticated) -> dict[str, int]:
    """Record up to 1,000 events; they count in the rollups (hourly, daily, on demand)."""
    for publisher_id in {event.publisherId for event in body.events}:
        await owned_publisher(publisher_id, caller)
    received = now_utc()
    rows = []
    for event in body.events:
        moment = event.occurredAt or received
        if moment.tzinfo is None:
            raise BadInputError("occurredAt needs a time zone offset (e.g. Z)")
        local = moment.astimezone(ZONE)
        rows.append(
            {
                "publisher_id": event.publisherId,
                "name": event.name,
                "value": event.value,
                "occurred_at": moment,
                "day": local.date(),
                "hour": local.hour,
            }
        )
    async with database.writing() as session:
        await session.execute(insert(AnalyticsEvent), rows)
    metrics.analytics_events.inc(len(rows))
    return {"recorded": len(rows)}


@router.post("/analytics/rollups", status_code=202, dependencies=[Depends(rate_limit("analysis"))])
async def roll_up(body: RollupIn, caller: Authenticated) -> dict[str, Any]:
    """Recompute one day's rollups now (the schedules do it hourly and at 01:00)."""
    day = (body.day or local_now().date()).isoformat()
    job = await aggregate_day.enqueue(day)
    return {"jobId": job.id, "day": day}


def _range(start: date | None, end: date | None) -> tuple[date, date]:
    default_start, default_end = default_window()
    start, end = start or default_start, end or default_end
    if end < start or end - start > timedelta(days=MAX_RANGE_DAYS):
        raise BadInputError(f"start..end must be a range of at most {MAX_RANGE_DAYS} days")
    return start, end


def _points(points: list[Any]) -> list[dict[str, Any]]:
    return [
        {"period": p.period, "name": p.name, "events": p.events, "valueSum": p.value_sum}
        for p in points
    ]


@router.get("/analytics/publishers/{publisher_id}/daily", response_model=None)
@backbone.cache.response(ttl="MEDIUM", vary_query=["start", "end"], tags=[HTTP_TAG])
async def daily(
    request: Request,
    publisher: OwnedPublisher,
    start: date | None = None,
    end: date | None = None,
) -> Response:
    """Events per day and name (default: the last 30 days). ``X-Cache`` says HIT or MISS."""
    start, end = _range(start, end)
    points = await daily_series(publisher, start, end)
    body = {"publisherId": publisher, "start": start.isoformat(), "end": end.isoformat()}
    return JSONResponse({**body, "points": _points(points)})


@router.get("/analytics/publishers/{publisher_id}/hourly", response_model=None)
@backbone.cache.response(ttl="SHORT", vary_query=["day"], tags=[HTTP_TAG])
async def hourly(request: Request, publisher: OwnedPublisher, day: date | None = None) -> Response:
    """Events per hour of one day (default: today)."""
    day = day or local_now().date()
    points = await hourly_series(publisher, day)
    return JSONResponse(
        {"publisherId": publisher, "day": day.isoformat(), "points": _points(points)}
    )


@router.get("/analytics/publishers/{publisher_id}/weekly", response_model=None)
@backbone.cache.response(ttl="LONG", tags=[HTTP_TAG])
async def weekly(request: Request, publisher: OwnedPublisher) -> Response:
    """The latest Monday report (null before the first one)."""
    return JSONResponse({"publisherId": publisher, "report": await latest_weekly_report(publisher)})
