"""Scrapers and users against the real app: who gets stopped, and when.

Every scenario runs on a real SQLite database through the real routes, on a
settable clock (nothing sleeps). The scrapers lift the handshake: they
speak the protocol from Python with ``ClientHandshake`` and
``ClientSession``, as someone who copied the component's code would. The
numbers they reach are printed (``pytest -s``) and recorded in
docs/abuse.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from xinfeng.sdk import envelope
from xinfeng.sdk.sm2 import SM2PublicKey
from xinfeng.server.abuse import STEPS, Guard
from xinfeng.server.config import AbuseConfig
from xinfeng.server.serving import uvicorn_config

from .conftest import HOST_ORIGIN, Provider, make_provider

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
LADDER_EVENTS = ("abuse_signal", "abuse_alert", "license_throttled",
                 "license_frozen")


# -- helpers shared with tests/test_abuse.py ------------------------------------


def use_abuse_config(p: Provider, **changes: Any) -> AbuseConfig:
    """Give the provider a guard with these abuse settings."""
    cfg = replace(AbuseConfig(), **changes)
    config = replace(p.state.config, abuse=cfg)
    p.state.guard = Guard(config, p.state.storage)
    return cfg


def environment(ua: str = UA, webdriver: bool = False,
                hidden: bool = False) -> dict[str, Any]:
    return {"origins": [HOST_ORIGIN], "ua": ua, "webdriver": webdriver,
            "build": "00" * 32, "hidden": hidden}


def mint(p: Provider, products: list[str] | None = None) -> Any:
    return p.client.post(
        "/v1/tokens",
        json={"products": products or ["test-product"], "origin": HOST_ORIGIN},
        headers={"Authorization": f"Bearer {p.credential}", "User-Agent": UA})


def handshake(p: Provider, token: str, env: dict[str, Any] | None = None,
              ua: str = UA) -> tuple[Any, envelope.ClientHandshake]:
    hs = envelope.ClientHandshake(token, env or environment())
    reply = p.client.post("/v1/handshake", content=hs.request(p.clock()),
                          headers={"Content-Type": "application/msgpack",
                                   "User-Agent": ua})
    return reply, hs


def lift_session(p: Provider, products: list[str] | None = None,
                 env: dict[str, Any] | None = None) -> envelope.ClientSession:
    """Mint a token and open a session the way the component does."""
    token = mint(p, products).json()["token"]
    reply, hs = handshake(p, token, env)
    assert reply.status_code == 200, reply.text
    return hs.finish(reply.content, SM2PublicKey.from_bytes(p.state.server_public_key))


def fetch(p: Provider, session: envelope.ClientSession,
          product: str = "test-product", query: str = "",
          headers: dict[str, str] | None = None) -> Any:
    path = f"/v1/data/{product}"
    auth = session.sign("GET", path, query, p.clock())
    url = path + (f"?{query}" if query else "")
    return p.client.get(url, headers={**auth.headers(), "User-Agent": UA,
                                      **(headers or {})})


def code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def run(p: Provider, coro: Any) -> Any:
    async def call() -> Any:
        return await coro
    return p.client.portal.call(call) if p.client.portal else asyncio.run(call())


def events(p: Provider, kind: str | None = None) -> list[dict[str, Any]]:
    return list(run(p, p.state.storage.events(kind)))


def ladder_events(p: Provider) -> list[dict[str, Any]]:
    return [e for e in events(p) if e["kind"] in LADDER_EVENTS]


# -- the legitimate user -----------------------------------------------------------


def test_legitimate_user_browsing_for_twenty_minutes_is_never_limited(
    tmp_path: Path,
) -> None:
    p = make_provider(tmp_path, products=("test-product", "other-product"),
                      rate_per_minute=120, rate_per_day=20000, max_sessions=20)
    rng = random.Random(20240607)
    served, start = 0, p.clock()
    with p.client:
        while p.clock() - start < 20 * 60_000:
            served += _one_page_visit(p, rng)
        assert ladder_events(p) == []
    print(f"\nlegitimate user: {served} requests over 20 simulated minutes,"
          " never limited, no signal")


def _one_page_visit(p: Provider, rng: random.Random) -> int:
    """A page load (two components) and a few minutes of clicking around:
    jumping to stations and pages, now and then paging on a few times."""
    sessions = {product: lift_session(p, [product])
                for product in ("test-product", "other-product")}
    served = 0
    for _ in range(rng.randint(8, 20)):
        product = rng.choice(list(sessions))
        station, page = rng.randint(59001, 59400), rng.randint(1, 30)
        for step in range(rng.choice([1, 1, 1, 2, 3, 5])):
            query = f"station={station}&page={page + step}"
            response = fetch(p, sessions[product], product, query)
            assert response.status_code == 200, response.text
            served += 1
            p.clock.advance(rng.uniform(0.8, 4.0))
        p.clock.advance(rng.uniform(1.5, 25.0))
    return served


def test_dashboard_refreshing_every_minute_for_two_hours_is_never_limited(
    tmp_path: Path,
) -> None:
    p = make_provider(tmp_path, products=("test-product", "other-product"),
                      rate_per_minute=120, rate_per_day=20000, max_sessions=20,
                      not_after=int(time.time()) + 4 * 3600)
    refreshes = 0
    with p.client:
        for _ in range(12):
            refreshes += _ten_minutes_of_dashboard(p, refreshes)
        assert ladder_events(p) == []
    print(f"\ndashboard: {refreshes * 2} requests over 2 simulated hours"
          " (time parameter advancing), never limited, no signal")


def _ten_minutes_of_dashboard(p: Provider, done: int) -> int:
    """Both products re-fetched every 60 s for the latest hour; sessions
    renewed every 10 minutes with a fresh token."""
    sessions = {product: lift_session(p, [product])
                for product in ("test-product", "other-product")}
    for minute in range(9):
        hour = f"2024-06-01T{(done + minute) // 60:02d}:{(done + minute) % 60:02d}"
        for product, session in sessions.items():
            response = fetch(p, session, product, f"time={hour}")
            assert response.status_code == 200, response.text
        p.clock.advance(60)
    p.clock.advance(60)
    return 9


# -- scrapers ----------------------------------------------------------------------


@dataclass
class Tally:
    """What a scraper got before it was stopped."""

    served: int = 0
    sent: int = 0
    first_refusal: int | None = None
    frozen_after_s: float | None = None

    def line(self, name: str) -> str:
        return (f"{name}: {self.served} served of {self.sent} sent; first 429 at "
                f"request {self.first_refusal}; frozen after "
                f"{self.frozen_after_s} simulated s")


def scrape(p: Provider, gap_s: float, honour_retry_after: bool,
           limit_s: float = 1800.0) -> Tally:
    """Walk ``page=1, 2, 3...`` with one lifted session until frozen."""
    session, tally, start = lift_session(p), Tally(), p.clock()
    while p.clock() - start < limit_s * 1000:
        response = fetch(p, session, query=f"page={tally.sent + 1}")
        tally.sent += 1
        if response.status_code == 200:
            tally.served += 1
        elif code(response) == "license_frozen":
            tally.frozen_after_s = (p.clock() - start) / 1000
            return tally
        else:
            assert response.status_code == 429, response.text
            tally.first_refusal = tally.first_refusal or tally.sent
            if honour_retry_after:
                p.clock.advance(int(response.headers["retry-after"]))
        p.clock.advance(gap_s)
    return tally


def scraper_provider(tmp_path: Path) -> Provider:
    return make_provider(tmp_path, rate_per_minute=120, rate_per_day=20000,
                         max_sessions=20)


def test_scraper_hammering_as_fast_as_it_can_is_throttled_then_frozen(
    tmp_path: Path,
) -> None:
    p = scraper_provider(tmp_path)
    with p.client:
        tally = scrape(p, gap_s=0.05, honour_retry_after=False)
        ladder = ladder_events(p)
        refused = mint(p)
    kinds = [e["kind"] for e in ladder]
    print("\n" + tally.line("hammering scraper (20 req/s, ignores 429)"))
    assert tally.first_refusal is not None and tally.frozen_after_s is not None
    assert tally.served < 40
    assert kinds[0] == "abuse_signal"
    assert kinds.index("license_throttled") < kinds.index("license_frozen")
    levels = [e["outcome"] for e in ladder if e["kind"] == "abuse_alert"]
    assert levels == sorted(levels, key=STEPS.index)
    assert {"throttle", "freeze"} <= set(levels)
    assert (refused.status_code, code(refused)) == (403, "license_frozen")


def test_scraper_honouring_retry_after_is_frozen(tmp_path: Path) -> None:
    p = scraper_provider(tmp_path)
    with p.client:
        tally = scrape(p, gap_s=0.02, honour_retry_after=True)
    print("\n" + tally.line("polite scraper (honours Retry-After)"))
    assert tally.frozen_after_s is not None
    assert tally.served < 400


def test_scraper_pacing_itself_under_the_rate_is_frozen(tmp_path: Path) -> None:
    p = scraper_provider(tmp_path)
    with p.client:
        tally = scrape(p, gap_s=0.6, honour_retry_after=True)
    print("\n" + tally.line("paced scraper (100 req/min, under every rate)"))
    assert tally.frozen_after_s is not None
    assert tally.served < 100


def test_scraper_rotating_sessions_is_frozen(tmp_path: Path) -> None:
    p = scraper_provider(tmp_path)
    tally, start = Tally(), None
    with p.client:
        start = p.clock()
        while tally.frozen_after_s is None and tally.sent < 5000:
            _rotate_once(p, tally, start)
    print("\n" + tally.line("rotating scraper (new token+session every 10)"))
    assert tally.frozen_after_s is not None
    assert tally.served < 200


def _rotate_once(p: Provider, tally: Tally, start: int) -> None:
    token = mint(p)
    if token.status_code != 200:
        _note_refusal(p, tally, token, start)
        return
    reply, hs = handshake(p, token.json()["token"])
    if reply.status_code != 200:
        _note_refusal(p, tally, reply, start)
        return
    server_key = SM2PublicKey.from_bytes(p.state.server_public_key)
    session = hs.finish(reply.content, server_key)
    for _ in range(10):
        response = fetch(p, session, query=f"page={tally.sent + 1}")
        tally.sent += 1
        if response.status_code != 200:
            _note_refusal(p, tally, response, start)
            return
        tally.served += 1
        p.clock.advance(0.3)


def _note_refusal(p: Provider, tally: Tally, response: Any, start: int) -> None:
    if code(response) == "license_frozen":
        tally.frozen_after_s = (p.clock() - start) / 1000
        return
    assert response.status_code == 429, response.text
    tally.first_refusal = tally.first_refusal or tally.sent
    p.clock.advance(int(response.headers["retry-after"]))


# -- quotas and refusals ---------------------------------------------------------


def test_refused_requests_take_nothing_from_the_daily_quota(tmp_path: Path) -> None:
    p = make_provider(tmp_path, rate_per_day=5)
    with p.client:
        use_abuse_config(p, session_burst=1, session_per_minute=60,
                         alert_at=1000, throttle_at=1000, freeze_at=1000)
        session = lift_session(p)
        served = 0
        for _ in range(5):
            served += _one_good_request_among_refused_ones(p, session)
            p.clock.advance(2)
        over = fetch(p, session)
        quota = run(p, p.state.guard.store.bucket_values([_quota_bucket(p, 5)]))
    assert served == 5
    assert (over.status_code, code(over)) == (429, "rate_limited")
    assert quota == {"quota": 5}


def _quota_bucket(p: Provider, per_day: int) -> Any:
    from xinfeng.server.limits import daily_quota

    return daily_quota(p.license_id, per_day, p.clock())


def _one_good_request_among_refused_ones(
    p: Provider, session: envelope.ClientSession
) -> int:
    """One request served; a bad MAC, a replay, an unlicensed product, a
    suspended license and three throttled requests refused around it."""
    path = "/v1/data/test-product"
    auth = session.sign("GET", path, "", p.clock())
    bad_mac = {**auth.headers(), "X-Xf-Mac": "00" * 32, "User-Agent": UA}
    assert p.client.get(path, headers=bad_mac).status_code == 401
    good = p.client.get(path, headers={**auth.headers(), "User-Agent": UA})
    assert good.status_code == 200, good.text
    replay = p.client.get(path, headers={**auth.headers(), "User-Agent": UA})
    assert code(replay) == "replay"
    _set_status(p, "suspended")
    assert code(fetch(p, session)) == "license_suspended"
    _set_status(p, "active")
    assert code(fetch(p, session, product="other-product")) == "product_denied"
    throttled = [fetch(p, session) for _ in range(3)]
    assert {code(r) for r in throttled} == {"rate_limited"}
    return 1


def _set_status(p: Provider, status: str) -> None:
    run(p, p.state.storage.set_license_status(p.license_id, status, "test"))


# -- a real server on loopback: networks and concurrency ---------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(p: Provider) -> Iterator[str]:
    """Run the provider's app in uvicorn on 127.0.0.1 for the block."""
    port = _free_port()
    server = uvicorn.Server(uvicorn_config(p.app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server down"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def from_address(base_url: str, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base_url, transport=transport, timeout=10,
                        headers={"User-Agent": UA})


def _mint_over(client: httpx.Client, p: Provider) -> str:
    reply = client.post("/v1/tokens", json={"products": ["test-product"],
                                            "origin": HOST_ORIGIN},
                        headers={"Authorization": f"Bearer {p.credential}"})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["token"])


def _handshake_over(client: httpx.Client, p: Provider, token: str) -> Any:
    hs = envelope.ClientHandshake(token, environment())
    reply = client.post("/v1/handshake", content=hs.request(p.clock()),
                        headers={"Content-Type": "application/msgpack"})
    return reply, hs


def test_one_token_from_two_networks_is_flagged(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with serving(p) as base, from_address(base, "127.0.0.2") as first, \
            from_address(base, "127.0.0.3") as second:
        token = _mint_over(first, p)
        one, _ = _handshake_over(first, p, token)
        two, _ = _handshake_over(second, p, token)
        alerts = _alerts_over_http(p, base)
    assert (one.status_code, two.status_code) == (200, 200)
    flagged = [a for a in alerts if "token_networks" in a["detail"]["signals"]]
    assert flagged and flagged[0]["license_id"] == p.license_id
    print(f"\ntoken on 127.0.0.2 and 127.0.0.3: alert {flagged[0]['level']}")


def test_one_session_from_two_networks_is_flagged(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with serving(p) as base, from_address(base, "127.0.0.2") as first, \
            from_address(base, "127.0.0.3") as second:
        reply, hs = _handshake_over(first, p, _mint_over(first, p))
        session = hs.finish(reply.content,
                            SM2PublicKey.from_bytes(p.state.server_public_key))
        served = [_get_over(client, p, session).status_code
                  for client in (first, second)]
        alerts = _alerts_over_http(p, base)
    assert served == [200, 200]
    assert any("session_networks" in a["detail"]["signals"] for a in alerts)


def _get_over(client: httpx.Client, p: Provider,
              session: envelope.ClientSession) -> httpx.Response:
    auth = session.sign("GET", "/v1/data/test-product", "", p.clock())
    return client.get("/v1/data/test-product", headers=auth.headers())


def _alerts_over_http(p: Provider, base: str) -> list[dict[str, Any]]:
    """The alert list, read on a second connection to the server's database."""
    return list(asyncio.run(_read_alerts(p)))


async def _read_alerts(p: Provider) -> list[dict[str, Any]]:
    from xinfeng.server.limits_store import LimitsStore
    from xinfeng.server.storage import Storage

    storage = Storage(p.state.storage.path)
    await storage.open()
    try:
        return await LimitsStore(storage).alerts(0, 100)
    finally:
        await storage.close()


def test_concurrent_requests_never_overshoot_the_quota(tmp_path: Path) -> None:
    p = make_provider(tmp_path, rate_per_day=40)
    use_abuse_config(p, token_burst=100, network_burst=500, alert_at=1000,
                     throttle_at=1000, freeze_at=1000)
    with serving(p) as base, from_address(base, "127.0.0.2") as client:
        token = _mint_over(client, p)
        sessions = [_open_over(client, p, token) for _ in range(60)]
        statuses = asyncio.run(_fire(base, p, sessions))
        quota = asyncio.run(_read_quota(p))
    accepted = statuses.count(200)
    print(f"\n60 concurrent data requests, quota 40: {accepted} served, "
          f"{statuses.count(429)} refused, stored count {quota}")
    assert (accepted, statuses.count(429), quota) == (40, 20, 40)


def _open_over(client: httpx.Client, p: Provider,
               token: str) -> envelope.ClientSession:
    reply, hs = _handshake_over(client, p, token)
    assert reply.status_code == 200, reply.text
    return hs.finish(reply.content, SM2PublicKey.from_bytes(p.state.server_public_key))


async def _fire(base: str, p: Provider,
                sessions: list[envelope.ClientSession]) -> list[int]:
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    limits = httpx.Limits(max_connections=30)
    async with httpx.AsyncClient(base_url=base, transport=transport, timeout=20,
                                 limits=limits) as client:
        auths = [s.sign("GET", "/v1/data/test-product", "", p.clock())
                 for s in sessions]
        replies = await asyncio.gather(*(
            client.get("/v1/data/test-product", headers=a.headers())
            for a in auths))
    return [r.status_code for r in replies]


async def _read_quota(p: Provider) -> int:
    from xinfeng.server.limits import daily_quota
    from xinfeng.server.limits_store import LimitsStore
    from xinfeng.server.storage import Storage

    storage = Storage(p.state.storage.path)
    await storage.open()
    try:
        values = await LimitsStore(storage).bucket_values(
            [daily_quota(p.license_id, 40, p.clock())])
    finally:
        await storage.close()
    return values.get("quota", 0)


@pytest.mark.parametrize("forwarded", ["6.6.6.6", "garbage", "1.1.1.1, 2.2.2.2"])
def test_forwarded_for_from_direct_client_does_not_change_its_network(
    tmp_path: Path, forwarded: str
) -> None:
    p = make_provider(tmp_path)
    with p.client, serving(p) as url:
        response = httpx.post(
            f"{url}/v1/tokens",
            json={"products": ["test-product"], "origin": HOST_ORIGIN},
            headers={"Authorization": f"Bearer {p.credential}",
                     "X-Forwarded-For": forwarded})
        minted = events(p, "token_minted")
    assert response.status_code == 200
    assert minted[-1]["detail"]["ip"] == "127.0.0.1"
