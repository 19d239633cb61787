"""Which address a request comes from, with and without trusted proxies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xinfeng.server.clientip import client_ip

CASE = json.loads((Path(__file__).parent / "vectors" / "xff"
                   / "b17_forwarded_for.json").read_text())
PEER = CASE["peer_addr"]
PROXIES = tuple(CASE["trusted_proxies"])


def _headers_of(name: str) -> list[dict[str, str]]:
    request = next(r for r in CASE["requests"] if r["name"] == name)
    return request.get("headers_seq") or [request["headers"]]


@pytest.mark.parametrize(
    "name",
    ["1000_entry_xff", "rotating_leftmost", "garbage_values",
     "x_real_ip_and_forwarded"],
)
def test_forwarding_headers_from_untrusted_peer_ignored(name: str) -> None:
    for headers in _headers_of(name):
        ip = client_ip(PEER, headers.get("X-Forwarded-For"), 1, PROXIES)
        assert ip == PEER


def test_thousand_entry_xff_from_trusted_proxy_falls_back_to_peer() -> None:
    headers = _headers_of("1000_entry_xff")[0]
    assert client_ip("127.0.0.1", headers["X-Forwarded-For"], 1,
                     PROXIES) == "127.0.0.1"


def test_xff_from_trusted_proxy_uses_entry_the_proxy_added() -> None:
    xff = "6.6.6.6, 198.51.100.9"
    assert client_ip("127.0.0.1", xff, 1, PROXIES) == "198.51.100.9"
    assert client_ip("127.0.0.1", xff, 2, PROXIES) == "6.6.6.6"


@pytest.mark.parametrize("xff", ["unknown", "", "1.2.3.4\r\nX: y", "::g"])
def test_garbage_xff_from_trusted_proxy_falls_back_to_peer(xff: str) -> None:
    assert client_ip("127.0.0.1", xff, 1, PROXIES) == "127.0.0.1"


def test_zero_hops_ignores_xff_even_from_proxy() -> None:
    assert client_ip("127.0.0.1", "198.51.100.9", 0, PROXIES) == "127.0.0.1"


def test_ipv6_peer_normalised() -> None:
    assert client_ip("::FFFF:1.2.3.4", None, 0) == "::ffff:102:304"
