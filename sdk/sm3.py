"""SM3 hash (GB/T 32905-2016), HMAC-SM3 (RFC 2104 over SM3) and the SM3 KDF.

Two engines produce the same bytes:

- one message at a time (:func:`sm3_hash`, :class:`SM3`), a compression
  function shaped for the interpreter: local names, two round loops without
  branches, rotations written inline;
- many messages at once (:func:`sm3_hash_lanes`, :func:`hmac_sm3_lanes`):
  each of the eight state words of every message lives in one big integer,
  one 64-bit lane per message holding a 32-bit word. Sums of up to four words
  stay inside their lane and are masked per lane; a rotation is one
  multiplication by ``2**32 + 1`` (which puts a copy of every word above
  it), a shift and a mask. SM3 is sequential within a message, so the gain
  comes from many messages: the envelope MACs its chunks this way. Messages
  of different lengths share the lanes; each digest is read after its own
  last block, and HMAC's outer hash takes the inner digests straight from
  their lanes.

Work that repeats is done once: a key's two HMAC key blocks, and a first
block shared by every message of a batch (the envelope's chunk MACs and its
final MAC all start with the same block), are compressed once and kept in
small caches. The cached states are as secret as the key they come from and
outlive it by a few calls at most.

The standard library only: this module also runs in Pyodide.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from itertools import chain

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
# x * _DOUBLE is x with a copy of itself 32 bits higher: a rotation left by r
# of every 32-bit lane is then (x * _DOUBLE >> (32 - r)) & mask.
_DOUBLE = (1 << 32) + 1
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))

# A batch of fewer messages than this is hashed one message at a time; lanes
# start to win at two (benchmarks/bench_symmetric.py). Larger groups are cut
# into batches whose integers stay in the CPU cache. A message rides in the
# lanes of a longer batch while it has at least 1/_RIDE of the batch's blocks:
# a lane costs little next to a round of the interpreter's loop.
_LANE_MIN_MESSAGES = 2
_LANE_BATCH = 1024
_RIDE = 32
# One block per message and at most this many messages: packing the words
# through struct takes fewer steps than byte slices.
_STRUCT_PACK_MAX = 64

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
    w, k, m = list(struct.unpack(">16I", block)), _DOUBLE, _M
    for j in range(16, 68):
        x = w[j - 16] ^ w[j - 9] ^ ((w[j - 3] * k >> 17) & m)
        d = x * k
        w.append(((x ^ (d >> 17) ^ (d >> 9) ^ (w[j - 13] * k >> 25)) & m) ^ w[j - 6])
    return w


def _compress(v: State, block: bytes | memoryview) -> State:
    # One message is one lane of 32 bits: the same rounds as the lanes.
    return tuple(_compress_lanes(list(v), _expand(block), _M, _T))  # type: ignore[return-value]


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
    return _key_states(_bytes(key))


@lru_cache(maxsize=16)
def _key_states(key: bytes) -> tuple[State, State]:
    if len(key) > BLOCK_SIZE:
        key = sm3_hash(key)
    key = key.ljust(BLOCK_SIZE, b"\x00")
    inner, outer = _states_after(_IV, [key.translate(_IPAD), key.translate(_OPAD)])
    return inner, outer


@lru_cache(maxsize=16)
def _absorbed(v: State, block: bytes) -> State:
    """``v`` after one more block; remembered, as batches share a first block."""
    return _compress(v, block)


def _hash_from(v: State, prefix: int, data: bytes) -> bytes:
    """SM3 of ``prefix`` bytes already absorbed into ``v``, then ``data``."""
    return _digest(_compress_all(v, data + _padding(prefix + len(data))))


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """Return HMAC-SM3 of ``data`` under ``key`` (RFC 2104).

    Keys of any length are accepted; longer than 64 bytes they are hashed
    first. Raises ``TypeError`` if an argument is not bytes-like.
    """
    inner, outer = _hmac_states(key)
    data = _bytes(data)
    prefix = BLOCK_SIZE
    if len(data) >= BLOCK_SIZE:
        inner, prefix = _absorbed(inner, data[:BLOCK_SIZE]), 2 * BLOCK_SIZE
        data = data[BLOCK_SIZE:]
    return _hash_from(outer, BLOCK_SIZE, _hash_from(inner, prefix, data))


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


@lru_cache(maxsize=16)
def _lane_constants(m: int) -> tuple[int, int, tuple[int, ...]]:
    """For ``m`` lanes: a 1 in every lane, the 32-bit mask, the round constants."""
    rep = int.from_bytes(b"\x00\x00\x00\x00\x00\x00\x00\x01" * m, "big")
    return rep, _M * rep, tuple(t * rep for t in _T)


def _expand_lanes(w16: list[int], m: int) -> list[int]:
    """The 68 expanded words of one block of every lane."""
    w, k = w16, _DOUBLE
    for j in range(16, 68):
        x = w[j - 16] ^ w[j - 9] ^ ((w[j - 3] * k >> 17) & m)
        d = x * k
        w.append(((x ^ (d >> 17) ^ (d >> 9) ^ (w[j - 13] * k >> 25)) & m) ^ w[j - 6])
    return w


def _compress_lanes(v: list[int], w: list[int], m: int, t: Sequence[int]) -> list[int]:
    # The same rounds as _compress; every value is a row of 64-bit lanes whose
    # upper halves must be zero again before the next rotation.
    k = _DOUBLE
    a, b, c, d, e, f, g, h = v
    b2 = b * k
    for tj, wj, wj4 in zip(t[:16], w[:16], w[4:20], strict=True):
        a2 = a * k
        a12 = (a2 >> 20) & m
        s = (a12 + e + tj) & m
        ss1 = (s * k >> 25) & m
        tt1 = ((a ^ b ^ c) + d + (ss1 ^ a12) + (wj ^ wj4)) & m
        tt2 = ((e ^ f ^ g) + h + ss1 + wj) & m
        d, c, b, a, b2 = c, (b2 >> 23) & m, a, tt1, a2
        h, g, f = g, (f * k >> 13) & m, e
        x = tt2 * k
        e = (tt2 ^ (x >> 23) ^ (x >> 15)) & m
    for tj, wj, wj4 in zip(t[16:], w[16:64], w[20:68], strict=True):
        a2 = a * k
        a12 = (a2 >> 20) & m
        s = (a12 + e + tj) & m
        ss1 = (s * k >> 25) & m
        tt1 = (((a & b) | (c & (a | b))) + d + (ss1 ^ a12) + (wj ^ wj4)) & m
        tt2 = ((g ^ (e & (f ^ g))) + h + ss1 + wj) & m
        d, c, b, a, b2 = c, (b2 >> 23) & m, a, tt1, a2
        h, g, f = g, (f * k >> 13) & m, e
        x = tt2 * k
        e = (tt2 ^ (x >> 23) ^ (x >> 15)) & m
    return [p ^ q for p, q in zip(v, (a, b, c, d, e, f, g, h), strict=True)]


def _block_lanes(rows: bytes, stride: int, offset: int, m: int) -> list[int]:
    """The 16 message words of one block of every message, lane-packed.

    ``rows`` holds ``m`` padded messages of ``stride`` bytes each, back to
    back; the block starts ``offset`` bytes into every message.
    """
    if stride == BLOCK_SIZE and m <= _STRUCT_PACK_MAX:
        values = struct.unpack(f">{16 * m}I", rows)
        lane_format = f">{m}Q"
        return [
            int.from_bytes(struct.pack(lane_format, *values[k::16]), "big")
            for k in range(16)
        ]
    size = 8 * m
    words = bytearray(16 * size)
    for k in range(16):
        for j in range(4):
            source = rows[offset + 4 * k + j :: stride]
            words[size * k + 4 + j : size * (k + 1) : 8] = source
    view = memoryview(words)
    return [int.from_bytes(view[size * k : size * (k + 1)], "big") for k in range(16)]


def _words_from_lanes(v: list[int], m: int) -> bytes:
    """The eight state words of every lane, 32 bytes per lane, lane by lane."""
    out = bytearray(DIGEST_SIZE * m)
    for k, lane in enumerate(v):
        word = lane.to_bytes(8 * m, "big")
        for j in range(4):
            out[4 * k + j :: DIGEST_SIZE] = word[4 + j :: 8]
    return bytes(out)


def _lane_states(
    start: State, rows: bytes, stride: int, m: int
) -> Iterator[tuple[int, list[int]]]:
    """Run ``m`` messages from ``start``; yield (block index, lane states)."""
    rep, mask, t = _lane_constants(m)
    v = [word * rep for word in start]
    for index, offset in enumerate(range(0, stride, BLOCK_SIZE)):
        w = _expand_lanes(_block_lanes(rows, stride, offset, m), mask)
        v = _compress_lanes(v, w, mask, t)
        yield index, v


def _states_after(start: State, blocks: Sequence[bytes]) -> list[State]:
    """The states after one block each, from ``start``, in lanes."""
    m = len(blocks)
    _, v = next(_lane_states(start, b"".join(blocks), BLOCK_SIZE, m))
    words = _words_from_lanes(v, m)
    return [struct.unpack_from(">8I", words, 32 * i) for i in range(m)]


def _padded_rows(
    prefix: int, messages: Sequence[bytes]
) -> tuple[bytes, int, dict[int, list[int]]]:
    """The padded messages zero-filled to one stride, back to back.

    Returns the rows, the stride and, by block index, the lanes whose
    message ends in that block.
    """
    lengths = [len(x) for x in messages]
    pads = {n: _padding(prefix + n) for n in set(lengths)}
    stride = max(n + len(pad) for n, pad in pads.items())
    tails = {n: pad + bytes(stride - n - len(pad)) for n, pad in pads.items()}
    last = {n: (n + len(pad)) // BLOCK_SIZE - 1 for n, pad in pads.items()}
    ends: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        ends.setdefault(last[n], []).append(i)
    pieces = zip(messages, [tails[n] for n in lengths], strict=True)
    rows = b"".join(chain.from_iterable(pieces))
    return rows, stride, ends


def _lane_mask(lanes: Sequence[int], m: int) -> int:
    """Ones over the 32-bit word of each lane in ``lanes``."""
    return sum(_M << (64 * (m - 1 - lane)) for lane in lanes)


def _final_lanes(start: State, prefix: int, messages: Sequence[bytes]) -> list[int]:
    """The lane states after each message's own last block."""
    m = len(messages)
    rows, stride, ends = _padded_rows(prefix, messages)
    final = [0] * 8
    for index, v in _lane_states(start, rows, stride, m):
        lanes = ends.get(index)
        if lanes is not None and len(lanes) == m:
            return v
        if lanes is not None:
            mask = _lane_mask(lanes, m)
            final = [f | (x & mask) for f, x in zip(final, v, strict=True)]
    return final


