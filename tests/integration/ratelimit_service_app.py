"""The products' tiered API, served by ``conveyor serve`` for the rate-limit tests.

Every request counts against ``api`` (free 20, pro 100, enterprise 500 a
minute); ``POST /api/reports`` also against ``expensive`` (10, 100, 1,000 an
hour). The tier comes from the API key: ``free-...``, ``pro-...``,
``enterprise-...``; any other key is one the service does not know (counted
by address). ``RATE_TEST_URL`` picks the store; the failure policy, the
budget and the trusted proxies come from ``CONVEYOR_*`` settings.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI

from conveyor import (
    Caller,
    Conveyor,
    RateDecision,
    RateLimitOptions,
    RatePolicy,
    ServiceOptions,
    as_service,
    rate_limit,
)

app = Conveyor(
    os.environ.get("RATE_TEST_URL", "memory://"),
    log_format="json",
    rate_limit_legacy_headers=True,
)
app.rate_limits.add(
    RatePolicy("api", {"free": "20/minute", "pro": "100/minute", "enterprise": "500/minute"}),
    RatePolicy("expensive", {"free": "10/hour", "pro": "100/hour", "enterprise": "1000/hour"}),
)


def tier_of(caller: Caller) -> str | None:
    plan = (caller.api_key or "").split("-", 1)[0]
    return plan if plan in ("free", "pro", "enterprise") else None


api = FastAPI(title="tiered")


@api.get("/api/items/{item_id}")
async def get_item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@api.post("/api/reports", status_code=202)
async def create_report(
    quota: Annotated[RateDecision, Depends(rate_limit("expensive"))],
) -> dict[str, int]:
    return {"reports_left": quota.quotas[-1].remaining}


as_service(
    api,
    app,
    ServiceOptions(
        title="tiered",
        rate_limits=RateLimitOptions(
            global_policies=("api",),
            tier=tier_of,
            upgrade_url="/api/subscription/checkout",
        ),
    ),
)
