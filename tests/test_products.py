"""The product registry: identifiers, review rules, persistence, serving."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from xinfeng.license import products as rules
from xinfeng.license.products import (
    ProductConflict,
    ProductError,
    ProductState,
    RegisteredProduct,
    ReviewRefused,
)
from xinfeng.sdk.errors import ProductDenied
from xinfeng.server.cli import issue_license, main
from xinfeng.server.products import Catalog, Product
from xinfeng.server.registry import ProductRegistry, approve_catalog, opened_storage
from xinfeng.server.storage import Storage

from .conftest import (
    TEST_REVIEW,
    Provider,
    license_fields,
    make_provider,
    marker_payload,
)

T = TypeVar("T")
NOW = 1_767_225_600_000


def fields(**overrides: Any) -> dict[str, Any]:
    values = {
        "product_id": "gd-radar",
        "name": "Radar mosaic",
        "category": "weather radar",
        "grade": 1,
        "identifier": "XF-440000-01-000001-6",
        "source": "CMA radar network",
        "owner": "Guangdong Meteorological Service",
    }
    return values | overrides


def submitted(grade: int = 1) -> RegisteredProduct:
    return rules.submit(rules.register(fields(grade=grade)), "alice")


def on_db(tmp_path: Path, act: Callable[[ProductRegistry, Storage], Awaitable[T]]) -> T:
    async def run() -> T:
        async with opened_storage(tmp_path / "registry.db") as storage:
            return await act(ProductRegistry(storage), storage)

    return asyncio.run(run())


def weighted_check(digits: str) -> str:
    """GB 11643's formulation: weights 2^(n-i) mod 11, independent of the code."""
    n = len(digits)
    total = sum(int(d) * pow(2, n - i, 11) for i, d in enumerate(digits))
    return "0123456789X"[(12 - total % 11) % 11]


# -- identifiers ---------------------------------------------------------------


@pytest.mark.parametrize("digits, check", [
    ("079", "X"),                 # ISO 7064 MOD 11-2 worked examples
    ("0794", "0"),
    ("000000021825009", "7"),     # ORCID iD 0000-0002-1825-0097
    ("11010519491231002", "X"),   # GB 11643 sample 11010519491231002X
])  # fmt: skip
def test_check_character_matches_published_examples(digits: str, check: str) -> None:
    assert rules.mod11_2_check(digits) == check


def test_made_identifier_carries_the_weighted_sum_check() -> None:
    made = rules.make_identifier("440000", "02", 123)
    assert made.startswith("XF-440000-02-000123-")
    assert made[-1] == weighted_check("44000002000123")


def test_identifier_with_wrong_check_digit_refused() -> None:
    good = rules.make_identifier("440000", "01", 7)
    wrong = "0" if good[-1] != "0" else "1"
    with pytest.raises(ProductError, match="check"):
        rules.parse_identifier(good[:-1] + wrong)


@pytest.mark.parametrize("text", [
    "XF-440000-01-000001",        # no check character
    "xf-440000-01-000001-6",      # lower-case prefix
    "XF-440000-1-000001-6",       # short category
    "XF-440000-01-000001-x",      # lower-case X
    "XF-440000-01-000001-6 ",     # trailing space
    "XF-４４0000-01-000001-6",     # non-ASCII digits
])  # fmt: skip
def test_identifier_with_malformed_shape_refused(text: str) -> None:
    with pytest.raises(ProductError):
        rules.parse_identifier(text)


def test_identifier_with_region_outside_gbt2260_refused() -> None:
    body = "990000" + "01" + "000001"
    with pytest.raises(ProductError, match="region"):
        rules.parse_identifier(f"XF-990000-01-000001-{weighted_check(body)}")


def test_identifier_with_zero_serial_refused() -> None:
    body = "440000" + "01" + "000000"
    with pytest.raises(ProductError):
        rules.parse_identifier(f"XF-440000-01-000000-{weighted_check(body)}")


# -- fields ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"grade": 4}, {"grade": 0}, {"grade": True}, {"grade": "3"},
    {"name": ""}, {"name": "   "}, {"owner": "x" * 257},
    {"source": "line\nbreak"}, {"product_id": "../etc"}, {"product_id": ""},
])  # fmt: skip
def test_product_with_malformed_field_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ProductError):
        rules.register(fields(**bad))


def test_product_with_unknown_field_refused() -> None:
    with pytest.raises(ProductError):
        rules.register(fields(state="approved"))


def test_product_without_identifier_refused() -> None:
    values = fields()
    del values["identifier"]
    with pytest.raises(ProductError):
        rules.register(values)


def test_reviewer_name_with_spaces_refused() -> None:
    with pytest.raises(ProductError):
        rules.approve(submitted(), "bob smith")


# -- review rules --------------------------------------------------------------


def test_new_product_is_a_draft_that_cannot_be_licensed() -> None:
    product = rules.register(fields())
    assert product.state is ProductState.DRAFT
    with pytest.raises(ProductDenied):
        rules.require_licensable(product)


def test_approve_by_submitter_refused() -> None:
    with pytest.raises(ReviewRefused, match="own submission"):
        rules.approve(submitted(), "alice")


def test_reject_by_submitter_refused() -> None:
    with pytest.raises(ReviewRefused):
        rules.reject(submitted(), "alice")


def test_approve_of_draft_refused() -> None:
    with pytest.raises(ReviewRefused):
        rules.approve(rules.register(fields()), "bob")


def test_grade1_one_other_reviewer_approves() -> None:
    product = rules.approve(submitted(grade=1), "bob")
    assert product.state is ProductState.APPROVED
    rules.require_licensable(product)


def test_grade2_one_other_reviewer_approves() -> None:
    assert rules.approve(submitted(grade=2), "bob").state is ProductState.APPROVED


def test_grade3_single_approver_not_enough() -> None:
    product = rules.approve(submitted(grade=3), "bob")
    assert product.state is ProductState.SUBMITTED
    assert product.approvals == ("bob",)
    with pytest.raises(ProductDenied):
        rules.require_licensable(product)


def test_grade3_same_approver_twice_refused() -> None:
    product = rules.approve(submitted(grade=3), "bob")
    with pytest.raises(ReviewRefused, match="already approved"):
        rules.approve(product, "bob")


def test_grade3_submitter_as_second_approver_refused() -> None:
    product = rules.approve(submitted(grade=3), "bob")
    with pytest.raises(ReviewRefused):
        rules.approve(product, "alice")


def test_grade3_two_distinct_approvers_approve() -> None:
    product = rules.approve(rules.approve(submitted(grade=3), "bob"), "carol")
    assert product.state is ProductState.APPROVED
    assert product.approvals == ("bob", "carol")


def test_resubmit_rejected_without_edit_refused() -> None:
    rejected = rules.reject(submitted(), "bob")
    with pytest.raises(ReviewRefused):
        rules.submit(rejected, "alice")


def test_edited_rejected_product_is_a_new_revision_without_approvals() -> None:
    rejected = rules.reject(rules.approve(submitted(grade=3), "bob"), "carol")
    edited = rules.edit(rejected, {"source": "CMA radar network, QC'd"})
    assert (edited.state, edited.revision, edited.approvals, edited.submitted_by) == (
        ProductState.DRAFT,
        2,
        (),
        None,
    )
    again = rules.submit(edited, "alice")
    assert rules.approve(again, "bob").state is ProductState.SUBMITTED


def test_edit_of_approved_product_refused() -> None:
    with pytest.raises(ReviewRefused):
        rules.edit(rules.approve(submitted(), "bob"), {"name": "New name"})


def test_edit_of_product_id_refused() -> None:
    with pytest.raises(ProductError):
        rules.edit(rules.register(fields()), {"product_id": "other"})


def test_retire_of_unapproved_product_refused() -> None:
    with pytest.raises(ReviewRefused):
        rules.retire(submitted(), "bob")


def test_retired_product_is_final() -> None:
    retired = rules.retire(rules.approve(submitted(), "bob"), "bob")
    with pytest.raises(ProductDenied):
        rules.require_licensable(retired)
    for attempt in (
        lambda p: rules.edit(p, {"name": "x"}),
        lambda p: rules.submit(p, "alice"),
        lambda p: rules.approve(p, "carol"),
    ):
        with pytest.raises(ReviewRefused):
            attempt(retired)


# -- the registry on SQLite -------------------------------------------------------


def test_registry_round_trips_a_product(tmp_path: Path) -> None:
    async def act(reg: ProductRegistry, _: Storage) -> RegisteredProduct:
        await reg.create(fields(grade=3), "alice", NOW)
        await reg.submit("gd-radar", "alice", NOW)
        await reg.approve("gd-radar", "bob", "checked", NOW)
        return await reg.get("gd-radar")

    product = on_db(tmp_path, act)
    assert (product.grade, product.approvals, product.submitted_by) == (
        3,
        ("bob",),
        "alice",
    )


def test_duplicate_identifier_refused(tmp_path: Path) -> None:
    async def act(reg: ProductRegistry, _: Storage) -> None:
        await reg.create(fields(), "alice", NOW)
        await reg.create(fields(product_id="gd-other"), "alice", NOW)

    with pytest.raises(ProductConflict):
        on_db(tmp_path, act)


def test_duplicate_product_id_refused(tmp_path: Path) -> None:
    async def act(reg: ProductRegistry, _: Storage) -> None:
        await reg.create(fields(), "alice", NOW)
        await reg.create(
            fields(identifier=rules.make_identifier("440000", "01", 2)), "alice", NOW
        )

    with pytest.raises(ProductConflict):
        on_db(tmp_path, act)


def test_identifier_allocated_after_the_highest_serial(tmp_path: Path) -> None:
    async def act(reg: ProductRegistry, _: Storage) -> str:
        await reg.create(
            fields(identifier=rules.make_identifier("440000", "01", 41)), "alice", NOW
        )
        values = fields(product_id="gd-next", region="440000", category_code="01")
        del values["identifier"]
        return (await reg.create(values, "alice", NOW)).identifier

    assert on_db(tmp_path, act) == rules.make_identifier("440000", "01", 42)


def test_update_from_stale_version_refused(tmp_path: Path) -> None:
    async def act(reg: ProductRegistry, _: Storage) -> None:
        await reg.create(fields(grade=3), "alice", NOW)
        await reg.submit("gd-radar", "alice", NOW)
        stale = await reg.store.get("gd-radar")
        await reg.approve("gd-radar", "bob", "ok", NOW)
        await reg.store.update(stale, rules.approve(stale.product, "carol"), NOW)

    with pytest.raises(ProductConflict):
        on_db(tmp_path, act)


def test_concurrent_grade3_approvals_lose_no_update(tmp_path: Path) -> None:
    async def act(reg: ProductRegistry, _: Storage) -> tuple[list[Any], Any]:
        await reg.create(fields(grade=3), "alice", NOW)
        await reg.submit("gd-radar", "alice", NOW)
        results = await asyncio.gather(
            reg.approve("gd-radar", "bob", "ok", NOW),
            reg.approve("gd-radar", "carol", "ok", NOW),
            return_exceptions=True,
        )
        return results, await reg.get("gd-radar")

    results, final = on_db(tmp_path, act)
    won = [r.approvals[-1] for r in results if isinstance(r, RegisteredProduct)]
    assert all(isinstance(r, RegisteredProduct | ProductConflict) for r in results)
    assert set(final.approvals) == set(won)


def test_every_decision_is_an_audit_event_with_its_reason(tmp_path: Path) -> None:
    async def act(reg: ProductRegistry, storage: Storage) -> list[dict[str, Any]]:
        await reg.create(fields(), "alice", NOW)
        await reg.submit("gd-radar", "alice", NOW)
        with pytest.raises(ReviewRefused):
            await reg.approve("gd-radar", "alice", "self-approval", NOW)
        await reg.reject("gd-radar", "bob", "source licence unclear", NOW)
        return await storage.events()

    events = on_db(tmp_path, act)
    seen = [
        (e["kind"], e["outcome"], e["detail"]["actor"], e["detail"]["reason"])
        for e in events
    ]
    assert seen == [
        ("product_created", "ok", "alice", ""),
        ("product_submitted", "ok", "alice", ""),
        ("product_approved", "review_refused", "alice", "self-approval"),
        ("product_rejected", "ok", "bob", "source licence unclear"),
    ]


def test_decision_without_reason_refused(tmp_path: Path) -> None:
    async def act(reg: ProductRegistry, _: Storage) -> None:
        await reg.create(fields(), "alice", NOW)
        await reg.submit("gd-radar", "alice", NOW)
        await reg.reject("gd-radar", "bob", "", NOW)

    with pytest.raises(ProductError):
        on_db(tmp_path, act)


# -- only approved products are licensed and served --------------------------------


def _registry_call(p: Provider, act: Callable[[ProductRegistry], Awaitable[T]]) -> T:
    async def run() -> T:
        return await act(ProductRegistry(p.state.storage))

    return p.client.portal.call(run)


def _mint(p: Provider, product: str = "test-product") -> Any:
    body = {"products": [product], "origin": "http://127.0.0.1:8001"}
    auth = {"Authorization": f"Bearer {p.credential}"}
    return p.client.post("/v1/tokens", json=body, headers=auth)


def test_license_for_unapproved_product_refused(provider: Provider) -> None:
    values = fields(product_id="draft-product")

    async def register(reg: ProductRegistry) -> None:
        await reg.create(values, "alice", NOW)

    _registry_call(provider, register)
    lic = license_fields(provider.clock, products=("draft-product",))
    with pytest.raises(ProductDenied, match="not approved"):
        asyncio.run(issue_license(provider.data_dir, lic))


def test_license_for_unregistered_product_refused(provider: Provider) -> None:
    lic = license_fields(provider.clock, products=("never-registered",))
    with pytest.raises(ProductDenied, match="not registered"):
        asyncio.run(issue_license(provider.data_dir, lic))


def test_retired_product_refused_from_the_next_request(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with p.client:
        assert _mint(p).status_code == 200

        async def retire(reg: ProductRegistry) -> None:
            await reg.retire("test-product", "test-reviewer-1", "withdrawn", NOW)

        _registry_call(p, retire)
        refused = _mint(p)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "product_denied"


def test_catalogue_product_missing_from_registry_not_served(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with p.client:

        async def forget(reg: ProductRegistry) -> None:
            await reg.storage.db.execute(
                "DELETE FROM products WHERE product_id = 'test-product'"
            )

        _registry_call(p, forget)
        refused = _mint(p)
    assert refused.json()["error"]["code"] == "product_denied"


# -- the CLI and the catalogue set-up ------------------------------------------------


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)["product"]


def test_cli_product_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    created = cli_json(
        capsys,
        "product",
        "create",
        "--id",
        "gd-radar",
        "--name",
        "Radar mosaic",
        "--category",
        "weather radar",
        "--grade",
        "2",
        "--region",
        "440000",
        "--category-code",
        "02",
        "--source",
        "CMA",
        "--owner",
        "GD met",
        "--by",
        "alice",
        *d,
    )
    assert created["identifier"] == rules.make_identifier("440000", "02", 1)
    cli_json(capsys, "product", "submit", "gd-radar", "--by", "alice", *d)
    own = ["product", "approve", "gd-radar", "--by", "alice", "--reason", "ok", *d]
    assert main(own) == 2
    assert "own submission" in capsys.readouterr().err
    approved = cli_json(
        capsys, "product", "approve", "gd-radar", "--by", "bob", "--reason", "ok", *d
    )
    assert approved["state"] == "approved"
    retired = cli_json(
        capsys,
        "product",
        "retire",
        "gd-radar",
        "--by",
        "bob",
        "--reason",
        "replaced",
        *d,
    )
    assert retired["state"] == "retired"


def test_cli_create_without_identifier_or_region_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "product",
        "create",
        "--id",
        "x",
        "--name",
        "X",
        "--category",
        "c",
        "--grade",
        "1",
        "--source",
        "s",
        "--owner",
        "o",
        "--by",
        "alice",
        "--data-dir",
        str(tmp_path),
    ]
    assert main(argv) == 2
    assert "--identifier" in capsys.readouterr().err


def test_catalogue_set_up_approves_grade3_with_two_reviewers(tmp_path: Path) -> None:
    catalog = Catalog([Product("core", "Core product", 3, "tests", marker_payload)])

    async def act(_: ProductRegistry, storage: Storage) -> tuple[Any, Any]:
        first = await approve_catalog(storage, catalog, TEST_REVIEW)
        again = await approve_catalog(storage, catalog, TEST_REVIEW)
        return first, again

    first, again = on_db(tmp_path, act)
    assert first == again == {"core": "approved"}
