"""The OpenAPI document and Swagger UI of a FastAPI service.

The document gains what the service adds: every operation's error answers
as problem+json (the ``default`` response, and 422 as a validation problem
instead of FastAPI's own shape), the answers of rate-limited operations
(429 and 503, ``ratelimit/openapi.py``), and the probe and metrics endpoints.
Swagger UI is served at ``/docs`` from pinned files inside the package
(``static/swagger-ui``, see its VERSION file), never from a CDN, and its page
has no inline script. FastAPI's own ``/docs`` and ``/redoc`` pages load
their assets from a CDN, so they are replaced (``/redoc`` is dropped).
A plain Starlette app has no OpenAPI document; nothing changes there.
"""

from __future__ import annotations

import copy
import functools
import html
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from conveyor.web.problems import MEDIA_TYPE as PROBLEM_TYPE
from conveyor.web.ratelimit.openapi import document_rate_limits
from conveyor.web.state import PROBE_PATHS, ServiceState

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "init.js": "text/javascript",
}
HEALTH_TYPE = "application/health+json"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "required": ["type", "title", "status"],
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "pointer": {"type": "string"},
                            "detail": {"type": "string"},
                        },
                        "required": ["pointer", "detail"],
                    },
                }
            },
            "required": ["errors"],
        },
    ]
}
HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "draft-inadarei-api-health-check (application/health+json).",
    "properties": {
        "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
        "checks": {"type": "object", "additionalProperties": {"type": "array"}},
        "output": {"type": "string"},
    },
    "required": ["status"],
}


def install_docs(web_app: Starlette, enabled: bool) -> None:
    """Replace FastAPI's CDN pages by Swagger UI from the package (or by nothing)."""
    if not isinstance(web_app, FastAPI):
        return
    dropped = {web_app.docs_url, web_app.redoc_url, web_app.swagger_ui_oauth2_redirect_url}
    dropped.discard(None)  # routes without a path (included routers) have None
    web_app.router.routes[:] = [
        r for r in web_app.router.routes if getattr(r, "path", None) not in dropped
    ]
    if not (enabled and web_app.docs_url and web_app.openapi_url):
        return
    docs_url, openapi_url, title = web_app.docs_url, web_app.openapi_url, web_app.title

    async def page(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        return HTMLResponse(_page(title, root + docs_url, root + openapi_url))

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = ASSETS.get(name)
        if media_type is None:
            return Response(status_code=404)
        headers = {"Cache-Control": "public, max-age=86400"}
        return Response(_asset(name), 200, headers, media_type=media_type)

    web_app.router.routes.append(Route(docs_url, page, include_in_schema=False))
    web_app.router.routes.append(Route(docs_url + "/{name}", asset, include_in_schema=False))


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("conveyor.web").joinpath("static", "swagger-ui", name).read_bytes()


def _page(title: str, docs_url: str, openapi_url: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} - API</title>"
        f'<link rel="stylesheet" href="{html.escape(docs_url)}/swagger-ui.css"></head>'
        f'<body><div id="swagger-ui" data-openapi-url="{html.escape(openapi_url)}"></div>'
        f'<script src="{html.escape(docs_url)}/swagger-ui-bundle.js"></script>'
        f'<script src="{html.escape(docs_url)}/init.js"></script></body></html>\n'
    )


def document_service(web_app: Starlette, state: ServiceState) -> None:
    """Make ``web_app.openapi()`` describe problem+json answers, the rate limits' answers
    and the probes."""
    if not isinstance(web_app, FastAPI):
        return
    generate: Callable[[], dict[str, Any]] = web_app.openapi
    last: list[Any] = [None, None]  # (FastAPI's schema, ours), rebuilt when routes change

    def openapi() -> dict[str, Any]:
        schema = generate()
        if last[0] is not schema:
            ours = copy.deepcopy(schema)
            document_rate_limits(ours, web_app, state.rate_limits)
            last[0], last[1] = schema, with_service_parts(ours)
        result: dict[str, Any] = last[1]
        return result

    web_app.openapi = openapi  # type: ignore[method-assign]


def with_service_parts(schema: dict[str, Any]) -> dict[str, Any]:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    schemas["Health"] = HEALTH_SCHEMA
    problem = _content(PROBLEM_TYPE, "Problem")
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                # The schema's own check (with ``errors``), or the app's (a conveyor
                # InvalidArgumentsError, say: arguments that do not fit a task's signature).
                responses["422"] = {
                    "description": "The request does not match the schema, or its content"
                    " cannot be processed",
                    "content": {
                        PROBLEM_TYPE: {
                            "schema": {
                                "anyOf": [
                                    {"$ref": "#/components/schemas/ValidationProblem"},
                                    {"$ref": "#/components/schemas/Problem"},
                                ]
                            }
                        }
                    },
                }
            responses.setdefault("default", {"description": "Problem details", "content": problem})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schema.setdefault("paths", {}).update(_probe_paths())
    return schema


def _content(media_type: str, name: str) -> dict[str, Any]:
    return {media_type: {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _probe_paths() -> dict[str, Any]:
    health = _content(HEALTH_TYPE, "Health")
    summaries = {
        "/livez": "Liveness: the process answers (never checks a dependency)",
        "/live": "Liveness (alias of /livez)",
        "/readyz": "Readiness: the store, cache and workers answer; 503 when not ready",
        "/ready": "Readiness (alias of /readyz)",
        "/health": "Health in detail (application/health+json)",
        "/health/detailed": "Health in detail (alias of /health)",
    }
    paths: dict[str, Any] = {}
    for path in sorted(PROBE_PATHS - {"/metrics"}):
        responses: dict[str, Any] = {"200": {"description": "pass or warn", "content": health}}
        if path not in ("/livez", "/live"):
            responses["503"] = {"description": "fail", "content": health}
        paths[path] = {
            "get": {
                "tags": ["service"],
                "summary": summaries[path],
                "operationId": "probe" + path.replace("/", "_"),
                "responses": responses,
            }
        }
    paths["/metrics"] = {
        "get": {
            "tags": ["service"],
            "summary": "Prometheus metrics of the app (jobs, cache, events, HTTP, process)",
            "operationId": "metrics",
            "responses": {
                "200": {
                    "description": "Prometheus text format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    }
    return paths
