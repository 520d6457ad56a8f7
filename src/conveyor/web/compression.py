"""gzip above a size, unless the client says ``x-no-compression``.

Starlette's ``GZipMiddleware`` does the work: it compresses only when the
client accepts gzip and the body reaches ``minimum_size``, and never touches
a body that already has a ``Content-Encoding``, a partial (206) response, or
Server-Sent Events and already-compressed media types. This adds the opt-out
header some clients (and the products conveyor came from) send to get plain
bodies, e.g. to read a stream byte by byte.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

OPT_OUT_HEADER = b"x-no-compression"


class CompressionMiddleware:
    """gzip (Starlette's) with the ``x-no-compression`` opt-out (pure ASGI)."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1024, level: int = 6) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size, compresslevel=level)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(
            name == OPT_OUT_HEADER for name, _ in scope["headers"]
        ):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
