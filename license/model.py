"""The license: what one project may use, from where, when and how much.

A license is issued by the licensor for one project under one contract and
scenario, signed with the licensor's SM2 key and carried as a JWT
(``typ`` ``xf-license+jwt``, see :mod:`xinfeng.license.jwt_sm2`). It lists
the products, the web origins (see :mod:`xinfeng.license.origins`), the
client IP networks (empty means any), a validity window and rate limits.
Re-scoping means issuing a new license; a signed license never changes.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from xinfeng.sdk.errors import (
    LicenseError,
    LicenseExpired,
    OriginDenied,
    ProductDenied,
)
from xinfeng.sdk.sm2 import SM2PrivateKey

from . import jwt_sm2
from .origins import (
    check_client_ip,
    check_origin,
    normalize_origin_pattern,
    parse_network,
)

ISSUER = "xinfeng-licensor"
LICENSE_TYP = "xf-license+jwt"
MAX_LICENSE_SECONDS = 10 * 366 * 86400
MAX_LICENSE_DAYS = MAX_LICENSE_SECONDS // 86400
# Rates and session caps are counted in 64-bit database columns; a billion a
# minute is beyond any licence and far inside that range.
MAX_COUNT = 10**9
MAX_TEXT_LENGTH = 256
LICENSE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

_TEXT_FIELDS = ("licensee", "project", "contract_id", "scenario", "key_id")
_LIST_FIELDS = ("products", "origins", "networks")
_COUNT_FIELDS = ("rate_per_minute", "rate_per_day", "max_sessions")
_REQUIRED_CLAIMS = (
    "iss", "sub", "nbf", *_TEXT_FIELDS, *_LIST_FIELDS, *_COUNT_FIELDS,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class License:
    """One project's license. Construction validates and normalises.

    Raises:
        ValueError: a field is empty, malformed or out of range.
    """

    license_id: str
    licensee: str
    project: str
    contract_id: str
    scenario: str
    products: tuple[str, ...]
    origins: tuple[str, ...]
    networks: tuple[str, ...]
    not_before: int
    not_after: int
    rate_per_minute: int
    rate_per_day: int
    max_sessions: int
    key_id: str

    def __post_init__(self) -> None:
        _check_license_id(self.license_id)
        for name in _TEXT_FIELDS:
            _check_text(name, getattr(self, name))
        self._set("products", _normalize_products(self.products))
        self._set("origins", _normalize_origins(self.origins))
        self._set("networks", _normalize_networks(self.networks))
        _check_window(self.not_before, self.not_after)
        for name in _COUNT_FIELDS:
            _check_count(name, getattr(self, name))

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def to_claims(self, issued_at: int) -> dict[str, Any]:
        """Return the JWT claims of this license, issued at ``issued_at``."""
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": self.license_id,
            "iat": issued_at,
            "nbf": self.not_before,
            "exp": self.not_after,
        }
        for name in (*_TEXT_FIELDS, *_COUNT_FIELDS):
            claims[name] = getattr(self, name)
        for name in _LIST_FIELDS:
            claims[name] = list(getattr(self, name))
        return claims

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> License:
        """Build a license from verified JWT claims.

        Raises:
            LicenseError: a claim is missing, of the wrong JSON type or
                out of range, or the issuer is not the licensor.
        """
        read = jwt_sm2.Claims(claims, LicenseError)
        if read.text("iss") != ISSUER:
            raise LicenseError()
        fields: dict[str, Any] = {
            "license_id": read.text("sub"),
            "not_before": read.integer("nbf"),
            "not_after": read.integer("exp"),
        }
        fields |= {name: read.text(name) for name in _TEXT_FIELDS}
        fields |= {name: read.texts(name) for name in _LIST_FIELDS}
        fields |= {name: read.integer(name) for name in _COUNT_FIELDS}
        try:
            return cls(**fields)
        except ValueError:
            raise LicenseError() from None

    def check_use(
        self, product: str, origin: str, client_ip: str | None, now: int
    ) -> None:
        """Check one use of the license at time ``now``.

        ``client_ip`` is the end user's address. Pass ``None`` only where
        no end user is present (the integrator's backend minting a token);
        the network check then waits for the handshake, which has the
        browser's address.

        Raises:
            LicenseExpired: ``now`` is outside the validity window.
            ProductDenied: ``product`` is not licensed.
            OriginDenied: ``origin`` is not a licensed origin.
            LicenseError: ``client_ip`` is not in a licensed network.
        """
        if not self.not_before <= now < self.not_after:
            raise LicenseExpired()
        if product not in self.products:
            raise ProductDenied()
        check_origin(origin, self.origins, allow_wildcard=True)
        if self.networks and client_ip is not None:
            check_client_ip(client_ip, self.networks)


def issue_license(
    lic: License, key: SM2PrivateKey, kid: str, *, issued_at: int | None = None
) -> str:
    """Sign ``lic`` with the licensor's key; return the license JWT.

    ``kid`` must equal ``lic.key_id``: the license names the key that
    signed it. ``issued_at`` defaults to the current time.

    Raises:
        ValueError: ``kid`` does not match ``lic.key_id``.
    """
    if kid != lic.key_id:
        raise ValueError("kid must equal the license's key_id")
    iat = int(time.time()) if issued_at is None else issued_at
    return jwt_sm2.encode(lic.to_claims(iat), key, kid, LICENSE_TYP)


def verify_license(
    token: str, keys: jwt_sm2.KeyLookup, now: int, leeway: int = 60
) -> License:
    """Verify a license JWT at time ``now``; return the license.

    Raises:
        LicenseError: the token is forged, malformed or of the wrong type.
        LicenseExpired: it is authentic but ``now`` is outside its window.
    """
    kid, claims = jwt_sm2.decode_with_kid(
        token,
        keys,
        LICENSE_TYP,
        _REQUIRED_CLAIMS,
        now,
        leeway,
        max_lifetime=MAX_LICENSE_SECONDS,
        error=LicenseError,
        expired_error=LicenseExpired,
    )
    lic = License.from_claims(claims)
    if lic.key_id != kid:
        raise LicenseError()
    return lic


def parse_time(text: str) -> int:
    """Parse an ISO 8601 time with a zone into unix seconds.

    ``2026-01-01T00:00:00+08:00`` and ``2026-01-01T00:00:00Z`` are accepted;
    a time without a zone is refused rather than guessed.

    Raises:
        ValueError: ``text`` is not an ISO 8601 time with zone and whole
            seconds, or is out of range.
    """
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError("not an ISO 8601 time")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("ISO 8601 time needs a zone (Z or +hh:mm)")
    if moment.microsecond:
        raise ValueError("ISO 8601 time must have whole seconds")
    seconds = int(moment.timestamp())
    if not 0 <= seconds < jwt_sm2.MAX_NUMERIC_DATE:
        raise ValueError("time out of range")
    return seconds


def format_time(seconds: int) -> str:
    """Format unix seconds as ISO 8601 in UTC, e.g. ``2026-01-01T00:00:00Z``."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_license_id(value: str) -> None:
    if not isinstance(value, str) or not LICENSE_ID_RE.fullmatch(value):
        raise ValueError("license_id must be 1-64 of A-Z a-z 0-9 _ -")


def _check_text(name: str, value: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT_LENGTH:
        raise ValueError(f"{name} must be a non-empty string")


def _check_count(name: str, value: int) -> None:
    if type(value) is not int or not 1 <= value <= MAX_COUNT:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_COUNT}")


def _check_window(not_before: int, not_after: int) -> None:
    for value in (not_before, not_after):
        if type(value) is not int or not 0 <= value < jwt_sm2.MAX_NUMERIC_DATE:
            raise ValueError("not_before and not_after must be unix seconds")
    if not 0 < not_after - not_before <= MAX_LICENSE_SECONDS:
        raise ValueError("not_after must follow not_before, within 10 years")


def _normalize_products(products: tuple[str, ...]) -> tuple[str, ...]:
    values = _as_tuple(products)
    for value in values:
        _check_text("product", value)
    if not values or len(set(values)) != len(values):
        raise ValueError("products must be a non-empty list without repeats")
    return values


def _normalize_origins(origins: tuple[str, ...]) -> tuple[str, ...]:
    try:
        values = tuple(
            normalize_origin_pattern(o, allow_wildcard=True) for o in _as_tuple(origins)
        )
    except OriginDenied:
        raise ValueError("origins must be http(s) origins") from None
    if not values or len(set(values)) != len(values):
        raise ValueError("origins must be a non-empty list without repeats")
    return values


def _normalize_networks(networks: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(str(parse_network(n)) for n in _as_tuple(networks))
    if len(set(values)) != len(values):
        raise ValueError("networks must not repeat")
    return values


def _as_tuple(values: object) -> tuple[str, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, tuple | list):
        raise ValueError("expected a tuple of strings")
    return tuple(values)
