"""The browser-facing routes and assets, driven without a browser.

Each test builds a tiny app from :func:`xinfeng.server.embed.routes` over a
stand-in state, as the lead's ``create_app`` does over the real one.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from xinfeng.sdk.errors import TokenInvalid
from xinfeng.sdk.sm2 import SM2PrivateKey
from xinfeng.server import assets, demo_host, embed

HOST = "http://127.0.0.1:8001"
ORIGINS = {
    "lic-a": [HOST, "https://*.example.org"],
    "lic-empty": [],
    "lic-hostile": ["http://ok.test", "http://x.test; script-src 'unsafe-inline'"],
}


@dataclass
class FakeState:
    pyodide_dir: Path
    bundle: assets.ComponentBundle
    server_public_key: bytes
    asked: list[str] = field(default_factory=list)

    async def license_origins(self, license_id: str) -> list[str] | None:
        self.asked.append(license_id)
        return ORIGINS.get(license_id)


@pytest.fixture(scope="module")
def server_key() -> bytes:
    return SM2PrivateKey.generate().public_key().to_bytes()


@pytest.fixture()
def state(tmp_path: Path, server_key: bytes) -> FakeState:
    pyodide = tmp_path / "pyodide"
    pyodide.mkdir()
    for name in (*assets.PYODIDE_CORE_FILES, "console.html", "pyodide.js.map"):
        (pyodide / name).write_bytes(b"stand-in " + name.encode())
    bundle = assets.build_component_bundle(tmp_path / "bundles", server_key)
    return FakeState(pyodide, bundle, server_key)


@pytest.fixture()
def client(state: FakeState) -> TestClient:
    return TestClient(Starlette(routes=embed.routes(state)))


def csp_directives(header: str) -> dict[str, str]:
    pairs = (d.strip().split(" ", 1) for d in header.split(";") if d.strip())
    return {p[0]: p[1] if len(p) > 1 else "" for p in pairs}


# -- the container page -------------------------------------------------------


def test_container_frame_ancestors_are_the_license_origins(client: TestClient) -> None:
    response = client.get("/embed/lic-a/gd-stations/")

    assert response.status_code == 200
    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["frame-ancestors"] == f"{HOST} https://*.example.org"
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert csp["default-src"] == "'self'"
    assert csp["worker-src"] == "'self'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


def test_container_page_has_no_inline_script_or_style(client: TestClient) -> None:
    page = client.get("/embed/lic-a/gd-stations/").text

    assert "<style" not in page
    assert page.count("<script") == page.count('<script type="module" src=')
    assert 'content="gd-stations"' in page


def test_container_names_the_bundle_and_its_digests(
    client: TestClient, state: FakeState
) -> None:
    page = client.get("/embed/lic-a/gd-stations/").text

    assert f'content="/component/{state.bundle.name}"' in page
    assert f'content="{state.bundle.sha256_hex}"' in page
    assert f'content="{state.bundle.sm3_hex}"' in page


def test_container_for_unknown_license_is_404_without_detail(
    client: TestClient,
) -> None:
    response = client.get("/embed/lic-unknown/gd-stations/")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "not found"}}


def test_container_for_license_without_origins_allows_no_ancestor(
    client: TestClient,
) -> None:
    response = client.get("/embed/lic-empty/gd-stations/")

    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["frame-ancestors"] == "'none'"


def test_frame_ancestors_drop_an_origin_carrying_a_directive(
    client: TestClient,
) -> None:
    response = client.get("/embed/lic-hostile/gd-stations/")

    header = response.headers["content-security-policy"]
    assert "unsafe-inline" not in header
    assert csp_directives(header)["frame-ancestors"] == "http://ok.test"


@pytest.mark.parametrize(
    "path",
    [
        "/embed/lic%20a/gd-stations/",
        "/embed/lic-a/%3Cscript%3E/",
        "/embed/-lic/gd-stations/",
        "/embed/lic-a/" + "p" * 65 + "/",
    ],
)
def test_container_refuses_malformed_ids_before_any_lookup(
    client: TestClient, state: FakeState, path: str
) -> None:
    assert client.get(path).status_code == 404
    assert state.asked == []


# -- static files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("pyodide.mjs", "text/javascript"),
        ("pyodide.asm.mjs", "text/javascript"),
        ("pyodide.asm.wasm", "application/wasm"),
        ("python_stdlib.zip", "application/zip"),
        ("pyodide-lock.json", "application/json"),
    ],
)
def test_pyodide_core_files_have_their_types(
    client: TestClient, name: str, media_type: str
) -> None:
    response = client.get(f"/pyodide/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.content == b"stand-in " + name.encode()
    assert "max-age=" in response.headers["cache-control"]


@pytest.mark.parametrize(
    "path",
    [
        "/pyodide/..%2f..%2fetc%2fpasswd",
        "/pyodide/%2e%2e/bundles/x.zip",
        "/pyodide/..%2fpyodide.mjs",
        "/pyodide/sub/pyodide.mjs",
        "/pyodide/console.html",
        "/pyodide/pyodide.js.map",
        "/pyodide/",
    ],
)
def test_pyodide_route_serves_nothing_outside_the_core_files(
    client: TestClient, path: str
) -> None:
    assert client.get(path).status_code == 404


def test_pyodide_file_revalidates_with_its_etag(client: TestClient) -> None:
    first = client.get("/pyodide/pyodide.asm.wasm")
    again = client.get(
        "/pyodide/pyodide.asm.wasm", headers={"If-None-Match": first.headers["etag"]}
    )

    assert again.status_code == 304
    assert again.content == b""


def test_worker_script_carries_a_policy_that_lets_pyodide_compile(
    client: TestClient,
) -> None:
    response = client.get("/static/component/worker.js")

    assert response.headers["content-type"].startswith("text/javascript")
    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'"


@pytest.mark.parametrize("name", ["container.html", "render.py", "..%2fruntime.py"])
def test_component_static_serves_only_the_page_scripts(
    client: TestClient, name: str
) -> None:
    assert client.get(f"/static/component/{name}").status_code == 404


def test_loader_may_be_loaded_by_other_sites(client: TestClient) -> None:
    response = client.get("/embed/loader.js")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "eval(" not in response.text


def test_bundle_is_served_under_its_content_name_only(
    client: TestClient, state: FakeState
) -> None:
    response = client.get(f"/component/{state.bundle.name}")

    assert response.status_code == 200
    assert response.content == state.bundle.path.read_bytes()
    assert "immutable" in response.headers["cache-control"]
    assert client.get("/component/xinfeng-component-0000.zip").status_code == 404


# -- the component bundle ---------------------------------------------------------


def test_bundle_is_deterministic(tmp_path: Path, server_key: bytes) -> None:
    first = assets.build_component_bundle(tmp_path / "a", server_key)
    second = assets.build_component_bundle(tmp_path / "b", server_key)

    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256_hex == second.sha256_hex
    assert first.name == f"xinfeng-component-{first.sha256_hex[:16]}.zip"


def test_bundle_pins_the_server_key_and_holds_pure_python_only(
    state: FakeState, server_key: bytes
) -> None:
    with zipfile.ZipFile(io.BytesIO(state.bundle.path.read_bytes())) as zf:
        names = zf.namelist()
        build = zf.read("xinfeng/component/_build.py").decode()
        stamps = {info.date_time for info in zf.infolist()}

    assert server_key.hex() in build
    assert {
        "msgpack/fallback.py",
        "xinfeng/sdk/envelope.py",
        "xinfeng/component/runtime.py",
    } <= set(names)
    assert all(name.endswith(".py") for name in names)
    assert stamps == {(1980, 1, 1, 0, 0, 0)}


def test_bundle_refuses_a_key_that_is_not_an_uncompressed_point(
    tmp_path: Path,
) -> None:
    with pytest.raises(assets.AssetError):
        assets.build_component_bundle(tmp_path, b"\x02" + bytes(32))


# -- the sample host app ------------------------------------------------------------


def host_client(monkeypatch: pytest.MonkeyPatch, mint: object) -> TestClient:
    monkeypatch.setattr(demo_host, "mint_token", mint)
    app = demo_host.create_host_app(
        "http://127.0.0.1:8000", "xfc_cred", "lic-a", ["gd-stations"], HOST
    )
    return TestClient(app)


def test_host_page_carries_a_fresh_token_and_no_inline_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def mint(provider: str, credential: str, products: list[str], origin: str) -> str:
        calls.append((provider, credential, products, origin))
        return f"token-{len(calls)}"

    client = host_client(monkeypatch, mint)
    first, second = client.get("/"), client.get("/")

    assert 'data-token="token-1"' in first.text
    assert 'data-token="token-2"' in second.text
    assert calls[0] == ("http://127.0.0.1:8000", "xfc_cred", ["gd-stations"], HOST)
    assert "xfc_cred" not in first.text
    csp = csp_directives(first.headers["content-security-policy"])
    assert csp["script-src"] == "'self' http://127.0.0.1:8000"
    assert csp["frame-src"] == "http://127.0.0.1:8000"
    assert first.text.count("<script") == first.text.count("<script src=")
    assert first.headers["cache-control"] == "no-store"


def test_host_page_reports_a_refused_token_without_the_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def mint(*args: object) -> str:
        raise TokenInvalid()

    response = host_client(monkeypatch, mint).get("/")

    assert response.status_code == 502
    assert "token_invalid" in response.text
    assert "xfc_cred" not in response.text
