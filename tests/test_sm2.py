"""SM2 against published vectors, the OpenSSL 3 CLI, PyPI gmssl and bad inputs.

Expected values come from GB/T 32918 examples (tests/vectors/sm2_*.json),
from OpenSSL, from gmssl, or from the textbook affine arithmetic at the end
of this file, never from the code under test.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xinfeng.sdk import asn1, sm2
from xinfeng.sdk.errors import DecryptionFailed, InvalidKey, InvalidSignature
from xinfeng.sdk.sm2 import (
    DEFAULT_UID,
    SM2PrivateKey,
    SM2PublicKey,
    asn1_to_c1c3c2,
    c1c3c2_to_asn1,
)

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> Any:
    return json.loads((VECTORS / f"sm2_{name}.json").read_text("utf-8"))


CURVES = load_vectors("curves")["curves"]
SIGN_VECTORS = load_vectors("sign")["vectors"]
ENCRYPT_VECTORS = load_vectors("encrypt")["vectors"]
CASES = load_vectors("cases")

REC = {k: int(v, 16) for k, v in CURVES["sm2p256v1"].items()}
N, P = REC["n"], REC["p"]
CASE_KEY = SM2PrivateKey.from_bytes(bytes.fromhex(CASES["private_hex"]))
CASE_PLAINTEXT = CASES["plaintext_utf8"].encode()
HYPOTHESIS = settings(max_examples=25, deadline=None)


def case_input(name: str) -> bytes:
    return bytes.fromhex(CASES["inputs"][name]["hex"])


def curve_for(name: str) -> sm2._Curve:
    params = {k: int(v, 16) for k, v in CURVES[name].items()}
    return sm2._SM2P256 if name == "sm2p256v1" else sm2._Curve(**params)


def vector_ids(vector: dict[str, str]) -> str:
    return vector["name"]


def der_signature(*integers: bytes) -> bytes:
    """SEQUENCE { INTEGER, ... } from the raw content octets given, written out."""
    body = b"".join(bytes([2, len(i)]) + i for i in integers)
    return bytes([0x30, len(body)]) + body


def encode_point(x: int, y: int) -> bytes:
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def standard_signature() -> tuple[SM2PublicKey, int, int]:
    v = SIGN_VECTORS[0]
    public = SM2PublicKey.from_bytes(
        bytes.fromhex("04" + v["public_x"] + v["public_y"])
    )
    return public, int(v["r"], 16), int(v["s"], 16)


STD_MESSAGE = b"message digest"


# --- published vectors -------------------------------------------------------


def test_sm2_curve_constants_match_standard() -> None:
    c = sm2._SM2P256
    assert (c.p, c.a, c.b, c.gx, c.gy, c.n) == (
        REC["p"], REC["a"], REC["b"], REC["gx"], REC["gy"], REC["n"],
    )  # fmt: skip


@pytest.mark.parametrize("v", SIGN_VECTORS + ENCRYPT_VECTORS, ids=vector_ids)
def test_sm2_public_key_of_published_d(v: dict[str, str]) -> None:
    key = sm2._private_key(int(v["d"], 16), curve_for(v["curve"]))
    expected = bytes.fromhex("04" + v["public_x"] + v["public_y"])
    assert key.public_key().to_bytes() == expected


@pytest.mark.parametrize("v", SIGN_VECTORS, ids=vector_ids)
def test_sm2_za_and_digest_match_standard(v: dict[str, str]) -> None:
    c = curve_for(v["curve"])
    public = sm2._public_key(int(v["public_x"], 16), int(v["public_y"], 16), c)
    uid = v["uid_utf8"].encode()
    assert public._za_for(uid) == bytes.fromhex(v["za"])
    assert public._digest(v["message_utf8"].encode(), uid) == int(v["e"], 16)


@pytest.mark.parametrize("v", SIGN_VECTORS, ids=vector_ids)
def test_sm2_sign_with_published_k_matches_standard(v: dict[str, str]) -> None:
    key = sm2._private_key(int(v["d"], 16), curve_for(v["curve"]))
    message, uid = v["message_utf8"].encode(), v["uid_utf8"].encode()
    raw = sm2._sign_with_k(key, message, int(v["k"], 16), uid)
    assert raw.hex().upper() == v["r"] + v["s"]


@pytest.mark.parametrize("v", SIGN_VECTORS, ids=vector_ids)
def test_sm2_verify_accepts_published_signature(v: dict[str, str]) -> None:
    c = curve_for(v["curve"])
    public = sm2._public_key(int(v["public_x"], 16), int(v["public_y"], 16), c)
    message, uid = v["message_utf8"].encode(), v["uid_utf8"].encode()
    public.verify_raw(bytes.fromhex(v["r"] + v["s"]), message, uid)
    with pytest.raises(InvalidSignature):
        public.verify_raw(bytes.fromhex(v["r"] + v["s"]), message + b".", uid)


@pytest.mark.parametrize("v", ENCRYPT_VECTORS, ids=vector_ids)
def test_sm2_encrypt_with_published_k_matches_standard(v: dict[str, str]) -> None:
    c = curve_for(v["curve"])
    public = sm2._public_key(int(v["public_x"], 16), int(v["public_y"], 16), c)
    out = sm2._encrypt_with_k(public, v["message_utf8"].encode(), int(v["k"], 16))
    expected = "04" + v["c1_x"] + v["c1_y"] + v["c3"] + v["c2"]
    assert out is not None and out.hex().upper() == expected


@pytest.mark.parametrize("v", ENCRYPT_VECTORS, ids=vector_ids)
def test_sm2_decrypt_published_ciphertext(v: dict[str, str]) -> None:
    key = sm2._private_key(int(v["d"], 16), curve_for(v["curve"]))
    blob = bytes.fromhex("04" + v["c1_x"] + v["c1_y"] + v["c3"] + v["c2"])
    assert key.decrypt(blob) == v["message_utf8"].encode()


def test_sm2_c1c3c2_to_asn1_matches_gmt0009_vector() -> None:
    v = ENCRYPT_VECTORS[0]
    blob = bytes.fromhex("04" + v["c1_x"] + v["c1_y"] + v["c3"] + v["c2"])
    assert c1c3c2_to_asn1(blob).hex().upper() == v["gmt0009_der"]
    assert asn1_to_c1c3c2(bytes.fromhex(v["gmt0009_der"])) == blob


def gmt0009(x: int, y: int, c3: bytes, c2: bytes) -> bytes:
    return asn1.encode_sequence(
        asn1.encode_integer(x),
        asn1.encode_integer(y),
        asn1.encode_octet_string(c3),
        asn1.encode_octet_string(c2),
    )


def test_sm2_asn1_to_c1c3c2_pads_short_coordinates() -> None:
    # DER integers are minimal, so small coordinates arrive shorter than 32 bytes.
    der = gmt0009(5, 7, b"h" * 32, b"c")
    assert asn1_to_c1c3c2(der) == encode_point(5, 7) + b"h" * 32 + b"c"


NON_MINIMAL_X = bytes.fromhex("302a02020005020107 0420".replace(" ", ""))


@pytest.mark.parametrize(
    "der",
    [
        pytest.param(gmt0009(5, 7, b"h" * 31, b"c"), id="hash_31_bytes"),
        pytest.param(gmt0009(5, 7, b"h" * 33, b"c"), id="hash_33_bytes"),
        pytest.param(gmt0009(5, 7, b"h" * 32, b""), id="empty_ciphertext"),
        pytest.param(gmt0009(-5, 7, b"h" * 32, b"c"), id="negative_x"),
        pytest.param(gmt0009(5, P, b"h" * 32, b"c"), id="y_equal_p"),
        pytest.param(gmt0009(2**256, 7, b"h" * 32, b"c"), id="x_33_bytes"),
        pytest.param(gmt0009(5, 7, b"h" * 32, b"c") + b"\x00", id="trailing_byte"),
        pytest.param(NON_MINIMAL_X + b"h" * 32 + b"\x04\x01c", id="non_minimal_x"),
    ],
)
def test_sm2_asn1_to_c1c3c2_rejects(der: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        asn1_to_c1c3c2(der)


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"\x02" + bytes(64) + b"h" * 32 + b"c", id="no_04_prefix"),
        pytest.param(b"\x04" + bytes(64) + b"h" * 32, id="no_c2"),
    ],
)
def test_sm2_c1c3c2_to_asn1_rejects(blob: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        c1c3c2_to_asn1(blob)


# --- regressions from shared/cases (B01, B03, B04) --------------------------------


def test_sm2_decrypt_accepts_gmssl_ciphertext_with_04_prefix() -> None:
    assert CASE_KEY.decrypt(case_input("b03_prefixed")) == CASE_PLAINTEXT


def test_sm2_decrypt_rejects_ciphertext_without_04_prefix() -> None:
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(case_input("b03_noprefix"))


def test_sm2_decrypt_rejects_double_04_prefix() -> None:
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(b"\x04" + case_input("b03_prefixed"))


def test_sm2_decrypt_rejects_c2_bit_flip() -> None:
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(b"\x04" + case_input("b01_c2_bit_flipped_noprefix"))


def test_sm2_decrypt_rejects_c3_all_zero() -> None:
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(b"\x04" + case_input("b01_c3_zeroed_noprefix"))


def test_sm2_decrypt_rejects_c1c2c3_order() -> None:
    blob = b"\x04" + case_input("b04_c1c3c2_noprefix")
    assert CASE_KEY.decrypt(blob) == CASE_PLAINTEXT
    c1, c3, c2 = blob[:65], blob[65:97], blob[97:]
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(c1 + c2 + c3)


def test_sm2_case_key_pem_matches_its_hex() -> None:
    key = SM2PrivateKey.from_pem(CASES["private_key_pem"].encode())
    public = SM2PublicKey.from_pem(CASES["public_key_pem"].encode())
    assert key.to_bytes().hex() == CASES["private_hex"]
    assert public.to_bytes().hex() == CASES["public_hex"]
    assert key.public_key() == public


# --- decryption of hostile ciphertexts ---------------------------------------------


def valid_ciphertext() -> bytes:
    return b"\x04" + case_input("b03_noprefix")


def replace_c1(blob: bytes, x: int, y: int) -> bytes:
    return encode_point(x, y) + blob[65:]


def point_with_small_x() -> tuple[int, int]:
    """A curve point (x, y) with x < 2^32, found with the p = 3 mod 4 root."""
    for x in range(1, 1000):
        rhs = (x**3 + REC["a"] * x + REC["b"]) % P
        y = pow(rhs, (P + 1) // 4, P)
        if y * y % P == rhs:
            return x, y
    raise AssertionError("no small x")


def c1_off_curve(blob: bytes) -> bytes:
    return blob[:64] + bytes([blob[64] ^ 1]) + blob[65:]


def test_sm2_decrypt_rejects_point_not_on_curve() -> None:
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(c1_off_curve(valid_ciphertext()))


HOSTILE_CIPHERTEXTS: dict[str, Callable[[bytes], bytes]] = {
    "point_not_on_curve": c1_off_curve,
    "infinity_as_zeros": lambda b: b"\x04" + bytes(64) + b[65:],
    "compressed_prefix": lambda b: b"\x02" + b[1:],
    "hybrid_prefix": lambda b: b"\x06" + b[1:],
    "non_canonical_x_plus_p": lambda b: replace_c1(
        b, point_with_small_x()[0] + P, point_with_small_x()[1]
    ),
    "c1_of_another_point": lambda b: replace_c1(b, REC["gx"], REC["gy"]),
    "c3_flipped": lambda b: b[:70] + bytes([b[70] ^ 0x80]) + b[71:],
    "c2_truncated": lambda b: b[:-1],
    "c2_extended": lambda b: b + b"\x00",
    "c2_empty": lambda b: b[:97],
    "c3_short": lambda b: b[:96],
    "only_prefix": lambda b: b"\x04",
    "empty": lambda b: b"",
}


@pytest.mark.parametrize("bad", HOSTILE_CIPHERTEXTS)
def test_sm2_decrypt_rejects(bad: str) -> None:
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(HOSTILE_CIPHERTEXTS[bad](valid_ciphertext()))


def test_sm2_decrypt_rejects_ciphertext_for_another_key() -> None:
    with pytest.raises(DecryptionFailed):
        SM2PrivateKey.generate().decrypt(valid_ciphertext())


def test_sm2_decrypt_failures_are_indistinguishable() -> None:
    messages = set()
    for bad in HOSTILE_CIPHERTEXTS.values():
        with pytest.raises(DecryptionFailed) as caught:
            CASE_KEY.decrypt(bad(valid_ciphertext()))
        assert type(caught.value) is DecryptionFailed
        messages.add(str(caught.value))
    assert len(messages) == 1


def test_sm2_decrypt_rejects_all_zero_kdf_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sm2, "sm3_kdf", lambda z, klen: bytes(klen))
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(valid_ciphertext())


def test_sm2_encrypt_redraws_k_after_all_zero_kdf_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real, calls = sm2.sm3_kdf, []

    def zero_once(z: bytes, klen: int) -> bytes:
        calls.append(z)
        return bytes(klen) if len(calls) == 1 else real(z, klen)

    monkeypatch.setattr(sm2, "sm3_kdf", zero_once)
    blob = CASE_KEY.public_key().encrypt(b"secret")
    monkeypatch.setattr(sm2, "sm3_kdf", real)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert CASE_KEY.decrypt(blob) == b"secret"


def test_sm2_encrypt_rejects_empty_plaintext() -> None:
    # OpenSSL 3 refuses too; GB/T 32918.4 has no all-nonzero t of length 0.
    with pytest.raises(ValueError):
        CASE_KEY.public_key().encrypt(b"")


# --- signatures: hostile encodings and values -------------------------------------


def big(value: int) -> bytes:
    """Minimal two's-complement content octets, written out independently."""
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1
    return value.to_bytes(size, "big", signed=True)


