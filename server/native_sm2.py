"""The server's SM2 signing key, held and used by OpenSSL's libcrypto.

Python integers are not constant time, so every signature made with the
server's long-lived key by :mod:`xinfeng.sdk.sm2` tells a patient observer
a little about the key. Here the key goes into the system libcrypto
(OpenSSL 3.0, through :mod:`ctypes`) once, as PKCS#8 PEM through a memory
BIO, and each signature is one ``EVP_DigestSign`` with SM3 and the SM2 user
id set on the key context (GB/T 32918: ``e = SM3(ZA || M)``), returning the
same DER ``SEQUENCE {r, s}`` as :meth:`SM2PrivateKey.sign`. OpenSSL 3.0
computes ``[k]G`` with its Montgomery ladder, hardened against timing, and
inverts ``1 + d`` by exponentiation with a public exponent; the few
remaining products modulo n use its general bignum routines, whose running
time can depend on operand lengths in whole 64-bit words.

:func:`load_server_signer` uses OpenSSL only after it has proved itself:
it must reproduce the GB/T 32918.5 Annex A example (public key from d,
acceptance of the published signature, and a fresh signature that the pure
verifier accepts) and then sign with the server's own key in a way the pure
verifier accepts. SM2 signatures are randomized, so the proof checks
verification, never bytes. Otherwise the pure key is returned and a warning
says so. :func:`backend_name` says which one signs.

The user id must be shorter than 8191 bytes: OpenSSL refuses 8191, which
the pure code would still accept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import weakref
from typing import Any, Protocol

from xinfeng.sdk import asn1
from xinfeng.sdk.errors import CryptoError, InvalidKey
from xinfeng.sdk.sm2 import DEFAULT_UID, SM2PrivateKey, SM2PublicKey

__all__ = [
    "NativeSM2Signer",
    "NativeSignerError",
    "SM2Signer",
    "backend_name",
    "load_server_signer",
]

logger = logging.getLogger(__name__)

_MIN_VERSION = 0x30000000
_MAX_UID = 8190
_POINT_SIZE = 65
_SCALAR_SIZE = 32

# GB/T 32918.5-2017 Annex A: key, message, user id and the signature made
# with the fixed nonce k given there (also in OpenSSL's sm2_internal_test).
_GBT_D = bytes.fromhex(
    "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
)
_GBT_PUBLIC = bytes.fromhex(
    "04"
    "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
    "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
)
_GBT_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
_GBT_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
_GBT_MESSAGE = b"message digest"
_PROBE = b"xinfeng: the server key signs through OpenSSL"


class NativeSignerError(CryptoError):
    """OpenSSL could not complete an SM2 operation."""

    code = "native_signer_error"
    status = 500

    def __init__(self, step: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__("native SM2 signing failed")
        self.step = step
        self.reasons = reasons


class SM2Signer(Protocol):
    """What signs with the server key: an SM2PrivateKey or a NativeSM2Signer."""

    def public_key(self) -> SM2PublicKey: ...

    def sign(self, message: bytes, uid: bytes = DEFAULT_UID) -> bytes: ...

    def sign_raw(self, message: bytes, uid: bytes = DEFAULT_UID) -> bytes: ...


# --- libcrypto --------------------------------------------------------------

_P = ctypes.c_void_p
_INT, _SIZE = ctypes.c_int, ctypes.c_size_t
_BYTES, _SIZE_P = ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)
_PEM_PASSWORD_CB = ctypes.CFUNCTYPE(_INT, _P, _INT, _INT, _P)

_PROTOTYPES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "OpenSSL_version_num": (ctypes.c_ulong, ()),
    "ERR_get_error": (ctypes.c_ulong, ()),
    "ERR_error_string_n": (None, (ctypes.c_ulong, _BYTES, _SIZE)),
    "BIO_new_mem_buf": (_P, (_BYTES, _INT)),
    "BIO_free": (_INT, (_P,)),
    "PEM_read_bio_PrivateKey": (_P, (_P, _P, _PEM_PASSWORD_CB, _P)),
    "EVP_PKEY_free": (None, (_P,)),
    "EVP_PKEY_is_a": (_INT, (_P, _BYTES)),
    "EVP_PKEY_get_size": (_INT, (_P,)),
    "EVP_PKEY_get_octet_string_param": (_INT, (_P, _BYTES, _BYTES, _SIZE, _SIZE_P)),
    "EVP_PKEY_CTX_new_from_pkey": (_P, (_P, _P, _BYTES)),
    "EVP_PKEY_CTX_free": (None, (_P,)),
    "EVP_PKEY_CTX_set1_id": (_INT, (_P, _BYTES, _INT)),
    "EVP_MD_CTX_new": (_P, ()),
    "EVP_MD_CTX_free": (None, (_P,)),
    "EVP_MD_CTX_set_pkey_ctx": (None, (_P, _P)),
    "EVP_sm3": (_P, ()),
    "EVP_DigestSignInit": (_INT, (_P, _P, _P, _P, _P)),
    "EVP_DigestSign": (_INT, (_P, _BYTES, _SIZE_P, _BYTES, _SIZE)),
    "EVP_DigestVerifyInit": (_INT, (_P, _P, _P, _P, _P)),
    "EVP_DigestVerify": (_INT, (_P, _BYTES, _SIZE, _BYTES, _SIZE)),
}


def _refuse_password(buf: int, size: int, rwflag: int, userdata: int) -> int:
    """Refuse encrypted PEM instead of letting OpenSSL prompt on a terminal."""
    return -1


_NO_PASSWORD = _PEM_PASSWORD_CB(_refuse_password)


@functools.cache
def _libcrypto() -> ctypes.CDLL:
    """The system libcrypto 3.x with our prototypes; OSError when absent.

    Raises AttributeError when a function is missing (OpenSSL before 3.0).
    """
    lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
    for name, (restype, argtypes) in _PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    if lib.OpenSSL_version_num() < _MIN_VERSION:
        raise OSError("libcrypto is older than OpenSSL 3.0")
    return lib


def _drain_errors(lib: ctypes.CDLL) -> tuple[str, ...]:
    """Empty this thread's OpenSSL error queue; return its reasons."""
    reasons = []
    buffer = ctypes.create_string_buffer(256)
    while code := lib.ERR_get_error():
        lib.ERR_error_string_n(code, buffer, len(buffer))
        reasons.append(buffer.value.decode("ascii", "replace"))
    return tuple(reasons)


