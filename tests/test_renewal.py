"""Session renewal: the component's client against the real app.

A renewal is a POST to /v1/renew authenticated like a data request. The
server checks the licence again (status, window, products, origin,
network, holds) before it extends the session; the new expiry comes back
sealed to the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from xinfeng.component.client import (
    RENEW_PATH,
    ComponentError,
    HttpReply,
    renew_session,
)
from xinfeng.sdk import envelope

from .conftest import Provider, make_provider
from .test_scraper_api import UA, code, events, fetch, lift_session, mint, run

TTL_MS = 600_000


class ClientTransport:
    """The component's transport, through Starlette's test client."""

    def __init__(self, p: Provider) -> None:
        self.p = p

    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpReply:
        reply = self.p.client.request(method, path, content=body,
                                      headers={**headers, "User-Agent": UA})
        return HttpReply(reply.status_code, reply.content)


def renew(p: Provider, session: envelope.ClientSession) -> str:
    """Renew ``session``; "ok" or the refusal's code."""
    try:
        asyncio.run(renew_session(ClientTransport(p), session, p.clock))
    except ComponentError as exc:
        return exc.code
    return "ok"


def _set_status(p: Provider, status: str) -> None:
    run(p, p.state.storage.set_license_status(p.license_id, status, "test"))


def test_renewal_moves_the_expiry_on_and_the_session_outlives_its_first_end(
    provider: Provider,
) -> None:
    p = provider
    session = lift_session(p)
    first_end = session.expires_ms
    p.clock.advance(540)
    assert renew(p, session) == "ok"
    assert session.expires_ms == p.clock() + TTL_MS
    p.clock.advance(120)  # past the first end
    assert fetch(p, session).status_code == 200
    assert p.clock() > first_end
    renewed = events(p, "session_renewed")
    assert [(e["outcome"], e["detail"]["until_ms"]) for e in renewed] == [
        ("ok", session.expires_ms)]


def test_a_session_that_was_not_renewed_ends(provider: Provider) -> None:
    p = provider
    session = lift_session(p)
    p.clock.advance(601)
    assert renew(p, session) == "session_invalid"
    assert code(fetch(p, session)) == "session_invalid"


@pytest.mark.parametrize(("status", "expected"), [
    ("suspended", "license_suspended"),
    ("revoked", "license_revoked"),
])
def test_renewal_checks_the_licence_status_again(
    provider: Provider, status: str, expected: str
) -> None:
    p = provider
    session = lift_session(p)
    before = session.expires_ms
    _set_status(p, status)
    assert renew(p, session) == expected
    assert session.expires_ms == before
    refused = events(p, "session_refused")
    assert [(e["outcome"], e["detail"].get("renewal")) for e in refused] == [
        (expected, True)]


def test_renewal_past_the_licence_window_is_refused(tmp_path: Path) -> None:
    p = make_provider(tmp_path)  # licence valid for another hour
    with p.client:
        session = lift_session(p)
        for _ in range(6):
            p.clock.advance(540)
            assert renew(p, session) == "ok"
        p.clock.advance(540)
        assert renew(p, session) == "license_expired"


def test_renewal_from_a_network_the_licence_does_not_list_is_refused(
    tmp_path: Path,
) -> None:
    # The test client connects from "testclient"; list a network first so
    # the handshake passes, then check the renewal from an unlisted one.
    p = make_provider(tmp_path, networks=("192.0.2.0/24",))
    with p.client:
        p.state.config = _trusting_forwarded_for(p)
        p.client.headers["X-Forwarded-For"] = "192.0.2.7"
        session = _session_from(p, mint(p).json()["token"], "192.0.2.7")
        p.client.headers["X-Forwarded-For"] = "198.51.100.9"
        assert renew(p, session) == "license_invalid"
        p.client.headers["X-Forwarded-For"] = "192.0.2.8"
        assert renew(p, session) == "ok"


def _trusting_forwarded_for(p: Provider) -> Any:
    from dataclasses import replace

    return replace(p.state.config, trusted_proxy_hops=1,
                   trusted_proxies=("0.0.0.0/0", "::/0"))


