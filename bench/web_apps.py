"""The apps bench/bench_web.py serves: one small JSON endpoint, several stacks.

- ``bare``: FastAPI alone.
- ``conveyor``: the same app made a service with ``as_service`` (request
  context, access log, HTTP metrics, problem details, deadline, gzip).
- ``glued``: the same app with the stack people assemble by hand:
  prometheus-fastapi-instrumentator, asgi-correlation-id, Starlette's
  GZipMiddleware and a problem-details exception handler.

The HTTP cost of a rate-limit check (issue 12): one GCRA policy that every
request passes (1,000,000,000 an hour, keyed by the client's address, as an
anonymous API is limited), on the same endpoint:

- ``conveyor_gcra_memory`` / ``conveyor_gcra_redis``: conveyor's stack with the
  policy as a global policy, on the in-process memory store and on Redis
  (``BENCH_REDIS_URL``), RateLimit headers on every response.
- ``slowapi_memory`` / ``slowapi_redis``: bare FastAPI with slowapi's decorator
  (``limits``' fixed window, its default) and its headers on, on memory and on
  Redis (its Redis calls are synchronous).

Each is served by uvicorn in its own process (``uvicorn bench.web_apps:NAME``).
The endpoint is the same function in all of them (slowapi needs the request
and response in its signature).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request, Response
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


LIMIT = "1000000000/hour"
"""Never reached in a run: every request takes the admitting path."""


def _conveyor_gcra(url: str) -> FastAPI:
    from conveyor import Conveyor, RateLimitOptions, RatePolicy, ServiceOptions, as_service

    app = Conveyor(url, log_format="json")
    app.rate_limits.add(RatePolicy("bench", LIMIT))
    options = ServiceOptions(
        title="bench", rate_limits=RateLimitOptions(global_policies=("bench",))
    )
    return as_service(_endpoint(FastAPI()), app, options)


def conveyor_gcra_memory() -> FastAPI:
    return _conveyor_gcra("memory://")


def conveyor_gcra_redis() -> FastAPI:
    return _conveyor_gcra(os.environ["BENCH_REDIS_URL"])


def _slowapi(storage_uri: str) -> FastAPI:
    from slowapi import Limiter
    from slowapi.util import get_remote_address

    # No handler for its 429: the limit is never reached, and any non-2xx fails the run.
    limiter = Limiter(key_func=get_remote_address, storage_uri=storage_uri, headers_enabled=True)
    api = FastAPI()
    api.state.limiter = limiter

    @api.get("/items/{item_id}")
    @limiter.limit(LIMIT.replace("/", " per "))
    async def get_item(request: Request, response: Response, item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget", "price": 9.99, "tags": ["a", "b"]}

    return api


def slowapi_memory() -> FastAPI:
    return _slowapi("memory://")


def slowapi_redis() -> FastAPI:
    return _slowapi(os.environ["BENCH_REDIS_URL"])
