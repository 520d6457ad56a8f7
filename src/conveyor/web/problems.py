"""Every error response is RFC 9457 problem details (``application/problem+json``).

    conveyor error                       status
    PayloadTooLargeError                 413
    InvalidArgumentsError, SerializationError, InvalidScheduleError   422
    ConfigError (the server's own)       500, generic
    BadInputError                        400
    NotFoundError                        404
    ConflictError                        409
    RateLimitedError                     429 (+ Retry-After)
    StoreUnavailableError, CacheError    503
    ProblemError (the app's own)         its ``status``, ``title``, ``type_uri``, extensions
    any other OperationalError           500 with its message (safe to show by design)
    ProgrammingError, any other exception    500, generic: only the request id

A generic 500 says nothing about the error; its traceback goes to the log.
Request validation errors are 422 with an ``errors`` list of JSON pointers
into the request (``/body/items/0/name``, ``/query/limit``) and the
validator's message, never the rejected value (it may be a secret).
"""

from __future__ import annotations

import asyncio
import http
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.errors import (
    BadInputError,
    CacheError,
    ConfigError,
    ConflictError,
    InvalidArgumentsError,
    InvalidScheduleError,
    NotFoundError,
    OperationalError,
    PayloadTooLargeError,
    ProblemError,
    RateLimitedError,
    SerializationError,
    StoreUnavailableError,
)
from conveyor.observability.logging import get_logger, mask_text
from conveyor.web.context import request_id_of
from conveyor.web.timeouts import Deadline, current_deadline, sweeper_for

log = get_logger("conveyor.web")

MEDIA_TYPE = "application/problem+json"
STATUSES: dict[type[BaseException], tuple[int, bool]] = {
    PayloadTooLargeError: (413, True),
    InvalidArgumentsError: (422, True),
    SerializationError: (422, True),
    InvalidScheduleError: (422, True),
    ConfigError: (500, False),
    BadInputError: (400, True),
    NotFoundError: (404, True),
    ConflictError: (409, True),
    RateLimitedError: (429, True),
    StoreUnavailableError: (503, True),
    CacheError: (503, True),
    OperationalError: (500, True),
}
"""conveyor's errors -> (status, whether the message is shown); looked up along the MRO."""

GENERIC_DETAIL = "The server failed to answer this request; quote its request_id when reporting it."


@dataclass(slots=True)
class Problem:
    """One problem details object (RFC 9457) and the headers that go with it."""

    status: int
    title: str
    detail: str | None = None
    type: str = "about:blank"
    extensions: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, scope: Scope) -> Response:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        body["instance"] = scope.get("path", "")
        request_id = request_id_of(scope)
        if request_id is not None:
            body["request_id"] = request_id
        body.update(self.extensions)
        content = msgspec.json.encode(body, enc_hook=str)
        return Response(content, self.status, self.headers, media_type=MEDIA_TYPE)


def reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def generic_problem(status: int = 500) -> Problem:
    return Problem(status, reason(status), GENERIC_DETAIL if status >= 500 else None)


def problem_for(exc: BaseException) -> Problem | None:
    """The problem for a conveyor error (None: not one of conveyor's, so a generic 500)."""
    if isinstance(exc, ProblemError):
        status = exc.status
        return Problem(
            status,
            exc.title or reason(status),
            exc.detail or None,
            exc.type_uri,
            dict(exc.extensions),
        )
    for cls in type(exc).__mro__:
        entry = STATUSES.get(cls)
        if entry is not None:
            status, shown = entry
            if not shown:
                return generic_problem(status)
            problem = Problem(status, reason(status), mask_text(str(exc)) or None)
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                problem.headers["Retry-After"] = str(max(0, math.ceil(exc.retry_after)))
            return problem
    return None


# -- the framework's own errors (registered as exception handlers) --------------------


