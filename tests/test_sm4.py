"""SM4 and its ECB, CBC (PKCS#7) and CTR modes, block-at-a-time and in lanes.

Every expected value comes from outside xinfeng: GB/T 32907, the OpenSSL
CLI, OpenSSL through ``cryptography``, or the PyPI ``gmssl`` package (for
encryption only: its decryption does not check padding).
"""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import load, unhex
from xinfeng.sdk import sm4
from xinfeng.sdk.errors import CryptoError, DecryptionFailed, InvalidKey
from xinfeng.sdk.sm4 import (
    SM4,
    sm4_cbc_decrypt,
    sm4_cbc_encrypt,
    sm4_ctr,
    sm4_ecb_decrypt,
    sm4_ecb_encrypt,
)

LENGTHS = [0, 1, 15, 16, 17, 63, 64, 65, 4096, 65537]
BLOCK_LENGTHS = [0, 16, 32, 48, 64, 4096, 65536]
KEY = unhex("0123456789abcdeffedcba9876543210")
IV = unhex("000102030405060708090a0b0c0d0e0f")
# The 1,000,000-iteration case has its own (slow) test below.
OPENSSL_CASES = [
    v for v in load("sm_openssl_cases")["vectors"]["sm4"] if v["mode"] != "ECB^1000000"
]
BAD_PADDING = load("sm4_bad_padding")

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the OpenSSL CLI is not installed"
)
keys = st.binary(min_size=16, max_size=16)


def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _openssl_enc(mode: str, key: bytes, data: bytes, iv: bytes | None) -> bytes:
    args = ["enc", f"-sm4-{mode}", "-K", key.hex()]
    if iv is not None:
        args += ["-iv", iv.hex()]
    if mode == "ecb":
        args.append("-nopad")
    run = subprocess.run(
        ["openssl", *args], input=data, capture_output=True, check=True
    )
    return run.stdout


def _openssl_cipher(mode: modes.Mode, key: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), mode).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _openssl_cbc_raw(key: bytes, iv: bytes, padded: bytes) -> bytes:
    """CBC without padding through cryptography: ciphertext of any last block."""
    return _openssl_cipher(modes.CBC(iv), key, padded)


# -- published and recorded vectors -------------------------------------------


def test_sm4_encrypts_gbt32907_example_1() -> None:
    vector = load("sm4")["vectors"][0]
    cipher = SM4(unhex(vector["key"]))
    assert cipher.encrypt_block(unhex(vector["plaintext"])) == unhex(
        vector["ciphertext"]
    )
    assert cipher.decrypt_block(unhex(vector["ciphertext"])) == unhex(
        vector["plaintext"]
    )


def _iterate(vector: dict[str, str | int]) -> None:
    cipher = SM4(unhex(str(vector["key"])))
    block = unhex(str(vector["plaintext"]))
    for _ in range(int(vector["iterations"])):
        block = cipher.encrypt_block(block)
    assert block == unhex(str(vector["ciphertext"]))


def test_sm4_encrypts_10000_times_like_openssl() -> None:
    _iterate(load("sm4")["vectors"][1])


@pytest.mark.slow
def test_sm4_encrypts_gbt32907_example_2_one_million_times() -> None:
    _iterate(load("sm4")["vectors"][2])


@pytest.mark.parametrize("vector", OPENSSL_CASES, ids=lambda v: v["name"])
def test_sm4_matches_openssl_cli_vectors(vector: dict[str, str]) -> None:
    key, mode = unhex(vector["key"]), vector["mode"]
    plain, cipher = unhex(vector["plaintext"]), unhex(vector["ciphertext"])
    if mode == "ECB":
        assert sm4_ecb_encrypt(key, plain) == cipher
        assert sm4_ecb_decrypt(key, cipher) == plain
    elif mode == "CTR":
        assert sm4_ctr(key, unhex(vector["iv"]), plain) == cipher
        assert sm4_ctr(key, unhex(vector["iv"]), cipher) == plain
    elif mode == "CBC":  # no padding: the vector is a prefix of the padded output
        assert sm4_cbc_encrypt(key, unhex(vector["iv"]), plain)[: len(cipher)] == cipher
    else:
        assert mode == "CBC-PKCS7"
        assert sm4_cbc_encrypt(key, unhex(vector["iv"]), plain) == cipher
        assert sm4_cbc_decrypt(key, unhex(vector["iv"]), cipher) == plain


