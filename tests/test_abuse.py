"""Abuse signals, the response ladder and alerts, through the real app."""

from __future__ import annotations

import contextlib
import http.server
import json
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xinfeng.license.model import format_time
from xinfeng.sdk.envelope import HIDDEN_HEADER
from xinfeng.sdk.sm3 import hmac_sm3
from xinfeng.server.admin_tokens import AdminTokens
from xinfeng.server.config import AbuseConfig
from xinfeng.server.keys import KeyDir
from xinfeng.server.licensing import LicenseFilter, Licensor
from xinfeng.server.limits_store import frozen_until
from xinfeng.server.signals import automation_markers, ordinal, timing_cv, walk_steps

from .conftest import Provider, make_provider
from .test_scraper_api import (
    UA,
    code,
    environment,
    events,
    fetch,
    handshake,
    lift_session,
    mint,
    run,
    use_abuse_config,
)

QUIET = {"alert_at": 1000.0, "throttle_at": 1000.0, "freeze_at": 1000.0}


@pytest.fixture
def p(tmp_path: Path) -> Iterator[Provider]:
    provider = make_provider(tmp_path, rate_per_minute=600, max_sessions=50)
    with provider.client:
        yield provider


def signals(p: Provider) -> list[str]:
    return [e["outcome"] for e in events(p, "abuse_signal")]


def irregular(p: Provider, rng: random.Random) -> None:
    p.clock.advance(rng.uniform(0.2, 4.0))


# -- pure signal functions ---------------------------------------------------------


@pytest.mark.parametrize(("text", "position"), [
    ("59287", 59287.0),
    ("-12.5", -12.5),
    ("2024-03-01", 1709251200.0),
    ("2024-03-01T08:00:00+08:00", 1709251200.0),
    ("G1234", 1234.0),
    ("gd-stations", None),
    ("", None),
    ("1" * 80, None),
])
def test_ordinal_reads_numbers_dates_and_numbered_ids(
    text: str, position: float | None
) -> None:
    assert ordinal(text) == position


def test_walk_steps_split_tiles_and_keep_at_most_four() -> None:
    assert walk_steps([("tile", "7/101/54"), ("layer", "radar")]) == [
        ("tile.0", 7.0), ("tile.1", 101.0), ("tile.2", 54.0)]
    many = walk_steps([(f"p{i}", str(i)) for i in range(10)])
    assert [name for name, _ in many] == ["p0.0", "p1.0", "p2.0", "p3.0"]


def test_timing_cv_is_low_for_a_metronome_and_high_for_a_person() -> None:
    rng = random.Random(7)
    metronome = [i * 500 for i in range(21)]
    person, t = [], 0
    for _ in range(21):
        t += int(rng.uniform(300, 4000))
        person.append(t)
    assert timing_cv(metronome, 20, 5000) == 0.0
    cv = timing_cv(person, 20, 5000)
    assert cv is not None and cv > 0.3


def test_timing_cv_ignores_short_histories_slow_and_simultaneous_requests() -> None:
    assert timing_cv([i * 500 for i in range(20)], 20, 5000) is None
    assert timing_cv([i * 60_000 for i in range(21)], 20, 5000) is None
    assert timing_cv([1000] * 21, 20, 5000) is None


def test_automation_markers_name_webdriver_headless_and_a_borrowed_ua() -> None:
    headless = UA.replace("Chrome/", "HeadlessChrome/")
    assert automation_markers(environment(), UA) == []
    assert automation_markers(environment(webdriver=True), UA) == ["webdriver"]
    assert automation_markers(environment(ua=headless), headless) == ["headless_ua"]
    assert automation_markers(environment(), "python-httpx/0.27") == ["ua_mismatch"]


# -- each signal through the routes ---------------------------------------------------


def test_walking_station_ids_in_order_is_enumeration(p: Provider) -> None:
    rng, session = random.Random(1), lift_session(p)
    stations = sorted(rng.sample(range(59001, 59999), 25))
    for station in stations:
        assert fetch(p, session, query=f"station={station}").status_code == 200
        irregular(p, rng)
    assert "enumeration" in signals(p)
    assert "regular_timing" not in signals(p)


