"""Which operations of an app a ``rate_limit`` dependency guards.

Read from FastAPI's route contexts (an included router's own dependencies
count too), for the OpenAPI document and for the check at startup that every
policy the service names is declared (a misspelt name stops the service from
starting instead of failing its route).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.applications import Starlette

from conveyor.web.ratelimit.checks import ServiceRateLimits
from conveyor.web.ratelimit.dependency import RateLimit

Operation = tuple[str, str]
"""(path template, lower-case method), as the OpenAPI document keys them."""


def guarded_operations(web_app: Starlette) -> dict[Operation, list[RateLimit]]:
    """Every operation with at least one ``rate_limit`` dependency, and those."""
    found: dict[Operation, list[RateLimit]] = {}
    for context in iter_route_contexts(web_app.routes):
        dependant = getattr(context, "dependant", None)
        path = context.path_format
        if dependant is None or path is None:
            continue
        limits = list(_rate_limits(dependant))
        if limits:
            for method in context.methods or ():
                found[(path, method.lower())] = limits
    return found


def _rate_limits(dependant: Any) -> Iterator[RateLimit]:
    for dependency in getattr(dependant, "dependencies", ()):
        if isinstance(dependency.call, RateLimit):
            yield dependency.call
        yield from _rate_limits(dependency)


def undeclared_policies(web_app: Starlette, service: ServiceRateLimits) -> list[str]:
    """Every policy the global options or a route names that the app does not declare."""
    problems = [
        f"rate_limits.global_policies: {problem}"
        for problem in service.problems(service.options.global_policies)
    ]
    for (path, method), limits in sorted(guarded_operations(web_app).items()):
        for limit in limits:
            problems += [f"{method.upper()} {path}: {p}" for p in service.problems(limit.policies)]
    return problems
