"""The management API: every router under one prefix, in the service's OpenAPI document;
the queue router also under ``queues_also_at`` when one is set (the products' paths)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount

from conveyor.web.admin.cache import cache_routes
from conveyor.web.admin.events import event_routes
from conveyor.web.admin.jobs import job_routes
from conveyor.web.admin.queues import queue_routes
from conveyor.web.admin.ratelimits import rate_limit_routes
from conveyor.web.admin.schedules import schedule_routes
from conveyor.web.admin.state import AdminState
from conveyor.web.admin.system import system_routes
from conveyor.web.problems import http_exception_problem, validation_problem


async def _no_store(response: Response) -> None:
    # Answers describe live state and may name jobs: never kept by a shared cache.
    response.headers["Cache-Control"] = "no-store"


def api_router(admin: AdminState, queues: APIRouter) -> APIRouter:
    router = APIRouter(dependencies=[Depends(_no_store)])
    router.include_router(queues)
    for routes in (
        job_routes,
        schedule_routes,
        event_routes,
        cache_routes,
        rate_limit_routes,
        system_routes,
    ):
        router.include_router(routes(admin))
    return router


def mount_api(web_app: Starlette, admin: AdminState) -> None:
    """Under ``api_prefix``: in the app's own document on FastAPI; on plain Starlette as a
    FastAPI sub-application (its document at ``<prefix>/openapi.json``). The same queue
    router, not a copy of it, also under ``queues_also_at``; FastAPI derives each operation
    id from its path, so the two mounts' ids stay distinct."""
    queues = queue_routes(admin)
    mounts = [(admin.options.api_prefix, api_router(admin, queues))]
    if admin.options.queues_also_at is not None:
        also = APIRouter(dependencies=[Depends(_no_store)])
        also.include_router(queues)
        mounts.append((admin.options.queues_also_at, also))
    for prefix, router in mounts:
        if isinstance(web_app, FastAPI):
            web_app.include_router(router, prefix=prefix)
        else:
            web_app.router.routes.append(Mount(prefix, app=_sub_application(router)))


def _sub_application(router: APIRouter) -> FastAPI:
    sub = FastAPI(title="conveyor management API", docs_url=None, redoc_url=None)
    sub.include_router(router)
    sub.add_exception_handler(HTTPException, http_exception_problem)
    sub.add_exception_handler(RequestValidationError, validation_problem)
    return sub
