"""SM2 signatures and public key encryption (GB/T 32918-2016), pure Python.

Signatures are SM2-with-SM3: ``e = SM3(ZA || M)`` where ``ZA`` binds the
signer's user id (``DEFAULT_UID`` unless both sides agree on another one)
and public key. ``sign`` returns DER ``SEQUENCE {r, s}``; ``sign_raw`` the
64 bytes ``r || s`` used by JWS. Verification raises
:class:`~xinfeng.sdk.errors.InvalidSignature`; it never returns False.

Ciphertexts are ``C1 || C3 || C2`` (GB/T 32918.4-2016 order) with a fixed
width C1 that carries its ``0x04`` point-format byte: 65 + 32 + len(M)
bytes. ``c1c3c2_to_asn1`` / ``asn1_to_c1c3c2`` convert to and from the
GM/T 0009 DER form that OpenSSL reads and writes. Every decryption failure
raises the same :class:`~xinfeng.sdk.errors.DecryptionFailed`, and no
plaintext leaves ``decrypt`` unless C3 matched (compared in constant time).

Speed: Jacobian coordinates; ``[k]G`` uses a signed fixed-window table of
G (33 rows of 128 affine points, ~0.8 MB, built once on first use in
~40 ms); other points use width-5 wNAF; verification interleaves both
scalars (Shamir's trick, shared doublings). A public key object used more
than ``_COMB_AFTER_USES`` times gets a table like G's, so verifying with a
long-lived key costs about what signing does. The table belongs to the
object: a cache of key objects made from untrusted bytes must be bounded.

Side channels: Python integers are not constant time, and which table
entry is read depends on the secret scalar. The private key ``d`` and the
nonce ``k`` can therefore leak through timing or cache behaviour to an
attacker who can measure many operations precisely. For the component's
short-lived keys the exposure is brief. The provider server therefore signs
with its long-lived key through OpenSSL (``xinfeng.server.native_sm2``) and
uses this module for that key only when OpenSSL's SM2 is unavailable.

Names that start with an underscore (``_Curve``, ``_sign_with_k``,
``_encrypt_with_k``, ``_private_key``, ``_public_key``) are hazmat for
known-answer tests: fixed nonces and the GB/T 32918 test curve.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Callable, Sequence

from . import asn1
from .errors import DecryptionFailed, InvalidKey, InvalidSignature
from .sm3 import sm3_hash, sm3_kdf

__all__ = [
    "DEFAULT_UID",
    "SM2PrivateKey",
    "SM2PublicKey",
    "asn1_to_c1c3c2",
    "c1c3c2_to_asn1",
]

DEFAULT_UID = b"1234567812345678"

OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_SM2 = "1.2.156.10197.1.301"

_Jac = tuple[int, int, int]
_Aff = tuple[int, int]
_Double = Callable[[int, int, int, int, int], _Jac]
_Table = list[list[_Aff]]

_INF: _Jac = (1, 1, 0)
_COMB_WIDTH = 8
_WNAF_WIDTH = 5
_G_WNAF_WIDTH = 7
_COMB_AFTER_USES = 32
_ZA_CACHE_SIZE = 8
_C3_SIZE = 32
# OpenSSL 3 labels SEC1 SM2 keys "SM2 PRIVATE KEY"; other tools say "EC".
_SEC1_LABELS = ("EC PRIVATE KEY", "SM2 PRIVATE KEY")


# --- field and group arithmetic ---------------------------------------------


def _double_a3(x: int, y: int, z: int, p: int, a: int) -> _Jac:
    """2(x:y:z) on a curve with a = -3 (the SM2 curve): 8 multiplications."""
    zz = z * z % p
    m = 3 * (x - zz) * (x + zz) % p
    yy = y * y % p
    s = 4 * x * yy % p
    x3 = (m * m - 2 * s) % p
    return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y * z % p


def _double_any(x: int, y: int, z: int, p: int, a: int) -> _Jac:
    """2(x:y:z) for any a (the GB/T 32918 test curve)."""
    zz = z * z % p
    m = (3 * x * x + a * zz * zz) % p
    yy = y * y % p
    s = 4 * x * yy % p
    x3 = (m * m - 2 * s) % p
    return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y * z % p


class _Curve:
    """y^2 = x^3 + ax + b over GF(p) with a base point G of prime order n.

    Cofactor 1 only: every finite point on the curve then has order n, so
    "on the curve and not infinity" is the whole public key validation.
    """

    __slots__ = (
        "p",
        "a",
        "b",
        "n",
        "gx",
        "gy",
        "size",
        "double",
        "_prefix",
        "_g_comb",
        "_g_odd",
    )

    def __init__(self, p: int, a: int, b: int, gx: int, gy: int, n: int) -> None:
        self.p, self.a, self.b, self.n, self.gx, self.gy = p, a, b, n, gx, gy
        self.size = (p.bit_length() + 7) // 8
        self.double: _Double = _double_a3 if a == p - 3 else _double_any
        self._prefix = b"".join(self.encode(v) for v in (a, b, gx, gy))
        self._g_comb: _Table | None = None
        self._g_odd: list[_Aff] | None = None
        if not self.on_curve(gx, gy):
            raise ValueError("G is not on the curve")

    def encode(self, value: int) -> bytes:
        """Return a field element or scalar as fixed-width big-endian bytes."""
        return value.to_bytes(self.size, "big")

    def on_curve(self, x: int, y: int) -> bool:
        """Return True if (x, y) is a finite point of this curve."""
        p = self.p
        if not (0 <= x < p and 0 <= y < p):
            return False
        return (y * y - (x * x + self.a) * x - self.b) % p == 0

    def za_prefix(self) -> bytes:
        """Return a || b || xG || yG, the curve part of ZA."""
        return self._prefix

    def g_comb(self) -> _Table:
        """Return the fixed-window table of G, building it on first use."""
        if self._g_comb is None:
            self._g_comb = _comb_table(self, self.gx, self.gy)
        return self._g_comb

    def g_odd(self) -> list[_Aff]:
        """Return G, 3G, 5G, ... for the interleaved verification."""
        if self._g_odd is None:
            self._g_odd = _odd_multiples(self, self.gx, self.gy, _G_WNAF_WIDTH)
        return self._g_odd


def _add_affine(c: _Curve, x1: int, y1: int, z1: int, x2: int, y2: int) -> _Jac:
    """(x1:y1:z1) + (x2, y2), including the doubling and inverse cases."""
    if not z1:
        return x2, y2, 1
    p = c.p
    zz = z1 * z1 % p
    h = (x2 * zz - x1) % p
    r = (y2 * zz * z1 - y1) % p
    if not h:
        return c.double(x2, y2, 1, p, c.a) if not r else _INF
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - y1 * hhh) % p, z1 * h % p


def _to_affine(c: _Curve, point: _Jac) -> _Aff | None:
    """Return the affine form of ``point``, or None for infinity."""
    x, y, z = point
    if not z:
        return None
    p = c.p
    zi = pow(z, -1, p)
    zi2 = zi * zi % p
    return x * zi2 % p, y * zi2 * zi % p


def _batch_to_affine(c: _Curve, points: Sequence[_Jac]) -> list[_Aff]:
    """Affine forms of finite ``points`` with one inversion (Montgomery)."""
    p = c.p
    prefix = []
    acc = 1
    for _, _, z in points:
        prefix.append(acc)
        acc = acc * z % p
    inv = pow(acc, -1, p)
    out: list[_Aff] = []
    for (x, y, z), before in zip(reversed(points), reversed(prefix), strict=True):
        zi = inv * before % p
        inv = inv * z % p
        zi2 = zi * zi % p
        out.append((x * zi2 % p, y * zi2 * zi % p))
    out.reverse()
    return out


def _add_digit(c: _Curve, acc: _Jac, row: list[_Aff], digit: int) -> _Jac:
    """acc + row[digit - 1], or acc - row[-digit - 1] for a negative digit."""
    if digit > 0:
        x, y = row[digit - 1]
        return _add_affine(c, *acc, x, y)
    x, y = row[-digit - 1]
    return _add_affine(c, *acc, x, c.p - y)


# --- scalar multiplication --------------------------------------------------


def _comb_rows(c: _Curve) -> int:
    return (c.n.bit_length() + 1) // _COMB_WIDTH + 1


def _comb_table(c: _Curve, x: int, y: int) -> _Table:
    """Rows i = 0.. of [1..2^(w-1)] * 2^(w*i) * P, all affine."""
    half = 1 << (_COMB_WIDTH - 1)
    rows: _Table = []
    for _ in range(_comb_rows(c)):
        column: list[_Jac] = [(x, y, 1)]
        for _ in range(half - 1):
            column.append(_add_affine(c, *column[-1], x, y))
        row = _batch_to_affine(c, column)
        rows.append(row)
        top = _to_affine(c, c.double(*row[-1], 1, c.p, c.a))
        assert top is not None  # 2^(w*i) is not a multiple of the prime n
        x, y = top
    return rows


def _signed_windows(k: int, count: int) -> list[int]:
    """Digits of k in base 256, each in [-128, 128), least first.

    Reads k a byte at a time, so ``_COMB_WIDTH`` must stay 8.
    """
    full = 1 << _COMB_WIDTH
    half = full >> 1
    digits = []
    carry = 0
    for byte in k.to_bytes(count, "little"):
        d = byte + carry
        carry = d >= half
        digits.append(d - full if carry else d)
    if carry:
        raise ValueError("scalar too large for the table")
    return digits


def _comb_add(c: _Curve, acc: _Jac, table: _Table, k: int) -> _Jac:
    """acc + [k]P for the table of P; no doublings at all."""
    for row, digit in zip(table, _signed_windows(k, len(table)), strict=True):
        if digit:
            acc = _add_digit(c, acc, row, digit)
    return acc


def _odd_multiples(c: _Curve, x: int, y: int, width: int) -> list[_Aff]:
    """Return P, 3P, 5P, ..., (2^(width-1) - 1)P, affine."""
    two = _to_affine(c, c.double(x, y, 1, c.p, c.a))
    assert two is not None  # n is odd, so 2P is finite
    points: list[_Jac] = [(x, y, 1)]
    for _ in range((1 << (width - 2)) - 1):
        points.append(_add_affine(c, *points[-1], *two))
    return _batch_to_affine(c, points)


def _wnaf(k: int, width: int) -> list[int]:
    """Width-w non-adjacent form of k >= 0, least significant digit first."""
    full = 1 << width
    half = full >> 1
    digits: list[int] = []
    while k:
        zeros = (k & -k).bit_length() - 1
        digits.extend([0] * zeros)
        k >>= zeros
        d = k & (full - 1)
        if d >= half:
            d -= full
        digits.append(d)
        k = (k - d) >> 1
    return digits


def _wnaf_mul(c: _Curve, odd: list[_Aff], k: int) -> _Jac:
    """[k]P from P's odd multiples, ``_WNAF_WIDTH`` wide."""
    return _interleaved(c, [(odd, _wnaf(k, _WNAF_WIDTH))])


