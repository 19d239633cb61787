"""The server's native fast paths give the same bytes and errors as the pure ones.

Known answers come from GB/T 32905/32907 and the OpenSSL CLI (vector files).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import load, unhex
from xinfeng.sdk import sm3, sm4
from xinfeng.sdk.errors import InvalidKey
from xinfeng.server import native
from xinfeng.server.native import Backend, select_backend

CASES = load("sm_openssl_cases")["vectors"]
NATIVE = select_backend(prefer_native=True)
PURE = select_backend(prefer_native=False)
BOTH = pytest.mark.parametrize("backend", [NATIVE, PURE], ids=["native", "pure"])
keys = st.binary(min_size=16, max_size=16)


def _ctr_vectors() -> list[dict[str, str]]:
    return [v for v in CASES["sm4"] if v["mode"] == "CTR"]


# -- which backend ---------------------------------------------------------------


def test_backend_names_say_which_provider_serves_each_primitive() -> None:
    names = native.backend_names()
    assert set(names) == {"sm4_ctr", "sm3", "hmac_sm3"}
    assert names["sm4_ctr"] in {"cryptography", "pure"}
    assert names["sm3"] in {"hashlib", "pure"}
    assert names["hmac_sm3"] in {"hashlib", "pure"}


def test_native_backend_is_used_where_openssl_offers_sm3_and_sm4() -> None:
    pytest.importorskip("cryptography.hazmat.primitives.ciphers")
    try:
        hashlib.new("sm3")
    except ValueError:
        pytest.skip("this hashlib's OpenSSL has no SM3")
    assert NATIVE.names == {
        "sm4_ctr": "cryptography",
        "sm3": "hashlib",
        "hmac_sm3": "hashlib",
    }


def test_pure_backend_uses_the_sdk_functions() -> None:
    assert set(PURE.names.values()) == {"pure"}
    assert PURE.sm4_ctr is sm4.sm4_ctr
    assert PURE.sm3_hash is sm3.sm3_hash
    assert PURE.hmac_sm3 is sm3.hmac_sm3
    assert PURE.hmac_sm3_lanes is sm3.hmac_sm3_lanes


def test_falls_back_to_pure_without_cryptography(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    backend = select_backend()
    assert backend.names["sm4_ctr"] == "pure"
    assert backend.sm4_ctr is sm4.sm4_ctr


def test_falls_back_to_pure_without_sm3_in_hashlib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_sm3(name: str, *args: object) -> None:
        raise ValueError(f"unsupported hash type {name}")

    monkeypatch.setattr(hashlib, "new", no_sm3)
    monkeypatch.setattr(hmac, "digest", lambda key, msg, name: no_sm3(name))
    backend = select_backend()
    assert (backend.names["sm3"], backend.names["hmac_sm3"]) == ("pure", "pure")
    assert backend.hmac_sm3_lanes is sm3.hmac_sm3_lanes


def test_native_sm3_that_gives_wrong_bytes_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Wrong:
        def digest(self) -> bytes:
            return bytes(32)

    monkeypatch.setattr(hashlib, "new", lambda name, data=b"": Wrong())
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        backend = select_backend()
    assert backend.names["sm3"] == "pure"
    assert "disagrees" in caplog.text


# -- same bytes ------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("vector", _ctr_vectors(), ids=lambda v: v["name"])
def test_sm4_ctr_matches_openssl_cli_vectors(
    backend: Backend, vector: dict[str, str]
) -> None:
    key, iv = unhex(vector["key"]), unhex(vector["iv"])
    assert backend.sm4_ctr(key, iv, unhex(vector["plaintext"])) == unhex(
        vector["ciphertext"]
    )


@BOTH
@pytest.mark.parametrize("vector", load("sm3")["vectors"], ids=lambda v: v["name"])
def test_sm3_matches_gbt32905(backend: Backend, vector: dict[str, str]) -> None:
    assert backend.sm3_hash(unhex(vector["message_hex"])) == unhex(vector["digest"])


@BOTH
@pytest.mark.parametrize("vector", CASES["hmac_sm3"], ids=lambda v: v["msg_utf8"])
def test_hmac_sm3_matches_openssl_cli_vectors(
    backend: Backend, vector: dict[str, str]
) -> None:
    key, message = unhex(vector["key_hex"]), vector["msg_utf8"].encode()
    expected = unhex(vector["hmac_sm3"])
    assert backend.hmac_sm3(key, message) == expected
    assert backend.hmac_sm3_lanes(key, [message, message]) == [expected] * 2


@settings(max_examples=60, deadline=None)
@given(keys, keys, st.binary(max_size=1200))
def test_native_sm4_ctr_equals_pure(key: bytes, iv: bytes, data: bytes) -> None:
    assert NATIVE.sm4_ctr(key, iv, data) == PURE.sm4_ctr(key, iv, data)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=150), st.lists(st.binary(max_size=300), max_size=6))
def test_native_sm3_and_hmac_equal_pure(key: bytes, messages: list[bytes]) -> None:
    for message in messages:
        assert NATIVE.sm3_hash(message) == PURE.sm3_hash(message)
        assert NATIVE.hmac_sm3(key, message) == PURE.hmac_sm3(key, message)
    assert NATIVE.hmac_sm3_lanes(key, messages) == PURE.hmac_sm3_lanes(key, messages)


def test_module_functions_use_the_default_backend() -> None:
    vector = _ctr_vectors()[0]
    key, iv = unhex(vector["key"]), unhex(vector["iv"])
    ciphertext = native.sm4_ctr(key, iv, unhex(vector["plaintext"]))
    assert ciphertext == unhex(vector["ciphertext"])
    assert native.sm3_hash(b"abc") == unhex(load("sm3")["vectors"][0]["digest"])
    mac = CASES["hmac_sm3"][0]
    message = mac["msg_utf8"].encode()
    assert native.hmac_sm3(unhex(mac["key_hex"]), message).hex() == mac["hmac_sm3"]
    assert native.hmac_sm3_lanes(unhex(mac["key_hex"]), [message]) == [
        unhex(mac["hmac_sm3"])
    ]


# -- same errors -----------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("length", [0, 15, 17, 32])
def test_sm4_ctr_rejects_key_and_iv_of_wrong_length(
    backend: Backend, length: int
) -> None:
    with pytest.raises(InvalidKey):
        backend.sm4_ctr(bytes(length), bytes(16), b"data")
    with pytest.raises(InvalidKey):
        backend.sm4_ctr(bytes(16), bytes(length), b"data")


@BOTH
def test_sm4_ctr_rejects_key_that_is_not_bytes(backend: Backend) -> None:
    with pytest.raises(InvalidKey):
        backend.sm4_ctr("0123456789abcdef", bytes(16), b"data")  # type: ignore[arg-type]


@BOTH
def test_hmac_sm3_rejects_int_key(backend: Backend) -> None:
    with pytest.raises(TypeError):
        backend.hmac_sm3(16, b"data")  # type: ignore[arg-type]
