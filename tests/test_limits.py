"""Rate limits, quotas and session slots on a real SQLite database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from xinfeng.sdk.errors import RateLimited, StorageUnavailable
from xinfeng.server.config import AbuseConfig
from xinfeng.server.limits import (
    DAY_MS,
    daily_quota,
    gcra,
    license_burst,
    network_of,
    wait_ms,
)
from xinfeng.server.limits_store import Bucket, LimitsStore
from xinfeng.server.storage import Storage

NOW = 1_717_000_000_000  # 2024-05-29T16:26:40Z, a fixed instant


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[LimitsStore]:
    storage = Storage(path)
    await storage.open()
    try:
        yield LimitsStore(storage)
    finally:
        await storage.close()


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


# -- GCRA ---------------------------------------------------------------------


def test_gcra_lets_the_burst_through_then_one_per_emission_interval(
    tmp_path: Path,
) -> None:
    bucket = gcra("session", "s1", per_minute=60, burst=5)

    async def scenario() -> list[bool]:
        async with opened(tmp_path / "db") as store:
            at_once = [await store.admit([bucket], "lic", NOW) for _ in range(6)]
            half = await store.admit([bucket], "lic", NOW + 999)
            full = await store.admit([bucket], "lic", NOW + 1000)
            return [*at_once, half, full]

    assert run(scenario()) == [True] * 5 + [False, False, True]


def test_gcra_retry_after_is_the_exact_wait(tmp_path: Path) -> None:
    bucket = gcra("session", "s1", per_minute=60, burst=2)

    async def scenario() -> tuple[int, int]:
        async with opened(tmp_path / "db") as store:
            for _ in range(2):
                assert await store.admit([bucket], "lic", NOW)
            values = await store.bucket_values([bucket])
            return wait_ms(bucket, values["session"], NOW), \
                wait_ms(bucket, values["session"], NOW + 400)

    assert run(scenario()) == (1000, 600)


def test_refused_request_takes_from_no_bucket(tmp_path: Path) -> None:
    roomy = gcra("license", "lic", per_minute=600, burst=100)
    empty = Bucket("quota", "lic:1", "count", 1, 0, NOW + DAY_MS)

    async def scenario() -> tuple[bool, dict[str, int]]:
        async with opened(tmp_path / "db") as store:
            admitted = await store.admit([roomy, empty], "lic", NOW)
            return admitted, await store.bucket_values([roomy, empty])

    assert run(scenario()) == (False, {})


def test_daily_quota_counts_to_rate_per_day_and_resets_at_utc_midnight(
    tmp_path: Path,
) -> None:
    midnight = (NOW // DAY_MS + 1) * DAY_MS

    async def scenario() -> list[bool]:
        async with opened(tmp_path / "db") as store:
            today = [await store.admit([daily_quota("lic", 3, NOW)], "lic", NOW)
                     for _ in range(4)]
            late = daily_quota("lic", 3, midnight - 1)
            tomorrow = daily_quota("lic", 3, midnight)
            return [*today, await store.admit([late], "lic", midnight - 1),
                    await store.admit([tomorrow], "lic", midnight)]

    assert run(scenario()) == [True, True, True, False, False, True]


def test_quota_wait_is_until_the_day_ends() -> None:
    bucket = daily_quota("lic", 3, NOW)
    assert wait_ms(bucket, 3, NOW) == bucket.expires_ms - NOW
    assert wait_ms(bucket, 2, NOW) == 0


def test_license_burst_is_seconds_of_its_rate_but_never_tiny() -> None:
    cfg = AbuseConfig(license_burst_s=10, min_burst=16)
    assert license_burst(cfg, 600) == 100
    assert license_burst(cfg, 6) == 16


# -- networks -------------------------------------------------------------------


@pytest.mark.parametrize(("address", "network"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("testclient", "unknown"),
])
def test_network_is_the_ipv4_address_or_the_ipv6_slash_64(
    address: str, network: str
) -> None:
    assert network_of(address) == network


# -- concurrent-session slots -------------------------------------------------------


def test_session_slots_cap_live_sessions_and_free_at_expiry(tmp_path: Path) -> None:
    async def scenario() -> list[bool]:
        async with opened(tmp_path / "db") as store:
            taken = [await store.take_slot(f"slot{i}", "lic", "jti", "n", NOW + 600,
                                           NOW, 2) for i in range(3)]
            later = await store.take_slot("slot9", "lic", "jti", "n", NOW + 1200,
                                          NOW + 600, 2)
            return [*taken, later]

    assert run(scenario()) == [True, True, False, True]


# -- atomicity ------------------------------------------------------------------------


def test_read_modify_write_race_on_quota_counter_loses_no_update(
    tmp_path: Path,
) -> None:
    """8 connections fire 25 requests each at once against a quota of 150.

    The read-then-write pattern loses updates here (stored count 25 for
    200 successes); the single-statement admit must count exactly.
    """
    path = tmp_path / "db"
    quota = Bucket("quota", "lic:1", "count", 1, 150, NOW + DAY_MS)
    burst = gcra("license", "lic", per_minute=60, burst=170)

    async def worker(store: LimitsStore) -> int:
        accepted = 0
        for _ in range(25):
            accepted += await store.admit([burst, quota], "lic", NOW)
            await asyncio.sleep(0)
        return accepted

    async def scenario() -> tuple[int, dict[str, int]]:
        async with opened(path) as first:
            stores = [first]
            for _ in range(7):
                storage = Storage(path)
                await storage.open()
                stores.append(LimitsStore(storage))
            try:
                counts = await asyncio.gather(*(worker(s) for s in stores))
            finally:
                for store in stores[1:]:
                    await store.storage.close()
            return sum(counts), await first.bucket_values([quota])

    accepted, stored = run(scenario())  # type: ignore[misc]
    assert (accepted, stored) == (150, {"quota": 150})


def test_concurrent_admits_on_one_connection_never_overshoot_a_burst(
    tmp_path: Path,
) -> None:
    bucket = gcra("session", "s1", per_minute=1, burst=30)

    async def scenario() -> int:
        async with opened(tmp_path / "db") as store:
            results = await asyncio.gather(*(store.admit([bucket], "lic", NOW)
                                             for _ in range(100)))
            return sum(results)

    assert run(scenario()) == 30


# -- failing closed ---------------------------------------------------------------


def test_limiter_storage_failure_is_storage_unavailable(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with opened(tmp_path / "db") as store:
            await store.storage.db.execute("DROP TABLE limit_buckets")
            await store.admit([gcra("session", "s", 60, 5)], "lic", NOW)

    with pytest.raises(StorageUnavailable):
        run(scenario())


def test_limiter_on_closed_storage_is_storage_unavailable(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = Storage(tmp_path / "db")
        await LimitsStore(storage).admit([gcra("session", "s", 60, 5)], "lic", NOW)

    with pytest.raises(StorageUnavailable):
        run(scenario())


def test_rate_limited_never_waits_less_than_a_second() -> None:
    assert RateLimited(0).retry_after == 1
    assert RateLimited(7).retry_after == 7
