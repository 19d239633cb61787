"""SM3 hash (GB/T 32905-2016), HMAC-SM3 (RFC 2104 over SM3) and the SM3 KDF.

Two engines produce the same bytes:

- one message at a time (:func:`sm3_hash`, :class:`SM3`), a compression
  function shaped for the interpreter: local names, two round loops without
  branches, rotations written inline;
- many messages at once (:func:`sm3_hash_lanes`, :func:`hmac_sm3_lanes`):
  each of the eight state words of every message lives in one big integer,
  one 64-bit lane per message holding a 32-bit word. Sums of up to four words
  stay inside their lane and are masked per lane; rotations are shifts masked
  per lane. SM3 is sequential within a message, so the gain comes from many
  messages: the envelope MACs its fixed-size chunks this way.

The standard library only: this module also runs in Pyodide.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "BLOCK_SIZE",
    "DIGEST_SIZE",
    "SM3",
    "hmac_sm3",
    "hmac_sm3_lanes",
    "sm3_hash",
    "sm3_hash_lanes",
    "sm3_kdf",
]

DIGEST_SIZE = 32
BLOCK_SIZE = 64

_IV = (
    0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600,
    0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E,
)  # fmt: skip
_M = 0xFFFFFFFF
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))

# A group of equal-length messages smaller than this is hashed one message at
# a time; lanes start to win at two (benchmarks/bench_symmetric.py). Larger
# groups are cut into batches whose integers stay in the CPU cache.
_LANE_MIN_MESSAGES = 2
_LANE_BATCH = 1024

State = tuple[int, int, int, int, int, int, int, int]


def _rotl(x: int, n: int) -> int:
    n %= 32
    return ((x << n) | (x >> (32 - n))) & _M


_T = tuple(_rotl(0x79CC4519 if j < 16 else 0x7A879D8A, j) for j in range(64))


def _bytes(value: bytes) -> bytes:
    """``value`` as bytes; a ``TypeError`` unless it is bytes-like (not an int)."""
    if isinstance(value, bytes):
        return value
    return memoryview(value).tobytes()


def _padding(length: int) -> bytes:
    """The padding that follows a message of ``length`` bytes."""
    zeros = (55 - length) % BLOCK_SIZE
    return b"\x80" + bytes(zeros) + struct.pack(">Q", length * 8)


# -- one message at a time ----------------------------------------------------


def _expand(block: bytes | memoryview) -> list[int]:
    w = list(struct.unpack(">16I", block))
    for j in range(16, 68):
        y = w[j - 3]
        x = w[j - 16] ^ w[j - 9] ^ (((y << 15) | (y >> 17)) & _M)
        d = x | (x << 32)  # a doubled word: rotl(x, r) == d >> (32 - r)
        y = w[j - 13]
        w.append((x ^ (d >> 17) ^ (d >> 9) ^ (y << 7) ^ (y >> 25) ^ w[j - 6]) & _M)
    return w


def _compress(v: State, block: bytes | memoryview) -> State:
    w = _expand(block)
    a, b, c, d, e, f, g, h = v
    for tj, wj, wj4 in zip(_T[:16], w[:16], w[4:20], strict=True):
        a12 = ((a << 12) | (a >> 20)) & _M
        s = (a12 + e + tj) & _M
        ss1 = ((s << 7) | (s >> 25)) & _M
        tt1 = ((a ^ b ^ c) + d + (ss1 ^ a12) + (wj ^ wj4)) & _M
        tt2 = ((e ^ f ^ g) + h + ss1 + wj) & _M
        d, c, b, a = c, ((b << 9) | (b >> 23)) & _M, a, tt1
        h, g, f = g, ((f << 19) | (f >> 13)) & _M, e
        x = tt2 | (tt2 << 32)
        e = (tt2 ^ (x >> 23) ^ (x >> 15)) & _M
    for tj, wj, wj4 in zip(_T[16:], w[16:64], w[20:68], strict=True):
        a12 = ((a << 12) | (a >> 20)) & _M
        s = (a12 + e + tj) & _M
        ss1 = ((s << 7) | (s >> 25)) & _M
        tt1 = (((a & b) | (c & (a | b))) + d + (ss1 ^ a12) + (wj ^ wj4)) & _M
        tt2 = ((g ^ (e & (f ^ g))) + h + ss1 + wj) & _M
        d, c, b, a = c, ((b << 9) | (b >> 23)) & _M, a, tt1
        h, g, f = g, ((f << 19) | (f >> 13)) & _M, e
        x = tt2 | (tt2 << 32)
        e = (tt2 ^ (x >> 23) ^ (x >> 15)) & _M
    return (
        v[0] ^ a, v[1] ^ b, v[2] ^ c, v[3] ^ d,
        v[4] ^ e, v[5] ^ f, v[6] ^ g, v[7] ^ h,
    )  # fmt: skip


def _compress_all(v: State, blocks: bytes) -> State:
    view = memoryview(blocks)
    for i in range(0, len(blocks), BLOCK_SIZE):
        v = _compress(v, view[i : i + BLOCK_SIZE])
    return v


def _digest(v: State) -> bytes:
    return struct.pack(">8I", *v)


class SM3:
    """An incremental SM3 hash with the ``hashlib`` interface.

    Raises ``TypeError`` if given something that is not bytes-like.
    """

    name = "sm3"
    digest_size = DIGEST_SIZE
    block_size = BLOCK_SIZE

    def __init__(self, data: bytes = b"") -> None:
        self._v: State = _IV
        self._pending = b""
        self._length = 0
        self.update(data)

    def update(self, data: bytes) -> None:
        """Feed more of the message."""
        data = self._pending + _bytes(data)
        self._length += len(data) - len(self._pending)
        whole = len(data) - len(data) % BLOCK_SIZE
        self._v = _compress_all(self._v, data[:whole])
        self._pending = data[whole:]

    def digest(self) -> bytes:
        """The 32-byte digest of everything fed so far."""
        tail = self._pending + _padding(self._length)
        return _digest(_compress_all(self._v, tail))

    def hexdigest(self) -> str:
        """The digest as 64 lowercase hex digits."""
        return self.digest().hex()

    def copy(self) -> SM3:
        """An independent hash object with the same state."""
        other = SM3.__new__(SM3)
        other._v, other._pending, other._length = self._v, self._pending, self._length
        return other


def sm3_hash(data: bytes) -> bytes:
    """Return the 32-byte SM3 digest of ``data``.

    Raises ``TypeError`` if ``data`` is not bytes-like.
    """
    data = _bytes(data)
    return _digest(_compress_all(_IV, data + _padding(len(data))))


def _hmac_states(key: bytes) -> tuple[State, State]:
    """The states after the inner and the outer key block of HMAC."""
    key = _bytes(key)
    if len(key) > BLOCK_SIZE:
        key = sm3_hash(key)
    key = key.ljust(BLOCK_SIZE, b"\x00")
    return _compress(_IV, key.translate(_IPAD)), _compress(_IV, key.translate(_OPAD))


def _hash_from(v: State, prefix: int, data: bytes) -> bytes:
    """SM3 of ``prefix`` bytes already absorbed into ``v``, then ``data``."""
    return _digest(_compress_all(v, data + _padding(prefix + len(data))))


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """Return HMAC-SM3 of ``data`` under ``key`` (RFC 2104).

    Keys of any length are accepted; longer than 64 bytes they are hashed
    first. Raises ``TypeError`` if an argument is not bytes-like.
    """
    inner, outer = _hmac_states(key)
    return _hash_from(outer, BLOCK_SIZE, _hash_from(inner, BLOCK_SIZE, _bytes(data)))


def sm3_kdf(z: bytes, klen: int) -> bytes:
    """Derive ``klen`` bytes from ``z`` with the KDF of GB/T 32918.4.

    Raises ``ValueError`` if ``klen`` is negative or beyond the KDF's limit.
    """
    if klen < 0 or klen > DIGEST_SIZE * 0xFFFFFFFF:
        raise ValueError("klen out of range")
    count = -(-klen // DIGEST_SIZE)
    blocks = [_bytes(z) + struct.pack(">I", ct) for ct in range(1, count + 1)]
    return b"".join(sm3_hash_lanes(blocks))[:klen]


# -- many messages at once ----------------------------------------------------


@lru_cache(maxsize=8)
def _lane_constants(m: int) -> tuple[int, int, tuple[int, ...]]:
    """For ``m`` lanes: a 1 in every lane, the 32-bit mask, the round constants."""
    rep = int.from_bytes(b"\x00\x00\x00\x00\x00\x00\x00\x01" * m, "big")
    return rep, _M * rep, tuple(t * rep for t in _T)


def _expand_lanes(w16: list[int], m: int) -> list[int]:
    w = w16
    for j in range(16, 68):
        y = w[j - 3]
        x = w[j - 16] ^ w[j - 9] ^ (((y << 15) | (y >> 17)) & m)
        d = x | (x << 32)
        y = w[j - 13]
        w.append(((x ^ (d >> 17) ^ (d >> 9) ^ (y << 7) ^ (y >> 25)) & m) ^ w[j - 6])
    return w


def _compress_lanes(v: list[int], w: list[int], m: int, t: Sequence[int]) -> list[int]:
    # The same rounds as _compress; every value is a row of 64-bit lanes whose
    # upper halves must be zero again before the next rotation.
    a, b, c, d, e, f, g, h = v
    for tj, wj, wj4 in zip(t[:16], w[:16], w[4:20], strict=True):
        a12 = ((a << 12) | (a >> 20)) & m
        s = (a12 + e + tj) & m
        ss1 = ((s << 7) | (s >> 25)) & m
        tt1 = ((a ^ b ^ c) + d + (ss1 ^ a12) + (wj ^ wj4)) & m
        tt2 = ((e ^ f ^ g) + h + ss1 + wj) & m
        d, c, b, a = c, ((b << 9) | (b >> 23)) & m, a, tt1
        h, g, f = g, ((f << 19) | (f >> 13)) & m, e
        x = tt2 | (tt2 << 32)
        e = (tt2 ^ (x >> 23) ^ (x >> 15)) & m
    for tj, wj, wj4 in zip(t[16:], w[16:64], w[20:68], strict=True):
        a12 = ((a << 12) | (a >> 20)) & m
        s = (a12 + e + tj) & m
        ss1 = ((s << 7) | (s >> 25)) & m
        tt1 = (((a & b) | (c & (a | b))) + d + (ss1 ^ a12) + (wj ^ wj4)) & m
        tt2 = ((g ^ (e & (f ^ g))) + h + ss1 + wj) & m
        d, c, b, a = c, ((b << 9) | (b >> 23)) & m, a, tt1
        h, g, f = g, ((f << 19) | (f >> 13)) & m, e
        x = tt2 | (tt2 << 32)
        e = (tt2 ^ (x >> 23) ^ (x >> 15)) & m
    return [p ^ q for p, q in zip(v, (a, b, c, d, e, f, g, h), strict=True)]


def _block_lanes(rows: bytes, stride: int, offset: int, m: int) -> list[int]:
    """The 16 message words of one block of every message, lane-packed.

    ``rows`` holds ``m`` padded messages of ``stride`` bytes each, back to
    back; the block starts ``offset`` bytes into every message.
    """
    size = 8 * m
    words = bytearray(16 * size)
    for k in range(16):
        for j in range(4):
            source = rows[offset + 4 * k + j :: stride]
            words[size * k + 4 + j : size * (k + 1) : 8] = source
    view = memoryview(words)
    return [int.from_bytes(view[size * k : size * (k + 1)], "big") for k in range(16)]


def _digests_from_lanes(v: list[int], m: int) -> list[bytes]:
    out = bytearray(DIGEST_SIZE * m)
    for k, lane in enumerate(v):
        word = lane.to_bytes(8 * m, "big")
        for j in range(4):
            out[4 * k + j :: DIGEST_SIZE] = word[4 + j :: 8]
    return [bytes(out[i : i + DIGEST_SIZE]) for i in range(0, len(out), DIGEST_SIZE)]


def _hash_batch(start: State, prefix: int, messages: Sequence[bytes]) -> list[bytes]:
    """Digests of messages whose padded lengths are all equal, in lanes."""
    m = len(messages)
    rep, mask, t = _lane_constants(m)
    rows = b"".join(x + _padding(prefix + len(x)) for x in messages)
    stride = len(rows) // m
    v = [word * rep for word in start]
    for offset in range(0, stride, BLOCK_SIZE):
        w = _expand_lanes(_block_lanes(rows, stride, offset, m), mask)
        v = _compress_lanes(v, w, mask, t)
    return _digests_from_lanes(v, m)


def _groups(messages: Sequence[bytes], prefix: int) -> Iterable[list[int]]:
    """Indexes of the messages, grouped by their number of blocks."""
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(messages):
        groups.setdefault((prefix + len(x) + 8) // BLOCK_SIZE, []).append(i)
    return groups.values()


def _hash_many(start: State, prefix: int, messages: Sequence[bytes]) -> list[bytes]:
    messages = [_bytes(x) for x in messages]
    out = [b""] * len(messages)
    for group in _groups(messages, prefix):
        for first in range(0, len(group), _LANE_BATCH):
            batch = group[first : first + _LANE_BATCH]
            members = [messages[i] for i in batch]
            if len(batch) < _LANE_MIN_MESSAGES:
                digests = [_hash_from(start, prefix, x) for x in members]
            else:
                digests = _hash_batch(start, prefix, members)
            for i, digest in zip(batch, digests, strict=True):
                out[i] = digest
    return out


def sm3_hash_lanes(messages: Sequence[bytes]) -> list[bytes]:
    """Return the SM3 digest of every message, in order, hashing them in lanes.

    Messages of any mix of lengths are accepted; those with the same number
    of blocks are hashed together. Raises ``TypeError`` for a message that
    is not bytes-like.
    """
    return _hash_many(_IV, 0, messages)


def hmac_sm3_lanes(key: bytes, messages: Sequence[bytes]) -> list[bytes]:
    """Return HMAC-SM3 under one ``key`` of every message, in order, in lanes.

    Equal to ``[hmac_sm3(key, x) for x in messages]``. Raises ``TypeError``
    if an argument is not bytes-like.
    """
    inner_start, outer_start = _hmac_states(key)
    inner = _hash_many(inner_start, BLOCK_SIZE, messages)
    return _hash_many(outer_start, BLOCK_SIZE, inner)
