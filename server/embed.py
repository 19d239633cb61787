"""Routes that put the component into a browser.

The container page is the one document the provider lets other sites frame:
its ``frame-ancestors`` lists the license's origins, so the browser itself
refuses every other embedder. Everything else here is static: the loader
script for host pages, the container's script and style, the pinned Pyodide,
the content-addressed component bundle and the runtime's memory snapshot.
None of it carries product data.

What a browser keeps: the container page never (it names everything else
by digest); files whose address carries the digest of their content (the
bundle, the snapshot, and the Pyodide and component files under their
build tag) for a year, immutable, which also lets Chrome keep the compiled
WebAssembly; the loader and the untagged addresses revalidate with their
ETag.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from xinfeng.license.origins import check_origin, normalize_origin_pattern
from xinfeng.sdk.errors import OriginDenied

from .assets import (
    PYODIDE_CORE_FILES,
    ComponentBundle,
    PyodideBuild,
    RuntimeSnapshot,
    pyodide_build,
)

_PACKAGE_DIR = Path(__file__).resolve().parent
COMPONENT_STATIC = _PACKAGE_DIR.parent / "component" / "static"
LOADER_JS = _PACKAGE_DIR.parent / "sdk" / "loader.js"

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CONTENT_TYPES = {
    ".mjs": "text/javascript; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".zip": "application/zip",
    ".json": "application/json",
}
COMPONENT_FILES = ("container.js", "container.css", "worker.js")
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Host pages on other sites load the loader with a plain <script src>.
LOADER_HEADERS = {
    "Cache-Control": "no-cache",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
STATIC_HEADERS = {
    "Cache-Control": "no-cache",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The version is pinned, so a week of caching is safe; the ETag makes the
# revalidation after that cheap. The bundle's name is its digest.
PYODIDE_HEADERS = {
    "Cache-Control": "public, max-age=604800",
    "Cross-Origin-Resource-Policy": "same-origin",
}
IMMUTABLE_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "Cross-Origin-Resource-Policy": "same-origin",
}
BUNDLE_HEADERS = IMMUTABLE_HEADERS
CONTAINER_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "worker-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
# Workers (shared or dedicated) take their policy from their own script's
# response.
WORKER_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "connect-src 'self'; base-uri 'none'"
)
WORKER_HEADERS = {**STATIC_HEADERS, "Content-Security-Policy": WORKER_CSP}
SNAPSHOT_MEDIA_TYPE = "application/gzip"


class EmbedState(Protocol):
    """What these routes need from the application state."""

    pyodide_dir: Path
    bundle: ComponentBundle
    server_public_key: bytes

    # Optional: ``snapshot`` (a RuntimeSnapshot or None) when the provider
    # built one, read with getattr.

    async def license_origins(self, license_id: str) -> list[str] | None: ...

    async def note_foreign_embedder(
        self, request: Request, license_id: str, product: str, embedder: str
    ) -> None: ...


@dataclass(frozen=True)
class StaticFile:
    """One file served as is, with its content type and validator."""

    path: Path
    media_type: str
    etag: str


def _etag(path: Path) -> str:
    return f'"{hashlib.sha256(path.read_bytes()).hexdigest()[:32]}"'


def _files_tag(files: Mapping[str, StaticFile]) -> str:
    """A short name for one version of a set of files."""
    text = "".join(f"{name}={files[name].etag}\n" for name in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _static_files(directory: Path, names: Iterable[str]) -> dict[str, StaticFile]:
    """The files ``names`` of ``directory`` that exist, by name.

    Serving from this fixed table means a request can never name a path
    outside it: there is no path joining at request time.
    """
    files = {}
    for name in names:
        path = directory / name
        media_type = _CONTENT_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            files[name] = StaticFile(path, media_type, _etag(path))
    return files


def _not_found() -> JSONResponse:
    body = {"error": {"code": "not_found", "message": "not found"}}
    return JSONResponse(body, status_code=404, headers={"Cache-Control": "no-store"})


def _serve(
    request: Request,
    files: Mapping[str, StaticFile],
    name: str,
    extra: Mapping[str, str],
) -> Response:
    entry = files.get(name)
    if entry is None:
        return _not_found()
    headers = {**BASE_HEADERS, **extra, "ETag": entry.etag}
    if entry.etag in _if_none_match(request):
        return Response(status_code=304, headers=headers)
    return FileResponse(entry.path, media_type=entry.media_type, headers=headers)


def _if_none_match(request: Request) -> set[str]:
    value = request.headers.get("if-none-match", "")
    return {tag.strip().removeprefix("W/") for tag in value.split(",") if tag}


def frame_ancestors(origins: list[str]) -> str:
    """The ``frame-ancestors`` source list for a license's origins.

    Entries that are not plain origins (or https wildcard patterns) are
    dropped rather than pasted into the header; no entries means 'none'.
    """
    sources = []
    for origin in origins:
        try:
            sources.append(normalize_origin_pattern(origin, allow_wildcard=True))
        except OriginDenied:
            continue
    return " ".join(sorted(set(sources))) or "'none'"


def container_csp(origins: list[str]) -> str:
    """The container page's full Content-Security-Policy."""
    return f"{CONTAINER_CSP}; frame-ancestors {frame_ancestors(origins)}"


