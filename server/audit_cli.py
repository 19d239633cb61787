"""``xinfeng audit``: verify, export, inspect and prove the audit log.

``verify`` is the auditor's tool and trusts nothing the server says: it
runs the offline verifier (``server/audit_verify.py``) over a database
file or an export (``export``) and names the first leaf that does not
match. Exit 0 when the log verifies, 1 when it does not, 2 for a usage
error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sqlite3
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xinfeng.sdk.errors import CryptoError, XinfengError
from xinfeng.sdk.merkle import (
    InvalidProof,
    leaf_hash,
    verify_inclusion,
)
from xinfeng.sdk.sm2 import SM2PrivateKey, SM2PublicKey

from . import native
from .audit import (
    SignedTreeHead,
    decode_leaf,
)
from .audit_verify import (
    SQLITE_MAGIC,
    LogMismatch,
    VerifyReport,
    db_items,
    export_items,
    leaf_count,
    open_db,
    read_export_header,
    verify_items,
    write_export,
)
from .cli import DEFAULT_DATA_DIR, UsageError
from .keys import KeyDir, key_id, load_private_key

# -- commands -----------------------------------------------------------------------


def _emit(args: argparse.Namespace, result: Any, text: str) -> None:
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else text)


def _warn(message: str) -> None:
    print(f"xinfeng: warning: {message}", file=sys.stderr)


def _server_key(data_dir: Path) -> SM2PrivateKey:
    path = KeyDir(data_dir / "keys").server_key_path
    if not path.exists():
        raise UsageError(f"no server key at {path}")
    return load_private_key(path)


def _pinned_key(path: Path) -> SM2PublicKey:
    try:
        return SM2PublicKey.from_pem(path.read_bytes())
    except OSError:
        raise UsageError(f"cannot read {path}") from None


def _db_path(args: argparse.Namespace) -> Path:
    path: Path = args.data_dir / "xinfeng.db"
    if not path.is_file():
        raise UsageError(f"no database at {path}")
    return path


def _saved_head(path: Path | None) -> SignedTreeHead | None:
    if path is None:
        return None
    try:
        return SignedTreeHead.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        raise UsageError(f"{path} is not a saved tree head") from None


def _progress(total: int | None) -> Callable[[int], None]:
    def report(done: int) -> None:
        of = f" of {total}" if total else ""
        print(f"verified {done}{of} leaves", file=sys.stderr, flush=True)
    return report


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _db_key(args: argparse.Namespace) -> SM2PublicKey:
    if args.pubkey is not None:
        return _pinned_key(args.pubkey)
    key = _server_key(args.data_dir).public_key()
    _warn(f"using the server's own key from {args.data_dir} (kid {key_id(key)});"
          " an auditor pins the key with --pubkey")
    return key


def _verify_db(path: Path, args: argparse.Namespace) -> VerifyReport:
    conn = open_db(path)
    try:
        key = _db_key(args)
        return verify_items(db_items(conn), key, _saved_head(args.sth),
                            _progress(leaf_count(conn)))
    finally:
        conn.close()


def _export_key(header: dict[str, Any], pinned: Path | None) -> SM2PublicKey:
    try:
        named = SM2PublicKey.from_pem(str(header["server_public_key"]).encode())
    except (KeyError, XinfengError):
        raise LogMismatch("the export names no valid server key") from None
    if pinned is None:
        _warn(f"the server key comes from the export itself (kid {key_id(named)});"
              " check it out of band or pin it with --pubkey")
        return named
    key = _pinned_key(pinned)
    if key != named:
        raise LogMismatch(f"the export names server key {key_id(named)}, not the"
                          f" pinned key {key_id(key)}")
    return key


def _verify_export(path: Path, args: argparse.Namespace) -> VerifyReport:
    with path.open(encoding="utf-8") as fh:
        try:
            header = read_export_header(fh.readline(1 << 20))
            key = _export_key(header, args.pubkey)
            return verify_items(export_items(fh), key, _saved_head(args.sth),
                                _progress(None))
        except UnicodeDecodeError:
            raise LogMismatch("not UTF-8 text: not an xinfeng audit export,"
                              " or a damaged one") from None


def cmd_verify(args: argparse.Namespace) -> int:
    path: Path = args.source or _db_path(args)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; name the database or export file")
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        if _is_sqlite(path):
            report = _verify_db(path, args)
        else:
            report = _verify_export(path, args)
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    except LogMismatch as exc:
        _emit(args, {"ok": False, "error": str(exc)},
              f"audit log does NOT verify: {exc}")
        return 1
    for warning in report.warnings[:20]:
        _warn(warning)
    size = report.latest.size if report.latest else 0
    _emit(args, report.to_json(),
          f"audit log verifies: {report.leaves} leaves, {report.heads} signed tree"
          f" heads, latest at size {size}"
          + (", saved tree head found in the log" if report.saved_checked else ""))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    key = _server_key(args.data_dir).public_key()
    conn = open_db(_db_path(args))
    try:
        with args.out.open("w", encoding="utf-8") as out:
            leaves, heads = write_export(conn, out, key)
    finally:
        conn.close()
    _emit(args, {"out": str(args.out), "leaves": leaves, "heads": heads,
                 "kid": key_id(key)},
          f"wrote {leaves} leaves and {heads} tree heads to {args.out}"
          f" (server key {key_id(key)})")
    return 0


def cmd_pubkey(args: argparse.Namespace) -> int:
    key = _server_key(args.data_dir).public_key()
    pem = key.to_pem().decode()
    if args.out:
        args.out.write_text(pem)
    _emit(args, {"kid": key_id(key), "pem": pem}, pem.rstrip())
    return 0


async def _publish(data_dir: Path, now_ms: int) -> SignedTreeHead:
    from .storage import Storage

    storage = Storage(data_dir / "xinfeng.db")
    await storage.open()
    try:
        await storage.audit.load()
        return await storage.audit.publish(_server_key(data_dir), now_ms)
    finally:
        await storage.close()


def cmd_sth(args: argparse.Namespace) -> int:
    from .config import wall_clock_ms

    _db_path(args)
    head = asyncio.run(_publish(args.data_dir, wall_clock_ms()))
    kid = key_id(_server_key(args.data_dir).public_key())
    result = {**head.to_json(), "kid": kid}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    _emit(args, result, f"tree head: size {head.size} root {head.root.hex()}\n"
          f"  time {_iso(head.time_ms)} kid {kid}")
    return 0


def _iso(time_ms: int) -> str:
    moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- reading events -----------------------------------------------------------------


def _time_arg(text: str | None) -> int | None:
    from xinfeng.license.model import parse_time

    if text is None:
        return None
    try:
        return parse_time(text) * 1000
    except ValueError as exc:
        raise UsageError(f"{exc}: {text!r}") from None


def iter_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every leaf record of the database, in order (unverified)."""
    conn = open_db(path)
    try:
        for index, leaf in conn.execute(
            "SELECT idx, leaf FROM audit_leaves ORDER BY idx"
        ):
            yield index, decode_leaf(leaf)
    finally:
        conn.close()


