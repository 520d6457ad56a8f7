"""The request a job came from: captured at enqueue, bound again while it runs.

A web request binds ``request_id``, ``trace_id`` and the W3C ``traceparent``
to the structlog context (``conveyor.web``). A job enqueued while they are
bound stores them with its options (``JobOptions.context``: no store schema
change), and the worker binds them again for each attempt, so the worker's
log lines for that job carry the request's ids. A job enqueued by a job
inherits the context the same way.
"""

from __future__ import annotations

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


def capture_context() -> RequestContext | None:
    """The request context bound in the logging context now, if any."""
    bound = structlog.contextvars.get_contextvars()
    request_id, traceparent = bound.get("request_id"), bound.get("traceparent")
    if request_id is None and traceparent is None:
        return None
    return RequestContext(
        request_id=None if request_id is None else str(request_id),
        traceparent=None if traceparent is None else str(traceparent),
    )


def bind_context(context: RequestContext | None) -> None:
    """Bind a job's request context to the logging context of the running attempt."""
    if context is None:
        return
    fields: dict[str, str] = {}
    if context.request_id is not None:
        fields["request_id"] = context.request_id
    if context.traceparent is not None:
        fields["traceparent"] = context.traceparent
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
