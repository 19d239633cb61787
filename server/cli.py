"""The ``xinfeng`` command: keys, licenses, the provider server and the demo.

Errors that a user can act on are printed as one line and exit with 2;
``--json`` switches output to JSON for scripting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xinfeng.license.model import MAX_LICENSE_DAYS
from xinfeng.license.model import parse_time as parse_iso_time
from xinfeng.sdk.errors import XinfengError

from .config import Config, wall_clock_ms
from .keys import KeyDir, key_id

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("var/xinfeng")
DEFAULT_CACHE_DIR = Path(".cache/xinfeng")


class UsageError(XinfengError):
    """The command line asks for something that cannot be done."""

    code = "usage"


def _emit(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else text)


def parse_time(text: str) -> int:
    """Unix seconds from an ISO 8601 time that names its zone."""
    try:
        return parse_iso_time(text)
    except ValueError:
        raise UsageError(
            f"not an ISO 8601 time with a zone and whole seconds, such as"
            f" 2027-01-01T00:00:00+08:00: {text[:64]!r}") from None


# -- keys -----------------------------------------------------------------------


def cmd_keys_new(args: argparse.Namespace) -> int:
    keys = KeyDir(args.data_dir / "keys")
    existed = keys.server_key_path.exists() and keys.licensor_key_path.exists()
    server, licensor = keys.ensure()
    result = {
        "server_kid": key_id(server.public_key()),
        "licensor_kid": key_id(licensor.public_key()),
        "keys_dir": str(keys.root),
        "created": not existed,
    }
    verb = "kept existing" if existed else "created"
    _emit(args, result, f"{verb} keys in {keys.root}\n"
          f"  server   kid {result['server_kid']}\n"
          f"  licensor kid {result['licensor_kid']}")
    return 0


# -- licenses -------------------------------------------------------------------


def _window(args: argparse.Namespace) -> tuple[int, int]:
    now = wall_clock_ms() // 1000
    not_before = parse_time(args.not_before) if args.not_before else now
    if args.not_after:
        not_after = parse_time(args.not_after)
    elif not 0 < args.days <= MAX_LICENSE_DAYS:
        raise UsageError(f"--days must be from 1 to {MAX_LICENSE_DAYS}")
    else:
        not_after = not_before + args.days * 86400
    if not_after <= not_before:
        raise UsageError("--not-after must be later than --not-before")
    return not_before, not_after


async def issue_license(data_dir: Path, fields: dict[str, Any],
                        actor: str = "cli") -> dict[str, Any]:
    """Sign and store a license; returns its id, token and credential.

    Refused unless every product is registered and approved.
    """
    from .licensing import Licensor
    from .registry import opened_storage

    async with opened_storage(data_dir / "xinfeng.db") as storage:
        licensor = Licensor(storage, KeyDir(data_dir / "keys"))
        return await licensor.issue(fields, actor, wall_clock_ms())


def cmd_license_issue(args: argparse.Namespace) -> int:
    not_before, not_after = _window(args)
    fields = {
        "licensee": args.licensee, "project": args.project,
        "contract_id": args.contract, "scenario": args.scenario,
        "products": tuple(args.product), "origins": tuple(args.origin),
        "networks": tuple(args.network or ()), "not_before": not_before,
        "not_after": not_after, "rate_per_minute": args.rate_per_minute,
        "rate_per_day": args.rate_per_day, "max_sessions": args.max_sessions,
    }
    result = asyncio.run(issue_license(args.data_dir, fields))
    _emit(args, result,
          f"issued {result['license_id']} valid {result['not_before']}"
          f" .. {result['not_after']}\n"
          f"credential (give to the integrator's backend; shown once):\n"
          f"  {result['credential']}")
    return 0


# -- servers --------------------------------------------------------------------


def _session_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--session-ttl", type=_seconds, default=600, metavar="SECONDS",
        help="how long a component session lives between renewals (10-604800,"
             " default 600); each renewal re-checks the licence")
    parser.add_argument(
        "--session-max", type=_seconds, default=12 * 3600, metavar="SECONDS",
        help="how long a session may be renewed for, from its handshake"
             " (10-604800, at least --session-ttl, default 43200); then the page"
             " needs a new embed token")


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be whole seconds") from None
    if not 10 <= value <= 7 * 86_400:
        raise argparse.ArgumentTypeError("must be between 10 and 604800 seconds")
    return value


def _session_lives(args: argparse.Namespace) -> tuple[int, int]:
    """``--session-ttl`` and ``--session-max``, checked against each other."""
    ttl, most = int(args.session_ttl), int(args.session_max)
    if most < ttl:
        raise UsageError("--session-max must be at least --session-ttl")
    return ttl, most


def _config(args: argparse.Namespace, port: int) -> Config:
    public_url = args.public_url or f"http://127.0.0.1:{port}"
    ttl, most = _session_lives(args)
    return Config(data_dir=args.data_dir, cache_dir=args.cache_dir,
                  public_url=public_url.rstrip("/"),
                  trusted_proxy_hops=getattr(args, "trusted_proxy_hops", 0),
                  session_ttl_s=ttl, session_max_s=most)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .serving import uvicorn_config

    app = create_app(_config(args, args.port))
    print(f"provider listening on http://{args.host}:{args.port}", flush=True)
    uvicorn.Server(uvicorn_config(app, args.host, args.port)).run()
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from .assets import ensure_pyodide
    from .catalog import prepare
    from .datasets import ensure_meteva

    wheel = ensure_meteva(args.cache_dir)
    products = sorted(prepare(args.cache_dir))
    pyodide = ensure_pyodide(args.cache_dir)
    _emit(args, {"meteva": str(wheel), "pyodide": str(pyodide),
                 "products": products},
          f"data:    {wheel}\nproducts: {len(products)} derived\npyodide: {pyodide}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


# -- argument parsing -----------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="database and keys (default: %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                   help="downloaded Pyodide and data (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _license_parsers(sub: Any) -> None:
    lic = sub.add_parser("license", help="issue and control project licenses")
    lsub = lic.add_subparsers(dest="action", required=True)
    issue = lsub.add_parser("issue", help="sign and store a new license")
    _common(issue)
    issue.add_argument("--licensee", required=True,
                       help="who holds the licence (organisation)")
    issue.add_argument("--project", required=True,
                       help="the one embedding project it is for")
    issue.add_argument("--contract", required=True, help="contract id")
    issue.add_argument("--scenario", required=True, help="licensed use, in words")
    issue.add_argument("--product", action="append", required=True,
                       help="product id (repeat for several)")
    issue.add_argument("--origin", action="append", required=True,
                       help="embedding origin scheme://host[:port] (repeatable)")
    issue.add_argument("--network", action="append",
                       help="client network in CIDR (repeatable; default any)")
    issue.add_argument("--not-before", help="ISO 8601 with zone (default now)")
    issue.add_argument("--not-after", help="ISO 8601 with zone")
    issue.add_argument("--days", type=int, default=365,
                       help="validity when --not-after is absent (default 365)")
    issue.add_argument("--rate-per-minute", type=int, default=120,
                       help="data requests a minute, all users (default 120)")
    issue.add_argument("--rate-per-day", type=int, default=20000,
                       help="data requests a UTC day (default 20000)")
    issue.add_argument("--max-sessions", type=int, default=20,
                       help="live component sessions at once (default 20)")
    issue.set_defaults(func=cmd_license_issue)
    from .cli_licensor import add_license_commands

    add_license_commands(lsub)


def _licensor_parsers(sub: Any, ksub: Any) -> None:
    from .cli_licensor import add_admin_commands, add_key_commands
    from .cli_products import add_product_commands

    add_key_commands(ksub)
    _license_parsers(sub)
    add_product_commands(sub)
    add_admin_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xinfeng",
        description="Sell data products as embedded components: every "
        "response is an SM2/SM3/SM4 digital envelope opened only inside the "
        "component.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="server and licensor SM2 keys")
    ksub = keys.add_subparsers(dest="action", required=True)
    new = ksub.add_parser("new", help="create the keys that do not exist yet")
    _common(new)
    new.set_defaults(func=cmd_keys_new)
    _licensor_parsers(sub, ksub)
    setup = sub.add_parser("setup", help="fetch Pyodide and the demo data")
    _common(setup)
    setup.set_defaults(func=cmd_setup)
    serve = sub.add_parser("serve", help="run the provider server")
    _common(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000,
                       help="port to listen on (default 8000)")
    serve.add_argument("--public-url", help="URL browsers use (default from port)")
    serve.add_argument("--trusted-proxy-hops", type=int, default=0,
                       help="X-Forwarded-For hops added by your own proxies")
    _session_options(serve)
    serve.set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="set up and start provider + sample host app")
    _common(demo)
    demo.add_argument("--provider-port", type=int, default=8000,
                      help="the provider's port on 127.0.0.1 (default 8000)")
    demo.add_argument("--host-port", type=int, default=8001,
                      help="the sample host app's port on 127.0.0.1 (default 8001)")
    demo.add_argument("--public-url", default=None, help=argparse.SUPPRESS)
    _session_options(demo)
    demo.set_defaults(func=cmd_demo)
    from . import audit_cli, trace

    audit_cli.register(sub)
    trace.register(sub, _common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except XinfengError as exc:
        print(f"xinfeng: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
