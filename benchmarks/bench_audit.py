"""Audit log throughput: appends through Storage, start-up, proofs, and the
auditor's full offline verification.

    python3 benchmarks/bench_audit.py --quick           # 20,000 events, CI
    python3 benchmarks/bench_audit.py                   # 1,000,000 events
    python3 benchmarks/bench_audit.py --events 200000 --json

Events look like the server's ``data_served`` events (a real license row,
so the subject is looked up and cached as in production) and are appended
by ``--concurrency`` coroutines at once through ``Storage.log_event``, one
SQLite connection in WAL mode as the server runs it. A tree head is signed
every ``--head-every`` events. Times are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xinfeng.sdk.sm2 import SM2PrivateKey
from xinfeng.server import audit_verify
from xinfeng.server.storage import Storage

LICENSE_ID = "lic-0123456789ab"
T0 = 1_767_225_600_000


def fake_token() -> str:
    claims = {"licensee": "Benchmark Licensee", "project": "bench-project"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return "e30." + body.decode() + ".c2ln"


def event_detail(i: int) -> dict[str, Any]:
    return {"product": "gd-radar", "trace": f"{i:032x}", "counter": i,
            "ip": f"10.{i % 200}.{i % 97}.{i % 13}"}


async def append_all(
    store: Storage, key: SM2PrivateKey, events: int, concurrency: int,
    head_every: int,
) -> float:
    """Seconds to append ``events`` events with ``concurrency`` in flight."""
    queue = iter(range(events))

    async def worker() -> None:
        for i in queue:
            await store.log_event(T0 + i, "data_served", "ok", LICENSE_ID,
                                  event_detail(i))
            if (i + 1) % head_every == 0:
                await store.audit.publish(key, T0 + i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await store.audit.publish(key, T0 + events)
    return time.perf_counter() - start


async def server_side(db: Path, key: SM2PrivateKey, args: argparse.Namespace
                      ) -> dict[str, float]:
    store = Storage(db)
    await store.open()
    await store.put_license(LICENSE_ID, fake_token(), b"v" * 32, T0)
    appended = await append_all(store, key, args.events, args.concurrency,
                                args.head_every)
    await store.close()

    store = Storage(db)
    await store.open()
    start = time.perf_counter()
    await store.audit.load()
    loaded = time.perf_counter() - start
    proof_ms = await time_proofs(store, args.events)
    await store.close()
    return {"append_s": appended, "events_per_s": args.events / appended,
            "load_s": loaded, "inclusion_proof_ms": proof_ms}


async def time_proofs(store: Storage, size: int, count: int = 200) -> float:
    rng = random.Random(1)
    start = time.perf_counter()
    for _ in range(count):
        await store.audit.inclusion_proof(rng.randrange(size), size)
    return (time.perf_counter() - start) / count * 1000


def timed(operation: Callable[[], object]) -> float:
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


def auditor_side(db: Path, key: SM2PrivateKey, out: Path) -> dict[str, float]:
    public = key.public_key()

    def verify_db() -> None:
        conn = audit_verify.open_db(db)
        try:
            audit_verify.verify_items(audit_verify.db_items(conn), public)
        finally:
            conn.close()

    def export() -> None:
        conn = audit_verify.open_db(db)
        try:
            with out.open("w", encoding="utf-8") as fh:
                audit_verify.write_export(conn, fh, public)
        finally:
            conn.close()

    def verify_export() -> None:
        with out.open(encoding="utf-8") as fh:
            audit_verify.read_export_header(fh.readline())
            audit_verify.verify_items(audit_verify.export_items(fh), public)

    return {"verify_db_s": timed(verify_db), "export_s": timed(export),
            "verify_export_s": timed(verify_export)}


def report(args: argparse.Namespace, numbers: dict[str, float]) -> None:
    if args.json:
        print(json.dumps(numbers, indent=2))
        return
    print(f"events                    {args.events:>12,}")
    rate = numbers["events_per_s"]
    print(f"append (concurrency {args.concurrency:>3})  {rate:>12,.0f}"
          f" events/s  ({numbers['append_s']:.1f} s)")
    print(f"start-up tree rebuild     {numbers['load_s']:>12.2f} s")
    print(f"inclusion proof           {numbers['inclusion_proof_ms']:>12.2f} ms")
    print(f"verify database           {numbers['verify_db_s']:>12.2f} s"
          f"  ({args.events / numbers['verify_db_s']:,.0f} leaves/s)")
    print(f"export                    {numbers['export_s']:>12.2f} s"
          f"  ({numbers['export_mb']:.0f} MB)")
    print(f"verify export             {numbers['verify_export_s']:>12.2f} s")
    print(f"database size             {numbers['db_mb']:>12.0f} MB"
          f"  ({numbers['heads']:.0f} tree heads)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--head-every", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, help="work here (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.events = 20_000
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db, out = Path(tmp) / "audit.db", Path(tmp) / "audit.jsonl"
        key = SM2PrivateKey.generate()
        numbers = asyncio.run(server_side(db, key, args))
        numbers |= auditor_side(db, key, out)
        numbers["db_mb"] = sum(p.stat().st_size for p in Path(tmp).glob("audit.db*"))
        numbers["db_mb"] /= 1e6
        numbers["export_mb"] = out.stat().st_size / 1e6
        numbers["heads"] = args.events // args.head_every + 1
    report(args, numbers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
