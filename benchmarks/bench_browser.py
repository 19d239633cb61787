"""SM4-CTR and HMAC-SM3 in Pyodide (Chromium) against the same code on CPython.

Serves the pinned Pyodide and the component bundle from a throw-away
provider-like app on 127.0.0.1, loads them in Debian's Chromium through
Playwright (on the page's main thread: WebAssembly runs at the same speed
there as in the component's Worker), runs the same benchmark source in both
interpreters, and prints a table of throughput.

Run: ``python3 benchmarks/bench_browser.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from xinfeng.sdk.sm2 import SM2PrivateKey
from xinfeng.server import assets, embed

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# Runs unchanged on CPython and in Pyodide; the last expression is the result.
BENCH_SOURCE = """
import json, time
from xinfeng.sdk import envelope, sm3, sm4
from xinfeng.sdk.wire import Limits

def per_second(fn, budget):
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget and runs >= 3:
            return runs / elapsed

def bench(budget):
    key, iv = bytes(range(16)), bytes(range(16, 32))
    rows = {}
    for size in (1024, 65536):
        data = bytes(i % 251 for i in range(size))
        chunks = [data[i:i + envelope.CHUNK_SIZE]
                  for i in range(0, size, envelope.CHUNK_SIZE)]
        cases = {
            "SM4-CTR": lambda: sm4.sm4_ctr(key, iv, data),
            "HMAC-SM3": lambda: sm3.hmac_sm3(key, data),
            "HMAC-SM3 4 KiB chunks, lanes": lambda: envelope.PURE.hmac_sm3_many(
                key, chunks),
        }
        sealed = envelope.seal(key, 1, data)
        limits = Limits(max_bytes=1 << 20, max_bin=1 << 20)
        cases["envelope open"] = lambda: envelope.open_envelope(
            key, sealed, 1, limits)
        for name, fn in cases.items():
            rows[f"{name}|{size}"] = per_second(fn, budget) * size
    return rows

json.dumps(bench(BUDGET))
"""

# Runs in the page on the benchmark origin: boots Pyodide like worker.js does.
BOOT_AND_RUN = """
async ({bundleUrl, source}) => {
  const {loadPyodide} = await import('/pyodide/pyodide.mjs');
  const started = performance.now();
  const indexURL = new URL('/pyodide/', location.href).href;
  const pyodide = await loadPyodide({indexURL});
  const booted = performance.now();
  const data = await (await fetch(bundleUrl)).arrayBuffer();
  const site = pyodide.runPython('import sysconfig; sysconfig.get_path("purelib")');
  pyodide.unpackArchive(data, 'zip', {extractDir: site});
  const result = await pyodide.runPythonAsync(source);
  return {boot_ms: booted - started, result, python: pyodide.runPython(
    'import sys; sys.version.split()[0]')};
}
"""


@dataclass(frozen=True)
class BenchState:
    """What :func:`xinfeng.server.embed.routes` needs; no license is usable."""

    pyodide_dir: Path
    bundle: assets.ComponentBundle
    server_public_key: bytes

    async def license_origins(self, license_id: str) -> list[str] | None:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_app(state: BenchState) -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse("<!doctype html><title>xinfeng bench</title>")

    return Starlette(routes=[Route("/bench/", page), *embed.routes(state)])


def serve(app: Starlette, port: int) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def run_cpython(budget: float) -> dict[str, float]:
    scope: dict[str, Any] = {"BUDGET": budget}
    *body, last = BENCH_SOURCE.strip().splitlines()
    exec("\n".join(body), scope)
    return dict(json.loads(eval(last, scope)))


def run_pyodide(url: str, bundle: str, chromium: str, budget: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    source = f"BUDGET = {budget!r}\n{BENCH_SOURCE}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page()
            page.goto(url)
            page.set_default_timeout(600_000)
            outcome = page.evaluate(
                BOOT_AND_RUN, {"bundleUrl": bundle, "source": source}
            )
        finally:
            browser.close()
    outcome["result"] = json.loads(outcome["result"])
    return dict(outcome)


def print_table(cpython: dict[str, float], pyodide: dict[str, float]) -> None:
    print(
        f"{'operation':<32} {'size':>7} {'CPython MB/s':>13} {'Pyodide MB/s':>13}"
        f" {'ratio':>6}"
    )
    for key in cpython:
        name, size = key.split("|")
        native, wasm = cpython[key] / 1e6, pyodide[key] / 1e6
        label = f"{int(size) // 1024} KiB"
        print(
            f"{name:<32} {label:>7} {native:>13.2f} {wasm:>13.2f}"
            f" {native / wasm:>5.1f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "xinfeng")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument(
        "--budget",
        type=float,
        default=1.0,
        help="seconds per measurement (default %(default)s)",
    )
    args = parser.parse_args(argv)

    key = SM2PrivateKey.generate().public_key().to_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        state = BenchState(
            assets.ensure_pyodide(args.cache_dir),
            assets.build_component_bundle(Path(tmp), key),
            key,
        )
        port = free_port()
        server = serve(bench_app(state), port)
        try:
            browser = run_pyodide(
                f"http://127.0.0.1:{port}/bench/",
                f"/component/{state.bundle.name}",
                args.chromium,
                args.budget,
            )
        finally:
            server.should_exit = True
    cpython = run_cpython(args.budget)
    print(
        f"CPython {sys.version.split()[0]} vs Pyodide {assets.PYODIDE_VERSION}"
        f" (Python {browser['python']}) in Chromium;"
        f" Pyodide boot {browser['boot_ms'] / 1000:.2f} s"
    )
    print_table(cpython, browser["result"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
