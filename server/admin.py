"""The licensor's admin API, mounted under ``/admin/v1``.

Every request needs ``Authorization: Bearer xfa_...``, an admin token made
with ``xinfeng admin token new`` (see :mod:`xinfeng.server.admin_tokens`);
a license credential or an embed token never opens it. The admin's name
is the identity recorded in each decision: reviewers approve as themselves,
and cannot name someone else. Each request, refused ones included, is an
audit event (``admin_request``) besides the domain event the action writes.

JSON in and out; errors have the shape ``{"error": {"code", "message"}}``.
Times are ISO 8601 with a zone (``2026-01-01T00:00:00+08:00``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from xinfeng.license.model import MAX_LICENSE_DAYS, parse_time
from xinfeng.sdk.errors import ProtocolError, XinfengError

from .abuse import query_int
from .admin_tokens import AdminTokens, AdminUnauthorized
from .api import read_body, request_ip, state_of, ua_digest
from .keys import KeyDir
from .licensing import (
    LICENSE_DEFAULTS,
    LICENSE_FIELDS,
    LicenseFilter,
    Licensor,
    issue_window,
)
from .registry import ProductRegistry

if TYPE_CHECKING:
    from .app import AppState

logger = logging.getLogger(__name__)

MAX_ADMIN_BODY = 65536
NO_STORE = {"Cache-Control": "no-store"}

Body = dict[str, Any]
Handler = Callable[[Request, "AppState", str], Awaitable[Body]]
Endpoint = Callable[[Request], Awaitable[Response]]


# -- authentication, audit, request parsing ----------------------------------


async def authenticate(state: AppState, request: Request) -> str:
    """The admin's name; an audit event and AdminUnauthorized otherwise."""
    auth = request.headers.get("authorization", "")
    try:
        if not auth.startswith("Bearer "):
            raise AdminUnauthorized()
        return AdminTokens(state.config.data_dir).check(auth[len("Bearer ") :])
    except AdminUnauthorized as exc:
        await _audit(state, request, "authenticate", exc.code, None)
        raise


async def _audit(
    state: AppState, request: Request, action: str, outcome: str, admin: str | None
) -> None:
    params = {k: str(v)[:64] for k, v in request.path_params.items()}
    detail = {
        "action": action,
        "admin": admin,
        "target": params,
        "ip": request_ip(state, request),
        "ua": ua_digest(request),
    }
    await state.storage.log_event(
        state.now_ms(), "admin_request", outcome, params.get("license_id"), detail
    )


def _endpoint(action: str, handler: Handler) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        admin = await authenticate(state, request)
        try:
            body = await handler(request, state, admin)
        except XinfengError as exc:
            await _audit(state, request, action, exc.code, admin)
            raise
        await _audit(state, request, action, "ok", admin)
        return JSONResponse(body, headers=NO_STORE)

    return endpoint


