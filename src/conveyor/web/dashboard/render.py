"""Templates, static files and the security headers of every dashboard answer.

The pages load one script and one stylesheet of our own from ``static/``
(no CDN, no inline script or style), so the Content-Security-Policy can
forbid everything else. A page asked with ``?fragment=1`` answers only its
``live`` block: what ``dashboard.js`` swaps in when the data changes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from conveyor.web.dashboard.actions import action_attributes, action_button
from conveyor.web.dashboard.highlight import highlight_traceback

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@functools.cache
def static_file(name: str) -> bytes:
    return resources.files("conveyor.web.dashboard").joinpath("static", name).read_bytes()


@functools.cache
def static_version(name: str) -> str:
    """A content hash for the asset's URL, so a new release is never served stale."""
    return hashlib.sha256(static_file(name)).hexdigest()[:12]


def static_response(name: str) -> Response:
    media_type = STATIC.get(name)
    if media_type is None:
        return Response(status_code=404)
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(static_file(name), 200, headers, media_type=media_type)


def environment(api_prefix: str, dashboard_prefix: str) -> Environment:
    env = Environment(
        loader=PackageLoader("conveyor.web.dashboard", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["api"] = api_prefix
    env.globals["base"] = dashboard_prefix
    env.globals["static"] = lambda name: (
        f"{dashboard_prefix}/static/{name}?v={static_version(name)}"
    )
    # Positional-only: an action's own parameters may be called "name" (a schedule's).
    env.globals["action"] = lambda action_name, /, label=None, **params: action_button(
        api_prefix, action_name, params, label
    )
    env.globals["action_attrs"] = lambda action_name, /, **params: action_attributes(
        api_prefix, action_name, params
    )
    env.filters["ago"] = seconds_text
    env.filters["since"] = since
    env.filters["when"] = when_text
    env.filters["pretty"] = pretty_json
    env.filters["number"] = number_text
    env.filters["ratio"] = lambda value: f"{100 * value:.1f} %"
    # pygments escapes the text it highlights
    env.filters["traceback"] = lambda text: Markup(highlight_traceback(text))  # noqa: S704
    return env


def page(
    env: Environment, request: Request, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    """The whole page, or its ``live`` block alone for ``?fragment=1``."""
    compiled = env.get_template(template)
    if request.query_params.get("fragment") == "1":
        block = compiled.blocks["live"]
        body = "".join(block(compiled.new_context(context)))
    else:
        body = compiled.render(context)
    return HTMLResponse(body, status, SECURITY_HEADERS)


def seconds_text(seconds: float | None) -> str:
    """``3 s``, ``4 min``, ``2.5 h``, ``3 d`` (``-`` for nothing)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def since(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return seconds_text(max(0.0, (datetime.now(UTC) - moment).total_seconds())) + " ago"


def when_text(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def number_text(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"
