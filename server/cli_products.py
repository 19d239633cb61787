"""``xinfeng product ...``: register data products and review them.

The CLI runs on the licensor's own machine and takes the actor's name from
``--by``; the two-person rule is only as strong as access to that machine.
Through the admin API the name comes from the admin token instead.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from xinfeng.license.products import EDITABLE_FIELDS, ProductState, RegisteredProduct

from .cli import UsageError, _common, _emit
from .config import wall_clock_ms
from .registry import ProductRegistry, opened_storage

T = TypeVar("T")
GRADE_NAMES = {1: "general", 2: "important", 3: "core"}


def _run(args: argparse.Namespace, act: Callable[[ProductRegistry], Awaitable[T]]) -> T:
    async def run() -> T:
        async with opened_storage(args.data_dir / "xinfeng.db") as storage:
            return await act(ProductRegistry(storage))

    return asyncio.run(run())


def describe(p: RegisteredProduct) -> str:
    """A product in a few lines of text."""
    approvals = ", ".join(p.approvals) or "none"
    return "\n".join(
        [
            f"{p.product_id}  {p.state}  grade {int(p.grade)} "
            f"({GRADE_NAMES[int(p.grade)]})  {p.identifier}",
            f"  name:      {p.name}",
            f"  category:  {p.category}",
            f"  source:    {p.source}",
            f"  owner:     {p.owner}",
            f"  revision:  {p.revision}, submitted by {p.submitted_by or '-'}",
            f"  approvals: {approvals} ({len(p.approvals)}/{p.required_approvals})",
        ]
    )


def _show_one(args: argparse.Namespace, product: RegisteredProduct) -> int:
    _emit(args, {"product": product.to_json()}, describe(product))
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {
        "product_id": args.id,
        "name": args.name,
        "category": args.category,
        "grade": args.grade,
        "source": args.source,
        "owner": args.owner,
    }
    if args.identifier:
        fields["identifier"] = args.identifier
    elif not (args.region and args.category_code):
        raise UsageError("give --identifier, or --region and --category-code")
    else:
        fields |= {"region": args.region, "category_code": args.category_code}
    now = wall_clock_ms()
    return _show_one(args, _run(args, lambda r: r.create(fields, args.by, now)))


def cmd_edit(args: argparse.Namespace) -> int:
    changes = {
        name: getattr(args, name)
        for name in EDITABLE_FIELDS
        if getattr(args, name) is not None
    }
    now = wall_clock_ms()
    product = _run(args, lambda r: r.edit(args.product_id, changes, args.by, now))
    return _show_one(args, product)


def cmd_submit(args: argparse.Namespace) -> int:
    now = wall_clock_ms()
    product = _run(args, lambda r: r.submit(args.product_id, args.by, now, args.note))
    return _show_one(args, product)


def _decision(verb: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        now = wall_clock_ms()

        async def act(registry: ProductRegistry) -> RegisteredProduct:
            decide = getattr(registry, verb)
            result: RegisteredProduct = await decide(
                args.product_id, args.by, args.reason, now
            )
            return result

        return _show_one(args, _run(args, act))

    return run


def cmd_list(args: argparse.Namespace) -> int:
    products = _run(args, lambda r: r.list_products(args.state))
    rows = [
        f"{p.product_id:24} {p.state:9} grade {int(p.grade)}  {p.identifier}  {p.name}"
        for p in products
    ]
    _emit(
        args,
        {"products": [p.to_json() for p in products]},
        "\n".join(rows) or "no products",
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    return _show_one(args, _run(args, lambda r: r.get(args.product_id)))


def _fields(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--name", required=required, help="display name")
    p.add_argument("--category", required=required, help="data category, in words")
    p.add_argument(
        "--grade",
        type=int,
        choices=(1, 2, 3),
        required=required,
        help="1 general, 2 important, 3 core (two approvers)",
    )
    p.add_argument("--identifier", help="data identity id XF-RRRRRR-CC-NNNNNN-K")
    p.add_argument("--source", required=required, help="where the data comes from")
    p.add_argument("--owner", required=required, help="who is responsible for it")


def _parser(
    psub: Any, name: str, help_text: str, func: Callable[..., int], target: bool = True
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = psub.add_parser(name, help=help_text)
    _common(p)
    if target:
        p.add_argument("product_id")
    p.set_defaults(func=func)
    return p


def add_product_commands(sub: Any) -> None:
    """Add ``xinfeng product create|edit|submit|approve|reject|retire|list|show``."""
    product = sub.add_parser("product", help="register data products and review them")
    psub = product.add_subparsers(dest="action", required=True)

    create = _parser(psub, "create", "register a draft product", cmd_create, False)
    create.add_argument("--id", required=True, help="product id, e.g. gd-stations")
    _fields(create, required=True)
    create.add_argument("--region", help="GB/T 2260 code, to allocate an identifier")
    create.add_argument("--category-code", help="two digits, with --region")
    create.add_argument("--by", required=True, help="who registers it")

    edit = _parser(psub, "edit", "edit a draft or rejected product", cmd_edit)
    _fields(edit, required=False)
    edit.add_argument("--by", required=True, help="who edits it")

    submit = _parser(psub, "submit", "submit a draft for review", cmd_submit)
    submit.add_argument("--by", required=True, help="who submits it")
    submit.add_argument("--note", default="", help="a note for the reviewers")

    for verb, text in (
        ("approve", "approve a submitted product"),
        ("reject", "reject a submitted product"),
        ("retire", "take an approved product out of circulation"),
    ):
        p = _parser(psub, verb, text, _decision(verb))
        p.add_argument("--by", required=True, help="reviewer (not the submitter)")
        p.add_argument("--reason", required=True)

    listing = _parser(psub, "list", "list products", cmd_list, False)
    listing.add_argument("--state", choices=[str(s) for s in ProductState])
    _parser(psub, "show", "show one product", cmd_show)