def _failure(lib: ctypes.CDLL, step: str) -> NativeSignerError:
    """The error for a failed ``step``, with OpenSSL's queued reasons."""
    return NativeSignerError(step, _drain_errors(lib))


def _check(lib: ctypes.CDLL, ok: bool, step: str) -> None:
    if not ok:
        raise _failure(lib, step)


def _read_private_key(lib: ctypes.CDLL, pem: bytes) -> int:
    """An EVP_PKEY* for an unencrypted SM2 private key PEM; InvalidKey else."""
    bio = lib.BIO_new_mem_buf(pem, len(pem))
    _check(lib, bool(bio), "BIO_new_mem_buf")
    try:
        pkey = lib.PEM_read_bio_PrivateKey(bio, None, _NO_PASSWORD, None)
    finally:
        lib.BIO_free(bio)
    if not pkey:
        _drain_errors(lib)
        raise InvalidKey("not an unencrypted private key PEM")
    if lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:
        lib.EVP_PKEY_free(pkey)
        raise InvalidKey("not an SM2 private key")
    return int(pkey)


def _public_point(lib: ctypes.CDLL, pkey: int) -> bytes:
    """OpenSSL's own ``04 || x || y`` for the key."""
    buffer = ctypes.create_string_buffer(_POINT_SIZE)
    size = ctypes.c_size_t(0)
    ok = lib.EVP_PKEY_get_octet_string_param(
        pkey, b"pub", buffer, len(buffer), ctypes.byref(size)
    )
    _check(lib, ok == 1, "EVP_PKEY_get_octet_string_param")
    return buffer.raw[: size.value]


# --- signing ----------------------------------------------------------------


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError("expected bytes")


def _as_uid(uid: object) -> bytes:
    raw = _as_bytes(uid)
    if len(raw) > _MAX_UID:
        raise ValueError(f"the user id is longer than {_MAX_UID} bytes")
    return raw


