"""SM3, HMAC-SM3, the SM3 KDF and the lane-parallel hashing.

Every expected value comes from outside xinfeng: GB/T 32905, the OpenSSL
CLI, OpenSSL through ``hashlib``/``hmac``, or the PyPI ``gmssl`` package.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import load, unhex
from xinfeng.sdk import sm3
from xinfeng.sdk.sm3 import (
    SM3,
    hmac_sm3,
    hmac_sm3_lanes,
    sm3_hash,
    sm3_hash_lanes,
    sm3_kdf,
)

LENGTHS = [0, 1, 15, 16, 17, 55, 56, 63, 64, 65, 119, 120, 128, 4096, 65537]
KEY_LENGTHS = [1, 16, 32, 63, 64, 65, 100, 200]
OPENSSL_CASES = load("sm_openssl_cases")["vectors"]

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the OpenSSL CLI is not installed"
)


def _hashlib_has_sm3() -> bool:
    try:
        hashlib.new("sm3")
    except ValueError:
        return False
    return True


needs_hashlib_sm3 = pytest.mark.skipif(
    not _hashlib_has_sm3(), reason="this hashlib's OpenSSL has no SM3"
)


def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _openssl(args: list[str], data: bytes) -> bytes:
    run = subprocess.run(
        ["openssl", *args], input=data, capture_output=True, check=True
    )
    return run.stdout


def _openssl_sm3(data: bytes) -> bytes:
    return _openssl(["dgst", "-sm3", "-binary"], data)


def _openssl_hmac_sm3(key: bytes, data: bytes) -> bytes:
    args = ["mac", "-digest", "SM3", "-macopt", f"hexkey:{key.hex()}"]
    out = _openssl([*args, "-in", "/dev/stdin", "HMAC"], data)
    return bytes.fromhex(out.decode().strip())


# -- published and recorded vectors -------------------------------------------


@pytest.mark.parametrize("vector", load("sm3")["vectors"], ids=lambda v: v["name"])
def test_sm3_hash_matches_gbt32905_examples(vector: dict[str, str]) -> None:
    assert sm3_hash(unhex(vector["message_hex"])) == unhex(vector["digest"])


@pytest.mark.parametrize(
    "vector", OPENSSL_CASES["sm3"], ids=lambda v: v["msg_hex"][:16]
)
def test_sm3_hash_matches_openssl_cli_vectors(vector: dict[str, str]) -> None:
    assert sm3_hash(unhex(vector["msg_hex"])).hex() == vector["sm3"]


@pytest.mark.parametrize(
    "vector", OPENSSL_CASES["hmac_sm3"], ids=lambda v: v["msg_utf8"]
)
def test_hmac_sm3_matches_openssl_cli_vectors(vector: dict[str, str]) -> None:
    key, message = unhex(vector["key_hex"]), vector["msg_utf8"].encode()
    assert hmac_sm3(key, message).hex() == vector["hmac_sm3"]


# -- the hashlib-like class ---------------------------------------------------


def test_sm3_object_fed_in_pieces_gives_the_gbt32905_digest() -> None:
    message = b"abcd" * 16
    expected = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    for cut in range(len(message) + 1):
        h = SM3(message[:cut])
        h.update(message[cut:])
        assert h.hexdigest() == expected


def test_sm3_object_copy_is_independent() -> None:
    h = SM3(b"ab")
    other = h.copy()
    other.update(b"c")
    assert other.digest() == unhex(load("sm3")["vectors"][0]["digest"])
    assert h.digest() == _openssl_or_hashlib(b"ab")


def test_sm3_object_digest_does_not_end_the_hash() -> None:
    h = SM3(b"a")
    h.digest()
    h.update(b"bc")
    assert h.hexdigest() == load("sm3")["vectors"][0]["digest"]


def test_sm3_object_has_the_hashlib_attributes() -> None:
    h = SM3()
    assert (h.name, h.digest_size, h.block_size) == ("sm3", 32, 64)
    assert h.hexdigest() == OPENSSL_CASES["sm3"][0]["sm3"]


@needs_hashlib_sm3
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_sm3_object_matches_hashlib_over_any_split(pieces: list[bytes]) -> None:
    h = SM3()
    for piece in pieces:
        h.update(piece)
    assert h.digest() == hashlib.new("sm3", b"".join(pieces)).digest()


def _openssl_or_hashlib(data: bytes) -> bytes:
    if _hashlib_has_sm3():
        return hashlib.new("sm3", data).digest()
    return _openssl_sm3(data)


# -- differential: OpenSSL CLI, hashlib, gmssl --------------------------------


@needs_openssl
@pytest.mark.parametrize("length", LENGTHS)
def test_sm3_hash_matches_openssl_cli(length: int) -> None:
    data = _random_bytes(length, seed=length)
    assert sm3_hash(data) == _openssl_sm3(data)


@needs_openssl
@pytest.mark.parametrize("key_length", KEY_LENGTHS)
@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 4096])
def test_hmac_sm3_matches_openssl_cli(key_length: int, length: int) -> None:
    key = _random_bytes(key_length, seed=1000 + key_length)
    data = _random_bytes(length, seed=length)
    assert hmac_sm3(key, data) == _openssl_hmac_sm3(key, data)


@needs_hashlib_sm3
@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=600))
def test_sm3_hash_matches_hashlib(data: bytes) -> None:
    assert sm3_hash(data) == hashlib.new("sm3", data).digest()


@needs_hashlib_sm3
@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=150), st.binary(max_size=300))
def test_hmac_sm3_matches_hmac_module(key: bytes, data: bytes) -> None:
    assert hmac_sm3(key, data) == hmac.digest(key, data, "sm3")


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 200, 4096])
def test_sm3_hash_matches_gmssl(length: int) -> None:
    gmssl_sm3 = pytest.importorskip("gmssl.sm3")
    data = _random_bytes(length, seed=length)
    assert sm3_hash(data).hex() == gmssl_sm3.sm3_hash(list(data))


# -- the KDF ------------------------------------------------------------------


@pytest.mark.parametrize("klen", [0, 1, 16, 32, 33, 48, 64, 100, 1000])
def test_sm3_kdf_matches_gmssl(klen: int) -> None:
    gmssl_sm3 = pytest.importorskip("gmssl.sm3")
    z = _random_bytes(64, seed=klen)
    expected = gmssl_sm3.sm3_kdf(z.hex().encode(), klen) if klen else ""
    assert sm3_kdf(z, klen).hex() == expected


@needs_hashlib_sm3
def test_sm3_kdf_is_the_counter_construction_of_gbt32918() -> None:
    z = b"shared secret"
    blocks = (hashlib.new("sm3", z + struct.pack(">I", i)).digest() for i in (1, 2, 3))
    assert sm3_kdf(z, 70) == b"".join(blocks)[:70]


def test_sm3_kdf_rejects_negative_length() -> None:
    with pytest.raises(ValueError):
        sm3_kdf(b"z", -1)


# -- lanes --------------------------------------------------------------------


@needs_hashlib_sm3
def test_sm3_hash_lanes_of_sixteen_4k_chunks_matches_hashlib() -> None:
    chunks = [_random_bytes(4096, seed=i) for i in range(16)]
    assert sm3_hash_lanes(chunks) == [hashlib.new("sm3", c).digest() for c in chunks]


@needs_hashlib_sm3
def test_hmac_sm3_lanes_of_sixteen_4k_chunks_matches_hmac_module() -> None:
    key = _random_bytes(32, seed=7)
    chunks = [_random_bytes(4096 + i, seed=i) for i in range(16)]
    expected = [hmac.digest(key, c, "sm3") for c in chunks]
    assert hmac_sm3_lanes(key, chunks) == expected


def test_sm3_hash_lanes_keeps_order_across_mixed_lengths() -> None:
    vectors = OPENSSL_CASES["sm3"]
    messages = [unhex(v["msg_hex"]) for v in vectors] * 3
    expected = [unhex(v["sm3"]) for v in vectors] * 3
    assert sm3_hash_lanes(messages[::-1]) == expected[::-1]


def test_hmac_sm3_lanes_matches_openssl_cli_vectors() -> None:
    for vector in OPENSSL_CASES["hmac_sm3"]:
        key, message = unhex(vector["key_hex"]), vector["msg_utf8"].encode()
        digests = hmac_sm3_lanes(key, [message, b"", message])
        assert digests[0] == digests[2] == unhex(vector["hmac_sm3"])


def test_sm3_hash_lanes_of_nothing_is_an_empty_list() -> None:
    assert sm3_hash_lanes([]) == []
    assert hmac_sm3_lanes(b"key", []) == []


@needs_hashlib_sm3
def test_sm3_hash_lanes_splits_large_groups_into_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sm3, "_LANE_BATCH", 3)
    messages = [_random_bytes(100, seed=i) for i in range(10)]
    assert sm3_hash_lanes(messages) == [
        hashlib.new("sm3", m).digest() for m in messages
    ]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_sm3_hash_lanes_equals_one_at_a_time(messages: list[bytes]) -> None:
    assert sm3_hash_lanes(messages) == [sm3_hash(m) for m in messages]


@needs_hashlib_sm3
@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_sm3_hash_lanes_matches_hashlib(messages: list[bytes]) -> None:
    assert sm3_hash_lanes(messages) == [
        hashlib.new("sm3", m).digest() for m in messages
    ]


@needs_hashlib_sm3
@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=100), st.lists(st.binary(max_size=200), max_size=10))
def test_hmac_sm3_lanes_matches_hmac_module(key: bytes, messages: list[bytes]) -> None:
    expected = [hmac.digest(key, m, "sm3") for m in messages]
    assert hmac_sm3_lanes(key, messages) == expected
    assert [hmac_sm3(key, m) for m in messages] == expected


# -- inputs that are not bytes ------------------------------------------------


@pytest.mark.parametrize("value", [5, "abc", None])
def test_sm3_hash_rejects_non_bytes(value: object) -> None:
    with pytest.raises(TypeError):
        sm3_hash(value)  # type: ignore[arg-type]


def test_hmac_sm3_rejects_int_key_instead_of_zero_bytes() -> None:
    with pytest.raises(TypeError):
        hmac_sm3(16, b"data")  # type: ignore[arg-type]


def test_sm3_accepts_bytearray_and_memoryview() -> None:
    digest = unhex(load("sm3")["vectors"][0]["digest"])
    assert sm3_hash(bytearray(b"abc")) == digest
    assert sm3_hash(memoryview(b"xabc")[1:]) == digest
    assert sm3_hash_lanes([bytearray(b"abc"), memoryview(b"abc")]) == [digest] * 2