def bad_signatures() -> dict[str, bytes]:
    _, r, s = standard_signature()
    return {
        "r_zero": der_signature(big(0), big(s)),
        "s_zero": der_signature(big(r), big(0)),
        "r_equal_n": der_signature(big(N), big(s)),
        "r_plus_n": der_signature(big(r + N), big(s)),
        "s_plus_n": der_signature(big(r), big(s + N)),
        "r_plus_s_equal_n": der_signature(big(r), big(N - r)),
        "negative_r": der_signature(big(r - N), big(s)),
        "negative_s": der_signature(big(r), big(s - N)),
        "non_minimal_integer": der_signature(b"\x00" + big(r), big(s)),
        "long_form_length": b"\x30\x81" + der_signature(big(r), big(s))[1:],
        "indefinite_length": b"\x30\x80" + der_signature(big(r), big(s))[2:]
        + b"\x00\x00",
        "trailing_byte": der_signature(big(r), big(s)) + b"\x00",
        "third_integer": der_signature(big(r), big(s), b"\x00"),
        "raw_r_s_instead_of_der": r.to_bytes(32, "big") + s.to_bytes(32, "big"),
        "empty": b"",
    }  # fmt: skip


def test_sm2_verify_rejects_s_equal_n() -> None:
    public, r, _ = standard_signature()
    with pytest.raises(InvalidSignature):
        public.verify(der_signature(big(r), big(N)), STD_MESSAGE)