async def _body(
    request: Request, allowed: Iterable[str], required: Iterable[str] = ()
) -> Body:
    raw = await read_body(request, MAX_ADMIN_BODY)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError("body is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError("body must be a JSON object")
    unknown = set(body) - set(allowed)
    missing = set(required) - set(body)
    if unknown or missing:
        names = ", ".join(sorted(str(n)[:32] for n in unknown | missing))
        raise ProtocolError(f"unknown or missing fields: {names}")
    return body


def _time(value: object) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise ProtocolError("times are ISO 8601 with a zone") from None


def _days(value: object) -> int | None:
    if value is not None and (
        type(value) is not int or not 0 < value <= MAX_LICENSE_DAYS
    ):
        raise ProtocolError(f"days must be a whole number from 1 to {MAX_LICENSE_DAYS}")
    return value


def _licensor(state: AppState) -> Licensor:
    return Licensor(state.storage, KeyDir(state.config.keys_dir))


# -- products ------------------------------------------------------------------

_PRODUCT_FIELDS = (
    "product_id",
    "name",
    "category",
    "grade",
    "identifier",
    "region",
    "category_code",
    "source",
    "owner",
)
_EDIT_FIELDS = ("name", "category", "grade", "identifier", "source", "owner")


async def whoami(request: Request, state: AppState, admin: str) -> Body:
    return {"admin": admin}


async def product_list(request: Request, state: AppState, admin: str) -> Body:
    wanted = request.query_params.get("state")
    products = await ProductRegistry(state.storage).list_products(wanted)
    return {"products": [p.to_json() for p in products]}


async def product_create(request: Request, state: AppState, admin: str) -> Body:
    fields = await _body(request, _PRODUCT_FIELDS)
    product = await ProductRegistry(state.storage).create(fields, admin, state.now_ms())
    return {"product": product.to_json()}


async def product_show(request: Request, state: AppState, admin: str) -> Body:
    pid = request.path_params["product_id"]
    return {"product": (await ProductRegistry(state.storage).get(pid)).to_json()}


async def product_edit(request: Request, state: AppState, admin: str) -> Body:
    changes = await _body(request, _EDIT_FIELDS)
    pid = request.path_params["product_id"]
    product = await ProductRegistry(state.storage).edit(
        pid, changes, admin, state.now_ms()
    )
    return {"product": product.to_json()}


async def product_submit(request: Request, state: AppState, admin: str) -> Body:
    note = (await _body(request, ("note",))).get("note", "")
    if not isinstance(note, str):
        raise ProtocolError("note must be text")
    pid = request.path_params["product_id"]
    product = await ProductRegistry(state.storage).submit(
        pid, admin, state.now_ms(), note
    )
    return {"product": product.to_json()}


def _decision(verb: str) -> Handler:
    async def decide(request: Request, state: AppState, admin: str) -> Body:
        reason = (await _body(request, ("reason",), ("reason",)))["reason"]
        registry = ProductRegistry(state.storage)
        act = getattr(registry, verb)
        product = await act(
            request.path_params["product_id"], admin, reason, state.now_ms()
        )
        return {"product": product.to_json()}

    return decide


# -- licenses --------------------------------------------------------------------

# A license's own fields, plus "days" as a shorthand for not_after.
_ISSUE_FIELDS = (*LICENSE_FIELDS, "days")
_FILTERS = ("status", "project", "licensee", "product", "key_id")


async def alert_list(request: Request, state: AppState, admin: str) -> Body:
    """Abuse alerts after ``since`` (a sequence number), oldest first."""
    since = query_int(request, "since", 0)
    found = await state.guard.alerts(since, query_int(request, "limit", 100))
    return {"alerts": found, "next": found[-1]["seq"] if found else since}


async def license_list(request: Request, state: AppState, admin: str) -> Body:
    query = request.query_params
    if set(query) - set(_FILTERS):
        raise ProtocolError("filters: " + ", ".join(_FILTERS))
    wanted = LicenseFilter(**{name: query.get(name) for name in _FILTERS})
    rows = await _licensor(state).list_licenses(wanted, state.now_ms())
    return {"licenses": rows}


async def license_issue(request: Request, state: AppState, admin: str) -> Body:
    body = await _body(request, _ISSUE_FIELDS)
    start, end = issue_window(
        state.now_s(),
        _time(body.pop("not_before", None)),
        _time(body.pop("not_after", None)),
        _days(body.pop("days", None)),
    )
    fields = LICENSE_DEFAULTS | body | {"not_before": start, "not_after": end}
    return await _licensor(state).issue(fields, admin, state.now_ms())


async def license_show(request: Request, state: AppState, admin: str) -> Body:
    return await _licensor(state).show(request.path_params["license_id"], state.now_s())


def _status_change(action: str) -> Handler:
    async def change(request: Request, state: AppState, admin: str) -> Body:
        reason = (await _body(request, ("reason",), ("reason",)))["reason"]
        return await _licensor(state).change_status(
            request.path_params["license_id"], action, reason, admin, state.now_ms()
        )

    return change


async def license_renew(request: Request, state: AppState, admin: str) -> Body:
    body = await _body(request, ("not_before", "not_after", "days"))
    return await _licensor(state).renew(
        request.path_params["license_id"],
        admin,
        state.now_ms(),
        not_before=_time(body.get("not_before")),
        not_after=_time(body.get("not_after")),
        days=_days(body.get("days")),
    )


def routes(state: AppState) -> list[BaseRoute]:
    """The admin routes, relative to their mount point."""
    product, lic = "/products/{product_id}", "/licenses/{license_id}"
    table: list[tuple[str, str, str, Handler]] = [
        ("/whoami", "GET", "whoami", whoami),
        ("/products", "GET", "product_list", product_list),
        ("/products", "POST", "product_create", product_create),
        (product, "GET", "product_show", product_show),
        (product, "PATCH", "product_edit", product_edit),
        (product + "/submit", "POST", "product_submit", product_submit),
        (product + "/approve", "POST", "product_approve", _decision("approve")),
        (product + "/reject", "POST", "product_reject", _decision("reject")),
        (product + "/retire", "POST", "product_retire", _decision("retire")),
        ("/licenses", "GET", "license_list", license_list),
        ("/licenses", "POST", "license_issue", license_issue),
        (lic, "GET", "license_show", license_show),
        (lic + "/suspend", "POST", "license_suspend", _status_change("suspend")),
        (lic + "/resume", "POST", "license_resume", _status_change("resume")),
        (lic + "/revoke", "POST", "license_revoke", _status_change("revoke")),
        (lic + "/renew", "POST", "license_renew", license_renew),
        ("/alerts", "GET", "alert_list", alert_list),
    ]
    return [
        Route(path, _endpoint(action, handler), methods=[method], name=action)
        for path, method, action, handler in table
    ]
