"""The server key signs through OpenSSL: same signatures, typed errors, fallback.

SM2 signatures are randomized, so every check is a verification: by the
pure verifier, by the OpenSSL CLI, against the GB/T 32918.5 example.
Timing is measured in benchmarks/bench_sm2.py, never asserted here.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vectors import load, unhex
from xinfeng.license.tokens import mint_embed_token, verify_embed_token
from xinfeng.sdk import envelope
from xinfeng.sdk.errors import InvalidKey, InvalidSignature
from xinfeng.sdk.sm2 import DEFAULT_UID, SM2PrivateKey, SM2PublicKey
from xinfeng.server import native_sm2
from xinfeng.server.audit import sign_tree_head
from xinfeng.server.native_sm2 import (
    NativeSignerError,
    NativeSM2Signer,
    backend_name,
    load_server_signer,
)

from .conftest import HOST_ORIGIN, Provider

ALICE = b"ALICE123@YAHOO.COM"
MESSAGE = b"handshake reply transcript"
GBT = load("sm2_sign")["vectors"][0]  # GB/T 32918.5-2017 Annex A, SM2 curve
ENV = {
    "origins": [HOST_ORIGIN],
    "ua": "pytest",
    "webdriver": False,
    "build": "00" * 32,
    "hidden": False,
}


def _libcrypto_signs() -> bool:
    try:
        NativeSM2Signer.from_private_key(SM2PrivateKey.generate()).close()
    except (OSError, AttributeError):
        return False
    return True


def _openssl_cli_signs() -> bool:
    if shutil.which("openssl") is None:
        return False
    probe = ["openssl", "genpkey", "-algorithm", "SM2"]
    return subprocess.run(probe, capture_output=True).returncode == 0


needs_libcrypto = pytest.mark.skipif(
    not _libcrypto_signs(), reason="no libcrypto 3.x with SM2"
)
needs_openssl_cli = pytest.mark.skipif(
    not _openssl_cli_signs(), reason="OpenSSL CLI with SM2 not available"
)
pytestmark = needs_libcrypto


@pytest.fixture(scope="module")
def key() -> SM2PrivateKey:
    return SM2PrivateKey.generate()


@pytest.fixture
def signer(key: SM2PrivateKey) -> Iterator[NativeSM2Signer]:
    native = NativeSM2Signer.from_private_key(key)
    yield native
    native.close()


def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True)


def cli_verifies(
    tmp_path: Path, public: SM2PublicKey, sig: bytes, message: bytes, *opts: str
) -> bool:
    pub, msg, sig_path = tmp_path / "k.pub", tmp_path / "m.bin", tmp_path / "s.der"
    pub.write_bytes(public.to_pem())
    msg.write_bytes(message)
    sig_path.write_bytes(sig)
    args = ["-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", str(pub)]
    args += ["-in", str(msg), "-sigfile", str(sig_path), *opts]
    return openssl("pkeyutl", *args).returncode == 0


def distid(uid: bytes) -> tuple[str, str]:
    return "-pkeyopt", "distid:" + uid.decode()


# -- signatures verify -----------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [b"", b"m", b"x" * 1000, bytes(range(256))],
    ids=["0", "1", "1000", "all"],
)
def test_native_signature_verifies_with_pure_verifier(
    key: SM2PrivateKey, signer: NativeSM2Signer, message: bytes
) -> None:
    key.public_key().verify(signer.sign(message), message)


def test_native_raw_signature_verifies_with_pure_verify_raw(
    key: SM2PrivateKey, signer: NativeSM2Signer
) -> None:
    raw = signer.sign_raw(MESSAGE)
    assert len(raw) == 64
    key.public_key().verify_raw(raw, MESSAGE)


def test_native_signature_with_other_uid_verifies_only_under_that_uid(
    key: SM2PrivateKey, signer: NativeSM2Signer
) -> None:
    sig = signer.sign(MESSAGE, ALICE)
    key.public_key().verify(sig, MESSAGE, ALICE)
    with pytest.raises(InvalidSignature):
        key.public_key().verify(sig, MESSAGE, DEFAULT_UID)


@pytest.mark.parametrize("uid", [b"", b"u" * 8190], ids=["empty", "8190-bytes"])
def test_native_signature_with_edge_uid_verifies(
    key: SM2PrivateKey, signer: NativeSM2Signer, uid: bytes
) -> None:
    key.public_key().verify(signer.sign(MESSAGE, uid), MESSAGE, uid)


def test_native_signatures_of_one_message_differ(signer: NativeSM2Signer) -> None:
    assert signer.sign(MESSAGE) != signer.sign(MESSAGE)


def test_native_signer_from_gbt_key_has_published_public_key_and_verifies() -> None:
    d = SM2PrivateKey.from_bytes(unhex(GBT["d"]))
    published = b"\x04" + unhex(GBT["public_x"]) + unhex(GBT["public_y"])
    native = NativeSM2Signer.from_private_key(d)
    message, uid = GBT["message_utf8"].encode(), GBT["uid_utf8"].encode()
    assert native.public_key().to_bytes() == published
    SM2PublicKey.from_bytes(published).verify(native.sign(message, uid), message, uid)


@needs_openssl_cli
def test_openssl_cli_verifies_native_signature_with_distid(
    tmp_path: Path, key: SM2PrivateKey, signer: NativeSM2Signer
) -> None:
    sig = signer.sign(MESSAGE)
    public = key.public_key()
    assert cli_verifies(tmp_path, public, sig, MESSAGE, *distid(DEFAULT_UID))
    assert not cli_verifies(tmp_path, public, sig, MESSAGE + b"!", *distid(DEFAULT_UID))


@needs_openssl_cli
def test_openssl_cli_default_empty_id_rejects_native_default_uid_signature(
    tmp_path: Path, key: SM2PrivateKey, signer: NativeSM2Signer
) -> None:
    assert not cli_verifies(tmp_path, key.public_key(), signer.sign(MESSAGE), MESSAGE)


@needs_openssl_cli
def test_openssl_cli_verifies_native_signature_with_other_uid(
    tmp_path: Path, key: SM2PrivateKey, signer: NativeSM2Signer
) -> None:
    sig = signer.sign(MESSAGE, ALICE)
    assert cli_verifies(tmp_path, key.public_key(), sig, MESSAGE, *distid(ALICE))
    assert not cli_verifies(
        tmp_path, key.public_key(), sig, MESSAGE, *distid(DEFAULT_UID)
    )


@needs_openssl_cli
def test_native_signer_loads_openssl_made_key_with_its_public_key(
    tmp_path: Path,
) -> None:
    pem, pub = tmp_path / "key.pem", tmp_path / "pub.pem"
    assert openssl("genpkey", "-algorithm", "SM2", "-out", str(pem)).returncode == 0
    assert openssl("pkey", "-in", str(pem), "-pubout", "-out", str(pub)).returncode == 0
    native = NativeSM2Signer.from_pem(pem.read_bytes())
    public = SM2PublicKey.from_pem(pub.read_bytes())
    assert native.public_key() == public
    public.verify(native.sign(MESSAGE), MESSAGE)


# -- typed errors ------------------------------------------------------------------

MALFORMED_PEM = {
    "empty": b"",
    "not pem": b"not a key",
    "bad base64": b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
    "public key": SM2PrivateKey.generate().public_key().to_pem(),
}


@pytest.mark.parametrize("pem", MALFORMED_PEM.values(), ids=MALFORMED_PEM.keys())
def test_native_signer_rejects_malformed_pem(pem: bytes) -> None:
    with pytest.raises(InvalidKey):
        NativeSM2Signer.from_pem(pem)


def test_native_signer_rejects_truncated_pkcs8(key: SM2PrivateKey) -> None:
    lines = key.to_pem().splitlines()
    truncated = b"\n".join([lines[0], lines[1][:40], lines[-1]])
    with pytest.raises(InvalidKey):
        NativeSM2Signer.from_pem(truncated)


@needs_openssl_cli
@pytest.mark.parametrize(
    "make",
    [
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ["genpkey", "-algorithm", "ED25519"],
        ["genpkey", "-algorithm", "SM2", "-aes-128-cbc", "-pass", "pass:secret"],
    ],
    ids=["p256", "ed25519", "encrypted-sm2"],
)
def test_native_signer_rejects_other_and_encrypted_keys(make: list[str]) -> None:
    made = openssl(*make)
    assert made.returncode == 0, made.stderr
    with pytest.raises(InvalidKey):
        NativeSM2Signer.from_pem(made.stdout)


def test_native_sign_rejects_uid_openssl_cannot_hash(signer: NativeSM2Signer) -> None:
    with pytest.raises(ValueError):
        signer.sign(MESSAGE, b"u" * 8191)


@pytest.mark.parametrize("message", ["text", None, 5])
def test_native_sign_rejects_message_that_is_not_bytes(
    signer: NativeSM2Signer, message: Any
) -> None:
    with pytest.raises(TypeError):
        signer.sign(message)


def test_native_sign_after_close_raises_typed_error(key: SM2PrivateKey) -> None:
    native = NativeSM2Signer.from_private_key(key)
    native.close()
    with pytest.raises(NativeSignerError):
        native.sign(MESSAGE)


class CountingLib:
    """The real libcrypto, with one function failing and contexts counted."""

    MAKERS = {"EVP_MD_CTX_new": "md", "EVP_PKEY_CTX_new_from_pkey": "pkey"}
    FREERS = {"EVP_MD_CTX_free": "md", "EVP_PKEY_CTX_free": "pkey"}

    def __init__(self, real: Any, failing: str) -> None:
        self.real, self._failing = real, failing
        self.live: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        function = getattr(self.real, name)
        if name == self._failing:
            return lambda *args: None if name in self.MAKERS else 0
        if name in self.MAKERS:
            return lambda *args: self._made(self.MAKERS[name], function(*args))
        if name in self.FREERS:
            return lambda ctx: self._freed(self.FREERS[name], function, ctx)
        return function

    def _made(self, kind: str, ctx: Any) -> Any:
        self.live[kind] += 1
        return ctx

    def _freed(self, kind: str, free: Any, ctx: Any) -> None:
        self.live[kind] -= 1
        free(ctx)


FAILING_STEPS = [
    "EVP_MD_CTX_new",
    "EVP_PKEY_CTX_new_from_pkey",
    "EVP_PKEY_CTX_set1_id",
    "EVP_DigestSignInit",
    "EVP_DigestSign",
]


@pytest.mark.parametrize("step", FAILING_STEPS)
def test_failed_openssl_step_raises_typed_error_and_frees_contexts(
    key: SM2PrivateKey, step: str
) -> None:
    native = NativeSM2Signer.from_private_key(key)
    lib = CountingLib(native._lib, step)
    native._lib = lib  # type: ignore[assignment]
    with pytest.raises(NativeSignerError) as raised:
        native.sign(MESSAGE)
    assert raised.value.step == step
    assert raised.value.status == 500
    assert set(lib.live.values()) <= {0}
    native._lib = lib.real
    native.close()


def test_native_signer_repr_hides_the_key(signer: NativeSM2Signer) -> None:
    assert repr(signer) == "NativeSM2Signer(<secret>)"


# -- choosing the backend ------------------------------------------------------------


def test_load_server_signer_uses_openssl_once_proven(
    key: SM2PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="xinfeng.server.native_sm2")
    chosen = load_server_signer(key)
    assert backend_name(chosen) == "openssl"
    assert chosen.public_key() == key.public_key()
    key.public_key().verify(chosen.sign(MESSAGE), MESSAGE)
    assert "OpenSSL" in caplog.text


def test_load_server_signer_falls_back_to_pure_without_libcrypto(
    key: SM2PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def missing() -> None:
        raise OSError("libcrypto.so.3: cannot open shared object file")

    monkeypatch.setattr(native_sm2, "_libcrypto", missing)
    chosen = load_server_signer(key)
    assert chosen is key
    assert backend_name(chosen) == "pure"
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.name == "xinfeng.server.native_sm2"
    assert "pure Python" in record.getMessage()


def test_load_server_signer_falls_back_when_openssl_signature_does_not_verify(
    key: SM2PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stranger = SM2PrivateKey.generate()
    monkeypatch.setattr(
        native_sm2, "_digest_sign", lambda lib, pkey, m, uid: stranger.sign(m, uid)
    )
    chosen = load_server_signer(key)
    assert chosen is key
    assert "pure Python" in caplog.text


def test_load_server_signer_can_be_told_to_stay_pure(key: SM2PrivateKey) -> None:
    assert load_server_signer(key, prefer_native=False) is key


def test_loading_logs_no_key_material(
    key: SM2PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    load_server_signer(key)

    def refuse(*args: object) -> bytes:
        raise NativeSignerError("EVP_DigestSign", ("error:deliberate",))

    monkeypatch.setattr(native_sm2, "_digest_sign", refuse)
    load_server_signer(key)
    body = b"".join(key.to_pem().splitlines()[1:-1]).decode()
    assert len(caplog.records) >= 2
    for secret in (key.to_bytes().hex(), body[:32], body[-32:]):
        assert secret not in caplog.text


# -- the server paths that sign ------------------------------------------------------


def test_embed_token_minted_by_native_signer_verifies(
    key: SM2PrivateKey, signer: NativeSM2Signer
) -> None:
    token = mint_embed_token(signer, "kid-1", "lic-1", ["p"], HOST_ORIGIN, now=1000)
    embed = verify_embed_token(token, {"kid-1": key.public_key()}, now=1001)
    assert embed.license_id == "lic-1"


def test_handshake_reply_signed_by_native_signer_opens(
    key: SM2PrivateKey, signer: NativeSM2Signer
) -> None:
    client = envelope.ClientHandshake("token", ENV)
    request = envelope.parse_handshake(client.request(now_ms=5000), now_ms=5000)
    session_key = bytes(range(16))
    reply = envelope.sign_handshake_reply(
        request, signer, b"s" * 16, session_key, expires_ms=9000, now_ms=5000
    )
    session = client.finish(reply, key.public_key())
    assert session.session_key == session_key


def test_audit_tree_head_signed_by_native_signer_verifies(
    key: SM2PrivateKey, signer: NativeSM2Signer
) -> None:
    sign_tree_head(signer, 3, b"r" * 32, 1234).verify(key.public_key())


def test_provider_signs_with_openssl_and_opens_sessions(provider: Provider) -> None:
    state = provider.state
    assert backend_name(state.server_key) == "openssl"
    token = provider.client.post(
        "/v1/tokens",
        json={"products": ["test-product"], "origin": HOST_ORIGIN},
        headers={"Authorization": f"Bearer {provider.credential}"},
    ).json()["token"]
    client = envelope.ClientHandshake(token, ENV)
    reply = provider.client.post(
        "/v1/handshake",
        content=client.request(provider.clock()),
        headers={"Content-Type": "application/msgpack"},
    )
    assert reply.status_code == 200, reply.text
    client.finish(reply.content, SM2PublicKey.from_bytes(state.server_public_key))
