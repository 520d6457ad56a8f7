"""The three apps bench/bench_web.py serves: one small JSON endpoint, three stacks.

- ``bare``: FastAPI alone.
- ``conveyor``: the same app made a service with ``as_service`` (request
  context, access log, HTTP metrics, problem details, deadline, gzip).
- ``glued``: the same app with the stack people assemble by hand:
  prometheus-fastapi-instrumentator, asgi-correlation-id, Starlette's
  GZipMiddleware and a problem-details exception handler.

Each is served by uvicorn in its own process (``uvicorn bench.web_apps:NAME``).
The endpoint is the same function in all three.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


def _endpoint(api: FastAPI) -> FastAPI:
    @api.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget", "price": 9.99, "tags": ["a", "b"]}

    return api


def bare() -> FastAPI:
    return _endpoint(FastAPI())


def conveyor() -> FastAPI:
    from conveyor import Conveyor, ServiceOptions, as_service

    app = Conveyor("memory://", log_format="json")
    return as_service(_endpoint(FastAPI()), app, ServiceOptions(title="bench"))


def glued() -> FastAPI:
    from asgi_correlation_id import CorrelationIdMiddleware
    from prometheus_fastapi_instrumentator import Instrumentator
    from starlette.middleware.gzip import GZipMiddleware

    api = _endpoint(FastAPI())

    def problem(request: Request, status: int, detail: str) -> JSONResponse:
        body = {"type": "about:blank", "title": detail, "status": status}
        return JSONResponse(body, status, media_type="application/problem+json")

    async def http_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return problem(request, exc.status_code, str(exc.detail))

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        return problem(request, 422, "Unprocessable Content")

    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        return problem(request, 500, "Internal Server Error")

    api.add_exception_handler(HTTPException, http_problem)
    api.add_exception_handler(RequestValidationError, validation)
    api.add_exception_handler(Exception, unhandled)
    api.add_middleware(GZipMiddleware, minimum_size=1024)
    api.add_middleware(CorrelationIdMiddleware)
    Instrumentator().instrument(api).expose(api)
    return api


def conveyor_quiet() -> FastAPI:
    """conveyor's stack with its access log off (to measure what the line costs)."""
    from conveyor import Conveyor, ServiceOptions, as_service

    app = Conveyor("memory://", log_format="json")
    return as_service(_endpoint(FastAPI()), app, ServiceOptions(title="bench", access_log=False))
