"""The integrator helper against a tiny provider stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from xinfeng.sdk.errors import (
    LicenseSuspended,
    ProductDenied,
    ProtocolError,
    TokenInvalid,
    XinfengError,
)
from xinfeng.sdk.integrator import mint_token

CREDENTIAL = "xfc_lic-0001." + "A" * 42 + "Q"
ORIGIN = "https://ecs.example.gov.cn"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"token": "tok.en.sig", "expires": 1767225900}'
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Provider(ThreadingHTTPServer):
    reply: Reply
    seen: list[Seen]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hangs up early is part of some tests


class Handler(BaseHTTPRequestHandler):
    server: Provider

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.seen.append(
            Seen(
                "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
        )
        reply = self.server.reply
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def start_provider() -> Provider:
    provider = Provider(("127.0.0.1", 0), Handler)
    provider.reply = Reply()
    provider.seen = []
    serve = threading.Thread(target=provider.serve_forever, args=(0.01,), daemon=True)
    serve.start()
    return provider


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = start_provider()
    yield server
    server.shutdown()
    server.server_close()


def error_body(code: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": "refused"}}).encode()


# -- the request ---------------------------------------------------------------------


def test_mint_token_returns_the_token(provider: Provider) -> None:
    token = mint_token(provider.url, CREDENTIAL, ["gd-stations"], ORIGIN)

    assert token == "tok.en.sig"


def test_mint_token_posts_credential_and_json_body(provider: Provider) -> None:
    mint_token(provider.url + "/", CREDENTIAL, ["gd-stations", "gd-radar"], ORIGIN)

    [seen] = provider.seen
    assert seen.path == "/v1/tokens"
    assert seen.headers["authorization"] == f"Bearer {CREDENTIAL}"
    assert seen.headers["content-type"] == "application/json"
    assert json.loads(seen.body) == {
        "products": ["gd-stations", "gd-radar"],
        "origin": ORIGIN,
    }


def test_mint_token_keeps_base_path(provider: Provider) -> None:
    mint_token(provider.url + "/xinfeng", CREDENTIAL, ["gd-stations"], ORIGIN)

    assert provider.seen[0].path == "/xinfeng/v1/tokens"


# -- the provider refuses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (401, "token_invalid", TokenInvalid),
        (403, "license_suspended", LicenseSuspended),
        (403, "product_denied", ProductDenied),
    ],
)
def test_mint_token_raises_the_error_for_the_servers_code(
    provider: Provider, status: int, code: str, error: type[XinfengError]
) -> None:
    provider.reply = Reply(status, error_body(code))

    with pytest.raises(error) as caught:
        mint_token(provider.url, CREDENTIAL, ["gd-stations"], ORIGIN)
    assert type(caught.value) is error
    assert caught.value.code == code


def test_mint_token_keeps_an_unknown_code(provider: Provider) -> None:
    provider.reply = Reply(429, error_body("rate_limited"), {"Retry-After": "30"})

    with pytest.raises(XinfengError) as caught:
        mint_token(provider.url, CREDENTIAL, ["gd-stations"], ORIGIN)
    assert caught.value.code == "rate_limited"


def test_mint_token_maps_status_without_json_body(provider: Provider) -> None:
    provider.reply = Reply(401, b"<html>nope</html>")

    with pytest.raises(TokenInvalid):
        mint_token(provider.url, CREDENTIAL, ["gd-stations"], ORIGIN)


def test_mint_token_raises_on_server_error_without_body(provider: Provider) -> None:
    provider.reply = Reply(500, b"")

    with pytest.raises(XinfengError) as caught:
        mint_token(provider.url, CREDENTIAL, ["gd-stations"], ORIGIN)
    assert type(caught.value) is XinfengError


@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"token": 5}', b'{"token": ""}', b"[]", b"not json", b"x" * 70000],
    ids=["empty", "number", "blank", "list", "text", "oversized"],
)
def test_mint_token_rejects_reply_without_token(
    provider: Provider, body: bytes
) -> None:
    provider.reply = Reply(200, body)

    with pytest.raises(ProtocolError):
        mint_token(provider.url, CREDENTIAL, ["gd-stations"], ORIGIN)


def test_mint_token_does_not_follow_redirect_with_credential(
    provider: Provider,
) -> None:
    elsewhere = start_provider()
    try:
        target = elsewhere.url + "/v1/tokens"
        provider.reply = Reply(307, b"{}", {"Location": target})

        with pytest.raises(XinfengError):
            mint_token(provider.url, CREDENTIAL, ["gd-stations"], ORIGIN)
        assert elsewhere.seen == []
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()


# -- the provider is not there ------------------------------------------------------


def test_mint_token_raises_when_connection_is_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(XinfengError) as caught:
        mint_token(f"http://127.0.0.1:{port}", CREDENTIAL, ["gd-stations"], ORIGIN)
    assert type(caught.value) is XinfengError


def test_mint_token_times_out_on_silent_provider() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        with pytest.raises(XinfengError):
            mint_token(url, CREDENTIAL, ["gd-stations"], ORIGIN, timeout=0.2)


# -- arguments it refuses before sending anything -------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://provider.example.org",
        "ftp://127.0.0.1",
        "file:///etc/passwd",
        "https://user:pw@provider.example.org",
        "https://provider.example.org?x=1",
        "https://provider.example.org#frag",
        "provider.example.org",
        "https://",
    ],
)
def test_mint_token_refuses_provider_url(url: str) -> None:
    with pytest.raises(ValueError):
        mint_token(url, CREDENTIAL, ["gd-stations"], ORIGIN)


@pytest.mark.parametrize(
    "credential",
    [CREDENTIAL + "\r\nX-Evil: 1", "Bearer " + CREDENTIAL, "", "xfc_lic.short"],
    ids=["header_injection", "bearer_prefix", "empty", "short_secret"],
)
def test_mint_token_refuses_malformed_credential(
    provider: Provider, credential: str
) -> None:
    with pytest.raises(ValueError):
        mint_token(provider.url, credential, ["gd-stations"], ORIGIN)
    assert provider.seen == []


@pytest.mark.parametrize("origin", ["", None, ["https://a.example"]])
def test_mint_token_refuses_origin(provider: Provider, origin: Any) -> None:
    with pytest.raises(ValueError):
        mint_token(provider.url, CREDENTIAL, ["gd-stations"], origin)
    assert provider.seen == []


@pytest.mark.parametrize("products", [[], "gd-stations", [""], [3]])
def test_mint_token_refuses_products(provider: Provider, products: Any) -> None:
    with pytest.raises(ValueError):
        mint_token(provider.url, CREDENTIAL, products, ORIGIN)
    assert provider.seen == []
