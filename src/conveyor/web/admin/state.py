"""What the management API and the dashboard share while the service runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from conveyor.app import Conveyor
from conveyor.web.admin.auth import Authenticator, Principal
from conveyor.web.admin.csrf import check_same_origin
from conveyor.web.admin.options import AdminOptions
from conveyor.web.context import request_id_of
from conveyor.web.state import ServiceState

# Declared so the OpenAPI document shows how to authenticate; the Authenticator
# reads the headers itself (and the dashboard's cookie).
BEARER = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer <token>")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")


@dataclass(slots=True)
class AdminState:
    """The service's app, its admin options and who may do what."""

    service: ServiceState
    options: AdminOptions
    auth: Authenticator = field(init=False)

    def __post_init__(self) -> None:
        self.auth = Authenticator(self.options)

    @property
    def app(self) -> Conveyor:
        return self.service.app

    def viewer(self, request: Request) -> Principal:
        return self.auth.require(request, "viewer")

    def operator(self, request: Request) -> Principal:
        principal = self.auth.require(request, "operator")
        check_same_origin(request, request.method)
        return principal

    async def audit(
        self,
        request: Request,
        principal: Principal,
        action: str,
        target: str,
        counts: dict[str, int] | None = None,
    ) -> None:
        """Record a destructive action in ``app.audit`` (who, what, counts, request id)."""
        await self.app.audit.record(
            principal.actor, action, target, counts, request_id=request_id_of(request.scope)
        )


Guard = Callable[..., Awaitable[Principal]]


def guards(admin: AdminState) -> tuple[Guard, Guard]:
    """FastAPI dependencies: a viewer (reads) and an operator (actions, CSRF-checked)."""

    async def viewer(
        request: Request,
        _bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
        _key: str | None = Security(API_KEY),
    ) -> Principal:
        return admin.viewer(request)

    async def operator(
        request: Request,
        _bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
        _key: str | None = Security(API_KEY),
    ) -> Principal:
        return admin.operator(request)

    return viewer, operator
