"""RateLimitOptions: how the service limits requests; Caller: who a request is from.

The policies themselves are the app's (``app.rate_limits``, from settings or
code); these options say which apply to every request, how a request's caller
and tier are found, and what a 429 tells the client. Deployment facts live in
the app's settings: ``trusted_proxies`` and ``trusted_proxy_header`` (who may
say the client's address) and ``rate_limit_legacy_headers``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from starlette.requests import Request

_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is from, as far as rate limits care.

    ``api_key`` (a secret: only its digest becomes a rate-limit key) or ``user``
    names the caller; neither means the request counts by its client address.
    ``tier``, when the application already knows it (a claim in a token), skips
    the tier function.
    """

    api_key: str | None = None
    user: str | int | None = None
    tier: str | None = None

    def __repr__(self) -> str:
        key = "***" if self.api_key else None
        return f"Caller(api_key={key!r}, user={self.user!r}, tier={self.tier!r})"


Identify: TypeAlias = Callable[[Request], "Caller | Awaitable[Caller | None] | None"]
"""The application's function from a request to its caller (None: anonymous)."""
TierOf: TypeAlias = Callable[[Caller], "str | Awaitable[str | None] | None"]
"""The application's function from a caller to its tier (None: not a caller it knows)."""


@dataclass(frozen=True, kw_only=True)
class RateLimitOptions:
    """How an ``as_service`` service limits requests (``ServiceOptions(rate_limits=...)``).

    >>> RateLimitOptions(
    ...     global_policies=("api",),
    ...     tier=plans.tier_of,          # Caller -> "free" | "pro" | ..., cached
    ...     upgrade_url="/api/subscription/checkout",
    ... )

    Routes add their own with ``Depends(rate_limit("expensive"))``.
    """

    global_policies: tuple[str, ...] = ()
    """Policies every request is checked against (before routing), in one step; the
    probes and ``/metrics`` are never limited."""
    identify: Identify | None = field(default=None, repr=False)
    """Who a request is from (default: the API key in ``api_key_header``, if any)."""
    api_key_header: str = "X-API-Key"
    """Where the default ``identify`` reads the API key."""
    tier: TierOf | None = field(default=None, repr=False)
    """The tier of an identified caller, cached ``tier_ttl`` seconds. None from it means
    the caller is not one the application knows: the request then counts by its address,
    in ``anonymous_tier`` (so made-up API keys cannot each get a fresh quota). Without
    it every caller is in the caller's own ``tier`` or ``anonymous_tier``."""
    tier_ttl: float = 60.0
    anonymous_tier: str | None = None
    """The tier of a request counted by its address (None: the lowest tier)."""
    upgrade_url: str | None = None
    """``upgradeUrl`` in a 429 body (e.g. ``/api/subscription/checkout``)."""
    messages: Mapping[str, str] = field(default_factory=dict)
    """Tier -> the ``message`` of its 429 body. Default: ``"Free tier rate limit exceeded.
    Upgrade to Pro for higher limits."`` (the upgrade sentence only when the next tier
    allows more)."""

    def problems(self) -> list[str]:
        """Everything wrong with these options (empty when they are valid)."""
        found = []
        policies: object = self.global_policies
        if not (
            isinstance(policies, tuple)
            and all(isinstance(p, str) and p for p in policies)
            and len(set(policies)) == len(policies)
        ):
            found.append("global_policies must be a tuple of distinct policy names")
        for name in ("identify", "tier"):
            value: object = getattr(self, name)
            if value is not None and not callable(value):
                found.append(f"{name} must be a function of the request or None")
        if not (
            isinstance(self.api_key_header, str) and _HEADER_NAME.fullmatch(self.api_key_header)
        ):
            found.append(f"api_key_header is not a header name: {self.api_key_header!r}")
        ttl: object = self.tier_ttl
        if not (isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl >= 0):
            found.append(f"tier_ttl must be >= 0 seconds, got {ttl!r}")
        for name in ("anonymous_tier", "upgrade_url"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                found.append(f"{name} must be a non-empty string or None")
        messages: object = self.messages
        if not (
            isinstance(messages, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in messages.items())
        ):
            found.append("messages must map tier names to strings")
        return found