# -- differential: OpenSSL CLI ------------------------------------------------


@needs_openssl
@pytest.mark.parametrize("length", LENGTHS)
def test_sm4_ctr_matches_openssl_cli(length: int) -> None:
    key, iv = _random_bytes(16, length), _random_bytes(16, length + 1)
    data = _random_bytes(length, seed=length)
    expected = _openssl_enc("ctr", key, data, iv)
    assert sm4_ctr(key, iv, data) == expected
    assert sm4_ctr(key, iv, expected) == data


@needs_openssl
@pytest.mark.parametrize("length", LENGTHS)
def test_sm4_cbc_matches_openssl_cli(length: int) -> None:
    key, iv = _random_bytes(16, length), _random_bytes(16, length + 1)
    data = _random_bytes(length, seed=length)
    expected = _openssl_enc("cbc", key, data, iv)
    assert sm4_cbc_encrypt(key, iv, data) == expected
    assert sm4_cbc_decrypt(key, iv, expected) == data


@needs_openssl
@pytest.mark.parametrize("length", BLOCK_LENGTHS)
def test_sm4_ecb_matches_openssl_cli(length: int) -> None:
    key, data = _random_bytes(16, length), _random_bytes(length, seed=length)
    expected = _openssl_enc("ecb", key, data, None)
    assert sm4_ecb_encrypt(key, data) == expected
    assert sm4_ecb_decrypt(key, expected) == data


@needs_openssl
@pytest.mark.parametrize(
    "iv_hex",
    [
        "ffffffffffffffffffffffffffffffff",
        "000000000000000000000000fffffff0",
        "00000000000000fffffffffffffffff8",
    ],
)
def test_sm4_ctr_counter_carries_through_all_128_bits_like_openssl(iv_hex: str) -> None:
    key, iv = _random_bytes(16, 3), unhex(iv_hex)
    data = _random_bytes(16 * 40 + 5, seed=4)
    assert sm4_ctr(key, iv, data) == _openssl_enc("ctr", key, data, iv)


# -- differential: cryptography and gmssl -------------------------------------


def test_sm4_ctr_matches_cryptography_across_lane_chunks() -> None:
    # 5000 blocks span several lane chunks; the counter's low word wraps inside.
    key, iv = _random_bytes(16, 5), unhex("0f" * 12 + "ffffff00")
    data = _random_bytes(16 * 5000 + 7, seed=6)
    assert sm4_ctr(key, iv, data) == _openssl_cipher(modes.CTR(iv), key, data)


@settings(max_examples=60, deadline=None)
@given(keys, keys, st.binary(max_size=700))
def test_sm4_ctr_matches_cryptography(key: bytes, iv: bytes, data: bytes) -> None:
    assert sm4_ctr(key, iv, data) == _openssl_cipher(modes.CTR(iv), key, data)


@settings(max_examples=60, deadline=None)
@given(keys, keys, st.binary(max_size=700))
def test_sm4_cbc_matches_cryptography(key: bytes, iv: bytes, data: bytes) -> None:
    pad = 16 - len(data) % 16
    expected = _openssl_cbc_raw(key, iv, data + bytes([pad]) * pad)
    assert sm4_cbc_encrypt(key, iv, data) == expected
    assert sm4_cbc_decrypt(key, iv, expected) == data