async def http_exception_problem(request: Request, exc: Exception) -> Response:
    """Starlette's and FastAPI's ``HTTPException`` (404 unknown route, 405 method, ...)."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    problem = Problem(status, reason(status), headers=dict(exc.headers or {}))
    if status == 405:
        problem.headers["Allow"] = _allowed(request, problem.headers.get("Allow", ""))
    detail: Any = exc.detail  # FastAPI's HTTPException takes any JSON value
    if isinstance(detail, str):
        if detail != problem.title:
            problem.detail = detail
    elif detail is not None:
        problem.extensions["data"] = detail
    return problem.response(request.scope)


_TEMPLATES: dict[str, re.Pattern[str]] = {}


def _allowed(request: Request, found: str) -> str:
    """Every method of the path, not only those of the first route that matched it: Starlette
    answers 405 from one route, and a path's GET and DELETE are often two routes. The
    methods come from the OpenAPI document (FastAPI apps) when it has the path, else they
    are what Starlette found."""
    methods = {m.strip().upper() for m in found.split(",") if m.strip()}
    openapi = getattr(request.app, "openapi", None)
    if callable(openapi):
        path = request.url.path
        paths: dict[str, Any] = openapi().get("paths", {})
        # A literal path wins over a template that also matches it (/jobs/search, /jobs/{id}),
        # as it does in routing: literal routes are declared first.
        matched = [t for t in paths if t == path] or [t for t in paths if _fits(t, path)]
        if matched:
            methods = {m.upper() for t in matched for m in paths[t] if m.upper() in _METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _fits(template: str, path: str) -> bool:
    pattern = _TEMPLATES.get(template)
    if pattern is None:
        pattern = re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))
        _TEMPLATES[template] = pattern
    return pattern.fullmatch(path) is not None


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


async def validation_problem(request: Request, exc: Exception) -> Response:
    """FastAPI's ``RequestValidationError``: 422 with one JSON pointer per error."""
    raw_errors = getattr(exc, "errors", None)
    errors: Sequence[Mapping[str, Any]] = raw_errors() if callable(raw_errors) else []
    problem = Problem(
        422,
        reason(422),
        "The request does not match the API's schema.",
        extensions={"errors": [_pointer_error(e) for e in errors]},
    )
    return problem.response(request.scope)


def _pointer_error(error: Mapping[str, Any]) -> dict[str, str]:
    loc = error.get("loc", ())
    pointer = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in loc)
    return {"pointer": pointer or "/", "detail": str(error.get("msg", "invalid"))}


# -- everything else (the errors middleware) ------------------------------------------


class ProblemsMiddleware:
    """Turns exceptions into problem+json and enforces the request deadline (pure ASGI).

    ``timeout``: seconds before a request that has not started its response is
    answered 504 (None: no global limit; a route may still set one).
    """

    def __init__(self, app: ASGIApp, timeout: float | None = None) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        now = loop.time()
        deadline = Deadline(task, now, None if self.timeout is None else now + self.timeout)
        sweeper = sweeper_for(loop)

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                deadline.at = None  # a started response is not cut short
            await send(message)

        sweeper.add(deadline)
        token = current_deadline.set(deadline)
        try:
            await self.app(scope, receive, send_tracking)
        except asyncio.CancelledError:
            if not deadline.fired or task.uncancel() > 0:
                raise  # not ours: the server's (or someone else's) cancellation
            log.warning("request timed out", path=scope["path"])
            if not started:
                timed_out = Problem(504, reason(504), "The request took longer than allowed.")
                await timed_out.response(scope)(scope, receive, send)
        except Exception as exc:
            problem = self._report(exc)
            if started:  # too late for a problem: the server closes the connection
                log.error("error after the response started", error=type(exc).__name__)
                return
            await (problem or generic_problem()).response(scope)(scope, receive, send)
        finally:
            sweeper.deadlines.discard(deadline)
            current_deadline.reset(token)

    def _report(self, exc: Exception) -> Problem | None:
        problem = problem_for(exc)
        if problem is None or (problem.status >= 500 and problem.detail == GENERIC_DETAIL):
            log.exception("unhandled error", error=type(exc).__name__)
        elif problem.status >= 500:
            log.warning("request failed", error=type(exc).__name__, detail=problem.detail)
        return problem
