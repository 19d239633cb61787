"""No route of the provider returns product data in plaintext.

Walks the application's whole route table — protocol routes and the
browser assets (container page, loader, component bundle, Pyodide files) —
and requests every route with a live session's authentication attached,
filling path parameters with real product and license ids. The product
payload carries a marker string; no response may contain it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.routing import Mount, Route

from xinfeng.sdk import envelope
from xinfeng.sdk.sm2 import SM2PublicKey

from .conftest import HOST_ORIGIN, MARKER, make_provider


def _params(route: Route, values: dict[str, str]) -> dict[str, str]:
    return {name: values.get(name, "x") for name in route.param_convertors}


def _walk(routes: list[Any], prefix: str = "") -> list[tuple[str, Route]]:
    found = []
    for route in routes:
        if isinstance(route, Mount):
            found += _walk(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            found.append((prefix, route))
    return found


def test_no_route_returns_plaintext_product_data(tmp_path: Path) -> None:
    p = make_provider(tmp_path, browser_assets=True)
    with p.client:
        token = p.client.post(
            "/v1/tokens", json={"products": ["test-product"],
                                "origin": HOST_ORIGIN},
            headers={"Authorization": f"Bearer {p.credential}"}).json()["token"]
        env = {"origins": [HOST_ORIGIN], "ua": "t", "webdriver": False,
               "build": "", "hidden": False}
        hs = envelope.ClientHandshake(token, env)
        reply = p.client.post("/v1/handshake", content=hs.request(p.clock()))
        session = hs.finish(reply.content,
                            SM2PublicKey.from_bytes(p.state.server_public_key))
        values = {"product": "test-product", "license_id": p.license_id,
                  "path": "pyodide.mjs", "file": "worker.js"}
        routes = _walk(p.app.routes)
        assert any(r.path == "/v1/data/{product}" for _, r in routes)
        checked = 0
        for prefix, route in routes:
            path = prefix + route.path_format.format(**_params(route, values))
            for method in sorted(route.methods or {"GET"}):
                if method == "HEAD":
                    continue
                auth = session.sign(method, path, "", p.clock())
                response = p.client.request(method, path, headers=auth.headers(),
                                            content=b"")
                assert MARKER.encode() not in response.content, path
                checked += 1
        assert checked >= len(routes)
