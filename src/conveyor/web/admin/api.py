"""The management API: every router under one prefix, in the service's OpenAPI document."""

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


def api_router(admin: AdminState) -> APIRouter:
    router = APIRouter(dependencies=[Depends(_no_store)])
    for routes in (
        queue_routes,
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
    FastAPI sub-application (its document at ``<prefix>/openapi.json``)."""
    prefix = admin.options.api_prefix
    if isinstance(web_app, FastAPI):
        web_app.include_router(api_router(admin), prefix=prefix)
        return
    sub = FastAPI(title="conveyor management API", docs_url=None, redoc_url=None)
    sub.include_router(api_router(admin))
    sub.add_exception_handler(HTTPException, http_exception_problem)
    sub.add_exception_handler(RequestValidationError, validation_problem)
    web_app.router.routes.append(Mount(prefix, app=sub))
