"""``@cache.cached``, ``@cache.evict`` and ``@cache.put``.

Each keeps the decorated function's signature for type checkers
(``Callable[P, Awaitable[R]]`` in, the same out) and does its parsing at
decoration: the key and tag templates become plain functions of
``(args, kwargs)`` (``keys.py``) and the return annotation becomes a typed
msgspec decoder, so a hit costs a key join, a dict lookup and a decode.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from conveyor.cache.decoding import decoder_for
from conveyor.cache.keys import KeyBuilder, compile_key
from conveyor.cache.options import DEFAULT, MISSING, TTL, _Default
from conveyor.errors import ProgrammingError

if TYPE_CHECKING:
    from conveyor.cache.ops import CacheOps
    from conveyor.cache.resolver import Resolver

P = ParamSpec("P")
R = TypeVar("R")

AsyncFn = Callable[P, Awaitable[R]]


def _require_async(fn: Callable[..., Any], decorator: str) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise ProgrammingError(f"@{decorator} needs an async function, got {fn!r}")


def _return_decoder(fn: Callable[..., Any]) -> Any:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: decode as plain JSON
        return None
    returns = hints.get("return")
    if returns is None or returns is type(None):
        return None
    try:
        return decoder_for(returns)
    except TypeError:  # a type msgspec cannot decode into
        return None


def _tag_builders(fn: Callable[..., Any], tags: Sequence[str]) -> list[KeyBuilder]:
    return [compile_key(fn, tag) for tag in tags]


def cached(
    cache: CacheOps,
    resolver: Resolver,
    ttl: TTL | _Default = DEFAULT,
    *,
    key: str | None = None,
    tags: Sequence[str] = (),
    stale_ttl: float | None = None,
    soft_timeout: float | None = None,
    hard_timeout: float | None = None,
) -> Callable[[AsyncFn[P, R]], AsyncFn[P, R]]:
    def decorate(fn: AsyncFn[P, R]) -> AsyncFn[P, R]:
        _require_async(fn, "cached")
        build_key = compile_key(fn, key)
        tag_builders = _tag_builders(fn, tags)
        decoder = _return_decoder(fn)
        prefix = cache.full_key("")
        resolver.ttl_seconds(ttl)  # a bad TTL fails at decoration, not at the first call
        fresh_local = resolver.fresh_local
        resolve_slow = resolver.resolve_slow

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            full = prefix + build_key(args, kwargs)

            def recipe() -> Any:
                call_tags = [build(args, kwargs) for build in tag_builders]
                return resolver.recipe(
                    full, lambda: fn(*args, **kwargs), ttl, call_tags, stale_ttl, hard_timeout
                )

            value = fresh_local(full, decoder, recipe)
            if value is not MISSING:
                result: R = value
                return result
            return await resolve_slow(recipe(), decoder, soft_timeout)  # type: ignore[no-any-return]

        return wrapper

    return decorate


def evict(
    cache: CacheOps, *, key: str | None = None, tags: Sequence[str] = ()
) -> Callable[[AsyncFn[P, R]], AsyncFn[P, R]]:
    def decorate(fn: AsyncFn[P, R]) -> AsyncFn[P, R]:
        _require_async(fn, "evict")
        if key is None and not tags:
            raise ProgrammingError("@evict needs a key template, tags, or both")
        build_key = compile_key(fn, key) if key is not None else None
        tag_builders = _tag_builders(fn, tags)

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            result = await fn(*args, **kwargs)
            if build_key is not None:
                await cache.delete(build_key(args, kwargs))
            if tag_builders:
                await cache.invalidate_tags(*(build(args, kwargs) for build in tag_builders))
            return result

        return wrapper

    return decorate


def put(
    cache: CacheOps,
    resolver: Resolver,
    ttl: TTL | _Default = DEFAULT,
    *,
    key: str | None = None,
    tags: Sequence[str] = (),
) -> Callable[[AsyncFn[P, R]], AsyncFn[P, R]]:
    def decorate(fn: AsyncFn[P, R]) -> AsyncFn[P, R]:
        _require_async(fn, "put")
        build_key = compile_key(fn, key)
        tag_builders = _tag_builders(fn, tags)
        resolver.ttl_seconds(ttl)  # a bad TTL fails at decoration

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            result = await fn(*args, **kwargs)
            call_tags = [build(args, kwargs) for build in tag_builders]
            await cache.set(build_key(args, kwargs), result, ttl, tags=call_tags)
            return result

        return wrapper

    return decorate
