"""Server configuration: one frozen object built by the CLI or a test."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def wall_clock_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Config:
    """Everything the provider server needs to start.

    ``data_dir`` holds the database and the keys; ``cache_dir`` holds what
    set-up downloads (Pyodide, the meteva wheel). ``trusted_proxy_hops`` is
    how many ``X-Forwarded-For`` hops the operator's own proxies add, and
    ``trusted_proxies`` the networks those proxies connect from; with 0 hops
    the client address is always the socket peer.
    """

    data_dir: Path
    cache_dir: Path
    public_url: str
    session_ttl_s: int = 600
    token_ttl_s: int = 300
    trusted_proxy_hops: int = 0
    trusted_proxies: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    max_handshake_bytes: int = 8192
    serve_browser_assets: bool = True
    clock_ms: Callable[[], int] = field(default=wall_clock_ms)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "xinfeng.db"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"
