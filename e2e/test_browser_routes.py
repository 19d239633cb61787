"""The browser-facing routes and assets, driven without a browser.

Each test builds a tiny app from :func:`xinfeng.server.embed.routes` over a
stand-in state, as the lead's ``create_app`` does over the real one.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import struct
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
    foreign: list[tuple[str, str, str]] = field(default_factory=list)
    snapshot: assets.RuntimeSnapshot | None = None

    async def license_origins(self, license_id: str) -> list[str] | None:
        self.asked.append(license_id)
        return ORIGINS.get(license_id)

    async def note_foreign_embedder(
        self, request: object, license_id: str, product: str, embedder: str
    ) -> None:
        self.foreign.append((license_id, product, embedder))


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


@pytest.mark.parametrize(("headers", "noted"), [
    ({"Referer": "http://rogue.test/page", "Sec-Fetch-Dest": "iframe"},
     [("lic-a", "gd-stations", "http://rogue.test")]),
    ({"Referer": "https://user:pw@rogue.test:8443/p?q", "Sec-Fetch-Dest": "iframe"},
     [("lic-a", "gd-stations", "https://rogue.test:8443")]),
    ({"Referer": "http://[::1]:9/", "Sec-Fetch-Dest": "iframe"},
     [("lic-a", "gd-stations", "http://[::1]:9")]),
    ({"Referer": "https://maps.example.org/x", "Sec-Fetch-Dest": "iframe"}, []),
    ({"Referer": HOST + "/dash", "Sec-Fetch-Dest": "iframe"}, []),
    ({"Referer": "http://rogue.test/", "Sec-Fetch-Dest": "document"}, []),
    ({"Referer": "http://rogue.test/"}, []),
    ({"Referer": "not a url", "Sec-Fetch-Dest": "iframe"}, []),
    ({"Referer": "http://[", "Sec-Fetch-Dest": "iframe"}, []),
    ({"Referer": "https://a]b/", "Sec-Fetch-Dest": "iframe"}, []),
    ({"Referer": "http://rogue.test:99999/", "Sec-Fetch-Dest": "iframe"}, []),
    ({"Sec-Fetch-Dest": "iframe"}, []),
])
def test_container_framed_on_an_unlisted_origin_is_noted(
    client: TestClient, state: FakeState, headers: dict[str, str],
    noted: list[tuple[str, str, str]],
) -> None:
    response = client.get("/embed/lic-a/gd-stations/", headers=headers)

    assert response.status_code == 200
    assert state.foreign == noted


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


# -- addresses that carry their content's digest, and the memory snapshot -----


def container_meta(page: str) -> dict[str, str]:
    pairs = re.findall(r'<meta name="xinfeng-([a-z0-9-]+)" content="([^"]*)">', page)
    return dict(pairs)


def fake_snapshot(directory: Path) -> assets.RuntimeSnapshot:
    raw = bytes(4096) + b"interpreter memory" + bytes(9000)
    path = directory / "runtime-test.xfsnap.gz"
    path.write_bytes(gzip.compress(assets.pack_snapshot(raw)))
    return assets.RuntimeSnapshot(path, hashlib.sha256(path.read_bytes()).hexdigest())


def test_container_names_pyodide_worker_and_snapshot_by_digest(
    state: FakeState,
) -> None:
    state.snapshot = fake_snapshot(state.pyodide_dir.parent)
    client = TestClient(Starlette(routes=embed.routes(state)))
    meta = container_meta(client.get("/embed/lic-a/gd-stations/").text)
    tag = assets.pyodide_build(state.pyodide_dir).tag

    assert meta["pyodide"] == f"/pyodide/{tag}/"
    assert meta["snapshot"] == "/runtime/runtime-test.xfsnap.gz"
    assert meta["snapshot-sha256"] == state.snapshot.sha256_hex
    assert re.fullmatch(r"/static/component/[0-9a-f]{16}/worker\.js", meta["worker"])
    assert re.fullmatch(r"xinfeng-[0-9a-f]{24}", meta["runtime"])


def test_container_without_a_snapshot_names_none(client: TestClient) -> None:
    meta = container_meta(client.get("/embed/lic-a/gd-stations/").text)

    assert meta["snapshot"] == "" and meta["snapshot-sha256"] == ""


def test_tagged_files_are_immutable_and_other_tags_are_unknown(
    client: TestClient, state: FakeState
) -> None:
    meta = container_meta(client.get("/embed/lic-a/gd-stations/").text)
    wasm = client.get(meta["pyodide"] + "pyodide.asm.wasm")
    worker = client.get(meta["worker"])

    for response in (wasm, worker):
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
    assert wasm.headers["content-type"] == "application/wasm"
    csp = csp_directives(worker.headers["content-security-policy"])
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert client.get("/pyodide/0000000000000000/pyodide.asm.wasm").status_code == 404
    assert client.get("/static/component/00/worker.js").status_code == 404


def test_snapshot_is_served_as_stored_and_kept_for_good(state: FakeState) -> None:
    state.snapshot = fake_snapshot(state.pyodide_dir.parent)
    client = TestClient(Starlette(routes=embed.routes(state)))
    url = "/runtime/runtime-test.xfsnap.gz"

    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    again = client.get(url, headers={"If-None-Match": response.headers["etag"]})

    # Not a content encoding: the worker checks and unpacks the file itself.
    assert "content-encoding" not in response.headers
    assert response.content == state.snapshot.path.read_bytes()
    assert hashlib.sha256(response.content).hexdigest() == state.snapshot.sha256_hex
    assert "immutable" in response.headers["cache-control"]
    assert again.status_code == 304
    assert client.get("/runtime/runtime-other.xfsnap.gz").status_code == 404


def test_no_snapshot_route_serves_anything_without_a_snapshot(
    client: TestClient,
) -> None:
    assert client.get("/runtime/runtime-test.xfsnap.gz").status_code == 404


def unpack_reference(packed: bytes) -> bytes:
    """The served snapshot format, read back as docs and worker.js describe it."""
    assert packed[:8] == b"XFSNAP1\n"
    page, total, runs = struct.unpack_from(">III", packed, 8)
    image = bytearray(total)
    at = 20 + 8 * runs
    for run in range(runs):
        first, count = struct.unpack_from(">II", packed, 20 + 8 * run)
        size = min(count * page, total - first * page)
        image[first * page : first * page + size] = packed[at : at + size]
        at += count * page
    return bytes(image)


@pytest.mark.parametrize(
    "raw",
    [b"", bytes(10_000), b"x" * 4096, bytes(4096) + b"y" + bytes(5000) + b"z",
     b"a" + bytes(20_000) + b"b" * 4097],
    ids=["empty", "all-zero", "one-page", "middle", "runs"],
)  # fmt: skip
def test_packed_snapshot_leaves_out_zero_pages_and_reads_back(raw: bytes) -> None:
    packed = assets.pack_snapshot(raw)

    assert unpack_reference(packed) == raw
    assert len(packed) <= 20 + len(raw) + 4096 + 8 * (len(raw) // 4096 + 1)


def test_snapshot_key_follows_pyodide_and_code_not_the_server_key(
    tmp_path: Path, state: FakeState
) -> None:
    other_key = SM2PrivateKey.generate().public_key().to_bytes()
    other = assets.build_component_bundle(tmp_path / "other", other_key)
    pyodide = assets.pyodide_build(state.pyodide_dir)
    (state.pyodide_dir / "pyodide-lock.json").write_bytes(b"another build")
    changed = assets.pyodide_build(state.pyodide_dir)

    assert other.sha256_hex != state.bundle.sha256_hex
    assert other.code_sha256_hex == state.bundle.code_sha256_hex
    key = assets.snapshot_key(pyodide, state.bundle)
    assert assets.snapshot_key(pyodide, other) == key
    assert assets.snapshot_key(changed, state.bundle) != key


def test_code_bundle_leaves_out_the_pinned_server_key(
    state: FakeState, server_key: bytes
) -> None:
    with zipfile.ZipFile(state.bundle.code_path) as zf:
        names = zf.namelist()
        code = b"".join(zf.read(name) for name in names)

    assert assets.BUILD_MODULE not in names
    assert server_key.hex().encode() not in code
    assert "xinfeng/component/runtime.py" in names
