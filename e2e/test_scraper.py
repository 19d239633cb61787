"""Scraping through and around the component, in a real Chromium.

Each scenario runs against its own provider and licence (``xinfeng demo``
with a fresh data directory), so that a freeze never spills into another
test. What each abuser got before it was stopped is printed and recorded
in the timing summary; docs/abuse.md tabulates it against the thresholds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from xinfeng.sdk import envelope
from xinfeng.sdk.sm2 import SM2PublicKey

from .harness import (
    Demo,
    demo_cli,
    launch_options,
    poll,
    record_abuse,
    running_demo,
)

SLOTS = "Array.from(document.querySelectorAll('.xinfeng-slot'))"
STATES = f"{SLOTS}.map(s => [s.dataset.product, s.dataset.readyMs || null," \
    " s.dataset.errorCode || null])"
REFRESH_ALL = f"{SLOTS}.forEach(s => s.xinfengMount && s.xinfengMount.refresh())"
READY_TIMEOUT_S = 240
STOP_CODES = {"rate_limited", "license_frozen"}


def usage(demo: Demo) -> dict[str, int]:
    """Calls served and refusals, alerts and freezes, from the audit log."""
    rows = demo_cli(demo, "audit", "summary")["rows"]
    keys = ("calls", "refusals", "alerts", "throttles", "freezes")
    return {k: sum(int(r.get(k, 0)) for r in rows) for k in keys}


def frozen(demo: Demo) -> bool:
    licences = demo_cli(demo, "license", "list")["licenses"]
    return any("frozen_until" in row for row in licences)


@pytest.fixture
def own_demo(tmp_path: Path) -> Iterator[Demo]:
    with running_demo(tmp_path) as started:
        yield started


def open_dashboard(browser: Any, demo: Demo) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo.host_url + "/")
    poll(lambda: all(s[1] or s[2] for s in page.evaluate(STATES)),
         READY_TIMEOUT_S, every_s=0.25)
    return page


def test_person_browsing_every_product_is_never_throttled(
    playwright: Any, own_demo: Demo
) -> None:
    options = launch_options()
    # A person's browser does not announce automation.
    options["args"] = [*options["args"],
                       "--disable-blink-features=AutomationControlled"]
    browser = playwright.chromium.launch(**options)
    try:
        page = open_dashboard(browser, own_demo)
        for round_ in range(3):
            for index in range(13):
                slot = f"document.querySelectorAll('.xinfeng-slot')[{index}]"
                page.evaluate(f"{slot}.scrollIntoView()")
                page.wait_for_timeout(700 + 137 * ((index * 7 + round_) % 5))
                if index % 3 == round_:
                    page.evaluate(f"{slot}.xinfengMount.refresh()")
        page.wait_for_timeout(1500)
        states = page.evaluate(STATES)
    finally:
        browser.close()
    assert all(error is None for _, _, error in states), states
    seen = usage(own_demo)
    record_abuse(f"person browsing 13 products: {seen}")
    assert seen["throttles"] == 0 and seen["freezes"] == 0
    assert not frozen(own_demo)


def ladder(demo: Demo) -> list[str]:
    """The licence's throttle and freeze events, oldest first."""
    rows = [r for kind in ("license_throttled", "license_frozen")
            for r in demo_cli(demo, "audit", "show", "--type", kind)]
    return [str(r["type"]) for r in sorted(rows, key=lambda r: int(r["index"]))]


def test_script_clicking_through_everything_is_throttled_then_frozen(
    browser: Any, own_demo: Demo
) -> None:
    page = open_dashboard(browser, own_demo)
    started = time.monotonic()
    deadline, clicks = started + 120, 0
    try:
        while time.monotonic() < deadline and not frozen(own_demo):
            for _ in range(10):
                page.evaluate(REFRESH_ALL)
                clicks += 13
                page.wait_for_timeout(50)
        took = time.monotonic() - started
        # The next refresh shows every component why it got nothing.
        page.evaluate(REFRESH_ALL)
        poll(lambda: all(s[2] == "license_frozen" for s in page.evaluate(STATES)),
             30, every_s=0.25)
    finally:
        page.close()
    seen = usage(own_demo)
    record_abuse(f"script clicking through everything for up to 120 s:"
                 f" {clicks} refreshes asked, {seen},"
                 f" frozen: {frozen(own_demo)} after {took:.0f} s")
    assert frozen(own_demo), seen
    assert ladder(own_demo)[:2] == ["license_throttled", "license_frozen"]
    assert seen["refusals"] > seen["calls"]


def lifted_token(browser: Any, demo: Demo) -> str:
    page = open_dashboard(browser, demo)
    try:
        return str(page.evaluate(
            "new URLSearchParams(new URL(document.querySelector("
            "\".xinfeng-slot[data-product='gd-rivers'] iframe\").src)"
            ".hash.slice(1)).get('token')"))
    finally:
        page.close()