@pytest.mark.parametrize("bad", bad_signatures())
def test_sm2_verify_rejects(bad: str) -> None:
    public, r, s = standard_signature()
    public.verify(der_signature(big(r), big(s)), STD_MESSAGE)
    with pytest.raises(InvalidSignature):
        public.verify(bad_signatures()[bad], STD_MESSAGE)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(lambda r, s: r[:-1] + s, id="63_bytes"),
        pytest.param(lambda r, s: r + s + b"\x00", id="65_bytes"),
        pytest.param(lambda r, s: bytes(32) + s, id="r_zero"),
        pytest.param(lambda r, s: r + N.to_bytes(32, "big"), id="s_equal_n"),
        pytest.param(lambda r, s: r + (2**256 - 1).to_bytes(32, "big"), id="s_max"),
    ],
)
def test_sm2_verify_raw_rejects(raw: Callable[[bytes, bytes], bytes]) -> None:
    public, r, s = standard_signature()
    with pytest.raises(InvalidSignature):
        public.verify_raw(raw(r.to_bytes(32, "big"), s.to_bytes(32, "big")), b"m")


def test_sm2_verify_rejects_wrong_uid() -> None:
    public, r, s = standard_signature()
    sig = der_signature(big(r), big(s))
    for uid in [b"", b"1234567812345679", DEFAULT_UID + b"\x00"]:
        with pytest.raises(InvalidSignature):
            public.verify(sig, STD_MESSAGE, uid)


