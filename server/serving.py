"""How xinfeng's applications are put behind uvicorn.

uvicorn rewrites the client address from ``X-Forwarded-For`` by default
when the peer is on loopback. xinfeng decides that itself, from its own
trusted-proxy settings (``server/clientip.py``), so uvicorn's rewriting is
switched off: otherwise a client talking to the server through a local
socket could pick the address the rate limits count.
"""

from __future__ import annotations

from typing import Any

import uvicorn


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration for one xinfeng application."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning",
                          proxy_headers=False, server_header=False)