@settings(max_examples=60, deadline=None)
@given(keys, st.integers(min_value=0, max_value=40))
def test_sm4_ecb_matches_cryptography(key: bytes, blocks: int) -> None:
    data = _random_bytes(16 * blocks, seed=blocks)
    expected = _openssl_cipher(modes.ECB(), key, data)
    assert sm4_ecb_encrypt(key, data) == expected
    assert sm4_ecb_decrypt(key, expected) == data


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 64, 65, 4096])
def test_sm4_encryption_matches_gmssl(length: int) -> None:
    gmssl_sm4 = pytest.importorskip("gmssl.sm4")
    key, iv = _random_bytes(16, length), _random_bytes(16, length + 1)
    data = _random_bytes(length, seed=length)
    gm = gmssl_sm4.CryptSM4()
    gm.set_key(key, gmssl_sm4.SM4_ENCRYPT)
    assert sm4_cbc_encrypt(key, iv, data) == gm.crypt_cbc(iv, data)
    whole = data[: length - length % 16]
    assert sm4_ecb_encrypt(key, whole) == gm.crypt_ecb(whole)[: len(whole)]


# -- properties ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(keys, keys, st.binary(max_size=500))
def test_sm4_cbc_and_ctr_round_trip(key: bytes, iv: bytes, data: bytes) -> None:
    assert sm4_cbc_decrypt(key, iv, sm4_cbc_encrypt(key, iv, data)) == data
    assert sm4_ctr(key, iv, sm4_ctr(key, iv, data)) == data


