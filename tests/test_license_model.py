"""Licenses: the model, signing, verification, use checks, origins, networks."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from xinfeng.license import origins
from xinfeng.license.model import (
    LICENSE_TYP,
    License,
    format_time,
    issue_license,
    parse_time,
    verify_license,
)
from xinfeng.license.tokens import EMBED_TYP
from xinfeng.sdk.errors import (
    LicenseError,
    LicenseExpired,
    OriginDenied,
    ProductDenied,
)
from xinfeng.sdk.sm2 import DEFAULT_UID, SM2PrivateKey, SM2PublicKey

VECTORS = Path(__file__).parent / "vectors"
TEST_KEY = json.loads((VECTORS / "jwt_sm2_test_key.json").read_text())
PRIVATE_KEY = SM2PrivateKey.from_bytes(bytes.fromhex(TEST_KEY["private_key_hex"]))
PUBLIC_KEY = SM2PublicKey.from_bytes(bytes.fromhex(TEST_KEY["public_key_hex"]))
KID = "licensor-1"
KEYS = {KID: PUBLIC_KEY}

NOT_BEFORE = 1767225600  # 2026-01-01T00:00:00Z
NOT_AFTER = 1798761600  # 2027-01-01T00:00:00Z
NOW = NOT_BEFORE + 86400

LICENSE = License(
    license_id="lic-0001",
    licensee="Provincial Emergency Command Center",
    project="emergency-command",
    contract_id="GD-2026-017",
    scenario="emergency command situational awareness",
    products=("gd-stations", "gd-radar"),
    origins=("https://ecs.example.gov.cn", "https://*.ops.example.gov.cn"),
    networks=("10.20.0.0/16", "2001:db8:20::/48"),
    not_before=NOT_BEFORE,
    not_after=NOT_AFTER,
    rate_per_minute=120,
    rate_per_day=20000,
    max_sessions=50,
    key_id=KID,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: str, header: dict[str, Any] | None = None) -> str:
    """A license-shaped token signed straight with the SM2 key."""
    header = header or {"alg": "SM2SM3", "kid": KID, "typ": LICENSE_TYP}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload.encode())}"
    signature = PRIVATE_KEY.sign_raw(signing_input.encode(), DEFAULT_UID)
    return f"{signing_input}.{b64(signature)}"


def claims_text(**changes: Any) -> str:
    claims = LICENSE.to_claims(NOT_BEFORE)
    claims.update(changes)
    return json.dumps({k: v for k, v in claims.items() if v is not None})


def replace(**changes: Any) -> License:
    return dataclasses.replace(LICENSE, **changes)


# -- issue and verify ---------------------------------------------------------------


def test_license_round_trip() -> None:
    token = issue_license(LICENSE, PRIVATE_KEY, KID, issued_at=NOT_BEFORE)

    assert verify_license(token, KEYS, NOW) == LICENSE


def test_license_claims_carry_issuer_subject_and_window() -> None:
    claims = LICENSE.to_claims(NOT_BEFORE)

    assert claims["iss"] == "xinfeng-licensor"
    assert claims["sub"] == "lic-0001"
    assert (claims["nbf"], claims["exp"], claims["iat"]) == (
        NOT_BEFORE,
        NOT_AFTER,
        NOT_BEFORE,
    )
    assert License.from_claims(claims) == LICENSE


def test_license_token_header_has_license_typ() -> None:
    token = issue_license(LICENSE, PRIVATE_KEY, KID, issued_at=NOT_BEFORE)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))

    assert header == {"alg": "SM2SM3", "kid": KID, "typ": "xf-license+jwt"}


def test_license_accepts_token_built_outside_the_encoder() -> None:
    assert verify_license(signed(claims_text()), KEYS, NOW) == LICENSE


def test_issue_license_refuses_kid_other_than_key_id() -> None:
    with pytest.raises(ValueError):
        issue_license(LICENSE, PRIVATE_KEY, "licensor-2", issued_at=NOT_BEFORE)


def test_license_rejects_signature_by_another_key() -> None:
    other = SM2PrivateKey.generate()
    token = issue_license(LICENSE, other, KID, issued_at=NOT_BEFORE)

    with pytest.raises(LicenseError) as caught:
        verify_license(token, KEYS, NOW)
    assert type(caught.value) is LicenseError


def test_license_rejects_kid_not_matching_key_id_claim() -> None:
    keys = {KID: PUBLIC_KEY, "licensor-2": PUBLIC_KEY}
    header = {"alg": "SM2SM3", "kid": "licensor-2", "typ": LICENSE_TYP}

    with pytest.raises(LicenseError):
        verify_license(signed(claims_text(), header), keys, NOW)


@pytest.mark.parametrize(
    "secret",
    [
        bytes.fromhex(TEST_KEY["public_key_hex"]),
        TEST_KEY["public_key_hex"].encode(),
        TEST_KEY["public_key_pem"].encode(),
    ],
    ids=["raw", "hex", "pem"],
)
def test_license_rejects_hs256_keyed_with_public_key(secret: bytes) -> None:
    header = {"alg": "HS256", "kid": KID, "typ": LICENSE_TYP}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(claims_text().encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()

    with pytest.raises(LicenseError):
        verify_license(f"{signing_input}.{b64(mac)}", KEYS, NOW)


def test_license_rejects_hs256_keyed_with_raw_public_key() -> None:
    header = {"alg": "HS256", "kid": KID, "typ": LICENSE_TYP}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(claims_text().encode())}"
    secret = PUBLIC_KEY.to_bytes()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()

    with pytest.raises(LicenseError):
        verify_license(f"{signing_input}.{b64(mac)}", KEYS, NOW)


def test_license_rejects_alg_none() -> None:
    header = {"alg": "none", "kid": KID, "typ": LICENSE_TYP}
    token = f"{b64(json.dumps(header).encode())}.{b64(claims_text().encode())}."

    with pytest.raises(LicenseError):
        verify_license(token, KEYS, NOW)


def test_license_rejects_embed_token_typ() -> None:
    header = {"alg": "SM2SM3", "kid": KID, "typ": EMBED_TYP}

    with pytest.raises(LicenseError):
        verify_license(signed(claims_text(), header), KEYS, NOW)


def test_license_rejects_exp_as_string() -> None:
    with pytest.raises(LicenseError):
        verify_license(signed(claims_text(exp=str(NOT_AFTER))), KEYS, NOW)


def test_license_rejects_nbf_as_string() -> None:
    with pytest.raises(LicenseError):
        verify_license(signed(claims_text(nbf="0")), KEYS, NOW)


def test_license_rejects_exp_as_float_exponent() -> None:
    payload = claims_text().replace(f'"exp": {NOT_AFTER}', '"exp": 1e300')
    assert "1e300" in payload

    with pytest.raises(LicenseError):
        verify_license(signed(payload), KEYS, NOW)


def test_license_rejects_exp_as_huge_integer() -> None:
    with pytest.raises(LicenseError):
        verify_license(signed(claims_text(exp=10**50)), KEYS, NOW)


def test_license_rejects_window_longer_than_ten_years() -> None:
    exp = NOT_BEFORE + 11 * 366 * 86400

    with pytest.raises(LicenseError) as caught:
        verify_license(signed(claims_text(exp=exp)), KEYS, NOW)
    assert type(caught.value) is LicenseError


def test_license_rejects_duplicate_products_claim() -> None:
    payload = claims_text()[:-1] + ', "products": ["gd-everything"]}'

    with pytest.raises(LicenseError):
        verify_license(signed(payload), KEYS, NOW)


def test_license_rejects_wrong_issuer() -> None:
    with pytest.raises(LicenseError):
        verify_license(signed(claims_text(iss="xinfeng-server")), KEYS, NOW)


@pytest.mark.parametrize(
    "claim", ["sub", "nbf", "licensee", "products", "origins", "networks", "key_id"]
)
def test_license_rejects_missing_claim(claim: str) -> None:
    with pytest.raises(LicenseError):
        verify_license(signed(claims_text(**{claim: None})), KEYS, NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"products": "gd-stations"},
        {"products": [1]},
        {"products": []},
        {"origins": ["null"]},
        {"origins": ["https://*"]},
        {"networks": "10.0.0.0/8"},
        {"networks": ["10.0.0.1/8"]},
        {"rate_per_minute": True},
        {"rate_per_minute": "120"},
        {"rate_per_day": 0},
        {"max_sessions": 1.5},
        {"sub": "lic/../1"},
        {"licensee": 7},
    ],
    ids=lambda changes: "-".join(f"{k}={v!r}" for k, v in changes.items()),
)
def test_license_rejects_field_of_wrong_type_or_range(changes: dict[str, Any]) -> None:
    with pytest.raises(LicenseError) as caught:
        verify_license(signed(claims_text(**changes)), KEYS, NOW)
    assert type(caught.value) is LicenseError


def test_license_before_not_before_is_expired() -> None:
    token = issue_license(LICENSE, PRIVATE_KEY, KID, issued_at=NOT_BEFORE - 86400)

    with pytest.raises(LicenseExpired):
        verify_license(token, KEYS, NOT_BEFORE - 3600)


def test_license_after_not_after_is_expired() -> None:
    token = issue_license(LICENSE, PRIVATE_KEY, KID, issued_at=NOT_BEFORE)

    assert verify_license(token, KEYS, NOT_AFTER + 59) == LICENSE
    with pytest.raises(LicenseExpired):
        verify_license(token, KEYS, NOT_AFTER + 60)


# -- construction -----------------------------------------------------------------


def test_license_normalises_origins_and_networks() -> None:
    lic = replace(
        origins=("HTTPS://ECS.Example.gov.cn:443",),
        networks=("2001:DB8:20::/48",),
    )

    assert lic.origins == ("https://ecs.example.gov.cn",)
    assert lic.networks == ("2001:db8:20::/48",)


@pytest.mark.parametrize(
    "changes",
    [
        {"license_id": ""},
        {"license_id": "lic.1"},
        {"licensee": ""},
        {"products": ()},
        {"products": ("a", "a")},
        {"products": "gd-stations"},
        {"origins": ()},
        {"origins": ("https://a.example", "HTTPS://A.EXAMPLE")},
        {"networks": ("10.0.0.1/8",)},
        {"networks": ("10.0.0.1",)},
        {"not_after": NOT_BEFORE},
        {"not_before": -1},
        {"rate_per_minute": 0},
        {"max_sessions": True},
    ],
    ids=lambda changes: "-".join(f"{k}={v!r}" for k, v in changes.items()),
)
def test_license_construction_refuses(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(**changes)


# -- check_use -----------------------------------------------------------------------


def test_license_check_use_accepts_licensed_use() -> None:
    LICENSE.check_use("gd-stations", "https://ecs.example.gov.cn", "10.20.1.2", NOW)
    LICENSE.check_use("gd-radar", "https://a.ops.example.gov.cn", "2001:db8:20::7", NOW)


def test_license_check_use_rejects_unlicensed_product() -> None:
    with pytest.raises(ProductDenied):
        LICENSE.check_use("gd-typhoon", "https://ecs.example.gov.cn", "10.20.1.2", NOW)


def test_license_check_use_rejects_lookalike_suffix_origin() -> None:
    with pytest.raises(OriginDenied):
        LICENSE.check_use(
            "gd-stations", "https://ecs.example.gov.cn.evil.test", "10.20.1.2", NOW
        )


def test_license_check_use_rejects_ip_outside_networks() -> None:
    with pytest.raises(LicenseError) as caught:
        LICENSE.check_use("gd-stations", "https://ecs.example.gov.cn", "10.21.0.1", NOW)
    assert type(caught.value) is LicenseError


def test_license_check_use_rejects_malformed_ip() -> None:
    with pytest.raises(LicenseError):
        LICENSE.check_use("gd-stations", "https://ecs.example.gov.cn", "10.20.1", NOW)


def test_license_check_use_matches_ipv4_mapped_ipv6_client() -> None:
    LICENSE.check_use(
        "gd-stations", "https://ecs.example.gov.cn", "::ffff:10.20.3.4", NOW
    )


def test_license_check_use_without_networks_allows_any_ip() -> None:
    lic = replace(networks=())

    lic.check_use("gd-stations", "https://ecs.example.gov.cn", "203.0.113.9", NOW)


def test_license_check_use_without_client_ip_defers_network_check() -> None:
    LICENSE.check_use("gd-stations", "https://ecs.example.gov.cn", None, NOW)


@pytest.mark.parametrize("now", [NOT_BEFORE - 1, NOT_AFTER])
def test_license_check_use_outside_window_is_expired(now: int) -> None:
    with pytest.raises(LicenseExpired):
        LICENSE.check_use("gd-stations", "https://ecs.example.gov.cn", "10.20.1.2", now)


# -- origins (starlette#800/#801 and kin) ---------------------------------------------

CORS_CASE_ORIGINS = [
    "https://app.xinfeng.example",
    "https://app.xinfeng.example.evil.test",
    "https://evilxinfeng.example",
    "https://a.xinfeng.example:8443",
    "null",
    "HTTPS://APP.XINFENG.EXAMPLE",
]


def test_origin_exact_allow_list_over_published_cors_case() -> None:
    allowed = ["https://app.xinfeng.example"]
    results = {}
    for origin in CORS_CASE_ORIGINS:
        try:
            results[origin] = origins.check_origin(origin, allowed)
        except OriginDenied:
            results[origin] = None

    assert results == {
        "https://app.xinfeng.example": "https://app.xinfeng.example",
        "https://app.xinfeng.example.evil.test": None,
        "https://evilxinfeng.example": None,
        "https://a.xinfeng.example:8443": None,
        "null": None,
        "HTTPS://APP.XINFENG.EXAMPLE": "https://app.xinfeng.example",
    }


def test_origin_rejects_lookalike_suffix_host() -> None:
    with pytest.raises(OriginDenied):
        origins.check_origin(
            "https://app.example.org.evil.com",
            ["https://*.example.org"],
            allow_wildcard=True,
        )


def test_origin_rejects_lookalike_prefix_host() -> None:
    with pytest.raises(OriginDenied):
        origins.check_origin(
            "https://evilexample.org", ["https://*.example.org"], allow_wildcard=True
        )


def test_origin_rejects_null() -> None:
    with pytest.raises(OriginDenied):
        origins.check_origin("null", ["null"])


def test_origin_wildcard_matches_one_leftmost_label() -> None:
    allowed = ["https://*.example.org"]

    assert (
        origins.check_origin("https://app.example.org", allowed, allow_wildcard=True)
        == "https://app.example.org"
    )
    for origin in ["https://a.b.example.org", "https://example.org"]:
        with pytest.raises(OriginDenied):
            origins.check_origin(origin, allowed, allow_wildcard=True)


def test_origin_rejects_wildcard_pattern_sent_as_origin() -> None:
    with pytest.raises(OriginDenied):
        origins.check_origin(
            "https://*.example.org", ["https://*.example.org"], allow_wildcard=True
        )


def test_origin_wildcard_needs_explicit_allowance() -> None:
    with pytest.raises(OriginDenied):
        origins.check_origin("https://app.example.org", ["https://*.example.org"])


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "https://*",
        "https://*.org",
        "http://*.example.org",
        "https://a*.example.org",
        "https://app.*.example.org",
        "https://*.*.example.org",
        "https://*.10.0.0",
    ],
)
def test_origin_rejects_malformed_wildcard_pattern(pattern: str) -> None:
    with pytest.raises(OriginDenied):
        origins.normalize_origin_pattern(pattern, allow_wildcard=True)


def test_origin_wildcard_keeps_port_exact() -> None:
    allowed = ["https://*.example.org:8443"]

    origins.check_origin("https://a.example.org:8443", allowed, allow_wildcard=True)
    with pytest.raises(OriginDenied):
        origins.check_origin("https://a.example.org", allowed, allow_wildcard=True)


@pytest.mark.parametrize(
    ("origin", "canonical"),
    [
        ("https://Example.ORG", "https://example.org"),
        ("https://example.org:443", "https://example.org"),
        ("http://example.org:80", "http://example.org"),
        ("http://example.org:443", "http://example.org:443"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"),
        ("https://xn--fiqs8s.example", "https://xn--fiqs8s.example"),
    ],
)
def test_origin_normalises(origin: str, canonical: str) -> None:
    assert origins.normalize_origin(origin) == canonical


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "",
        "example.org",
        "https://example.org/",
        "https://example.org/app",
        "https://example.org?x=1",
        "https://example.org#top",
        "https://user@example.org",
        "https://user:pw@example.org",
        "ftp://example.org",
        "javascript://example.org",
        "file://",
        "https://",
        "https://example.org:0",
        "https://example.org:65536",
        "https://example.org:0443",
        "https://example.org:",
        "https://example.org.",
        "https://-example.org",
        "https://exa_mple.org",
        "https://例子.example",
        "https://example.org\n",
        " https://example.org",
        "https://example.org\t",
        "https://010.0.0.1",
        "https://1.2.3",
        "https://[::1",
        "https://[fe80::1%25eth0]",
        "https://" + "a" * 300 + ".org",
        "https://*.example.org",
        "https://*",
    ],
)
def test_origin_rejects_malformed(origin: str) -> None:
    with pytest.raises(OriginDenied):
        origins.normalize_origin(origin)


def test_origin_rejects_non_string() -> None:
    with pytest.raises(OriginDenied):
        origins.normalize_origin(b"https://example.org")  # type: ignore[arg-type]


# -- networks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_ip", "inside"),
    [
        ("10.20.0.0", True),
        ("10.20.255.255", True),
        ("10.21.0.0", False),
        ("2001:db8:20:ffff::1", True),
        ("2001:db8:21::1", False),
        ("::ffff:10.20.0.1", True),
    ],
)
def test_network_membership(client_ip: str, inside: bool) -> None:
    networks = ["10.20.0.0/16", "2001:db8:20::/48"]
    if inside:
        origins.check_client_ip(client_ip, networks)
    else:
        with pytest.raises(LicenseError):
            origins.check_client_ip(client_ip, networks)


@pytest.mark.parametrize("text", ["10.0.0.1/8", "10.0.0.0", "fe80::/10%eth0", "x/8"])
def test_network_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        origins.parse_network(text)


@pytest.mark.parametrize("client_ip", ["fe80::1%eth0", "10.20.0.1/32", "", "10.20.0"])
def test_network_rejects_malformed_client_ip(client_ip: str) -> None:
    with pytest.raises(LicenseError):
        origins.check_client_ip(client_ip, ["0.0.0.0/0", "::/0"])


def test_network_empty_list_denies() -> None:
    with pytest.raises(LicenseError):
        origins.check_client_ip("10.20.0.1", [])


# -- ISO 8601 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-01-01T00:00:00Z", 1767225600),
        ("2026-01-01T08:00:00+08:00", 1767225600),
        ("2025-12-31T19:00:00-05:00", 1767225600),
        ("1970-01-01T00:00:00+00:00", 0),
    ],
)
def test_parse_time_with_zone(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T00:00:00",
        "2026-01-01",
        "2026-01-01 00:00",
        "2026-01-01T00:00:00.5Z",
        "1969-12-31T23:59:59Z",
        "not a time",
        "",
    ],
)
def test_parse_time_rejects_naive_or_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_format_time_is_utc_with_z() -> None:
    assert format_time(1767225600) == "2026-01-01T00:00:00Z"
    assert parse_time(format_time(1767225600)) == 1767225600