def _session_from(p: Provider, token: str, ip: str) -> envelope.ClientSession:
    from xinfeng.sdk.sm2 import SM2PublicKey

    from .test_scraper_api import environment

    hs = envelope.ClientHandshake(token, environment())
    reply = p.client.post("/v1/handshake", content=hs.request(p.clock()),
                          headers={"Content-Type": "application/msgpack",
                                   "User-Agent": UA, "X-Forwarded-For": ip})
    assert reply.status_code == 200, reply.text
    return hs.finish(reply.content, SM2PublicKey.from_bytes(p.state.server_public_key))


def test_a_frozen_licence_cannot_renew(provider: Provider) -> None:
    p = provider
    session = lift_session(p)
    guard = p.state.guard
    run(p, guard.store.set_hold(p.license_id, "freeze", p.clock(),
                                p.clock() + 300_000, "test"))
    assert renew(p, session) == "license_frozen"


def test_a_replayed_renewal_is_refused(provider: Provider) -> None:
    p = provider
    session = lift_session(p)
    auth = session.sign("POST", RENEW_PATH, "", p.clock())
    headers = {**auth.headers(), "User-Agent": UA}
    first = p.client.post(RENEW_PATH, headers=headers)
    again = p.client.post(RENEW_PATH, headers=headers)
    assert first.status_code == 200
    assert (again.status_code, code(again)) == (401, "replay")


def test_a_renewal_with_a_body_is_refused_before_anything_else(
    provider: Provider,
) -> None:
    p = provider
    session = lift_session(p)
    auth = session.sign("POST", RENEW_PATH, "", p.clock())
    reply = p.client.post(RENEW_PATH, content=b"x",
                          headers={**auth.headers(), "User-Agent": UA})
    assert (reply.status_code, code(reply)) == (413, "payload_too_large")
    assert renew(p, session) == "ok"  # its counter was not used up


def test_a_renewed_session_keeps_its_one_slot(tmp_path: Path) -> None:
    p = make_provider(tmp_path, max_sessions=2)
    with p.client:
        first = lift_session(p)
        for _ in range(3):
            p.clock.advance(540)
            assert renew(p, first) == "ok"
        second = lift_session(p)  # the second slot is still free
        assert fetch(p, second).status_code == 200
        token = mint(p).json()["token"]
        from .test_scraper_api import handshake

        third, _ = handshake(p, token)
    assert (third.status_code, code(third)) == (429, "rate_limited")


def test_renewal_never_takes_a_session_past_its_longest_life(
    provider: Provider,
) -> None:
    from dataclasses import replace

    p = provider
    p.state.config = replace(p.state.config, session_max_s=1200)
    session = lift_session(p)
    opened = p.clock()
    p.clock.advance(540)
    assert renew(p, session) == "ok"
    assert session.expires_ms == p.clock() + TTL_MS
    p.clock.advance(540)
    assert renew(p, session) == "ok"
    assert session.expires_ms == opened + 1_200_000
    p.clock.advance(119.5)
    assert renew(p, session) == "session_invalid"
    assert fetch(p, session).status_code == 200  # until the last end
    p.clock.advance(1)
    assert code(fetch(p, session)) == "session_invalid"


def test_a_renewal_signed_over_a_query_string_is_refused(provider: Provider) -> None:
    p = provider
    session = lift_session(p)
    auth = session.sign("POST", RENEW_PATH, "x=1", p.clock())
    reply = p.client.post(RENEW_PATH + "?x=1",
                          headers={**auth.headers(), "User-Agent": UA})
    assert (reply.status_code, code(reply)) == (400, "bad_request")


def test_a_replayed_renewal_is_logged_under_its_licence(provider: Provider) -> None:
    p = provider
    session = lift_session(p)
    auth = session.sign("POST", RENEW_PATH, "", p.clock())
    headers = {**auth.headers(), "User-Agent": UA}
    p.client.post(RENEW_PATH, headers=headers)
    p.client.post(RENEW_PATH, headers=headers)
    refused = events(p, "session_refused")
    assert [(e["outcome"], e["license_id"]) for e in refused] == [
        ("replay", p.license_id)]


def test_content_length_abc_is_a_bad_request(provider: Provider) -> None:
    p = provider
    session = lift_session(p)
    auth = session.sign("POST", RENEW_PATH, "", p.clock())
    reply = p.client.post(RENEW_PATH, headers={**auth.headers(), "User-Agent": UA,
                                               "Content-Length": "abc"})
    assert (reply.status_code, code(reply)) == (400, "bad_request")
