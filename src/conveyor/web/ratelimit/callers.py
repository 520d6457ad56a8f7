"""Whose quota a request uses, and in which tier.

The caller comes from the application's ``identify`` (default: the API key in
``X-API-Key``); an API key or a user makes the key (``rate_key``: an API key
only as its digest). A request with neither, or whose caller the application's
tier function does not know, counts by its client address: the connection's
peer, unless that peer is a trusted proxy (settings ``trusted_proxies``), and
only then the proxy's header (``TrustedProxies.client_address``). The tier
function's answers are cached (``TierLookup``, ``tier_ttl`` seconds).
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

from starlette.requests import Request
from starlette.types import Scope

from conveyor.app import Conveyor
from conveyor.errors import BadInputError, ProgrammingError
from conveyor.ratelimit.keys import TrustedProxies, parse_address, rate_key
from conveyor.ratelimit.tiers import TierLookup
from conveyor.web.ratelimit.options import Caller, RateLimitOptions

UNKNOWN_ADDRESS_KEY = "ip:unknown"
"""The key of requests with no client address (a Unix socket without a trusted proxy):
they share one quota, since none can be told apart."""
_UNKNOWN = ""
"""What the cached tier function keeps for a caller the application does not know."""
_BEHIND_PROXY = "proxy"
"""What the peer cache keeps for a trusted proxy: the client is in its header."""
MAX_PEER_KEYS = 10_000


class Identity(NamedTuple):
    """A request's rate-limit key and tier (None: the policies' lowest tier)."""

    key: str
    tier: str | None


class Callers:
    """Finds each request's :class:`Identity` for one service."""

    def __init__(self, app: Conveyor, options: RateLimitOptions) -> None:
        settings = app.settings
        self.proxies = TrustedProxies(
            settings.trusted_proxies, header=settings.trusted_proxy_header
        )
        self._app = app
        self._options = options
        self._api_key_header = options.api_key_header.lower().encode("latin-1")
        self._tiers: TierLookup[Caller] | None = None
        self._peer_keys: dict[str, str] = {}

    async def identify(self, scope: Scope) -> Identity:
        """The key and tier of the request of ``scope``."""
        caller = await self._caller(scope)
        if caller is not None and (caller.api_key or caller.user not in (None, "")):
            tier = caller.tier
            if tier is None and self._options.tier is not None:
                tier = await self._tier_lookup()(Caller(caller.api_key, caller.user))
            if tier != _UNKNOWN:
                key = rate_key(api_key=caller.api_key, user=caller.user)
                return Identity(key, tier)
        return Identity(self.address_key(scope), self._options.anonymous_tier)

    def address_key(self, scope: Scope) -> str:
        """The key of a request counted by its client address."""
        client = scope.get("client")
        peer = client[0] if client else None
        # A peer that is not a trusted proxy is the client: its key is kept (parsing
        # the address twice was a third of a check's cost over HTTP).
        known = self._peer_keys.get(peer) if peer else None
        if known is None:
            known = self._peer_key(peer)
        if known is not _BEHIND_PROXY:
            return known
        return self._key_of(self.proxies.client_address(peer, scope["headers"]))

    def _peer_key(self, peer: str | None) -> str:
        address = parse_address(peer) if peer else None
        known = (
            _BEHIND_PROXY
            if address is not None and self.proxies.trusts(address)
            else self._key_of(peer)
        )
        if peer:
            if len(self._peer_keys) >= MAX_PEER_KEYS:
                self._peer_keys.clear()
            self._peer_keys[peer] = known
        return known

    @staticmethod
    def _key_of(address: str | None) -> str:
        if address is None:
            return UNKNOWN_ADDRESS_KEY
        try:
            return rate_key(address=address)
        except BadInputError:  # a peer that is not an IP address (a test client's name)
            return UNKNOWN_ADDRESS_KEY

    async def _caller(self, scope: Scope) -> Caller | None:
        identify = self._options.identify
        if identify is None:
            for name, value in scope["headers"]:
                if name == self._api_key_header and value:
                    return Caller(api_key=value.decode("latin-1"))
            return None
        found = identify(Request(scope))
        if inspect.isawaitable(found):
            found = await found
        if found is not None and not isinstance(found, Caller):
            raise ProgrammingError(f"identify returned {found!r}, not a Caller or None")
        return found

    def _tier_lookup(self) -> TierLookup[Caller]:
        if self._tiers is None:
            tier_of = self._options.tier
            assert tier_of is not None

            async def known_tier(caller: Caller) -> str:
                tier = tier_of(caller)
                if inspect.isawaitable(tier):
                    tier = await tier
                if tier is not None and not isinstance(tier, str):
                    raise ProgrammingError(f"the tier function returned {tier!r}, not a tier")
                return _UNKNOWN if tier is None else tier

            self._tiers = self._app.rate_limits.tier_lookup(known_tier, ttl=self._options.tier_ttl)
        return self._tiers
