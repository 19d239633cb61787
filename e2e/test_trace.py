"""A screenshot of a component names the licence and session it came from.

The demo dashboard is opened in Chromium, one component is screenshot as a
PNG (lossless, as a user's screenshot tool saves it), and ``xinfeng trace``
reads the invisible mark out of the pixels and looks its trace id up in
the demo's audit log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xinfeng.server import trace

from .harness import REPO, Demo, poll, record_timing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READY_TIMEOUT_S = 240
FIRST_SLOT = "document.querySelector('.xinfeng-slot')"


@pytest.fixture(scope="module")
def shown(browser: Any, demo: Demo) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo.host_url + "/")
    state = poll(
        lambda: page.evaluate(
            f"{FIRST_SLOT}.dataset.readyMs || {FIRST_SLOT}.dataset.errorCode"
        ),
        READY_TIMEOUT_S,
    )
    assert state.isdigit(), f"component reported an error: {state}"
    # 'ready' follows the drawing; the browser shows the frame a moment later.
    poll(lambda: trace.marks_in(page.locator("iframe").first.screenshot()), 20, 0.5)
    yield page
    page.close()


def _trace(shot: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "xinfeng.server.cli",
            "trace",
            str(shot),
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_screenshot_of_a_component_names_its_licence_and_session(
    shown: Any, demo: Demo, tmp_path: Path
) -> None:
    shot = tmp_path / "component.png"
    shot.write_bytes(shown.locator("iframe").first.screenshot())

    started = time.monotonic()
    done = _trace(shot, demo.data_dir)
    record_timing(
        "xinfeng trace of one component screenshot", 1000 * (time.monotonic() - started)
    )

    assert done.returncode == 0, done.stderr
    (first, *_) = json.loads(done.stdout)["marks"]
    assert first["license_id"] == demo.license_id
    assert first["license_matches_tag"] is True
    assert first["product"] == "gd-stations"
    assert first["session_opened_seq"] is not None
    assert first["origin"] == demo.host_url


def test_cropped_screenshot_still_carries_the_mark(
    shown: Any, demo: Demo, tmp_path: Path
) -> None:
    box = shown.locator("iframe").first.bounding_box()
    shot = tmp_path / "crop.png"
    shot.write_bytes(
        shown.screenshot(
            clip={"x": box["x"] + 137, "y": box["y"] + 91, "width": 120, "height": 60}
        )
    )

    done = _trace(shot, demo.data_dir)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["marks"][0]["license_id"] == demo.license_id


def test_screenshot_without_a_component_names_nobody(
    shown: Any, demo: Demo, tmp_path: Path
) -> None:
    shot = tmp_path / "header.png"
    shot.write_bytes(shown.locator("header").screenshot())

    done = _trace(shot, demo.data_dir)

    assert done.returncode != 0
    assert "no xinfeng watermark" in done.stderr + done.stdout
