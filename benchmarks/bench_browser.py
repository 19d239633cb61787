"""The component in a real Chromium: start-up, crypto in Pyodide, memory.

Starts the provider in this process on 127.0.0.1 (a throw-away data
directory, the shared download cache, a bench licence for a host page on
``localhost``, so the embedding is cross-site as on the web) and drives
Debian's Chromium through Playwright:

- crypto: opening 1 KiB and 64 KiB envelopes and the component's half of
  the SM2 handshake in Pyodide, next to the same code on this CPython;
- first render: navigation to the component's ``ready`` event, cold (fresh
  browser profile), warm (second visit, same profile), after a browser
  restart, without Chrome's WebAssembly code cache, and without the memory
  snapshot: medians of ``--rounds`` rounds, each from a fresh profile;
- a page with 13 components: how many runtimes serve it, the memory the
  browser's processes add (PSS), and the time until all are ready.

The abuse monitor's limits are lifted for the bench's provider: one
automated browser opening hundreds of sessions is what they exist to stop.

Run ``python3 benchmarks/bench_browser.py`` (``--quick`` for CI: one round,
no lever comparison). Every figure is printed next to its target;
docs/performance.md explains them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import http.server
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from e2e.harness import free_port, launch_options, poll  # noqa: E402
from xinfeng.sdk import envelope  # noqa: E402
from xinfeng.sdk.integrator import mint_token  # noqa: E402
from xinfeng.server import assets, native  # noqa: E402
from xinfeng.server.config import AbuseConfig  # noqa: E402

PRODUCT = "gd-stations"
READY_TIMEOUT_S = 120
# Time between visits: Chrome writes its compiled-WebAssembly cache shortly
# after compiling, and a closed page's worker needs a moment to go.
SETTLE_S = 2.0
NATIVE = envelope.Suite(native.sm4_ctr, native.hmac_sm3, native.hmac_sm3_lanes)

# Runs unchanged on CPython and in Pyodide; ``measure(inputs)`` is the entry.
BENCH_SOURCE = """
import base64, time
from xinfeng.sdk import envelope, sm2
from xinfeng.sdk.sm2 import SM2PrivateKey
from xinfeng.sdk.wire import Limits

LIMITS = Limits(max_bytes=1 << 20, max_items=16, max_str=64, max_bin=1 << 20)
ENV = {"origins": ["http://localhost"], "ua": "bench", "webdriver": True,
       "build": "00" * 32, "hidden": False}


def open_ms(key, sealed):
    total = 0.0
    for counter, text in sealed:
        data = base64.b64decode(text)
        start = time.perf_counter()
        envelope.open_envelope(key, data, counter, LIMITS)
        total += time.perf_counter() - start
    return total / len(sealed) * 1000


def handshake_ms(rounds):
    server = SM2PrivateKey.generate()
    pinned = server.public_key()
    now = int(time.time() * 1000)
    total = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        client = envelope.ClientHandshake("bench-token", ENV)
        body = client.request(now)
        total += time.perf_counter() - start
        request = envelope.parse_handshake(body, now)
        sid, key = envelope.new_session_secrets()
        reply = envelope.sign_handshake_reply(request, server, sid, key, now, now)
        start = time.perf_counter()
        client.finish(reply, pinned)
        total += time.perf_counter() - start
    return total / rounds * 1000


def measure(inputs):
    sm2._SM2P256.g_comb()  # built once per runtime (kept in the snapshot)
    key = base64.b64decode(inputs["key"])
    # Untimed: V8 first runs the interpreter's code unoptimised and swaps in
    # optimised code after a while; measure the steady state.
    start = time.perf_counter()
    while time.perf_counter() - start < inputs["warm_up_s"]:
        for sealed in inputs["warm-up"].values():
            open_ms(key, sealed)
        handshake_ms(1)
    result = {"handshake": handshake_ms(inputs["rounds"])}
    for size, sealed in inputs["sealed"].items():
        result["open " + size] = open_ms(key, sealed)
    return result