def _interleaved(c: _Curve, terms: list[tuple[list[_Aff], list[int]]]) -> _Jac:
    """Sum of wNAF multiples with shared doublings (Shamir's trick)."""
    p, a, double = c.p, c.a, c.double
    x, y, z = _INF
    for adds in reversed(_addition_plan(c, terms)):
        if z:
            x, y, z = double(x, y, z, p, a)
        for ax, ay in adds:
            x, y, z = _add_affine(c, x, y, z, ax, ay)
    return x, y, z


def _addition_plan(
    c: _Curve, terms: list[tuple[list[_Aff], list[int]]]
) -> list[list[_Aff]]:
    """For each bit position, the signed odd multiples to add there."""
    plan: list[list[_Aff]] = [[] for _ in range(max(len(d) for _, d in terms))]
    for odd, digits in terms:
        for i, digit in enumerate(digits):
            if digit > 0:
                plan[i].append(odd[digit >> 1])
            elif digit < 0:
                x, y = odd[-digit >> 1]
                plan[i].append((x, c.p - y))
    return plan


def _base_mul(c: _Curve, k: int) -> _Jac:
    """[k]G with the fixed-window table of G."""
    return _comb_add(c, _INF, c.g_comb(), k)


# --- keys -------------------------------------------------------------------


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError("expected bytes")


