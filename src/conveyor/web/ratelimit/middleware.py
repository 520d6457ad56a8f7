"""The rate-limit layer: global policies, headers, 429 and 503, slots given back.

It sits between the errors layer and gzip (DESIGN decision 11). For every
request of an app that declares policies it keeps a ``RequestLimits`` in the
scope (which the routes' ``rate_limit`` dependencies charge), checks the
global policies before routing (the probes and ``/metrics`` excepted), adds
the rate-limit headers of every decision to the response, answers a refused
request 429 and a fail-closed limiter that cannot check 503 (whether the
refusal came from here, a dependency or the app's own ``limiter.hit()``),
and gives back the request's concurrency slots when the response has ended,
failed or been abandoned by the client.

A request refused before routing is labelled with the route it would have
taken, so the HTTP metrics count it under its template like any other.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.errors import RateLimitedError, RateLimitUnavailableError
from conveyor.observability.logging import get_logger
from conveyor.web.problems import Problem
from conveyor.web.ratelimit.checks import SCOPE_KEY, RequestLimits, ServiceRateLimits
from conveyor.web.ratelimit.problems import limits_unavailable, quota_exceeded
from conveyor.web.routes import find_route
from conveyor.web.state import PROBE_PATHS

log = get_logger("conveyor.web")


class RateLimitMiddleware:
    """Rate limits for an ``as_service`` app (pure ASGI)."""

    def __init__(self, app: ASGIApp, service: ServiceRateLimits) -> None:
        self.app = app
        self.service = service
        self.global_policies = service.options.global_policies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.service.in_use:
            await self.app(scope, receive, send)
            return
        limits = scope[SCOPE_KEY] = RequestLimits(self.service, scope)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if limits.decisions:
                    message["headers"] = [*message.get("headers", ()), *limits.headers()]
            await send(message)

        try:
            if self.global_policies and scope["path"] not in PROBE_PATHS:
                try:
                    await limits.check(self.global_policies)
                except (RateLimitedError, RateLimitUnavailableError):
                    find_route(scope)  # refused before routing: the metrics' route
                    raise
            await self.app(scope, receive, send_with_headers)
        except RateLimitedError as exc:
            if started or exc.decision is None:
                raise  # not a limiter's (the errors layer answers it), or too late
            limits.record(exc.decision)
            problem = self._exceeded(limits)
            await problem.response(scope)(scope, receive, send_with_headers)
        except RateLimitUnavailableError as exc:
            if started:
                raise
            log.warning("rate limits unavailable, failing closed", detail=str(exc))
            await limits_unavailable(exc).response(scope)(scope, receive, send_with_headers)
        finally:
            if limits.holds_slots:
                with anyio.CancelScope(shield=True):  # a disconnect must not keep the slots
                    await limits.release()

    def _exceeded(self, limits: RequestLimits) -> Problem:
        tier = limits.decisions[0].tier
        return quota_exceeded(
            limits.quotas(), tier, self.service.app.rate_limits, self.service.options
        )
