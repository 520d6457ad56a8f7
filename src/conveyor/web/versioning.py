"""API versions as routers under ``/v1``, ``/v2``; a retired one says so in its headers.

    api_version(api, v1_router, "v1", deprecated=datetime(2026, 1, 1, tzinfo=UTC),
                sunset=datetime(2026, 7, 1, tzinfo=UTC), link="https://example.com/migrate")

Every response under ``/v1`` then carries ``Deprecation: @1767225600``
(RFC 9745), ``Sunset: Wed, 01 Jul 2026 00:00:00 GMT`` (RFC 8594) and
``Link: <...>; rel="deprecation"``. The headers are added by a small
middleware that ``api_version`` installs once per app; it compares the
path's first segment with the retired versions and leaves the rest alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.errors import ProgrammingError

_VERSION = re.compile(r"v[0-9]+(\.[0-9]+)?|[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(slots=True)
class _Retired:
    headers: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    """``"/v1"`` -> the headers every response under it gets."""


def api_version(
    web_app: Starlette,
    router: Any,
    version: str,
    *,
    deprecated: datetime | None = None,
    sunset: datetime | None = None,
    link: str | None = None,
) -> None:
    """Serve ``router`` under ``/<version>``; mark the version retired if dates are given.

    ``router`` is a FastAPI ``APIRouter`` (on a FastAPI app), a Starlette
    ``Router`` or a list of routes. ``deprecated``/``sunset`` are aware
    datetimes: when the version was deprecated and when it stops answering.
    """
    if not _VERSION.fullmatch(version):
        raise ProgrammingError(
            f"API version must look like v1, v2.1 or 2026-01-31, got {version!r}"
        )
    for name, when in (("deprecated", deprecated), ("sunset", sunset)):
        if when is not None and (not isinstance(when, datetime) or when.tzinfo is None):
            raise ProgrammingError(f"{name} must be a timezone-aware datetime")
    prefix = "/" + version
    _include(web_app, router, prefix)
    if deprecated is None and sunset is None:
        return
    headers: list[tuple[bytes, bytes]] = []
    if deprecated is not None:
        headers.append((b"deprecation", f"@{int(deprecated.timestamp())}".encode()))
    if sunset is not None:
        headers.append((b"sunset", format_datetime(sunset, usegmt=True).encode()))
    if link is not None:
        headers.append((b"link", f'<{link}>; rel="deprecation"'.encode()))
    _retired(web_app).headers[prefix] = headers


def _include(web_app: Starlette, router: Any, prefix: str) -> None:
    if isinstance(web_app, FastAPI) and isinstance(router, APIRouter):
        web_app.include_router(router, prefix=prefix)
        return
    routes: list[BaseRoute] = list(router.routes if isinstance(router, Router) else router)
    web_app.router.routes.append(Mount(prefix, routes=routes))


def _retired(web_app: Starlette) -> _Retired:
    found = getattr(web_app.state, "conveyor_versions", None)
    if isinstance(found, _Retired):
        return found
    retired = _Retired()
    web_app.state.conveyor_versions = retired
    web_app.add_middleware(VersionHeadersMiddleware, retired=retired)
    return retired


class VersionHeadersMiddleware:
    """Adds the retirement headers to every response under a retired version's prefix."""

    def __init__(self, app: ASGIApp, retired: _Retired) -> None:
        self.app = app
        self.retired = retired

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = None
        if scope["type"] == "http":
            path: str = scope["path"]
            end = path.find("/", 1)
            headers = self.retired.headers.get(path if end < 0 else path[:end])
        if headers is None:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
