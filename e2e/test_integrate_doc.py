"""docs/integrate.md, followed literally: its snippets are cut out and run.

The token call runs against the demo provider; the doc's license command
issues a license for a fresh local origin; the doc's minimal host app
(``host.py``) serves that origin and embeds a component; the doc's element
snippet is served from the same origin. Only the doc's example addresses,
ids and placeholders are replaced by the running demo's.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import REPO, Demo, free_port, http_status, poll, record_timing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DOC = REPO / "docs" / "integrate.md"
DOC_PROVIDER = "https://data.example.org"
DOC_LICENSE = "lic-3f9a0c1d2e4b"
DOC_TOKEN = "TOKEN-FROM-YOUR-BACKEND"
DOC_HOST_PORT = "8002"
READY_TIMEOUT_S = 120


def fenced(language: str) -> list[str]:
    """The doc's fenced code blocks in ``language``, in order."""
    text = DOC.read_text("utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def shell_command(starting: str) -> list[str]:
    """The doc's indented shell command that starts with ``starting``."""
    lines = DOC.read_text("utf-8").splitlines()
    at = next(k for k, line in enumerate(lines) if line.strip().startswith(starting))
    command = ""
    for line in lines[at:]:
        command += line.strip().split("  #")[0].removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            break
    return shlex.split(command)


@pytest.fixture(scope="module")
def doc_license(demo: Demo) -> dict[str, Any]:
    """The doc's ``xinfeng license issue`` for a free local port, plus the
    element snippet's product."""
    port = free_port()
    args = shell_command("xinfeng license issue")
    args = [a.replace(DOC_HOST_PORT, str(port)) for a in args[1:]]
    args += ["--product", "gd-terrain", "--data-dir", str(demo.data_dir), "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "xinfeng.server.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    issued = json.loads(done.stdout)
    return {**issued, "port": port, "origin": f"http://127.0.0.1:{port}"}


def test_doc_token_call_mints_a_token(demo: Demo) -> None:
    (snippet,) = [b for b in fenced("python") if b.startswith("from xinfeng.sdk")]
    code = snippet.replace(DOC_PROVIDER, demo.provider_url)
    code = code.replace("https://command.example.gov.cn", demo.host_url)
    namespace: dict[str, Any] = {"CREDENTIAL": demo.credential}

    exec(compile(code, "integrate.md", "exec"), namespace)

    assert namespace["token"].count(".") == 2


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], url: str) -> Iterator[None]:
    process = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        poll(lambda: process.poll() is not None or http_status(url) == 200, 30)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _state(page: Any, selector: str) -> str:
    return str(
        page.evaluate(f"document.querySelector('{selector}')?.dataset.state || ''")
    )


def test_doc_minimal_host_app_shows_its_component(
    demo: Demo, doc_license: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    (source,) = [b for b in fenced("python") if b.startswith('"""host.py')]
    (tmp_path / "host.py").write_text(source, "utf-8")
    env = {
        "XINFENG_PROVIDER": demo.provider_url,
        "XINFENG_LICENSE": doc_license["license_id"],
        "XINFENG_CREDENTIAL": doc_license["credential"],
        "HOST_ORIGIN": doc_license["origin"],
    }
    page = browser.new_page()
    started = time.monotonic()
    with running(
        [sys.executable, str(tmp_path / "host.py")],
        env,
        doc_license["origin"] + "/mount.js",
    ):
        page.goto(doc_license["origin"] + "/")
        state = poll(lambda: _state(page, "#stations"), READY_TIMEOUT_S)
    record_timing(
        "integrate.md host.py first render", 1000 * (time.monotonic() - started)
    )
    page.close()
    assert state == "ready"


class _ElementPage(http.server.BaseHTTPRequestHandler):
    """Serves the doc's element snippet, and a recorder of its events."""

    body = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        if self.path == "/":
            self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


RECORDER = """<script>
for (const type of ['ready', 'error']) {
  document.addEventListener('xinfeng:' + type, (event) => {
    event.target.dataset.state = type === 'ready' ? 'ready' : event.detail.code;
  });
}
</script>"""


def test_doc_element_snippet_shows_its_component(
    demo: Demo, doc_license: dict[str, Any], browser: Any
) -> None:
    (snippet,) = [b for b in fenced("html") if "<xinfeng-component" in b]
    from xinfeng.sdk.integrator import mint_token

    token = mint_token(
        demo.provider_url,
        doc_license["credential"],
        ["gd-terrain"],
        doc_license["origin"],
    )
    page_html = snippet.replace(DOC_PROVIDER, demo.provider_url)
    page_html = page_html.replace(DOC_LICENSE, doc_license["license_id"])
    page_html = page_html.replace(DOC_TOKEN, token)
    body = ("<!doctype html><meta charset='utf-8'>" + RECORDER + page_html).encode()
    handler = type("Element", (_ElementPage,), {"body": body})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", doc_license["port"]), handler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page()
    try:
        page.goto(doc_license["origin"] + "/")
        state = poll(lambda: _state(page, "xinfeng-component"), READY_TIMEOUT_S)
    finally:
        page.close()
        server.shutdown()
        server.server_close()
    assert state == "ready"