def _digest_list(v: list[int], m: int) -> list[bytes]:
    words = _words_from_lanes(v, m)
    return [words[i : i + DIGEST_SIZE] for i in range(0, len(words), DIGEST_SIZE)]


def _hash_batch(start: State, prefix: int, messages: Sequence[bytes]) -> list[bytes]:
    """Digests of messages hashed side by side in lanes."""
    return _digest_list(_final_lanes(start, prefix, messages), len(messages))


# The second half of HMAC's outer block: the padding of a 32-byte digest that
# follows the 64-byte key block, as eight words.
_OUTER_TAIL = struct.unpack(">8I", _padding(BLOCK_SIZE + DIGEST_SIZE))


def _hmac_batch(
    inner: State, outer: State, prefix: int, messages: Sequence[bytes]
) -> list[bytes]:
    """HMACs of messages side by side; the inner states feed the outer hash
    without leaving their lanes (its block is the inner digest, then padding).
    """
    m = len(messages)
    rep, mask, t = _lane_constants(m)
    inner_digests = _final_lanes(inner, prefix, messages)
    w = _expand_lanes(inner_digests + [word * rep for word in _OUTER_TAIL], mask)
    v = _compress_lanes([word * rep for word in outer], w, mask, t)
    return _digest_list(v, m)