def foreign_embedder(request: Request, origins: list[str]) -> str | None:
    """The origin of a page framing the container that the license does not
    list, from the request's ``Referer``; None when listed or unknown.

    The browser refuses such a frame by ``frame-ancestors`` either way;
    this makes the attempt visible to the provider. Only frame loads are
    read (``Sec-Fetch-Dest: iframe``), a host page may send no ``Referer``
    at all, and a client other than a browser can send any: the origin is
    a lead, not evidence. It is returned without user info or path.
    """
    if request.headers.get("sec-fetch-dest") != "iframe":
        return None
    try:
        parts = urlsplit(request.headers.get("referer", "")[:2048])
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    embedder = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    try:
        check_origin(embedder, origins, allow_wildcard=True)
    except OriginDenied:
        return embedder[:256]
    return None


def render_container(template: str, values: Mapping[str, str]) -> str:
    """Fill the container template's ``{{name}}`` slots, HTML-escaped."""
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", html.escape(value, quote=True))
    return template


@dataclass(frozen=True)
class Runtime:
    """What a container needs to join or start the component runtime."""

    bundle: ComponentBundle
    pyodide: PyodideBuild
    static_tag: str
    snapshot: RuntimeSnapshot | None

    @property
    def name(self) -> str:
        """The SharedWorker's name: one runtime per build of everything."""
        parts = [self.pyodide.tag, self.bundle.sha256_hex, self.static_tag]
        parts.append(self.snapshot.sha256_hex if self.snapshot else "-")
        digest = hashlib.sha256(" ".join(parts).encode()).hexdigest()
        return f"xinfeng-{digest[:24]}"

    def values(self) -> dict[str, str]:
        """The container page's slots that name the runtime's files."""
        static = f"/static/component/{self.static_tag}/"
        snapshot = self.snapshot
        return {
            "bundle_url": f"/component/{self.bundle.name}",
            "bundle_sha256": self.bundle.sha256_hex,
            "build": self.bundle.sm3_hex,
            "pyodide_url": f"/pyodide/{self.pyodide.tag}/",
            "snapshot_url": f"/runtime/{snapshot.name}" if snapshot else "",
            "snapshot_sha256": snapshot.sha256_hex if snapshot else "",
            "static_url": static,
            "worker_url": static + "worker.js",
            "runtime": self.name,
        }


def _serve_snapshot(request: Request, snapshot: RuntimeSnapshot) -> Response:
    etag = f'"{snapshot.sha256_hex[:32]}"'
    headers = {**BASE_HEADERS, **IMMUTABLE_HEADERS, "ETag": etag}
    if etag in _if_none_match(request):
        return Response(status_code=304, headers=headers)
    return FileResponse(snapshot.path, media_type=SNAPSHOT_MEDIA_TYPE, headers=headers)


