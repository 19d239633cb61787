"""``xinfeng demo``: the provider and a sample host app, ready to open.

Sets up what is missing (keys, data, Pyodide, the demo products registered
and approved by two demo reviewers, a demo license for the host app's
origin), then serves both applications on 127.0.0.1 until stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import uvicorn

from .app import create_app
from .catalog import PRODUCT_IDS
from .cli import issue_license
from .config import Config
from .registry import CatalogReview, approve_catalog_at
from .serving import uvicorn_config

logger = logging.getLogger(__name__)

# The thirteen products of the catalogue, in dashboard order, all under the
# one demo license.
DEMO_PRODUCTS = list(PRODUCT_IDS)
DEMO_REVIEW = CatalogReview(
    owner="Guangdong Provincial Meteorological Service (demo)",
    category="meteorological data",
    region="440000",
    category_code="01",
    submitter="demo-provider",
    reviewers=("demo-reviewer-1", "demo-reviewer-2"),
    reason="approved for the demonstration",
)


def _demo_license(data_dir: Path, host_origin: str) -> dict[str, Any]:
    """The demo license for ``host_origin``, issued on first use."""
    path = data_dir / "demo-license.json"
    if path.exists():
        saved: dict[str, Any] = json.loads(path.read_text())
        if (saved.get("origin") == host_origin
                and saved.get("products", ["gd-stations"]) == DEMO_PRODUCTS):
            return saved
    result = asyncio.run(issue_license(data_dir, {
        "licensee": "Provincial Emergency Command Center (demo)",
        "project": "emergency-command-demo",
        "contract_id": "DEMO-2026-001",
        "scenario": "Emergency command situational awareness (demonstration)",
        "products": tuple(DEMO_PRODUCTS), "origins": (host_origin,),
        "networks": ("127.0.0.0/8", "::1/128"),
        "not_before": _now_s() - 60, "not_after": _now_s() + 365 * 86400,
        # One dashboard view opens 13 sessions (a handshake and a data
        # request each): the limits leave room for a few views a minute.
        "rate_per_minute": 600, "rate_per_day": 50000, "max_sessions": 200,
    }))
    saved = {"origin": host_origin, "license_id": result["license_id"],
             "credential": result["credential"], "products": DEMO_PRODUCTS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(saved, fh)
    return saved


def _now_s() -> int:
    from .config import wall_clock_ms

    return wall_clock_ms() // 1000


async def _serve_both(provider: Any, host: Any, provider_port: int,
                      host_port: int) -> None:
    servers = [
        uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
        for app, port in ((provider, provider_port), (host, host_port))
    ]
    await asyncio.gather(*(s.serve() for s in servers))


def run_demo(args: argparse.Namespace) -> int:
    """Set up and serve the demo; returns the process exit code."""
    from .demo_host import create_host_app

    provider_url = f"http://127.0.0.1:{args.provider_port}"
    host_origin = f"http://127.0.0.1:{args.host_port}"
    print("setting up the provider (keys, data, Pyodide) ...", flush=True)
    config = Config(data_dir=args.data_dir, cache_dir=args.cache_dir,
                    public_url=provider_url,
                    session_ttl_s=getattr(args, "session_ttl", 600),
                    session_max_s=getattr(args, "session_max", 12 * 3600))
    provider = create_app(config)
    asyncio.run(approve_catalog_at(args.data_dir, provider.state.xinfeng.catalog,
                                   DEMO_REVIEW))
    demo = _demo_license(args.data_dir, host_origin)
    host = create_host_app(provider_url, demo["credential"], demo["license_id"],
                           DEMO_PRODUCTS, host_origin)
    print(f"provider server:  {provider_url}", flush=True)
    print(f"sample host app:  {host_origin}/   <- open this", flush=True)
    print(f"demo license:     {demo['license_id']} (origin {host_origin})",
          flush=True)
    print("press Ctrl-C to stop", flush=True)
    asyncio.run(_serve_both(provider, host, args.provider_port, args.host_port))
    return 0
