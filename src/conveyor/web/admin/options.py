"""AdminOptions: where the management API and the dashboard live, and who may use them.

Keys are stored as SHA-256 digests of high-entropy tokens: a leaked
configuration grants nothing. ``new_api_key`` makes a token and its key:

>>> token, key = new_api_key("ops", "operator")
>>> key.line()      # what goes into CONVEYOR_ADMIN_KEYS (or AdminOptions(keys=[key]))
'ops:operator:5f1c...'

Without keys, the API and the dashboard answer loopback clients only (as
operators); with keys, every request needs one (``Authorization: Bearer``,
``X-API-Key``, or the dashboard's session cookie), loopback included,
unless ``loopback_role`` says otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from conveyor.errors import ConfigError
from conveyor.ratelimit.keys import ProxyHeader, TrustedProxies

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
KEYS_ENV = "CONVEYOR_ADMIN_KEYS"
"""``name:role:sha256-hex`` entries separated by commas or new lines."""
TOKEN_PREFIX = "cvk_"  # noqa: S105 (a prefix, not a secret)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One credential: ``name`` (who, in the audit log), ``role``, and the SHA-256 hex
    digest of its token (the token itself is never stored)."""

    name: str
    role: Role
    digest: str = field(repr=False)

    def line(self) -> str:
        """The key as one ``CONVEYOR_ADMIN_KEYS`` entry."""
        return f"{self.name}:{self.role}:{self.digest}"

    def problems(self) -> list[str]:
        found = []
        if not (isinstance(self.name, str) and _NAME.fullmatch(self.name)):
            found.append(f"key name must be 1-64 of A-Z a-z 0-9 _ . @ -, got {self.name!r}")
        if self.role not in ROLES:
            found.append(f"key {self.name}: role must be viewer or operator, got {self.role!r}")
        if not (isinstance(self.digest, str) and _DIGEST.fullmatch(self.digest)):
            found.append(f"key {self.name}: digest must be 64 lower-case hex digits (SHA-256)")
        return found


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is stored and compared as."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key(name: str, role: Role) -> tuple[str, ApiKey]:
    """A fresh token (256 random bits; give it to the client once) and the key to store."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, ApiKey(name, role, token_digest(token))


def parse_keys(text: str) -> tuple[ApiKey, ...]:
    """Keys from ``name:role:digest`` entries (commas or new lines between them)."""
    keys = []
    problems = []
    for entry in re.split(r"[,\n]", text):
        entry = entry.strip()
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) != 3:
            problems.append(f"{KEYS_ENV}: an entry is name:role:sha256-hex, got {len(parts)} parts")
            continue
        name, role, digest = parts
        keys.append(ApiKey(name, role, digest.lower()))  # type: ignore[arg-type]
    if problems:
        raise ConfigError(problems)
    return tuple(keys)


@dataclass(frozen=True, kw_only=True)
class AdminOptions:
    """The management API and dashboard of a service (``ServiceOptions(admin=...)``).

    >>> AdminOptions(keys=[key], trusted_proxies=["10.0.0.0/8"])
    >>> AdminOptions(enabled=False)     # neither the API nor the dashboard
    """

    enabled: bool = True
    api_prefix: str = "/api/v1"
    dashboard_prefix: str | None = "/dashboard"
    """None: no dashboard (the API alone)."""
    queues_also_at: str | None = None
    """A second prefix for the queue endpoints alone (``/queues``, ``/queues/metrics``,
    ``/queues/{queueName}/jobs/{jobId}``, pause, resume, clean, ...): the paths the products'
    clients call (``/api/v1``) when ``api_prefix`` has moved the API elsewhere. The same
    handlers and keys; the dashboard keeps using ``api_prefix``."""
    keys: Sequence[ApiKey] | None = None
    """Credentials; None reads ``CONVEYOR_ADMIN_KEYS`` (absent: no keys, loopback only)."""
    loopback_role: Role | Literal["auto"] | None = "auto"
    """What a loopback client without a key may do: ``"auto"`` is operator when no key is
    configured and nothing once one is."""
    trusted_proxies: Sequence[str] = ()
    """Proxies whose forwarding header tells the client's address (CIDR or addresses)."""
    proxy_header: ProxyHeader = "x-forwarded-for"
    cookie_name: str = "conveyor_session"
    session_seconds: int = 12 * 3600
    """How long a dashboard sign-in lasts."""
    request_link: str | None = None
    """A URL with ``{request_id}`` (your log search): the job page links the request."""
    poll_seconds: float = 5.0
    """How often a page refreshes when its event stream is not connected."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    def resolved_keys(self) -> tuple[ApiKey, ...]:
        if self.keys is not None:
            return tuple(self.keys)
        keys = parse_keys(os.environ.get(KEYS_ENV, ""))
        problems = [f"{KEYS_ENV}: {p}" for key in keys for p in key.problems()]
        if len({key.name for key in keys}) != len(keys):
            problems.append(f"{KEYS_ENV}: two keys share a name")
        if problems:
            raise ConfigError(problems)
        return keys

    def resolved_loopback_role(self) -> Role | None:
        if self.loopback_role == "auto":
            return None if self.resolved_keys() else "operator"
        return self.loopback_role

    def proxies(self) -> TrustedProxies:
        return TrustedProxies(self.trusted_proxies, header=self.proxy_header)

    def problems(self) -> list[str]:
        found: list[str] = []
        for name in ("api_prefix", "dashboard_prefix", "queues_also_at"):
            prefix = getattr(self, name)
            if prefix is None and name != "api_prefix":
                continue
            if not (isinstance(prefix, str) and _PREFIX.fullmatch(prefix)):
                found.append(f"admin.{name} must be a path like /api/v1, got {prefix!r}")
        if self.api_prefix == self.dashboard_prefix:
            found.append("admin.api_prefix and admin.dashboard_prefix must differ")
        if self.queues_also_at is not None and self.queues_also_at in (
            self.api_prefix,
            self.dashboard_prefix,
        ):
            found.append("admin.queues_also_at must differ from api_prefix and dashboard_prefix")
        keys = self.keys if self.keys is not None else ()
        for key in keys:
            found += [f"admin.{p}" for p in key.problems()] if isinstance(key, ApiKey) else []
        if not all(isinstance(key, ApiKey) for key in keys):
            found.append("admin.keys must be ApiKey values (see new_api_key)")
        names = [key.name for key in keys if isinstance(key, ApiKey)]
        if len(set(names)) != len(names):
            found.append("admin.keys: two keys share a name")
        if self.loopback_role not in (*ROLES, None, "auto"):
            found.append("admin.loopback_role must be viewer, operator, None or 'auto'")
        try:
            self.proxies()
        except Exception as exc:
            found.append(f"admin.trusted_proxies: {exc}")
        if not (isinstance(self.session_seconds, int) and self.session_seconds > 0):
            found.append("admin.session_seconds must be a positive integer")
        if not (isinstance(self.poll_seconds, int | float) and 0.5 <= self.poll_seconds <= 300):
            found.append("admin.poll_seconds must be 0.5..300")
        if self.request_link is not None and "{request_id}" not in self.request_link:
            found.append("admin.request_link must contain {request_id}")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.cookie_name or ""):
            found.append("admin.cookie_name must be 1-64 of A-Z a-z 0-9 _ -")
        return found