def test_walking_a_time_range_day_by_day_is_enumeration(p: Provider) -> None:
    rng, session = random.Random(2), lift_session(p)
    for day in range(1, 26):
        query = f"start=2024-01-{day:02d}&end=2024-01-{day:02d}T23:59:59"
        assert fetch(p, session, query=query).status_code == 200
        irregular(p, rng)
    assert "enumeration" in signals(p)


def test_walking_tiles_row_by_row_is_enumeration(p: Provider) -> None:
    rng, session = random.Random(3), lift_session(p)
    tiles = [(x, y) for y in range(3) for x in range(16)]
    for x, y in tiles:
        assert fetch(p, session, query=f"tile=7/{x}/{y}").status_code == 200
        irregular(p, rng)
    assert "enumeration" in signals(p)


def test_paging_back_and_forth_is_not_enumeration(p: Provider) -> None:
    rng, session = random.Random(4), lift_session(p)
    for _ in range(60):
        page = rng.randint(1, 40)
        assert fetch(p, session, query=f"page={page}").status_code == 200
        irregular(p, rng)
    assert signals(p) == []


def test_machine_regular_timing_is_observed(p: Provider) -> None:
    rng, session = random.Random(5), lift_session(p)
    for _ in range(21):
        page = rng.randint(1, 500)
        assert fetch(p, session, query=f"page={page}").status_code == 200
        p.clock.advance(1.0)
    assert signals(p) == ["regular_timing", "regular_timing"]
    subjects = {e["detail"]["subject"][:2] for e in events(p, "abuse_signal")}
    assert subjects == {"s:", "l:"}


def test_many_sessions_from_one_token_are_observed(p: Provider) -> None:
    token = mint(p).json()["token"]
    replies = [handshake(p, token)[0].status_code for _ in range(5)]
    assert replies == [200] * 5
    assert signals(p) == ["token_sessions"]


@pytest.mark.parametrize(("env", "ua", "markers"), [
    (environment(webdriver=True), UA, ["webdriver"]),
    (environment(ua="Mozilla/5.0 HeadlessChrome/126.0"),
     "Mozilla/5.0 HeadlessChrome/126.0", ["headless_ua"]),
    (environment(), "python-httpx/0.27.0", ["ua_mismatch"]),
])
def test_automation_markers_in_the_handshake_are_observed(
    p: Provider, env: dict[str, Any], ua: str, markers: list[str]
) -> None:
    reply, _ = handshake(p, mint(p).json()["token"], env, ua=ua)
    assert reply.status_code == 200
    observed = events(p, "abuse_signal")
    assert [(e["outcome"], e["detail"]["markers"]) for e in observed] == [
        ("automation", markers)]


def test_replayed_counters_are_observed(p: Provider) -> None:
    session = lift_session(p)
    auth = session.sign("GET", "/v1/data/test-product", "", p.clock())
    headers = {**auth.headers(), "User-Agent": UA}
    codes = [p.client.get("/v1/data/test-product", headers=headers).status_code
             for _ in range(3)]
    assert codes == [200, 401, 401]
    assert signals(p) == ["replay"]
    assert events(p, "abuse_signal")[0]["license_id"] == p.license_id


def test_hidden_container_at_handshake_is_observed(p: Provider) -> None:
    lift_session(p, env=environment(hidden=True))
    assert signals(p) == ["hidden"]


def test_data_requests_while_hidden_are_observed(p: Provider) -> None:
    rng, session = random.Random(6), lift_session(p)
    for _ in range(5):
        response = fetch(p, session, query=f"page={rng.randint(1, 99)}",
                         headers={HIDDEN_HEADER: "1"})
        assert response.status_code == 200
        irregular(p, rng)
    assert signals(p) == ["hidden"]


# -- limits through the routes --------------------------------------------------


def test_live_sessions_are_capped_at_max_sessions(tmp_path: Path) -> None:
    p = make_provider(tmp_path, max_sessions=2)
    with p.client:
        use_abuse_config(p, **QUIET)
        opened = [handshake(p, mint(p).json()["token"])[0] for _ in range(3)]
        p.clock.advance(601)
        after_expiry = handshake(p, mint(p).json()["token"])[0]
    assert [r.status_code for r in opened] == [200, 200, 429]
    assert int(opened[2].headers["retry-after"]) == 600
    assert after_expiry.status_code == 200


