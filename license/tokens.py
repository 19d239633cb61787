"""Short-lived embed tokens.

The integrator's backend exchanges its license credential for an embed
token: a JWT (``typ`` ``xf-embed+jwt``) signed by the provider server's SM2
key, valid for minutes, for one license, a listed set of products and one
origin. The token travels through the browser; the credential never does.
Its ``typ`` keeps it apart from a license: neither verifies as the other.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence

from xinfeng.sdk.errors import OriginDenied, ProductDenied, TokenInvalid

from . import jwt_sm2
from .model import LICENSE_ID_RE
from .origins import normalize_origin

ISSUER = "xinfeng-server"
EMBED_TYP = "xf-embed+jwt"
DEFAULT_TTL = 300
MAX_TTL = 900
MAX_PRODUCTS = 64

_REQUIRED_CLAIMS = ("iss", "sub", "products", "origin", "jti")


@dataclasses.dataclass(frozen=True)
class EmbedToken:
    """A verified embed token."""

    license_id: str
    products: tuple[str, ...]
    origin: str
    exp: int
    jti: str

    def check_product(self, product: str) -> None:
        """Raise :class:`ProductDenied` unless the token covers ``product``."""
        if product not in self.products:
            raise ProductDenied()

    def check_origin(self, origin: str) -> None:
        """Raise :class:`OriginDenied` unless ``origin`` is the token's origin."""
        if normalize_origin(origin) != self.origin:
            raise OriginDenied()


def mint_embed_token(
    key: jwt_sm2.RawSigner,
    kid: str,
    license_id: str,
    products: Sequence[str],
    origin: str,
    now: int,
    ttl: int = DEFAULT_TTL,
    jti: str | None = None,
) -> str:
    """Return an embed token valid from ``now`` for ``ttl`` seconds.

    The caller has already checked the credential and the license; this
    only shapes and signs the token.

    Raises:
        ValueError: ``ttl`` is not 1..900 seconds, ``products`` is empty,
            repeats or is not a list of strings, or ``license_id`` or
            ``jti`` is malformed.
        OriginDenied: ``origin`` is not a plain http(s) origin.
    """
    if type(ttl) is not int or not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be 1..{MAX_TTL} seconds")
    if not isinstance(license_id, str) or not LICENSE_ID_RE.fullmatch(license_id):
        raise ValueError("malformed license_id")
    if jti is not None and not (isinstance(jti, str) and 0 < len(jti) <= 128):
        raise ValueError("jti must be a non-empty string")
    claims = {
        "iss": ISSUER,
        "sub": license_id,
        "products": list(_check_products(products)),
        "origin": normalize_origin(origin),
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_urlsafe(16) if jti is None else jti,
    }
    return jwt_sm2.encode(claims, key, kid, EMBED_TYP)


def verify_embed_token(
    token: str, keys: jwt_sm2.KeyLookup, now: int, leeway: int = 30
) -> EmbedToken:
    """Verify an embed token at time ``now``.

    Raises:
        TokenInvalid: the token is forged, malformed, of another type,
            lives longer than 900 seconds, or has expired.
    """
    claims = jwt_sm2.decode(
        token, keys, EMBED_TYP, _REQUIRED_CLAIMS, now, leeway, max_lifetime=MAX_TTL
    )
    read = jwt_sm2.Claims(claims)
    if read.text("iss") != ISSUER or not LICENSE_ID_RE.fullmatch(read.text("sub")):
        raise TokenInvalid()
    try:
        products = _check_products(read.texts("products"))
        origin = normalize_origin(read.text("origin"))
    except (ValueError, OriginDenied):
        raise TokenInvalid() from None
    return EmbedToken(
        license_id=read.text("sub"),
        products=products,
        origin=origin,
        exp=read.integer("exp"),
        jti=read.text("jti"),
    )


def _check_products(products: Sequence[str]) -> tuple[str, ...]:
    if isinstance(products, str) or not isinstance(products, Sequence):
        raise ValueError("products must be a list of strings")
    values = tuple(products)
    if not all(isinstance(p, str) and p for p in values):
        raise ValueError("products must be non-empty strings")
    if not 0 < len(values) <= MAX_PRODUCTS or len(set(values)) != len(values):
        raise ValueError("products must be 1-64 names without repeats")
    return values
