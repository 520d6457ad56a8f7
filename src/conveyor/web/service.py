"""``as_service``: the one call that makes a FastAPI or Starlette app a conveyor service.

Why this name: the call takes your app and gives it back *as* a conveyor
service: the same object, now with health, metrics, problem details, request
context and a lifespan that starts and drains conveyor with it. ``serve``
would promise that it runs a server (that is ``conveyor serve``),
``instrument`` only observation, and ``mount`` means a sub-application at a
path in Starlette.

What it installs, outermost middleware first (DESIGN decision 11):

    request context   request id, traceparent, structlog binding    context.py  } one layer,
    access log        one line per request, secrets masked          access_log.py } observe.py
    metrics           OTel-named HTTP metrics on the app's registry metrics.py  }
    errors            problem+json, request deadline (504)          problems.py
    rate limits       global policies, RateLimit headers, 429 / 503  ratelimit/middleware.py
    gzip              above 1 KB, x-no-compression                  compression.py
    the app

plus the probes (health.py), ``/metrics``, the management API and the dashboard
(``admin/``, ``dashboard/``; ``ServiceOptions(admin=...)``), problem+json handlers for the
framework's own errors, the OpenAPI additions and Swagger UI (openapi.py),
and the lifespan (lifecycle.py).
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.app import Conveyor
from conveyor.errors import ProgrammingError
from conveyor.observability.metrics import CONTENT_TYPE
from conveyor.web.admin.install import install_admin
from conveyor.web.compression import CompressionMiddleware
from conveyor.web.health import health_routes
from conveyor.web.lifecycle import service_lifespan
from conveyor.web.metrics import exposition, http_metrics
from conveyor.web.observe import ObserveMiddleware
from conveyor.web.openapi import document_service, install_docs
from conveyor.web.options import ServiceOptions
from conveyor.web.problems import ProblemsMiddleware, http_exception_problem, validation_problem
from conveyor.web.ratelimit.middleware import RateLimitMiddleware
from conveyor.web.state import PROBE_PATHS, ServiceState

W = TypeVar("W", bound=Starlette)


def as_service(web_app: W, app: Conveyor, options: ServiceOptions | None = None) -> W:
    """Make ``web_app`` (FastAPI or Starlette) a conveyor service for ``app``; returns it.

    >>> api = as_service(FastAPI(), app, ServiceOptions(title="billing", run_workers=True))

    Adds ``/livez``, ``/readyz``, ``/health`` (and ``/live``, ``/ready``,
    ``/health/detailed``), ``/metrics``, Swagger UI at ``/docs``, the
    middleware listed in this module's docstring, problem+json for every
    error, and a lifespan that opens conveyor's stores (and in-process
    workers) before the app's own startup and drains them after its shutdown.
    Call it once the app exists; middleware added later wraps conveyor's.
    """
    options = options or ServiceOptions()
    if isinstance(getattr(web_app.state, "conveyor", None), ServiceState):
        raise ProgrammingError("as_service was already called on this app")
    state = ServiceState(app, options)
    web_app.state.conveyor = state
    _add_routes(web_app, state)
    install_admin(web_app, state, options.admin)
    install_docs(web_app, options.docs)
    document_service(web_app, state)
    web_app.add_exception_handler(HTTPException, http_exception_problem)
    if isinstance(web_app, FastAPI):
        web_app.add_exception_handler(RequestValidationError, validation_problem)
    _add_middleware(web_app, state)
    web_app.router.lifespan_context = service_lifespan(state, web_app.router.lifespan_context)
    return web_app


def _add_routes(web_app: Starlette, state: ServiceState) -> None:
    app = state.app

    async def metrics(request: Request) -> Response:
        return Response(await exposition(app), media_type=CONTENT_TYPE)

    # Last: every request is matched against the routes in order, and the probes are
    # a small share of the traffic. (An application's catch-all route would hide them.)
    web_app.router.routes.extend(
        [*health_routes(state), Route("/metrics", metrics, include_in_schema=False)]
    )


def _add_middleware(web_app: Starlette, state: ServiceState) -> None:
    """Innermost first: ``add_middleware`` puts each new one outside the ones before it."""
    options = state.options
    web_app.add_middleware(
        CompressionMiddleware, minimum_size=options.gzip_minimum_size, level=options.gzip_level
    )
    # Inside the errors layer (it answers its own 429 and 503; anything else it lets
    # through) and outside gzip.
    web_app.add_middleware(RateLimitMiddleware, service=state.rate_limits)
    web_app.add_middleware(ProblemsMiddleware, timeout=options.request_timeout)
    web_app.add_middleware(
        ObserveMiddleware,
        header=options.request_id_header,
        metrics=http_metrics(state.app),
        access_log=options.access_log,
        skip_metrics=frozenset() if options.measure_probes else PROBE_PATHS,
        skip_log=frozenset() if options.log_probes else PROBE_PATHS,
    )


def bare_service(app: Conveyor, options: ServiceOptions | None = None) -> FastAPI:
    """The service ``conveyor serve`` runs for a plain Conveyor app: probes, metrics, docs,
    the management API and the dashboard."""
    web_app = FastAPI(title="conveyor", docs_url="/docs", redoc_url=None)
    return as_service(web_app, app, options or ServiceOptions(title="conveyor"))
