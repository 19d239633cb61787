"""JSON Web Signatures with SM2-with-SM3, through PyJWT.

Tokens are compact JWS (RFC 7515) with the algorithm ``SM2SM3``: an SM2
signature over SM3 with the SM2 user id ``DEFAULT_UID`` (GB/T 32918), sent
as the raw 64 bytes ``r || s`` like ES256 does, base64url encoded.

The verifier pins that one algorithm and never lets the token choose:
a private :class:`jwt.PyJWS` knows ``SM2SM3`` and nothing else, so ``none``
and ``HS256`` keyed with the public key in any form cannot verify. Before
PyJWT sees the token, the header and payload are parsed here with duplicate
keys, ``NaN`` and unknown header parameters (``crit`` included) refused.
Time claims must be JSON integers below 2**41; floats, strings and booleans
are refused rather than coerced. The time of verification is a parameter.

Every failure raises one opaque error class chosen by the caller
(:class:`~xinfeng.sdk.errors.TokenInvalid` by default) without saying
which check failed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, Protocol, runtime_checkable

import jwt
from jwt.algorithms import Algorithm

from xinfeng.sdk.errors import CryptoError, TokenInvalid, XinfengError
from xinfeng.sdk.sm2 import DEFAULT_UID, SM2PublicKey

ALGORITHM = "SM2SM3"
MAX_TOKEN_LENGTH = 16384
MAX_KID_LENGTH = 128
MAX_NUMERIC_DATE = 2**41
TIME_CLAIMS = ("exp", "nbf", "iat")
ALWAYS_REQUIRED = ("exp", "iat")

KeyLookup = Callable[[str], SM2PublicKey | None] | Mapping[str, SM2PublicKey]

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_HEADER_KEYS = frozenset({"alg", "kid", "typ"})


@runtime_checkable
class RawSigner(Protocol):
    """Signs like :meth:`SM2PrivateKey.sign_raw` (``r || s``): the key itself,
    or an object that holds it elsewhere, such as inside OpenSSL."""

    def sign_raw(self, message: bytes, uid: bytes = ...) -> bytes: ...


class _SM2WithSM3(Algorithm):
    """PyJWT algorithm object for SM2 signatures over SM3, raw ``r || s``."""

    def prepare_key(self, key: Any) -> RawSigner | SM2PublicKey:
        if not isinstance(key, SM2PublicKey | RawSigner):
            raise jwt.InvalidKeyError("SM2SM3 needs an SM2 key object")
        return key

    def sign(self, msg: bytes, key: RawSigner | SM2PublicKey) -> bytes:
        if isinstance(key, SM2PublicKey):
            raise jwt.InvalidKeyError("signing needs an SM2 private key")
        return key.sign_raw(msg, DEFAULT_UID)

    def verify(self, msg: bytes, key: RawSigner | SM2PublicKey, sig: bytes) -> bool:
        if not isinstance(key, SM2PublicKey) or len(sig) != 64:
            return False
        try:
            key.verify_raw(sig, msg, DEFAULT_UID)
        except CryptoError:
            return False
        return True

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> NoReturn:
        raise NotImplementedError("SM2 keys have no JWK form here")

    @staticmethod
    def from_jwk(jwk: Any) -> NoReturn:
        raise NotImplementedError("SM2 keys have no JWK form here")


def _make_jws() -> jwt.PyJWS:
    jws = jwt.PyJWS(algorithms=[])
    jws.register_algorithm(ALGORITHM, _SM2WithSM3())
    return jws


_JWS = _make_jws()


def encode(claims: dict[str, Any], key: RawSigner, kid: str, typ: str) -> str:
    """Sign ``claims`` with ``key`` and return a compact JWS.

    Raises:
        ValueError: a time claim is not an integer in range, or ``kid`` or
            ``typ`` is empty.
        TypeError: the claims are not plain JSON.
    """
    _check_header_values(kid, typ)
    for name in TIME_CLAIMS:
        if name in claims and not _is_numeric_date(claims[name]):
            raise ValueError(f"{name} must be an integer NumericDate")

    payload = json.dumps(
        claims, separators=(",", ":"), sort_keys=True, allow_nan=False
    ).encode()
    headers = {"kid": kid, "typ": typ}
    return _JWS.encode(payload, key, algorithm=ALGORITHM, headers=headers)  # type: ignore[arg-type]


def decode(
    token: str,
    keys: KeyLookup,
    typ: str,
    required: Sequence[str],
    now: int,
    leeway: int,
    *,
    max_lifetime: int | None = None,
    error: type[XinfengError] = TokenInvalid,
    expired_error: type[XinfengError] | None = None,
) -> dict[str, Any]:
    """Verify ``token`` and return its claims.

    ``keys`` maps the header's ``kid`` to the issuer's public key. Claims
    ``exp`` and ``iat`` and every name in ``required`` must be present;
    ``exp``, ``nbf`` and ``iat`` must be integers in ``[0, 2**41)``. The
    token must be valid at ``now`` give or take ``leeway`` seconds, and
    span no more than ``max_lifetime`` seconds when that is given.

    Raises:
        error: anything is wrong with the token (one class, no detail).
        expired_error: the token is authentic and well formed but ``now``
            is outside its window; ``error`` when not given.
    """
    _, claims = decode_with_kid(
        token,
        keys,
        typ,
        required,
        now,
        leeway,
        max_lifetime=max_lifetime,
        error=error,
        expired_error=expired_error,
    )
    return claims


def decode_with_kid(
    token: str,
    keys: KeyLookup,
    typ: str,
    required: Sequence[str],
    now: int,
    leeway: int,
    *,
    max_lifetime: int | None = None,
    error: type[XinfengError] = TokenInvalid,
    expired_error: type[XinfengError] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Like :func:`decode`, and also return the ``kid`` that verified it."""
    _check_time_parameters(now, leeway)
    try:
        kid, claims = _verify(token, keys, typ)
        _check_claims(claims, required, now, leeway, max_lifetime)
    except _Rejected:
        raise error() from None
    except _OutsideWindow:
        raise (expired_error or error)() from None
    return kid, claims


