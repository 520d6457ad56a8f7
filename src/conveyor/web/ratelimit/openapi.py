"""Rate limits in the OpenAPI document: what a guarded operation may answer.

Every operation the global policies or a ``rate_limit`` dependency guard gets
a 429 (``QuotaExceededProblem``: the problem details with the tier context,
and the ``RateLimit``, ``RateLimit-Policy`` and ``Retry-After`` headers), a
503 when one of its limiters fails closed on a shared store, and the two
``RateLimit`` headers on its other answers. The probes and ``/metrics`` are
never limited, so they get none of it.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from conveyor.web.problems import MEDIA_TYPE as PROBLEM_TYPE
from conveyor.web.ratelimit.checks import ServiceRateLimits
from conveyor.web.ratelimit.dependency import RateLimit
from conveyor.web.ratelimit.guarded import guarded_operations
from conveyor.web.state import PROBE_PATHS

QUOTA_EXCEEDED_SCHEMA: dict[str, Any] = {
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "description": "The draft's quota-exceeded problem with the caller's tier.",
            "properties": {
                "violated-policies": {"type": "array", "items": {"type": "string"}},
                "message": {"type": "string"},
                "code": {"type": "string", "enum": ["RATE_LIMIT_EXCEEDED"]},
                "retryAfter": {"type": "integer", "description": "Seconds, as Retry-After."},
                "currentTier": {"type": "string"},
                "upgradeUrl": {"type": "string"},
                "limits": {
                    "type": "object",
                    "description": "The limit in the current tier and in the next one.",
                    "additionalProperties": {"type": "integer"},
                },
            },
            "required": ["violated-policies", "message", "code", "retryAfter", "limits"],
        },
    ]
}
HEADERS: dict[str, Any] = {
    "RateLimit-Policy": {
        "description": 'Each policy\'s quota (IETF draft): "name";q=<limit>;w=<seconds>',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What remains of each quota: "name";r=<remaining>;t=<seconds>',
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds until the request would pass",
        "schema": {"type": "integer"},
    },
}


def document_rate_limits(
    schema: dict[str, Any], web_app: Starlette, service: ServiceRateLimits
) -> None:
    """Add the answers of rate-limited operations to ``schema`` (in place)."""
    guarded = guarded_operations(web_app)
    global_policies = service.options.global_policies
    if not (guarded or global_policies):
        return
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["QuotaExceededProblem"] = QUOTA_EXCEEDED_SCHEMA
    components.setdefault("headers", {}).update(HEADERS)
    closed_by_default = service.app.settings.rate_limit_failure == "closed"
    for path, operations in schema.get("paths", {}).items():
        if path in PROBE_PATHS:
            continue
        for method, operation in operations.items():
            limits = guarded.get((path, method), [])
            if not (limits or global_policies):
                continue
            closed = (bool(global_policies) and closed_by_default) or any(
                _fails_closed(limit, closed_by_default) for limit in limits
            )
            _add_answers(operation.setdefault("responses", {}), closed)


def _fails_closed(limit: RateLimit, closed_by_default: bool) -> bool:
    if limit.scope == "local":
        return False
    return limit.failure == "closed" or (limit.failure is None and closed_by_default)


def _add_answers(responses: dict[str, Any], closed: bool) -> None:
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in HEADERS}
    for status, response in responses.items():
        if status.startswith("2"):
            response.setdefault("headers", {}).update(
                {name: headers[name] for name in ("RateLimit-Policy", "RateLimit")}
            )
    responses["429"] = {
        "description": "A rate limit refused the request",
        "headers": headers,
        "content": {
            PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/QuotaExceededProblem"}}
        },
    }
    if closed:
        responses["503"] = {
            "description": "The rate limits could not be checked (the limiter fails closed)",
            "headers": {"Retry-After": headers["Retry-After"]},
            "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
