"""What rate limiting and abuse monitoring cost a data request.

Starts two copies of the real provider app in uvicorn on 127.0.0.1, each on
its own SQLite database with the same license and a small product: one as
the server runs it, one whose guard does nothing. Requests go to the two
alternately, each over its own keep-alive connection, from several
sessions, with query parameters in random order (as a user's), so every
signal is evaluated but none escalates. Prints the requests per second of
both, their ratio, and the guard's own time per request measured inside
the server.

    python3 benchmarks/bench_limiter.py            # 2,000 requests per app
    python3 benchmarks/bench_limiter.py --quick    # 200, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from xinfeng.sdk import envelope
from xinfeng.sdk.sm2 import SM2PublicKey
from xinfeng.server.app import create_app
from xinfeng.server.cli import issue_license
from xinfeng.server.config import AbuseConfig, Config, wall_clock_ms
from xinfeng.server.products import Catalog, Product
from xinfeng.server.registry import CatalogReview, approve_catalog_at

ORIGIN = "http://127.0.0.1:8001"
UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"
SESSIONS = 8
ROWS = [[59000 + i, "Guangdong", 113.2, 23.1, 41.0] for i in range(40)]
CATALOG = Catalog([Product("bench-product", "Benchmark product", 1, "bench",
                           lambda query: {"rows": ROWS})])
REVIEW = CatalogReview(owner="Benchmark", category="bench", region="440000",
                       category_code="99", submitter="bench-submitter",
                       reviewers=("bench-reviewer-1", "bench-reviewer-2"),
                       reason="benchmark")
# Limits high enough and a ladder quiet enough that nothing is refused: the
# benchmark measures the cost of checking, not of refusing.
QUIET = AbuseConfig(session_per_minute=10**6, session_burst=10**4,
                    network_per_minute=10**6, network_burst=10**4,
                    token_burst=100, alert_at=1e9, throttle_at=1e9, freeze_at=1e9)


class NullGuard:
    """A guard that admits everything and observes nothing."""

    async def admit_token(self, *args: Any) -> None:
        pass

    async def admit_session(self, *args: Any) -> None:
        pass

    async def admit_data(self, *args: Any) -> None:
        pass

    async def admit_renewal(self, *args: Any) -> None:
        pass

    async def note_refusal(self, *args: Any) -> None:
        pass

    async def close(self) -> None:
        pass


class TimedGuard:
    """Wraps the real guard's data check with a clock."""

    def __init__(self, guard: Any) -> None:
        self.guard = guard
        self.seconds = 0.0
        self.calls = 0

    async def admit_data(self, *args: Any) -> None:
        start = time.perf_counter()
        try:
            await self.guard.admit_data(*args)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        return getattr(self.guard, name)  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build(data_dir: Path, guarded: bool) -> tuple[Any, str]:
    """The app on ``data_dir`` and the credential of its license."""
    config = Config(data_dir=data_dir, cache_dir=data_dir / "cache",
                    public_url="http://127.0.0.1:8000", abuse=QUIET,
                    serve_browser_assets=False, clock_ms=wall_clock_ms)
    app = create_app(config, catalog=CATALOG)
    asyncio.run(approve_catalog_at(data_dir, CATALOG, REVIEW))
    now = wall_clock_ms() // 1000
    issued = asyncio.run(issue_license(data_dir, {
        "licensee": "Benchmark", "project": "bench", "contract_id": "C-1",
        "scenario": "benchmark", "products": ("bench-product",),
        "origins": (ORIGIN,), "networks": (), "not_before": now - 60,
        "not_after": now + 3600, "rate_per_minute": 10**6,
        "rate_per_day": 10**8, "max_sessions": 100}))
    state = app.state.xinfeng
    state.guard = TimedGuard(state.guard) if guarded else NullGuard()
    return app, issued["credential"]


def serve(app: Any) -> tuple[uvicorn.Server, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            sys.exit("the benchmark server did not start")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def open_sessions(client: httpx.Client, app: Any,
                  credential: str) -> list[envelope.ClientSession]:
    server_key = SM2PublicKey.from_bytes(app.state.xinfeng.server_public_key)
    token = client.post("/v1/tokens", json={"products": ["bench-product"],
                                            "origin": ORIGIN},
                        headers={"Authorization": f"Bearer {credential}"})
    token.raise_for_status()
    sessions = []
    for _ in range(SESSIONS):
        env = {"origins": [ORIGIN], "ua": UA, "webdriver": False,
               "build": "00" * 32, "hidden": False}
        hs = envelope.ClientHandshake(token.json()["token"], env)
        reply = client.post("/v1/handshake", content=hs.request(wall_clock_ms()),
                            headers={"Content-Type": "application/msgpack"})
        reply.raise_for_status()
        sessions.append(hs.finish(reply.content, server_key))
    return sessions


def one_request(client: httpx.Client, session: envelope.ClientSession,
                rng: random.Random) -> float:
    query = f"station={rng.randint(59001, 59999)}&page={rng.randint(1, 50)}"
    path = "/v1/data/bench-product"
    auth = session.sign("GET", path, query, wall_clock_ms())
    start = time.perf_counter()
    reply = client.get(f"{path}?{query}", headers=auth.headers())
    elapsed = time.perf_counter() - start
    reply.raise_for_status()
    return elapsed


def measure(count: int, work: Path) -> dict[str, float]:
    apps = {mode: build(work / mode, mode == "guarded")
            for mode in ("guarded", "unguarded")}
    servers = {mode: serve(app) for mode, (app, _) in apps.items()}
    clients = {mode: httpx.Client(base_url=url, headers={"User-Agent": UA})
               for mode, (_, url) in servers.items()}
    try:
        sessions = {mode: open_sessions(clients[mode], *apps[mode])
                    for mode in apps}
        elapsed = {mode: 0.0 for mode in apps}
        rng = random.Random(1)
        for i in range(count):
            for mode in apps:
                session = sessions[mode][i % SESSIONS]
                elapsed[mode] += one_request(clients[mode], session, rng)
    finally:
        for client in clients.values():
            client.close()
        for server, _ in servers.values():
            server.should_exit = True
    guard = apps["guarded"][0].state.xinfeng.guard
    return {"guarded": count / elapsed["guarded"],
            "unguarded": count / elapsed["unguarded"],
            "guard_ms": 1000 * guard.seconds / max(1, guard.calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few requests (CI)")
    parser.add_argument("--requests", type=int, default=0,
                        help="data requests per app (default 2000, quick 200)")
    args = parser.parse_args()
    count = args.requests or (200 if args.quick else 2000)
    with tempfile.TemporaryDirectory() as work:
        result = measure(count, Path(work))
    ratio = result["unguarded"] / result["guarded"]
    print(f"data requests per app: {count} ({SESSIONS} sessions, keep-alive)")
    print(f"{'without guard req/s':>22} {'with guard req/s':>18} "
          f"{'cost ratio':>11} {'guard ms/req':>13}")
    print(f"{result['unguarded']:22.1f} {result['guarded']:18.1f} "
          f"{ratio:11.3f} {result['guard_ms']:13.3f}")


if __name__ == "__main__":
    main()

