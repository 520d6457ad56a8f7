"""Whose quota a request uses: the client address behind trusted proxies, and rate keys."""

from __future__ import annotations

import pytest

from conveyor import BadInputError, TrustedProxies, rate_key
from conveyor.ratelimit.keys import parse_address

PROXIES = TrustedProxies(["10.0.0.0/8", "127.0.0.1", "2001:db8:ffff::/48"])


def test_a_peer_that_is_not_a_trusted_proxy_is_the_client_whatever_it_claims() -> None:
    headers = {"X-Forwarded-For": "1.1.1.1", "Forwarded": "for=2.2.2.2", "X-Real-IP": "3.3.3.3"}
    assert PROXIES.client_address("198.51.100.7", headers) == "198.51.100.7"
    for header in ("forwarded", "x-real-ip"):
        proxies = TrustedProxies(["10.0.0.0/8"], header=header)
        assert proxies.client_address("198.51.100.7", headers) == "198.51.100.7"


def test_a_spoofed_entry_left_of_the_trusted_proxy_is_never_read() -> None:
    # The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the real peer.
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.9"}
    assert PROXIES.client_address("10.1.2.3", headers) == "203.0.113.9"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.9, 10.9.9.9, 127.0.0.1"}
    assert PROXIES.client_address("10.1.2.3", headers) == "203.0.113.9"


def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    assert PROXIES.client_address("10.0.0.1", {"x-forwarded-for": "10.0.0.2"}) == "10.0.0.2"


def test_repeated_headers_are_one_list_in_order() -> None:
    pairs = [
        (b"x-forwarded-for", b"6.6.6.6"),
        (b"host", b"example.com"),
        (b"X-Forwarded-For", b"203.0.113.9, 10.0.0.7"),
    ]
    assert PROXIES.client_address("10.0.0.1", pairs) == "203.0.113.9"


def test_a_trusted_proxy_without_the_header_is_the_client() -> None:
    assert PROXIES.client_address("10.0.0.1", {}) == "10.0.0.1"


@pytest.mark.parametrize(
    "hops",
    ["203.0.113.9, garbage", "203.0.113.9, unknown", "203.0.113.9,", "_hidden"],
)
def test_a_malformed_hop_stops_at_the_last_good_address(hops: str) -> None:
    assert PROXIES.client_address("10.0.0.1", {"x-forwarded-for": hops}) == "10.0.0.1"


def test_forwarded_rfc_7239_with_quotes_ports_and_ipv6() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    headers = {
        "forwarded": 'for=6.6.6.6;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.1,'
        " For=10.0.0.2",
    }
    assert proxies.client_address("10.0.0.3", headers) == "2001:db8:cafe::17"
    quoted = {"forwarded": 'for="203.0.113.9:80";host="a,b;c", for=10.0.0.4'}
    assert proxies.client_address("10.0.0.3", quoted) == "203.0.113.9"
    assert proxies.client_address("10.0.0.3", {"forwarded": "for=unknown"}) == "10.0.0.3"
    # The header its proxies do not set is ignored.
    assert proxies.client_address("10.0.0.3", {"x-forwarded-for": "6.6.6.6"}) == "10.0.0.3"


def test_x_real_ip_is_one_address_set_by_the_proxy() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], header="x-real-ip")
    assert proxies.client_address("10.0.0.3", {"x-real-ip": "203.0.113.9"}) == "203.0.113.9"
    assert proxies.client_address("10.0.0.3", {"x-real-ip": "nonsense"}) == "10.0.0.3"


def test_the_hops_read_are_bounded() -> None:
    # Past MAX_HOPS trusted hops the walk stops at the last one it read.
    headers = {"x-forwarded-for": ", ".join(["203.0.113.9"] + ["10.0.0.1"] * 10_000)}
    assert PROXIES.client_address("10.0.0.3", headers) == "10.0.0.1"
    near = {"x-forwarded-for": ", ".join(["203.0.113.9"] + ["10.0.0.1"] * 31)}
    assert PROXIES.client_address("10.0.0.3", near) == "203.0.113.9"


def test_no_peer_and_no_trusted_header_is_no_address() -> None:
    assert PROXIES.client_address(None, {"x-forwarded-for": "1.1.1.1"}) is None


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4:8080 ", "1.2.3.4"),
        ('"[2001:db8::1]:443"', "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("unknown", None),
        ("_obfuscated", None),
        ("[2001:db8::1", None),
        ("", None),
    ],
)
def test_addresses_are_parsed_from_every_form_a_hop_takes(text: str, address: str | None) -> None:
    parsed = parse_address(text)
    assert (None if parsed is None else str(parsed)) == address


def test_trusted_networks_are_validated() -> None:
    with pytest.raises(BadInputError, match="'not-a-net'"):
        TrustedProxies(["10.0.0.0/8", "not-a-net"])
    with pytest.raises(BadInputError, match="header"):
        TrustedProxies([], header="x-client-ip")  # type: ignore[arg-type]


def test_rate_keys_prefer_api_key_then_user_then_address() -> None:
    key = rate_key(api_key="sk_live_secret", user=7, address="1.2.3.4")
    assert key.startswith("key:") and "secret" not in key and len(key) == 36
    assert rate_key(api_key="sk_live_secret") == key
    assert rate_key(api_key="other") != key
    assert rate_key(user=7, address="1.2.3.4") == "user:7"
    assert rate_key(address="1.2.3.4:5") == "ip:1.2.3.4"
    with pytest.raises(BadInputError):
        rate_key(address="unknown")


def test_an_ipv6_client_counts_by_its_64_prefix() -> None:
    assert rate_key(address="2001:db8:1:2:aaaa::1") == "ip:2001:db8:1:2::/64"
    assert rate_key(address="2001:db8:1:2:bbbb::9") == "ip:2001:db8:1:2::/64"
    assert rate_key(address="2001:db8:1:2::1", ipv6_prefix=128) == "ip:2001:db8:1:2::1"
