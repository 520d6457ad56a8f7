"""Who a management request is from, and what it may do.

A request presents a token (``Authorization: Bearer``, ``X-API-Key``, or the
dashboard's session cookie); its SHA-256 digest is compared with every
configured key's in constant time (``hmac.compare_digest``). Without a
token, a loopback client may act in ``loopback_role`` (operator when no key
is configured), provided that:

- its address is loopback after the trusted proxies are applied (a proxy that
  is not configured but forwards, i.e. a loopback peer sending a forwarding
  header, makes the request not loopback: the real client is elsewhere);
- its ``Host`` is a loopback name, so a page whose DNS name was rebound to
  127.0.0.1 cannot drive the API from a browser.

Anyone else gets 401. Reads need a viewer, actions an operator (else 403).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Literal

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from conveyor.ratelimit.keys import TrustedProxies, parse_address
from conveyor.web.admin.options import AdminOptions, ApiKey, Role, token_digest

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="conveyor"'}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: ``actor`` is what the audit log records."""

    actor: str
    role: Role
    via: Literal["key", "cookie", "loopback"]

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


class Authenticator:
    """Decides who a request is from (built once per service from its options)."""

    def __init__(self, options: AdminOptions) -> None:
        self.keys: tuple[ApiKey, ...] = options.resolved_keys()
        self.loopback_role = options.resolved_loopback_role()
        self.proxies: TrustedProxies = options.proxies()
        self.cookie_name = options.cookie_name

    def key_for(self, token: str) -> ApiKey | None:
        """The key whose digest matches ``token``; every key is compared (constant time)."""
        digest = token_digest(token)
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found

    def principal(self, request: HTTPConnection) -> Principal | None:
        """Who the request is from, None when it has no valid credential; 401 for a
        credential that matches no key (a wrong key is never silently ignored)."""
        token, via = self._token(request)
        if token is not None:
            key = self.key_for(token)
            if key is None:
                raise HTTPException(401, "The credential matches no key.", CHALLENGE)
            return Principal(key.name, key.role, via)
        if self.loopback_role is not None and self.is_loopback(request):
            return Principal("loopback", self.loopback_role, "loopback")
        return None

    def require(self, request: HTTPConnection, role: Role) -> Principal:
        """The principal, if it may act as ``role``; else 401 (nobody) or 403."""
        principal = self.principal(request)
        if principal is None:
            detail = (
                "Send an API key (Authorization: Bearer <token>)."
                if self.keys
                else "No key is configured: the management API answers loopback clients only."
            )
            raise HTTPException(401, detail, CHALLENGE)
        if role == "operator" and not principal.can_act:
            raise HTTPException(403, f"{principal.actor} is a viewer; this needs an operator.")
        return principal

    def _token(self, request: HTTPConnection) -> tuple[str | None, Literal["key", "cookie"]]:
        authorization = request.headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), "key"
        api_key = request.headers.get("x-api-key")
        if api_key:
            return api_key, "key"
        cookie = request.cookies.get(self.cookie_name)
        return (cookie or None), "cookie"

    def client_address(self, request: HTTPConnection) -> str | None:
        peer = request.client.host if request.client else None
        return self.proxies.client_address(peer, request.headers.raw)

    def is_loopback(self, request: HTTPConnection) -> bool:
        peer = parse_address(request.client.host) if request.client else None
        if peer is None:
            return False
        if not self.proxies.trusts(peer) and any(h in request.headers for h in FORWARDING_HEADERS):
            return False  # forwarded by a proxy nobody configured: the client is elsewhere
        client = self.client_address(request)
        address = parse_address(client) if client else None
        return address is not None and address.is_loopback and _loopback_host(request)


def _loopback_host(request: HTTPConnection) -> bool:
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.endswith("]") else host
    if host.startswith("["):
        name = host[1 : host.find("]")]
    name = name.lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