def _key_context(lib: ctypes.CDLL, pkey: int, uid: bytes) -> int:
    """An EVP_PKEY_CTX* for ``pkey`` that carries the SM2 user id."""
    pctx = lib.EVP_PKEY_CTX_new_from_pkey(None, pkey, None)
    _check(lib, bool(pctx), "EVP_PKEY_CTX_new_from_pkey")
    if lib.EVP_PKEY_CTX_set1_id(pctx, uid, len(uid)) != 1:
        lib.EVP_PKEY_CTX_free(pctx)
        raise _failure(lib, "EVP_PKEY_CTX_set1_id")
    return int(pctx)


def _digest_sign(lib: ctypes.CDLL, pkey: int, message: bytes, uid: bytes) -> bytes:
    """DER signature of ``message`` under ``uid``; every context is freed."""
    mctx = lib.EVP_MD_CTX_new()
    _check(lib, bool(mctx), "EVP_MD_CTX_new")
    pctx = None
    try:
        pctx = _key_context(lib, pkey, uid)
        lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
        ok = lib.EVP_DigestSignInit(mctx, None, lib.EVP_sm3(), None, pkey)
        _check(lib, ok == 1, "EVP_DigestSignInit")
        size = ctypes.c_size_t(lib.EVP_PKEY_get_size(pkey))
        signature = ctypes.create_string_buffer(size.value)
        ok = lib.EVP_DigestSign(
            mctx, signature, ctypes.byref(size), message, len(message)
        )
        _check(lib, ok == 1, "EVP_DigestSign")
        return signature.raw[: size.value]
    finally:
        lib.EVP_MD_CTX_free(mctx)  # does not free a context set by set_pkey_ctx
        if pctx is not None:
            lib.EVP_PKEY_CTX_free(pctx)


def _digest_verify(
    lib: ctypes.CDLL, pkey: int, signature: bytes, message: bytes, uid: bytes
) -> bool:
    """True when OpenSSL accepts the DER ``signature``; False when it refuses."""
    mctx = lib.EVP_MD_CTX_new()
    _check(lib, bool(mctx), "EVP_MD_CTX_new")
    pctx = None
    try:
        pctx = _key_context(lib, pkey, uid)
        lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
        ok = lib.EVP_DigestVerifyInit(mctx, None, lib.EVP_sm3(), None, pkey)
        _check(lib, ok == 1, "EVP_DigestVerifyInit")
        verdict = lib.EVP_DigestVerify(
            mctx, signature, len(signature), message, len(message)
        )
        _drain_errors(lib)  # a refusal leaves its reasons queued
        return bool(verdict == 1)
    finally:
        lib.EVP_MD_CTX_free(mctx)
        if pctx is not None:
            lib.EVP_PKEY_CTX_free(pctx)


def _der_to_raw(der: bytes) -> bytes:
    """``r || s``, 32 bytes each, from OpenSSL's DER signature."""
    try:
        seq = asn1.read_sequence(der)
        r, s = seq.read_integer(), seq.read_integer()
        seq.finish()
        return r.to_bytes(_SCALAR_SIZE, "big") + s.to_bytes(_SCALAR_SIZE, "big")
    except (asn1.DERError, OverflowError):
        raise NativeSignerError("decode DER signature") from None