def test_sm2_verify_rejects_signature_whose_point_is_infinity(
    key_temperature: str,
) -> None:
    # Q = 2G, s = -r*2/3 mod n gives [s]G + [r + s]Q = infinity.
    q = textbook_mul(2, (REC["gx"], REC["gy"]))
    assert q is not None
    public = sm2._public_key(*q)
    r = 5
    s = -r * 2 * pow(3, -1, N) % N
    with pytest.raises(InvalidSignature):
        public.verify_raw(r.to_bytes(32, "big") + s.to_bytes(32, "big"), b"m")


def test_sm2_uid_longer_than_entl_allows_is_refused() -> None:
    CASE_KEY.sign(b"m", b"u" * 8191)
    with pytest.raises(ValueError):
        CASE_KEY.sign(b"m", b"u" * 8192)


# --- keys ------------------------------------------------------------------------


def off_curve_point() -> bytes:
    good = CASE_KEY.public_key().to_bytes()
    return good[:-1] + bytes([good[-1] ^ 1])


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(off_curve_point, id="point_not_on_curve"),
        pytest.param(lambda: b"\x04" + bytes(64), id="infinity_as_zeros"),
        pytest.param(lambda: b"\x00", id="sec1_infinity"),
        pytest.param(lambda: CASE_KEY.public_key().to_bytes()[1:], id="no_prefix"),
        pytest.param(
            lambda: b"\x02" + CASE_KEY.public_key().to_bytes()[1:33],
            id="compressed",
        ),
        pytest.param(
            lambda: b"\x07" + CASE_KEY.public_key().to_bytes()[1:], id="hybrid"
        ),
        pytest.param(
            lambda: encode_point(point_with_small_x()[0] + P, point_with_small_x()[1]),
            id="x_plus_p",
        ),
        pytest.param(lambda: b"", id="empty"),
    ],
)
def test_sm2_public_key_rejects(data: Callable[[], bytes]) -> None:
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_bytes(data())


def test_sm2_public_key_accepts_point_with_small_x() -> None:
    x, y = point_with_small_x()
    key = SM2PublicKey.from_bytes(encode_point(x, y))
    assert key.to_bytes()[1:33] == x.to_bytes(32, "big")


@pytest.mark.parametrize(
    "d",
    [
        pytest.param(bytes(32), id="zero"),
        pytest.param((N - 1).to_bytes(32, "big"), id="n_minus_1"),
        pytest.param(N.to_bytes(32, "big"), id="n"),
        pytest.param(b"\xff" * 32, id="all_ones"),
        pytest.param(b"\x01" * 31, id="31_bytes"),
        pytest.param(b"\x01" * 33, id="33_bytes"),
    ],
)
def test_sm2_private_key_rejects(d: bytes) -> None:
    with pytest.raises(InvalidKey):
        SM2PrivateKey.from_bytes(d)


@pytest.mark.parametrize("d", [1, 2, N - 2])
def test_sm2_private_key_accepts_range_ends(d: int) -> None:
    key = SM2PrivateKey.from_bytes(d.to_bytes(32, "big"))
    expected = textbook_mul(d, (REC["gx"], REC["gy"]))
    assert expected is not None
    assert key.public_key() == sm2._public_key(*expected)
    key.public_key().verify(key.sign(b"edge"), b"edge")
    assert key.decrypt(key.public_key().encrypt(b"edge")) == b"edge"


def test_sm2_generate_draws_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sm2.secrets, "randbelow", lambda bound: bound - 1)
    assert SM2PrivateKey.generate().to_bytes() == (N - 2).to_bytes(32, "big")


