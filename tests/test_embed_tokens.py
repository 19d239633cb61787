"""Embed tokens and the integrator's license credential."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from xinfeng.license.credentials import (
    check_credential,
    credential_license_id,
    new_credential,
)
from xinfeng.license.model import LICENSE_TYP, License, issue_license, verify_license
from xinfeng.license.tokens import (
    EMBED_TYP,
    EmbedToken,
    mint_embed_token,
    verify_embed_token,
)
from xinfeng.sdk.errors import (
    LicenseError,
    OriginDenied,
    ProductDenied,
    TokenInvalid,
)
from xinfeng.sdk.sm2 import DEFAULT_UID, SM2PrivateKey, SM2PublicKey
from xinfeng.sdk.sm3 import hmac_sm3

VECTORS = Path(__file__).parent / "vectors"
TEST_KEY = json.loads((VECTORS / "jwt_sm2_test_key.json").read_text())
SERVER_KEY = SM2PrivateKey.from_bytes(bytes.fromhex(TEST_KEY["private_key_hex"]))
SERVER_PUBLIC = SM2PublicKey.from_bytes(bytes.fromhex(TEST_KEY["public_key_hex"]))
KID = "server-1"
KEYS = {KID: SERVER_PUBLIC}
NOW = 1767225600
ORIGIN = "https://ecs.example.gov.cn"


def mint(**changes: Any) -> str:
    arguments: dict[str, Any] = {
        "key": SERVER_KEY,
        "kid": KID,
        "license_id": "lic-0001",
        "products": ["gd-stations"],
        "origin": ORIGIN,
        "now": NOW,
        "jti": "jti-1",
    }
    return mint_embed_token(**{**arguments, **changes})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(claims: dict[str, Any], typ: str = EMBED_TYP) -> str:
    header = json.dumps({"alg": "SM2SM3", "kid": KID, "typ": typ})
    signing_input = f"{b64(header.encode())}.{b64(json.dumps(claims).encode())}"
    signature = SERVER_KEY.sign_raw(signing_input.encode(), DEFAULT_UID)
    return f"{signing_input}.{b64(signature)}"


def embed_claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": "xinfeng-server",
        "sub": "lic-0001",
        "products": ["gd-stations"],
        "origin": ORIGIN,
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "jti-1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


# -- embed tokens ----------------------------------------------------------------


def test_embed_token_round_trip() -> None:
    token = verify_embed_token(mint(products=["gd-stations", "gd-radar"]), KEYS, NOW)

    assert token == EmbedToken(
        license_id="lic-0001",
        products=("gd-stations", "gd-radar"),
        origin=ORIGIN,
        exp=NOW + 300,
        jti="jti-1",
    )


def test_embed_token_header_has_embed_typ() -> None:
    header = json.loads(base64.urlsafe_b64decode(mint().split(".")[0] + "=="))

    assert header == {"alg": "SM2SM3", "kid": KID, "typ": "xf-embed+jwt"}


def test_embed_token_normalises_origin() -> None:
    token = verify_embed_token(mint(origin="HTTPS://ECS.example.gov.cn:443"), KEYS, NOW)

    assert token.origin == ORIGIN


def test_embed_token_draws_fresh_jti() -> None:
    first = verify_embed_token(mint(jti=None), KEYS, NOW)
    second = verify_embed_token(mint(jti=None), KEYS, NOW)

    assert first.jti != second.jti
    assert len(first.jti) >= 20


def test_embed_token_for_product_x_cannot_open_product_y() -> None:
    token = verify_embed_token(mint(products=["gd-stations"]), KEYS, NOW)

    token.check_product("gd-stations")
    with pytest.raises(ProductDenied):
        token.check_product("gd-radar")


def test_embed_token_check_origin_rejects_other_origin() -> None:
    token = verify_embed_token(mint(), KEYS, NOW)

    token.check_origin("HTTPS://ECS.EXAMPLE.GOV.CN")
    with pytest.raises(OriginDenied):
        token.check_origin("https://ecs.example.gov.cn.evil.test")


def test_embed_token_expires_after_ttl_plus_leeway() -> None:
    token = mint(ttl=60)

    assert verify_embed_token(token, KEYS, NOW + 89).jti == "jti-1"
    with pytest.raises(TokenInvalid):
        verify_embed_token(token, KEYS, NOW + 90)


@pytest.mark.parametrize("ttl", [0, -1, 901, 3600, 300.0, True])
def test_embed_token_mint_refuses_ttl(ttl: object) -> None:
    with pytest.raises(ValueError):
        mint(ttl=ttl)


@pytest.mark.parametrize(
    "products", [[], "gd-stations", ["a", "a"], [""], [1], ["p"] * 65]
)
def test_embed_token_mint_refuses_products(products: object) -> None:
    with pytest.raises(ValueError):
        mint(products=products)


@pytest.mark.parametrize("origin", ["null", "https://*.example.org", "https://a.org/x"])
def test_embed_token_mint_refuses_origin(origin: str) -> None:
    with pytest.raises(OriginDenied):
        mint(origin=origin)


def test_embed_token_rejects_license_typ() -> None:
    with pytest.raises(TokenInvalid):
        verify_embed_token(signed(embed_claims(), typ=LICENSE_TYP), KEYS, NOW)


def test_embed_token_rejects_license_token() -> None:
    lic = License(
        license_id="lic-0001",
        licensee="L",
        project="P",
        contract_id="C",
        scenario="S",
        products=("gd-stations",),
        origins=(ORIGIN,),
        networks=(),
        not_before=NOW - 60,
        not_after=NOW + 86400,
        rate_per_minute=1,
        rate_per_day=1,
        max_sessions=1,
        key_id=KID,
    )
    license_token = issue_license(lic, SERVER_KEY, KID, issued_at=NOW)

    with pytest.raises(TokenInvalid):
        verify_embed_token(license_token, KEYS, NOW)


def test_license_rejects_embed_token() -> None:
    with pytest.raises(LicenseError):
        verify_license(mint(), KEYS, NOW)


def test_embed_token_rejects_lifetime_over_900_seconds() -> None:
    claims = embed_claims(exp=NOW + 901)

    with pytest.raises(TokenInvalid):
        verify_embed_token(signed(claims), KEYS, NOW)


def test_embed_token_signed_outside_minting_is_accepted_as_control() -> None:
    assert verify_embed_token(signed(embed_claims()), KEYS, NOW).jti == "jti-1"


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "xinfeng-licensor"},
        {"iss": None},
        {"sub": None},
        {"sub": 1},
        {"sub": "lic/../0001"},
        {"products": None},
        {"products": "gd-stations"},
        {"products": []},
        {"products": ["a", "a"]},
        {"origin": None},
        {"origin": "null"},
        {"origin": ["https://ecs.example.gov.cn"]},
        {"jti": None},
        {"jti": 5},
        {"exp": str(NOW + 300)},
        {"iat": None},
    ],
    ids=lambda changes: "-".join(f"{k}={v!r}" for k, v in changes.items()),
)
def test_embed_token_rejects_claim(changes: dict[str, Any]) -> None:
    with pytest.raises(TokenInvalid):
        verify_embed_token(signed(embed_claims(**changes)), KEYS, NOW)


def test_embed_token_rejects_signature_by_another_key() -> None:
    token = mint(key=SM2PrivateKey.generate())

    with pytest.raises(TokenInvalid):
        verify_embed_token(token, KEYS, NOW)


# -- credentials -------------------------------------------------------------------


def test_credential_round_trip() -> None:
    credential, verifier = new_credential("lic-0001")

    assert check_credential(credential, verifier) == "lic-0001"
    assert credential_license_id(credential) == "lic-0001"


def test_credential_text_shape() -> None:
    credential, verifier = new_credential("lic-0001")

    assert re.fullmatch(r"xfc_lic-0001\.[A-Za-z0-9_-]{43}", credential)
    assert len(verifier) == 49 and verifier[0] == 1


def test_credential_verifier_is_hmac_sm3_keyed_with_its_salt() -> None:
    credential, verifier = new_credential("lic-0001")
    secret = base64.urlsafe_b64decode(credential.split(".")[1] + "=")
    message = b"xinfeng credential v1\x00lic-0001\x00" + secret

    assert verifier[17:] == hmac_sm3(verifier[1:17], message)


def test_credential_verifiers_are_salted() -> None:
    first = new_credential("lic-0001")
    second = new_credential("lic-0001")

    assert first[0] != second[0]
    assert first[1][1:17] != second[1][1:17]


def test_credential_rejects_other_credential_of_same_license() -> None:
    _, verifier = new_credential("lic-0001")
    other, _ = new_credential("lic-0001")

    with pytest.raises(TokenInvalid):
        check_credential(other, verifier)


def test_credential_rejects_license_id_swapped_in_text() -> None:
    credential, verifier = new_credential("lic-0001")
    swapped = credential.replace("lic-0001", "lic-0002")

    with pytest.raises(TokenInvalid):
        check_credential(swapped, verifier)


def test_credential_rejects_flipped_secret_character() -> None:
    credential, verifier = new_credential("lic-0001")
    last = "A" if credential[-2] != "A" else "B"
    tampered = credential[:-2] + last + credential[-1]

    with pytest.raises(TokenInvalid):
        check_credential(tampered, verifier)


@pytest.mark.parametrize(
    "transform",
    [
        lambda c: c[len("xfc_") :],
        lambda c: c.replace("xfc_", "XFC_"),
        lambda c: c + "=",
        lambda c: c[:-1],
        lambda c: c + "A",
        lambda c: c.replace(".", ".."),
        lambda c: c.replace(".", ""),
        lambda c: " " + c,
        lambda c: c + "\n",
        lambda c: c.replace("lic-0001", "lic.0001"),
        lambda c: c.replace("lic-0001", ""),
    ],
    ids=[
        "no_prefix",
        "upper_prefix",
        "padding",
        "short_secret",
        "long_secret",
        "double_dot",
        "no_dot",
        "leading_space",
        "trailing_newline",
        "dotted_license_id",
        "empty_license_id",
    ],
)
def test_credential_rejects_malformed_text(transform: Any) -> None:
    credential, verifier = new_credential("lic-0001")

    with pytest.raises(TokenInvalid):
        check_credential(transform(credential), verifier)
    with pytest.raises(TokenInvalid):
        credential_license_id(transform(credential))


def test_credential_rejects_non_canonical_secret_encoding() -> None:
    credential, verifier = new_credential("lic-0001")
    # 32 bytes take 43 characters; the last one carries 2 unused bits.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(credential[-1]) ^ 1]

    with pytest.raises(TokenInvalid):
        check_credential(credential[:-1] + last, verifier)


@pytest.mark.parametrize(
    "bad_verifier",
    [b"", b"\x01" * 48, b"\x02" + b"\x00" * 48, "not bytes"],
    ids=["empty", "short", "unknown_version", "text"],
)
def test_credential_rejects_malformed_verifier(bad_verifier: Any) -> None:
    credential, verifier = new_credential("lic-0001")

    with pytest.raises(TokenInvalid):
        check_credential(credential, bad_verifier)
    with pytest.raises(TokenInvalid):
        check_credential(credential, b"\x02" + verifier[1:])


@pytest.mark.parametrize("license_id", ["", "lic.1", "lic 1", "-lic", "l" * 65, 7])
def test_new_credential_refuses_malformed_license_id(license_id: Any) -> None:
    with pytest.raises(ValueError):
        new_credential(license_id)
