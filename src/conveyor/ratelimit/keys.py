"""Whose quota a request uses: an API key, a user, or the client's address.

The address comes from the connection's peer unless that peer is a proxy this
service trusts; only then is the proxy's header read, from the right (the
entry the trusted proxy itself appended) to the left, skipping hops that are
trusted proxies too. The first untrusted hop is the client: whatever a client
writes into ``X-Forwarded-For`` sits to the left of it and is never read. A
malformed hop (garbage, ``unknown``, an obfuscated name) stops the walk at the
last address known good, so a bad header can only merge clients, never let one
pose as another.

>>> proxies = TrustedProxies(["10.0.0.0/8"])
>>> proxies.client_address("10.0.0.5", {"x-forwarded-for": "6.6.6.6, 203.0.113.9"})
'203.0.113.9'
>>> proxies.client_address("198.51.100.7", {"x-forwarded-for": "6.6.6.6"})  # not a proxy
'198.51.100.7'
>>> rate_key(address="2001:db8:1:2:aaaa::1")
'ip:2001:db8:1:2::/64'
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Literal, TypeAlias

from conveyor.errors import BadInputError

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
"""A mapping of header names to values, or (name, value) pairs (ASGI's raw bytes too),
in which a header may repeat."""
ProxyHeader: TypeAlias = Literal["x-forwarded-for", "forwarded", "x-real-ip"]

MAX_HOPS = 32
"""Hops read from a forwarding header at most (from the right): a bound on the work."""


class TrustedProxies:
    """Which peers may tell the client's address, and in which header.

    ``networks``: addresses or CIDR networks of the proxies in front of this
    service (``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"::1"``). ``header``: the one
    header those proxies set: ``"x-forwarded-for"`` (nginx, most load balancers),
    ``"forwarded"`` (RFC 7239) or ``"x-real-ip"``. The others are ignored, so a
    client cannot pick the header its proxy does not clean.
    """

    def __init__(
        self, networks: Iterable[str] = (), *, header: ProxyHeader = "x-forwarded-for"
    ) -> None:
        if header not in ("x-forwarded-for", "forwarded", "x-real-ip"):
            raise BadInputError(
                f"header must be x-forwarded-for, forwarded or x-real-ip, got {header!r}"
            )
        self.header: ProxyHeader = header
        self.networks: list[Network] = []
        problems = []
        for network in [networks] if isinstance(networks, str) else networks:
            try:
                self.networks.append(ipaddress.ip_network(network, strict=False))
            except ValueError:
                problems.append(repr(network))
        if problems:
            raise BadInputError(
                f"not an address or network of trusted proxies: {', '.join(problems)}"
            )

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def client_address(self, peer: str | None, headers: Headers) -> str | None:
        """The client's address, from the connection's ``peer`` and the request's headers.

        None only when there is no peer address (a Unix socket) and no trusted
        header could tell one.
        """
        current = parse_address(peer) if peer else None
        if current is None or not self.trusts(current):
            return str(current) if current is not None else None
        values = _header_values(headers, self.header)
        if self.header == "x-real-ip":
            told = parse_address(values[-1]) if values else None
            return str(told if told is not None else current)
        hops = _forwarded_for(values) if self.header == "forwarded" else _split_list(values)
        for hop in reversed(hops[-MAX_HOPS:]):
            address = parse_address(hop)
            if address is None:
                break  # malformed: the last good hop stands
            current = address
            if not self.trusts(address):
                break
        return str(current)


def parse_address(text: str) -> Address | None:
    """An IP address from a header hop or a peer: ``1.2.3.4``, ``1.2.3.4:80``,
    ``[2001:db8::1]:443``, ``2001:db8::1``; IPv4-mapped IPv6 becomes IPv4; None if
    it is none of these (``unknown``, ``_hidden``, garbage)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # an IPv4 address with a port
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]  # an IPv6 zone
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def rate_key(
    *,
    api_key: str | None = None,
    user: str | int | None = None,
    address: str | None = None,
    ipv6_prefix: int = 64,
) -> str:
    """The rate-limit key of a request: its API key, else its user, else its address.

    An API key is a secret: the key holds a digest of it, never the key itself. An
    IPv6 address counts by its ``/64`` (one household or server gets a whole
    prefix, so counting single addresses would let it dodge any limit).
    """
    if api_key:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]
    if user is not None and user != "":
        return f"user:{user}"
    parsed = parse_address(address) if address else None
    if parsed is None:
        raise BadInputError("a rate-limit key needs an API key, a user or a client address")
    if isinstance(parsed, ipaddress.IPv6Address) and ipv6_prefix < 128:
        return f"ip:{ipaddress.ip_network(f'{parsed}/{ipv6_prefix}', strict=False)}"
    return f"ip:{parsed}"


def _header_values(headers: Headers, name: str) -> list[str]:
    """Every value of header ``name``, in order (a header may come several times)."""
    if isinstance(headers, Mapping):
        getlist = getattr(headers, "getlist", None)  # Starlette's Headers keeps repeats
        if getlist is not None:
            return [str(value) for value in getlist(name)]
        return [value for key, value in headers.items() if key.lower() == name]
    values = []
    for key, value in headers:
        key_text = key.decode("latin-1") if isinstance(key, bytes) else key
        if key_text.lower() == name:
            values.append(value.decode("latin-1") if isinstance(value, bytes) else value)
    return values


def _split_list(values: list[str]) -> list[str]:
    return [hop for value in values for hop in value.split(",")]


def _forwarded_for(values: list[str]) -> list[str]:
    """The ``for=`` of each element of RFC 7239 ``Forwarded`` values, in order; an
    element without one stands as an empty (malformed) hop."""
    hops = []
    for element in _split_quoted(",".join(values), ","):
        found = ""
        for pair in _split_quoted(element, ";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                found = value.strip()
        hops.append(found)
    return hops


def _split_quoted(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` outside double quotes (backslash escapes inside)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts
