"""End-to-end fixtures: the real demo (provider + host app) and a real Chromium.

The session starts ``xinfeng demo`` in a subprocess on free 127.0.0.1 ports
with a fresh data directory (keys, database, demo license) and the shared
download cache, and launches Debian's Chromium through Playwright.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    ABUSE,
    CHROMIUM,
    TIMINGS,
    Demo,
    launch_options,
    running_demo,
)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with running_demo(tmp_path_factory.mktemp("xinfeng-data")) as started:
        yield started


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
    if ABUSE:
        terminalreporter.section("xinfeng abuse scenarios")
        for line in ABUSE:
            terminalreporter.write_line(line)
    if TIMINGS:
        terminalreporter.section("xinfeng browser timings")
        for what, ms in TIMINGS:
            terminalreporter.write_line(f"{what}: {ms / 1000:.2f} s")
