"""``/cache``: per-namespace statistics and the local tier's; invalidation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from conveyor.errors import BadInputError
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
        given = [
            (k, v)
            for k, v in (("key", body.key), ("tag", body.tag), ("pattern", body.pattern))
            if v
        ]
        if len(given) != 1:
            raise BadInputError("give exactly one of key, tag or pattern")
        ((how, value),) = given
        cache = app.cache if body.namespace == "default" else app.cache.namespace(body.namespace)
        if how == "key":
            count = await cache.delete(value)
        elif how == "tag":
            count = await cache.invalidate_tags(value)
        else:
            count = await cache.delete_matching(value)
        target = f"cache:{body.namespace} {how}:{value}"
        await admin.audit(request, who, "cache.invalidate", target[:500], {"deleted": count})
        return schemas.CountOut(count=count)

    return router