def test_sm2_private_key_repr_hides_d() -> None:
    assert CASES["private_hex"] not in repr(CASE_KEY).lower()


# --- PEM and DER key files ---------------------------------------------------------


def pem(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


def ec_private_key(d: bytes, curve_oid: str | None, point: bytes | None) -> bytes:
    items = [asn1.encode_integer(1), asn1.encode_octet_string(d)]
    if curve_oid:
        items.append(asn1.encode_explicit(0, asn1.encode_oid(curve_oid)))
    if point is not None:
        items.append(asn1.encode_explicit(1, asn1.encode_bit_string(point)))
    return asn1.encode_sequence(*items)


def pkcs8(inner: bytes, curve_oid: str = sm2.OID_SM2) -> bytes:
    algorithm = asn1.encode_sequence(
        asn1.encode_oid(sm2.OID_EC_PUBLIC_KEY), asn1.encode_oid(curve_oid)
    )
    return asn1.encode_sequence(
        asn1.encode_integer(0), algorithm, asn1.encode_octet_string(inner)
    )


OTHER_POINT = SM2PrivateKey.from_bytes(b"\x01" * 32).public_key().to_bytes()
CASE_D = bytes.fromhex(CASES["private_hex"])
CASE_POINT = bytes.fromhex(CASES["public_hex"])
P256_OID = "1.2.840.10045.3.1.7"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            lambda: pem(
                pkcs8(ec_private_key(CASE_D, None, OTHER_POINT)), "PRIVATE KEY"
            ),
            id="embedded_public_key_of_another_key",
        ),
        pytest.param(
            lambda: pem(
                pkcs8(ec_private_key(CASE_D, None, None), P256_OID), "PRIVATE KEY"
            ),
            id="p256_algorithm",
        ),
        pytest.param(
            lambda: pem(pkcs8(ec_private_key(CASE_D[1:], None, None)), "PRIVATE KEY"),
            id="31_byte_private_key",
        ),
        pytest.param(
            lambda: pem(pkcs8(ec_private_key(CASE_D, P256_OID, None)), "PRIVATE KEY"),
            id="inner_curve_p256",
        ),
        pytest.param(
            lambda: pem(
                pkcs8(ec_private_key(CASE_D, None, None)) + b"\x00", "PRIVATE KEY"
            ),
            id="trailing_byte",
        ),
        pytest.param(
            lambda: pem(ec_private_key(CASE_D, None, CASE_POINT), "EC PRIVATE KEY"),
            id="sec1_without_curve",
        ),
        pytest.param(
            lambda: pem(ec_private_key(CASE_D, P256_OID, None), "EC PRIVATE KEY"),
            id="sec1_p256",
        ),
        pytest.param(
            lambda: pem(ec_private_key(bytes(32), sm2.OID_SM2, None), "EC PRIVATE KEY"),
            id="sec1_zero_key",
        ),
        pytest.param(
            lambda: CASES["private_key_pem"].replace("MIGH", "MIG!").encode(),
            id="not_base64",
        ),
        pytest.param(lambda: CASES["public_key_pem"].encode(), id="public_key_block"),
        pytest.param(lambda: "-----BEGIN PRIVATE KEY-----\n中".encode(), id="utf8"),
    ],
)
def test_sm2_private_pem_rejects(text: Callable[[], bytes]) -> None:
    with pytest.raises(InvalidKey):
        SM2PrivateKey.from_pem(text())


@pytest.mark.parametrize(
    "curve_oid,label",
    [(sm2.OID_SM2, "EC PRIVATE KEY"), (sm2.OID_SM2, "SM2 PRIVATE KEY")],
)
def test_sm2_private_pem_reads_sec1(curve_oid: str, label: str) -> None:
    text = pem(ec_private_key(CASE_D, curve_oid, CASE_POINT), label)
    assert SM2PrivateKey.from_pem(text).to_bytes() == CASE_D


def test_sm2_private_pem_reads_pkcs8_without_public_key() -> None:
    text = pem(pkcs8(ec_private_key(CASE_D, None, None)), "PRIVATE KEY")
    assert SM2PrivateKey.from_pem(text).to_bytes() == CASE_D


def test_sm2_public_pem_rejects_p256_spki() -> None:
    algorithm = asn1.encode_sequence(
        asn1.encode_oid(sm2.OID_EC_PUBLIC_KEY), asn1.encode_oid(P256_OID)
    )
    der = asn1.encode_sequence(algorithm, asn1.encode_bit_string(CASE_POINT))
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_pem(pem(der, "PUBLIC KEY"))


def test_sm2_public_pem_rejects_point_not_on_curve() -> None:
    text = CASES["public_key_pem"].encode()
    der = bytearray(sm2._pem_decode(text, "PUBLIC KEY"))
    der[-1] ^= 1
    with pytest.raises(InvalidKey):
        SM2PublicKey.from_pem(pem(bytes(der), "PUBLIC KEY"))


def test_sm2_pem_round_trip_is_byte_identical_to_openssl_made_case_key() -> None:
    assert CASE_KEY.to_pem().decode() == CASES["private_key_pem"]
    assert CASE_KEY.public_key().to_pem().decode() == CASES["public_key_pem"]


