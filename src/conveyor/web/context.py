"""Request context: the request id and the W3C trace context of each request.

The outermost middleware. It accepts the caller's ``X-Request-ID`` when it
is well-formed (else makes one), returns it on the response, and binds
``request_id``, ``trace_id`` and ``traceparent`` to the structlog context for
the request: every log line, job and event made while handling it carries
them (``conveyor.jobs.tracing`` stores them with each job). A ``traceparent``
that is missing or malformed starts a new trace.
"""

from __future__ import annotations

import re
import secrets

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""Accepted caller request ids: UUIDs, ULIDs and the like; nothing a log could misread."""
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def new_request_id() -> str:
    return secrets.token_hex(16)


def accept_request_id(raw: bytes | None) -> str:
    """The caller's request id if it is well-formed, else a new one."""
    if raw is not None and _REQUEST_ID.fullmatch(raw):
        return raw.decode("ascii")
    return new_request_id()


def accept_traceparent(raw: bytes | None) -> tuple[str, str]:
    """``(traceparent, trace_id)``: the caller's if valid (W3C level 1), else a new trace."""
    if raw is not None:
        match = _TRACEPARENT.fullmatch(raw.strip())
        if match is not None:
            version, trace_id, parent_id, flags, rest = (
                g.decode("ascii") if g is not None else None for g in match.groups()
            )
            valid = (
                version != "ff"
                and not (version == "00" and rest)
                and trace_id != _ZERO_TRACE
                and parent_id != _ZERO_SPAN
            )
            if valid:
                # A later version is read by its first four fields and passed on as 00.
                return f"00-{trace_id}-{parent_id}-{flags}", str(trace_id)
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-00", trace_id


class RequestContextMiddleware:
    """Request id and trace context for every HTTP request (pure ASGI)."""

    def __init__(self, app: ASGIApp, header: str = "X-Request-ID") -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_id = raw_trace = None
        for name, value in scope["headers"]:
            if name == self.header:
                raw_id = value
            elif name == b"traceparent":
                raw_trace = value
        request_id = accept_request_id(raw_id)
        traceparent, trace_id = accept_traceparent(raw_trace)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (self.header, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(
            request_id=request_id, trace_id=trace_id, traceparent=traceparent
        )
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


def request_id_of(scope: Scope) -> str | None:
    """The request id the context middleware gave this request."""
    state = scope.get("state")
    value = state.get("request_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) else None
