"""The provider's Starlette application: built by :func:`create_app`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from xinfeng.license.jwt_sm2 import KeyLookup
from xinfeng.sdk.errors import LicenseError, OriginDenied, XinfengError

from . import admin, api, audit_api
from .abuse import Guard
from .config import Config
from .keys import KeyDir, LicensorKeyring, key_id
from .limits import network_of
from .native_sm2 import SM2Signer, load_server_signer
from .products import Catalog, default_catalog
from .storage import Storage

logger = logging.getLogger(__name__)


class AppState:
    """Everything request handlers share, built once at start-up."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        server_key: SM2Signer,
        licensor_keys: KeyLookup,
        catalog: Catalog,
    ) -> None:
        self.config = config
        self.storage = storage
        self.server_key = server_key
        self.server_public_key = server_key.public_key().to_bytes()
        self.server_kid = key_id(server_key.public_key())
        self.licensor_keys = licensor_keys
        self.catalog = catalog
        self.guard = Guard(config, storage)
        self.pyodide_dir: Path | None = None
        self.bundle: Any = None
        self.snapshot: Any = None

    def now_ms(self) -> int:
        return self.config.clock_ms()

    def now_s(self) -> int:
        return self.config.clock_ms() // 1000

    async def license_origins(self, license_id: str) -> list[str] | None:
        """The origins a license may embed from; None when it is not usable."""
        try:
            lic = await api.load_license(self, license_id)
        except LicenseError:
            return None
        return list(lic.origins)

    async def note_foreign_embedder(
        self, request: Request, license_id: str, product: str, embedder: str
    ) -> None:
        """Log a container requested for a frame on an unlisted origin: once
        per license, origin and client network a strike window, since
        anyone can ask for the page and name any origin."""
        net = network_of(api.request_ip(self, request))
        seen = await self.guard.store.bump_in_window(
            "embedder", f"{license_id}|{embedder}|{net}", self.now_ms(),
            self.guard.ladder.cooldown_ms)
        if seen == 1:
            await api.refuse(self, request, "embed_refused", OriginDenied(),
                             license_id, {"product": product, "embedder": embedder})


def error_response(exc: XinfengError) -> JSONResponse:
    """The one shape of every error answer: a stable code, a short message."""
    body = {"error": {"code": exc.code, "message": str(exc)}}
    headers = {"Cache-Control": "no-store"}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _on_xinfeng_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, XinfengError)
    return error_response(exc)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Router errors (no such route, wrong method) in the one error shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    body = {"error": {"code": code, "message": code.replace("_", " ")}}
    return JSONResponse(body, status_code=exc.status_code,
                        headers={"Cache-Control": "no-store"})


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s", request.url.path)
    body = {"error": {"code": "internal", "message": "internal error"}}
    return JSONResponse(body, status_code=500)


def build_state(config: Config, catalog: Catalog | None = None) -> AppState:
    """Load keys and the catalogue; the database opens with the app."""
    server_key, _ = KeyDir(config.keys_dir).ensure()
    signer = load_server_signer(server_key)
    licensor_keys = LicensorKeyring(KeyDir(config.keys_dir))
    catalog = catalog or default_catalog(config.cache_dir)
    return AppState(config, Storage(config.db_path), signer, licensor_keys,
                    catalog)


def _browser_routes(state: AppState) -> list[BaseRoute]:
    from . import assets, embed

    state.pyodide_dir = assets.ensure_pyodide(state.config.cache_dir)
    state.bundle = assets.build_component_bundle(
        state.config.data_dir / "bundles", state.server_public_key
    )
    state.snapshot = assets.ensure_snapshot(
        state.config.cache_dir, assets.pyodide_build(state.pyodide_dir), state.bundle
    )
    return list(embed.routes(state))


def create_app(config: Config, catalog: Catalog | None = None) -> Starlette:
    """The provider application for ``config``."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    state = build_state(config, catalog)
    routes = list(api.routes(state))
    routes.append(Mount("/admin/v1", routes=admin.routes(state)))
    routes += audit_api.routes(state)
    if config.serve_browser_assets:
        routes += _browser_routes(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.storage.open()
        try:
            async with audit_api.publishing(state):
                yield
        finally:
            await state.guard.close()
            await state.storage.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            XinfengError: _on_xinfeng_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
    )
    app.state.xinfeng = state
    return app
