"""Envelope v1: sealed responses, request MACs and the handshake.

The expected envelope bytes are recomputed with a second implementation of
every primitive (hashlib's SM3/HMAC-SM3 and OpenSSL's SM4-CTR through
``cryptography``), following docs/protocol.md rather than our code.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.vectors import load, unhex
from xinfeng.sdk import envelope, wire
from xinfeng.sdk.errors import EnvelopeError, ProtocolError, SessionInvalid
from xinfeng.sdk.sm2 import SM2PrivateKey

KEY = bytes(range(16))
TRACE = bytes.fromhex("7472616365" + "00" * 11)
IV = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
LIMITS = wire.Limits(max_bytes=1 << 21, max_items=1 << 16, max_str=1 << 20,
                     max_bin=1 << 20)
NOW = 1_790_000_000_000
HOSTILE = sorted((Path(__file__).parent / "vectors" / "msgpack").glob("*.bin"))


def kdf_reference(z: bytes, klen: int) -> bytes:
    out = b"".join(hashlib.new("sm3", z + struct.pack(">I", i)).digest()
                   for i in range(1, klen // 32 + 2))
    return out[:klen]


def hmac_reference(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, "sm3").digest()


def reference_chunk_size(length: int) -> int:
    # docs/protocol.md: 2 ** floor(b / 2) for the bit length b of L, at least 32.
    bits = len(f"{length:b}") if length else 0
    return max(32, 2 ** (bits // 2))


def envelope_reference(key: bytes, counter: int, plaintext: bytes) -> bytes:
    okm = kdf_reference(key + b"xf1 response" + struct.pack(">Q", counter), 48)
    enc, mac = okm[:16], okm[16:]
    size = reference_chunk_size(len(plaintext))
    header = (b"XF\x01\x02" + struct.pack(">Q", counter) + TRACE + IV
              + struct.pack(">II", size, len(plaintext)))
    cipher = Cipher(algorithms.SM4(enc), modes.CTR(IV)).encryptor()
    ct = cipher.update(plaintext) + cipher.finalize()
    chunks = [ct[i:i + size] for i in range(0, len(ct), size)]
    prefix = b"xf1 envelope" + header
    summed = 0
    for i, c in enumerate(chunks):
        tag = hmac_reference(mac, prefix + b"\x00" + struct.pack(">I", i) + c)
        summed ^= int.from_bytes(tag, "big")
    final = (prefix + b"\x01" + struct.pack(">I", len(chunks))
             + summed.to_bytes(32, "big"))
    return header + ct + hmac_reference(mac, final)


WORKED = load("envelope")["vectors"][0]


def test_seal_reproduces_the_worked_example_of_the_spec() -> None:
    payload = wire.unpack(unhex(WORKED["plaintext"]), LIMITS)
    sealed_now = envelope.seal(
        unhex(WORKED["session_key"]),
        WORKED["counter"],
        payload,
        trace_id=unhex(WORKED["trace_id"]),
        iv=unhex(WORKED["iv"]),
    )
    assert sealed_now == unhex(WORKED["envelope"])


def test_worked_example_keys_and_chunk_size_follow_the_spec() -> None:
    keys = envelope.response_keys(unhex(WORKED["session_key"]), WORKED["counter"])
    length = len(unhex(WORKED["plaintext"]))
    assert keys == (unhex(WORKED["kenc"]), unhex(WORKED["kmac"]))
    assert envelope.chunk_size(length) == WORKED["chunk_size"]


def test_open_reads_the_worked_example_of_the_spec() -> None:
    key, sealed_bytes = unhex(WORKED["session_key"]), unhex(WORKED["envelope"])
    opened = envelope.open_envelope(key, sealed_bytes, WORKED["counter"], LIMITS)
    assert wire.pack(opened.payload) == unhex(WORKED["plaintext"])


@pytest.mark.parametrize(
    ("length", "size"),
    [(0, 32), (1023, 32), (1024, 32), (2047, 32), (4096, 64), (65536, 256),
     (65541, 256), (1 << 20, 1024), (16 << 20, 4096)],
)
def test_chunk_size_is_the_power_of_two_near_the_square_root(
    length: int, size: int
) -> None:
    assert envelope.chunk_size(length) == size
    assert reference_chunk_size(length) == size


def sealed(payload: object, counter: int = 7) -> bytes:
    return envelope.seal(KEY, counter, payload, trace_id=TRACE, iv=IV)


@pytest.mark.parametrize(
    "size", [0, 1, 15, 26, 27, 28, 1024, 1500, 2045, 4095, 4096, 4097, 70_000]
)
def test_seal_matches_independent_implementation(size: int) -> None:
    payload = {"rows": bytes(i % 251 for i in range(size))}
    expected = envelope_reference(KEY, 7, wire.pack(payload))
    assert sealed(payload) == expected


@pytest.mark.parametrize("size", [0, 1, 4096, 4097, 70_000])
def test_open_returns_payload_sealed_by_reference(size: int) -> None:
    payload = {"rows": bytes(size), "trace": "x"}
    env = envelope_reference(KEY, 9, wire.pack(payload))
    opened = envelope.open_envelope(KEY, env, 9, LIMITS)
    assert opened.payload == payload
    assert opened.trace_id == TRACE


def test_open_rejects_every_single_bit_flip() -> None:
    env = sealed({"a": "b" * 100})
    for bit in range(0, len(env) * 8, 7):
        forged = bytearray(env)
        forged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(EnvelopeError):
            envelope.open_envelope(KEY, bytes(forged), 7, LIMITS)


def test_open_rejects_swapped_chunks() -> None:
    env = bytearray(sealed({"x": bytes(9000)}))
    first = env[52:52 + 4096]
    env[52:52 + 4096] = env[52 + 4096:52 + 8192]
    env[52 + 4096:52 + 8192] = first
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(KEY, bytes(env), 7, LIMITS)


@pytest.mark.parametrize("cut", [1, 32, 33, 4096])
def test_open_rejects_truncated_envelope(cut: int) -> None:
    env = sealed({"x": bytes(9000)})
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(KEY, env[:-cut], 7, LIMITS)


def test_open_rejects_trailing_bytes() -> None:
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(KEY, sealed({}) + b"\x00", 7, LIMITS)


def test_open_rejects_envelope_for_another_counter() -> None:
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(KEY, sealed({}, counter=7), 8, LIMITS)


def test_open_rejects_envelope_under_another_session_key() -> None:
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(bytes(16), sealed({}), 7, LIMITS)


@pytest.mark.parametrize(("offset", "value"), [(2, 2), (3, 9), (46, 0x20)])
def test_open_rejects_unknown_version_algorithm_or_chunk_size(
    offset: int, value: int
) -> None:
    env = bytearray(sealed({}))
    env[offset] = value
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(KEY, bytes(env), 7, LIMITS)


def test_open_rejects_oversized_length_prefix() -> None:
    env = bytearray(sealed({}))
    env[48:52] = struct.pack(">I", 0xFFFFFFFF)
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(KEY, bytes(env), 7, LIMITS)


def test_open_rejects_payload_over_receiver_limits() -> None:
    env = sealed({"x": "y" * 5000})
    small = wire.Limits(max_bytes=1 << 16, max_str=4096)
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(KEY, env, 7, small)


# -- requests ------------------------------------------------------------------


def client_session() -> envelope.ClientSession:
    return envelope.ClientSession(b"s" * 16, KEY, NOW + 60_000)


def test_request_mac_matches_independent_hmac() -> None:
    auth = client_session().sign("GET", "/v1/data/p", "a=1", NOW)
    kreq = kdf_reference(KEY + b"xf1 request", 32)
    text = f"xf1 request\nGET\n/v1/data/p\na=1\n1\n{NOW}".encode()
    assert auth.mac == hmac_reference(kreq, text)
    envelope.verify_request(auth, KEY, "GET", "/v1/data/p", "a=1", NOW)


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [("POST", "/v1/data/p", "a=1"), ("GET", "/v1/data/q", "a=1"),
     ("GET", "/v1/data/p", "a=2")],
)
def test_verify_request_rejects_mac_for_other_request(
    method: str, path: str, query: str
) -> None:
    auth = client_session().sign("GET", "/v1/data/p", "a=1", NOW)
    with pytest.raises(SessionInvalid):
        envelope.verify_request(auth, KEY, method, path, query, NOW)


def test_verify_request_rejects_clock_skew() -> None:
    auth = client_session().sign("GET", "/p", "", NOW)
    with pytest.raises(SessionInvalid):
        envelope.verify_request(auth, KEY, "GET", "/p", "", NOW + 121_000)


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-xf-session": "zz", "x-xf-counter": "1", "x-xf-time": "1",
          "x-xf-mac": "00" * 32},
     {"x-xf-session": "00" * 16, "x-xf-counter": "-1", "x-xf-time": "1",
      "x-xf-mac": "00" * 32},
     {"x-xf-session": "00" * 16, "x-xf-counter": "1e3", "x-xf-time": "1",
      "x-xf-mac": "00" * 32},
     {"x-xf-session": "00" * 16, "x-xf-counter": "9" * 30, "x-xf-time": "1",
      "x-xf-mac": "00" * 32}],
)
def test_request_headers_malformed_rejected(headers: dict[str, str]) -> None:
    with pytest.raises(ProtocolError):
        envelope.RequestAuth.from_headers(headers)


# -- handshake -------------------------------------------------------------------


ENV = {"origins": ["http://127.0.0.1:8001"], "ua": "test", "webdriver": False,
       "build": "ab" * 32, "hidden": False}


def test_handshake_round_trip_opens_server_envelope() -> None:
    server = SM2PrivateKey.generate()
    client = envelope.ClientHandshake("tok", ENV)
    request = envelope.parse_handshake(client.request(NOW), NOW)
    sid, key = envelope.new_session_secrets()
    reply = envelope.sign_handshake_reply(request, server, sid, key, NOW + 1, NOW)
    session = client.finish(reply, server.public_key())
    assert (session.session_id, session.session_key) == (sid, key)
    auth = session.sign("GET", "/v1/data/p", "", NOW)
    env = envelope.seal(key, auth.counter, {"ok": True})
    assert session.open(env, auth, LIMITS).payload == {"ok": True}


def test_handshake_reply_signed_by_other_key_rejected() -> None:
    client = envelope.ClientHandshake("tok", ENV)
    request = envelope.parse_handshake(client.request(NOW), NOW)
    reply = envelope.sign_handshake_reply(request, SM2PrivateKey.generate(),
                                          b"s" * 16, KEY, NOW, NOW)
    with pytest.raises(EnvelopeError):
        client.finish(reply, SM2PrivateKey.generate().public_key())


def test_handshake_reply_for_other_request_rejected() -> None:
    server = SM2PrivateKey.generate()
    first = envelope.ClientHandshake("tok", ENV)
    second = envelope.ClientHandshake("tok", ENV, key=first.key)
    request = envelope.parse_handshake(first.request(NOW), NOW)
    reply = envelope.sign_handshake_reply(request, server, b"s" * 16, KEY, NOW,
                                          NOW)
    with pytest.raises(EnvelopeError):
        second.finish(reply, server.public_key())


def test_handshake_with_tampered_token_rejected() -> None:
    body = envelope.ClientHandshake("token-a", ENV).request(NOW)
    msg = wire.unpack(body, envelope.HANDSHAKE_LIMITS)
    msg["token"] = "token-b"
    with pytest.raises(SessionInvalid):
        envelope.parse_handshake(wire.pack(msg), NOW)


def test_handshake_from_the_past_rejected() -> None:
    body = envelope.ClientHandshake("tok", ENV).request(NOW - 121_000)
    with pytest.raises(SessionInvalid):
        envelope.parse_handshake(body, NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [("v", 2), ("v", True), ("epk", b"\x04" + bytes(64)), ("nonce", b"short"),
     ("ts", "1790000000000"), ("env", {"origins": []}), ("token", 5),
     ("sig", "not-bytes")],
)
def test_handshake_with_bad_field_rejected(field: str, value: object) -> None:
    msg = wire.unpack(envelope.ClientHandshake("tok", ENV).request(NOW),
                      envelope.HANDSHAKE_LIMITS)
    msg[field] = value
    with pytest.raises((ProtocolError, SessionInvalid)):
        envelope.parse_handshake(wire.pack(msg), NOW)


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_handshake_rejects_hostile_msgpack(path: Path) -> None:
    with pytest.raises(ProtocolError):
        envelope.parse_handshake(path.read_bytes(), NOW)


def test_handshake_rejects_oversized_body() -> None:
    with pytest.raises(ProtocolError):
        envelope.parse_handshake(b"\x80" + bytes(9000), NOW)


def test_unpack_accepts_message_within_limits() -> None:
    limits = wire.Limits(max_bytes=64, max_items=4, max_str=8, max_bin=8)
    assert wire.unpack(b"\x82\xa1a\xc4\x00\xa1b\x01", limits) == {"a": b"", "b": 1}


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_unpack_rejects_hostile_msgpack(path: Path) -> None:
    with pytest.raises(ProtocolError):
        wire.unpack(path.read_bytes(), LIMITS)
