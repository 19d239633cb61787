"""SM4 block cipher (GB/T 32907-2016) with ECB, CBC (PKCS#7) and CTR modes.

Two engines produce the same bytes:

- block at a time, with four T-tables that fold the S-box into the linear
  transform; CBC encryption needs it, being sequential;
- lanes: every block of a message at once. Each of the four state words of
  all blocks is one big integer with a 32-bit lane per block; the S-box runs
  over the whole byte string with ``bytes.translate`` and the rotations of
  the linear transform are masked shifts. CTR, ECB and CBC decryption are
  parallel over blocks and use it for anything but tiny inputs.

The standard library only: this module also runs in Pyodide.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterator, Sequence
from functools import lru_cache
from itertools import chain

from .errors import CryptoError, DecryptionFailed, InvalidKey

__all__ = [
    "BLOCK_SIZE",
    "KEY_SIZE",
    "SM4",
    "sm4_cbc_decrypt",
    "sm4_cbc_encrypt",
    "sm4_ctr",
    "sm4_ecb_decrypt",
    "sm4_ecb_encrypt",
]

BLOCK_SIZE = 16
KEY_SIZE = 16

_M32 = 0xFFFFFFFF
_SBOX = bytes.fromhex(
    """
    d6 90 e9 fe cc e1 3d b7 16 b6 14 c2 28 fb 2c 05
    2b 67 9a 76 2a be 04 c3 aa 44 13 26 49 86 06 99
    9c 42 50 f4 91 ef 98 7a 33 54 0b 43 ed cf ac 62
    e4 b3 1c a9 c9 08 e8 95 80 df 94 fa 75 8f 3f a6
    47 07 a7 fc f3 73 17 ba 83 59 3c 19 e6 85 4f a8
    68 6b 81 b2 71 64 da 8b f8 eb 0f 4b 70 56 9d 35
    1e 24 0e 5e 63 58 d1 a2 25 22 7c 3b 01 21 78 87
    d4 00 46 57 9f d3 27 52 4c 36 02 e7 a0 c4 c8 9e
    ea bf 8a d2 40 c7 38 b5 a3 f7 f2 ce f9 61 15 a1
    e0 ae 5d a4 9b 34 1a 55 ad 93 32 30 f5 8c b1 e3
    1d f6 e2 2e 82 66 ca 60 c0 29 23 ab 0d 53 4e 6f
    d5 db 37 45 de fd 8e 2f 03 ff 6a 72 6d 6c 5b 51
    8d 1b af 92 bb dd bc 7f 11 d9 5c 41 1f 10 5a d8
    0a c1 31 88 a5 cd 7b bd 2d 74 d0 12 b8 e5 b4 b0
    89 69 97 4a 0c 96 77 7e 65 b9 f1 09 c5 6e c6 84
    18 f0 7d ec 3a dc 4d 20 79 ee 5f 3e d7 cb 39 48
    """
)
_FK = (0xA3B1BAC6, 0x56AA3350, 0x677D9197, 0xB27022DC)
_CK = tuple(
    int.from_bytes(bytes((28 * i + 7 * j) & 0xFF for j in range(4)), "big")
    for i in range(32)
)

# Below this many blocks the T-table engine beats the lanes (measured with
# benchmarks/bench_symmetric.py); above _LANE_CHUNK blocks the lanes are
# processed in slices that stay in the CPU cache.
_LANE_MIN_BLOCKS = 4
_LANE_CHUNK = 2048

RoundKeys = tuple[tuple[int, int, int, int], ...]


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _M32


def _tau(x: int) -> int:
    return int.from_bytes(x.to_bytes(4, "big").translate(_SBOX), "big")


def _linear(b: int) -> int:
    return b ^ _rotl(b, 2) ^ _rotl(b, 10) ^ _rotl(b, 18) ^ _rotl(b, 24)


def _t_table(byte_index: int) -> list[int]:
    shift = 24 - 8 * byte_index
    return [_linear(s << shift) for s in _SBOX]


_T0, _T1, _T2, _T3 = (_t_table(i) for i in range(4))


# -- keys ---------------------------------------------------------------------


def _key_bytes(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidKey(f"SM4 {what} must be bytes")
    value = bytes(value)
    if len(value) != 16:
        raise InvalidKey(f"SM4 {what} must be 16 bytes")
    return value


def _data_bytes(value: bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return memoryview(value).tobytes()


def _round_keys(key: bytes) -> list[int]:
    # The key schedule's tau and L' written out: every response has a fresh
    # key, so this runs once per envelope.
    k = [w ^ f for w, f in zip(struct.unpack(">4I", key), _FK, strict=True)]
    sbox, m = _SBOX, _M32
    for i, ck in enumerate(_CK):
        x = (k[i + 1] ^ k[i + 2] ^ k[i + 3] ^ ck).to_bytes(4, "big")
        b = int.from_bytes(x.translate(sbox), "big")
        d = b | (b << 32)  # a doubled word: rotl(b, r) == d >> (32 - r)
        k.append(k[i] ^ b ^ ((d >> 19) & m) ^ ((d >> 9) & m))
    return k[4:]


def _grouped(rk: Sequence[int]) -> RoundKeys:
    return tuple((rk[i], rk[i + 1], rk[i + 2], rk[i + 3]) for i in range(0, 32, 4))


# -- block at a time ----------------------------------------------------------


def _crypt_words(
    rk: RoundKeys, x0: int, x1: int, x2: int, x3: int
) -> tuple[int, int, int, int]:
    t0, t1, t2, t3 = _T0, _T1, _T2, _T3
    for k0, k1, k2, k3 in rk:
        x = x1 ^ x2 ^ x3 ^ k0
        x0 ^= t0[x >> 24] ^ t1[x >> 16 & 255] ^ t2[x >> 8 & 255] ^ t3[x & 255]
        x = x2 ^ x3 ^ x0 ^ k1
        x1 ^= t0[x >> 24] ^ t1[x >> 16 & 255] ^ t2[x >> 8 & 255] ^ t3[x & 255]
        x = x3 ^ x0 ^ x1 ^ k2
        x2 ^= t0[x >> 24] ^ t1[x >> 16 & 255] ^ t2[x >> 8 & 255] ^ t3[x & 255]
        x = x0 ^ x1 ^ x2 ^ k3
        x3 ^= t0[x >> 24] ^ t1[x >> 16 & 255] ^ t2[x >> 8 & 255] ^ t3[x & 255]
    return x3, x2, x1, x0


def _crypt_blocks(rk: RoundKeys, data: bytes) -> bytes:
    words = struct.unpack(f">{len(data) // 4}I", data)
    out: list[int] = []
    for i in range(0, len(words), 4):
        out.extend(_crypt_words(rk, *words[i : i + 4]))
    return struct.pack(f">{len(out)}I", *out)


def _counter_blocks(rk: RoundKeys, start: int, n: int) -> bytes:
    out: list[int] = []
    for i in range(n):
        c = (start + i) & ((1 << 128) - 1)
        out.extend(_crypt_words(rk, c >> 96, c >> 64 & _M32, c >> 32 & _M32, c & _M32))
    return struct.pack(f">{len(out)}I", *out)


# -- lanes: all blocks at once ------------------------------------------------


@lru_cache(maxsize=8)
def _lane_masks(n: int) -> tuple[int, int, int, int, int]:
    """One lane of 1 per block, and the high-bit masks of the four rotations."""
    rep = int.from_bytes(b"\x00\x00\x00\x01" * n, "big")
    h2, h10, h18, h24 = (rep * ((_M32 << r) & _M32) for r in (2, 10, 18, 24))
    return rep, h2, h10, h18, h24


def _lane_rounds(
    rk: RoundKeys, x0: int, x1: int, x2: int, x3: int, n: int
) -> tuple[int, int, int, int]:
    # A rotation left by r of every lane is (b << r) masked to the lane's high
    # bits, plus the r bits that spilled into the next lane shifted back down
    # by 32; the spills of all four rotations come back with one shift.
    rep, h2, h10, h18, h24 = _lane_masks(n)
    size, sbox, from_bytes = 4 * n, _SBOX, int.from_bytes
    for k in chain.from_iterable(rk):
        t = (x1 ^ x2 ^ x3 ^ k * rep).to_bytes(size, "big")
        b = from_bytes(t.translate(sbox), "big")
        p2, p10, p18, p24 = b << 2, b << 10, b << 18, b << 24
        a = (p2 & h2) ^ (p10 & h10) ^ (p18 & h18) ^ (p24 & h24)
        spill = (p2 ^ p10 ^ p18 ^ p24 ^ a) >> 32
        x0, x1, x2, x3 = x1, x2, x3, x0 ^ b ^ a ^ spill
    return x3, x2, x1, x0


def _to_lanes(data: bytes, n: int) -> list[int]:
    words = bytearray(16 * n)
    for k in range(4):
        for j in range(4):
            words[4 * n * k + j : 4 * n * (k + 1) : 4] = data[4 * k + j :: 16]
    view = memoryview(words)
    return [int.from_bytes(view[4 * n * k : 4 * n * (k + 1)], "big") for k in range(4)]


def _from_lanes(lanes: Sequence[int], n: int) -> bytes:
    out = bytearray(16 * n)
    for k, lane in enumerate(lanes):
        word = lane.to_bytes(4 * n, "big")
        for j in range(4):
            out[4 * k + j :: 16] = word[j::4]
    return bytes(out)


def _chunks(data: bytes) -> Iterator[bytes]:
    step = _LANE_CHUNK * BLOCK_SIZE
    for i in range(0, len(data), step):
        yield data[i : i + step]


def _crypt_lanes(rk: RoundKeys, data: bytes) -> bytes:
    out = []
    for chunk in _chunks(data):
        n = len(chunk) // BLOCK_SIZE
        x0, x1, x2, x3 = _to_lanes(chunk, n)
        out.append(_from_lanes(_lane_rounds(rk, x0, x1, x2, x3, n), n))
    return b"".join(out)


def _counter_words(start: int, n: int) -> list[bytes]:
    """The four words of counter blocks ``start .. start+n-1``, lane-packed.

    The counter is one 128-bit big-endian number that wraps to zero, as in
    OpenSSL; runs are split where the low word wraps.
    """
    columns: list[list[bytes]] = [[], [], [], []]
    while n:
        low = start & _M32
        run = min(n, (1 << 32) - low)
        high = struct.unpack(">3I", (start >> 32).to_bytes(12, "big"))
        for column, word in zip(columns[:3], high, strict=True):
            column.append(struct.pack(">I", word) * run)
        columns[3].append(struct.pack(f">{run}I", *range(low, low + run)))
        start = (start + run) & ((1 << 128) - 1)
        n -= run
    return [b"".join(c) for c in columns]


def _counter_lanes(rk: RoundKeys, start: int, n: int) -> bytes:
    out = []
    for first in range(0, n, _LANE_CHUNK):
        count = min(_LANE_CHUNK, n - first)
        words = _counter_words(start + first, count)
        x0, x1, x2, x3 = (int.from_bytes(w, "big") for w in words)
        out.append(_from_lanes(_lane_rounds(rk, x0, x1, x2, x3, count), count))
    return b"".join(out)


def _crypt_any(rk: RoundKeys, data: bytes) -> bytes:
    if len(data) < _LANE_MIN_BLOCKS * BLOCK_SIZE:
        return _crypt_blocks(rk, data)
    return _crypt_lanes(rk, data)


def _keystream(rk: RoundKeys, start: int, n: int) -> bytes:
    if n < _LANE_MIN_BLOCKS:
        return _counter_blocks(rk, start, n)
    return _counter_lanes(rk, start, n)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


# -- public API ---------------------------------------------------------------


def _encryption_keys(key: bytes) -> RoundKeys:
    return _grouped(_round_keys(_key_bytes(key, "key")))


def _decryption_keys(key: bytes) -> RoundKeys:
    return _grouped(_round_keys(_key_bytes(key, "key"))[::-1])


def _block_words(block: bytes) -> tuple[int, ...]:
    if len(block) != BLOCK_SIZE:
        raise CryptoError("an SM4 block is 16 bytes")
    return struct.unpack(">4I", block)


class SM4:
    """SM4 under one 16-byte key: the raw block permutation.

    Raises :class:`~xinfeng.sdk.errors.InvalidKey` if the key is not 16 bytes.
    """

    block_size = BLOCK_SIZE

    def __init__(self, key: bytes) -> None:
        rk = _round_keys(_key_bytes(key, "key"))
        self._encrypt = _grouped(rk)
        self._decrypt = _grouped(rk[::-1])

    def encrypt_block(self, block: bytes) -> bytes:
        """Encrypt one 16-byte block; raises ``CryptoError`` for other sizes."""
        return struct.pack(">4I", *_crypt_words(self._encrypt, *_block_words(block)))

    def decrypt_block(self, block: bytes) -> bytes:
        """Decrypt one 16-byte block; raises ``CryptoError`` for other sizes."""
        return struct.pack(">4I", *_crypt_words(self._decrypt, *_block_words(block)))


def sm4_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """Encrypt whole blocks with SM4-ECB, without padding.

    Raises ``InvalidKey`` for a key that is not 16 bytes and ``CryptoError``
    if ``data`` is not a whole number of 16-byte blocks.
    """
    rk, data = _encryption_keys(key), _data_bytes(data)
    if len(data) % BLOCK_SIZE:
        raise CryptoError("SM4-ECB data must be a whole number of 16-byte blocks")
    return _crypt_any(rk, data)


def sm4_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """Decrypt SM4-ECB ciphertext without padding.

    Raises ``InvalidKey`` for a key that is not 16 bytes and
    ``DecryptionFailed`` if ``data`` is not a whole number of blocks.
    """
    rk, data = _decryption_keys(key), _data_bytes(data)
    if len(data) % BLOCK_SIZE:
        raise DecryptionFailed()
    return _crypt_any(rk, data)


def _pkcs7_pad(data: bytes) -> bytes:
    pad = BLOCK_SIZE - len(data) % BLOCK_SIZE
    return data + bytes((pad,)) * pad


def _pkcs7_unpad(padded: bytes) -> bytes:
    # Every failure raises the same error after the same checks, so the
    # caller learns nothing about which byte was wrong. Python gives no
    # constant-time guarantee; xinfeng's envelopes verify a MAC before any
    # decryption, so this is not reachable with unauthenticated input there.
    pad = padded[-1]
    width = min(max(pad, 1), BLOCK_SIZE)
    same = hmac.compare_digest(padded[-width:], bytes((pad,)) * width)
    if not same or pad != width:
        raise DecryptionFailed()
    return padded[:-pad]


def _cbc_encrypt(rk: RoundKeys, iv: bytes, padded: bytes) -> bytes:
    prev = struct.unpack(">4I", iv)
    words = struct.unpack(f">{len(padded) // 4}I", padded)
    out: list[int] = []
    for i in range(0, len(words), 4):
        block = (w ^ p for w, p in zip(words[i : i + 4], prev, strict=True))
        prev = _crypt_words(rk, *block)
        out.extend(prev)
    return struct.pack(f">{len(out)}I", *out)


def sm4_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Encrypt with SM4-CBC and PKCS#7 padding (always adds 1..16 bytes).

    Raises ``InvalidKey`` if the key or the IV is not 16 bytes.
    """
    rk, iv = _encryption_keys(key), _key_bytes(iv, "IV")
    return _cbc_encrypt(rk, iv, _pkcs7_pad(_data_bytes(data)))


