"""The protocol routes: embed tokens, handshake, enveloped data.

No route here returns product data in plaintext: ``/v1/data`` answers only
with envelopes sealed to a session key that exists in the component alone.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from xinfeng.license.credentials import check_credential
from xinfeng.license.model import License, verify_license
from xinfeng.license.tokens import EmbedToken, mint_embed_token, verify_embed_token
from xinfeng.sdk import envelope
from xinfeng.sdk.errors import (
    LicenseError,
    LicenseRevoked,
    LicenseSuspended,
    OriginDenied,
    PayloadTooLarge,
    ProductDenied,
    ProtocolError,
    ReplayDetected,
    SessionInvalid,
    TokenInvalid,
    XinfengError,
)
from xinfeng.sdk.sm3 import sm3_hash

from . import native
from .clientip import client_ip
from .registry_store import RegistryStore

if TYPE_CHECKING:
    from .app import AppState
    from .storage import SessionRecord

logger = logging.getLogger(__name__)

ENVELOPE_TYPE = "application/x-xinfeng-envelope"
MAX_TOKEN_REQUEST = 4096
MAX_PRODUCTS_PER_TOKEN = 32
NO_STORE = {"Cache-Control": "no-store"}

# The server seals with native primitives where they exist; they produce the
# same bytes as the pure-Python suite the component opens with.
SUITE = envelope.Suite(
    sm4_ctr=native.sm4_ctr,
    hmac_sm3=native.hmac_sm3,
    hmac_sm3_many=native.hmac_sm3_lanes,
)


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.xinfeng
    return state


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing anything larger than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and not (declared.isascii() and declared.isdigit()):
        raise ProtocolError("malformed Content-Length")
    if declared is not None and int(declared) > limit:
        raise PayloadTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def request_ip(state: AppState, request: Request) -> str:
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"),
                     state.config.trusted_proxy_hops,
                     state.config.trusted_proxies)


def ua_digest(request: Request) -> str:
    """A short digest of the user agent: attributable, not verbatim."""
    ua = request.headers.get("user-agent", "")[:512]
    return sm3_hash(ua.encode("utf-8", "replace")).hex()[:16]


async def load_license(state: AppState, license_id: str) -> License:
    """A stored license whose signature, status, window and key check out."""
    record = await state.storage.get_license(license_id)
    if record is None:
        raise LicenseError()
    if record.status == "revoked":
        raise LicenseRevoked()
    if record.status == "suspended":
        raise LicenseSuspended()
    lic = verify_license(record.token, state.licensor_keys, state.now_s())
    if lic.license_id != license_id:
        raise LicenseError()
    await RegistryStore(state.storage).require_trusted_key(lic.key_id)
    return lic


async def refuse(
    state: AppState, request: Request, kind: str, exc: XinfengError,
    license_id: str | None, extra: dict[str, Any] | None = None,
) -> None:
    """Record a refused request with who, from where, and why.

    A replayed counter passed its MAC check, so it is authentic: it is
    logged under the license of its session.
    """
    if license_id is None and isinstance(exc, ReplayDetected):
        license_id = await state.guard.session_license(request)
    detail = {"ip": request_ip(state, request), "ua": ua_digest(request),
              "origin": request.headers.get("origin", ""), **(extra or {})}
    logger.warning("%s refused: %s (license %s, ip %s)", kind, exc.code,
                   license_id, detail["ip"])
    await state.storage.log_event(state.now_ms(), kind, exc.code, license_id,
                                  detail)
    await state.guard.note_refusal(request, exc, license_id)


# -- embed tokens -------------------------------------------------------------


def _token_request(body: bytes) -> tuple[list[str], str]:
    try:
        msg = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError("body is not JSON") from exc
    products = msg.get("products") if isinstance(msg, dict) else None
    origin = msg.get("origin") if isinstance(msg, dict) else None
    if (not isinstance(products, list) or not products
            or len(products) > MAX_PRODUCTS_PER_TOKEN
            or not all(isinstance(p, str) for p in products)
            or not isinstance(origin, str)):
        raise ProtocolError("expected products (list) and origin (string)")
    return products, origin


async def mint_token(request: Request) -> Response:
    """Exchange a license credential for a short-lived embed token."""
    state = state_of(request)
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        raise TokenInvalid("missing credential")
    products, origin = _token_request(await read_body(request, MAX_TOKEN_REQUEST))
    license_id = None
    try:
        license_id = await _credential_license(state, auth[len("Bearer "):])
        lic = await load_license(state, license_id)
        for product in products:
            await state.catalog.servable(product, RegistryStore(state.storage))
            lic.check_use(product, origin, None, state.now_s())
        await state.guard.admit_token(lic, request_ip(state, request))
    except XinfengError as exc:
        await refuse(state, request, "token_refused", exc, license_id,
                     {"requested_origin": origin[:256],
                      "products": [p[:64] for p in products]})
        raise
    now = state.now_s()
    token = mint_embed_token(state.server_key, state.server_kid, license_id,
                             products, origin, now, ttl=state.config.token_ttl_s)
    await state.storage.log_event(
        state.now_ms(), "token_minted", "ok", license_id,
        {"products": products, "origin": origin, "ip": request_ip(state, request)})
    return JSONResponse({"token": token, "expires": now + state.config.token_ttl_s},
                        headers=NO_STORE)


async def _credential_license(state: AppState, credential: str) -> str:
    license_id = credential.removeprefix("xfc_").split(".", 1)[0]
    record = await state.storage.get_license(license_id)
    try:
        if record is None:
            raise TokenInvalid()
        return check_credential(credential, record.credential_verifier)
    except TokenInvalid:
        raise TokenInvalid("The license credential is not valid.") from None


# -- handshake ------------------------------------------------------------------


def _check_environment(token: EmbedToken, request: envelope.HandshakeRequest) -> None:
    """The Worker's reported embedding origin must be the token's origin."""
    origins = request.env["origins"]
    if not origins or origins[0] != token.origin:
        raise OriginDenied()


async def handshake(request: Request) -> Response:
    """Open a session: check token and license, wrap a fresh session key."""
    state = state_of(request)
    body = await read_body(request, state.config.max_handshake_bytes)
    license_id = None
    try:
        hs = envelope.parse_handshake(body, state.now_ms())
        token = verify_embed_token(hs.token, {state.server_kid:
                                              state.server_key.public_key()},
                                   state.now_s())
        license_id = token.license_id
        lic = await load_license(state, license_id)
        _check_environment(token, hs)
        ip = request_ip(state, request)
        await _check_products(state, lic, token.products, token.origin, ip)
        sid, key = envelope.new_session_secrets()
        await state.guard.admit_session(lic, token, hs.env, ip, request, sid)
    except XinfengError as exc:
        await refuse(state, request, "session_refused", exc, license_id)
        raise
    return await _open_session(state, request, hs, token, sid, key)


async def _check_products(
    state: AppState, lic: License, products: Sequence[str], origin: str, ip: str
) -> None:
    """Every product is servable and licensed to ``origin`` from ``ip`` now."""
    for product in products:
        await state.catalog.servable(product, RegistryStore(state.storage))
        lic.check_use(product, origin, ip, state.now_s())


async def _open_session(
    state: AppState, request: Request, hs: envelope.HandshakeRequest,
    token: EmbedToken, sid: bytes, key: bytes,
) -> Response:
    now = state.now_ms()
    expires = now + state.config.session_ttl_s * 1000
    ip = request_ip(state, request)
    await state.storage.create_session(sid, token.license_id, tuple(token.products),
                                       token.origin, ip, key, expires, now)
    reply = envelope.sign_handshake_reply(hs, state.server_key, sid, key, expires,
                                          now)
    await state.storage.log_event(
        now, "session_opened", "ok", token.license_id,
        {"origin": token.origin, "ip": ip, "ua": ua_digest(request),
         "products": list(token.products), "webdriver": hs.env["webdriver"],
         "build": hs.env["build"][:64]})
    return Response(reply, media_type="application/msgpack", headers=NO_STORE)


# -- data and renewal -------------------------------------------------------------


async def _authentic(
    state: AppState, request: Request
) -> tuple[envelope.RequestAuth, SessionRecord]:
    """The live session a request is authenticated for, its counter moved on."""
    auth = envelope.RequestAuth.from_headers(request.headers)
    session_key = await state.storage.get_session_key(auth.session_id,
                                                      state.now_ms())
    if session_key is None:
        raise SessionInvalid()
    envelope.verify_request(auth, session_key, request.method, request.url.path,
                            request.url.query, state.now_ms(), SUITE)
    session = await state.storage.advance_counter(auth.session_id, auth.counter,
                                                  state.now_ms())
    if session is None:
        raise ReplayDetected()
    return auth, session


async def renew(request: Request) -> Response:
    """Extend a live session after checking its license again.

    The license's status and window, each product's review state, the
    session's origin and the client's network are checked as at the
    handshake. The answer is an envelope sealed to the session (so the
    component knows it is the server's) carrying the new expiry.
    """
    state = state_of(request)
    license_id = None
    try:
        await read_body(request, 0)
        if request.url.query:
            raise ProtocolError("a renewal takes no query")
        auth, session = await _authentic(state, request)
        license_id = session.license_id
        lic = await load_license(state, license_id)
        ip = request_ip(state, request)
        await _check_products(state, lic, session.products, session.origin, ip)
        expires = _renewed_expiry(state, session)
        await state.guard.admit_renewal(lic, session, ip, expires)
        if not await state.storage.extend_session(session.session_id, expires,
                                                  state.now_ms()):
            raise SessionInvalid()
    except XinfengError as exc:
        await refuse(state, request, "session_refused", exc, license_id,
                     {"renewal": True})
        raise
    sealed = envelope.seal(session.session_key, auth.counter,
                           {"expires_ms": expires}, suite=SUITE)
    await state.storage.log_event(
        state.now_ms(), "session_renewed", "ok", license_id,
        {"origin": session.origin, "ip": ip, "until_ms": expires})
    return Response(sealed, media_type=ENVELOPE_TYPE, headers=NO_STORE)


def _renewed_expiry(state: AppState, session: SessionRecord) -> int:
    """When a session renewed now ends: ``session_ttl_s`` from now, never
    past ``session_max_s`` after its handshake (SessionInvalid when that
    is within a second)."""
    now, config = state.now_ms(), state.config
    last = session.created_ms + config.session_max_s * 1000
    expires = min(now + config.session_ttl_s * 1000, last)
    if expires - now < 1000:
        raise SessionInvalid()
    return expires


async def data(request: Request) -> Response:
    """Answer a data request with an envelope sealed to its session."""
    state = state_of(request)
    product_id = request.path_params["product"]
    license_id = None
    try:
        auth, session = await _authentic(state, request)
        license_id = session.license_id
        if product_id not in session.products:
            raise ProductDenied()
        product = await state.catalog.servable(product_id,
                                               RegistryStore(state.storage))
        lic = await load_license(state, license_id)
        await state.guard.admit_data(request, lic, session,
                                     request_ip(state, request))
    except XinfengError as exc:
        await refuse(state, request, "data_refused", exc, license_id,
                     {"product": product_id[:64]})
        raise
    payload = product.build(dict(request.query_params))
    trace = secrets.token_bytes(envelope.TRACE_ID_SIZE)
    sealed = envelope.seal(session.session_key, auth.counter, payload,
                           trace_id=trace, suite=SUITE)
    await state.storage.log_event(
        state.now_ms(), "data_served", "ok", license_id,
        {"product": product_id, "trace": trace.hex(), "counter": auth.counter,
         "ip": request_ip(state, request)})
    return Response(sealed, media_type=ENVELOPE_TYPE, headers=NO_STORE)


def routes(state: AppState) -> list[BaseRoute]:
    """The protocol routes."""
    return [
        Route("/v1/tokens", mint_token, methods=["POST"]),
        Route("/v1/handshake", handshake, methods=["POST"]),
        Route("/v1/data/{product}", data, methods=["GET"]),
        Route("/v1/renew", renew, methods=["POST"]),
    ]


__all__ = ["routes", "load_license", "ProductDenied"]