class NativeSM2Signer:
    """An SM2 private key inside OpenSSL: signs like :class:`SM2PrivateKey`.

    The key never comes back out. Build one with :meth:`from_private_key`
    or :meth:`from_pem`; :meth:`close` frees it early, otherwise it is
    freed with the object.
    """

    __slots__ = ("_lib", "_pkey", "_public", "_free", "__weakref__")

    def __init__(self, lib: ctypes.CDLL, pkey: int) -> None:
        """Do not call directly: takes ownership of the EVP_PKEY* ``pkey``."""
        self._lib = lib
        self._pkey: int | None = pkey
        self._free = weakref.finalize(self, lib.EVP_PKEY_free, pkey)
        self._public = SM2PublicKey.from_bytes(_public_point(lib, pkey))

    @classmethod
    def from_pem(cls, pem: bytes) -> NativeSM2Signer:
        """Load an unencrypted SM2 private key PEM (PKCS#8 or SEC1).

        Raises InvalidKey for anything else, OSError when there is no
        libcrypto 3.x and AttributeError when it lacks a needed function.
        """
        lib = _libcrypto()
        return cls(lib, _read_private_key(lib, _as_bytes(pem)))

    @classmethod
    def from_private_key(cls, key: SM2PrivateKey) -> NativeSM2Signer:
        """Copy ``key`` into OpenSSL.

        Raises NativeSignerError if OpenSSL derives another public key.
        """
        signer = cls.from_pem(key.to_pem())
        if signer.public_key() != key.public_key():
            signer.close()
            raise NativeSignerError("public key check")
        return signer

    def public_key(self) -> SM2PublicKey:
        """The public key, as OpenSSL computed it from the private key."""
        return self._public

    def sign(self, message: bytes, uid: bytes = DEFAULT_UID) -> bytes:
        """DER ``SEQUENCE {r, s}`` of ``message``; raises NativeSignerError."""
        return _digest_sign(self._lib, self._live(), _as_bytes(message), _as_uid(uid))

    def sign_raw(self, message: bytes, uid: bytes = DEFAULT_UID) -> bytes:
        """The signature as ``r || s``, 32 bytes each (JWS form)."""
        return _der_to_raw(self.sign(message, uid))

    def close(self) -> None:
        """Free the key inside OpenSSL now; signing afterwards raises."""
        self._pkey = None
        self._free()

    def __repr__(self) -> str:
        return "NativeSM2Signer(<secret>)"

    def _live(self) -> int:
        if self._pkey is None:
            raise NativeSignerError("sign after close")
        return self._pkey

    def _accepts(self, signature: bytes, message: bytes, uid: bytes) -> bool:
        """OpenSSL's verdict on a DER signature under this key's public key."""
        return _digest_verify(self._lib, self._live(), signature, message, uid)


# --- choosing the signer ----------------------------------------------------

_NATIVE_FAILURES = (OSError, AttributeError, CryptoError)


def _standard_example() -> None:
    """Raise unless OpenSSL reproduces GB/T 32918.5 Annex A.

    The public key OpenSSL must derive and the signature it must accept come
    from the standard; the pure verifier checks OpenSSL's fresh signature.
    """
    signer = NativeSM2Signer.from_private_key(SM2PrivateKey.from_bytes(_GBT_D))
    try:
        if signer.public_key().to_bytes() != _GBT_PUBLIC:
            raise NativeSignerError("standard public key")
        published = asn1.encode_sequence(
            asn1.encode_integer(_GBT_R), asn1.encode_integer(_GBT_S)
        )
        if not signer._accepts(published, _GBT_MESSAGE, DEFAULT_UID):
            raise NativeSignerError("standard signature")
        standard = SM2PublicKey.from_bytes(_GBT_PUBLIC)
        standard.verify(signer.sign(_GBT_MESSAGE), _GBT_MESSAGE, DEFAULT_UID)
    finally:
        signer.close()


def _proven_signer(key: SM2PrivateKey) -> NativeSM2Signer:
    """``key`` inside OpenSSL, once both signature forms verify purely."""
    _standard_example()
    signer = NativeSM2Signer.from_private_key(key)
    proven = False
    try:
        public = key.public_key()
        public.verify(signer.sign(_PROBE), _PROBE)
        public.verify_raw(signer.sign_raw(_PROBE), _PROBE)
        proven = True
    finally:
        if not proven:
            signer.close()
    return signer


def load_server_signer(key: SM2PrivateKey, prefer_native: bool = True) -> SM2Signer:
    """The signer for the server's long-lived key.

    OpenSSL's when libcrypto 3.x with SM2 is present and passes its known
    answers; otherwise ``key`` itself, with a warning that signing is then
    pure Python and not constant time.
    """
    if not prefer_native:
        logger.warning("the server key signs in pure Python (native disabled)")
        return key
    try:
        signer = _proven_signer(key)
    except _NATIVE_FAILURES as exc:
        logger.debug("native signer failed at %s", getattr(exc, "step", "load"))
        logger.warning(
            "OpenSSL SM2 signer unusable (%s); the server key signs in pure "
            "Python, which is not constant time",
            type(exc).__name__,
        )
        return key
    logger.info("the server key signs through OpenSSL's libcrypto")
    return signer


def backend_name(signer: SM2Signer) -> str:
    """Which code signs: "openssl" or "pure"."""
    return "openssl" if isinstance(signer, NativeSM2Signer) else "pure"
