"""One access-log line per request, with nothing secret in it.

The line names the route template, not the path (a path may carry a token:
``/invites/<token>``); the raw path appears only for requests no route
matched. Headers are never logged, so ``Authorization``, cookies and API-key
headers cannot leak; query values whose names look like credentials are
masked, and structlog's masking processor runs over the line last.
The ``request_id`` and ``trace_id`` come from the logging context.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.observability.logging import MASK, get_logger
from conveyor.web.routes import route_template

log = get_logger("conveyor.access")

_CREDENTIAL_NAME = re.compile(
    r"pass|secret|token|key|auth|sig|session|code|jwt|credential|cookie|otp|nonce", re.I
)
MAX_QUERY_CHARS = 512


def masked_query(raw: bytes) -> str:
    """The query string with every value of a credential-like parameter masked."""
    if not raw:
        return ""
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return MASK
    masked = [(k, MASK if _CREDENTIAL_NAME.search(k) else v) for k, v in pairs]
    text = urlencode(masked, safe="*/:")
    return text if len(text) <= MAX_QUERY_CHARS else text[:MAX_QUERY_CHARS] + "..."


class AccessLogMiddleware:
    """Logs method, route, status, duration and size of each request (pure ASGI)."""

    def __init__(self, app: ASGIApp, skip_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.skip_paths = skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        status = 0
        size = 0

        async def send_counting(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_counting)
        finally:
            self._log(scope, status, size, time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, size: int, seconds: float) -> None:
        route = route_template(scope)
        fields: dict[str, object] = {
            "method": scope["method"],
            "route": route,
            "status": status or None,
            "duration_ms": round(seconds * 1000, 2),
            "bytes": size,
        }
        if route is None:
            fields["path"] = scope["path"][:MAX_QUERY_CHARS]
        query = scope.get("query_string", b"")
        if query:
            fields["query"] = masked_query(query)
        client = scope.get("client")
        if client:
            fields["client"] = client[0]
        if status >= 500 or not status:
            log.warning("request", **fields)
        else:
            log.info("request", **fields)
