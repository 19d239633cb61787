"""A provider killed with SIGKILL in the middle of a stream of requests
loses no acknowledged audit event, and its log verifies after restart.

The provider runs in a subprocess on 127.0.0.1 with the test catalogue and
a tree head published every 0.2 s, so the kill can land between a leaf and
its tree head, or in the middle of either.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from xinfeng.server.audit import decode_leaf
from xinfeng.server.cli import issue_license, main
from xinfeng.server.keys import KeyDir
from xinfeng.server.registry import approve_catalog_at

from .conftest import (
    CACHE_DIR,
    HOST_ORIGIN,
    REPO,
    TEST_CATALOG,
    TEST_REVIEW,
    Clock,
    license_fields,
)

SERVER = """
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, {repo!r})
from tests.conftest import TEST_CATALOG
from xinfeng.server import audit_api
from xinfeng.server.app import create_app
from xinfeng.server.config import Config

audit_api.PUBLISH_INTERVAL_S = 0.2
port = int(sys.argv[2])
config = Config(data_dir=Path(sys.argv[1]), cache_dir=Path({cache!r}),
                public_url=f"http://127.0.0.1:{{port}}", serve_browser_assets=False)
app = create_app(config, catalog=TEST_CATALOG)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def provider(script: Path, data_dir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(data_dir), str(port)],
                            cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/v1/audit/sth", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def hammer(url: str, credential: str, stop: threading.Event,
           acked: list[str], minted: list[int]) -> None:
    """Token requests until ``stop``: unlicensed origins (each one tagged,
    refused and logged with its tag) and licensed ones."""
    with httpx.Client(base_url=url, timeout=5) as client:
        n = 0
        while not stop.is_set():
            n += 1
            tag = f"http://req-{threading.get_ident()}-{n}.example"
            licensed = n % 4 == 0
            body = {"products": ["test-product"],
                    "origin": HOST_ORIGIN if licensed else tag}
            try:
                response = client.post(
                    "/v1/tokens", json=body,
                    headers={"Authorization": f"Bearer {credential}",
                             "Origin": tag})
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                minted.append(n)
            elif response.status_code < 500:
                acked.append(tag)


def logged(db: Path) -> list[dict]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT leaf FROM audit_leaves ORDER BY idx")
        return [decode_leaf(row[0]) for row in rows]


def test_sigkill_mid_stream_loses_no_acknowledged_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    KeyDir(data / "keys").ensure()
    asyncio.run(approve_catalog_at(data, TEST_CATALOG, TEST_REVIEW))
    issued = asyncio.run(issue_license(data, license_fields(Clock())))
    script = tmp_path / "serve.py"
    script.write_text(SERVER.format(repo=str(REPO), cache=str(CACHE_DIR)))
    acked: list[str] = []
    minted: list[int] = []

    with provider(script, data) as (proc, url):
        stop = threading.Event()
        with ThreadPoolExecutor(8) as pool:
            for _ in range(8):
                pool.submit(hammer, url, issued["credential"], stop, acked, minted)
            time.sleep(2.0)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            stop.set()
    assert len(acked) > 50, "the stream was too short to mean anything"

    with provider(script, data) as (proc, url):
        head = httpx.get(url + "/v1/audit/sth").json()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)

    records = logged(data / "xinfeng.db")
    assert head["size"] <= len(records)
    refused = {r["env"]["origin"] for r in records if r["type"] == "token_refused"}
    assert set(acked) <= refused
    assert len([r for r in records if r["type"] == "token_minted"]) >= len(minted)

    pub = tmp_path / "server.pub.pem"
    assert main(["audit", "pubkey", "--data-dir", str(data), "--out", str(pub)]) == 0
    code = main(["audit", "verify", "--data-dir", str(data), "--pubkey", str(pub),
                 "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert '"unsigned_leaves": 0' in out
