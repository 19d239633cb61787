"""Helpers for the end-to-end tests: ports, the demo's coordinates, polling."""

from __future__ import annotations

import contextlib
import html
import http.server
import os
import socket
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
PRODUCT = "gd-stations"
WORKER_PATH = "/static/component/worker.js"
# First start downloads Pyodide (13.5 MB) and the meteva wheel (46 MB).
START_TIMEOUT_S = 600


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


class _RoguePage(http.server.BaseHTTPRequestHandler):
    """Serves one page that frames the container from an unlicensed origin."""

    frame_url = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = (
            "<!doctype html><title>not licensed</title>"
            f'<iframe id="lifted" src="{html.escape(self.frame_url)}"'
            ' width="800" height="560"></iframe>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def rogue_site(frame_url: str) -> Iterator[str]:
    """A third origin on 127.0.0.1 serving a page that frames ``frame_url``."""
    handler = type("Rogue", (_RoguePage,), {"frame_url": frame_url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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


def component_worker(page: Any) -> Any:
    """The component's Worker on ``page`` (it lives in the container iframe)."""

    def find() -> Any:
        # The sync API handles browser events only inside its own calls;
        # page.workers alone would never see a new worker.
        page.wait_for_timeout(100)
        return next((w for w in page.workers if w.url.endswith(WORKER_PATH)), None)

    return poll(find, timeout_s=30)


def frame_text(worker: Any) -> list[str]:
    """The strings the component drew in its last frame."""
    return list(worker.evaluate("self.xinfengFrameText ? self.xinfengFrameText() : []"))


TIMINGS: list[tuple[str, float]] = []


def record_timing(what: str, milliseconds: float) -> None:
    """Keep a measurement for the summary at the end of the test run."""
    TIMINGS.append((what, milliseconds))