@settings(max_examples=100, deadline=None)
@given(keys, keys, st.binary(max_size=100), st.integers(min_value=0, max_value=127))
def test_sm4_cbc_bit_flip_in_last_block_never_returns_the_plaintext(
    key: bytes, iv: bytes, data: bytes, bit: int
) -> None:
    ciphertext = bytearray(sm4_cbc_encrypt(key, iv, data))
    ciphertext[-16 + bit // 8] ^= 1 << (bit % 8)
    try:
        assert sm4_cbc_decrypt(key, iv, bytes(ciphertext)) != data
    except DecryptionFailed:
        pass


# -- hostile padding (gmssl accepted all of these) ----------------------------


def _cbc_case(name: str) -> bytes:
    return unhex(BAD_PADDING["cbc"][name]["ciphertext"])


def _decrypt_bad(ciphertext: bytes) -> None:
    key, iv = unhex(BAD_PADDING["key"]), unhex(BAD_PADDING["iv"])
    with pytest.raises(DecryptionFailed) as caught:
        sm4_cbc_decrypt(key, iv, ciphertext)
    assert str(caught.value) == str(DecryptionFailed())


def test_sm4_cbc_decrypt_rejects_pad_byte_00() -> None:
    _decrypt_bad(_cbc_case("pad00"))


def test_sm4_cbc_decrypt_rejects_pad_byte_11() -> None:
    _decrypt_bad(_cbc_case("pad11"))


def test_sm4_cbc_decrypt_rejects_pad_byte_ff() -> None:
    _decrypt_bad(_cbc_case("padff"))


def test_sm4_cbc_decrypt_rejects_mismatched_pad_bytes_01020304() -> None:
    _decrypt_bad(_cbc_case("padmix"))


@pytest.mark.parametrize("name", ["pad00", "pad11", "padmix", "padff"])
def test_sm4_ecb_decrypt_recovers_the_hostile_last_blocks(name: str) -> None:
    case = BAD_PADDING["ecb"][name]
    plain = sm4_ecb_decrypt(unhex(BAD_PADDING["key"]), unhex(case["ciphertext"]))
    assert plain[-16:] == unhex(case["last_plaintext_block"])


def test_sm4_cbc_decrypt_rejects_every_last_byte_above_16_and_zero() -> None:
    key, iv = _random_bytes(16, 8), _random_bytes(16, 9)
    for last in [0, *range(17, 256)]:
        _decrypt_with(key, iv, bytes(31) + bytes([last]))


def test_sm4_cbc_decrypt_rejects_any_single_wrong_pad_byte() -> None:
    key, iv = _random_bytes(16, 10), _random_bytes(16, 11)
    for pad in range(2, 17):
        for wrong in range(1, pad):
            padded = bytearray(b"P" * (32 - pad) + bytes([pad]) * pad)
            padded[-1 - wrong] ^= 0x40
            _decrypt_with(key, iv, bytes(padded))


def _decrypt_with(key: bytes, iv: bytes, padded: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        sm4_cbc_decrypt(key, iv, _openssl_cbc_raw(key, iv, padded))


@pytest.mark.parametrize("pad", range(1, 17))
def test_sm4_cbc_decrypt_accepts_every_valid_pad_length(pad: int) -> None:
    key, iv = _random_bytes(16, pad), _random_bytes(16, pad + 1)
    data = b"Q" * (32 - pad)
    ciphertext = _openssl_cbc_raw(key, iv, data + bytes([pad]) * pad)
    assert sm4_cbc_decrypt(key, iv, ciphertext) == data


# -- wrong sizes and types ----------------------------------------------------


@pytest.mark.parametrize("length", [0, 15, 17, 24, 32])
def test_sm4_rejects_key_of_wrong_length(length: int) -> None:
    key = bytes(length)
    for call in (
        lambda: SM4(key),
        lambda: sm4_ecb_encrypt(key, bytes(16)),
        lambda: sm4_ecb_decrypt(key, bytes(16)),
        lambda: sm4_cbc_encrypt(key, IV, b"x"),
        lambda: sm4_cbc_decrypt(key, IV, bytes(16)),
        lambda: sm4_ctr(key, IV, b"x"),
    ):
        with pytest.raises(InvalidKey):
            call()


@pytest.mark.parametrize("length", [0, 8, 12, 15, 17, 32])
def test_sm4_rejects_iv_of_wrong_length(length: int) -> None:
    iv = bytes(length)
    for call in (
        lambda: sm4_cbc_encrypt(KEY, iv, b"x"),
        lambda: sm4_cbc_decrypt(KEY, iv, bytes(16)),
        lambda: sm4_ctr(KEY, iv, b"x"),
        lambda: sm4_ctr(KEY, iv, b""),
    ):
        with pytest.raises(InvalidKey):
            call()


@pytest.mark.parametrize("key", ["0123456789abcdef", 16, None])
def test_sm4_rejects_key_that_is_not_bytes(key: object) -> None:
    with pytest.raises(InvalidKey):
        SM4(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 1, 15, 17, 31, 33])
def test_sm4_cbc_decrypt_rejects_ciphertext_of_partial_blocks(length: int) -> None:
    with pytest.raises(DecryptionFailed):
        sm4_cbc_decrypt(KEY, IV, bytes(length))


@pytest.mark.parametrize("length", [1, 15, 17, 31])
def test_sm4_ecb_rejects_data_of_partial_blocks(length: int) -> None:
    with pytest.raises(DecryptionFailed):
        sm4_ecb_decrypt(KEY, bytes(length))
    with pytest.raises(CryptoError):
        sm4_ecb_encrypt(KEY, bytes(length))


@pytest.mark.parametrize("length", [0, 15, 17, 32])
def test_sm4_block_methods_reject_other_sizes(length: int) -> None:
    cipher = SM4(KEY)
    with pytest.raises(CryptoError):
        cipher.encrypt_block(bytes(length))
    with pytest.raises(CryptoError):
        cipher.decrypt_block(bytes(length))


def test_sm4_ctr_of_nothing_is_nothing() -> None:
    assert sm4_ctr(KEY, IV, b"") == b""


# -- both engines -------------------------------------------------------------


def test_sm4_block_engine_and_lanes_agree_with_cryptography(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, iv = _random_bytes(16, 12), _random_bytes(16, 13)
    data = _random_bytes(16 * 9 + 3, seed=14)
    expected = _openssl_cipher(modes.CTR(iv), key, data)
    for threshold in (1, 10**6):  # everything in lanes, then nothing
        monkeypatch.setattr(sm4, "_LANE_MIN_BLOCKS", threshold)
        assert sm4_ctr(key, iv, data) == expected
        assert (
            sm4_ecb_decrypt(key, _openssl_cipher(modes.ECB(), key, data[:144]))
            == (data[:144])
        )
