"""Envelope protocol v1: handshake, request authentication, sealed responses.

The wire format is specified in docs/protocol.md; this module is the
reference implementation for both sides. The component (in Pyodide) uses
:class:`ClientHandshake` and :class:`ClientSession`; the server uses
:func:`parse_handshake`, :func:`sign_handshake_reply`,
:func:`verify_request` and :func:`seal`.

Time is always a parameter (milliseconds since the epoch), randomness comes
from ``secrets`` unless a test passes bytes explicitly.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import sm3, sm4
from .errors import (
    DecryptionFailed,
    EnvelopeError,
    InvalidKey,
    InvalidSignature,
    ProtocolError,
    SessionInvalid,
)
from .sm2 import SM2PrivateKey, SM2PublicKey
from .wire import Limits, pack, parse_uint, require, require_bytes, unpack

VERSION = 1
ALG_SM4_CTR_HMAC_SM3 = 2
MAGIC = b"XF"
MIN_CHUNK_SIZE = 32
SESSION_KEY_SIZE = 16
SESSION_ID_SIZE = 16
TRACE_ID_SIZE = 16
NONCE_SIZE = 16
IV_SIZE = 16
TAG_SIZE = 32
HEADER = struct.Struct(">2sBBQ16s16sII")
HEADER_SIZE = HEADER.size
MAX_CIPHERTEXT = 16 * 1024 * 1024
# Every MAC input starts with this label and the header: exactly one SM3
# block, compressed once per envelope.
MAC_LABEL = b"xf1 envelope"
_CHUNK_TAG, _FINAL_TAG = b"\x00", b"\x01"
MAX_CLOCK_SKEW_MS = 120_000

HANDSHAKE_LIMITS = Limits(max_bytes=8192, max_items=16, max_str=4096, max_bin=256)
REPLY_LIMITS = Limits(max_bytes=4096, max_items=16, max_str=256, max_bin=512)

_ENV_FIELDS: dict[str, type | tuple[type, ...]] = {
    "origins": list,
    "ua": str,
    "webdriver": bool,
    "build": str,
    "hidden": bool,
}


@dataclass(frozen=True)
class Suite:
    """The primitives an envelope is built from.

    The pure-Python suite runs everywhere; the server may pass a native one
    that produces the same bytes (see ``xinfeng.server.native``).
    """

    sm4_ctr: Callable[[bytes, bytes, bytes], bytes]
    hmac_sm3: Callable[[bytes, bytes], bytes]
    hmac_sm3_many: Callable[[bytes, Sequence[bytes]], list[bytes]]


def _hmac_many_serial(key: bytes, messages: Sequence[bytes]) -> list[bytes]:
    return [sm3.hmac_sm3(key, m) for m in messages]


PURE = Suite(
    sm4_ctr=sm4.sm4_ctr,
    hmac_sm3=sm3.hmac_sm3,
    hmac_sm3_many=getattr(sm3, "hmac_sm3_lanes", _hmac_many_serial),
)


# -- keys -----------------------------------------------------------------


def request_mac_key(session_key: bytes) -> bytes:
    """Key that authenticates the client's data requests."""
    return sm3.sm3_kdf(session_key + b"xf1 request", 32)


def response_keys(session_key: bytes, counter: int) -> tuple[bytes, bytes]:
    """Per-response SM4 key and HMAC key, derived from the session key."""
    okm = sm3.sm3_kdf(session_key + b"xf1 response" + struct.pack(">Q", counter), 48)
    return okm[:16], okm[16:]


# -- handshake --------------------------------------------------------------


def canonical_env(env: Any) -> dict[str, Any]:
    """Validate an environment report and return it with sorted keys."""
    if not isinstance(env, dict) or set(env) != set(_ENV_FIELDS):
        raise ProtocolError("malformed environment report")
    for key, kind in _ENV_FIELDS.items():
        require(env, key, kind)
    origins = env["origins"]
    if len(origins) > 8 or not all(isinstance(o, str) for o in origins):
        raise ProtocolError("malformed environment report")
    return {key: env[key] for key in sorted(env)}


def handshake_transcript(
    token: str, epk: bytes, nonce: bytes, ts: int, env: dict[str, Any]
) -> bytes:
    """Bytes the ephemeral key signs in a handshake request."""
    return b"xf1 handshake" + pack([VERSION, token, epk, nonce, ts, env])


def reply_transcript(
    sid: bytes, wrapped: bytes, expires: int, ts: int, nonce: bytes, epk: bytes
) -> bytes:
    """Bytes the server key signs in a handshake reply."""
    return b"xf1 reply" + pack([VERSION, sid, wrapped, expires, ts, nonce, epk])