"""

# Runs in a page of the provider's origin: boots Pyodide as the worker does.
BOOT_AND_RUN = """
async ({pyodideUrl, bundleUrl, source, inputs}) => {
  const {loadPyodide} = await import(pyodideUrl + 'pyodide.mjs');
  const indexURL = new URL(pyodideUrl, location.href).href;
  const pyodide = await loadPyodide({indexURL});
  const data = await (await fetch(bundleUrl)).arrayBuffer();
  const site = pyodide.runPython('import sysconfig; sysconfig.get_path("purelib")');
  pyodide.unpackArchive(data, 'zip', {extractDir: site});
  pyodide.runPython(source);
  const measure = pyodide.globals.get('measure');
  const asObject = {dict_converter: Object.fromEntries};
  const result = measure(pyodide.toPy(inputs)).toJs(asObject);
  return {result, python: pyodide.runPython('import sys; sys.version.split()[0]')};
}
"""

RECORD_READY = """
window.benchReady = {}; window.benchErrors = {};
addEventListener('message', (event) => {
  const data = event.data;
  if (!data || data.source !== 'xinfeng') return;
  const frames = Array.from(document.querySelectorAll('iframe'));
  const at = frames.findIndex((f) => f.contentWindow === event.source);
  if (data.type === 'ready') window.benchReady[at] = performance.now();
  if (data.type === 'error') window.benchErrors[at] = data.code;
});
"""


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    measured: str
    target: str = ""
    cpython: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)

    def add(
        self, figure: str, measured: str, target: str = "", cpython: str = ""
    ) -> None:
        self.rows.append(Row(figure, measured, target, cpython))
        print(f"  {figure}: {measured}", flush=True)

    def table(self) -> str:
        lines = [
            "| figure | Chromium (Pyodide) | target | CPython |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r.figure} | {r.measured} | {r.target} | {r.cpython} |"
            for r in self.rows
        ]
        return "\n".join(lines)


# -- the provider under test ----------------------------------------------------


@dataclass
class Provider:
    """The provider app on a free port, with a bench licence for ``origin``."""

    url: str
    license_id: str
    credential: str
    server: uvicorn.Server
    app: Any


# A benchmark opens many sessions from one browser under automation, which
# the abuse monitor rightly throttles; it measures the browser, not that.
UNLIMITED = AbuseConfig(
    min_burst=100_000, session_burst=100_000, token_per_minute=100_000,
    token_burst=100_000, network_per_minute=100_000, network_burst=100_000,
    mint_per_minute=100_000, mint_burst=100_000, alert_at=1e9, throttle_at=1e9,
    freeze_at=1e9,
)  # fmt: skip


def _licence_fields(origins: list[str]) -> dict[str, Any]:
    now = int(time.time())
    return {
        "licensee": "bench", "project": "bench", "contract_id": "BENCH",
        "scenario": "benchmark", "products": (PRODUCT,), "origins": tuple(origins),
        "networks": ("127.0.0.0/8", "::1/128"), "not_before": now - 60,
        "not_after": now + 86400, "rate_per_minute": 6000, "rate_per_day": 100000,
        "max_sessions": 10000,
    }  # fmt: skip


@contextlib.contextmanager
def provider(
    cache_dir: Path, origins: list[str], snapshot: bool = True
) -> Iterator[Provider]:
    """Run a provider; ``snapshot=False`` serves no memory snapshot."""
    from xinfeng.server.app import create_app
    from xinfeng.server.cli import issue_license
    from xinfeng.server.config import Config
    from xinfeng.server.demo import DEMO_REVIEW
    from xinfeng.server.registry import approve_catalog_at

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    saved = assets.ensure_snapshot
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        if not snapshot:
            assets.ensure_snapshot = lambda *args: None
        try:
            config = Config(
                data_dir=data_dir, cache_dir=cache_dir, public_url=url, abuse=UNLIMITED
            )
            app = create_app(config)
        finally:
            assets.ensure_snapshot = saved
        catalog = app.state.xinfeng.catalog
        _run(approve_catalog_at(data_dir, catalog, DEMO_REVIEW))
        issued = _run(issue_license(data_dir, _licence_fields(origins)))
        app.router.routes.insert(0, Route("/bench/", _blank_page))
        server = _serve(app, port)
        try:
            yield Provider(url, issued["license_id"], issued["credential"], server, app)
        finally:
            server.should_exit = True


def _run(coroutine: Any) -> Any:
    """Run ``coroutine`` to the end, also under Playwright's sync API loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _blank_page(request: Request) -> Response:
    return HTMLResponse("<!doctype html><title>xinfeng bench</title>")


