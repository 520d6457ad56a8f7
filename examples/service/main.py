"""The HTTP service: the products' routers under ``/api/v1``, made a conveyor service.

    conveyor serve examples.service:app          # HTTP + an in-process worker, SQLite
    conveyor worker examples.service:backbone    # more workers, elsewhere (CONVEYOR_URL)

Startup (conveyor's lifespan runs around this one): the service's tables are
created if missing, then the outbox relay starts (unless it runs as its own
process). Shutdown stops the relay and closes the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

from conveyor import AdminOptions, RateLimitOptions, ServiceOptions, as_service

from .accounts import routes as accounts
from .accounts.keys import tier_of
from .analytics import routes as analytics
from .backbone import backbone, database, settings
from .experiments import routes as experiments
from .exports import routes as exports
from .orders import routes as orders
from .orders.commands import outbox
from .orders.handlers import audit
from .relay import check_outbox, relay_until
from .validations import routes as validations

backbone.health.add_check("outbox", check_outbox, critical=False)

TITLE = "conveyor reference service"
PRODUCT_API = "/api/v1"
ADMIN_API = "/admin/api/v1"
DASHBOARD = "/dashboard"
VERSION = "1.0.0"


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await database.create_tables(outbox.create_table, audit.create_table)
    stop = asyncio.Event()
    relay: asyncio.Task[None] | None = None
    if settings.outbox_relay:
        relay = asyncio.create_task(relay_until(stop), name="outbox-relay")
    try:
        yield
    finally:
        stop.set()
        if relay is not None:
            await relay
        await database.dispose()


app = FastAPI(
    title=TITLE,
    version=VERSION,
    description=(
        "Billing validation, data exports, A/B testing, analytics and orders, built on"
        " conveyor. Sign up with `POST /api/v1/accounts`, then send the key as `X-API-Key`"
        " (the Authorize button)."
    ),
    lifespan=lifespan,
)

v1 = APIRouter(prefix=PRODUCT_API)
v1.include_router(accounts.router)
v1.include_router(validations.router)
v1.include_router(exports.router)
v1.include_router(experiments.router)
v1.include_router(analytics.router)
v1.include_router(orders.router)
app.include_router(v1)

LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>
<ul>
<li><a href="/docs">/docs</a>: the API, to try in the browser (sign up first)</li>
<li><a href="/dashboard">/dashboard</a>: jobs, schedules, events, cache, rate limits
(from this machine, or with a key of CONVEYOR_ADMIN_KEYS)</li>
<li><a href="/health">/health</a>: every component's health</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
</ul></body></html>
"""


@app.get("/", include_in_schema=False)
async def landing() -> HTMLResponse:
    return HTMLResponse(LANDING.format(title=TITLE))


as_service(
    app,
    backbone,
    ServiceOptions(
        title=TITLE,
        version=VERSION,
        rate_limits=RateLimitOptions(
            global_policies=("api",),
            tier=tier_of,
            upgrade_url="/api/v1/subscription/checkout",
        ),
        # conveyor's management API and dashboard, apart from the products' /api/v1; its queue
        # endpoints also under /api/v1/queues, where the products' clients call them. Their
        # keys come from CONVEYOR_ADMIN_KEYS (name:role:sha256, see docs/reference-service.md);
        # without any, they answer loopback clients only.
        admin=AdminOptions(
            api_prefix=ADMIN_API, dashboard_prefix=DASHBOARD, queues_also_at=PRODUCT_API
        ),
    ),
)