class SM2PublicKey:
    """An SM2 public key: a finite point of the curve (cofactor 1)."""

    __slots__ = ("_curve", "_x", "_y", "_za", "_odd", "_comb", "_uses")

    def __init__(self, curve: _Curve, x: int, y: int) -> None:
        """Do not call directly; use :meth:`from_bytes` or :meth:`from_pem`."""
        if not curve.on_curve(x, y):
            raise InvalidKey("the point is not on the curve")
        self._curve = curve
        self._x, self._y = x, y
        self._za: dict[bytes, bytes] = {}
        self._odd: list[_Aff] | None = None
        self._comb: _Table | None = None
        self._uses = 0

    @classmethod
    def from_bytes(cls, data: bytes) -> SM2PublicKey:
        """Load ``04 || x || y`` (65 bytes). Raises InvalidKey."""
        return _public_key_from_bytes(_SM2P256, _as_bytes(data))

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PublicKey:
        """Load a SubjectPublicKeyInfo PEM (``PUBLIC KEY``). Raises InvalidKey."""
        return _parse_spki(_pem_decode(pem, "PUBLIC KEY"))

    def to_bytes(self) -> bytes:
        """Return ``04 || x || y``."""
        c = self._curve
        return b"\x04" + c.encode(self._x) + c.encode(self._y)

    def to_pem(self) -> bytes:
        """Return the SubjectPublicKeyInfo PEM, as ``openssl pkey -pubout``."""
        _require_sm2p256(self._curve)
        return _pem_encode(_spki_der(self.to_bytes()), "PUBLIC KEY")

    def verify(
        self, signature: bytes, message: bytes, uid: bytes = DEFAULT_UID
    ) -> None:
        """Check a DER signature over ``message``. Raises InvalidSignature."""
        r, s = _parse_der_signature(_as_bytes(signature))
        self._verify_rs(r, s, message, uid)

    def verify_raw(
        self, signature: bytes, message: bytes, uid: bytes = DEFAULT_UID
    ) -> None:
        """Check a 64-byte ``r || s`` signature. Raises InvalidSignature."""
        raw = _as_bytes(signature)
        size = self._curve.size
        if len(raw) != 2 * size:
            raise InvalidSignature()
        r = int.from_bytes(raw[:size], "big")
        self._verify_rs(r, int.from_bytes(raw[size:], "big"), message, uid)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt a non-empty ``plaintext`` to ``C1 || C3 || C2``."""
        data = _as_bytes(plaintext)
        if not data:
            raise ValueError("SM2 cannot encrypt an empty message")
        n = self._curve.n
        while True:
            out = _encrypt_with_k(self, data, secrets.randbelow(n - 1) + 1)
            if out is not None:
                return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SM2PublicKey):
            return NotImplemented
        return self._curve is other._curve and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"SM2PublicKey({self.to_bytes().hex()})"

    def _za_for(self, uid: bytes) -> bytes:
        """ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA)."""
        uid = _as_bytes(uid)
        za = self._za.get(uid)
        if za is None:
            za = _compute_za(self._curve, uid, self._x, self._y)
            if len(self._za) >= _ZA_CACHE_SIZE:
                self._za.clear()
            self._za[uid] = za
        return za

    def _digest(self, message: bytes, uid: bytes) -> int:
        """e = SM3(ZA || M) as an integer."""
        za = self._za_for(uid)
        return int.from_bytes(sm3_hash(za + _as_bytes(message)), "big")

    def _verify_rs(self, r: int, s: int, message: bytes, uid: bytes) -> None:
        n = self._curve.n
        if not (0 < r < n and 0 < s < n):
            raise InvalidSignature()
        t = (r + s) % n
        if not t:
            raise InvalidSignature()
        e = self._digest(message, uid)
        point = _to_affine(self._curve, self._mul_add_base(s, t))
        if point is None or (e + point[0]) % n != r:
            raise InvalidSignature()

    def _mul(self, k: int) -> _Jac:
        """[k]Q for this key Q."""
        comb = self._comb_if_hot()
        if comb is not None:
            return _comb_add(self._curve, _INF, comb, k)
        return _wnaf_mul(self._curve, self._odd_multiples(), k)

    def _mul_add_base(self, s: int, t: int) -> _Jac:
        """[s]G + [t]Q for this key Q."""
        c = self._curve
        comb = self._comb_if_hot()
        if comb is not None:
            return _comb_add(c, _base_mul(c, s), comb, t)
        g_terms = (c.g_odd(), _wnaf(s, _G_WNAF_WIDTH))
        q_terms = (self._odd_multiples(), _wnaf(t, _WNAF_WIDTH))
        return _interleaved(c, [g_terms, q_terms])

    def _odd_multiples(self) -> list[_Aff]:
        if self._odd is None:
            self._odd = _odd_multiples(self._curve, self._x, self._y, _WNAF_WIDTH)
        return self._odd

    def _comb_if_hot(self) -> _Table | None:
        """Return this key's table once the key has proved to be long-lived."""
        if self._comb is None:
            self._uses += 1
            if self._uses > _COMB_AFTER_USES:
                self._comb = _comb_table(self._curve, self._x, self._y)
        return self._comb