def test_sm2_test_curve_keys_have_no_pem() -> None:
    v = SIGN_VECTORS[1]
    key = sm2._private_key(int(v["d"], 16), curve_for(v["curve"]))
    with pytest.raises(ValueError):
        key.to_pem()


# --- properties ----------------------------------------------------------------------


@HYPOTHESIS
@given(st.binary(min_size=1, max_size=300))
def test_sm2_decrypt_inverts_encrypt(message: bytes) -> None:
    blob = CASE_KEY.public_key().encrypt(message)
    assert len(blob) == 65 + 32 + len(message)
    assert CASE_KEY.decrypt(blob) == message


@HYPOTHESIS
@given(st.binary(max_size=300), st.binary(max_size=40))
def test_sm2_verify_accepts_sign(message: bytes, uid: bytes) -> None:
    CASE_KEY.public_key().verify(CASE_KEY.sign(message, uid), message, uid)
    CASE_KEY.public_key().verify_raw(CASE_KEY.sign_raw(message, uid), message, uid)


FLIP_BLOB = CASE_KEY.public_key().encrypt(b"0123456789abcdef")
FLIP_SIG = CASE_KEY.sign(b"flip")
FLIP_RAW = CASE_KEY.sign_raw(b"flip")


@HYPOTHESIS
@given(st.integers(min_value=0, max_value=len(FLIP_BLOB) * 8 - 1))
def test_sm2_decrypt_rejects_any_single_bit_flip(bit: int) -> None:
    with pytest.raises(DecryptionFailed):
        CASE_KEY.decrypt(flip(FLIP_BLOB, bit))


@HYPOTHESIS
@given(st.integers(min_value=0, max_value=len(FLIP_SIG) * 8 - 1))
def test_sm2_verify_rejects_any_single_bit_flip_in_der(bit: int) -> None:
    with pytest.raises(InvalidSignature):
        CASE_KEY.public_key().verify(flip(FLIP_SIG, bit), b"flip")


@HYPOTHESIS
@given(st.integers(min_value=0, max_value=511))
def test_sm2_verify_raw_rejects_any_single_bit_flip(bit: int) -> None:
    with pytest.raises(InvalidSignature):
        CASE_KEY.public_key().verify_raw(flip(FLIP_RAW, bit), b"flip")


@HYPOTHESIS
@given(st.integers(min_value=0, max_value=65 * 8 - 1))
def test_sm2_verify_rejects_any_single_bit_flip_in_public_key(bit: int) -> None:
    with pytest.raises((InvalidKey, InvalidSignature)):
        tampered = flip(CASE_KEY.public_key().to_bytes(), bit)
        SM2PublicKey.from_bytes(tampered).verify(FLIP_SIG, b"flip")


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


@pytest.fixture(params=["cold", "long_lived"])
def key_temperature(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Run a test with the wNAF path and with the per-key table path."""
    if request.param == "long_lived":
        monkeypatch.setattr(sm2, "_COMB_AFTER_USES", 0)
    yield request.param


def test_sm2_both_scalar_paths_verify_and_reject(key_temperature: str) -> None:
    key = SM2PrivateKey.generate()
    public = SM2PublicKey.from_bytes(key.public_key().to_bytes())
    for message in [b"a", b"b", b"c"]:
        public.verify(key.sign(message), message)
        with pytest.raises(InvalidSignature):
            public.verify(key.sign(message), message + b"!")
        assert key.decrypt(public.encrypt(message)) == message


@pytest.mark.parametrize(
    "s,t",
    [
        pytest.param(1, 1, id="1_1"),
        pytest.param(1, N - 1, id="1_n-1"),
        pytest.param(2, N - 2, id="2_n-2"),
        pytest.param(3, 3, id="3_3"),
        pytest.param(N - 1, N - 1, id="n-1_n-1"),
        pytest.param(2**255, 2**255, id="2^255_2^255"),
    ],
)
def test_sm2_joint_multiplication_with_public_key_g(
    s: int, t: int, key_temperature: str
) -> None:
    # Q = G makes the interleaved sum hit doubling and infinity additions.
    public = sm2._public_key(REC["gx"], REC["gy"])
    expected = textbook_mul((s + t) % N, (REC["gx"], REC["gy"]))
    assert sm2._to_affine(sm2._SM2P256, public._mul_add_base(s, t)) == expected


# --- OpenSSL 3 CLI -----------------------------------------------------------------


def _openssl_sm2_works() -> bool:
    if shutil.which("openssl") is None:
        return False
    probe = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "SM2"], capture_output=True
    )
    return probe.returncode == 0


needs_openssl = pytest.mark.skipif(
    not _openssl_sm2_works(), reason="OpenSSL CLI with SM2 not available"
)
DISTID = "distid:" + DEFAULT_UID.decode()


def openssl(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True)


@pytest.fixture
def openssl_key(tmp_path: Path) -> tuple[Path, Path]:
    """A key pair made by OpenSSL: (PKCS#8 PEM path, SPKI PEM path)."""
    key, pub = tmp_path / "key.pem", tmp_path / "pub.pem"
    assert openssl("genpkey", "-algorithm", "SM2", "-out", str(key)).returncode == 0
    assert openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub)).returncode == 0
    return key, pub