def sm4_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Decrypt SM4-CBC and remove PKCS#7 padding strictly.

    Raises ``InvalidKey`` if the key or the IV is not 16 bytes, and one
    uniform ``DecryptionFailed`` if the ciphertext is empty, not a whole
    number of blocks, or its padding is not exactly ``n`` bytes of value
    ``n`` with ``1 <= n <= 16``.
    """
    rk, iv = _decryption_keys(key), _key_bytes(iv, "IV")
    data = _data_bytes(data)
    if not data or len(data) % BLOCK_SIZE:
        raise DecryptionFailed()
    plain = _xor(_crypt_any(rk, data), iv + data[:-BLOCK_SIZE])
    return _pkcs7_unpad(plain)


def sm4_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Encrypt or decrypt with SM4-CTR (the same operation both ways).

    ``iv`` is the 16-byte initial counter block; the whole block is one
    128-bit big-endian counter, incremented per block and wrapping at 2**128,
    as OpenSSL's SM4-CTR does. Raises ``InvalidKey`` if the key or the IV is
    not 16 bytes.
    """
    rk, counter = _encryption_keys(key), _key_bytes(iv, "IV")
    data = _data_bytes(data)
    if not data:
        return b""
    n = -(-len(data) // BLOCK_SIZE)
    stream = _keystream(rk, int.from_bytes(counter, "big"), n)
    return _xor(data, stream[: len(data)])