class SM2PrivateKey:
    """An SM2 private key d with 1 <= d <= n - 2."""

    __slots__ = ("_curve", "_d", "_inv_1d", "_public")

    def __init__(self, curve: _Curve, d: int) -> None:
        """Do not call directly; use :meth:`generate`, :meth:`from_bytes`."""
        if not 1 <= d <= curve.n - 2:
            raise InvalidKey("the private key is out of range")
        self._curve = curve
        self._d = d
        self._inv_1d = pow(1 + d, -1, curve.n)
        self._public: SM2PublicKey | None = None

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """Return a new key drawn with :mod:`secrets`."""
        return cls(_SM2P256, secrets.randbelow(_SM2P256.n - 2) + 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> SM2PrivateKey:
        """Load the 32-byte big-endian d. Raises InvalidKey."""
        raw = _as_bytes(data)
        if len(raw) != _SM2P256.size:
            raise InvalidKey("an SM2 private key is 32 bytes")
        return cls(_SM2P256, int.from_bytes(raw, "big"))

    @classmethod
    def from_pem(cls, pem: bytes) -> SM2PrivateKey:
        """Load PKCS#8 ``PRIVATE KEY`` or SEC1 ``EC``/``SM2 PRIVATE KEY``.

        The key must be on the SM2 curve; an embedded public key must match.
        Encrypted PEM is not supported. Raises InvalidKey.
        """
        return _parse_private_pem(pem)

    def to_bytes(self) -> bytes:
        """Return the 32-byte big-endian d."""
        return self._curve.encode(self._d)

    def to_pem(self) -> bytes:
        """Return unencrypted PKCS#8 as ``openssl genpkey -algorithm SM2``."""
        _require_sm2p256(self._curve)
        return _pem_encode(_pkcs8_der(self), "PRIVATE KEY")

    def public_key(self) -> SM2PublicKey:
        """Return the public key [d]G."""
        if self._public is None:
            c = self._curve
            point = _to_affine(c, _base_mul(c, self._d))
            assert point is not None  # 1 <= d < n
            self._public = SM2PublicKey(c, *point)
        return self._public

    def sign(self, message: bytes, uid: bytes = DEFAULT_UID) -> bytes:
        """Return the DER ``SEQUENCE {r, s}`` signature of ``message``."""
        r, s = self._sign_rs(message, uid)
        return asn1.encode_sequence(asn1.encode_integer(r), asn1.encode_integer(s))

    def sign_raw(self, message: bytes, uid: bytes = DEFAULT_UID) -> bytes:
        """Return the signature as ``r || s``, 32 bytes each (JWS form)."""
        r, s = self._sign_rs(message, uid)
        return self._curve.encode(r) + self._curve.encode(s)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt ``C1 || C3 || C2``. Raises DecryptionFailed, whatever is wrong."""
        c = self._curve
        x1, y1, c3, c2 = _split_ciphertext(c, _as_bytes(ciphertext))
        if not c.on_curve(x1, y1):
            raise DecryptionFailed()
        odd = _odd_multiples(c, x1, y1, _WNAF_WIDTH)
        shared = _to_affine(c, _wnaf_mul(c, odd, self._d))
        if shared is None:
            raise DecryptionFailed()
        plaintext = _xor_kdf(c, shared, c2)
        if plaintext is None:
            raise DecryptionFailed()
        x2, y2 = c.encode(shared[0]), c.encode(shared[1])
        if not hmac.compare_digest(sm3_hash(x2 + plaintext + y2), c3):
            raise DecryptionFailed()
        return plaintext

    def __repr__(self) -> str:
        return "SM2PrivateKey(<secret>)"

    def _sign_rs(self, message: bytes, uid: bytes) -> tuple[int, int]:
        e = self.public_key()._digest(message, uid)
        n = self._curve.n
        while True:
            rs = self._sign_digest(e, secrets.randbelow(n - 1) + 1)
            if rs is not None:
                return rs

    def _sign_digest(self, e: int, k: int) -> tuple[int, int] | None:
        """(r, s) for digest e and nonce k, or None when k must be redrawn."""
        c = self._curve
        n = c.n
        point = _to_affine(c, _base_mul(c, k))
        assert point is not None  # 1 <= k < n
        r = (e + point[0]) % n
        if not r or r + k == n:
            return None
        s = self._inv_1d * (k - r * self._d) % n
        return (r, s) if s else None


# --- SM2 building blocks ------------------------------------------------------


def _compute_za(c: _Curve, uid: bytes, x: int, y: int) -> bytes:
    entl = len(uid) * 8
    if entl > 0xFFFF:
        raise ValueError("the user id is longer than 8191 bytes")
    data = entl.to_bytes(2, "big") + uid + c.za_prefix() + c.encode(x) + c.encode(y)
    return sm3_hash(data)


def _xor_kdf(c: _Curve, shared: _Aff, data: bytes) -> bytes | None:
    """data XOR KDF(x2 || y2, len(data)), or None if the KDF output is zero."""
    t = sm3_kdf(c.encode(shared[0]) + c.encode(shared[1]), len(data))
    mask = int.from_bytes(t, "big")
    if not mask:
        return None
    return (int.from_bytes(data, "big") ^ mask).to_bytes(len(data), "big")


def _split_ciphertext(c: _Curve, data: bytes) -> tuple[int, int, bytes, bytes]:
    """Fields of ``04 || x1 || y1 || C3 || C2``; raises DecryptionFailed."""
    size = c.size
    head = 1 + 2 * size + _C3_SIZE
    if len(data) <= head or data[0] != 0x04:
        raise DecryptionFailed()
    x1 = int.from_bytes(data[1 : 1 + size], "big")
    y1 = int.from_bytes(data[1 + size : 1 + 2 * size], "big")
    return x1, y1, data[1 + 2 * size : head], data[head:]


def _encrypt_with_k(public: SM2PublicKey, plaintext: bytes, k: int) -> bytes | None:
    """Hazmat: encrypt with the nonce k; None if this k must be redrawn."""
    c = public._curve
    if not 1 <= k < c.n or not plaintext:
        raise ValueError("nonce out of range or empty plaintext")
    c1 = _to_affine(c, _base_mul(c, k))
    shared = _to_affine(c, public._mul(k))
    assert c1 is not None and shared is not None  # prime order, 1 <= k < n
    c2 = _xor_kdf(c, shared, plaintext)
    if c2 is None:
        return None
    x2, y2 = c.encode(shared[0]), c.encode(shared[1])
    c3 = sm3_hash(x2 + plaintext + y2)
    return b"\x04" + c.encode(c1[0]) + c.encode(c1[1]) + c3 + c2


def _sign_with_k(
    key: SM2PrivateKey, message: bytes, k: int, uid: bytes = DEFAULT_UID
) -> bytes:
    """Hazmat: ``r || s`` with the nonce k. Raises ValueError for a bad k."""
    c = key._curve
    if not 1 <= k < c.n:
        raise ValueError("nonce out of range")
    rs = key._sign_digest(key.public_key()._digest(message, uid), k)
    if rs is None:
        raise ValueError("this nonce gives r = 0, r + k = n or s = 0")
    return c.encode(rs[0]) + c.encode(rs[1])


def _private_key(d: int, curve: _Curve | None = None) -> SM2PrivateKey:
    """Hazmat: the private key d on ``curve`` (default: the SM2 curve)."""
    return SM2PrivateKey(curve or _SM2P256, d)


def _public_key(x: int, y: int, curve: _Curve | None = None) -> SM2PublicKey:
    """Hazmat: the public key (x, y) on ``curve`` (default: the SM2 curve)."""
    return SM2PublicKey(curve or _SM2P256, x, y)


def _public_key_from_bytes(c: _Curve, data: bytes) -> SM2PublicKey:
    if len(data) != 1 + 2 * c.size or data[0] != 0x04:
        raise InvalidKey("an SM2 public key is 04 || x || y")
    x = int.from_bytes(data[1 : 1 + c.size], "big")
    return SM2PublicKey(c, x, int.from_bytes(data[1 + c.size :], "big"))


def _require_sm2p256(c: _Curve) -> None:
    if c is not _SM2P256:
        raise ValueError("only keys on the SM2 curve have a PEM form")


# --- DER and PEM --------------------------------------------------------------


def _parse_der_signature(der: bytes) -> tuple[int, int]:
    try:
        seq = asn1.read_sequence(der)
        r, s = seq.read_integer(), seq.read_integer()
        seq.finish()
    except asn1.DERError:
        raise InvalidSignature() from None
    return r, s


def _algorithm_der() -> bytes:
    return asn1.encode_sequence(
        asn1.encode_oid(OID_EC_PUBLIC_KEY), asn1.encode_oid(OID_SM2)
    )


def _spki_der(point: bytes) -> bytes:
    return asn1.encode_sequence(_algorithm_der(), asn1.encode_bit_string(point))


def _ec_private_key_der(key: SM2PrivateKey, named_curve: bool) -> bytes:
    """SEC1 ECPrivateKey; the curve OID only where no PKCS#8 wrapper names it."""
    items = [asn1.encode_integer(1), asn1.encode_octet_string(key.to_bytes())]
    if named_curve:
        items.append(asn1.encode_explicit(0, asn1.encode_oid(OID_SM2)))
    point = asn1.encode_bit_string(key.public_key().to_bytes())
    items.append(asn1.encode_explicit(1, point))
    return asn1.encode_sequence(*items)


def _pkcs8_der(key: SM2PrivateKey) -> bytes:
    inner = _ec_private_key_der(key, named_curve=False)
    return asn1.encode_sequence(
        asn1.encode_integer(0), _algorithm_der(), asn1.encode_octet_string(inner)
    )


def _read_algorithm(reader: asn1.DERReader) -> None:
    algorithm = reader.read_sequence()
    if algorithm.read_oid() != OID_EC_PUBLIC_KEY or algorithm.read_oid() != OID_SM2:
        raise asn1.DERError("not an SM2 key")
    algorithm.finish()


def _parse_spki(der: bytes) -> SM2PublicKey:
    try:
        spki = asn1.read_sequence(der)
        _read_algorithm(spki)
        point = spki.read_bit_string()
        spki.finish()
    except asn1.DERError:
        raise InvalidKey("not an SM2 SubjectPublicKeyInfo") from None
    return _public_key_from_bytes(_SM2P256, point)


def _parse_ec_private_key(der: bytes, require_curve: bool) -> SM2PrivateKey:
    """Parse SEC1 ECPrivateKey; its [0] curve must be SM2 when present."""
    seq = asn1.read_sequence(der)
    if seq.read_integer() != 1:
        raise asn1.DERError("unknown ECPrivateKey version")
    secret = seq.read_octet_string()
    params = seq.read_explicit(0)
    if params is not None:
        if params.read_oid() != OID_SM2:
            raise asn1.DERError("not the SM2 curve")
        params.finish()
    elif require_curve:
        raise asn1.DERError("curve not named")
    point = seq.read_explicit(1)
    seq.finish()
    if len(secret) != _SM2P256.size:
        raise asn1.DERError("private key is not 32 bytes")
    key = SM2PrivateKey(_SM2P256, int.from_bytes(secret, "big"))
    if point is not None:
        _check_embedded_public(key, point)
    return key


def _check_embedded_public(key: SM2PrivateKey, reader: asn1.DERReader) -> None:
    embedded = reader.read_bit_string()
    reader.finish()
    if not hmac.compare_digest(embedded, key.public_key().to_bytes()):
        raise InvalidKey("the public key does not belong to the private key")


def _parse_pkcs8(der: bytes) -> SM2PrivateKey:
    info = asn1.read_sequence(der)
    if info.read_integer() != 0:
        raise asn1.DERError("unknown PKCS#8 version")
    _read_algorithm(info)
    inner = info.read_octet_string()
    info.finish()
    return _parse_ec_private_key(inner, require_curve=False)


def _parse_private_pem(pem: bytes) -> SM2PrivateKey:
    text = _pem_text(pem)
    try:
        if "-----BEGIN PRIVATE KEY-----" in text:
            return _parse_pkcs8(_pem_decode(pem, "PRIVATE KEY"))
        for label in _SEC1_LABELS:
            if f"-----BEGIN {label}-----" in text:
                der = _pem_decode(pem, label)
                return _parse_ec_private_key(der, require_curve=True)
    except asn1.DERError:
        raise InvalidKey("not an SM2 private key") from None
    raise InvalidKey("no unencrypted private key PEM block")


def _pem_text(pem: bytes) -> str:
    try:
        return _as_bytes(pem).decode("ascii")
    except UnicodeDecodeError:
        raise InvalidKey("PEM is not ASCII") from None


def _pem_decode(pem: bytes, label: str) -> bytes:
    """Return the DER inside the first ``label`` block. Raises InvalidKey."""
    text = _pem_text(pem)
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise InvalidKey(f"no {label} PEM block")
    body = "".join(text[start + len(begin) : stop].split())
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise InvalidKey("PEM body is not base64") from None


def _pem_encode(der: bytes, label: str) -> bytes:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])
    return (text + "\n").encode("ascii")


