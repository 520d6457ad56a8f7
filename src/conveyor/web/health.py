"""The probes: ``/livez``, ``/readyz``, ``/health`` and the products' older paths.

- ``/livez`` (``/live``): the process answers; never touches a dependency, so a
  dead store cannot get the process restarted in a loop.
- ``/readyz`` (``/ready``): the app's health checks (store, cache, worker
  heartbeats and any the app adds), each within its timeout, in parallel,
  reused for ``health_cache_seconds``; 503 when a critical one fails, and at
  once when the service starts shutting down.
- ``/health`` (``/health/detailed``): the same checks in detail, after
  draft-inadarei-api-health-check (``application/health+json``): per
  component ``pass``/``warn``/``fail``, the observed latency, the uptime, the
  service's version and environment. ``warn`` (a degraded cache) is 200.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from conveyor.observability.health import HealthReport, Status
from conveyor.observability.logging import mask_text
from conveyor.web.state import ServiceState

MEDIA_TYPE = "application/health+json"
STATUS_WORDS = {Status.OK: "pass", Status.DEGRADED: "warn", Status.DOWN: "fail"}
COMPONENT_TYPES = {"store": "datastore", "store_memory": "datastore", "cache": "datastore"}
NO_STORE = {"Cache-Control": "no-store"}


def health_routes(state: ServiceState) -> list[BaseRoute]:
    """The probe routes, bound to ``state``."""

    async def livez(request: Request) -> Response:
        return _respond({"status": "pass"}, 200)

    async def readyz(request: Request) -> Response:
        if state.draining:
            return _respond({"status": "fail", "output": "shutting down"}, 503)
        report = await _readiness(state)
        body = {"status": STATUS_WORDS[report.status], "checks": _checks(report)}
        return _respond(body, 503 if report.status is Status.DOWN else 200)

    async def health(request: Request) -> Response:
        report = await _readiness(state)
        status = "fail" if state.draining else STATUS_WORDS[report.status]
        options = state.options
        body: dict[str, Any] = {
            "status": status,
            "version": options.version,
            "serviceId": options.title,
            "description": f"{options.title} ({options.environment})",
            "environment": options.environment,
            "checks": {**_checks(report), "uptime": [_uptime(state, report)]},
        }
        if state.draining:
            body["output"] = "shutting down"
        return _respond(body, 503 if status == "fail" else 200)

    return [
        Route(path, endpoint, methods=["GET"], include_in_schema=False)
        for paths, endpoint in (
            (("/livez", "/live"), livez),
            (("/readyz", "/ready"), readyz),
            (("/health", "/health/detailed"), health),
        )
        for path in paths
    ]


async def _readiness(state: ServiceState) -> HealthReport:
    return await state.app.health.readiness(max_age=state.options.health_cache_seconds)


def _checks(report: HealthReport) -> dict[str, list[dict[str, Any]]]:
    when = _iso(report.checked_at)
    checks = {}
    for name, result in report.checks.items():
        entry: dict[str, Any] = {
            "componentId": name,
            "componentType": COMPONENT_TYPES.get(name, "component"),
            "observedValue": result.duration_ms,
            "observedUnit": "ms",
            "status": STATUS_WORDS[result.status],
            "time": when,
        }
        if result.status is not Status.OK and result.detail:
            entry["output"] = mask_text(result.detail)
        if name not in report.critical:
            entry["affectsReadiness"] = False
        checks[f"{name}:responseTime"] = [entry]
        if result.observed is not None:  # e.g. store_memory:evictionPolicy = "noeviction"
            measured = {**entry, "observedValue": result.observed}
            measured.pop("observedUnit")
            checks[f"{name}:{result.measurement or 'observed'}"] = [measured]
    return checks


def _uptime(state: ServiceState, report: HealthReport) -> dict[str, Any]:
    return {
        "componentType": "system",
        "observedValue": round(time.monotonic() - state.started_at, 3),
        "observedUnit": "s",
        "status": "pass",
        "time": _iso(report.checked_at),
    }


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


def _respond(body: dict[str, Any], status: int) -> Response:
    return Response(msgspec.json.encode(body), status, NO_STORE, media_type=MEDIA_TYPE)
