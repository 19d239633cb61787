"""What a browser keeps between visits, and when it must fetch anew.

The pinned Pyodide, the component bundle and the runtime's memory snapshot
are served under addresses that carry the digests of their contents, with
year-long immutable caching. A second visit to the same build takes them
from the browser's cache; a new component build or a new Pyodide build
changes the addresses, the snapshot and the runtime's name, so nothing of
the old build is used. These tests watch the provider's request log and ask
the runtime what it booted from; they measure no time.

The provider here serves only the browser routes (no handshake), so the
component stops at its handshake: the runtime has booted by then.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

from xinfeng.sdk.sm2 import SM2PrivateKey
from xinfeng.server import assets, embed

from .harness import CACHE_DIR, free_port, launch_options, poll, runtime_info

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LICENSE = "lic-cache"


@dataclass
class Build:
    """What one provider build serves to browsers."""

    pyodide_dir: Path
    bundle: assets.ComponentBundle
    server_public_key: bytes
    snapshot: assets.RuntimeSnapshot | None
    requests: list[str] = field(default_factory=list)

    async def license_origins(self, license_id: str) -> list[str] | None:
        return [] if license_id == LICENSE else None


class RequestLog:
    """ASGI middleware that records every requested path."""

    def __init__(self, app: Any, paths: list[str]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@contextlib.contextmanager
def serving(build: Build, port: int) -> Iterator[str]:
    app = RequestLog(Starlette(routes=embed.routes(build)), build.requests)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    poll(lambda: server.started, timeout_s=10, every_s=0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def make_build(
    tmp: Path, pyodide_dir: Path, key: bytes, extra: dict[str, bytes] | None = None
) -> Build:
    members = assets.bundle_members
    if extra:
        assets.bundle_members = lambda k: {**members(k), **extra}  # type: ignore[assignment]
    try:
        bundle = assets.build_component_bundle(tmp / "bundles", key)
    finally:
        assets.bundle_members = members  # type: ignore[assignment]
    pyodide = assets.pyodide_build(pyodide_dir)
    snapshot = assets.ensure_snapshot(CACHE_DIR, pyodide, bundle)
    assert snapshot is not None, "building a snapshot needs Node.js"
    return Build(pyodide_dir, bundle, key, snapshot)


@pytest.fixture(scope="module")
def key() -> bytes:
    return SM2PrivateKey.generate().public_key().to_bytes()


@pytest.fixture(scope="module")
def pyodide_dir() -> Path:
    return assets.ensure_pyodide(CACHE_DIR)


@pytest.fixture()
def profile(playwright: Any, tmp_path: Path) -> Iterator[Any]:
    """A browser with an on-disk profile of its own: caches survive pages."""
    context = playwright.chromium.launch_persistent_context(
        tmp_path / "profile", **launch_options()
    )
    yield context
    context.close()


def visit(context: Any, origin: str) -> dict[str, Any]:
    """Open the container page and return what its runtime booted from."""
    page = context.new_page()
    page.goto(f"{origin}/embed/{LICENSE}/gd-stations/#token=none")
    frame = page.main_frame

    def booted() -> dict[str, Any] | None:
        if not frame.evaluate("typeof self.xinfengRuntime === 'function'"):
            return None
        timings = frame.evaluate("self.xinfengTimings()")
        return runtime_info(frame) if "imported" in timings else None

    info = poll(booted, timeout_s=90, every_s=0.1)
    page.close()
    time.sleep(0.5)  # let the worker go before the next visit
    return info


def fetched(build: Build, since: int = 0) -> set[str]:
    return set(build.requests[since:])


def snapshot_path(build: Build) -> str:
    assert build.snapshot is not None
    return f"/runtime/{build.snapshot.name}"


def wasm_path(build: Build) -> str:
    return f"/pyodide/{assets.pyodide_build(build.pyodide_dir).tag}/pyodide.asm.wasm"


def test_a_second_visit_takes_pyodide_and_the_snapshot_from_the_cache(
    profile: Any, tmp_path: Path, pyodide_dir: Path, key: bytes
) -> None:
    build = make_build(tmp_path, pyodide_dir, key)
    with serving(build, free_port()) as origin:
        first = visit(profile, origin)
        seen = len(build.requests)
        second = visit(profile, origin)

    assert first["snapshot"] and second["snapshot"]
    assert first["name"] == second["name"]
    assert {snapshot_path(build), wasm_path(build)} <= fetched(build)
    assert snapshot_path(build) not in fetched(build, seen)
    assert wasm_path(build) not in fetched(build, seen)
    assert f"/component/{build.bundle.name}" not in fetched(build, seen)


def test_new_component_code_brings_a_new_snapshot_and_runtime(
    profile: Any, tmp_path: Path, pyodide_dir: Path, key: bytes
) -> None:
    old = make_build(tmp_path / "old", pyodide_dir, key)
    marker = {"xinfeng/component/_e2e_marker.py": b"BUILD = 'new'\n"}
    new = make_build(tmp_path / "new", pyodide_dir, key, marker)
    port = free_port()
    with serving(old, port) as origin:
        before = visit(profile, origin)
    with serving(new, port) as origin:
        after = visit(profile, origin)

    assert new.bundle.code_sha256_hex != old.bundle.code_sha256_hex
    assert snapshot_path(new) != snapshot_path(old)
    assert snapshot_path(new) in fetched(new)
    assert f"/component/{new.bundle.name}" in fetched(new)
    assert before["snapshot"] and after["snapshot"]
    assert before["name"] != after["name"]


def test_a_new_pyodide_build_brings_new_files_and_a_new_snapshot(
    profile: Any, tmp_path: Path, pyodide_dir: Path, key: bytes
) -> None:
    changed = tmp_path / "pyodide"
    shutil.copytree(pyodide_dir, changed)
    lock = changed / "pyodide-lock.json"
    lock.write_bytes(lock.read_bytes() + b"\n")
    old = make_build(tmp_path / "old", pyodide_dir, key)
    new = make_build(tmp_path / "new", changed, key)
    port = free_port()
    with serving(old, port) as origin:
        before = visit(profile, origin)
    with serving(new, port) as origin:
        after = visit(profile, origin)

    assert wasm_path(new) != wasm_path(old)
    assert {wasm_path(new), snapshot_path(new)} <= fetched(new)
    assert before["snapshot"] and after["snapshot"]
    assert before["name"] != after["name"]


def test_a_snapshot_that_fails_its_digest_is_not_used(
    profile: Any, tmp_path: Path, pyodide_dir: Path, key: bytes
) -> None:
    build = make_build(tmp_path, pyodide_dir, key)
    assert build.snapshot is not None
    build.snapshot = replace(build.snapshot, sha256_hex="00" * 32)
    with serving(build, free_port()) as origin:
        info = visit(profile, origin)

    assert snapshot_path(build) in fetched(build)
    assert info["snapshot"] is False
