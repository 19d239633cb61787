"""Helpers for the end-to-end tests: ports, the demo's coordinates, polling."""

from __future__ import annotations

import base64
import contextlib
import html
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("XINFENG_CACHE_DIR", REPO / ".cache" / "xinfeng"))
CHROMIUM = os.environ.get("XINFENG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Playwright's own --disable-features switch (Playwright 1.65). It turns off
# third-party storage partitioning, which Chrome has on by default and
# without which a SharedWorker cannot start in a cross-site iframe. Playwright
# offers no way to drop one feature, so the whole switch is replaced by the
# same list without that one (test_shared_runtime fails if this drifts).
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,"
    "HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,LensOverlay,MediaRouter,"
    "PaintHolding,ThirdPartyStoragePartitioning,"
    "AvoidCorsURLLoaderRestartOnRedirect,TcpPortRandomizationWin,"
    "OptimizationHints,NetworkTimeServiceQuerying,AimEnabled,PreconnectToSearch,"
    "msForceBrowserSignIn,msEdgeUpdateLaunchServicesPreferredVersion"
)
PARTITIONING = "ThirdPartyStoragePartitioning"
PRODUCT = "gd-stations"
WORKER_PATH = "/worker.js"
# First start downloads Pyodide (13.5 MB) and the meteva wheel (46 MB).
START_TIMEOUT_S = 600


def launch_options(user_like: bool = True) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``launch`` of Debian's Chromium.

    ``user_like`` keeps Chrome's default third-party storage partitioning
    (see PLAYWRIGHT_DISABLED_FEATURES); ``False`` keeps Playwright's
    defaults, which a few tests use as a browser without it.
    """
    options: dict[str, Any] = {
        "executable_path": CHROMIUM,
        "args": list(CHROMIUM_ARGS),
        "headless": True,
    }
    if user_like:
        features = PLAYWRIGHT_DISABLED_FEATURES.split(",")
        kept = ",".join(f for f in features if f != PARTITIONING)
        options["args"].append(f"--disable-features={kept}")
        options["ignore_default_args"] = [
            f"--disable-features={PLAYWRIGHT_DISABLED_FEATURES}"
        ]
    return options


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@dataclass(frozen=True)
class Demo:
    """The running demo: where it listens and what it was set up with."""

    provider_url: str
    host_url: str
    data_dir: Path
    cache_dir: Path
    license_id: str
    credential: str
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def container_url(self, token: str, product: str = PRODUCT) -> str:
        return f"{self.provider_url}/embed/{self.license_id}/{product}/#token={token}"


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that answers whole bodies and logs nothing."""

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _RoguePage(_QuietHandler):
    """Serves one page that frames the container from an unlicensed origin."""

    frame_url = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = (
            "<!doctype html><title>not licensed</title>"
            f'<iframe id="lifted" src="{html.escape(self.frame_url)}"'
            ' width="800" height="560"></iframe>'
        ).encode()
        self._answer(200, {"Content-Type": "text/html; charset=utf-8"}, body)


@contextlib.contextmanager
def rogue_site(frame_url: str) -> Iterator[str]:
    """A third origin on 127.0.0.1 serving a page that frames ``frame_url``."""
    with _site(type("Rogue", (_RoguePage,), {"frame_url": frame_url})) as url:
        yield url