@dataclass(frozen=True)
class HandshakeRequest:
    """A handshake request whose ephemeral-key signature verified."""

    token: str
    epk: SM2PublicKey
    epk_bytes: bytes
    nonce: bytes
    ts: int
    env: dict[str, Any]


def parse_handshake(body: bytes, now_ms: int) -> HandshakeRequest:
    """Decode and check a handshake request body.

    Raises PayloadTooLarge or ProtocolError for malformed input and
    SessionInvalid when the signature or the time does not check out.
    """
    msg = unpack(body, HANDSHAKE_LIMITS)
    if require(msg, "v", int) != VERSION:
        raise ProtocolError("unsupported version")
    token = require(msg, "token", str)
    epk_bytes = require_bytes(msg, "epk", 65)
    nonce = require_bytes(msg, "nonce", NONCE_SIZE)
    ts = require(msg, "ts", int)
    env = canonical_env(require(msg, "env", dict))
    sig = require_bytes(msg, "sig")
    if abs(now_ms - ts) > MAX_CLOCK_SKEW_MS:
        raise SessionInvalid("clock skew too large")
    try:
        epk = SM2PublicKey.from_bytes(epk_bytes)
        epk.verify(sig, handshake_transcript(token, epk_bytes, nonce, ts, env))
    except (InvalidKey, InvalidSignature) as exc:
        raise SessionInvalid("handshake signature invalid") from exc
    return HandshakeRequest(token, epk, epk_bytes, nonce, ts, env)


class ReplySigner(Protocol):
    """Signs like :meth:`SM2PrivateKey.sign` (DER): the server key itself,
    or an object that holds it elsewhere, such as inside OpenSSL."""

    def sign(self, message: bytes, uid: bytes = ...) -> bytes: ...


def sign_handshake_reply(
    request: HandshakeRequest,
    server_key: ReplySigner,
    session_id: bytes,
    session_key: bytes,
    expires_ms: int,
    now_ms: int,
) -> bytes:
    """Wrap ``session_key`` to the client's ephemeral key and sign the reply."""
    wrapped = request.epk.encrypt(session_key)
    transcript = reply_transcript(
        session_id, wrapped, expires_ms, now_ms, request.nonce, request.epk_bytes
    )
    return pack(
        {
            "v": VERSION,
            "sid": session_id,
            "wk": wrapped,
            "exp": expires_ms,
            "ts": now_ms,
            "sig": server_key.sign(transcript),
        }
    )


@dataclass
class ClientHandshake:
    """The component's side of the handshake."""

    token: str
    env: dict[str, Any]
    key: SM2PrivateKey = field(default_factory=SM2PrivateKey.generate)
    nonce: bytes = field(default_factory=lambda: secrets.token_bytes(NONCE_SIZE))

    def request(self, now_ms: int) -> bytes:
        """The handshake request body."""
        env = canonical_env(self.env)
        epk = self.key.public_key().to_bytes()
        sig = self.key.sign(
            handshake_transcript(self.token, epk, self.nonce, now_ms, env)
        )
        return pack(
            {
                "v": VERSION,
                "token": self.token,
                "epk": epk,
                "nonce": self.nonce,
                "ts": now_ms,
                "env": env,
                "sig": sig,
            }
        )

    def finish(
        self, body: bytes, server_key: SM2PublicKey, suite: Suite = PURE
    ) -> ClientSession:
        """Check the server's reply and unwrap the session key.

        Raises EnvelopeError when the reply is malformed, not signed by the
        pinned server key, or the wrapped key does not decrypt.
        """
        try:
            msg = unpack(body, REPLY_LIMITS)
            if require(msg, "v", int) != VERSION:
                raise ProtocolError("unsupported version")
            sid = require_bytes(msg, "sid", SESSION_ID_SIZE)
            wrapped = require_bytes(msg, "wk")
            expires = require(msg, "exp", int)
            ts = require(msg, "ts", int)
            sig = require_bytes(msg, "sig")
            epk = self.key.public_key().to_bytes()
            server_key.verify(
                sig, reply_transcript(sid, wrapped, expires, ts, self.nonce, epk)
            )
            session_key = self.key.decrypt(wrapped)
        except (ProtocolError, InvalidSignature, DecryptionFailed) as exc:
            raise EnvelopeError("handshake reply rejected") from exc
        if len(session_key) != SESSION_KEY_SIZE:
            raise EnvelopeError("handshake reply rejected")
        return ClientSession(sid, session_key, expires, suite)