def lifted_session(demo: Demo, token: str, client: httpx.Client
                   ) -> envelope.ClientSession:
    """The handshake a script makes once it has read a token from the page."""
    env = {"origins": [demo.host_url], "ua": "python-httpx", "webdriver": False,
           "build": "", "hidden": False}
    hs = envelope.ClientHandshake(token, env)
    reply = client.post(f"{demo.provider_url}/v1/handshake",
                        content=hs.request(time.time_ns() // 1_000_000))
    assert reply.status_code == 200, reply.text
    # The server key is public: it is pinned in the component bundle.
    key = SM2PublicKey.from_pem(demo_cli(demo, "audit", "pubkey")["pem"].encode())
    return hs.finish(reply.content, key)


def walk(demo: Demo, session: envelope.ClientSession, client: httpx.Client,
         seconds: float) -> dict[str, Any]:
    """Page through a product as fast as possible, ignoring 429s, until the
    licence is frozen or ``seconds`` pass; what it got on the way."""
    got: dict[str, Any] = {"served": 0, "sent": 0, "first_stop": None,
                           "frozen": False}
    deadline, path = time.monotonic() + seconds, "/v1/data/gd-rivers"
    while time.monotonic() < deadline:
        got["sent"] += 1
        query = f"page={got['sent']}"
        auth = session.sign("GET", path, query, time.time_ns() // 1_000_000)
        response = client.get(f"{demo.provider_url}{path}?{query}",
                              headers=auth.headers())
        if response.status_code == 200:
            got["served"] += 1
            continue
        code = response.json()["error"]["code"]
        if code in STOP_CODES and got["first_stop"] is None:
            got["first_stop"] = (code, got["served"], got["sent"])
        if code == "license_frozen":
            got["frozen"] = True
            break
        time.sleep(0.02)
    return got


def test_lifted_handshake_walking_pages_is_stopped_and_logged(
    browser: Any, own_demo: Demo
) -> None:
    token = lifted_token(browser, own_demo)
    with httpx.Client(timeout=10) as client:
        session = lifted_session(own_demo, token, client)
        got = walk(own_demo, session, client, seconds=150)
    record_abuse(f"lifted handshake walking pages, ignoring 429: first stopped"
                 f" (code, served, sent) = {got['first_stop']}; frozen after"
                 f" {got['served']} served of {got['sent']} sent")
    assert got["first_stop"] is not None
    assert got["frozen"] and frozen(own_demo), "the licence was never frozen"
    refused = [e for e in demo_cli(own_demo, "audit", "show", "--type", "data_refused")
               if e.get("outcome") in STOP_CODES]
    assert refused and all(e["env"]["network"] == "127.0.0.1" for e in refused)
    # Its session is on record with its network and environment report
    # (the browser's sessions report webdriver: true, the script's false).
    opened = demo_cli(own_demo, "audit", "show", "--type", "session_opened")
    script = [e for e in opened if e["detail"]["webdriver"] is False]
    assert len(script) == 1
    assert script[0]["env"]["network"] == "127.0.0.1" and script[0]["env"]["ua"]
    assert script[0]["env"]["ua"] not in {e["env"]["ua"] for e in opened
                                          if e is not script[0]}


def test_token_used_from_a_second_network_is_flagged(
    browser: Any, own_demo: Demo
) -> None:
    token = lifted_token(browser, own_demo)  # the browser used it on 127.0.0.1
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    env = {"origins": [own_demo.host_url], "ua": "python-httpx",
           "webdriver": False, "build": "", "hidden": False}
    with httpx.Client(timeout=10, transport=transport) as client:
        hs = envelope.ClientHandshake(token, env)
        reply = client.post(f"{own_demo.provider_url}/v1/handshake",
                            content=hs.request(time.time_ns() // 1_000_000))
    # Served, or already refused: the signal may push the licence's score
    # (with the browser's automation marker) straight to a throttle.
    assert reply.status_code in (200, 429), reply.text
    records = demo_cli(own_demo, "audit", "show")
    alerts = [r for r in records if str(r.get("type", "")).endswith("_alert")
              and "token_networks" in json.dumps(r)]
    record_abuse(f"one token from 127.0.0.1 (browser) and 127.0.0.2 (script):"
                 f" {len(alerts)} alert(s) naming token_networks, second"
                 f" handshake answered {reply.status_code}")
    assert alerts


HIDE_FRAME = ("Object.defineProperty(document, 'hidden', {get: () => true,"
              " configurable: true});"
              " document.dispatchEvent(new Event('visibilitychange'))")


def test_data_pulled_while_the_page_is_hidden_is_observed(
    browser: Any, own_demo: Demo
) -> None:
    page = open_dashboard(browser, own_demo)
    stations = f"{SLOTS}.find(s => s.dataset.product === 'gd-stations')"
    try:
        container = next(f for f in page.frames if "/gd-stations/" in f.url)
        # As the browser does when the tab goes to the background.
        container.evaluate(HIDE_FRAME)
        for _ in range(6):
            page.evaluate(f"{stations}.xinfengMount.refresh()")
            page.wait_for_timeout(400)
    finally:
        page.close()
    rows = demo_cli(own_demo, "audit", "show", "--type", "abuse_signal")
    hidden = [r["detail"] for r in rows if r["outcome"] == "hidden"]
    assert [d["subject"][:2] for d in hidden] == ["s:"]
    assert hidden[0]["requests"] >= 5
