"""The outermost layer: request context, then the access log, then the HTTP metrics.

DESIGN decision 11 orders them request context -> access log -> metrics,
outermost first. They run here as one pure-ASGI layer in that order: the
ids are bound before anything else runs and unbound last; the access line
is written after the metrics are recorded; the metrics time the inner app
alone. One layer instead of three because all three watch the same
messages (the status and the body size), so one ``send`` wrapper serves
them (the saving was within the noise of bench/README.md's measurements;
the single wrapper is simpler). What each step does lives in its own
module: ``context.py`` (ids), ``access_log.py`` (the line), ``metrics.py``.
"""

from __future__ import annotations

import os
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.jobs.tracing import RequestContext, reset_context, set_context
from conveyor.web.access_log import write_access_line
from conveyor.web.context import accept_request_id, accept_traceparent
from conveyor.web.metrics import METHODS, OTHER_METHOD, HttpMetrics
from conveyor.web.routes import UNMATCHED, route_template


class ObserveMiddleware:
    """Request id and trace context, one access-log line, HTTP metrics (pure ASGI).

    ``metrics``: None to record none; ``access_log``: False to write no line;
    the ``skip_*`` paths (the probes) are left out of one or the other.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = "X-Request-ID",
        metrics: HttpMetrics | None = None,
        access_log: bool = True,
        skip_metrics: frozenset[str] = frozenset(),
        skip_log: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")
        self.metrics = metrics
        self.access_log = access_log
        self.skip_metrics = skip_metrics
        self.skip_log = skip_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # -- request context: accept or make the ids, return one, bind them for logging
        raw_id = raw_trace = None
        for name, value in scope["headers"]:
            if name == self.header:
                raw_id = value
            elif name == b"traceparent":
                raw_trace = value
        fresh = os.urandom(40).hex()  # one system call for every id a request may need
        request_id = accept_request_id(raw_id, fresh[:32])
        traceparent, trace_id = accept_traceparent(raw_trace, fresh[32:])
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (self.header, request_id.encode("ascii"))
        path = scope["path"]
        metrics = None if path in self.skip_metrics else self.metrics
        status = 0
        sent = received = 0

        async def send_observed(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                if isinstance(headers, list):
                    headers.append(id_header)
                else:
                    message["headers"] = [*headers, id_header]
            await send(message)

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id, trace_id=trace_id)
        context = set_context(RequestContext(request_id, traceparent))
        method = scope["method"]
        if method not in METHODS:
            method = OTHER_METHOD
        in_flight = None if metrics is None else metrics.in_flight(method)
        if in_flight is not None:
            in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive_counted, send_observed)
        finally:
            elapsed = time.perf_counter() - started
            try:
                if metrics is not None and in_flight is not None:
                    in_flight.dec()
                    route = route_template(scope) or UNMATCHED
                    metrics.record(method, route, status or 500, elapsed, received, sent)
                if self.access_log and path not in self.skip_log:
                    write_access_line(scope, status, sent, elapsed)
            finally:
                reset_context(context)
                structlog.contextvars.reset_contextvars(**tokens)