def routes(state: Any) -> list[BaseRoute]:
    """The browser-facing routes of the provider, for ``state``."""
    embed_state: EmbedState = state
    component = _static_files(COMPONENT_STATIC, COMPONENT_FILES)
    pyodide = _static_files(embed_state.pyodide_dir, PYODIDE_CORE_FILES)
    loader = _static_files(LOADER_JS.parent, [LOADER_JS.name])
    template = (COMPONENT_STATIC / "container.html").read_text("utf-8")
    runtime = Runtime(
        embed_state.bundle,
        pyodide_build(embed_state.pyodide_dir),
        _files_tag(component),
        getattr(state, "snapshot", None),
    )

    async def loader_js(request: Request) -> Response:
        return _serve(request, loader, LOADER_JS.name, LOADER_HEADERS)

    async def container(request: Request) -> Response:
        license_id = request.path_params["license_id"]
        product = request.path_params["product"]
        if not (_ID_RE.fullmatch(license_id) and _ID_RE.fullmatch(product)):
            return _not_found()
        origins = await embed_state.license_origins(license_id)
        if origins is None:
            return _not_found()
        embedder = foreign_embedder(request, origins)
        if embedder is not None:
            await embed_state.note_foreign_embedder(request, license_id, product,
                                                    embedder)
        values = {"license": license_id, "product": product, **runtime.values()}
        page = render_container(template, values)
        headers = {
            **BASE_HEADERS,
            "Content-Security-Policy": container_csp(origins),
            "Cache-Control": "no-store",
        }
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    async def component_static(request: Request) -> Response:
        name = request.path_params["file"]
        extra = WORKER_HEADERS if name == "worker.js" else STATIC_HEADERS
        return _serve(request, component, name, extra)

    async def component_tagged(request: Request) -> Response:
        if request.path_params["tag"] != runtime.static_tag:
            return _not_found()
        name = request.path_params["file"]
        extra = WORKER_HEADERS if name == "worker.js" else STATIC_HEADERS
        return _serve(request, component, name, {**extra, **IMMUTABLE_HEADERS})

    async def pyodide_file(request: Request) -> Response:
        return _serve(request, pyodide, request.path_params["path"], PYODIDE_HEADERS)

    async def pyodide_tagged(request: Request) -> Response:
        if request.path_params["tag"] != runtime.pyodide.tag:
            return _not_found()
        name = request.path_params["file"]
        return _serve(request, pyodide, name, IMMUTABLE_HEADERS)

    async def bundle_zip(request: Request) -> Response:
        bundle = embed_state.bundle
        entry = StaticFile(bundle.path, "application/zip", f'"{bundle.sha256_hex}"')
        name = request.path_params["name"] + ".zip"
        return _serve(request, {bundle.name: entry}, name, BUNDLE_HEADERS)

    async def snapshot_file(request: Request) -> Response:
        snapshot = runtime.snapshot
        if snapshot is None or request.path_params["name"] != snapshot.name:
            return _not_found()
        # Another provider sharing the cache may have pruned it meanwhile;
        # the worker then boots without a snapshot.
        if not snapshot.path.is_file():
            return _not_found()
        return _serve_snapshot(request, snapshot)

    return [
        Route("/embed/loader.js", loader_js, methods=["GET"]),
        Route("/embed/{license_id}/{product}/", container, methods=["GET"]),
        Route("/static/component/{file}", component_static, methods=["GET"]),
        Route("/static/component/{tag}/{file}", component_tagged, methods=["GET"]),
        Route("/pyodide/{tag}/{file}", pyodide_tagged, methods=["GET"]),
        Route("/pyodide/{path:path}", pyodide_file, methods=["GET"]),
        Route("/component/{name}.zip", bundle_zip, methods=["GET"]),
        Route("/runtime/{name}", snapshot_file, methods=["GET"]),
    ]
