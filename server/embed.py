"""Routes that put the component into a browser.

The container page is the one document the provider lets other sites frame:
its ``frame-ancestors`` lists the license's origins, so the browser itself
refuses every other embedder. Everything else here is static: the loader
script for host pages, the container's script and style, the pinned Pyodide
and the content-addressed component bundle. None of it carries product data.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from xinfeng.license.origins import normalize_origin_pattern
from xinfeng.sdk.errors import OriginDenied

from .assets import PYODIDE_CORE_FILES, ComponentBundle

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
BUNDLE_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CONTAINER_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "worker-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
# Dedicated workers take their policy from their own script's response.
WORKER_HEADERS = {
    **STATIC_HEADERS,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
        "connect-src 'self'; base-uri 'none'"
    ),
}


class EmbedState(Protocol):
    """What these routes need from the application state."""

    pyodide_dir: Path
    bundle: ComponentBundle
    server_public_key: bytes

    async def license_origins(self, license_id: str) -> list[str] | None: ...


@dataclass(frozen=True)
class StaticFile:
    """One file served as is, with its content type and validator."""

    path: Path
    media_type: str
    etag: str


def _etag(path: Path) -> str:
    return f'"{hashlib.sha256(path.read_bytes()).hexdigest()[:32]}"'


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


def render_container(template: str, values: Mapping[str, str]) -> str:
    """Fill the container template's ``{{name}}`` slots, HTML-escaped."""
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", html.escape(value, quote=True))
    return template


def routes(state: Any) -> list[BaseRoute]:
    """The browser-facing routes of the provider, for ``state``."""
    embed_state: EmbedState = state
    component = _static_files(COMPONENT_STATIC, COMPONENT_FILES)
    pyodide = _static_files(embed_state.pyodide_dir, PYODIDE_CORE_FILES)
    loader = _static_files(LOADER_JS.parent, [LOADER_JS.name])
    template = (COMPONENT_STATIC / "container.html").read_text("utf-8")

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
        page = render_container(template, _container_values(embed_state, request))
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

    async def pyodide_file(request: Request) -> Response:
        return _serve(request, pyodide, request.path_params["path"], PYODIDE_HEADERS)

    async def bundle_zip(request: Request) -> Response:
        bundle = embed_state.bundle
        entry = StaticFile(bundle.path, "application/zip", f'"{bundle.sha256_hex}"')
        name = request.path_params["name"] + ".zip"
        return _serve(request, {bundle.name: entry}, name, BUNDLE_HEADERS)

    return [
        Route("/embed/loader.js", loader_js, methods=["GET"]),
        Route("/embed/{license_id}/{product}/", container, methods=["GET"]),
        Route("/static/component/{file}", component_static, methods=["GET"]),
        Route("/pyodide/{path:path}", pyodide_file, methods=["GET"]),
        Route("/component/{name}.zip", bundle_zip, methods=["GET"]),
    ]


def _container_values(state: EmbedState, request: Request) -> dict[str, str]:
    bundle = state.bundle
    return {
        "license": request.path_params["license_id"],
        "product": request.path_params["product"],
        "bundle_url": f"/component/{bundle.name}",
        "bundle_sha256": bundle.sha256_hex,
        "build": bundle.sm3_hex,
    }