def test_handshakes_per_token_are_rate_limited_without_taking_a_slot(
    tmp_path: Path,
) -> None:
    p = make_provider(tmp_path, max_sessions=3)
    with p.client:
        use_abuse_config(p, token_burst=2, token_per_minute=2, **QUIET)
        token = mint(p).json()["token"]
        same = [handshake(p, token)[0] for _ in range(3)]
        fresh = handshake(p, mint(p).json()["token"])[0]
    assert [r.status_code for r in same] == [200, 200, 429]
    assert int(same[2].headers["retry-after"]) == 30
    assert fresh.status_code == 200


def test_token_minting_is_rate_limited_per_license(p: Provider) -> None:
    use_abuse_config(p, mint_burst=2, mint_per_minute=6, **QUIET)
    replies = [mint(p) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[2].headers["retry-after"] == "10"


def test_a_client_network_is_rate_limited_across_sessions(p: Provider) -> None:
    use_abuse_config(p, network_burst=8, network_per_minute=60, **QUIET)
    sessions = [lift_session(p), lift_session(p)]
    replies = [fetch(p, sessions[i % 2]) for i in range(5)]
    assert [r.status_code for r in replies] == [200] * 4 + [429]
    assert replies[4].headers["retry-after"] == "1"
    refused = events(p, "abuse_signal")[-1]
    assert (refused["outcome"], refused["detail"]["subject"]) == (
        "rate_limited", "n:0.0.0.0")


def test_rotating_forged_forwarded_for_shares_one_network_bucket(
    p: Provider,
) -> None:
    use_abuse_config(p, network_burst=8, network_per_minute=60, **QUIET)
    sessions = [lift_session(p), lift_session(p)]
    replies = [fetch(p, sessions[i % 2],
                     headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
               for i in range(5)]
    assert [r.status_code for r in replies] == [200] * 4 + [429]


def test_the_license_rate_is_the_licenses_own(tmp_path: Path) -> None:
    p = make_provider(tmp_path, rate_per_minute=30)
    with p.client:
        use_abuse_config(p, min_burst=3, license_burst_s=1, **QUIET)
        sessions = [lift_session(p) for _ in range(4)]
        replies = [fetch(p, s) for s in sessions]
        p.clock.advance(2)
        again = fetch(p, sessions[3])
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert replies[3].headers["retry-after"] == "2"
    assert again.status_code == 200


# -- the ladder ------------------------------------------------------------------------


def replay_twice(p: Provider) -> None:
    """One replay signal from a fresh session."""
    session = lift_session(p)
    auth = session.sign("GET", "/v1/data/test-product", "", p.clock())
    headers = {**auth.headers(), "User-Agent": UA}
    for _ in range(3):
        p.client.get("/v1/data/test-product", headers=headers)


def test_ladder_climbs_from_observe_to_freeze_and_thaws(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with p.client:
        use_abuse_config(p, alert_at=2, throttle_at=4, freeze_at=5.5, throttle_s=60,
                         freeze_s=600, forgive_per_minute=0.1)
        session, token = lift_session(p), mint(p).json()["token"]
        replay_twice(p)
        steps = [_step(p)]
        replay_twice(p)
        steps.append(_step(p))
        throttled = [fetch(p, session), fetch(p, session)]
        p.clock.advance(61)
        replay_twice(p)
        steps.append(_step(p))
        frozen = [mint(p), handshake(p, token)[0], fetch(p, session)]
        p.clock.advance(600)
        thawed = fetch(p, lift_session(p))
        status = run(p, p.state.storage.get_license(p.license_id)).status
    assert steps == ["alert", "throttle", "freeze"]
    assert [(r.status_code, code(r)) for r in throttled] == [
        (429, "rate_limited")] * 2
    assert throttled[0].headers["retry-after"] == "60"
    assert [(r.status_code, code(r)) for r in frozen] == [
        (403, "license_frozen")] * 3
    assert thawed.status_code == 200
    assert status == "active"


def _step(p: Provider) -> str:
    alerts = events(p, "abuse_alert")
    return str(alerts[-1]["outcome"]) if alerts else "observe"


def test_every_ladder_step_is_in_the_audit_log_in_order(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with p.client:
        use_abuse_config(p, alert_at=2, throttle_at=4, freeze_at=5.5,
                         ignored_refusals=2)
        session = lift_session(p)
        for _ in range(2):
            replay_twice(p)
        p.clock.advance(1)
        fetch(p, session)
        fetch(p, session)
        kinds = [(e["kind"], e["outcome"]) for e in events(p)
                 if e["kind"].startswith(("abuse_", "license_t", "license_f"))]
    assert kinds == [
        ("abuse_signal", "replay"), ("abuse_alert", "alert"),
        ("abuse_signal", "replay"), ("license_throttled", "ok"),
        ("abuse_alert", "throttle"),
        ("abuse_signal", "throttle_ignored"), ("license_frozen", "ok"),
        ("abuse_alert", "freeze"),
    ]


def _ladder_kinds(p: Provider) -> list[tuple[str, str]]:
    return [(e["kind"], e["outcome"]) for e in events(p)
            if e["kind"] in ("abuse_signal", "license_throttled", "license_frozen")]


def test_a_session_calling_through_its_429s_is_throttled_then_frozen(
    tmp_path: Path,
) -> None:
    p = make_provider(tmp_path)
    with p.client:
        use_abuse_config(p, session_burst=1, session_per_minute=60,
                         ignored_refusals=5)
        session = lift_session(p)
        codes = [code(r) if r.status_code != 200 else "ok"
                 for r in (fetch(p, session) for _ in range(11))]
        kinds = _ladder_kinds(p)
        detail = events(p, "abuse_signal")[1]["detail"]
    # Served once; refused by the session bucket 5 times (the 5th raises
    # refusals_ignored: 1 + 5 >= throttle_at); refused by the throttle 5
    # times (the 5th raises throttle_ignored: 11 >= freeze_at).
    assert codes == ["ok"] + ["rate_limited"] * 9 + ["license_frozen"]
    assert kinds == [
        ("abuse_signal", "rate_limited"), ("abuse_signal", "refusals_ignored"),
        ("license_throttled", "ok"), ("abuse_signal", "throttle_ignored"),
        ("license_frozen", "ok"),
    ]
    assert detail["refused"] == 5 and detail["subject"].startswith("s:")


def test_a_few_requests_during_a_throttle_are_not_a_signal(p: Provider) -> None:
    use_abuse_config(p, ignored_refusals=5)
    session = lift_session(p)
    _hold(p, "throttle", seconds=90)
    codes = {code(fetch(p, session)) for _ in range(4)}
    assert codes == {"rate_limited"}
    assert signals(p) == []
    assert run(p, frozen_until(p.state.storage, p.clock())) == {}


def test_429s_are_counted_afresh_in_each_strike_window(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with p.client:
        use_abuse_config(p, session_burst=1, session_per_minute=1,
                         ignored_refusals=5, strike_cooldown_s=60)
        session = lift_session(p)
        p.clock.advance(60 - (p.clock() // 1000) % 60 - 10)
        for _ in range(5):
            fetch(p, session)  # served, then 4 refused in this window
        p.clock.advance(20)
        for _ in range(4):
            fetch(p, session)  # 4 refused in the next window
        assert "refusals_ignored" not in signals(p)
        fetch(p, session)
        assert signals(p).count("refusals_ignored") == 1


def test_a_backend_minting_past_its_rate_for_many_users_is_never_held(
    p: Provider,
) -> None:
    use_abuse_config(p, mint_burst=2, mint_per_minute=60, ignored_refusals=3)
    codes = [mint(p).status_code for _ in range(40)]
    assert codes.count(200) == 2 and codes.count(429) == 38
    assert "refusals_ignored" not in signals(p)
    assert [e for e in events(p) if e["kind"].startswith("license_")
            and e["kind"] != "license_issued"] == []


def test_many_users_behind_one_network_each_refused_once_raise_nothing(
    p: Provider,
) -> None:
    tokens = [mint(p).json()["token"] for _ in range(8)]
    use_abuse_config(p, network_burst=2, network_per_minute=1,
                     ignored_refusals=3)
    answers = [handshake(p, token)[0].status_code for token in tokens]
    assert answers.count(429) >= 6
    assert "refusals_ignored" not in signals(p)


def test_a_token_handshaking_through_its_429s_is_a_signal(p: Provider) -> None:
    use_abuse_config(p, token_burst=1, token_per_minute=1, ignored_refusals=3,
                     **QUIET)
    token = mint(p).json()["token"]
    answers = [handshake(p, token)[0].status_code for _ in range(5)]
    assert answers[0] == 200 and set(answers[1:]) == {429}
    found = [e for e in events(p, "abuse_signal") if e["outcome"] == "refusals_ignored"]
    assert [e["detail"]["subject"][:2] for e in found] == ["t:"]


def test_frozen_license_is_refused_everywhere_until_the_freeze_ends(
    tmp_path: Path,
) -> None:
    p = make_provider(tmp_path)
    with p.client:
        session = lift_session(p)
        token = mint(p).json()["token"]
        _hold(p, "freeze", seconds=300)
        refused = [mint(p), handshake(p, token)[0], fetch(p, session)]
        until = run(p, frozen_until(p.state.storage, p.clock()))
        p.clock.advance(300)
        served = fetch(p, session)
    assert [(r.status_code, code(r)) for r in refused] == [
        (403, "license_frozen")] * 3
    assert set(until) == {p.license_id}
    assert served.status_code == 200


def _hold(p: Provider, kind: str, seconds: int) -> None:
    guard = p.state.guard
    run(p, guard.store.set_hold(p.license_id, kind, p.clock(),
                                p.clock() + seconds * 1000, "test"))


def test_suspicion_leaks_so_old_signals_are_forgiven(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with p.client:
        use_abuse_config(p, alert_at=2, throttle_at=4, freeze_at=6,
                         forgive_per_minute=1.0)
        replay_twice(p)
        p.clock.advance(10 * 60)
        replay_twice(p)
        served = fetch(p, lift_session(p))
        alerts = [e["outcome"] for e in events(p, "abuse_alert")]
    assert served.status_code == 200
    assert alerts == ["alert", "alert"]


def test_hold_errors_name_no_threshold_signal_or_score(p: Provider) -> None:
    session = lift_session(p)
    _hold(p, "throttle", seconds=90)
    throttled = fetch(p, session)
    _hold(p, "freeze", seconds=90)
    frozen = mint(p)
    assert throttled.json() == {"error": {
        "code": "rate_limited", "message": "Too many requests; try again later."}}
    assert throttled.headers["retry-after"] == "90"
    assert frozen.json() == {"error": {
        "code": "license_frozen", "message": "The license is temporarily frozen."}}
    assert "retry-after" not in frozen.headers


def test_data_is_not_served_when_the_limiter_cannot_store(p: Provider) -> None:
    session = lift_session(p)

    async def break_limiter() -> None:
        await p.state.storage.db.execute("DROP TABLE limit_buckets")

    run(p, break_limiter())
    response = fetch(p, session)
    assert (response.status_code, code(response)) == (503, "unavailable")


# -- alerts: list, admin route, webhook ------------------------------------------------


def test_alerts_since_lists_only_newer_alerts(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with p.client:
        use_abuse_config(p, alert_at=2, throttle_at=100, freeze_at=100)
        replay_twice(p)
        p.clock.advance(600)
        replay_twice(p)
        everything = run(p, p.state.guard.alerts(0))
        newer = run(p, p.state.guard.alerts(everything[0]["seq"]))
    assert [a["level"] for a in everything] == ["alert", "alert"]
    assert newer == everything[1:]


def test_admin_alert_route_pages_by_sequence(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    token = AdminTokens(p.data_dir).new("alice", p.clock() // 1000)[0]
    auth = {"Authorization": f"Bearer {token}"}
    with p.client:
        use_abuse_config(p, alert_at=2, throttle_at=100, freeze_at=100)
        replay_twice(p)
        first = p.client.get("/admin/v1/alerts", headers=auth).json()
        after = p.client.get(f"/admin/v1/alerts?since={first['next']}",
                             headers=auth).json()
        bad = p.client.get("/admin/v1/alerts?since=-1", headers=auth)
        anonymous = p.client.get("/admin/v1/alerts")
    assert [a["signal"] for a in first["alerts"]] == ["replay"]
    assert after == {"alerts": [], "next": first["next"]}
    assert bad.status_code == 400
    assert anonymous.status_code == 401


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """An HTTP server on 127.0.0.1 that records every POST."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_alert_is_posted_to_the_webhook_signed_with_hmac_sm3(
    tmp_path: Path,
) -> None:
    p = make_provider(tmp_path)
    with webhook_receiver() as (url, received), p.client:
        use_abuse_config(p, alert_at=2, webhook_url=url, webhook_secret="s3cret")
        replay_twice(p)
        run(p, p.state.guard.drain())
    [(headers, body)] = received
    alert = json.loads(body)
    assert (alert["type"], alert["level"], alert["license_id"]) == (
        "xinfeng.abuse_alert", "alert", p.license_id)
    expected = "hmac-sm3=" + hmac_sm3(b"s3cret", body).hex()
    assert headers["X-Xf-Signature"] == expected


def test_a_webhook_that_never_answers_does_not_delay_requests(
    tmp_path: Path,
) -> None:
    p = make_provider(tmp_path)
    with socket.socket() as silent, p.client:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        use_abuse_config(p, alert_at=2, webhook_url=url, webhook_timeout_s=0.3)
        replay_twice(p)
        pending_after_reply = p.state.guard.webhook.pending
        served = fetch(p, lift_session(p))
        run(p, p.state.guard.drain())
        pending_after_drain = p.state.guard.webhook.pending
    assert pending_after_reply == 1
    assert served.status_code == 200
    assert pending_after_drain == 0


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.org/", "gopher://x", "http://", "hook",
])
def test_webhook_url_must_be_http_or_https(url: str) -> None:
    with pytest.raises(ValueError):
        AbuseConfig(webhook_url=url)


def test_thresholds_must_climb() -> None:
    with pytest.raises(ValueError):
        AbuseConfig(alert_at=5, throttle_at=4)


@pytest.mark.parametrize("changes", [{"strike_cooldown_s": 0},
                                     {"ignored_refusals": 1}])
def test_strike_cooldown_of_zero_and_one_refusal_are_refused(
    changes: dict[str, int],
) -> None:
    with pytest.raises(ValueError):
        AbuseConfig(**changes)  # type: ignore[arg-type]


def test_licensor_list_shows_when_a_frozen_license_thaws(tmp_path: Path) -> None:
    p = make_provider(tmp_path)
    with p.client:
        _hold(p, "freeze", seconds=300)
        licensor = Licensor(p.state.storage, KeyDir(p.data_dir / "keys"))
        rows = run(p, licensor.list_licenses(LicenseFilter(), p.clock()))
        later = run(p, licensor.list_licenses(LicenseFilter(),
                                              p.clock() + 301_000))
    expected = format_time((p.clock() + 300_000) // 1000)
    assert [r.get("frozen_until") for r in rows] == [expected]
    assert "frozen_until" not in later[0]


def test_a_flood_of_forged_referers_logs_each_embedder_once_a_window(
    tmp_path: Path,
) -> None:
    p = make_provider(tmp_path, browser_assets=True)
    with p.client:
        path = f"/embed/{p.license_id}/test-product/"
        for index in range(60):
            rogue = f"http://rogue-{index % 3}.test/"
            reply = p.client.get(path, headers={"Referer": rogue,
                                                "Sec-Fetch-Dest": "iframe"})
            assert reply.status_code == 200
        first = len(events(p, "embed_refused"))
        p.clock.advance(60)
        p.client.get(path, headers={"Referer": "http://rogue-0.test/",
                                    "Sec-Fetch-Dest": "iframe"})
        logged = events(p, "embed_refused")
    assert first == 3
    assert sorted(e["detail"]["embedder"] for e in logged) == [
        "http://rogue-0.test", "http://rogue-0.test", "http://rogue-1.test",
        "http://rogue-2.test"]