def _batches(blocks: Sequence[int]) -> list[list[int]]:
    """Indexes of the messages hashed together, longest messages first."""
    if len(blocks) <= _LANE_BATCH and min(blocks) * _RIDE >= max(blocks):
        return [list(range(len(blocks)))]
    order = sorted(range(len(blocks)), key=lambda i: -blocks[i])
    batches: list[list[int]] = []
    for i in order:
        batch = batches[-1] if batches else None
        if (
            batch is None
            or len(batch) >= _LANE_BATCH
            or blocks[i] * _RIDE < blocks[batch[0]]
        ):
            batches.append([i])
        else:
            batch.append(i)
    return batches


Batch = Callable[[Sequence[bytes]], list[bytes]]


def _in_batches(
    prefix: int, messages: Sequence[bytes], one: Callable[[bytes], bytes], many: Batch
) -> list[bytes]:
    """``one`` or ``many`` over batches of messages with similar block counts."""
    if not messages:
        return []
    blocks = [(prefix + len(x) + 8) // BLOCK_SIZE for x in messages]
    out = [b""] * len(messages)
    for batch in _batches(blocks):
        members = [messages[i] for i in batch]
        if len(batch) < _LANE_MIN_MESSAGES:
            digests = [one(x) for x in members]
        else:
            digests = many(members)
        for i, digest in zip(batch, digests, strict=True):
            out[i] = digest
    return out


def _hash_many(start: State, prefix: int, messages: Sequence[bytes]) -> list[bytes]:
    """Digests of bytes ``messages`` from ``start`` after ``prefix`` bytes."""
    return _in_batches(
        prefix,
        messages,
        lambda x: _hash_from(start, prefix, x),
        lambda batch: _hash_batch(start, prefix, batch),
    )


def sm3_hash_lanes(messages: Sequence[bytes]) -> list[bytes]:
    """Return the SM3 digest of every message, in order, hashing them in lanes.

    Messages of any mix of lengths are accepted. Raises ``TypeError`` for a
    message that is not bytes-like.
    """
    return _hash_many(_IV, 0, [_bytes(x) for x in messages])


def _shared_first_block(messages: Sequence[bytes]) -> bytes | None:
    """The first block, when there are several messages and all start with it."""
    if len(messages) < _LANE_MIN_MESSAGES:
        return None
    first = messages[0][:BLOCK_SIZE]
    if len(first) < BLOCK_SIZE or not all(x.startswith(first) for x in messages):
        return None
    return first


def hmac_sm3_lanes(key: bytes, messages: Sequence[bytes]) -> list[bytes]:
    """Return HMAC-SM3 under one ``key`` of every message, in order, in lanes.

    Equal to ``[hmac_sm3(key, x) for x in messages]``. Raises ``TypeError``
    if an argument is not bytes-like.
    """
    inner, outer = _hmac_states(key)
    messages = [_bytes(x) for x in messages]
    prefix = BLOCK_SIZE
    first = _shared_first_block(messages)
    if first is not None:
        inner, prefix = _absorbed(inner, first), 2 * BLOCK_SIZE
        messages = [x[BLOCK_SIZE:] for x in messages]

    def one(x: bytes) -> bytes:
        return _hash_from(outer, BLOCK_SIZE, _hash_from(inner, prefix, x))

    def many(batch: Sequence[bytes]) -> list[bytes]:
        return _hmac_batch(inner, outer, prefix, batch)

    return _in_batches(prefix, messages, one, many)