# -- data requests ----------------------------------------------------------

# Sent as "1" on a data request made while the component's page is hidden.
# Not covered by the MAC: an abuse hint about honest browsers, no more.
HIDDEN_HEADER = "X-Xf-Hidden"


_LOWER_HEX = frozenset("0123456789abcdef")


def _hex_of(text: str, size: int) -> bool:
    """Whether ``text`` is exactly ``size`` bytes in lower-case hex."""
    return len(text) == 2 * size and _LOWER_HEX.issuperset(text)


def request_transcript(
    method: str, path: str, query: str, counter: int, ts: int
) -> bytes:
    """Bytes a data request's MAC covers."""
    text = f"xf1 request\n{method.upper()}\n{path}\n{query}\n{counter}\n{ts}"
    return text.encode("utf-8")


@dataclass(frozen=True)
class RequestAuth:
    """The authentication fields a data request carries as headers."""

    session_id: bytes
    counter: int
    ts: int
    mac: bytes

    def headers(self) -> dict[str, str]:
        """HTTP headers carrying these fields."""
        return {
            "X-Xf-Session": self.session_id.hex(),
            "X-Xf-Counter": str(self.counter),
            "X-Xf-Time": str(self.ts),
            "X-Xf-Mac": self.mac.hex(),
        }

    @classmethod
    def from_headers(cls, headers: Any) -> RequestAuth:
        """Parse the headers of a data request; ProtocolError when malformed.

        Only the canonical form is accepted: lower-case hex of the exact
        length, decimal numbers without leading zeros.
        """
        try:
            sid_hex, mac_hex = headers["x-xf-session"], headers["x-xf-mac"]
            counter_text, ts_text = headers["x-xf-counter"], headers["x-xf-time"]
            counter, ts = parse_uint(counter_text), parse_uint(ts_text)
        except (KeyError, ValueError) as exc:
            raise ProtocolError("missing or malformed authentication") from exc
        canonical = (_hex_of(sid_hex, SESSION_ID_SIZE) and _hex_of(mac_hex, 32)
                     and counter_text == str(counter) and ts_text == str(ts))
        if not canonical:
            raise ProtocolError("missing or malformed authentication")
        return cls(bytes.fromhex(sid_hex), counter, ts, bytes.fromhex(mac_hex))


def verify_request(
    auth: RequestAuth,
    session_key: bytes,
    method: str,
    path: str,
    query: str,
    now_ms: int,
    suite: Suite = PURE,
) -> None:
    """Check a data request's MAC and time; the counter is checked by storage.

    Raises SessionInvalid on a bad MAC or a time outside the allowed skew.
    """
    expected = suite.hmac_sm3(
        request_mac_key(session_key),
        request_transcript(method, path, query, auth.counter, auth.ts),
    )
    if not hmac.compare_digest(expected, auth.mac):
        raise SessionInvalid("request not authentic")
    if abs(now_ms - auth.ts) > MAX_CLOCK_SKEW_MS:
        raise SessionInvalid("clock skew too large")


# -- sealed responses -------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """An opened envelope: the payload and what it was bound to."""

    counter: int
    trace_id: bytes
    payload: Any


