"""``/rate-limits``: policies and tiers, rejections by tier, a key's usage, reset."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from conveyor.web.admin import reads, schemas
from conveyor.web.admin.auth import Principal
from conveyor.web.admin.queues import WINDOW
from conveyor.web.admin.state import AdminState, guards

POLICY = Path(alias="policy", min_length=1, max_length=200)


def rate_limit_routes(admin: AdminState) -> APIRouter:
    viewer, operator = guards(admin)
    app = admin.app
    router = APIRouter(prefix="/rate-limits", tags=["rate limits"])

    @router.get("", summary="Policies, tiers and rejections by tier")
    async def overview(
        minutes: int = WINDOW, _: Principal = Depends(viewer)
    ) -> schemas.RateLimitsOut:
        return await reads.rate_limits(app, minutes)

    @router.get("/{policy}/usage", summary="A key's quota under a policy (changes nothing)")
    async def usage(
        policy: str = POLICY,
        key: str = Query(min_length=1, max_length=500),
        tier: str | None = Query(None, min_length=1, max_length=100),
        _: Principal = Depends(viewer),
    ) -> schemas.RateUsageOut:
        quota = await app.rate_limits.usage(policy, key, tier)
        return schemas.RateUsageOut(
            policy=quota.policy,
            limit=quota.limit,
            remaining=quota.remaining,
            window_seconds=quota.window,
            reset_seconds=quota.reset,
            retry_after_seconds=quota.retry_after or None,
        )

    @router.post("/{policy}/reset", summary="Forget a key's usage under a policy")
    async def reset(
        body: schemas.RateResetIn,
        request: Request,
        policy: str = POLICY,
        who: Principal = Depends(operator),
    ) -> schemas.CountOut:
        await app.rate_limits.reset(policy, body.key)
        await admin.audit(request, who, "rate_limit.reset", f"policy:{policy}", {"reset": 1})
        return schemas.CountOut(count=1)

    return router
