"""The integrator backend's long-lived license credential.

A credential is ``xfc_<license_id>.<secret>``, the secret being 32 random
bytes in base64url. It is shown once, to the integrator, and lives only in
their backend, which trades it for short-lived embed tokens. The provider
keeps a verifier instead of the credential: a random 16-byte salt and
HMAC-SM3 keyed with that salt over the license id and the secret. The
secret has 256 bits of entropy, so one keyed hash is enough; no iteration
count would make guessing it harder.

Verifier layout: version byte ``0x01`` || salt (16) || tag (32).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets

from xinfeng.sdk.errors import TokenInvalid
from xinfeng.sdk.sm3 import hmac_sm3

from .model import LICENSE_ID_RE

PREFIX = "xfc_"
SECRET_SIZE = 32
SALT_SIZE = 16
VERSION = b"\x01"
VERIFIER_SIZE = 1 + SALT_SIZE + 32

_DOMAIN = b"xinfeng credential v1\x00"
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_credential(license_id: str) -> tuple[str, bytes]:
    """Return a fresh ``(credential, verifier)`` pair for ``license_id``.

    Raises:
        ValueError: ``license_id`` is malformed.
    """
    if not isinstance(license_id, str) or not LICENSE_ID_RE.fullmatch(license_id):
        raise ValueError("malformed license_id")
    secret = secrets.token_bytes(SECRET_SIZE)
    salt = secrets.token_bytes(SALT_SIZE)

    text = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    credential = f"{PREFIX}{license_id}.{text}"
    return credential, VERSION + salt + _tag(salt, license_id, secret)


def credential_license_id(credential: str) -> str:
    """Return the license id a credential claims, to look up its verifier.

    The claim is not proven until :func:`check_credential` succeeds.

    Raises:
        TokenInvalid: the credential is malformed.
    """
    license_id, _ = _parse(credential)
    return license_id


def check_credential(credential: str, verifier: bytes) -> str:
    """Check ``credential`` against the stored ``verifier``; return its license id.

    Raises:
        TokenInvalid: the credential is malformed or does not match.
    """
    license_id, secret = _parse(credential)
    if not isinstance(verifier, bytes) or len(verifier) != VERIFIER_SIZE:
        raise TokenInvalid()
    if verifier[:1] != VERSION:
        raise TokenInvalid()

    salt, expected = verifier[1 : 1 + SALT_SIZE], verifier[1 + SALT_SIZE :]
    if not hmac.compare_digest(_tag(salt, license_id, secret), expected):
        raise TokenInvalid()
    return license_id


def _parse(credential: str) -> tuple[str, bytes]:
    if not isinstance(credential, str) or not credential.startswith(PREFIX):
        raise TokenInvalid()
    license_id, dot, text = credential[len(PREFIX) :].partition(".")
    if not dot or not LICENSE_ID_RE.fullmatch(license_id):
        raise TokenInvalid()
    if not _SECRET_RE.fullmatch(text):
        raise TokenInvalid()

    secret = base64.urlsafe_b64decode(text + "=")
    if base64.urlsafe_b64encode(secret).rstrip(b"=").decode() != text:
        raise TokenInvalid()
    return license_id, secret


def _tag(salt: bytes, license_id: str, secret: bytes) -> bytes:
    message = _DOMAIN + license_id.encode("ascii") + b"\x00" + secret
    return hmac_sm3(salt, message)