# --- GM/T 0009 ciphertext form ------------------------------------------------


def c1c3c2_to_asn1(ciphertext: bytes) -> bytes:
    """Return GM/T 0009 ``SEQUENCE {x, y, hash, ciphertext}`` of C1C3C2.

    Raises DecryptionFailed if ``ciphertext`` is not ``04 || x || y || C3 ||
    C2`` with a non-empty C2. The point itself is checked by ``decrypt``.
    """
    x1, y1, c3, c2 = _split_ciphertext(_SM2P256, _as_bytes(ciphertext))
    return asn1.encode_sequence(
        asn1.encode_integer(x1),
        asn1.encode_integer(y1),
        asn1.encode_octet_string(c3),
        asn1.encode_octet_string(c2),
    )


def asn1_to_c1c3c2(der: bytes) -> bytes:
    """Return C1C3C2 from GM/T 0009 DER (as ``openssl pkeyutl -encrypt``).

    Raises DecryptionFailed for anything but canonical DER with coordinates
    in [0, p), a 32-byte hash and a non-empty ciphertext.
    """
    c = _SM2P256
    try:
        seq = asn1.read_sequence(_as_bytes(der))
        x1, y1 = seq.read_integer(), seq.read_integer()
        c3, c2 = seq.read_octet_string(), seq.read_octet_string()
        seq.finish()
    except asn1.DERError:
        raise DecryptionFailed() from None
    if not (0 <= x1 < c.p and 0 <= y1 < c.p) or len(c3) != _C3_SIZE or not c2:
        raise DecryptionFailed()
    return b"\x04" + c.encode(x1) + c.encode(y1) + c3 + c2


_SM2P256 = _Curve(
    p=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF,
    a=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC,
    b=0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93,
    gx=0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    gy=0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
    n=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123,
)
