"""A licensor suspends a licence while its component is open.

The component's very next data request is refused, and the component
replaces its view with a clear message; after the licensor resumes the
licence, the next request is served again. An open component that makes
no request keeps its session alive by renewing it, and each renewal
checks the licence: suspension reaches it at the latest at the next one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    REPO,
    Demo,
    component_frames,
    demo_cli,
    frame_text,
    poll,
    record_timing,
    running_demo,
)

STATIONS = ".xinfeng-slot[data-product='gd-stations']"
READY_TIMEOUT_S = 240


def licensor(demo: Demo, *args: str) -> str:
    """Run an ``xinfeng license`` command on the demo's data, like a licensor."""
    cmd = [sys.executable, "-m", "xinfeng.server.cli", "license", *args,
           "--data-dir", str(demo.data_dir)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


def slot_state(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(
        f"(() => {{ const s = document.querySelector(\"{STATIONS}\");"
        " return {ready: s.dataset.readyMs || null,"
        " error: s.dataset.errorCode || null}; })()"))


def refresh(page: Any) -> None:
    page.evaluate(f"document.querySelector(\"{STATIONS}\").xinfengMount.refresh()")


def stations_texts(page: Any) -> list[str]:
    for frame in component_frames(page):
        if "/gd-stations/" in frame.url:
            return frame_text(frame)
    return []


@pytest.fixture
def stations_page(browser: Any, demo: Demo) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo.host_url + "/")
    poll(lambda: slot_state(page)["ready"], READY_TIMEOUT_S, every_s=0.25)
    try:
        yield page
    finally:
        page.close()


def test_suspension_stops_open_component_at_next_request(
    stations_page: Any, demo: Demo
) -> None:
    page = stations_page
    assert "57988" in stations_texts(page)
    licensor(demo, "suspend", demo.license_id, "--reason", "e2e: contract review")
    try:
        refresh(page)
        poll(lambda: slot_state(page)["error"] == "license_suspended", 60)
        shown = poll(lambda: [t for t in stations_texts(page)
                              if "suspended" in t], 30)
        assert any("licence suspended" in text for text in shown)
        assert "57988" not in stations_texts(page)
    finally:
        licensor(demo, "resume", demo.license_id, "--reason", "e2e: review done")
    refresh(page)
    poll(lambda: "57988" in stations_texts(page), 60)


SHORT_SESSION_S = 12


@pytest.fixture
def short_sessions(tmp_path: Path) -> Iterator[Demo]:
    with running_demo(tmp_path, "--session-ttl", str(SHORT_SESSION_S)) as started:
        yield started


def renewals(demo: Demo) -> int:
    return len(demo_cli(demo, "audit", "show", "--type", "session_renewed"))


def test_open_component_renews_its_session_and_renewal_sees_suspension(
    browser: Any, short_sessions: Demo
) -> None:
    demo = short_sessions
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(demo.host_url + "/")
        poll(lambda: slot_state(page)["ready"], READY_TIMEOUT_S, every_s=0.25)
        # Sit idle for well past the first session's end, then ask for data.
        page.wait_for_timeout(2 * SHORT_SESSION_S * 1000)
        assert renewals(demo) >= 13
        refresh(page)
        page.wait_for_timeout(1000)
        assert slot_state(page)["error"] is None
        assert "57988" in stations_texts(page)
        # No request from the page now: the next renewal meets the suspension.
        licensor(demo, "suspend", demo.license_id, "--reason", "e2e: renewal")
        suspended = time.monotonic()
        poll(lambda: slot_state(page)["error"] == "license_suspended",
             SHORT_SESSION_S + 30, every_s=0.25)
        record_timing("suspension seen by an idle component (sessions of"
                      f" {SHORT_SESSION_S} s, renewed every 5 s)",
                      (time.monotonic() - suspended) * 1000)
        assert "57988" not in stations_texts(page)
    finally:
        page.close()
