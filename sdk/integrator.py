"""Mint embed tokens from the integrator's backend.

The integrator's backend holds the long-lived license credential and calls
:func:`mint_token` whenever a page needs an embed token; only the
short-lived token goes to the browser. Standard library only.

The credential is a bearer secret, so it is sent only over https (plain
http is allowed for loopback hosts, for local development) and never
follows a redirect to wherever the response points.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from email.message import Message
from typing import IO, Any

from .errors import (
    LicenseError,
    PayloadTooLarge,
    ProtocolError,
    StorageUnavailable,
    TokenInvalid,
    XinfengError,
)

TOKENS_PATH = "/v1/tokens"
MAX_RESPONSE_SIZE = 65536
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

_CREDENTIAL_RE = re.compile(r"xfc_[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{43}")
_STATUS_ERRORS: dict[int, type[XinfengError]] = {
    401: TokenInvalid,
    403: LicenseError,
    413: PayloadTooLarge,
    503: StorageUnavailable,
}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        return None


def mint_token(
    provider_url: str,
    credential: str,
    products: Sequence[str],
    origin: str,
    timeout: float = 5,
) -> str:
    """Ask the provider for an embed token; return the token text.

    ``provider_url`` is the provider's base URL, e.g.
    ``https://data.example.org``; the request goes to ``/v1/tokens`` below it.

    Raises:
        ValueError: an argument is malformed, or ``provider_url`` is not
            https (http only for loopback hosts).
        XinfengError: the provider refused (the subclass matching the
            error code it returned) or could not be reached.
    """
    url = _tokens_url(provider_url)
    if not isinstance(origin, str) or not origin:
        raise ValueError("origin must be the embedding page's origin")
    body = json.dumps({"products": _check_products(products), "origin": origin})
    request = urllib.request.Request(
        url,
        data=body.encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {_check_credential(credential)}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    status, payload = _send(request, timeout)
    if status != 200:
        raise _server_error(status, payload)
    return _token_from(payload)


def _tokens_url(provider_url: str) -> str:
    parts = urllib.parse.urlsplit(provider_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("provider_url must be an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("provider_url must not carry user info, query or fragment")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("provider_url must use https")
    return provider_url.rstrip("/") + TOKENS_PATH


def _check_credential(credential: str) -> str:
    if not isinstance(credential, str) or not _CREDENTIAL_RE.fullmatch(credential):
        raise ValueError("malformed license credential")
    return credential


def _check_products(products: Sequence[str]) -> list[str]:
    if isinstance(products, str) or not isinstance(products, Sequence):
        raise ValueError("products must be a list of product names")
    if not products or not all(isinstance(p, str) and p for p in products):
        raise ValueError("products must be a non-empty list of names")
    return list(products)


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, Any]:
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, _read_json(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, _read_json(exc)
    except (urllib.error.URLError, OSError):
        raise XinfengError("the provider could not be reached") from None


def _read_json(stream: IO[bytes]) -> Any:
    data = stream.read(MAX_RESPONSE_SIZE + 1)
    if len(data) > MAX_RESPONSE_SIZE:
        return None
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _token_from(payload: Any) -> str:
    token = payload.get("token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise ProtocolError("the provider's reply carries no token")
    return token


def _server_error(status: int, payload: Any) -> XinfengError:
    code = _error_code(payload)
    for cls in _error_classes(XinfengError):
        if code is not None and cls.code == code:
            return cls()
    error = _STATUS_ERRORS.get(status, XinfengError)()
    if code is not None:
        error.code = code
    return error


def _error_code(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        error = error.get("code")
    code = error if isinstance(error, str) else payload.get("code")
    return code if isinstance(code, str) and len(code) <= 64 else None


def _error_classes(base: type[XinfengError]) -> Iterator[type[XinfengError]]:
    for cls in base.__subclasses__():
        yield cls
        yield from _error_classes(cls)