def _serve(app: Starlette, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


# -- the host page ------------------------------------------------------------------


class HostPages(http.server.BaseHTTPRequestHandler):
    """``/page/<n>``: a page framing ``n`` components, each with a fresh token."""

    provider: Provider
    origin: str

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        last = self.path.rsplit("/", 1)[-1]
        if not self.path.startswith("/page/") or not last.isdigit():
            self.send_error(404)
            return
        count = int(last)
        token = mint_token(
            self.provider.url, self.provider.credential, [PRODUCT], self.origin
        )
        src = (
            f"{self.provider.url}/embed/{self.provider.license_id}/{PRODUCT}/"
            f"#token={token}"
        )
        frames = "".join(
            f'<iframe src="{src}" width="640" height="420"></iframe>'
            for _ in range(count)
        )
        body = (
            f"<!doctype html><meta charset=utf-8><title>bench host</title>"
            f"<script>{RECORD_READY}</script>{frames}"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def host_site(port: int, target: Provider) -> Iterator[str]:
    """The host page server; its origin is ``http://localhost:<port>``."""
    origin = f"http://localhost:{port}"
    handler = type("Host", (HostPages,), {"provider": target, "origin": origin})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()


# -- browsers, pages, memory ----------------------------------------------------


@contextlib.contextmanager
def browser_profile(playwright: Any, profile: Path) -> Iterator[Any]:
    context = playwright.chromium.launch_persistent_context(
        profile, viewport={"width": 1300, "height": 900}, **launch_options()
    )
    try:
        yield context
    finally:
        context.close()


def visit(context: Any, url: str, count: int = 1) -> dict[str, Any]:
    """Open ``url`` and wait until ``count`` components are ready or failed."""
    page = context.new_page()
    page.goto(url)

    def settled() -> dict[str, Any] | None:
        state = page.evaluate(
            "({ready: window.benchReady, errors: window.benchErrors})"
        )
        done = len(state["ready"]) + len(state["errors"])
        return state if done >= count else None

    state: dict[str, Any] = poll(settled, timeout_s=READY_TIMEOUT_S, every_s=0.05)
    if state["errors"]:
        raise RuntimeError(f"components failed: {state['errors']}")
    state["page"] = page
    state["ready_ms"] = max(state["ready"].values())
    return state


def container_timings(page: Any) -> dict[str, Any]:
    frame = next(f for f in page.frames if "/embed/" in f.url)
    return dict(frame.evaluate("self.xinfengTimings()"))


def runtime_infos(page: Any) -> list[dict[str, Any]]:
    frames = [f for f in page.frames if "/embed/" in f.url]
    return [dict(f.evaluate("self.xinfengRuntime()")) for f in frames]


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def _browser_pids(profile: Path) -> list[int]:
    """The browser process using ``profile`` and all its descendants."""
    roots = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if f"--user-data-dir={profile}".encode() in cmdline.read_bytes():
                roots.append(int(cmdline.parent.name))
    children, pids = _children(), []
    while roots:
        pid = roots.pop()
        if pid not in pids:
            pids.append(pid)
            roots += children.get(pid, [])
    return pids


def pss_mb(profile: Path) -> float:
    """Proportional set size of the browser's processes, in MB."""
    total_kb = 0
    for pid in _browser_pids(profile):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


# -- the measurements --------------------------------------------------------------


def _sealed(key: bytes, size: int, counters: range) -> list[tuple[int, str]]:
    payload = bytes(i % 251 for i in range(size))
    return [
        (c, base64.b64encode(envelope.seal(key, c, payload, suite=NATIVE)).decode())
        for c in counters
    ]


def crypto_inputs(quick: bool) -> dict[str, Any]:
    """Envelopes sealed here, each opened once there (fresh keys every time)."""
    key = bytes(range(16))
    count = 20 if quick else 100
    sizes = {"1 KiB": (1024, count), "64 KiB": (65536, count // 4)}
    return {
        "key": base64.b64encode(key).decode(),
        "rounds": 5 if quick else 30,
        "warm_up_s": 3.0,
        "sealed": {k: _sealed(key, n, range(1, c + 1)) for k, (n, c) in sizes.items()},
        "warm-up": {
            k: _sealed(key, n, range(10_001, 10_004)) for k, (n, _) in sizes.items()
        },
    }


def crypto_in_cpython(inputs: dict[str, Any]) -> dict[str, float]:
    scope: dict[str, Any] = {}
    exec(BENCH_SOURCE, scope)  # the same source Pyodide runs
    return dict(scope["measure"](inputs))


def crypto_in_pyodide(
    playwright: Any, target: Provider, inputs: dict[str, Any]
) -> dict[str, Any]:
    runtime = embed_runtime(target)
    browser = playwright.chromium.launch(**launch_options())
    try:
        page = browser.new_page()
        page.goto(target.url + "/bench/")
        page.set_default_timeout(600_000)
        return dict(
            page.evaluate(
                BOOT_AND_RUN,
                {
                    "pyodideUrl": runtime["pyodide_url"],
                    "bundleUrl": runtime["bundle_url"],
                    "source": BENCH_SOURCE,
                    "inputs": inputs,
                },
            )
        )
    finally:
        browser.close()


def embed_runtime(target: Provider) -> dict[str, str]:
    """Where the provider serves its pinned Pyodide and the bundle."""
    state = target.app.state.xinfeng
    tag = assets.pyodide_build(state.pyodide_dir).tag
    return {
        "pyodide_url": f"/pyodide/{tag}/",
        "bundle_url": f"/component/{state.bundle.name}",
    }


def measure_crypto(
    playwright: Any, target: Provider, quick: bool, results: Results
) -> None:
    print("crypto in Pyodide and CPython ...", flush=True)
    inputs = crypto_inputs(quick)
    browser = crypto_in_pyodide(playwright, target, inputs)
    cpython = crypto_in_cpython(inputs)
    wasm = browser["result"]
    targets = {"open 1 KiB": "< 3 ms", "open 64 KiB": "< 25 ms", "handshake": "< 50 ms"}
    names = {
        "open 1 KiB": "open a 1 KiB envelope (verify + decrypt)",
        "open 64 KiB": "open a 64 KiB envelope (verify + decrypt)",
        "handshake": "SM2 handshake, component side (keygen, sign, verify, unwrap)",
    }
    for key, name in names.items():
        results.add(name, f"{wasm[key]:.1f} ms", targets[key], f"{cpython[key]:.1f} ms")


COLD, WARM = "cold", "warm"
RESTARTED, NO_CODE_CACHE = "warm, browser restarted", "warm, no wasm code cache"


def _timed_visit(context: Any, host: str) -> tuple[float, dict[str, Any]]:
    state = visit(context, f"{host}/page/1")
    steps = container_timings(state["page"])
    state["page"].close()
    time.sleep(SETTLE_S)
    return float(state["ready_ms"]), steps


def render_series(
    playwright: Any, host: str, repeat: int, kinds: tuple[str, ...]
) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """First renders of one component, each kind ``repeat`` times.

    Every round starts from a fresh profile: a cold visit, a second visit
    in the same browser, one after restarting the browser, and one after
    restarting it without Chrome's compiled-WebAssembly cache.
    """
    series: dict[str, list[tuple[float, dict[str, Any]]]] = {k: [] for k in kinds}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            profile = Path(tmp)
            with browser_profile(playwright, profile) as context:
                series[COLD].append(_timed_visit(context, host))
                if WARM in kinds:
                    series[WARM].append(_timed_visit(context, host))
            if RESTARTED in kinds:
                with browser_profile(playwright, profile) as context:
                    series[RESTARTED].append(_timed_visit(context, host))
            if NO_CODE_CACHE in kinds:
                shutil.rmtree(profile / "Default" / "Code Cache" / "wasm")
                with browser_profile(playwright, profile) as context:
                    series[NO_CODE_CACHE].append(_timed_visit(context, host))
    return series


def report_renders(
    series: dict[str, list[tuple[float, dict[str, Any]]]],
    label: str,
    results: Results,
    targets: dict[str, str],
) -> None:
    for kind, runs in series.items():
        runs = sorted(runs, key=lambda run: run[0])
        ready_ms, steps = runs[len(runs) // 2]
        spread = f" (of {len(runs)}: {runs[0][0] / 1000:.2f}–{runs[-1][0] / 1000:.2f})"
        results.add(
            f"first render, {kind}, {label}",
            f"{ready_ms / 1000:.2f} s" + (spread if len(runs) > 1 else ""),
            targets.get(kind, ""),
            _steps(steps),
        )


def _steps(t: dict[str, Any]) -> str:
    """The runtime's own account of a start: boot, import, handshake, data."""
    boot = t.get("booted", 0) - t.get("start", 0)
    imported = t.get("imported", 0) - t.get("booted", 0)
    return (
        f"boot {boot:.0f} + import {imported:.0f} + handshake "
        f"{t.get('handshake', 0):.0f} + data {t.get('data', 0):.0f} ms"
    )


def many_components(
    playwright: Any, host: str, count: int, results: Results, dedicated: bool = False
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp)
        with browser_profile(playwright, profile) as context:
            if dedicated:
                context.add_init_script("delete window.SharedWorker;")
            blank = context.new_page()
            blank.goto(f"{host}/page/0")
            time.sleep(2)
            before = pss_mb(profile)
            state = visit(context, f"{host}/page/{count}", count)
            time.sleep(3)
            after = pss_mb(profile)
            infos = runtime_infos(state["page"])
    names = {i["name"] for i in infos if i["mode"] == "shared"}
    dedicated_count = sum(1 for i in infos if i["mode"] == "dedicated")
    runtimes = len(names) + dedicated_count
    label = "dedicated workers (fallback)" if dedicated else "shared runtime"
    target = "" if dedicated else "≤ 150 MB"
    results.add(
        f"{count} components, {label}: memory added (PSS)",
        f"{after - before:.0f} MB",
        target,
        f"{runtimes} runtime(s); all ready {state['ready_ms'] / 1000:.2f} s",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "xinfeng")
    parser.add_argument(
        "--quick", action="store_true", help="one round of each, no levers (CI)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of first renders (median)"
    )
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    repeat = 1 if args.quick else args.rounds
    results = Results()
    host_port = free_port()
    origins = [f"http://localhost:{host_port}"]
    with sync_playwright() as playwright:
        with (
            provider(args.cache_dir, origins) as target,
            host_site(host_port, target) as host,
        ):
            measure_crypto(playwright, target, args.quick, results)
            print("first render ...", flush=True)
            kinds = (
                (COLD, WARM) if args.quick else (COLD, WARM, RESTARTED, NO_CODE_CACHE)
            )
            series = render_series(playwright, host, repeat, kinds)
            targets = {COLD: "< 2 s", WARM: "< 0.6 s", RESTARTED: "< 0.6 s"}
            report_renders(series, "snapshot", results, targets)
            print("13 components ...", flush=True)
            many_components(playwright, host, 13, results)
            if not args.quick:
                many_components(playwright, host, 13, results, dedicated=True)
        if not args.quick:
            levers(playwright, args.cache_dir, origins, host_port, repeat, results)
    print()
    print(results.table())
    return 0


def levers(
    playwright: Any,
    cache_dir: Path,
    origins: list[str],
    host_port: int,
    repeat: int,
    results: Results,
) -> None:
    """First render without the memory snapshot, for comparison."""
    print("first render without a snapshot ...", flush=True)
    with (
        provider(cache_dir, origins, snapshot=False) as target,
        host_site(host_port, target) as host,
    ):
        series = render_series(playwright, host, repeat, (COLD, WARM, RESTARTED))
    report_renders(series, "no snapshot", results, {})


if __name__ == "__main__":
    sys.exit(main())
