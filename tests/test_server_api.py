"""The provider's protocol routes, driven through Starlette's test client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xinfeng.sdk import envelope, wire
from xinfeng.sdk.errors import EnvelopeError
from xinfeng.sdk.sm2 import SM2PublicKey

from .conftest import HOST_ORIGIN, MARKER, Provider, make_provider

LIMITS = wire.Limits(max_bytes=1 << 20, max_items=1 << 12, max_str=1 << 16)


def mint(p: Provider, products: list[str] | None = None,
         origin: str = HOST_ORIGIN, credential: str | None = None) -> Any:
    return p.client.post(
        "/v1/tokens",
        json={"products": products or ["test-product"], "origin": origin},
        headers={"Authorization": f"Bearer {credential or p.credential}"},
    )


def env(origin: str = HOST_ORIGIN) -> dict[str, Any]:
    return {"origins": [origin], "ua": "pytest", "webdriver": False,
            "build": "00" * 32, "hidden": False}


def handshake(p: Provider, token: str | None = None,
              origin: str = HOST_ORIGIN) -> tuple[Any, envelope.ClientHandshake]:
    hs = envelope.ClientHandshake(token or mint(p).json()["token"], env(origin))
    reply = p.client.post("/v1/handshake", content=hs.request(p.clock()),
                          headers={"Content-Type": "application/msgpack"})
    return reply, hs


def open_session(p: Provider) -> envelope.ClientSession:
    reply, hs = handshake(p)
    assert reply.status_code == 200, reply.text
    server_key = SM2PublicKey.from_bytes(p.state.server_public_key)
    return hs.finish(reply.content, server_key)


def get_data(p: Provider, session: envelope.ClientSession,
             product: str = "test-product", query: str = "") -> tuple[Any, Any]:
    path = f"/v1/data/{product}"
    auth = session.sign("GET", path, query, p.clock())
    url = path + (f"?{query}" if query else "")
    return p.client.get(url, headers=auth.headers()), auth


def code(response: Any) -> str:
    return response.json()["error"]["code"]


def events(p: Provider, kind: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        return await p.state.storage.events(kind)
    return p.client.portal.call(read) if p.client.portal else asyncio.run(read())


# -- tokens ------------------------------------------------------------------


def test_token_minted_for_licensed_product_and_origin(provider: Provider) -> None:
    response = mint(provider)
    assert response.status_code == 200
    assert response.json()["token"].count(".") == 2
    assert response.headers["cache-control"] == "no-store"


def test_token_refused_for_wrong_credential(provider: Provider) -> None:
    forged = provider.credential[:-4] + ("AAAA" if not
                                         provider.credential.endswith("AAAA")
                                         else "BBBB")
    response = mint(provider, credential=forged)
    assert (response.status_code, code(response)) == (401, "token_invalid")


def test_token_refused_for_unlicensed_origin(provider: Provider) -> None:
    response = mint(provider, origin="http://127.0.0.1:9999")
    assert (response.status_code, code(response)) == (403, "origin_denied")
    assert HOST_ORIGIN not in response.text


def test_token_refused_for_unlicensed_product(provider: Provider) -> None:
    response = mint(provider, products=["other-product"])
    assert (response.status_code, code(response)) == (403, "product_denied")


def test_token_request_with_malformed_json_rejected(provider: Provider) -> None:
    response = provider.client.post(
        "/v1/tokens", content=b"{not json",
        headers={"Authorization": f"Bearer {provider.credential}"})
    assert (response.status_code, code(response)) == (400, "bad_request")


def test_token_request_oversized_body_rejected(provider: Provider) -> None:
    response = provider.client.post(
        "/v1/tokens", content=b"x" * 5000,
        headers={"Authorization": f"Bearer {provider.credential}"})
    assert (response.status_code, code(response)) == (413, "payload_too_large")


# -- handshake and data ----------------------------------------------------------


def test_data_arrives_only_enveloped_and_opens(provider: Provider) -> None:
    session = open_session(provider)
    response, auth = get_data(provider, session)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-xinfeng-envelope"
    assert MARKER.encode() not in response.content
    opened = session.open(response.content, auth, LIMITS)
    assert opened.payload["rows"][0][0] == MARKER
    served = events(provider, "data_served")
    assert served[-1]["detail"]["trace"] == opened.trace_id.hex()


def test_replayed_counter_rejected(provider: Provider) -> None:
    session = open_session(provider)
    first, auth = get_data(provider, session)
    assert first.status_code == 200
    again = provider.client.get("/v1/data/test-product", headers=auth.headers())
    assert (again.status_code, code(again)) == (401, "replay")


def test_tampered_request_mac_rejected_without_burning_counter(
    provider: Provider,
) -> None:
    session = open_session(provider)
    auth = session.sign("GET", "/v1/data/test-product", "", provider.clock())
    headers = auth.headers()
    headers["X-Xf-Mac"] = "00" * 32
    bad = provider.client.get("/v1/data/test-product", headers=headers)
    assert (bad.status_code, code(bad)) == (401, "session_invalid")
    good = provider.client.get("/v1/data/test-product", headers=auth.headers())
    assert good.status_code == 200


def test_tampered_envelope_rejected_by_client(provider: Provider) -> None:
    session = open_session(provider)
    response, auth = get_data(provider, session)
    body = bytearray(response.content)
    body[60] ^= 0x01
    with pytest.raises(EnvelopeError):
        session.open(bytes(body), auth, LIMITS)


def test_handshake_from_unlicensed_origin_refused_and_logged(
    provider: Provider,
) -> None:
    token = mint(provider).json()["token"]
    reply, _ = handshake(provider, token, origin="http://127.0.0.1:9999")
    assert (reply.status_code, code(reply)) == (403, "origin_denied")
    refused = events(provider, "session_refused")
    assert refused[-1]["outcome"] == "origin_denied"
    assert refused[-1]["license_id"] == provider.license_id


def test_handshake_with_forged_token_refused(provider: Provider) -> None:
    token = mint(provider).json()["token"]
    head, body, sig = token.split(".")
    forged = ".".join([head, body, sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")])
    reply, _ = handshake(provider, forged)
    assert (reply.status_code, code(reply)) == (401, "token_invalid")


def test_handshake_after_license_expired_refused(provider: Provider) -> None:
    token = mint(provider).json()["token"]
    provider.clock.advance(3600 + 120)
    reply, _ = handshake(provider, token)
    assert reply.status_code in (401, 403)
    assert code(reply) in ("license_expired", "token_invalid")


def test_handshake_with_expired_token_refused(provider: Provider) -> None:
    token = mint(provider).json()["token"]
    provider.clock.advance(301 + 60)
    reply, _ = handshake(provider, token)
    assert (reply.status_code, code(reply)) == (401, "token_invalid")


def test_handshake_with_malformed_msgpack_rejected(provider: Provider) -> None:
    reply = provider.client.post("/v1/handshake", content=b"\xc1\xc1\xc1")
    assert (reply.status_code, code(reply)) == (400, "bad_request")
    assert "Traceback" not in reply.text


def test_handshake_oversized_body_rejected(provider: Provider) -> None:
    reply = provider.client.post("/v1/handshake", content=b"\x90" * 9000)
    assert (reply.status_code, code(reply)) == (413, "payload_too_large")


def test_data_for_product_outside_token_refused(provider: Provider) -> None:
    session = open_session(provider)
    response, _ = get_data(provider, session, product="other-product")
    assert (response.status_code, code(response)) == (403, "product_denied")


def test_data_refused_on_next_request_after_suspension(provider: Provider) -> None:
    session = open_session(provider)
    assert get_data(provider, session)[0].status_code == 200

    async def suspend() -> None:
        await provider.state.storage.set_license_status(
            provider.license_id, "suspended", "test")
    provider.client.portal.call(suspend)
    response, _ = get_data(provider, session)
    assert (response.status_code, code(response)) == (403, "license_suspended")


def test_data_after_session_expiry_refused(provider: Provider) -> None:
    session = open_session(provider)
    provider.clock.advance(601)
    response, _ = get_data(provider, session)
    assert (response.status_code, code(response)) == (401, "session_invalid")


def test_license_with_network_refuses_other_network(tmp_path: Any) -> None:
    p = make_provider(tmp_path, networks=("10.9.0.0/16",))
    with p.client:
        reply, _ = handshake(p)
    assert reply.status_code == 403
    assert "10.9" not in reply.text