@dataclass(frozen=True)
class EventFilter:
    """Which events ``show`` and ``summary`` keep."""

    license_id: str | None = None
    project: str | None = None
    kind: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def keeps(self, record: dict[str, Any]) -> bool:
        subject = record.get("subject") or {}
        time_ms = record.get("time") or 0
        return ((self.license_id is None or subject.get("license") == self.license_id)
                and (self.project is None or subject.get("project") == self.project)
                and (self.kind is None or record.get("type") == self.kind)
                and (self.since_ms is None or time_ms >= self.since_ms)
                and (self.until_ms is None or time_ms < self.until_ms))


def _filter(args: argparse.Namespace) -> EventFilter:
    return EventFilter(getattr(args, "license", None), getattr(args, "project", None),
                       getattr(args, "type", None), _time_arg(args.since),
                       _time_arg(args.until))


def _event_line(index: int, record: dict[str, Any]) -> str:
    subject, env = record.get("subject") or {}, record.get("env") or {}
    fields = [_iso(record.get("time") or 0), str(record.get("type")),
              str(record.get("outcome")), subject.get("license") or "-",
              subject.get("project") or "-", record.get("product") or "-",
              env.get("network") or "-", env.get("origin") or "-"]
    return f"{index:>8}  " + "  ".join(str(f) for f in fields)


def _jsonable(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else str(value)


def cmd_show(args: argparse.Namespace) -> int:
    keep = _filter(args)
    found = [(i, r) for i, r in iter_records(_db_path(args)) if keep.keeps(r)]
    found = found[-args.limit:] if args.limit else found
    if args.json:
        rows = [{"index": i, **r} for i, r in found]
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=_jsonable))
    else:
        print("\n".join(_event_line(i, r) for i, r in found) or "no events")
    return 0


def _category(record: dict[str, Any]) -> list[str]:
    kind, outcome = str(record.get("type")), record.get("outcome")
    found = ["calls"] if kind == "data_served" and outcome == "ok" else []
    found += ["refusals"] if kind.endswith("_refused") else []
    found += ["alerts"] if kind.endswith("_alert") else []
    found += ["throttles"] if kind.endswith("_throttled") else []
    found += ["freezes"] if kind.endswith("_frozen") else []
    found += ["tokens"] if kind == "token_minted" and outcome == "ok" else []
    found += ["sessions"] if kind == "session_opened" and outcome == "ok" else []
    return found


