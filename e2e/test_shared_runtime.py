"""One Python runtime per page: a SharedWorker that serves every component.

The host pages here are served by the test on ``localhost`` while the
provider is on ``127.0.0.1``: the embedding is cross-site, as on the web,
which is where a browser's storage partitioning decides whether a
SharedWorker can start at all. Each component still has its own canvas,
token and session.
"""

from __future__ import annotations

import contextlib
import html
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from xinfeng.sdk.integrator import mint_token

from .harness import (
    PRODUCT,
    REPO,
    Demo,
    component_frames,
    frame_text,
    launch_options,
    poll,
    runtime_info,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READY_TIMEOUT_S = 120
RECORD_EVENTS = """
window.events = [];
addEventListener('message', (event) => {
  const frames = Array.from(document.querySelectorAll('iframe'));
  const at = frames.findIndex((frame) => frame.contentWindow === event.source);
  if (event.data && event.data.source === 'xinfeng') {
    window.events.push([at, event.data.type, event.data.code || null]);
  }
});
"""


@dataclass(frozen=True)
class HostSite:
    """A host page server on ``localhost`` with its own licence."""

    origin: str
    provider_url: str
    license_id: str
    credential: str

    def page(self, count: int) -> str:
        return f"{self.origin}/page/{count}"


def _issue_licence(demo: Demo, origin: str) -> dict[str, Any]:
    args = [
        "license", "issue", "--licensee", "e2e shared runtime",
        "--project", "e2e", "--contract", "E2E-SHARED",
        "--scenario", "end-to-end tests", "--product", PRODUCT,
        "--origin", origin, "--data-dir", str(demo.data_dir), "--json",
        "--rate-per-minute", "1000", "--max-sessions", "1000",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "xinfeng.server.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return dict(json.loads(done.stdout))


class _Pages(http.server.BaseHTTPRequestHandler):
    """``/page/<n>``: ``n`` containers of the product, one fresh token."""

    site: HostSite

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        count = self.path.removeprefix("/page/")
        if not count.isdigit():
            self.send_error(404)
            return
        body = self._page(int(count)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _page(self, count: int) -> str:
        site = self.site
        token = mint_token(site.provider_url, site.credential, [PRODUCT], site.origin)
        src = html.escape(
            f"{site.provider_url}/embed/{site.license_id}/{PRODUCT}/#token={token}"
        )
        frames = f'<iframe src="{src}" width="640" height="420"></iframe>' * count
        return f"<!doctype html><script>{RECORD_EVENTS}</script>{frames}"

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def site(demo: Demo) -> Iterator[HostSite]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    origin = f"http://localhost:{server.server_address[1]}"
    issued = _issue_licence(demo, origin)
    host = HostSite(
        origin, demo.provider_url, issued["license_id"], issued["credential"]
    )
    server.RequestHandlerClass = type("Pages", (_Pages,), {"site": host})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield host
    server.shutdown()
    server.server_close()


def _ready_page(context: Any, url: str, count: int) -> Any:
    """Open ``url`` and wait until its ``count`` components are ready."""
    page = context.new_page()
    page.goto(url)

    def settled() -> list[Any] | None:
        events = page.evaluate("window.events")
        done = {at for at, kind, _ in events if kind in ("ready", "error")}
        return events if len(done) >= count else None

    events = poll(settled, timeout_s=READY_TIMEOUT_S, every_s=0.2)
    assert not [e for e in events if e[1] == "error"], events
    return page


def _watermark_traces(texts: list[str]) -> set[str]:
    return {t.rsplit(" ", 1)[1] for t in texts if t.startswith("licence ")}


@contextlib.contextmanager
def _context(browser: Any, without_shared_worker: bool = False) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    if without_shared_worker:
        context.add_init_script("delete window.SharedWorker;")
    try:
        yield context
    finally:
        context.close()


def test_every_component_of_a_cross_site_page_joins_one_runtime(
    browser: Any, site: HostSite
) -> None:
    with _context(browser) as context:
        page = _ready_page(context, site.page(4), 4)
        frames = component_frames(page)
        infos = [runtime_info(frame) for frame in frames]
        traces = [_watermark_traces(frame_text(frame)) for frame in frames]
        workers = [w.url for w in page.workers if w.url.endswith("/worker.js")]

    assert len(frames) == 4
    assert {info["mode"] for info in infos} == {"shared"}
    assert len({info["name"] for info in infos}) == 1
    assert len({info["instance"] for info in infos}) == 4
    assert {info["mounted"] for info in infos} == {4}
    assert workers == []
    # Each component ran its own handshake: one session, one trace each.
    assert all(len(t) == 1 for t in traces)
    assert len(set().union(*traces)) == 4


def test_components_use_dedicated_workers_where_there_is_no_shared_worker(
    browser: Any, site: HostSite
) -> None:
    with _context(browser, without_shared_worker=True) as context:
        page = _ready_page(context, site.page(2), 2)
        infos = [runtime_info(frame) for frame in component_frames(page)]
        texts = [frame_text(frame) for frame in component_frames(page)]
        workers = [w.url for w in page.workers if w.url.endswith("/worker.js")]

    assert [info["mode"] for info in infos] == ["dedicated", "dedicated"]
    assert [info["mounted"] for info in infos] == [1, 1]
    assert len(workers) == 2
    assert all(len(_watermark_traces(t)) == 1 for t in texts)


def test_a_browser_without_storage_partitioning_falls_back_to_dedicated_workers(
    playwright: Any, site: HostSite
) -> None:
    # Playwright's defaults turn partitioning off: a cross-site iframe then
    # cannot start a SharedWorker, as in a browser configured that way.
    browser = playwright.chromium.launch(**launch_options(user_like=False))
    try:
        page = _ready_page(browser.new_context(), site.page(2), 2)
        infos = [runtime_info(frame) for frame in component_frames(page)]
    finally:
        browser.close()

    assert [info["mode"] for info in infos] == ["dedicated", "dedicated"]


def test_a_removed_component_leaves_the_shared_runtime(
    browser: Any, site: HostSite
) -> None:
    with _context(browser) as context:
        page = _ready_page(context, site.page(3), 3)
        page.evaluate("document.querySelector('iframe').remove()")

        def mounted_after_removal() -> list[int] | None:
            counts = [runtime_info(f)["mounted"] for f in component_frames(page)]
            return counts if counts == [2, 2] else None

        counts = poll(mounted_after_removal, timeout_s=20)

    assert counts == [2, 2]
