"""One access-log line per request, with nothing secret in it.

The line names the route template, not the path (a path may carry a token:
``/invites/<token>``); the raw path appears only for requests no route
matched. Headers are never logged, so ``Authorization``, cookies and API-key
headers cannot leak; query values whose names look like credentials are
masked, and structlog's masking processor runs over the line last.
The ``request_id`` and ``trace_id`` come from the logging context
(``observe.py`` writes the line once the request is done).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from starlette.types import Scope

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


def write_access_line(scope: Scope, status: int, size: int, seconds: float) -> None:
    """Log the request of ``scope``: method, route, status, duration, size (and the
    request id and trace id, from the logging context)."""
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