def openssl_verify(
    tmp_path: Path, public: SM2PublicKey, sig: bytes, message: bytes, *opts: str
) -> bool:
    pub, msg, sig_path = tmp_path / "o.pub", tmp_path / "o.msg", tmp_path / "o.sig"
    pub.write_bytes(public.to_pem())
    msg.write_bytes(message)
    sig_path.write_bytes(sig)
    args = ["-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", str(pub)]
    args += ["-in", str(msg), "-sigfile", str(sig_path)]
    return openssl("pkeyutl", *args, *opts).returncode == 0


def openssl_sign(tmp_path: Path, key: Path, message: bytes, *opts: str) -> bytes:
    msg, sig = tmp_path / "s.msg", tmp_path / "s.sig"
    msg.write_bytes(message)
    args = ["-sign", "-rawin", "-digest", "sm3", "-inkey", str(key)]
    done = openssl("pkeyutl", *args, "-in", str(msg), "-out", str(sig), *opts)
    assert done.returncode == 0, done.stderr
    return sig.read_bytes()


@needs_openssl
def test_openssl_verifies_our_signature_with_distid(tmp_path: Path) -> None:
    key = SM2PrivateKey.generate()
    sig = key.sign(b"license claims")
    assert openssl_verify(
        tmp_path, key.public_key(), sig, b"license claims", "-pkeyopt", DISTID
    )
    assert not openssl_verify(
        tmp_path, key.public_key(), sig, b"license claimz", "-pkeyopt", DISTID
    )


@needs_openssl
def test_openssl_default_empty_id_rejects_our_default_uid_signature(
    tmp_path: Path,
) -> None:
    key = SM2PrivateKey.generate()
    assert not openssl_verify(tmp_path, key.public_key(), key.sign(b"m"), b"m")


@needs_openssl
def test_openssl_default_empty_id_verifies_our_empty_uid_signature(
    tmp_path: Path,
) -> None:
    key = SM2PrivateKey.generate()
    assert openssl_verify(tmp_path, key.public_key(), key.sign(b"m", b""), b"m")


@needs_openssl
def test_openssl_verifies_published_signature(tmp_path: Path) -> None:
    public, r, s = standard_signature()
    sig = der_signature(big(r), big(s))
    assert openssl_verify(tmp_path, public, sig, STD_MESSAGE, "-pkeyopt", DISTID)


@needs_openssl
def test_we_verify_openssl_signature_with_distid(
    tmp_path: Path, openssl_key: tuple[Path, Path]
) -> None:
    key, pub = openssl_key
    sig = openssl_sign(tmp_path, key, b"handshake", "-pkeyopt", DISTID)
    public = SM2PublicKey.from_pem(pub.read_bytes())
    public.verify(sig, b"handshake")
    with pytest.raises(InvalidSignature):
        public.verify(sig, b"handshake", b"")


@needs_openssl
def test_we_verify_openssl_default_signature_only_with_empty_uid(
    tmp_path: Path, openssl_key: tuple[Path, Path]
) -> None:
    key, pub = openssl_key
    sig = openssl_sign(tmp_path, key, b"handshake")
    public = SM2PublicKey.from_pem(pub.read_bytes())
    public.verify(sig, b"handshake", b"")
    with pytest.raises(InvalidSignature):
        public.verify(sig, b"handshake")


@needs_openssl
def test_openssl_decrypts_our_ciphertext(
    tmp_path: Path, openssl_key: tuple[Path, Path]
) -> None:
    key, pub = openssl_key
    blob = SM2PublicKey.from_pem(pub.read_bytes()).encrypt(b"sm4 session key!")
    (tmp_path / "ct.der").write_bytes(c1c3c2_to_asn1(blob))
    done = openssl(
        "pkeyutl", "-decrypt", "-inkey", str(key), "-in", str(tmp_path / "ct.der")
    )
    assert done.returncode == 0 and done.stdout == b"sm4 session key!"


@needs_openssl
def test_we_decrypt_openssl_ciphertext(
    tmp_path: Path, openssl_key: tuple[Path, Path]
) -> None:
    key, pub = openssl_key
    done = openssl(
        "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pub), stdin=b"wrapped key"
    )
    assert done.returncode == 0
    ours = SM2PrivateKey.from_pem(key.read_bytes())
    assert ours.decrypt(asn1_to_c1c3c2(done.stdout)) == b"wrapped key"


@needs_openssl
def test_openssl_decrypts_published_ciphertext_with_our_pem(tmp_path: Path) -> None:
    v = ENCRYPT_VECTORS[0]
    key = tmp_path / "std.pem"
    key.write_bytes(SM2PrivateKey.from_bytes(bytes.fromhex(v["d"])).to_pem())
    (tmp_path / "ct.der").write_bytes(bytes.fromhex(v["gmt0009_der"]))
    done = openssl(
        "pkeyutl", "-decrypt", "-inkey", str(key), "-in", str(tmp_path / "ct.der")
    )
    assert done.stdout == v["message_utf8"].encode()


