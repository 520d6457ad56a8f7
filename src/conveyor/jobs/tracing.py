"""The request a job came from: captured at enqueue, bound again while it runs.

A web request (``conveyor.web``) sets the request context (its request id
and W3C ``traceparent``) for the time it is handled, and binds
``request_id`` and ``trace_id`` to the structlog context. A job enqueued
meanwhile stores the context with its options (``JobOptions.context``: no
store schema change); the worker sets it again for each attempt and binds
the same two log fields, so the worker's log lines for that job carry the
request's ids, and a job (or event) enqueued by that job inherits them.
A request id bound to structlog by other means (the application's own
middleware) is captured too.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

import msgspec
import structlog


class RequestContext(msgspec.Struct, frozen=True, omit_defaults=True):
    """The ids of the request (or job) that enqueued a job."""

    request_id: str | None = None
    traceparent: str | None = None
    """W3C trace context: ``00-<trace-id>-<parent-id>-<flags>``."""

    @property
    def trace_id(self) -> str | None:
        """The 32-hex trace id inside ``traceparent``."""
        if self.traceparent is None:
            return None
        parts = self.traceparent.split("-")
        return parts[1] if len(parts) >= 4 else None


_current: ContextVar[RequestContext | None] = ContextVar("conveyor_request", default=None)


def set_context(context: RequestContext | None) -> Token[RequestContext | None]:
    """Make ``context`` the current request context (``reset_context`` undoes it)."""
    return _current.set(context)


def reset_context(token: Token[RequestContext | None]) -> None:
    _current.reset(token)


def capture_context() -> RequestContext | None:
    """The current request context, if any (else a request id bound to structlog)."""
    context = _current.get()
    if context is not None:
        return context
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return None if request_id is None else RequestContext(request_id=str(request_id))


def bind_context(context: RequestContext | None) -> None:
    """Make a job's request context current for its attempt, and its ids log fields."""
    if context is None:
        return
    _current.set(context)
    fields: dict[str, str] = {}
    if context.request_id is not None:
        fields["request_id"] = context.request_id
    trace_id = context.trace_id
    if trace_id is not None:
        fields["trace_id"] = trace_id
    structlog.contextvars.bind_contextvars(**fields)


class _ContextOnly(msgspec.Struct):
    context: RequestContext | None = None


_context_decoder = msgspec.json.Decoder(_ContextOnly)


def stored_context(options: bytes) -> RequestContext | None:
    """The request context inside a stored job's options JSON (None if it has none)."""
    try:
        return _context_decoder.decode(options).context
    except msgspec.DecodeError:
        return None
