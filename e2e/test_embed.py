"""The walking skeleton in a real Chromium: embed, handshake, envelope, render.

The expected stations are read here straight from the meteva wheel's text
files, not from the server's parser, so the component is checked against
the source data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest

from xinfeng.sdk.envelope import ClientHandshake
from xinfeng.sdk.integrator import mint_token
from xinfeng.server.storage import Storage

from .harness import (
    PRODUCT,
    Demo,
    browser_traffic,
    component_worker,
    copy_site,
    frame_text,
    poll,
    record_timing,
    rogue_site,
)
from .pngcheck import colour_stats

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STATIONS = "meteva/resources/stations/"
RENDER_TIMEOUT_S = 90
EVENT_FIELDS = {"source", "type", "code", "height"}


def source_stations(cache_dir: Path) -> dict[str, str]:
    """Guangdong station id -> county, read from the meteva catalogue file."""
    wheel = next(cache_dir.glob("meteva-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(STATIONS + "station_id_pro_county.txt").decode("utf-8")
    stations = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1].startswith("广东"):
            stations[fields[0]] = fields[2]
    return stations


def source_lonlat(cache_dir: Path, station_id: str) -> tuple[str, str]:
    """Longitude and latitude of one station as the catalogue writes them."""
    wheel = next(cache_dir.glob("meteva-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(STATIONS + "station_1w_plus_1w.txt").decode("utf-8", "replace")
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == station_id:
            return fields[1], fields[2]
    raise LookupError(station_id)


@dataclass
class Visit:
    """One page view of the host app and what the browser saw during it."""

    page: Any
    worker: Any
    ready_ms: float
    messages: list[Any] = field(default_factory=list)


SLOT_SETTLED = (
    "document.querySelector('.xinfeng-slot')?.dataset.readyMs"
    " || document.querySelector('.xinfeng-slot')?.dataset.errorCode"
)
RECORD_MESSAGES = """
window.__xinfengMessages = [];
window.addEventListener('message', (e) => window.__xinfengMessages.push(e.data));
"""


def _open_host_page(context: Any, demo: Demo) -> Visit:
    page = context.new_page()
    page.goto(demo.host_url + "/")
    ready = poll(lambda: page.evaluate(SLOT_SETTLED), timeout_s=RENDER_TIMEOUT_S)
    assert ready.isdigit(), f"component reported an error: {ready}"
    visit = Visit(page, component_worker(page), float(ready))
    visit.messages = page.evaluate("window.__xinfengMessages")
    return visit


def _record(label: str, visit: Visit) -> None:
    record_timing(f"{label} first render (navigation to ready)", visit.ready_ms)
    steps = visit.worker.evaluate("self.xinfengTimings()")
    record_timing(f"{label}  Pyodide boot + bundle", steps["booted"] - steps["start"])
    record_timing(f"{label}  unpack + import", steps["imported"] - steps["booted"])
    for step in ("handshake", "data", "draw"):
        record_timing(f"{label}  {step}", steps[step])


@pytest.fixture(scope="module")
def visit(persistent_context: Any, demo: Demo) -> Iterator[Visit]:
    persistent_context.add_init_script(RECORD_MESSAGES)
    cold = _open_host_page(persistent_context, demo)
    _record("cold", cold)
    cold.page.close()
    # Chromium writes its WebAssembly code cache shortly after compiling.
    time.sleep(1)
    warm = _open_host_page(persistent_context, demo)
    _record("warm", warm)
    yield warm
    warm.page.close()


def _pager(texts: list[str]) -> str:
    return next((t for t in texts if t.endswith("scroll for more")), "")


def _at_end(pager: str) -> bool:
    """Whether a pager text like ``361–371 of 371 · …`` shows the last row."""
    shown, _, rest = pager.partition(" of ")
    return shown.rpartition("–")[2] == rest.split(" ")[0]


def _pager_moved(worker: Any, old: str) -> bool:
    return _pager(frame_text(worker)) != old


def _page_through(visit: Visit) -> list[str]:
    """Every string the table showed while paging from the top to the end."""
    canvas = visit.page.frame_locator("iframe").first.locator("canvas")
    canvas.click()
    seen: list[str] = []
    for _ in range(200):
        texts = frame_text(visit.worker)
        seen += texts
        pager = _pager(texts)
        if _at_end(pager):
            return seen
        canvas.press("PageDown")
        poll(functools.partial(_pager_moved, visit.worker, pager), timeout_s=10)
    raise AssertionError("the table did not reach its end")


def test_component_renders_every_guangdong_station_from_the_source(
    visit: Visit, demo: Demo
) -> None:
    expected = source_stations(demo.cache_dir)
    assert expected["57988"] == "乐昌"

    texts = _page_through(visit)
    shown = {t: texts[i + 1] for i, t in enumerate(texts[:-1]) if t in expected}

    assert shown == expected
    at = texts.index("57988")
    lon, lat = source_lonlat(demo.cache_dir, "57988")
    assert texts[at + 2 : at + 4] == [f"{float(lon):.2f}", f"{float(lat):.2f}"]


def test_component_draws_a_watermark_with_license_and_trace(
    visit: Visit, demo: Demo
) -> None:
    texts = frame_text(visit.worker)
    marks = [t for t in texts if t.startswith(f"licence {demo.license_id} · trace ")]
    assert marks
    trace = marks[0].rsplit(" ", 1)[1]
    assert len(trace) == 32 and int(trace, 16) >= 0


def test_component_canvas_is_not_blank(visit: Visit) -> None:
    shot = visit.page.locator("iframe").first.screenshot()
    colours, ink = colour_stats(shot)
    assert colours > 50
    assert ink > 0.05


@pytest.fixture(scope="module")
def api_bodies(browser: Any, demo: Demo) -> dict[str, list[bytes]]:
    """What the provider's API sent, by path, while the host page loaded.

    Recorded by the browser's DevTools: the runtime's requests come from a
    SharedWorker, which Playwright's response events do not cover.
    """
    context = browser.new_context()
    api = re.escape(demo.provider_url) + "/v1/"
    try:
        with browser_traffic(browser, api) as traffic:
            page = context.new_page()
            page.goto(demo.host_url + "/")
            poll(lambda: page.evaluate(SLOT_SETTLED), timeout_s=RENDER_TIMEOUT_S)
    finally:
        context.close()
    bodies: dict[str, list[bytes]] = {}
    for url, received in traffic.bodies.items():
        path = url[len(demo.provider_url) :].split("?")[0]
        bodies.setdefault(path, []).extend(received)
    return bodies


def test_network_carries_no_plaintext_station_data(
    api_bodies: dict[str, list[bytes]], demo: Demo
) -> None:
    stations = source_stations(demo.cache_dir)
    assert api_bodies.get("/v1/handshake"), "no handshake response recorded"
    assert api_bodies.get(f"/v1/data/{PRODUCT}"), "no data response recorded"
    needles = set()
    for station_id, county in stations.items():
        needles |= {
            station_id.encode(),
            msgpack.packb(station_id),
            county.encode("utf-8"),
        }
    for path, bodies in api_bodies.items():
        for body in bodies:
            leaked = [n for n in needles if n in body]
            assert not leaked, f"{path} carried plaintext: {leaked[:5]}"


def test_host_page_receives_events_only(visit: Visit, demo: Demo) -> None:
    stations = source_stations(demo.cache_dir)
    events = [
        m
        for m in visit.messages
        if isinstance(m, dict) and m.get("source") == "xinfeng"
    ]
    assert {"ready", "size"} <= {m["type"] for m in events}
    for message in events:
        assert set(message) <= EVENT_FIELDS
        assert not any(s in str(message) for s in stations)


def test_token_is_removed_from_the_container_address(visit: Visit) -> None:
    container = next(f for f in visit.page.frames if "/embed/" in f.url)
    assert "token" not in container.evaluate("location.href")


# -- unlicensed origin ----------------------------------------------------------


def test_container_framed_by_unlicensed_origin_renders_nothing(
    browser: Any, demo: Demo
) -> None:
    token = mint_token(demo.provider_url, demo.credential, [PRODUCT], demo.host_url)
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    console: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: console.append(message.text))
    with rogue_site(demo.container_url(token)) as rogue:
        page.goto(rogue + "/")
        page.wait_for_timeout(5000)
        lifted = next(f for f in page.frames if f.name == "lifted")
        assert lifted.url.startswith("chrome-error://")
        assert page.frame_locator("#lifted").locator("canvas").count() == 0
        assert not [w for w in page.workers if "/static/component/" in w.url]
    context.close()
    assert any("frame-ancestors" in line for line in console)
    fetched = [u for u in requests if u.startswith(demo.provider_url)]
    container = f"{demo.provider_url}/embed/{demo.license_id}/{PRODUCT}/"
    assert [u.split("#")[0] for u in fetched] == [container]
    noted = [e for e in _stored_events(demo, "embed_refused")
             if e["detail"].get("embedder") == rogue]
    assert [(e["outcome"], e["license_id"]) for e in noted] == [
        ("origin_denied", demo.license_id)]
    assert noted[0]["detail"]["ip"] == "127.0.0.1"


def test_copy_of_the_component_on_another_origin_gets_no_data_and_is_logged(
    browser: Any, demo: Demo
) -> None:
    token = mint_token(demo.provider_url, demo.credential, [PRODUCT], demo.host_url)
    opened_before = len(_stored_events(demo, "session_opened"))
    context = browser.new_context()
    page = context.new_page()
    try:
        with copy_site(demo.provider_url, demo.container_url(token)) as copy:
            page.goto(copy + "/")
            frame = poll(lambda: next((f for f in page.frames
                                       if f.url.startswith(copy + "/embed/")), None))
            # The copy runs: its worker boots and asks for a session.
            poll(lambda: "licence not valid for this site" in frame_text(frame),
                 240, every_s=0.5)
    finally:
        context.close()
    refused = [e for e in _stored_events(demo, "session_refused")
               if e["detail"].get("origin") == copy]
    assert [(e["outcome"], e["license_id"]) for e in refused] == [
        ("origin_denied", demo.license_id)]
    assert refused[0]["detail"]["ip"] == "127.0.0.1"
    assert len(_stored_events(demo, "session_opened")) == opened_before


def test_token_replayed_from_wrong_origin_is_refused_and_logged(demo: Demo) -> None:
    token = mint_token(demo.provider_url, demo.credential, [PRODUCT], demo.host_url)
    env = {
        "origins": ["http://127.0.0.1:1"],
        "ua": "replay",
        "webdriver": False,
        "build": "0" * 64,
        "hidden": False,
    }
    before = len(_stored_events(demo, "session_refused"))
    body = ClientHandshake(token, env).request(int(time.time() * 1000))
    request = urllib.request.Request(
        demo.provider_url + "/v1/handshake",
        data=body,
        method="POST",
        headers={"Content-Type": "application/msgpack"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)

    assert refused.value.code == 403
    assert b'"origin_denied"' in refused.value.read()
    refusals = _stored_events(demo, "session_refused")[before:]
    assert [(e["outcome"], e["license_id"]) for e in refusals] == [
        ("origin_denied", demo.license_id)
    ]
    poll(lambda: "session_refused refused: origin_denied" in demo.log_text(), 10)


def _stored_events(demo: Demo, kind: str) -> list[dict[str, Any]]:
    """The server's stored events of ``kind``, read through its storage layer."""

    async def read() -> list[dict[str, Any]]:
        storage = Storage(demo.data_dir / "xinfeng.db")
        await storage.open()
        try:
            return await storage.events(kind)
        finally:
            await storage.close()

    # Playwright's sync API keeps an event loop running on this thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, read()).result()