@contextlib.contextmanager
def _site(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1; its origin."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _CopySite(_QuietHandler):
    """A copy of the provider's component on another origin.

    ``/`` frames the copied container page; every other address is fetched
    from the provider and passed on, less the container's
    Content-Security-Policy (whose frame-ancestors would refuse the copy).
    """

    provider = ""
    frame_path = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/":
            body = (
                "<!doctype html><title>copied component</title>"
                f'<iframe id="copy" src="{html.escape(self.frame_path)}"'
                ' width="800" height="560"></iframe>'
            ).encode()
            self._answer(200, {"Content-Type": "text/html; charset=utf-8"}, body)
            return
        self._forward(None)

    def do_POST(self) -> None:  # noqa: N802
        self._forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def _forward(self, body: bytes | None) -> None:
        keep = ("content-type", "origin", "user-agent", "referer")
        headers = {k: v for k, v in self.headers.items() if k.lower() in keep}
        headers.update({k: v for k, v in self.headers.items()
                        if k.lower().startswith("x-xf-")})
        request = urllib.request.Request(self.provider + self.path, data=body,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                status, got, data = reply.status, reply.headers, reply.read()
        except urllib.error.HTTPError as refused:
            status, got, data = refused.code, refused.headers, refused.read()
        drop = ("content-security-policy", "content-length", "connection",
                "transfer-encoding", "date", "server")
        self._answer(status, {k: v for k, v in got.items()
                              if k.lower() not in drop}, data)


@contextlib.contextmanager
def copy_site(provider_url: str, container_url: str) -> Iterator[str]:
    """A third origin on 127.0.0.1 serving a copy of the component that
    ``container_url`` (on ``provider_url``) names, framed by its own page."""
    frame_path = container_url.removeprefix(provider_url)
    handler = type("Copy", (_CopySite,), {"provider": provider_url,
                                          "frame_path": frame_path})
    with _site(handler) as url:
        yield url


def poll(
    check: Callable[[], Any], timeout_s: float = 60.0, every_s: float = 0.1
) -> Any:
    """Call ``check`` until it returns something truthy; fail after the timeout.

    Under the container's CSP Playwright's ``wait_for_function`` cannot run
    (it needs eval), so tests poll with ``evaluate`` instead.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(every_s)


def _inspectable(frame: Any) -> bool:
    from playwright.sync_api import Error as PlaywrightError

    try:
        return bool(frame.evaluate("typeof self.xinfengFrameText === 'function'"))
    except PlaywrightError:  # the frame navigated away or closed meanwhile
        return False


def component_frames(page: Any) -> list[Any]:
    """The component containers on ``page`` whose runtime answers, in order.

    Components of one page share one runtime in a SharedWorker, which
    Playwright does not expose; each container asks the runtime on demand
    (under automation only) for what its component drew.
    """
    # The sync API handles browser events only inside its own calls.
    page.wait_for_timeout(100)
    frames = [f for f in page.frames if "/embed/" in f.url]
    return [f for f in frames if _inspectable(f)]


def component_frame(page: Any) -> Any:
    """The first component container on ``page``, once its runtime answers."""

    def find() -> Any:
        frames = component_frames(page)
        return frames[0] if frames else None

    return poll(find, timeout_s=30)


# The first tests were written when each component had its own Worker.
component_worker = component_frame


def frame_text(container: Any) -> list[str]:
    """The strings the component in ``container`` drew in its last frame."""
    script = "self.xinfengFrameText ? self.xinfengFrameText() : []"
    return list(container.evaluate(script))


def component_texts(page: Any) -> list[str]:
    """Every string the components on ``page`` drew in their last frames."""
    return [text for frame in component_frames(page) for text in frame_text(frame)]


def runtime_info(container: Any) -> dict[str, Any]:
    """How the component in ``container`` is served: mode, runtime name, counts."""
    return dict(container.evaluate("self.xinfengRuntime()"))


class BrowserTraffic:
    """Every HTTP response of a browser whose URL matches, seen and alterable.

    Playwright's ``route`` and response events reach pages and dedicated
    Workers, not a SharedWorker; the component runtime lives in one. This
    works one level lower, on the browser's DevTools ``Fetch`` domain, which
    sees the requests of every target. ``mutate`` (optional) rewrites a
    matching body before the browser reads it; ``bodies`` keeps each
    matching URL's bodies as received.
    """

    def __init__(
        self, browser: Any, pattern: str, mutate: Callable[[bytes], bytes] | None = None
    ) -> None:
        self.pattern = re.compile(pattern)
        self.mutate = mutate
        self.bodies: dict[str, list[bytes]] = {}
        self.session = browser.new_browser_cdp_session()
        self.session.on("Fetch.requestPaused", self._paused)
        stage = [{"urlPattern": "*", "requestStage": "Response"}]
        self.session.send("Fetch.enable", {"patterns": stage})

    def _paused(self, event: dict[str, Any]) -> None:
        request_id, url = event["requestId"], event["request"]["url"]
        if not self.pattern.search(url) or "responseStatusCode" not in event:
            self.session.send("Fetch.continueRequest", {"requestId": request_id})
            return
        reply = self.session.send("Fetch.getResponseBody", {"requestId": request_id})
        body = reply["body"].encode()
        body = base64.b64decode(body) if reply["base64Encoded"] else body
        self.bodies.setdefault(url, []).append(body)
        if self.mutate is not None:
            body = self.mutate(body)
        self.session.send(
            "Fetch.fulfillRequest",
            {
                "requestId": request_id,
                "responseCode": event["responseStatusCode"],
                "responseHeaders": _plain_headers(event.get("responseHeaders", [])),
                "body": base64.b64encode(body).decode(),
            },
        )

    def close(self) -> None:
        self.session.send("Fetch.disable")
        self.session.detach()


def _plain_headers(headers: list[dict[str, str]]) -> list[dict[str, str]]:
    """Response headers that still hold for a body that was decoded and altered."""
    dropped = {"content-length", "content-encoding"}
    return [h for h in headers if h["name"].lower() not in dropped]


@contextlib.contextmanager
def browser_traffic(
    browser: Any, pattern: str, mutate: Callable[[bytes], bytes] | None = None
) -> Iterator[BrowserTraffic]:
    """A :class:`BrowserTraffic` for the duration of a ``with`` block."""
    traffic = BrowserTraffic(browser, pattern, mutate)
    try:
        yield traffic
    finally:
        traffic.close()


TIMINGS: list[tuple[str, float]] = []


def record_timing(what: str, milliseconds: float) -> None:
    """Keep a measurement for the summary at the end of the test run."""
    TIMINGS.append((what, milliseconds))


ABUSE: list[str] = []


def record_abuse(line: str) -> None:
    """Keep what an abuser got before it was stopped, for the summary."""
    ABUSE.append(line)


def _wait_until_up(
    process: subprocess.Popen[bytes], urls: list[str], log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"xinfeng demo exited early:\n{log.read_text()[-4000:]}")
        if all(http_status(url) == 200 for url in urls):
            return
        time.sleep(0.5)
    raise RuntimeError(f"xinfeng demo did not start:\n{log.read_text()[-4000:]}")


def demo_cli(demo: Demo, *args: str) -> Any:
    """An ``xinfeng`` command on the demo's data directory; its JSON output."""
    cmd = [sys.executable, "-m", "xinfeng.server.cli", *args,
           "--data-dir", str(demo.data_dir), "--json"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout)


@contextlib.contextmanager
def running_demo(data_dir: Path, *extra: str) -> Iterator[Demo]:
    """``xinfeng demo`` in a subprocess on free 127.0.0.1 ports, with its own
    data directory (keys, database, demo licence) and the shared cache;
    ``extra`` are more ``xinfeng demo`` options."""
    provider_port, host_port = free_port(), free_port()
    log_path = data_dir / "demo.log"
    cmd = [sys.executable, "-m", "xinfeng.server.cli", "demo",
           "--provider-port", str(provider_port), "--host-port", str(host_port),
           "--data-dir", str(data_dir), "--cache-dir", str(CACHE_DIR), *extra]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    provider_url = f"http://127.0.0.1:{provider_port}"
    host_url = f"http://127.0.0.1:{host_port}"
    try:
        _wait_until_up(
            process,
            [f"{provider_url}/embed/loader.js", f"{host_url}/static/host.js"],
            log_path,
        )
        saved = json.loads((data_dir / "demo-license.json").read_text())
        yield Demo(provider_url, host_url, data_dir, CACHE_DIR,
                   saved["license_id"], saved["credential"], log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
