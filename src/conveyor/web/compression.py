"""gzip above a size, unless the client says ``x-no-compression``.

Starlette's gzip responder does the work: it compresses only when the body
reaches ``minimum_size``, and never touches a body that already has a
``Content-Encoding``, a partial (206) response, or Server-Sent Events and
already-compressed media types. This layer adds the opt-out header some
clients (and the products conveyor came from) send to get plain bodies, and
brings Starlette's responder in only for a body that may be compressed: a
complete body under ``minimum_size`` (most API answers) goes out as it is,
as Starlette would send it, without the responder's per-request set-up
(about 9 us, bench/README.md).
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPT_OUT_HEADER = b"x-no-compression"


class CompressionMiddleware:
    """gzip (Starlette's) with the ``x-no-compression`` opt-out (pure ASGI)."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1024, level: int = 6) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.level = level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _wants_gzip(scope["headers"]):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        responder: GZipResponder | None = None

        async def send_maybe_compressed(message: Message) -> None:
            nonlocal held, responder
            if responder is not None:
                await responder.send_with_compression(message)
            elif message["type"] == "http.response.start":
                held = message  # until the first body says how large the answer is
            elif (
                held is not None
                and message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and len(message.get("body", b"")) < self.minimum_size
            ):
                await send(held)
                held = None
                await send(message)
            elif held is not None:
                responder = GZipResponder(self.app, self.minimum_size, compresslevel=self.level)
                responder.send = send
                await responder.send_with_compression(held)
                held = None
                await responder.send_with_compression(message)
            else:
                await send(message)

        await self.app(scope, receive, send_maybe_compressed)


def _wants_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    """The client accepts gzip and did not opt out.

    A client that does not accept gzip skips Starlette's middleware entirely, so its
    large responses carry no ``Vary: Accept-Encoding``: a cache that keeps such a plain
    body may serve it to a gzip client too, which reads it just as well.
    """
    accepts = False
    for name, value in headers:
        if name == OPT_OUT_HEADER:
            return False
        if name == b"accept-encoding" and b"gzip" in value:
            accepts = True
    return accepts
