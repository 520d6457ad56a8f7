"""An HTTP response cache for Starlette (and FastAPI) endpoints.

>>> @cache.response(ttl=60, vary_query=["page"], vary_headers=["accept-language"],
...                 tags=["products"])
... async def list_products(request: Request) -> Response: ...
>>> @cache.invalidates("products")
... async def create_product(request: Request) -> Response: ...

Only GET and HEAD are cached, only responses with a status in ``statuses``
that set no cookie and do not say ``no-store`` or ``private``, and never a
response to an authenticated request (an ``Authorization`` header, or a
``scope["user"]`` that is authenticated) unless ``cache_authenticated``.
Every response says ``X-Cache: HIT``, ``MISS``, ``STALE`` (served past its TTL
while a refresh runs behind) or ``BYPASS``; cached ones carry an ``ETag``,
and a matching ``If-None-Match`` gets ``304 Not Modified``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from conveyor.cache.options import DEFAULT, TTL, _Default
from conveyor.errors import ProgrammingError

if TYPE_CHECKING:
    from conveyor.cache.ops import CacheOps
    from conveyor.cache.resolver import Resolver

Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])
_UNSAFE_HEADERS = frozenset({"set-cookie", "content-length", "x-cache", "etag"})


class StoredResponse(msgspec.Struct, array_like=True):
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    etag: str


def _is_authenticated(request: Request) -> bool:
    # A cookie may carry a session, so its response may be personal (as Varnish assumes).
    if "authorization" in request.headers or "cookie" in request.headers:
        return True
    user = request.scope.get("user")
    return bool(getattr(user, "is_authenticated", False))


def _cacheable(response: Response, statuses: Sequence[int]) -> bool:
    if response.status_code not in statuses or "set-cookie" in response.headers:
        return False
    control = response.headers.get("cache-control", "").lower()
    return "no-store" not in control and "private" not in control and hasattr(response, "body")


def _key(request: Request, vary_query: Sequence[str], vary_headers: Sequence[str]) -> str:
    """The path and the chosen values, JSON-encoded so no value can pass for another."""
    query = [request.query_params.get(name) for name in vary_query]
    headers = [request.headers.get(name) for name in vary_headers]
    return "http:" + msgspec.json.encode([request.url.path, query, headers]).decode()


def _store(response: Response) -> StoredResponse:
    body = bytes(response.body)
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _UNSAFE_HEADERS]
    return StoredResponse(response.status_code, headers, body, etag)


def _matches(etag: str, if_none_match: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, ``*`` matches any)."""
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


def _render(
    request: Request, stored: StoredResponse, state: str, vary: Sequence[str] = ()
) -> Response:
    common = {"etag": stored.etag, "x-cache": state}
    if vary:
        common["vary"] = ", ".join(vary)
    if _matches(stored.etag, request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=common)
    response = Response(stored.body, status_code=stored.status)
    for name, value in stored.headers:
        response.headers.append(name, value)
    for name, value in common.items():
        response.headers[name] = value
    return response


def _request_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Request):
            return value
    raise ProgrammingError("a cached endpoint needs the Request among its arguments")


def cached_response(
    cache: CacheOps,
    resolver: Resolver,
    ttl: TTL | _Default = DEFAULT,
    *,
    vary_query: Sequence[str] = (),
    vary_headers: Sequence[str] = (),
    tags: Sequence[str] = (),
    stale_ttl: float = 0.0,
    statuses: Sequence[int] = (200,),
    cache_authenticated: bool = False,
) -> Callable[[Endpoint], Endpoint]:
    resolver.ttl_seconds(ttl)  # a bad TTL fails at decoration
    vary_headers = [h.lower() for h in vary_headers]

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Response:
            request = _request_of(args, kwargs)
            if request.method not in ("GET", "HEAD") or (
                not cache_authenticated and _is_authenticated(request)
            ):
                response = await endpoint(*args, **kwargs)
                response.headers["x-cache"] = "BYPASS"
                return response
            key = _key(request, vary_query, vary_headers)
            stored = await cache.get(key, type=StoredResponse)
            if stored is not None:
                return _render(request, stored, "HIT", vary_headers)

            async def refresh() -> StoredResponse | None:
                response = await endpoint(*args, **kwargs)
                if not _cacheable(response, statuses):
                    return None
                fresh = _store(response)
                await cache.set(key, fresh, ttl, tags=tags, stale_ttl=stale_ttl)
                return fresh

            stale = await cache.get(key, type=StoredResponse, allow_stale=True)
            if stale is not None:
                resolver.spawn(refresh())
                return _render(request, stale, "STALE", vary_headers)
            response = await endpoint(*args, **kwargs)
            if not _cacheable(response, statuses):
                response.headers["x-cache"] = "BYPASS"
                return response
            fresh = _store(response)
            await cache.set(key, fresh, ttl, tags=tags, stale_ttl=stale_ttl)
            rendered = _render(request, fresh, "MISS", vary_headers)
            rendered.background = response.background  # the endpoint's own tasks still run
            return rendered

        return wrapper  # type: ignore[return-value]

    return decorate


def invalidates(cache: CacheOps, tags: Sequence[str]) -> Callable[[Endpoint], Endpoint]:
    """After a write endpoint answers 2xx, invalidate the cached responses of ``tags``."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Response:
            response = await endpoint(*args, **kwargs)
            if 200 <= response.status_code < 300:
                await cache.invalidate_tags(*tags)
            return response

        return wrapper  # type: ignore[return-value]

    return decorate
