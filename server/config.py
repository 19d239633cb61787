"""Server configuration: one frozen object built by the CLI or a test."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


def wall_clock_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


# How much each abuse signal adds to a license's suspicion score.
DEFAULT_SIGNAL_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("rate_limited", 1.0),
    ("refusals_ignored", 5.0),
    ("throttle_ignored", 5.0),
    ("enumeration", 3.0),
    ("regular_timing", 3.0),
    ("token_networks", 3.0),
    ("session_networks", 3.0),
    ("token_sessions", 2.0),
    ("automation", 2.0),
    ("replay", 2.0),
    ("hidden", 1.0),
)


@dataclass(frozen=True)
class AbuseConfig:
    """Rate limits, abuse signals and the response ladder; docs/abuse.md.

    Rates are per minute and bursts in requests. The license's own bucket
    runs at its ``rate_per_minute`` with ``license_burst_s`` seconds of that
    rate as burst (at least ``min_burst``); its daily quota (UTC days) is
    ``rate_per_day`` and its concurrent-session cap ``max_sessions``. The
    other buckets: each session, each embed token (handshakes), each client
    network (IPv4 address, IPv6 /64) and token minting per license.

    Timing and enumeration look at the last ``window`` requests of a
    session or license, and only at requests less than
    ``pattern_max_gap_s`` apart (slower pulling is bounded by the daily
    quota instead). A session (for handshakes: an embed token) that gets
    ``ignored_refusals`` 429s within one ``strike_cooldown_s`` window keeps
    calling through them, which is a signal of its own. Each
    signal adds its weight to the license's suspicion score at most once
    per ``strike_cooldown_s`` for one subject; the score leaks
    ``forgive_per_minute``. At ``alert_at`` an alert goes out, at
    ``throttle_at`` the license gets 429s for ``throttle_s``, at
    ``freeze_at`` it is frozen for ``freeze_s``. Revocation is never
    automatic. Alerts are POSTed to ``webhook_url`` (http or https) when
    set, signed with HMAC-SM3 under ``webhook_secret`` when that is set.
    """

    license_burst_s: float = 10.0
    min_burst: int = 16
    session_per_minute: int = 120
    session_burst: int = 16
    token_per_minute: int = 30
    token_burst: int = 16
    network_per_minute: int = 600
    network_burst: int = 60
    mint_per_minute: int = 60
    mint_burst: int = 20
    window: int = 20
    regular_max_cv: float = 0.1
    pattern_max_gap_s: float = 5.0
    enumeration_steps: float = 20.0
    token_networks: int = 2
    token_extra_sessions: int = 3
    hidden_requests: int = 5
    replays: int = 2
    ignored_refusals: int = 30
    weights: tuple[tuple[str, float], ...] = DEFAULT_SIGNAL_WEIGHTS
    alert_at: float = 2.0
    throttle_at: float = 5.0
    freeze_at: float = 10.0
    forgive_per_minute: float = 1.0
    strike_cooldown_s: int = 60
    throttle_s: int = 60
    freeze_s: int = 3600
    webhook_url: str = ""
    webhook_secret: str = field(default="", repr=False)
    webhook_timeout_s: float = 5.0
    webhook_max_pending: int = 64
    sweep_interval_s: int = 60
    activity_ttl_s: int = 1800

    def __post_init__(self) -> None:
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("webhook_url must be an http(s) URL")
        if not 0 < self.alert_at <= self.throttle_at <= self.freeze_at:
            raise ValueError("need 0 < alert_at <= throttle_at <= freeze_at")
        if self.window < 3 or self.webhook_timeout_s <= 0:
            raise ValueError("window must be at least 3, timeouts positive")
        if self.ignored_refusals < 2 or self.strike_cooldown_s < 1:
            raise ValueError("ignored_refusals must be at least 2, and"
                             " strike_cooldown_s at least 1")

    def weight(self, signal: str) -> float:
        """The suspicion a signal adds; 0 for a signal not listed."""
        return dict(self.weights).get(signal, 0.0)


@dataclass(frozen=True)
class Config:
    """Everything the provider server needs to start.

    ``data_dir`` holds the database and the keys; ``cache_dir`` holds what
    set-up downloads (Pyodide, the meteva wheel). ``trusted_proxy_hops`` is
    how many ``X-Forwarded-For`` hops the operator's own proxies add, and
    ``trusted_proxies`` the networks those proxies connect from; with 0 hops
    the client address is always the socket peer. A session lives
    ``session_ttl_s`` after its handshake or last renewal, and never more
    than ``session_max_s`` after its handshake. ``abuse`` holds the rate
    limits and abuse thresholds (:class:`AbuseConfig`).
    """

    data_dir: Path
    cache_dir: Path
    public_url: str
    session_ttl_s: int = 600
    session_max_s: int = 12 * 3600
    token_ttl_s: int = 300
    trusted_proxy_hops: int = 0
    trusted_proxies: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    max_handshake_bytes: int = 8192
    serve_browser_assets: bool = True
    abuse: AbuseConfig = field(default_factory=AbuseConfig)
    clock_ms: Callable[[], int] = field(default=wall_clock_ms)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "xinfeng.db"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"