class Claims:
    """Typed reads of verified claims; any mismatch raises ``error``."""

    def __init__(
        self, claims: Mapping[str, Any], error: type[XinfengError] = TokenInvalid
    ) -> None:
        self._claims = claims
        self._error = error

    def text(self, name: str) -> str:
        """Return a non-empty string claim."""
        value = self._claims.get(name)
        if not isinstance(value, str) or not value:
            raise self._error()
        return value

    def integer(self, name: str) -> int:
        """Return an integer claim (a JSON bool is not an integer)."""
        value = self._claims.get(name)
        if type(value) is not int:
            raise self._error()
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        """Return a list-of-strings claim, which may be empty."""
        value = self._claims.get(name)
        if not isinstance(value, list):
            raise self._error()
        if not all(isinstance(item, str) and item for item in value):
            raise self._error()
        return tuple(value)


class _Rejected(Exception):
    """Internal: the token is not valid."""


class _OutsideWindow(Exception):
    """Internal: an authentic token used before ``nbf`` or after ``exp``."""


def _verify(token: str, keys: KeyLookup, typ: str) -> tuple[str, dict[str, Any]]:
    header_segment, payload_segment = _split(token)
    header = _parse_json_object(header_segment)
    kid = _check_header(header, typ)
    public_key = _find_key(keys, kid)

    try:
        _JWS.decode_complete(token, key=public_key, algorithms=[ALGORITHM])  # type: ignore[arg-type]
    except jwt.PyJWTError:
        raise _Rejected() from None
    return kid, _parse_json_object(payload_segment)


def _split(token: str) -> tuple[str, str]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise _Rejected()
    segments = token.split(".")
    if len(segments) != 3:
        raise _Rejected()
    for segment in segments:
        _b64url_decode(segment)
    return segments[0], segments[1]


def _b64url_decode(segment: str) -> bytes:
    if not _B64URL_RE.fullmatch(segment) or len(segment) % 4 == 1:
        raise _Rejected()
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise _Rejected() from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
        raise _Rejected()
    return raw


def _parse_json_object(segment: str) -> dict[str, Any]:
    try:
        text = _b64url_decode(segment).decode("utf-8")
        value = json.loads(
            text, object_pairs_hook=_unique_object, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Rejected() from None
    if not isinstance(value, dict):
        raise _Rejected()
    return value


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Rejected()
    return result


def _no_constant(name: str) -> NoReturn:
    raise _Rejected()


def _check_header(header: dict[str, Any], typ: str) -> str:
    if set(header) != _HEADER_KEYS:
        raise _Rejected()
    if header["alg"] != ALGORITHM or header["typ"] != typ:
        raise _Rejected()
    kid = header["kid"]
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise _Rejected()
    return kid


def _find_key(keys: KeyLookup, kid: str) -> SM2PublicKey:
    try:
        found = keys.get(kid) if isinstance(keys, Mapping) else keys(kid)
    except LookupError:
        raise _Rejected() from None
    if not isinstance(found, SM2PublicKey):
        raise _Rejected()
    return found


def _check_claims(
    claims: dict[str, Any],
    required: Sequence[str],
    now: int,
    leeway: int,
    max_lifetime: int | None,
) -> None:
    for name in (*ALWAYS_REQUIRED, *required):
        if claims.get(name) is None:
            raise _Rejected()
    for name in TIME_CLAIMS:
        if name in claims and not _is_numeric_date(claims[name]):
            raise _Rejected()

    exp, iat = claims["exp"], claims["iat"]
    start = claims.get("nbf", iat)
    if iat > exp or start > exp or iat > now + leeway:
        raise _Rejected()
    if max_lifetime is not None and exp - start > max_lifetime:
        raise _Rejected()
    if now + leeway < start or now >= exp + leeway:
        raise _OutsideWindow()


def _is_numeric_date(value: object) -> bool:
    return type(value) is int and 0 <= value < MAX_NUMERIC_DATE


def _check_time_parameters(now: int, leeway: int) -> None:
    if not _is_numeric_date(now):
        raise ValueError("now must be an integer unix time")
    if type(leeway) is not int or not 0 <= leeway <= 3600:
        raise ValueError("leeway must be an integer from 0 to 3600")


def _check_header_values(kid: str, typ: str) -> None:
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
        raise ValueError("kid must be a non-empty string")
    if not isinstance(typ, str) or not typ:
        raise ValueError("typ must be a non-empty string")
