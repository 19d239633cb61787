"""``xinfeng license|keys|admin ...``: the license lifecycle, licensor keys
and admin tokens, on the licensor's own machine."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .admin_tokens import AdminTokens
from .cli import _common, _emit, parse_time
from .config import wall_clock_ms
from .keys import KeyDir
from .licensing import LicenseFilter, Licensor
from .registry import opened_storage

T = TypeVar("T")
STATUSES = ("active", "suspended", "revoked")


def _run(args: argparse.Namespace, act: Callable[[Licensor], Awaitable[T]]) -> T:
    async def run() -> T:
        async with opened_storage(args.data_dir / "xinfeng.db") as storage:
            return await act(Licensor(storage, KeyDir(args.data_dir / "keys")))

    return asyncio.run(run())


def _optional_time(text: str | None) -> int | None:
    return None if text is None else parse_time(text)


# -- licenses -------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    wanted = LicenseFilter(
        args.status, args.project, args.licensee, args.product, args.key
    )
    now_ms = wall_clock_ms()
    rows = _run(args, lambda lic: lic.list_licenses(wanted, now_ms))
    lines = [
        f"{r['license_id']}  {r['status']:9}  {r.get('project', '?')}"
        f"  until {r.get('not_after', '?')}  key {r.get('key_id', '?')}"
        f"{' (COMPROMISED)' if r.get('key_compromised') else ''}"
        f"{' FROZEN until ' + r['frozen_until'] if 'frozen_until' in r else ''}"
        for r in rows
    ]
    _emit(args, {"licenses": rows}, "\n".join(lines) or "no licenses")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    now = wall_clock_ms() // 1000
    view = _run(args, lambda lic: lic.show(args.license_id, now))
    width = max(len(name) for name in view)
    lines = [f"{name:{width}}  {_text(value)}" for name, value in view.items()]
    _emit(args, view, "\n".join(lines))
    return 0


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None or value == "" else str(value)


def _status_command(action: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        now = wall_clock_ms()
        result = _run(
            args,
            lambda lic: lic.change_status(
                args.license_id, action, args.reason, args.by, now
            ),
        )
        _emit(args, result, f"{args.license_id} is now {result['status']}")
        return 0

    return run


def cmd_renew(args: argparse.Namespace) -> int:
    now = wall_clock_ms()
    not_before = _optional_time(args.not_before)
    not_after = _optional_time(args.not_after)
    result = _run(
        args,
        lambda lic: lic.renew(
            args.license_id, args.by, now, not_before, not_after, args.days
        ),
    )
    _emit(
        args,
        result,
        f"issued {result['license_id']} renewing {args.license_id}, valid"
        f" {result['not_before']} .. {result['not_after']}\n"
        f"{args.license_id} stays valid until its own end.\n"
        f"new credential (give to the integrator's backend; shown once):\n"
        f"  {result['credential']}",
    )
    return 0


def add_license_commands(lsub: Any) -> None:
    """Add ``xinfeng license list|show|suspend|resume|revoke|renew``."""
    listing = lsub.add_parser("list", help="list licenses, optionally filtered")
    _common(listing)
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--project")
    listing.add_argument("--licensee")
    listing.add_argument("--product", help="licenses that include this product")
    listing.add_argument("--key", help="licenses signed by this licensor key id")
    listing.set_defaults(func=cmd_list)

    show = lsub.add_parser("show", help="decoded claims, status and links")
    _common(show)
    show.add_argument("license_id")
    show.set_defaults(func=cmd_show)

    for action, text in (
        ("suspend", "suspend a license (reversible)"),
        ("resume", "resume a suspended license"),
        ("revoke", "revoke a license (final)"),
    ):
        p = lsub.add_parser(action, help=text)
        _common(p)
        p.add_argument("license_id")
        p.add_argument("--reason", required=True)
        p.add_argument("--by", default="cli", help="who decides (recorded)")
        p.set_defaults(func=_status_command(action))

    renew = lsub.add_parser("renew", help="issue the successor with a new window")
    _common(renew)
    renew.add_argument("license_id")
    renew.add_argument("--not-before", help="ISO 8601 with zone (default now)")
    renew.add_argument("--not-after", help="ISO 8601 with zone")
    renew.add_argument(
        "--days", type=int, help="days after the old end (default: one more term)"
    )
    renew.add_argument("--by", default="cli", help="who renews (recorded)")
    renew.set_defaults(func=cmd_renew)


# -- licensor keys --------------------------------------------------------------


def cmd_keys_list(args: argparse.Namespace) -> int:
    rows = _run(args, lambda lic: lic.key_rows())
    lines = [
        f"{r['kid']}  {'active' if r['active'] else 'retired':7}"
        f"{'  COMPROMISED' if r['compromised'] else ''}  {r['licenses']} licenses"
        for r in rows
    ]
    _emit(args, {"licensor_keys": rows}, "\n".join(lines) or "no licensor keys")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    now = wall_clock_ms()
    result = _run(args, lambda lic: lic.rotate_key(args.by, now))
    _emit(
        args,
        result,
        f"licensor key {result['new_kid']} is now active; {result['old_kid']}"
        " is retired and keeps verifying the licenses it signed",
    )
    return 0


def cmd_keys_compromised(args: argparse.Namespace) -> int:
    now = wall_clock_ms()
    result = _run(
        args, lambda lic: lic.mark_compromised(args.kid, args.reason, args.by, now)
    )
    affected = ", ".join(result["licenses"]) or "none"
    _emit(
        args,
        result,
        f"licensor key {args.kid} is compromised: every license it signed is"
        f" refused from now on.\nreissue these (xinfeng license renew):"
        f" {affected}",
    )
    return 0


def add_key_commands(ksub: Any) -> None:
    """Add ``xinfeng keys list|rotate|compromised``."""
    listing = ksub.add_parser("list", help="licensor keys and their state")
    _common(listing)
    listing.set_defaults(func=cmd_keys_list)

    rotate = ksub.add_parser("rotate", help="make a new licensor key active")
    _common(rotate)
    rotate.add_argument("--by", default="cli", help="who rotates (recorded)")
    rotate.set_defaults(func=cmd_keys_rotate)

    bad = ksub.add_parser(
        "compromised", help="refuse every license signed by a retired key"
    )
    _common(bad)
    bad.add_argument("kid")
    bad.add_argument("--reason", required=True)
    bad.add_argument("--by", default="cli", help="who decides (recorded)")
    bad.set_defaults(func=cmd_keys_compromised)


# -- admin tokens -----------------------------------------------------------------


def cmd_token_new(args: argparse.Namespace) -> int:
    token, entry = AdminTokens(args.data_dir).new(args.name, wall_clock_ms() // 1000)
    _emit(
        args,
        {"token": token, "token_id": entry.token_id, "name": entry.name},
        f"admin token {entry.token_id} for {entry.name} (shown once; send as"
        f" 'Authorization: Bearer ...'):\n  {token}",
    )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    entries = AdminTokens(args.data_dir).entries()
    rows = [
        {"token_id": e.token_id, "name": e.name, "created": e.created} for e in entries
    ]
    lines = [f"{r['token_id']}  {r['name']}  created {r['created']}" for r in rows]
    _emit(args, {"admin_tokens": rows}, "\n".join(lines) or "no admin tokens")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    entry = AdminTokens(args.data_dir).revoke(args.token_id)
    _emit(
        args,
        {"token_id": entry.token_id, "name": entry.name, "revoked": True},
        f"admin token {entry.token_id} ({entry.name}) revoked",
    )
    return 0


def add_admin_commands(sub: Any) -> None:
    """Add ``xinfeng admin token new|list|revoke``."""
    admin = sub.add_parser("admin", help="admin API access")
    asub = admin.add_subparsers(dest="object", required=True)
    token = asub.add_parser("token", help="bearer tokens for the admin API")
    tsub = token.add_subparsers(dest="action", required=True)

    new = tsub.add_parser("new", help="create a token for one named admin")
    _common(new)
    new.add_argument("--name", required=True, help="the admin's name (recorded)")
    new.set_defaults(func=cmd_token_new)

    listing = tsub.add_parser("list", help="list admin tokens (never the secrets)")
    _common(listing)
    listing.set_defaults(func=cmd_token_list)

    revoke = tsub.add_parser("revoke", help="delete an admin token")
    _common(revoke)
    revoke.add_argument("token_id")
    revoke.set_defaults(func=cmd_token_revoke)
