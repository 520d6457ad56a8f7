"""The service the web tests serve with ``conveyor serve`` (a small billing API).

``WEB_TEST_URL`` picks the store (default memory://), ``WEB_TEST_SHUTDOWN``
the shutdown timeout. Endpoints that sleep or fail on purpose are left out
of the OpenAPI document, so schemathesis only sees the real API.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import httpx2 as httpx
import structlog
from fastapi import APIRouter, FastAPI, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from conveyor import (
    Conveyor,
    NotFoundError,
    ProblemError,
    ServiceOptions,
    api_version,
    as_service,
    request_timeout,
)

app = Conveyor(
    os.environ.get("WEB_TEST_URL", "memory://"),
    shutdown_timeout=float(os.environ.get("WEB_TEST_SHUTDOWN", "5")),
    log_format="json",
)
log = structlog.get_logger("billing")


@app.task
async def charge(amount: int, card_token: str, api_key: str) -> int:
    log.info("charging", amount=amount)
    return amount


@app.task
async def slow_job(seconds: float) -> str:
    log.info("slow job started", seconds=seconds)
    await asyncio.sleep(seconds)
    return "done"


api = FastAPI(title="billing", version="2.3.0")


class ChargeIn(BaseModel):
    amount: int = Field(ge=1, le=1_000_000)
    card_token: str = Field(min_length=1, max_length=200)


class ChargeOut(BaseModel):
    job_id: str
    request_id: str | None


class JobOut(BaseModel):
    id: str
    status: str
    request_id: str | None
    traceparent: str | None


class ItemOut(BaseModel):
    id: int
    name: str


class OutOfCredit(ProblemError):
    status = 403
    title = "Not enough credit"
    type_uri = "https://billing.example/problems/out-of-credit"


@api.get("/items/{item_id}")
async def get_item(item_id: int) -> ItemOut:
    if item_id < 0:
        raise NotFoundError(f"no item {item_id}")
    return ItemOut(id=item_id, name=f"item {item_id}")


@api.get("/catalogue")
async def catalogue(limit: Annotated[int, Query(ge=1, le=100)] = 10) -> list[ItemOut]:
    return [ItemOut(id=i, name="x" * 40) for i in range(limit)]


@api.post("/charges", status_code=201)
async def create_charge(
    body: ChargeIn, x_api_key: Annotated[str | None, Header()] = None
) -> ChargeOut:
    if body.amount > 500_000:
        raise OutOfCredit(f"{body.amount} is over your limit", limit=500_000)
    job = await charge.enqueue(body.amount, body.card_token, x_api_key or "")
    return ChargeOut(job_id=job.id, request_id=job.request_id)


@api.get("/jobs/{job_id}")
async def get_job(job_id: str) -> JobOut:
    job = await app.jobs.get(job_id)
    return JobOut(
        id=job.id, status=job.status.value, request_id=job.request_id, traceparent=job.traceparent
    )


@api.get("/slow", include_in_schema=False)
@request_timeout(60)
async def slow(seconds: float = 1.0) -> dict[str, object]:
    """Sleeps, then asks its own /readyz in-process: a shutdown mid-way shows as 503."""
    await asyncio.sleep(seconds)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        ready = await client.get("/readyz")
    return {"slept": seconds, "ready_status": ready.status_code}


@api.get("/too-slow", include_in_schema=False)
@request_timeout(0.2)
async def too_slow() -> None:
    await asyncio.sleep(5)


@api.post("/slow-jobs", include_in_schema=False)
async def start_slow_job(seconds: float) -> ChargeOut:
    job = await slow_job.enqueue(seconds)
    return ChargeOut(job_id=job.id, request_id=job.request_id)


@api.get("/boom", include_in_schema=False)
async def boom() -> None:
    raise RuntimeError("internal detail that must not reach the client")


@api.get("/stream", include_in_schema=False)
async def stream() -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for i in range(20):
            yield f"data: {'x' * 100} {i}\n\n".encode()

    return StreamingResponse(events(), media_type="text/event-stream")


v1 = APIRouter()


@v1.get("/items/{item_id}")
async def get_item_v1(item_id: int) -> ItemOut:
    return ItemOut(id=item_id, name="legacy")


api_version(
    api,
    v1,
    "v1",
    deprecated=datetime(2026, 1, 1, tzinfo=UTC),
    sunset=datetime(2027, 1, 1, tzinfo=UTC),
    link="https://billing.example/migrate",
)

as_service(
    api,
    app,
    ServiceOptions(title="billing", version="2.3.0", environment="test", request_timeout=10),
)
