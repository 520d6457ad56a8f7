"""The dashboard's routes: pages, their live fragments, the event stream, sign-in, assets.

Every page and the stream need a viewer (a key's session cookie, or a loopback
client when that is allowed); without one a browser is sent to the sign-in
page. Signing in checks the token like the API does and keeps it in an
``HttpOnly; SameSite=Strict`` cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from conveyor.errors import NotFoundError
from conveyor.web.admin.auth import Principal
from conveyor.web.admin.csrf import check_same_origin
from conveyor.web.admin.state import AdminState
from conveyor.web.dashboard import pages
from conveyor.web.dashboard.render import SECURITY_HEADERS, environment, page, static_response
from conveyor.web.dashboard.stream import job_stream

MAX_FORM_BYTES = 4096
Page = Callable[[AdminState, Request], Awaitable[dict[str, Any]]]
PAGES: list[tuple[str, str, Page, str]] = [
    ("/", "overview.html", pages.overview, "overview"),
    ("/queues", "queues.html", pages.queues, "queues"),
    ("/jobs", "jobs.html", pages.jobs, "jobs"),
    ("/jobs/{job_id}", "job.html", pages.job, "jobs"),
    ("/dead-letters", "dead_letters.html", pages.dead_letters, "dead-letters"),
    ("/schedules", "schedules.html", pages.schedules, "schedules"),
    ("/cache", "cache.html", pages.cache, "cache"),
    ("/rate-limits", "rate_limits.html", pages.rate_limits, "rate-limits"),
    ("/audit", "audit.html", pages.audit, "audit"),
]
"""(path, template, context, navigation entry)."""


def dashboard_routes(admin: AdminState) -> list[BaseRoute]:
    prefix = admin.options.dashboard_prefix or ""
    env = environment(admin.options.api_prefix, prefix)

    def common(request: Request, principal: Principal | None, section: str) -> dict[str, Any]:
        return {
            "principal": principal,
            "can_act": principal is not None and principal.can_act,
            "section": section,
            "poll_seconds": admin.options.poll_seconds,
            "stream": _stream_url(prefix, request),
            "path": request.url.path,
            "keys_configured": bool(admin.auth.keys),
        }

    def handler(
        template: str, build: Page, section: str
    ) -> Callable[[Request], Awaitable[Response]]:
        async def show(request: Request) -> Response:
            principal = _principal(admin, request)
            if principal is None:
                return _to_sign_in(prefix, request)
            context = common(request, principal, section)
            try:
                context.update(await build(admin, request))
            except NotFoundError as exc:
                context.update(title="Not found", message=str(exc))
                return page(env, request, "missing.html", context, 404)
            return page(env, request, template, context)

        return show

    async def sign_in(request: Request) -> Response:
        context = common(request, None, "sign-in") | {"title": "Sign in", "problem": None}
        if request.method == "POST":
            check_same_origin(request, "POST")
            token = await _posted_token(request)
            if token and admin.auth.key_for(token) is not None:
                response = RedirectResponse(prefix + "/", 303, SECURITY_HEADERS)
                response.set_cookie(
                    admin.options.cookie_name,
                    token,
                    max_age=admin.options.session_seconds,
                    httponly=True,
                    samesite="strict",
                    secure=request.url.scheme == "https",
                    path="/",
                )
                return response
            context["problem"] = "That key is not valid."
            return page(env, request, "sign_in.html", context, 401)
        return page(env, request, "sign_in.html", context)

    async def sign_out(request: Request) -> Response:
        check_same_origin(request, "POST")
        response = RedirectResponse(prefix + "/sign-in", 303, SECURITY_HEADERS)
        response.delete_cookie(admin.options.cookie_name, path="/")
        return response

    async def stream(request: Request) -> Response:
        admin.auth.require(request, "viewer")
        return await job_stream(admin, request)

    async def asset(request: Request) -> Response:
        return static_response(request.path_params["name"])

    routes: list[BaseRoute] = [
        Route(prefix + path, handler(template, build, section), include_in_schema=False)
        for path, template, build, section in PAGES
    ]
    routes += [
        Route(prefix + "/sign-in", sign_in, methods=["GET", "POST"], include_in_schema=False),
        Route(prefix + "/sign-out", sign_out, methods=["POST"], include_in_schema=False),
        Route(prefix + "/stream", stream, include_in_schema=False),
        Route(prefix + "/static/{name}", asset, include_in_schema=False),
    ]
    return routes


async def _posted_token(request: Request) -> str:
    """The ``token`` field of the sign-in form (urlencoded, read without a form library)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "The form is too large.")
    values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10).get("token", [""])
    return values[0].strip()


def _principal(admin: AdminState, request: Request) -> Principal | None:
    try:
        return admin.auth.principal(request)
    except HTTPException:  # a stale cookie: sign in again
        return None


def _to_sign_in(prefix: str, request: Request) -> Response:
    if request.query_params.get("fragment") == "1":
        return Response("sign in again", 401, SECURITY_HEADERS, media_type="text/plain")
    target = prefix + "/sign-in?" + urlencode({"next": request.url.path})
    return RedirectResponse(target, 303, SECURITY_HEADERS)


def _stream_url(prefix: str, request: Request) -> str:
    query = {}
    if request.path_params.get("job_id"):
        query["job"] = request.path_params["job_id"]
    elif request.query_params.get("queue"):
        query["queue"] = request.query_params["queue"]
    return prefix + "/stream" + ("?" + urlencode(query) if query else "")
