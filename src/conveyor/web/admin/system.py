"""``/workers``, ``/health``, ``/audit`` and ``/whoami``: the service as a whole."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from conveyor.web.admin import reads, schemas
from conveyor.web.admin.auth import Principal
from conveyor.web.admin.queues import LIMIT
from conveyor.web.admin.state import AdminState, guards


def system_routes(admin: AdminState) -> APIRouter:
    viewer, _operator = guards(admin)
    app = admin.app
    router = APIRouter(tags=["service"])

    @router.get("/workers", summary="Workers heartbeating: queues, concurrency, running jobs")
    async def workers(_: Principal = Depends(viewer)) -> list[schemas.WorkerOut]:
        return await reads.workers(app)

    @router.get("/health", summary="Each component's health (store, workers, cache, limits)")
    async def health(_: Principal = Depends(viewer)) -> schemas.HealthOut:
        return await reads.health(app, admin.service.options.health_cache_seconds)

    @router.get("/audit", summary="Destructive actions, newest first (who, what, when, counts)")
    async def audit(
        cursor: str | None = Query(None, max_length=40, pattern=r"^[0-9]+$"),
        limit: int = LIMIT,
        _: Principal = Depends(viewer),
    ) -> schemas.AuditPageOut:
        page = await app.audit.page(cursor, limit)
        return schemas.AuditPageOut(
            entries=[
                schemas.AuditOut(
                    id=e.id,
                    at=e.at,
                    actor=e.actor,
                    action=e.action,
                    target=e.target,
                    counts=e.counts,
                    request_id=e.request_id,
                )
                for e in page.entries
            ],
            next=page.next,
        )

    @router.get("/whoami", summary="Who the credentials sent are, and their role")
    async def whoami(who: Principal = Depends(viewer)) -> schemas.WhoAmI:
        return schemas.WhoAmI(actor=who.actor, role=who.role, via=who.via)

    return router