def chunk_size(length: int) -> int:
    """The MAC chunk size for ``length`` bytes of ciphertext.

    About the square root of the length, as a power of two, at least 32: a
    receiver then computes about as many chunk MACs side by side as each has
    blocks, which is the fastest split for lane-parallel SM3.
    """
    return max(MIN_CHUNK_SIZE, 1 << (length.bit_length() // 2))


def _xor_all(tags: Sequence[bytes]) -> bytes:
    total = 0
    for tag in tags:
        total ^= int.from_bytes(tag, "big")
    return total.to_bytes(TAG_SIZE, "big")


def _tags(mac_key: bytes, header: bytes, ciphertext: bytes, suite: Suite) -> bytes:
    size = chunk_size(len(ciphertext))
    prefix = MAC_LABEL + header
    chunks = [
        prefix + _CHUNK_TAG + struct.pack(">I", i // size) + ciphertext[i : i + size]
        for i in range(0, len(ciphertext), size)
    ]
    summed = _xor_all(suite.hmac_sm3_many(mac_key, chunks))
    final = prefix + _FINAL_TAG + struct.pack(">I", len(chunks)) + summed
    return suite.hmac_sm3(mac_key, final)


def seal(
    session_key: bytes,
    counter: int,
    payload: Any,
    trace_id: bytes | None = None,
    iv: bytes | None = None,
    suite: Suite = PURE,
) -> bytes:
    """Serialise ``payload`` and seal it for the response to ``counter``."""
    plaintext = pack(payload)
    if len(plaintext) > MAX_CIPHERTEXT:
        raise EnvelopeError("payload too large")
    trace_id = trace_id or secrets.token_bytes(TRACE_ID_SIZE)
    iv = iv or secrets.token_bytes(IV_SIZE)
    enc_key, mac_key = response_keys(session_key, counter)
    header = HEADER.pack(
        MAGIC,
        VERSION,
        ALG_SM4_CTR_HMAC_SM3,
        counter,
        trace_id,
        iv,
        chunk_size(len(plaintext)),
        len(plaintext),
    )
    ciphertext = suite.sm4_ctr(enc_key, iv, plaintext)
    return header + ciphertext + _tags(mac_key, header, ciphertext, suite)


def parse_header(envelope: bytes) -> tuple[int, bytes, bytes, int]:
    """Return (counter, trace id, iv, ciphertext length) from a header.

    Raises EnvelopeError for an unknown version or algorithm, or lengths
    that do not match the envelope.
    """
    if len(envelope) < HEADER_SIZE + TAG_SIZE:
        raise EnvelopeError("envelope truncated")
    magic, version, alg, counter, trace_id, iv, chunk, length = HEADER.unpack_from(
        envelope
    )
    if magic != MAGIC or version != VERSION or alg != ALG_SM4_CTR_HMAC_SM3:
        raise EnvelopeError("unsupported envelope")
    if length > MAX_CIPHERTEXT or chunk != chunk_size(length):
        raise EnvelopeError("unsupported envelope")
    if len(envelope) != HEADER_SIZE + length + TAG_SIZE:
        raise EnvelopeError("envelope length mismatch")
    return counter, trace_id, iv, length


def open_envelope(
    session_key: bytes,
    envelope: bytes,
    expected_counter: int,
    payload_limits: Limits,
    suite: Suite = PURE,
) -> Envelope:
    """Verify, then decrypt and decode one envelope.

    The MAC is checked before any byte is decrypted. Raises EnvelopeError
    for any malformed, truncated, reordered or tampered envelope, and for an
    envelope bound to another counter.
    """
    counter, trace_id, iv, length = parse_header(envelope)
    if counter != expected_counter:
        raise EnvelopeError("envelope bound to another request")
    header = envelope[:HEADER_SIZE]
    ciphertext = envelope[HEADER_SIZE : HEADER_SIZE + length]
    enc_key, mac_key = response_keys(session_key, counter)
    tag = _tags(mac_key, header, ciphertext, suite)
    if not hmac.compare_digest(tag, envelope[HEADER_SIZE + length :]):
        raise EnvelopeError("envelope does not authenticate")
    plaintext = suite.sm4_ctr(enc_key, iv, ciphertext)
    try:
        payload = unpack(plaintext, payload_limits)
    except ProtocolError as exc:
        raise EnvelopeError("envelope payload malformed") from exc
    return Envelope(counter, trace_id, payload)


@dataclass
class ClientSession:
    """The component's session: signs requests and opens responses."""

    session_id: bytes
    session_key: bytes
    expires_ms: int
    suite: Suite = PURE
    counter: int = 0

    def sign(self, method: str, path: str, query: str, now_ms: int) -> RequestAuth:
        """Authenticate the next request; the counter strictly increases."""
        self.counter += 1
        mac = self.suite.hmac_sm3(
            request_mac_key(self.session_key),
            request_transcript(method, path, query, self.counter, now_ms),
        )
        return RequestAuth(self.session_id, self.counter, now_ms, mac)

    def open(self, envelope: bytes, auth: RequestAuth, limits: Limits) -> Envelope:
        """Open the envelope answering the request ``auth`` authenticated."""
        return open_envelope(
            self.session_key, envelope, auth.counter, limits, self.suite
        )


def new_session_secrets() -> tuple[bytes, bytes]:
    """A fresh (session id, session key) pair."""
    return secrets.token_bytes(SESSION_ID_SIZE), secrets.token_bytes(SESSION_KEY_SIZE)


__all__ = [
    "HIDDEN_HEADER",
    "ClientHandshake",
    "ClientSession",
    "Envelope",
    "HandshakeRequest",
    "RequestAuth",
    "Suite",
    "PURE",
    "open_envelope",
    "parse_handshake",
    "seal",
    "sign_handshake_reply",
    "verify_request",
    "InvalidKey",
]
