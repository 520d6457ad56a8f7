"""``/cache``: per-namespace statistics and the local tier's; invalidation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from conveyor.web.admin import reads, schemas
from conveyor.web.admin.auth import Principal
from conveyor.web.admin.state import AdminState, guards


def cache_routes(admin: AdminState) -> APIRouter:
    viewer, operator = guards(admin)
    app = admin.app
    router = APIRouter(prefix="/cache", tags=["cache"])

    @router.get("", summary="Hit ratio, hits, misses per namespace; local entries, bytes")
    async def stats(_: Principal = Depends(viewer)) -> schemas.CacheOut:
        return reads.cache_stats(app)

    @router.post("/invalidate", summary="Delete cached values by key, tag or pattern")
    async def invalidate(
        body: schemas.InvalidateIn, request: Request, who: Principal = Depends(operator)
    ) -> schemas.CountOut:
        cache = app.cache if body.namespace == "default" else app.cache.namespace(body.namespace)
        if body.by == "key":
            count = await cache.delete(body.value)
        elif body.by == "tag":
            count = await cache.invalidate_tags(body.value)
        else:
            count = await cache.delete_matching(body.value)
        target = f"cache:{body.namespace} {body.by}:{body.value}"
        await admin.audit(request, who, "cache.invalidate", target[:500], {"deleted": count})
        return schemas.CountOut(count=count)

    return router
