"""Web origins and IP networks a license binds its use to.

An origin is exactly ``scheme://host[:port]`` as a browser sends it in the
``Origin`` header: ``http`` or ``https``, a lower-case ASCII host (IDNs in
their punycode form), the default port left out, and nothing else — no
path, query, fragment or user info. ``null`` is never an allowed origin.

A license may list a wildcard pattern ``https://*.example.org``. The
``*`` stands for exactly one leftmost DNS label, as in a TLS certificate:
it matches ``https://app.example.org`` but neither ``https://example.org``
nor ``https://a.b.example.org`` nor ``https://app.example.org.evil.test``.
Wildcards are only honoured where the caller allows them explicitly.

Every check raises :class:`~xinfeng.sdk.errors.OriginDenied` (origins) or
:class:`~xinfeng.sdk.errors.LicenseError` (networks); the error never
names the allow-list.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from xinfeng.sdk.errors import LicenseError, OriginDenied

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_ORIGIN_LENGTH = 300
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN_RE = re.compile(
    r"(?P<scheme>[A-Za-z]+)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.*-]+)"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?"
)
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_IPV4_RE = re.compile(r"[0-9]+(?:\.[0-9]+){3}")


def normalize_origin(origin: str) -> str:
    """Return ``origin`` in its canonical form.

    Raises:
        OriginDenied: ``origin`` is not a plain http(s) origin (``null``,
            a wildcard, a path, user info, a bad host or port ...).
    """
    scheme, host, port = _split_origin(origin)
    if "*" in host:
        raise OriginDenied()
    return _join_origin(scheme, host, port)


def normalize_origin_pattern(pattern: str, *, allow_wildcard: bool) -> str:
    """Return an allow-list entry in canonical form.

    A wildcard entry (``https://*.example.org``) is accepted only when
    ``allow_wildcard`` is true, only over https and only above a
    registrable-looking name of at least two labels.

    Raises:
        OriginDenied: the entry is not a valid origin or pattern.
    """
    scheme, host, port = _split_origin(pattern)
    if host.startswith("*."):
        _check_wildcard(scheme, host, allow_wildcard)
    return _join_origin(scheme, host, port)


def check_origin(
    origin: str, allowed: Iterable[str], *, allow_wildcard: bool = False
) -> str:
    """Return the canonical ``origin`` if an entry of ``allowed`` matches it.

    Raises:
        OriginDenied: ``origin`` is malformed or matches no entry.
    """
    canonical = normalize_origin(origin)
    for entry in allowed:
        pattern = normalize_origin_pattern(entry, allow_wildcard=allow_wildcard)
        if _origin_matches(canonical, pattern):
            return canonical
    raise OriginDenied()


def parse_network(text: str) -> IPNetwork:
    """Parse a CIDR network such as ``10.0.0.0/8`` or ``2001:db8::/32``.

    Host bits must be zero, so a typo like ``10.0.0.1/8`` is not silently
    widened.

    Raises:
        ValueError: ``text`` is not a CIDR network.
    """
    if not isinstance(text, str) or "/" not in text or "%" in text:
        raise ValueError("not a CIDR network")
    return ipaddress.ip_network(text, strict=True)


def parse_client_ip(text: str) -> IPAddress:
    """Parse a client address; IPv4-mapped IPv6 addresses become IPv4.

    Raises:
        ValueError: ``text`` is not an IP address (zone ids are refused).
    """
    if not isinstance(text, str) or "%" in text:
        raise ValueError("not an IP address")
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def check_client_ip(client_ip: str, networks: Iterable[str]) -> None:
    """Check that ``client_ip`` lies in one of ``networks``.

    Callers decide what an empty list means; this function denies it.

    Raises:
        LicenseError: the address is malformed or in none of the networks.
    """
    try:
        address = parse_client_ip(client_ip)
    except ValueError:
        raise LicenseError() from None
    for text in networks:
        if address in parse_network(text):
            return
    raise LicenseError()


def _split_origin(origin: str) -> tuple[str, str, int | None]:
    if not isinstance(origin, str) or len(origin) > MAX_ORIGIN_LENGTH:
        raise OriginDenied()
    match = _ORIGIN_RE.fullmatch(origin)
    if match is None:
        raise OriginDenied()
    scheme = match["scheme"].lower()
    if scheme not in _DEFAULT_PORTS:
        raise OriginDenied()
    host = _normalize_host(match["host"].lower())
    port = int(match["port"]) if match["port"] else None
    if port is not None and port > 65535:
        raise OriginDenied()
    return scheme, host, port


def _normalize_host(host: str) -> str:
    if host.startswith("["):
        return _normalize_ipv6_literal(host)
    if _IPV4_RE.fullmatch(host):
        return _normalize_ipv4_literal(host)
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL_RE.fullmatch(x) for x in labels[1:]):
        raise OriginDenied()
    wildcard = labels[0] == "*" and len(labels) > 1
    if not wildcard and not _LABEL_RE.fullmatch(labels[0]):
        raise OriginDenied()
    if labels[-1].isdigit():
        raise OriginDenied()
    return host


def _normalize_ipv4_literal(host: str) -> str:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise OriginDenied() from None
    if str(address) != host:
        raise OriginDenied()
    return host


def _normalize_ipv6_literal(host: str) -> str:
    try:
        address = ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        raise OriginDenied() from None
    return f"[{address.compressed}]"


def _check_wildcard(scheme: str, host: str, allow_wildcard: bool) -> None:
    if not allow_wildcard or scheme != "https" or host.count(".") < 2:
        raise OriginDenied()


def _join_origin(scheme: str, host: str, port: int | None) -> str:
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _origin_matches(origin: str, pattern: str) -> bool:
    if "*" not in pattern:
        return origin == pattern
    prefix, suffix = pattern.split("*", 1)
    if not (origin.startswith(prefix) and origin.endswith(suffix)):
        return False
    label = origin[len(prefix) : len(origin) - len(suffix)]
    return _LABEL_RE.fullmatch(label) is not None
