"""The admin API under /admin/v1: its own authentication, and the licensor's
product and license operations over JSON."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from xinfeng.license.products import make_identifier
from xinfeng.server.admin_tokens import FILE_NAME, AdminTokenError, AdminTokens
from xinfeng.server.cli import main

from .conftest import HOST_ORIGIN, Provider, make_provider
from .test_server_api import code, events, get_data, mint, open_session

CHINA = timezone(timedelta(hours=8))


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[tuple[Provider, dict[str, str]]]:
    """A provider with admin tokens for alice, bob and carol."""
    p = make_provider(tmp_path)
    tokens = AdminTokens(p.data_dir)
    names = {
        name: tokens.new(name, p.clock() // 1000)[0]
        for name in ("alice", "bob", "carol")
    }
    with p.client:
        yield p, names


def call(
    p: Provider, token: str | None, method: str, path: str, body: Any = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return p.client.request(method, "/admin/v1" + path, headers=headers, json=body)


def iso(seconds: int, zone: timezone = UTC) -> str:
    return datetime.fromtimestamp(seconds, tz=zone).isoformat()


def product_body(product_id: str = "gd-radar", grade: int = 3) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "name": "Radar mosaic",
        "category": "weather radar",
        "grade": grade,
        "region": "440000",
        "category_code": "02",
        "source": "CMA radar network",
        "owner": "Guangdong Meteorological Service",
    }


def license_body(p: Provider, **overrides: Any) -> dict[str, Any]:
    now = p.clock() // 1000
    body = {
        "licensee": "Emergency Command Center",
        "project": "command-b",
        "contract_id": "C-2",
        "scenario": "flood response",
        "products": ["test-product"],
        "origins": [HOST_ORIGIN],
        "not_before": iso(now - 60, CHINA),
        "not_after": iso(now + 7 * 86400),
    }
    return body | overrides


# -- authentication ----------------------------------------------------------------


def test_admin_api_requires_a_token(admin: Any) -> None:
    p, _ = admin
    response = call(p, None, "GET", "/licenses")
    assert (response.status_code, code(response)) == (401, "admin_unauthorized")
    logged = events(p, "admin_request")[-1]
    assert (logged["outcome"], logged["detail"]["admin"]) == (
        "admin_unauthorized",
        None,
    )


def test_admin_api_rejects_license_credential(admin: Any) -> None:
    p, _ = admin
    response = call(p, p.credential, "GET", "/licenses")
    assert (response.status_code, code(response)) == (401, "admin_unauthorized")


def test_admin_api_rejects_embed_token(admin: Any) -> None:
    p, _ = admin
    token = mint(p).json()["token"]
    assert call(p, token, "GET", "/whoami").status_code == 401


def test_admin_api_rejects_token_with_altered_secret(admin: Any) -> None:
    p, names = admin
    good = names["alice"]
    altered = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert call(p, altered, "GET", "/whoami").status_code == 401


def test_admin_api_rejects_token_with_noncanonical_base64_tail(admin: Any) -> None:
    p, names = admin
    good = names["alice"]
    alphabet = (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    # 32 secret bytes take 43 characters: the last one's two low bits are
    # spare, so flipping them spells the same bytes differently.
    spare = alphabet[alphabet.index(good[-1]) ^ 0b01]
    assert call(p, good, "GET", "/whoami").status_code == 200
    assert call(p, good[:-1] + spare, "GET", "/whoami").status_code == 401


def test_admin_api_rejects_token_with_unknown_id(admin: Any) -> None:
    p, names = admin
    prefix, _, secret = names["alice"].partition(".")
    forged = "xfa_00000000." + secret if prefix != "xfa_00000000" else "x"
    assert call(p, forged, "GET", "/whoami").status_code == 401


def test_admin_api_rejects_revoked_token(admin: Any) -> None:
    p, names = admin
    token_id = names["carol"][len("xfa_") :].split(".")[0]
    AdminTokens(p.data_dir).revoke(token_id)
    assert call(p, names["carol"], "GET", "/whoami").status_code == 401
    assert call(p, names["bob"], "GET", "/whoami").json() == {"admin": "bob"}


def test_admin_tokens_are_stored_hashed_and_private(admin: Any) -> None:
    p, names = admin
    path = p.data_dir / FILE_NAME
    stored = path.read_text()
    for token in names.values():
        assert token.split(".")[1] not in stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_admin_token_for_same_name_twice_refused(admin: Any) -> None:
    p, _ = admin
    with pytest.raises(AdminTokenError):
        AdminTokens(p.data_dir).new("alice", 0)


def test_admin_token_from_cli_opens_the_api(
    admin: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    p, _ = admin
    argv = [
        "admin",
        "token",
        "new",
        "--name",
        "dave",
        "--json",
        "--data-dir",
        str(p.data_dir),
    ]
    assert main(argv) == 0
    token = json.loads(capsys.readouterr().out)["token"]
    assert call(p, token, "GET", "/whoami").json() == {"admin": "dave"}


# -- products ------------------------------------------------------------------------


def test_grade3_review_through_the_api(admin: Any) -> None:
    p, t = admin
    created = call(p, t["alice"], "POST", "/products", product_body())
    assert created.status_code == 200, created.text
    product = created.json()["product"]
    assert product["identifier"] == make_identifier("440000", "02", 1)
    assert product["state"] == "draft"

    call(p, t["alice"], "POST", "/products/gd-radar/submit", {"note": "ready"})
    own = call(p, t["alice"], "POST", "/products/gd-radar/approve", {"reason": "ok"})
    assert (own.status_code, code(own)) == (409, "review_refused")
    first = call(p, t["bob"], "POST", "/products/gd-radar/approve", {"reason": "ok"})
    assert first.json()["product"]["state"] == "submitted"
    second = call(
        p,
        t["carol"],
        "POST",
        "/products/gd-radar/approve",
        {"reason": "verified the source"},
    )
    assert second.json()["product"]["approvals"] == ["bob", "carol"]
    assert second.json()["product"]["state"] == "approved"

    listed = call(p, t["bob"], "GET", "/products?state=approved").json()
    assert "gd-radar" in [row["product_id"] for row in listed["products"]]


def test_reviewer_named_in_body_refused(admin: Any) -> None:
    p, t = admin
    call(p, t["alice"], "POST", "/products", product_body(grade=1))
    call(p, t["alice"], "POST", "/products/gd-radar/submit")
    response = call(
        p,
        t["alice"],
        "POST",
        "/products/gd-radar/approve",
        {"reason": "ok", "reviewer": "bob"},
    )
    assert (response.status_code, code(response)) == (400, "bad_request")


def test_reject_then_edit_then_resubmit(admin: Any) -> None:
    p, t = admin
    call(p, t["alice"], "POST", "/products", product_body(grade=1))
    call(p, t["alice"], "POST", "/products/gd-radar/submit")
    call(p, t["bob"], "POST", "/products/gd-radar/reject", {"reason": "no licence"})
    again = call(p, t["alice"], "POST", "/products/gd-radar/submit")
    assert code(again) == "review_refused"
    edited = call(
        p,
        t["alice"],
        "PATCH",
        "/products/gd-radar",
        {"source": "CMA radar network (CC BY 4.0)"},
    )
    assert edited.json()["product"]["revision"] == 2
    resubmitted = call(p, t["alice"], "POST", "/products/gd-radar/submit")
    assert resubmitted.json()["product"]["state"] == "submitted"


def test_product_with_bad_identifier_refused(admin: Any) -> None:
    p, t = admin
    body = product_body() | {"identifier": "XF-440000-02-000001-0"}
    del body["region"], body["category_code"]
    response = call(p, t["alice"], "POST", "/products", body)
    assert (response.status_code, code(response)) == (400, "product_invalid")


def test_unknown_product_is_404(admin: Any) -> None:
    p, t = admin
    response = call(p, t["alice"], "GET", "/products/nope")
    assert (response.status_code, code(response)) == (404, "product_not_found")


def test_retired_product_stops_tokens(admin: Any) -> None:
    p, t = admin
    retired = call(
        p,
        t["bob"],
        "POST",
        "/products/test-product/retire",
        {"reason": "source discontinued"},
    )
    assert retired.json()["product"]["state"] == "retired"
    assert code(mint(p)) == "product_denied"


# -- licenses ------------------------------------------------------------------------


def test_issue_show_list_through_the_api(admin: Any) -> None:
    p, t = admin
    issued = call(p, t["alice"], "POST", "/licenses", license_body(p))
    assert issued.status_code == 200, issued.text
    lid = issued.json()["license_id"]
    assert issued.headers["cache-control"] == "no-store"

    shown = call(p, t["bob"], "GET", f"/licenses/{lid}").json()
    assert (shown["project"], shown["status"]) == ("command-b", "active")
    listed = call(p, t["bob"], "GET", "/licenses?project=command-b").json()
    assert [row["license_id"] for row in listed["licenses"]] == [lid]
    assert mint(p, credential=issued.json()["credential"]).status_code == 200


def test_issue_with_time_without_zone_refused(admin: Any) -> None:
    p, t = admin
    body = license_body(p, not_after="2030-01-01T00:00:00")
    response = call(p, t["alice"], "POST", "/licenses", body)
    assert (response.status_code, code(response)) == (400, "bad_request")


def test_issue_for_unapproved_product_refused(admin: Any) -> None:
    p, t = admin
    call(p, t["alice"], "POST", "/products", product_body(grade=1))
    body = license_body(p, products=["gd-radar"])
    response = call(p, t["alice"], "POST", "/licenses", body)
    assert (response.status_code, code(response)) == (403, "product_denied")


def test_issue_with_malformed_origin_refused(admin: Any) -> None:
    p, t = admin
    body = license_body(p, origins=["javascript:alert(1)"])
    response = call(p, t["alice"], "POST", "/licenses", body)
    assert (response.status_code, code(response)) == (400, "license_fields_invalid")


def test_list_with_unknown_filter_refused(admin: Any) -> None:
    p, t = admin
    response = call(p, t["alice"], "GET", "/licenses?owner=x")
    assert code(response) == "bad_request"


def test_renew_through_the_api(admin: Any) -> None:
    p, t = admin
    lid = p.license_id
    renewed = call(p, t["alice"], "POST", f"/licenses/{lid}/renew", {"days": 30})
    assert renewed.json()["renews"] == lid
    twice = call(p, t["alice"], "POST", f"/licenses/{lid}/renew", {})
    assert (twice.status_code, code(twice)) == (409, "license_state")


def test_status_change_without_reason_refused(admin: Any) -> None:
    p, t = admin
    response = call(p, t["alice"], "POST", f"/licenses/{p.license_id}/suspend", {})
    assert (response.status_code, code(response)) == (400, "bad_request")


def test_body_that_is_not_json_refused(admin: Any) -> None:
    p, t = admin
    response = p.client.post(
        f"/admin/v1/licenses/{p.license_id}/suspend",
        content=b"{oops",
        headers={"Authorization": f"Bearer {t['alice']}"},
    )
    assert (response.status_code, code(response)) == (400, "bad_request")


def test_unknown_license_is_404(admin: Any) -> None:
    p, t = admin
    response = call(p, t["alice"], "POST", "/licenses/lic-nope/revoke", {"reason": "x"})
    assert (response.status_code, code(response)) == (404, "license_not_found")


def test_every_admin_action_is_an_audit_event(admin: Any) -> None:
    p, t = admin
    call(
        p,
        t["alice"],
        "POST",
        f"/licenses/{p.license_id}/suspend",
        {"reason": "invoice overdue"},
    )
    call(p, t["bob"], "POST", f"/licenses/{p.license_id}/resume", {"reason": "paid"})
    call(p, t["bob"], "POST", f"/licenses/{p.license_id}/resume", {"reason": "again"})
    requests = [
        (e["detail"]["action"], e["detail"]["admin"], e["outcome"], e["license_id"])
        for e in events(p, "admin_request")
    ]
    assert requests == [
        ("license_suspend", "alice", "ok", p.license_id),
        ("license_resume", "bob", "ok", p.license_id),
        ("license_resume", "bob", "license_state", p.license_id),
    ]
    suspended = events(p, "license_suspended")[-1]["detail"]
    assert (suspended["actor"], suspended["reason"]) == ("alice", "invoice overdue")


# -- suspension while a component is open (server half of the e2e story) ---------------


def test_suspension_stops_an_open_component_at_its_next_request(admin: Any) -> None:
    p, t = admin
    session = open_session(p)
    assert get_data(p, session)[0].status_code == 200

    call(
        p,
        t["alice"],
        "POST",
        f"/licenses/{p.license_id}/suspend",
        {"reason": "suspected scraping"},
    )
    refused, _ = get_data(p, session)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": {"code": "license_suspended", "message": "The license is suspended."}
    }
    assert events(p, "data_refused")[-1]["outcome"] == "license_suspended"

    call(
        p, t["alice"], "POST", f"/licenses/{p.license_id}/resume", {"reason": "cleared"}
    )
    assert get_data(p, session)[0].status_code == 200


def test_revocation_stops_an_open_component_at_its_next_request(admin: Any) -> None:
    p, t = admin
    session = open_session(p)
    call(
        p,
        t["alice"],
        "POST",
        f"/licenses/{p.license_id}/revoke",
        {"reason": "contract terminated"},
    )
    refused, _ = get_data(p, session)
    assert (refused.status_code, code(refused)) == (403, "license_revoked")