def summarize(records: Iterable[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Counts per license and UTC day: calls, refusals, alerts, freezes..."""
    table: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    projects: dict[str, str] = {}
    for _, record in records:
        subject = record.get("subject") or {}
        license_id = subject.get("license") or "-"
        projects.setdefault(license_id, subject.get("project") or "-")
        day = _iso(record.get("time") or 0)[:10]
        table[(license_id, day)].update(_category(record))
    names = ("calls", "refusals", "alerts", "throttles", "freezes", "tokens",
             "sessions")
    return [{"license": lic, "project": projects[lic], "day": day,
             **{name: counts[name] for name in names}}
            for (lic, day), counts in sorted(table.items())]


def cmd_summary(args: argparse.Namespace) -> int:
    keep = _filter(args)
    rows = summarize((i, r) for i, r in iter_records(_db_path(args))
                     if keep.keeps(r))
    head = "license             project         day         calls  refused" \
           "  alerts  throttled  frozen"
    lines = [f"{r['license']:<19} {r['project'][:15]:<15} {r['day']}  {r['calls']:>5}"
             f"  {r['refusals']:>7}  {r['alerts']:>6}  {r['throttles']:>9}"
             f"  {r['freezes']:>6}" for r in rows]
    _emit(args, {"rows": rows}, "\n".join([head, *lines]) if rows else "no events")
    return 0


async def _prove(
    data_dir: Path, index: int, now_ms: int
) -> tuple[SignedTreeHead, bytes, list[bytes]]:
    from .storage import Storage

    storage = Storage(data_dir / "xinfeng.db")
    await storage.open()
    try:
        audit = storage.audit
        await audit.load()
        head = await audit.latest_head()
        if head is None or head.size <= index:
            head = await audit.publish(_server_key(data_dir), now_ms)
        if index >= head.size:
            raise UsageError(f"the log has no leaf {index}")
        leaf = (await audit.leaves(index, index + 1))[0][1]
        return head, leaf, await audit.inclusion_proof(index, head.size)
    finally:
        await storage.close()


def cmd_prove(args: argparse.Namespace) -> int:
    from .config import wall_clock_ms

    _db_path(args)
    head, leaf, proof = asyncio.run(_prove(args.data_dir, args.index,
                                           wall_clock_ms()))
    key = (_pinned_key(args.pubkey) if args.pubkey
           else _server_key(args.data_dir).public_key())
    try:
        head.verify(key)
        verify_inclusion(args.index, head.size, leaf_hash(leaf, native.sm3_hash),
                         proof, head.root, native.sm3_hash)
    except (CryptoError, InvalidProof) as exc:
        _emit(args, {"ok": False, "error": str(exc)}, f"proof does NOT verify: {exc}")
        return 1
    result = {"ok": True, "index": args.index, "record": decode_leaf(leaf),
              "leaf": base64.b64encode(leaf).decode(), "head": head.to_json(),
              "proof": [p.hex() for p in proof]}
    _emit(args, result,
          f"leaf {args.index} is in the tree of size {head.size} (root"
          f" {head.root.hex()[:16]}..., signed {_iso(head.time_ms)}):"
          f" {len(proof)} proof hashes verified\n"
          + _event_line(args.index, result["record"]))
    return 0


# -- argument parsing ---------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="database and keys (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--license", help="only this license id")
    p.add_argument("--project", help="only this project")
    p.add_argument("--since", help="from this time on (ISO 8601 with zone)")
    p.add_argument("--until", help="before this time (ISO 8601 with zone)")


def _verify_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="verify the log offline (exit 1 if it fails)")
    _common(p)
    p.add_argument("source", nargs="?", type=Path,
                   help="export file or database (default: the data dir's)")
    p.add_argument("--pubkey", type=Path, help="server public key PEM to pin")
    p.add_argument("--sth", type=Path, help="a tree head saved earlier: the log"
                   " must still contain it (detects rollback)")
    p.set_defaults(func=cmd_verify)


def _reading_parsers(sub: Any) -> None:
    show = sub.add_parser("show", help="list events")
    _common(show)
    _filters(show)
    show.add_argument("--type", help="only this event type")
    show.add_argument("--limit", type=int, default=0, help="only the last N")
    show.set_defaults(func=cmd_show)
    summary = sub.add_parser("summary", help="calls, refusals, alerts and freezes"
                             " per license per day (UTC)")
    _common(summary)
    _filters(summary)
    summary.set_defaults(func=cmd_summary)


def register(subparsers: Any) -> None:
    """Add ``xinfeng audit ...`` to the main parser's subcommands."""
    audit = subparsers.add_parser("audit", help="verify and inspect the audit log")
    sub = audit.add_subparsers(dest="action", required=True)
    _verify_parser(sub)
    sth = sub.add_parser("sth", help="sign a tree head now if the log grew; print")
    _common(sth)
    sth.add_argument("--out", type=Path, help="also save it (for verify --sth)")
    sth.set_defaults(func=cmd_sth)
    export = sub.add_parser("export", help="write leaves, tree heads and key")
    _common(export)
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(func=cmd_export)
    pubkey = sub.add_parser("pubkey", help="print the server public key (PEM)")
    _common(pubkey)
    pubkey.add_argument("--out", type=Path)
    pubkey.set_defaults(func=cmd_pubkey)
    prove = sub.add_parser("prove", help="inclusion proof of one event")
    _common(prove)
    prove.add_argument("--index", type=int, required=True)
    prove.add_argument("--pubkey", type=Path, help="server public key PEM to pin")
    prove.set_defaults(func=cmd_prove)
    _reading_parsers(sub)