@needs_openssl
def test_openssl_decrypts_case_ciphertext(tmp_path: Path) -> None:
    key, ct = tmp_path / "case.pem", tmp_path / "ct.der"
    key.write_text(CASES["private_key_pem"])
    ct.write_bytes(c1c3c2_to_asn1(case_input("b03_prefixed")))
    done = openssl("pkeyutl", "-decrypt", "-inkey", str(key), "-in", str(ct))
    assert done.stdout == CASE_PLAINTEXT


@needs_openssl
def test_our_pem_is_byte_identical_to_openssl(openssl_key: tuple[Path, Path]) -> None:
    key, pub = openssl_key
    ours = SM2PrivateKey.from_pem(key.read_bytes())
    assert ours.to_pem() == key.read_bytes()
    assert ours.public_key().to_pem() == pub.read_bytes()
    assert SM2PublicKey.from_pem(pub.read_bytes()) == ours.public_key()


@needs_openssl
def test_openssl_reads_our_private_pem(tmp_path: Path) -> None:
    ours = SM2PrivateKey.generate()
    (tmp_path / "ours.pem").write_bytes(ours.to_pem())
    done = openssl("pkey", "-in", str(tmp_path / "ours.pem"), "-pubout")
    assert done.returncode == 0
    assert done.stdout == ours.public_key().to_pem()


@needs_openssl
def test_we_read_openssl_sec1_pem(
    tmp_path: Path, openssl_key: tuple[Path, Path]
) -> None:
    key, _ = openssl_key
    done = openssl("ec", "-in", str(key))
    assert done.returncode == 0 and b"BEGIN SM2 PRIVATE KEY" in done.stdout
    ours = SM2PrivateKey.from_pem(done.stdout)
    assert ours.to_pem() == key.read_bytes()
    relabelled = done.stdout.replace(b"SM2 PRIVATE", b"EC PRIVATE")
    assert SM2PrivateKey.from_pem(relabelled).to_bytes() == ours.to_bytes()


@needs_openssl
def test_we_refuse_openssl_encrypted_pkcs8(
    tmp_path: Path, openssl_key: tuple[Path, Path]
) -> None:
    key, _ = openssl_key
    args = ["-topk8", "-v2", "aes-256-cbc", "-passout", "pass:x", "-in", str(key)]
    done = openssl("pkcs8", *args)
    assert b"ENCRYPTED PRIVATE KEY" in done.stdout
    with pytest.raises(InvalidKey):
        SM2PrivateKey.from_pem(done.stdout)


# --- PyPI gmssl (C1C3C2 without the 04 byte; its decrypt skips C3) ------------------


@pytest.fixture
def gmssl_sm2() -> Any:
    return pytest.importorskip("gmssl.sm2")


def gmssl_friendly_key() -> SM2PrivateKey:
    """A key whose public hex does not start with 0 or 4.

    gmssl strips a leading "04" with ``str.lstrip``, which also eats any
    0 or 4 digits that follow.
    """
    while True:
        key = SM2PrivateKey.generate()
        if key.public_key().to_bytes().hex()[2] not in "04":
            return key


def gmssl_for(module: Any, key: SM2PrivateKey) -> Any:
    public_hex = key.public_key().to_bytes()[1:].hex()
    return module.CryptSM2(
        private_key=key.to_bytes().hex(), public_key=public_hex, mode=1
    )


def test_gmssl_verifies_our_signature(gmssl_sm2: Any) -> None:
    key = gmssl_friendly_key()
    sig = key.sign_raw(b"weather product")
    assert gmssl_for(gmssl_sm2, key).verify_with_sm3(sig.hex(), b"weather product")


def test_we_verify_gmssl_signature(gmssl_sm2: Any) -> None:
    key = gmssl_friendly_key()
    sig_hex = gmssl_for(gmssl_sm2, key).sign_with_sm3(b"weather product")
    key.public_key().verify_raw(bytes.fromhex(sig_hex), b"weather product")


def test_gmssl_decrypts_our_ciphertext(gmssl_sm2: Any) -> None:
    key = gmssl_friendly_key()
    blob = key.public_key().encrypt(b"0123456789abcdef")
    assert gmssl_for(gmssl_sm2, key).decrypt(blob[1:]) == b"0123456789abcdef"


def test_we_decrypt_gmssl_ciphertext(gmssl_sm2: Any) -> None:
    key = gmssl_friendly_key()
    blob = gmssl_for(gmssl_sm2, key).encrypt(b"0123456789abcdef")
    assert key.decrypt(b"\x04" + blob) == b"0123456789abcdef"


# --- textbook affine arithmetic (the independent reference) ---------------------------

Affine = tuple[int, int] | None


def textbook_add(p1: Affine, p2: Affine) -> Affine:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        slope = (3 * x1 * x1 + REC["a"]) * pow(2 * y1, -1, P)
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P)
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P


def textbook_mul(k: int, point: Affine) -> Affine:
    result: Affine = None
    for bit in bin(k)[2:]:
        result = textbook_add(result, result)
        if bit == "1":
            result = textbook_add(result, point)
    return result
