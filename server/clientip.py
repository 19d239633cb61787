"""The client's network address, as far as the server can know it.

The socket peer is the client unless the operator runs the server behind
their own proxies. Then, and only when the socket peer is one of those
proxies, ``X-Forwarded-For`` is read, and only the entry that the outermost
trusted proxy added: entries to its left were written by the client and
prove nothing. Other forwarding headers (``X-Real-IP``, ``Forwarded``,
``True-Client-IP``) are never read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

MAX_XFF_LENGTH = 2048


def _parse(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _trusted(peer: str, proxies: Sequence[str]) -> bool:
    address = ipaddress.ip_address(peer)
    return any(address in ipaddress.ip_network(net, strict=False)
               for net in proxies)


def client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted_hops: int,
    trusted_proxies: Sequence[str] = (),
) -> str:
    """The client address for a request.

    ``peer`` is the socket peer, ``forwarded_for`` the raw header (or None),
    ``trusted_hops`` the number of proxies the operator runs and
    ``trusted_proxies`` the networks they connect from. When the peer is not
    a trusted proxy, or the header is missing, too long or malformed at the
    trusted position, the socket peer is used: a broken proxy chain then
    collapses every client into the proxy's address, which rate limits treat
    as one client.
    """
    fallback = _parse(peer or "") or "0.0.0.0"
    if trusted_hops <= 0 or not forwarded_for or not _trusted(fallback,
                                                              trusted_proxies):
        return fallback
    if len(forwarded_for) > MAX_XFF_LENGTH:
        return fallback
    hops = forwarded_for.split(",")
    if len(hops) < trusted_hops:
        return fallback
    return _parse(hops[-trusted_hops]) or fallback
