"""JWS with SM2-with-SM3: signing, the pinned verifier and every rejection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any

import jwt
import pytest

from xinfeng.license import jwt_sm2
from xinfeng.sdk.errors import LicenseError, LicenseExpired, TokenInvalid
from xinfeng.sdk.sm2 import DEFAULT_UID, SM2PrivateKey, SM2PublicKey

VECTORS = Path(__file__).parent / "vectors"
TEST_KEY = json.loads((VECTORS / "jwt_sm2_test_key.json").read_text())
ALG_CONFUSION = json.loads((VECTORS / "jwt_alg_confusion.json").read_text())
NUMERIC_DATES = json.loads((VECTORS / "jwt_numericdate.json").read_text())

NOW = 1767225600  # 2026-01-01T00:00:00Z
KID = "licensor-1"
TYP = "xf-test+jwt"
OPENSSL_DISTID = "distid:1234567812345678"

PRIVATE_KEY = SM2PrivateKey.from_bytes(bytes.fromhex(TEST_KEY["private_key_hex"]))
PUBLIC_KEY = SM2PublicKey.from_bytes(bytes.fromhex(TEST_KEY["public_key_hex"]))
KEYS = {KID: PUBLIC_KEY}

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the OpenSSL CLI is the oracle"
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def header_text(**fields: Any) -> str:
    header = {"alg": "SM2SM3", "kid": KID, "typ": TYP, **fields}
    return json.dumps({k: v for k, v in header.items() if v is not None})


def payload_text(**fields: Any) -> str:
    return json.dumps({"sub": "p1", "iat": NOW, "exp": NOW + 600, **fields})


def sign_segments(header: str, payload: str, key: SM2PrivateKey = PRIVATE_KEY) -> str:
    """A token signed straight with the SM2 key, bypassing ``jwt_sm2.encode``."""
    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    signature = key.sign_raw(signing_input.encode(), DEFAULT_UID)
    return f"{signing_input}.{b64(signature)}"


def hs256_token(header: str, payload: str, secret: bytes) -> str:
    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def verify(token: str, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "keys": KEYS, "typ": TYP, "required": ("sub",), "now": NOW, "leeway": 30,
    }  # fmt: skip
    return jwt_sm2.decode(token, **{**options, **kwargs})


def assert_rejected(token: str, **kwargs: Any) -> None:
    with pytest.raises(TokenInvalid) as caught:
        verify(token, **kwargs)
    assert str(caught.value) == TokenInvalid.__doc__


# -- signing and the independent oracle -----------------------------------------


def test_jwt_round_trip_returns_the_claims() -> None:
    claims = {"sub": "p1", "iat": NOW, "exp": NOW + 600, "products": ["a"]}
    token = jwt_sm2.encode(claims, PRIVATE_KEY, KID, TYP)

    assert verify(token) == claims


def test_jwt_header_names_sm2sm3_kid_and_typ() -> None:
    token = jwt_sm2.encode(json.loads(payload_text()), PRIVATE_KEY, KID, TYP)
    header, _, signature = token.split(".")

    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {
        "alg": "SM2SM3",
        "kid": KID,
        "typ": TYP,
    }
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64


def test_jwt_private_algorithm_registry_holds_sm2sm3_only() -> None:
    assert jwt_sm2._JWS.get_algorithms() == ["SM2SM3"]
    assert "SM2SM3" not in jwt.api_jws._jws_global_obj.get_algorithms()


def test_jwt_test_key_pair_matches_openssl_derivation(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the OpenSSL CLI is the oracle")
    (tmp_path / "key.pem").write_text(TEST_KEY["private_key_pem"])
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "key.pem"), "-pubout",
         "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip

    assert der[-65:] == PRIVATE_KEY.public_key().to_bytes()


@needs_openssl
def test_jwt_signature_verifies_with_openssl_cli(tmp_path: Path) -> None:
    token = jwt_sm2.encode(json.loads(payload_text()), PRIVATE_KEY, KID, TYP)
    signing_input, _, signature = token.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    (tmp_path / "pub.pem").write_text(TEST_KEY["public_key_pem"])
    (tmp_path / "msg").write_bytes(signing_input.encode())
    (tmp_path / "sig.der").write_bytes(der_from_raw(raw))

    result = openssl_verify(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Signature Verified Successfully" in result.stdout


@needs_openssl
def test_jwt_accepts_token_signed_by_openssl_cli(tmp_path: Path) -> None:
    signing_input = f"{b64(header_text().encode())}.{b64(payload_text().encode())}"
    (tmp_path / "key.pem").write_text(TEST_KEY["private_key_pem"])
    (tmp_path / "msg").write_bytes(signing_input.encode())
    subprocess.run(
        ["openssl", "pkeyutl", "-sign", "-inkey", str(tmp_path / "key.pem"),
         "-rawin", "-in", str(tmp_path / "msg"), "-digest", "sm3",
         "-pkeyopt", OPENSSL_DISTID, "-out", str(tmp_path / "sig.der")],
        check=True, capture_output=True,
    )  # fmt: skip
    raw = raw_from_der((tmp_path / "sig.der").read_bytes())

    claims = verify(f"{signing_input}.{b64(raw)}")

    assert claims["sub"] == "p1"


@needs_openssl
def test_jwt_openssl_rejects_signature_made_with_empty_user_id(
    tmp_path: Path,
) -> None:
    token = jwt_sm2.encode(json.loads(payload_text()), PRIVATE_KEY, KID, TYP)
    signing_input, _, signature = token.rpartition(".")
    (tmp_path / "pub.pem").write_text(TEST_KEY["public_key_pem"])
    (tmp_path / "msg").write_bytes(signing_input.encode())
    (tmp_path / "sig.der").write_bytes(
        der_from_raw(base64.urlsafe_b64decode(signature + "=="))
    )

    result = openssl_verify(tmp_path, distid=None)

    assert result.returncode != 0


def openssl_verify(
    folder: Path, distid: str | None = OPENSSL_DISTID
) -> subprocess.CompletedProcess[str]:
    command = [
        "openssl", "pkeyutl", "-verify", "-pubin",
        "-inkey", str(folder / "pub.pem"), "-rawin", "-in", str(folder / "msg"),
        "-sigfile", str(folder / "sig.der"), "-digest", "sm3",
    ]  # fmt: skip
    if distid is not None:
        command += ["-pkeyopt", distid]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def der_from_raw(raw: bytes) -> bytes:
    """DER SEQUENCE of two INTEGERs from ``r || s``, written out by hand."""

    def integer(value: bytes) -> bytes:
        value = value.lstrip(b"\x00") or b"\x00"
        if value[0] & 0x80:
            value = b"\x00" + value
        return bytes([0x02, len(value)]) + value

    body = integer(raw[:32]) + integer(raw[32:])
    return bytes([0x30, len(body)]) + body


def raw_from_der(der: bytes) -> bytes:
    assert der[0] == 0x30 and der[1] == len(der) - 2
    r_len = der[3]
    r = der[4 : 4 + r_len]
    s = der[6 + r_len :]
    return int.from_bytes(r, "big").to_bytes(32, "big") + int.from_bytes(
        s, "big"
    ).to_bytes(32, "big")


# -- algorithm confusion (CVE-2022-29217 and kin) -----------------------------


@pytest.mark.parametrize("name", sorted(ALG_CONFUSION["tokens"]))
def test_jwt_rejects_published_alg_confusion_token(name: str) -> None:
    public_key = SM2PublicKey.from_bytes(
        bytes.fromhex(ALG_CONFUSION["sm2_public_key_hex"])
    )
    token = ALG_CONFUSION["tokens"][name]

    for typ in ("JWT", TYP):
        assert_rejected(token, keys=lambda kid: public_key, typ=typ, required=())


@pytest.mark.parametrize(
    "secret",
    [
        bytes.fromhex(TEST_KEY["public_key_hex"]),
        TEST_KEY["public_key_hex"].encode(),
        TEST_KEY["public_key_hex"][2:].encode(),
        TEST_KEY["public_key_pem"].encode(),
    ],
    ids=["raw_04xy", "hex_04xy", "hex_xy", "pem"],
)
def test_jwt_rejects_hs256_keyed_with_sm2_public_key(secret: bytes) -> None:
    token = hs256_token(header_text(alg="HS256"), payload_text(), secret)

    assert_rejected(token)


def test_jwt_rejects_alg_none_with_empty_signature() -> None:
    header = b64(header_text(alg="none").encode())
    token = f"{header}.{b64(payload_text().encode())}."

    assert_rejected(token)


def test_jwt_rejects_alg_none_with_valid_sm2_signature() -> None:
    assert_rejected(sign_segments(header_text(alg="none"), payload_text()))


@pytest.mark.parametrize("alg", ["sm2sm3", "SM2SM3 ", "ES256", "SM2", "", None])
def test_jwt_rejects_alg_other_than_sm2sm3(alg: str | None) -> None:
    header = json.dumps({"alg": alg, "kid": KID, "typ": TYP})

    assert_rejected(sign_segments(header, payload_text()))


def test_jwt_rejects_missing_alg() -> None:
    assert_rejected(sign_segments(json.dumps({"kid": KID, "typ": TYP}), payload_text()))


# -- header --------------------------------------------------------------------


def test_jwt_rejects_duplicate_alg_in_header() -> None:
    header = f'{{"alg":"HS256","alg":"SM2SM3","kid":"{KID}","typ":"{TYP}"}}'

    assert_rejected(sign_segments(header, payload_text()))


def test_jwt_rejects_duplicate_typ_in_header() -> None:
    header = f'{{"alg":"SM2SM3","kid":"{KID}","typ":"other","typ":"{TYP}"}}'

    assert_rejected(sign_segments(header, payload_text()))


@pytest.mark.parametrize(
    "crit",
    [["exp"], ["b64"], ["xf-unknown"], [], "exp"],
    ids=["exp", "b64", "unknown", "empty", "string"],
)
def test_jwt_rejects_crit_header(crit: object) -> None:
    header = header_text(crit=crit, **({"b64": False} if crit == ["b64"] else {}))

    assert_rejected(sign_segments(header, payload_text()))


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.test/k"},
        {"jwk": {"kty": "EC"}},
        {"x5u": "x"},
        {"cty": "JWT"},
    ],
    ids=["jku", "jwk", "x5u", "cty"],
)
def test_jwt_rejects_unknown_header_parameter(extra: dict[str, Any]) -> None:
    assert_rejected(sign_segments(header_text(**extra), payload_text()))


def test_jwt_rejects_wrong_typ() -> None:
    token = sign_segments(header_text(typ="xf-other+jwt"), payload_text())

    assert_rejected(token)


def test_jwt_rejects_missing_typ() -> None:
    assert_rejected(sign_segments(header_text(typ=None), payload_text()))


def test_jwt_rejects_missing_kid() -> None:
    assert_rejected(sign_segments(header_text(kid=None), payload_text()))


@pytest.mark.parametrize("kid", [7, ["licensor-1"], "", "k" * 129])
def test_jwt_rejects_malformed_kid(kid: object) -> None:
    assert_rejected(sign_segments(header_text(kid=kid), payload_text()))


def test_jwt_rejects_unknown_kid() -> None:
    token = sign_segments(header_text(kid="licensor-9"), payload_text())

    assert_rejected(token)


def test_jwt_rejects_kid_whose_lookup_raises_key_error() -> None:
    def lookup(kid: str) -> SM2PublicKey:
        raise KeyError(kid)

    assert_rejected(sign_segments(header_text(), payload_text()), keys=lookup)


def test_jwt_rejects_kid_whose_lookup_returns_raw_key_bytes() -> None:
    def lookup(kid: str) -> Any:
        return PUBLIC_KEY.to_bytes()

    assert_rejected(sign_segments(header_text(), payload_text()), keys=lookup)


def test_jwt_rejects_header_that_is_not_an_object() -> None:
    assert_rejected(sign_segments('["SM2SM3"]', payload_text()))


# -- signature -------------------------------------------------------------------


def test_jwt_rejects_signature_by_another_key() -> None:
    token = sign_segments(header_text(), payload_text(), SM2PrivateKey.generate())

    assert_rejected(token)


def test_jwt_rejects_tampered_payload() -> None:
    token = sign_segments(header_text(), payload_text())
    header, _, signature = token.split(".")
    forged = b64(payload_text(sub="admin").encode())

    assert_rejected(f"{header}.{forged}.{signature}")


def test_jwt_rejects_der_encoded_signature() -> None:
    signing_input = f"{b64(header_text().encode())}.{b64(payload_text().encode())}"
    der = PRIVATE_KEY.sign(signing_input.encode(), DEFAULT_UID)

    assert_rejected(f"{signing_input}.{b64(der)}")


def test_jwt_rejects_truncated_signature() -> None:
    token = sign_segments(header_text(), payload_text())
    signing_input, _, signature = token.rpartition(".")
    short = b64(base64.urlsafe_b64decode(signature + "==")[:63])

    assert_rejected(f"{signing_input}.{short}")


def test_jwt_rejects_all_zero_signature() -> None:
    signing_input = f"{b64(header_text().encode())}.{b64(payload_text().encode())}"

    assert_rejected(f"{signing_input}.{b64(bytes(64))}")


# -- encoding of the compact form ----------------------------------------------------


def test_jwt_rejects_padded_signature_segment() -> None:
    token = sign_segments(header_text(), payload_text())
    signing_input, _, signature = token.rpartition(".")
    assert len(signature) % 4 == 2

    assert_rejected(f"{signing_input}.{signature}==")


def test_jwt_rejects_non_canonical_base64_signature() -> None:
    token = sign_segments(header_text(), payload_text())
    signing_input, _, signature = token.rpartition(".")
    # 64 bytes take 86 characters; the last one carries 4 unused bits.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    last = alphabet[alphabet.index(signature[-1]) ^ 1]
    tweaked = signature[:-1] + last
    assert base64.urlsafe_b64decode(tweaked + "==") == base64.urlsafe_b64decode(
        signature + "=="
    )

    assert_rejected(f"{signing_input}.{tweaked}")


@pytest.mark.parametrize("bad", ["a.b", "a.b.c.d", "a.b.c.d.e", "..", ""])
def test_jwt_rejects_wrong_segment_count(bad: str) -> None:
    assert_rejected(bad)


def test_jwt_rejects_token_with_whitespace() -> None:
    token = sign_segments(header_text(), payload_text())

    assert_rejected(token + "\n")
    assert_rejected(" " + token)


def test_jwt_rejects_oversized_token() -> None:
    token = sign_segments(header_text(), payload_text(pad="x" * 20000))

    assert_rejected(token)


def test_jwt_rejects_bytes_token() -> None:
    token = sign_segments(header_text(), payload_text())

    assert_rejected(token.encode())  # type: ignore[arg-type]


def test_jwt_rejects_payload_with_invalid_utf8() -> None:
    payload = b'{"sub":"\xff","iat":%d,"exp":%d}' % (NOW, NOW + 600)
    signing_input = f"{b64(header_text().encode())}.{b64(payload)}"
    signature = PRIVATE_KEY.sign_raw(signing_input.encode(), DEFAULT_UID)

    assert_rejected(f"{signing_input}.{b64(signature)}")


# -- payload ------------------------------------------------------------------------


def test_jwt_rejects_duplicate_sub_in_payload() -> None:
    payload = f'{{"sub":"admin","sub":"p1","iat":{NOW},"exp":{NOW + 600}}}'

    assert_rejected(sign_segments(header_text(), payload))


def test_jwt_rejects_duplicate_exp_in_payload() -> None:
    payload = f'{{"sub":"p1","iat":{NOW},"exp":{NOW + 60},"exp":{NOW + 999999}}}'

    assert_rejected(sign_segments(header_text(), payload))


def test_jwt_rejects_duplicate_key_in_nested_payload_object() -> None:
    payload = payload_text(scope={"a": 1})[:-1] + ', "x": {"k": 1, "k": 2}}'

    assert_rejected(sign_segments(header_text(), payload))


@pytest.mark.parametrize("payload", ['["p1"]', '"p1"', "4102444800", "null"])
def test_jwt_rejects_payload_that_is_not_an_object(payload: str) -> None:
    assert_rejected(sign_segments(header_text(), payload))


def test_jwt_rejects_deeply_nested_payload() -> None:
    payload = payload_text()[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
    token = sign_segments(header_text(), payload)
    assert len(token) < jwt_sm2.MAX_TOKEN_LENGTH

    assert_rejected(token)


@pytest.mark.parametrize("claim", ["sub", "exp", "iat"])
def test_jwt_rejects_missing_required_claim(claim: str) -> None:
    fields = json.loads(payload_text())
    del fields[claim]

    assert_rejected(sign_segments(header_text(), json.dumps(fields)))


def test_jwt_rejects_required_claim_set_to_null() -> None:
    assert_rejected(sign_segments(header_text(), payload_text(sub=None)))


# -- NumericDate types (pyjwt#121, #1171; authlib#641) ----------------------------


def test_jwt_numeric_date_template_is_accepted_as_control() -> None:
    payload = numeric_date_payload("exp", str(NOW + 600))

    assert verify(sign_segments(header_text(), payload))["exp"] == NOW + 600


@pytest.mark.parametrize("row", NUMERIC_DATES["literals"], ids=lambda row: row["name"])
def test_jwt_rejects_time_claim_that_is_not_a_sane_integer(row: dict[str, str]) -> None:
    payload = numeric_date_payload(row["claim"], row["literal"])

    assert_rejected(sign_segments(header_text(), payload))


@pytest.mark.parametrize("name", sorted(NUMERIC_DATES["hs256_tokens"]))
def test_jwt_rejects_published_numeric_date_token(name: str) -> None:
    token = NUMERIC_DATES["hs256_tokens"][name]["token"]

    assert_rejected(token, typ="JWT", required=())


def test_jwt_rejects_exp_as_string() -> None:
    token = sign_segments(header_text(), payload_text(exp=str(NOW + 600)))

    assert_rejected(token)


def test_jwt_rejects_exp_as_float() -> None:
    token = sign_segments(header_text(), payload_text(exp=float(NOW + 600)))

    assert_rejected(token)


def test_jwt_rejects_exp_as_bool() -> None:
    assert_rejected(sign_segments(header_text(), payload_text(exp=True)))


def numeric_date_payload(claim: str, literal: str) -> str:
    values = {"iat": str(NOW), "nbf": str(NOW), "exp": str(NOW + 600)}
    values[claim] = literal
    return (
        f'{{"sub":"p1","iat":{values["iat"]},"nbf":{values["nbf"]},'
        f'"exp":{values["exp"]}}}'
    )


# -- time window: ``now`` is a parameter -------------------------------------------


def test_jwt_accepts_until_exp_plus_leeway() -> None:
    token = sign_segments(header_text(), payload_text(exp=NOW + 10))

    assert verify(token, now=NOW + 39, leeway=30)["sub"] == "p1"
    assert_rejected(token, now=NOW + 40, leeway=30)


def test_jwt_rejects_before_nbf_minus_leeway() -> None:
    token = sign_segments(header_text(), payload_text(nbf=NOW + 100))

    assert verify(token, now=NOW + 70, leeway=30)["sub"] == "p1"
    assert_rejected(token, now=NOW + 69, leeway=30)


def test_jwt_rejects_iat_in_the_future_beyond_leeway() -> None:
    token = sign_segments(header_text(), payload_text(iat=NOW + 31))

    assert_rejected(token, now=NOW, leeway=30)


def test_jwt_rejects_nbf_after_exp() -> None:
    token = sign_segments(header_text(), payload_text(nbf=NOW + 700))

    assert_rejected(token, now=NOW + 650)


def test_jwt_rejects_lifetime_over_maximum() -> None:
    token = sign_segments(header_text(), payload_text(exp=NOW + 901))

    assert verify(token, max_lifetime=901)["sub"] == "p1"
    assert_rejected(token, max_lifetime=900)


def test_jwt_expired_token_raises_the_callers_expired_error() -> None:
    token = sign_segments(header_text(), payload_text(exp=NOW + 10))

    with pytest.raises(LicenseExpired):
        verify(token, now=NOW + 3600, error=LicenseError, expired_error=LicenseExpired)


def test_jwt_forged_expired_token_raises_invalid_not_expired() -> None:
    forged = sign_segments(
        header_text(), payload_text(exp=NOW + 10), SM2PrivateKey.generate()
    )

    with pytest.raises(LicenseError) as caught:
        verify(forged, now=NOW + 3600, error=LicenseError, expired_error=LicenseExpired)
    assert type(caught.value) is LicenseError


def test_jwt_decode_never_reads_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    token = sign_segments(header_text(), payload_text())

    def no_clock() -> float:
        raise AssertionError("the verifier read the clock")

    monkeypatch.setattr("time.time", no_clock)
    assert verify(token)["sub"] == "p1"


@pytest.mark.parametrize("now", [True, 1.5e9, "1767225600", -1])
def test_jwt_decode_refuses_malformed_now(now: object) -> None:
    token = sign_segments(header_text(), payload_text())

    with pytest.raises(ValueError):
        verify(token, now=now)


# -- encode refuses what decode would refuse -----------------------------------------


@pytest.mark.parametrize("exp", [1.0e9, "1767225600", True, 2**41, -1])
def test_jwt_encode_refuses_exp_that_is_not_a_sane_integer(exp: object) -> None:
    with pytest.raises(ValueError):
        jwt_sm2.encode({"sub": "p1", "iat": NOW, "exp": exp}, PRIVATE_KEY, KID, TYP)


def test_jwt_encode_refuses_public_key() -> None:
    with pytest.raises(jwt.InvalidKeyError):
        jwt_sm2.encode(
            json.loads(payload_text()),
            PUBLIC_KEY,
            KID,
            TYP,  # type: ignore[arg-type]
        )


# -- the typed claim reader ---------------------------------------------------------


def test_claims_reader_refuses_bool_as_integer() -> None:
    with pytest.raises(TokenInvalid):
        jwt_sm2.Claims({"n": True}).integer("n")


def test_claims_reader_refuses_list_with_non_string() -> None:
    with pytest.raises(LicenseError):
        jwt_sm2.Claims({"xs": ["a", 1]}, LicenseError).texts("xs")


def test_claims_reader_refuses_empty_string() -> None:
    with pytest.raises(TokenInvalid):
        jwt_sm2.Claims({"s": ""}).text("s")
