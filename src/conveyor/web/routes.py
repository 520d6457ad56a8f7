"""The route template of a request: ``/items/{item_id}``, never ``/items/42``.

Metrics and access logs label requests by it, so a thousand ids make one
series. It is known only after routing, so middleware reads it when the
inner app returns: the router leaves the matched route in
``scope["route"]`` (Starlette >= 1.7, FastAPI for its own routes; a plain
Starlette route in a FastAPI app is found by its endpoint), and Starlette
mounts add their matched prefix to ``root_path``.

FastAPI (0.16x) keeps an included router's prefix out of the route it
leaves there (``include_router(r, prefix="/v1")``: the route's path is
``/ping``). The prefix is recovered from the request path: the part before
what the route's own pattern matches, with the path parameters it holds put
back as ``{name}``. The result is computed once per request (the access log
and the metrics both ask).

A request answered before the router sees it (a global rate limit's 429) is
routed by :func:`find_route`, with the router's own matching, so it is
labelled like any other.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import Match, Mount
from starlette.types import Scope

UNMATCHED = "unmatched"
"""The one label value of every request that no route matched (a 404)."""
_KEY = "conveyor.route_template"


def route_template(scope: Scope) -> str | None:
    """The template of the route that handled ``scope``, or None if none matched."""
    if _KEY in scope:
        found: str | None = scope[_KEY]
        return found
    template = scope[_KEY] = _template(scope)
    return template


def find_route(scope: Scope) -> None:
    """Route a request that is answered before the router sees it (a rate limit's 429):
    leave in ``scope`` what the router would, so that its template labels it."""
    router = getattr(scope.get("app"), "router", None)
    if router is None or "route" in scope:
        return
    partial = None
    for context in iter_route_contexts(router.routes):
        match, child_scope = context.matches(scope)
        if match is Match.FULL:
            scope["route"] = context.original_route
            scope.update(child_scope)
            return
        if match is Match.PARTIAL and partial is None:
            partial = (context.original_route, child_scope)
    if partial is not None:  # the path matched, the method did not (a 405)
        scope["route"] = partial[0]
        scope.update(partial[1])


def _template(scope: Scope) -> str | None:
    route = scope.get("route") or _route_of_endpoint(scope)
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    prefix = _mount_prefix(scope)
    if isinstance(route, Mount):
        # root_path already ends with what this mount matched: the template itself,
        # unless the mount's path has parameters (then keep the bounded template only).
        return prefix if prefix and prefix.endswith(path) else path or "/"
    pattern = getattr(route, "path_regex", None)
    if isinstance(pattern, re.Pattern):
        below = _path_below_root(scope)
        if not pattern.match(below):
            prefix += _included_prefix(below, pattern, scope, route)
    return prefix + path if path else prefix or "/"


def _route_of_endpoint(scope: Scope) -> Any:
    """FastAPI's router leaves no ``route`` for a plain Starlette route (``add_route``):
    find it among the router's routes by the endpoint it chose."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    for route in getattr(scope.get("router"), "routes", ()):
        if getattr(route, "endpoint", None) is endpoint:
            return route
    return None


def _mount_prefix(scope: Scope) -> str:
    """The paths matched by the mounts a route sits under (Starlette adds them to root_path)."""
    app_root = scope.get("app_root_path")
    root_path = scope.get("root_path", "")
    if app_root is None or not root_path.startswith(app_root):
        return ""
    return str(root_path[len(app_root) :])


def _path_below_root(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    return path[len(root_path) :] if root_path and path.startswith(root_path) else path


def _included_prefix(path: str, pattern: re.Pattern[str], scope: Scope, route: Any) -> str:
    """The template of the part of ``path`` before the route's own pattern matches."""
    for i in range(1, len(path)):
        if path[i] == "/" and pattern.match(path[i:]):
            own = set(getattr(route, "param_convertors", {}))
            params = scope.get("path_params", {})
            names = {str(v): k for k, v in params.items() if k not in own}
            return "/".join("{" + names[s] + "}" if s in names else s for s in path[:i].split("/"))
    return ""
