"""Hostile inputs found by review: each gets a clear 4xx, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xinfeng.license.model import License
from xinfeng.sdk import envelope
from xinfeng.sdk.errors import ProtocolError
from xinfeng.server.admin_tokens import AdminTokens
from xinfeng.server.cli import main as cli_main

from .conftest import Provider, license_fields
from .test_server_api import code, open_session

NESTED_JSON = b"[" * 2000 + b"]" * 2000


def test_counter_above_int64_rejected_as_malformed() -> None:
    headers = {"x-xf-session": "00" * 16, "x-xf-counter": str(2**63),
               "x-xf-time": "1", "x-xf-mac": "00" * 32}
    with pytest.raises(ProtocolError):
        envelope.RequestAuth.from_headers(headers)


def test_data_request_with_counter_above_int64_gets_400(provider: Provider) -> None:
    session = open_session(provider)
    session.counter = 2**63 - 1
    auth = session.sign("GET", "/v1/data/test-product", "", provider.clock())
    response = provider.client.get("/v1/data/test-product", headers=auth.headers())
    assert (response.status_code, code(response)) == (400, "bad_request")


def test_token_request_with_deeply_nested_json_gets_400(provider: Provider) -> None:
    response = provider.client.post(
        "/v1/tokens", content=NESTED_JSON,
        headers={"Authorization": f"Bearer {provider.credential}"})
    assert (response.status_code, code(response)) == (400, "bad_request")


def test_admin_request_with_deeply_nested_json_gets_400(provider: Provider) -> None:
    token = AdminTokens(provider.data_dir).new("alice", provider.clock() // 1000)[0]
    response = provider.client.post(
        "/admin/v1/products", content=NESTED_JSON,
        headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, code(response)) == (400, "bad_request")


@pytest.mark.parametrize("value", ["%C2%B2", "%D9%A1", "-1", "1e3", "9" * 25])
def test_audit_proof_with_non_ascii_or_huge_index_gets_400(
    provider: Provider, value: str
) -> None:
    response = provider.client.get(f"/v1/audit/proof/inclusion?index={value}&size=5")
    assert (response.status_code, code(response)) == (400, "bad_request")


@pytest.mark.parametrize(
    "field", ["rate_per_minute", "rate_per_day", "max_sessions"])
@pytest.mark.parametrize("value", [2**63, 10**23])
def test_license_with_count_beyond_64_bits_refused(
    provider: Provider, field: str, value: int
) -> None:
    with pytest.raises(ValueError):
        License(license_id="lic-000000000001", key_id="k",
                **license_fields(provider.clock, **{field: value}))


def test_cli_license_issue_with_huge_days_is_one_error_line(
    tmp_path: Path, capsys: Any
) -> None:
    status = cli_main([
        "license", "issue", "--data-dir", str(tmp_path), "--licensee", "x",
        "--project", "p", "--contract", "c", "--scenario", "s",
        "--product", "test-product", "--origin", "https://a.example",
        "--days", "99999999999"])
    assert status == 2
    assert "--days" in capsys.readouterr().err


def test_unknown_route_answers_in_the_error_shape(provider: Provider) -> None:
    response = provider.client.get("/static/component/..%2f..%2fapi.py")
    assert (response.status_code, code(response)) == (404, "not_found")


def test_wrong_credential_names_the_credential(provider: Provider) -> None:
    response = provider.client.post(
        "/v1/tokens", json={"products": ["test-product"], "origin": "https://a.b"},
        headers={"Authorization": "Bearer xfc_lic-000000000000.AAAA"})
    assert code(response) == "token_invalid"
    assert "credential" in response.json()["error"]["message"]


GOOD_AUTH = {"x-xf-session": "ab" * 16, "x-xf-counter": "7",
             "x-xf-time": "1700000000000", "x-xf-mac": "cd" * 32}


@pytest.mark.parametrize("field_value", [
    ("x-xf-session", "ab cd" + "ab" * 14),  # 16 bytes to bytes.fromhex
    ("x-xf-session", "AB" * 16),
    ("x-xf-mac", "CD" * 32),
    ("x-xf-counter", "0007"),
    ("x-xf-time", "01700000000000"),
])
def test_non_canonical_auth_headers_are_malformed(
    field_value: tuple[str, str],
) -> None:
    name, value = field_value
    assert envelope.RequestAuth.from_headers(GOOD_AUTH).counter == 7
    with pytest.raises(ProtocolError):
        envelope.RequestAuth.from_headers({**GOOD_AUTH, name: value})
