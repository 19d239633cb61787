"""The license lifecycle: show, list, suspend, resume, revoke, renew, keys.

Each story runs against a live provider app; license and key operations go
through :class:`~xinfeng.server.licensing.Licensor`, the same code the CLI
and the admin API use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from starlette.testclient import TestClient

from xinfeng.license.model import License, verify_license
from xinfeng.server.cli import issue_license, main
from xinfeng.server.keys import KeyDir
from xinfeng.server.licensing import (
    KeyRefused,
    LicenseFieldsInvalid,
    LicenseFilter,
    LicenseNotFound,
    LicenseStateError,
    Licensor,
    renewal_window,
)

from .conftest import HOST_ORIGIN, Provider, license_fields, make_provider
from .test_server_api import code, events, get_data, handshake, mint, open_session

T = TypeVar("T")
DAY = 86400
ORIGIN_B = "https://command.project-b.example"


def on_licensor(p: Provider, act: Callable[[Licensor], Awaitable[T]]) -> T:
    async def run() -> T:
        return await act(Licensor(p.state.storage, KeyDir(p.data_dir / "keys")))

    return p.client.portal.call(run)


def now_ms(p: Provider) -> int:
    return p.clock()


def issue(p: Provider, **overrides: Any) -> dict[str, Any]:
    fields = license_fields(p.clock, **overrides)
    return on_licensor(p, lambda lic: lic.issue(fields, "tester", now_ms(p)))


def set_status(
    p: Provider, license_id: str, action: str, reason: str = "contract review"
) -> dict[str, Any]:
    return on_licensor(
        p,
        lambda lic: lic.change_status(license_id, action, reason, "tester", now_ms(p)),
    )


def show(p: Provider, license_id: str) -> dict[str, Any]:
    return on_licensor(p, lambda lic: lic.show(license_id, p.clock() // 1000))


# -- show and list ------------------------------------------------------------------


def test_show_gives_verified_claims_and_status(provider: Provider) -> None:
    view = show(provider, provider.license_id)
    assert view["status"] == "active" and view["signature_valid"]
    assert view["project"] == "test-project"
    assert view["origins"] == [HOST_ORIGIN]
    assert view["usable_now"] is True
    assert view["renews"] is None and view["renewed_by"] is None


def test_show_of_unknown_license_refused(provider: Provider) -> None:
    with pytest.raises(LicenseNotFound):
        show(provider, "lic-does-not-exist")


def test_list_filters_by_status_project_and_product(provider: Provider) -> None:
    other = issue(provider, project="project-b", products=("other-product",))
    set_status(provider, other["license_id"], "suspend")

    def ids(**wanted: Any) -> list[str]:
        wanted_filter = LicenseFilter(**wanted)
        rows = on_licensor(
            provider, lambda lic: lic.list_licenses(wanted_filter, provider.clock())
        )
        return [row["license_id"] for row in rows]

    assert sorted(ids()) == sorted([provider.license_id, other["license_id"]])
    assert ids(status="suspended") == [other["license_id"]]
    assert ids(project="test-project") == [provider.license_id]
    assert ids(product="other-product") == [other["license_id"]]
    assert ids(licensee="nobody") == []


def test_issue_with_unknown_field_refused(provider: Provider) -> None:
    fields = license_fields(provider.clock) | {"admin": True}
    with pytest.raises(LicenseFieldsInvalid):
        on_licensor(provider, lambda lic: lic.issue(fields, "tester", 0))


# -- suspend, resume, revoke --------------------------------------------------------


def test_suspended_license_resumes_service(provider: Provider) -> None:
    session = open_session(provider)
    set_status(provider, provider.license_id, "suspend")
    assert code(get_data(provider, session)[0]) == "license_suspended"

    set_status(provider, provider.license_id, "resume", "payment received")
    assert get_data(provider, session)[0].status_code == 200
    kinds = [e["kind"] for e in events(provider, "license_resumed")]
    assert kinds == ["license_resumed"]


def test_resume_of_active_license_refused(provider: Provider) -> None:
    with pytest.raises(LicenseStateError):
        set_status(provider, provider.license_id, "resume")
    refused = events(provider, "license_resumed")
    assert refused[-1]["outcome"] == "license_state"


def test_revoked_license_cannot_be_resumed_or_suspended(provider: Provider) -> None:
    set_status(provider, provider.license_id, "revoke", "contract ended")
    for action in ("resume", "suspend", "revoke"):
        with pytest.raises(LicenseStateError):
            set_status(provider, provider.license_id, action)
    assert show(provider, provider.license_id)["status"] == "revoked"
    assert code(mint(provider)) == "license_revoked"


def test_status_change_without_reason_refused(provider: Provider) -> None:
    with pytest.raises(LicenseFieldsInvalid):
        set_status(provider, provider.license_id, "suspend", reason="  ")


def test_suspend_of_unknown_license_refused(provider: Provider) -> None:
    with pytest.raises(LicenseNotFound):
        set_status(provider, "lic-000000000000", "suspend")


# -- renewal --------------------------------------------------------------------------


def _old(not_before: int, not_after: int) -> License:
    return License(
        "lic-1",
        "L",
        "p",
        "c",
        "s",
        ("x",),
        ("https://a.example",),
        (),
        not_before,
        not_after,
        1,
        1,
        1,
        "kid",
    )


def test_renewal_window_adds_one_term_after_the_old_end() -> None:
    old = _old(1000 * DAY, 1030 * DAY)
    assert renewal_window(old, 1020 * DAY, None, None, None) == (1020 * DAY, 1060 * DAY)


def test_renewal_window_of_lapsed_license_starts_from_now() -> None:
    old = _old(1000 * DAY, 1030 * DAY)
    assert renewal_window(old, 1100 * DAY, None, None, 10) == (1100 * DAY, 1110 * DAY)


def test_renewal_is_linked_and_the_old_license_stays_valid(provider: Provider) -> None:
    old = show(provider, provider.license_id)
    renewed = on_licensor(
        provider,
        lambda lic: lic.renew(provider.license_id, "tester", now_ms(provider), days=30),
    )

    new = show(provider, renewed["license_id"])
    assert new["renews"] == provider.license_id
    assert show(provider, provider.license_id)["renewed_by"] == renewed["license_id"]
    for name in ("project", "licensee", "products", "origins", "rate_per_day"):
        assert new[name] == old[name]
    assert new["not_after"] > old["not_after"]
    assert mint(provider).status_code == 200
    assert mint(provider, credential=renewed["credential"]).status_code == 200


def test_renewal_of_renewed_license_refused(provider: Provider) -> None:
    def renew() -> dict[str, Any]:
        return on_licensor(
            provider,
            lambda lic: lic.renew(provider.license_id, "tester", now_ms(provider)),
        )

    renew()
    with pytest.raises(LicenseStateError):
        renew()


def test_renewal_of_suspended_license_refused(provider: Provider) -> None:
    set_status(provider, provider.license_id, "suspend")
    with pytest.raises(LicenseStateError):
        on_licensor(
            provider,
            lambda lic: lic.renew(provider.license_id, "tester", now_ms(provider)),
        )


# -- licensor keys --------------------------------------------------------------------


def rotate(p: Provider) -> dict[str, Any]:
    return on_licensor(p, lambda lic: lic.rotate_key("tester", now_ms(p)))


def compromise(p: Provider, kid: str) -> dict[str, Any]:
    return on_licensor(
        p, lambda lic: lic.mark_compromised(kid, "key file leaked", "tester", now_ms(p))
    )


def test_license_of_rotated_key_stays_valid_and_new_key_works_at_once(
    provider: Provider,
) -> None:
    old_kid = rotate(provider)["old_kid"]
    fresh = issue(provider)
    assert show(provider, fresh["license_id"])["key_id"] != old_kid
    assert mint(provider).status_code == 200
    assert mint(provider, credential=fresh["credential"]).status_code == 200


def test_license_signed_by_compromised_key_refused(provider: Provider) -> None:
    old_kid = rotate(provider)["old_kid"]
    marked = compromise(provider, old_kid)
    assert marked["licenses"] == [provider.license_id]

    refused = mint(provider)
    assert (refused.status_code, code(refused)) == (403, "license_invalid")
    logged = events(provider, "token_refused")[-1]
    assert logged["license_id"] == provider.license_id
    assert show(provider, provider.license_id)["usable_now"] is False


def test_open_session_of_compromised_key_refused_on_next_request(
    provider: Provider,
) -> None:
    session = open_session(provider)
    compromise(provider, rotate(provider)["old_kid"])
    assert code(get_data(provider, session)[0]) == "license_invalid"


def test_reissue_after_compromise_restores_service(provider: Provider) -> None:
    compromise(provider, rotate(provider)["old_kid"])
    renewed = on_licensor(
        provider, lambda lic: lic.renew(provider.license_id, "tester", now_ms(provider))
    )
    assert mint(provider, credential=renewed["credential"]).status_code == 200


def test_compromise_of_active_key_refused(provider: Provider) -> None:
    active = KeyDir(provider.data_dir / "keys").active_licensor_kid()
    assert active is not None
    with pytest.raises(KeyRefused, match="rotate first"):
        compromise(provider, active)


def test_compromise_of_unknown_key_refused(provider: Provider) -> None:
    with pytest.raises(KeyRefused):
        compromise(provider, "0123456789abcdef")


def test_retired_private_key_no_longer_on_disk(provider: Provider) -> None:
    keys = KeyDir(provider.data_dir / "keys")
    before = keys.licensor_key_path.read_bytes()
    result = rotate(provider)
    assert keys.licensor_key_path.read_bytes() != before
    assert keys.active_licensor_kid() == result["new_kid"]
    assert sorted(keys.licensor_kids()) == sorted(
        [result["old_kid"], result["new_kid"]]
    )
    assert not list(keys.root.glob("*.new"))


# -- one project's license used for another project -------------------------------


@pytest.fixture
def two_projects(tmp_path: Path) -> Any:
    """Project A (the fixture license, network 10.1/16) and project B."""
    p = make_provider(tmp_path, networks=("10.1.0.0/16",))
    b = asyncio.run(
        issue_license(
            p.data_dir,
            license_fields(
                p.clock,
                project="project-b",
                products=("other-product",),
                origins=(ORIGIN_B,),
                networks=("10.2.0.0/16",),
            ),
        )
    )
    p.client = TestClient(
        p.app, base_url="http://127.0.0.1:8000", client=("10.2.0.5", 50000)
    )
    with p.client:
        yield p, b


def test_license_for_project_a_refused_on_project_b_origin(two_projects: Any) -> None:
    p, _ = two_projects
    response = mint(p, origin=ORIGIN_B)
    assert (response.status_code, code(response)) == (403, "origin_denied")
    assert ORIGIN_B not in response.text and HOST_ORIGIN not in response.text
    logged = events(p, "token_refused")[-1]
    assert logged["license_id"] == p.license_id
    assert logged["detail"]["requested_origin"] == ORIGIN_B
    assert logged["detail"]["ip"] == "10.2.0.5" and logged["detail"]["ua"]


def test_license_for_project_a_refused_for_project_b_product(
    two_projects: Any,
) -> None:
    p, _ = two_projects
    response = mint(p, products=["other-product"])
    assert (response.status_code, code(response)) == (403, "product_denied")
    logged = events(p, "token_refused")[-1]
    assert (logged["license_id"], logged["detail"]["products"]) == (
        p.license_id,
        ["other-product"],
    )


def test_license_for_project_a_refused_on_project_b_network(
    two_projects: Any,
) -> None:
    p, b = two_projects
    reply, _ = handshake(p)
    assert (reply.status_code, code(reply)) == (403, "license_invalid")
    assert "10.1" not in reply.text
    logged = events(p, "session_refused")[-1]
    assert (logged["license_id"], logged["detail"]["ip"]) == (p.license_id, "10.2.0.5")
    assert (
        mint(
            p, products=["other-product"], origin=ORIGIN_B, credential=b["credential"]
        ).status_code
        == 200
    )


# -- the CLI drives the same code -----------------------------------------------------


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_license_lifecycle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = make_provider(tmp_path)
    d = ["--data-dir", str(p.data_dir)]
    shown = cli_json(capsys, "license", "show", p.license_id, *d)
    assert shown["status"] == "active"
    renewed = cli_json(capsys, "license", "renew", p.license_id, "--days", "10", *d)
    assert renewed["renews"] == p.license_id
    cli_json(capsys, "license", "suspend", p.license_id, "--reason", "audit", *d)
    listed = cli_json(capsys, "license", "list", "--status", "suspended", *d)
    assert [row["license_id"] for row in listed["licenses"]] == [p.license_id]
    rotated = cli_json(capsys, "keys", "rotate", *d)
    marked = cli_json(
        capsys, "keys", "compromised", rotated["old_kid"], "--reason", "leak", *d
    )
    assert sorted(marked["licenses"]) == sorted([p.license_id, renewed["license_id"]])


def test_cli_resume_of_active_license_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = make_provider(tmp_path)
    argv = [
        "license",
        "resume",
        p.license_id,
        "--reason",
        "x",
        "--data-dir",
        str(p.data_dir),
    ]
    assert main(argv) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_cli_renewed_token_verifies_with_the_keys_on_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = make_provider(tmp_path)
    renewed = cli_json(
        capsys, "license", "renew", p.license_id, "--data-dir", str(p.data_dir)
    )
    keys = KeyDir(p.data_dir / "keys").licensor_public_keys()
    lic = verify_license(renewed["token"], keys, p.clock() // 1000)
    assert lic.license_id == renewed["license_id"]
