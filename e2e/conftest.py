"""End-to-end fixtures: the real demo (provider + host app) and a real Chromium.

The session starts ``xinfeng demo`` in a subprocess on free 127.0.0.1 ports
with a fresh data directory (keys, database, demo license) and the shared
download cache, and launches Debian's Chromium through Playwright.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    CACHE_DIR,
    CHROMIUM,
    REPO,
    START_TIMEOUT_S,
    TIMINGS,
    Demo,
    free_port,
    http_status,
    launch_options,
)


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


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("xinfeng-data")
    provider_port, host_port = free_port(), free_port()
    log_path = data_dir / "demo.log"
    cmd = [
        sys.executable,
        "-m",
        "xinfeng.server.cli",
        "demo",
        "--provider-port",
        str(provider_port),
        "--host-port",
        str(host_port),
        "--data-dir",
        str(data_dir),
        "--cache-dir",
        str(CACHE_DIR),
    ]
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
        yield Demo(
            provider_url,
            host_url,
            data_dir,
            CACHE_DIR,
            saved["license_id"],
            saved["credential"],
            log_path,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    chromium = playwright.chromium.launch(**launch_options())
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def persistent_context(
    playwright: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A browser with an on-disk profile, like a user's: caches survive pages.

    Chromium keeps compiled WebAssembly only in a disk cache, so a warm
    start is measured here rather than in an in-memory (incognito) context.
    """
    context = playwright.chromium.launch_persistent_context(
        tmp_path_factory.mktemp("chromium-profile"),
        viewport={"width": 1100, "height": 800},
        **launch_options(),
    )
    yield context
    context.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("xinfeng browser timings")
        for what, ms in TIMINGS:
            terminalreporter.write_line(f"{what}: {ms / 1000:.2f} s")
