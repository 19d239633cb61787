"""Rate limits, daily quotas and concurrent-session caps.

Request rates use GCRA (the generic cell rate algorithm): each bucket keeps
one number, the theoretical arrival time (TAT) of its next request. A
bucket of ``rate`` per minute has the emission interval ``T = 60 s / rate``
and lets ``burst`` requests through at once: a request at ``now`` passes
when ``max(TAT, now) + T - now <= burst * T`` and then moves TAT to
``max(TAT, now) + T``. Refused requests leave TAT alone, so they cost the
client nothing, and the wait until the next pass is exact (Retry-After).

A request passes every bucket that applies to it or none: per license (the
license's own ``rate_per_minute``), per session, per client network (an
IPv4 address or an IPv6 /64) and the license's daily quota
(``rate_per_day``, UTC days) for data; per embed token and per network for
handshakes, which also take one of the license's ``max_sessions`` slots;
per license and per network for minting embed tokens.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
from collections.abc import Sequence

from xinfeng.license.model import License
from xinfeng.sdk.errors import RateLimited

from .config import AbuseConfig
from .limits_store import Bucket, LimitsStore

DAY_MS = 86_400_000
MINUTE_US = 60_000_000


def network_of(ip: str) -> str:
    """The client network a rate limit counts: IPv4 address or IPv6 /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def gcra(scope: str, key: str, per_minute: int, burst: int) -> Bucket:
    """A GCRA bucket of ``per_minute`` requests with ``burst`` at once."""
    step = max(1, MINUTE_US // max(1, per_minute))
    return Bucket(scope, key, "gcra", step, step * max(1, burst))


def daily_quota(license_id: str, per_day: int, now_ms: int) -> Bucket:
    """The license's count of data requests for the current UTC day."""
    day = now_ms // DAY_MS
    return Bucket("quota", f"{license_id}:{day}", "count", 1, per_day,
                  (day + 1) * DAY_MS)


def license_burst(cfg: AbuseConfig, per_minute: int) -> int:
    """The license bucket's burst: some seconds of its rate, never tiny."""
    return max(cfg.min_burst, math.ceil(per_minute * cfg.license_burst_s / 60))


def wait_ms(bucket: Bucket, value: int | None, now_ms: int) -> int:
    """How long until ``bucket`` (holding ``value``) lets a request through."""
    if value is None:
        return 0
    if bucket.kind == "count":
        return bucket.expires_ms - now_ms if value + bucket.step > bucket.cap else 0
    now_us = now_ms * 1000
    return max(0, -(-(value + bucket.step - bucket.cap - now_us) // 1000))


class Limiter:
    """Builds the buckets of each kind of request and takes from them."""

    def __init__(self, cfg: AbuseConfig, store: LimitsStore) -> None:
        self.cfg = cfg
        self.store = store

    def data_buckets(
        self, lic: License, session_key: str, net: str, now_ms: int
    ) -> list[Bucket]:
        """The buckets one data request takes from."""
        cfg = self.cfg
        return [
            gcra("license", lic.license_id, lic.rate_per_minute,
                 license_burst(cfg, lic.rate_per_minute)),
            gcra("session", session_key, cfg.session_per_minute, cfg.session_burst),
            gcra("network", net, cfg.network_per_minute, cfg.network_burst),
            daily_quota(lic.license_id, lic.rate_per_day, now_ms),
        ]

    def handshake_buckets(self, jti: str, net: str) -> list[Bucket]:
        """The buckets one handshake takes from."""
        cfg = self.cfg
        return [
            gcra("token", jti, cfg.token_per_minute, cfg.token_burst),
            gcra("network", net, cfg.network_per_minute, cfg.network_burst),
        ]

    def renewal_buckets(self, session_key: str, net: str) -> list[Bucket]:
        """The buckets renewing one session takes from."""
        cfg = self.cfg
        return [
            gcra("session", session_key, cfg.session_per_minute, cfg.session_burst),
            gcra("network", net, cfg.network_per_minute, cfg.network_burst),
        ]

    def mint_buckets(self, license_id: str, net: str) -> list[Bucket]:
        """The buckets minting one embed token takes from."""
        cfg = self.cfg
        return [
            gcra("mint", license_id, cfg.mint_per_minute, cfg.mint_burst),
            gcra("network", net, cfg.network_per_minute, cfg.network_burst),
        ]

    async def denial(
        self, buckets: Sequence[Bucket], now_ms: int
    ) -> tuple[list[Bucket], int]:
        """The buckets that refused a request and the seconds to wait."""
        values = await self.store.bucket_values(buckets)
        waits = [(b, wait_ms(b, values.get(b.scope), now_ms)) for b in buckets]
        denied = [(b, w) for b, w in waits if w > 0]
        longest = max((w for _, w in denied), default=1000)
        return [b for b, _ in denied], -(-longest // 1000)

    async def open_slot(
        self, lic: License, jti: str, net: str, now_ms: int, ttl_ms: int,
        slot_id: str = "",
    ) -> str:
        """Take one of the license's concurrent-session slots; its id
        (``slot_id``, or a random one).

        Raises:
            RateLimited: the license has ``max_sessions`` live sessions.
        """
        slot_id = slot_id or secrets.token_hex(8)
        if await self.store.take_slot(slot_id, lic.license_id, jti, net,
                                      now_ms + ttl_ms, now_ms, lic.max_sessions):
            return slot_id
        first = await self.store.first_slot_expiry(lic.license_id, now_ms)
        raise RateLimited(-(-(first - now_ms) // 1000))


__all__ = ["Limiter", "daily_quota", "gcra", "license_burst", "network_of",
           "wait_ms"]
