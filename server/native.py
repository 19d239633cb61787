"""Native fast paths for SM4-CTR, SM3 and HMAC-SM3 on the server.

OpenSSL does the work where the installed libraries offer it: SM4-CTR
through ``cryptography``, SM3 and HMAC-SM3 through ``hashlib``/``hmac``.
Each native primitive must first reproduce a published vector; if it is
missing or disagrees, the pure-Python implementation of :mod:`xinfeng.sdk`
is used instead, so the bytes are the same either way. Inputs are checked
exactly as the pure functions check them and raise the same errors.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from xinfeng.sdk import sm3, sm4
from xinfeng.sdk.errors import InvalidKey

__all__ = [
    "BACKEND",
    "Backend",
    "backend_names",
    "hmac_sm3",
    "hmac_sm3_lanes",
    "select_backend",
    "sm3_hash",
    "sm4_ctr",
]

logger = logging.getLogger(__name__)

SM4Ctr = Callable[[bytes, bytes, bytes], bytes]
Hash = Callable[[bytes], bytes]
Mac = Callable[[bytes, bytes], bytes]
MacMany = Callable[[bytes, Sequence[bytes]], list[bytes]]
Error = type[Exception]
F = TypeVar("F", bound=Callable[..., object])

# GB/T 32907 example 1: the SM4 key encrypted under itself. As the first CTR
# keystream block (counter = key) it probes the native cipher.
_SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
_SM4_BLOCK = bytes.fromhex("681edf34d206965e86b3e94f536e4246")
# GB/T 32905 example 1.
_SM3_ABC = bytes.fromhex(
    "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
)
# HMAC-SM3 of "Hi There" under 16 bytes of 0x0b, from the OpenSSL CLI.
_HMAC_HI_THERE = bytes.fromhex(
    "12d66c84b4a40ad8035c263e419bd43c7e52fb438b930eba0c94e34cdb9b63f3"
)


@dataclass(frozen=True)
class Backend:
    """One implementation of each primitive and the name of its provider."""

    sm4_ctr: SM4Ctr
    sm3_hash: Hash
    hmac_sm3: Mac
    hmac_sm3_lanes: MacMany
    names: dict[str, str] = field(default_factory=dict)


def _sm4_param(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != 16:
        raise InvalidKey(f"SM4 {what} must be 16 bytes")
    return bytes(value)


def _proven(function: F, known_answer: Callable[[], bool], *missing: Error) -> F | None:
    """``function`` if it reproduces its known answer, else None."""
    try:
        if known_answer():
            return function
    except missing as exc:
        logger.debug("native primitive unavailable: %s", type(exc).__name__)
        return None
    logger.warning("native primitive disagrees with its known answer; not used")
    return None


def _openssl_sm4_ctr() -> SM4Ctr | None:
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:
        return None

    def ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
        """SM4-CTR through OpenSSL; raises ``InvalidKey`` like the pure one."""
        algorithm = algorithms.SM4(_sm4_param(key, "key"))
        mode = modes.CTR(_sm4_param(iv, "IV"))
        encryptor = Cipher(algorithm, mode).encryptor()
        return encryptor.update(data) + encryptor.finalize()

    def known_answer() -> bool:
        return ctr(_SM4_KEY, _SM4_KEY, bytes(16)) == _SM4_BLOCK

    # An old cryptography lacks algorithms.SM4; an OpenSSL without SM4
    # raises UnsupportedAlgorithm.
    return _proven(ctr, known_answer, UnsupportedAlgorithm, AttributeError)


def _openssl_sm3() -> Hash | None:
    def digest(data: bytes) -> bytes:
        """SM3 through OpenSSL's hashlib."""
        return hashlib.new("sm3", data).digest()

    return _proven(digest, lambda: digest(b"abc") == _SM3_ABC, ValueError)


def _openssl_hmac_sm3() -> Mac | None:
    def mac(key: bytes, data: bytes) -> bytes:
        """HMAC-SM3 through OpenSSL's hmac."""
        return hmac.digest(key, data, "sm3")

    def known_answer() -> bool:
        return mac(b"\x0b" * 16, b"Hi There") == _HMAC_HI_THERE

    return _proven(mac, known_answer, ValueError)


def _each(mac: Mac) -> MacMany:
    def many(key: bytes, messages: Sequence[bytes]) -> list[bytes]:
        """HMAC of every message under one key, in order."""
        return [mac(key, m) for m in messages]

    return many


def select_backend(prefer_native: bool = True) -> Backend:
    """Pick, per primitive, OpenSSL when it is present and correct, else pure."""
    ctr = _openssl_sm4_ctr() if prefer_native else None
    digest = _openssl_sm3() if prefer_native else None
    mac = _openssl_hmac_sm3() if prefer_native else None
    names = {
        "sm4_ctr": "cryptography" if ctr else "pure",
        "sm3": "hashlib" if digest else "pure",
        "hmac_sm3": "hashlib" if mac else "pure",
    }
    logger.debug("symmetric crypto backends: %s", names)
    return Backend(
        sm4_ctr=ctr or sm4.sm4_ctr,
        sm3_hash=digest or sm3.sm3_hash,
        hmac_sm3=mac or sm3.hmac_sm3,
        hmac_sm3_lanes=_each(mac) if mac else sm3.hmac_sm3_lanes,
        names=names,
    )


BACKEND = select_backend()


def backend_names() -> dict[str, str]:
    """Which provider serves each primitive: "cryptography", "hashlib" or "pure"."""
    return dict(BACKEND.names)


def sm4_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """SM4-CTR as :func:`xinfeng.sdk.sm4.sm4_ctr`; raises ``InvalidKey`` alike."""
    return BACKEND.sm4_ctr(key, iv, data)


def sm3_hash(data: bytes) -> bytes:
    """SM3 as :func:`xinfeng.sdk.sm3.sm3_hash`."""
    return BACKEND.sm3_hash(data)


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """HMAC-SM3 as :func:`xinfeng.sdk.sm3.hmac_sm3`."""
    return BACKEND.hmac_sm3(key, data)


def hmac_sm3_lanes(key: bytes, messages: Sequence[bytes]) -> list[bytes]:
    """HMAC-SM3 of many messages as :func:`xinfeng.sdk.sm3.hmac_sm3_lanes`."""
    return BACKEND.hmac_sm3_lanes(key, messages)
