"""The component's conversation with the provider: a handshake, then data.

The HTTP layer is a small :class:`Transport` so the same protocol code runs
in the browser (``fetch`` through Pyodide) and on CPython in tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from xinfeng.sdk.envelope import (
    HIDDEN_HEADER,
    ClientHandshake,
    ClientSession,
    Envelope,
)
from xinfeng.sdk.errors import EnvelopeError, XinfengError
from xinfeng.sdk.sm2 import SM2PublicKey
from xinfeng.sdk.wire import Limits

HANDSHAKE_PATH = "/v1/handshake"
DATA_PATH = "/v1/data/"
RENEW_PATH = "/v1/renew"
RENEWAL_LIMITS = Limits(max_bytes=256, max_items=4, max_str=32, max_bin=0)
PAYLOAD_LIMITS = Limits(
    max_bytes=8 * 1024 * 1024, max_items=200_000, max_str=4096, max_bin=4096
)
FETCH_TIMEOUT_MS = 20_000
MAX_ORIGINS = 8
MAX_UA = 512
_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_PRODUCT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ComponentError(Exception):
    """Something the component shows instead of data, with a stable code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class HttpReply:
    """What the component needs of an HTTP response."""

    status: int
    body: bytes


class Transport(Protocol):
    """Sends one request to the provider's origin."""

    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpReply: ...


def environment_report(raw: Mapping[str, Any], build: str) -> dict[str, Any]:
    """The handshake's environment report from what the container observed."""
    origins = [str(o) for o in raw.get("origins", [])][:MAX_ORIGINS]
    return {
        "origins": origins,
        "ua": str(raw.get("ua", ""))[:MAX_UA],
        "webdriver": bool(raw.get("webdriver", False)),
        "build": build,
        "hidden": bool(raw.get("hidden", False)),
    }


def server_error(reply: HttpReply) -> ComponentError:
    """The error a non-200 reply stands for: the server's code when it has one."""
    try:
        code = json.loads(reply.body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    if isinstance(code, str) and _CODE_RE.fullmatch(code):
        return ComponentError(code)
    return ComponentError(f"http_{reply.status}")


async def open_session(
    transport: Transport,
    token: str,
    env: dict[str, Any],
    server_key: SM2PublicKey,
    clock_ms: Callable[[], int],
) -> ClientSession:
    """Run the handshake; ComponentError when the server or its reply refuses."""
    handshake = ClientHandshake(token, env)
    try:
        body = handshake.request(clock_ms())
    except XinfengError as exc:
        raise ComponentError("bad_environment") from exc
    headers = {"Content-Type": "application/msgpack"}
    reply = await transport.request("POST", HANDSHAKE_PATH, headers, body)
    if reply.status != 200:
        raise server_error(reply)
    try:
        return handshake.finish(reply.body, server_key)
    except EnvelopeError as exc:
        raise ComponentError("bad_handshake_reply") from exc


async def fetch_product(
    transport: Transport,
    session: ClientSession,
    product: str,
    clock_ms: Callable[[], int],
    query: str = "",
    hidden: bool = False,
) -> Envelope:
    """Request one product and open its envelope; ComponentError otherwise.

    ``hidden`` says the page was not visible when the request was made.
    """
    if not _PRODUCT_RE.fullmatch(product):
        raise ComponentError("product_denied")
    path = DATA_PATH + product
    auth = session.sign("GET", path, query, clock_ms())
    url = f"{path}?{query}" if query else path
    headers = auth.headers()
    if hidden:
        headers[HIDDEN_HEADER] = "1"
    reply = await transport.request("GET", url, headers, None)
    if reply.status != 200:
        raise server_error(reply)
    try:
        return session.open(reply.body, auth, PAYLOAD_LIMITS)
    except EnvelopeError as exc:
        raise ComponentError("bad_envelope") from exc


async def renew_session(
    transport: Transport, session: ClientSession, clock_ms: Callable[[], int]
) -> None:
    """Extend ``session`` (the server checks the licence again); the new
    expiry comes sealed to the session. ComponentError when refused."""
    auth = session.sign("POST", RENEW_PATH, "", clock_ms())
    reply = await transport.request("POST", RENEW_PATH, auth.headers(), b"")
    if reply.status != 200:
        raise server_error(reply)
    try:
        payload = session.open(reply.body, auth, RENEWAL_LIMITS).payload
    except EnvelopeError as exc:
        raise ComponentError("bad_envelope") from exc
    expires = payload.get("expires_ms") if isinstance(payload, dict) else None
    if type(expires) is not int or expires < session.expires_ms:
        raise ComponentError("bad_payload")
    session.expires_ms = expires


class BrowserTransport:
    """``fetch`` in the Worker, through Pyodide; same origin, no cookies."""

    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpReply:
        import js  # type: ignore[import-not-found]
        from pyodide.ffi import JsException, to_js  # type: ignore[import-not-found]
        from pyodide.http import AbortError, pyfetch  # type: ignore[import-not-found]

        options: dict[str, Any] = {
            "method": method,
            "headers": dict(headers),
            "credentials": "omit",
            "cache": "no-store",
            "signal": js.AbortSignal.timeout(FETCH_TIMEOUT_MS),
        }
        if body is not None:
            options["body"] = to_js(body)
        try:
            response = await pyfetch(path, **options)
            return HttpReply(response.status, await response.bytes())
        except (AbortError, OSError, JsException) as exc:
            raise ComponentError("network") from exc
