"""The sample integrator: a host web app that embeds the provider's products.

It stands for the integrator's own application on its own origin. Its
backend holds the license credential and, for every page view, exchanges it
for a short-lived embed token (:func:`xinfeng.sdk.integrator.mint_token`);
only that token reaches the browser. The page itself carries no inline code
and a strict CSP, as a careful integrator's page would.
"""

from __future__ import annotations

import html
import logging
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from xinfeng.sdk.errors import XinfengError
from xinfeng.sdk.integrator import mint_token

logger = logging.getLogger(__name__)

HOST_STATIC = Path(__file__).resolve().parent / "static" / "host"
_STATIC_TYPES = {"host.js": "text/javascript", "host.css": "text/css"}
_PRODUCT_TITLES = {
    "gd-stations": "广东省气象观测站 · Guangdong weather stations",
    "gd-station-card": "测站详情 · Station card",
    "gd-terrain": "广东地形 · Terrain of Guangdong",
    "gd-rivers": "珠江水系 · Rivers and lakes",
    "gd-station-density": "站点密度 · Station density",
    "cn-z500-climate": "500 hPa 气候态 · 500 hPa height climatology",
    "cma-colour-scales": "气象色标 · CMA colour scales",
    "seattle-temperature": "逐日气温 · Daily temperature (Seattle)",
    "seattle-precipitation": "逐日降水 · Daily precipitation (Seattle)",
    "seattle-wind": "逐日风速 · Daily wind (Seattle)",
    "seattle-monthly": "月气候概况 · Monthly climate summary (Seattle)",
    "seattle-extremes": "极值 · Record days (Seattle)",
    "seattle-diurnal": "气温日变化 · Temperature by hour (Seattle)",
}

SLOT = """<section class="panel">
<h2>{title}<span class="status"></span></h2>
<div class="xinfeng-slot" data-provider="{provider}" data-license="{license}"
 data-product="{product}" data-token="{token}"></div>
</section>"""


def host_csp(provider_origin: str) -> str:
    """The host page's CSP: its own files, plus the provider's loader and frames."""
    return (
        f"default-src 'self'; script-src 'self' {provider_origin}; "
        f"frame-src {provider_origin}; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def render_page(
    template: str,
    provider_url: str,
    license_id: str,
    products: Sequence[str],
    origin: str,
    token: str,
) -> str:
    """The host page for one page view, with one slot per product."""
    esc = html.escape
    slots = "\n".join(
        SLOT.format(
            title=esc(_PRODUCT_TITLES.get(product, product)),
            provider=esc(provider_url),
            license=esc(license_id),
            product=esc(product),
            token=esc(token),
        )
        for product in products
    )
    values = {
        "provider": esc(provider_url),
        "origin": esc(origin),
        "license": esc(license_id),
        "slots": slots,
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def create_host_app(
    provider_url: str,
    credential: str,
    license_id: str,
    products: list[str],
    public_origin: str,
) -> Starlette:
    """The sample host application, embedding ``products`` from ``provider_url``."""
    provider_url = provider_url.rstrip("/")
    parts = urllib.parse.urlsplit(provider_url)
    provider_origin = f"{parts.scheme}://{parts.netloc}"
    template = (HOST_STATIC / "index.html").read_text("utf-8")
    headers = {
        "Content-Security-Policy": host_csp(provider_origin),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin",
    }

    async def page(request: Request) -> Response:
        try:
            token = await run_in_threadpool(
                mint_token, provider_url, credential, products, public_origin
            )
        except XinfengError as exc:
            logger.warning("embed token refused: %s", exc.code)
            return PlainTextResponse(
                f"the provider refused an embed token ({exc.code})",
                status_code=502,
                headers=headers,
            )
        body = render_page(
            template, provider_url, license_id, products, public_origin, token
        )
        return HTMLResponse(body, headers=headers)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC_TYPES:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(
            HOST_STATIC / name,
            media_type=_STATIC_TYPES[name],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/static/{name}", static, methods=["GET"]),
        ]
    )
