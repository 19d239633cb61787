"""Audit log routes and the tree-head publisher.

Tree heads and proofs contain hashes only and are public, like a
Certificate Transparency log's: anyone holding a signed tree head can check
that an event is in the log and that the log only grew. Leaves name
licensees, projects and client networks, so ``/v1/audit/leaves`` needs an
admin token (``Authorization: Bearer xfa_...``), and each read is itself
logged. Hashes and signatures are hex, leaves base64.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from xinfeng.sdk.errors import ProtocolError, XinfengError
from xinfeng.sdk.wire import parse_uint

from .api import request_ip, state_of

if TYPE_CHECKING:
    from .app import AppState

logger = logging.getLogger(__name__)

PUBLISH_INTERVAL_S = 10.0
ON_DEMAND_INTERVAL_MS = 1000
MAX_LEAVES_PAGE = 1000
NO_STORE = {"Cache-Control": "no-store"}


def _int(request: Request, name: str, default: int | None = None) -> int:
    text = request.query_params.get(name)
    if text is None and default is not None:
        return default
    try:
        return parse_uint(text or "")
    except ValueError:
        raise ProtocolError(f"{name} must be a non-negative integer") from None


def head_json(state: AppState, head: Any) -> dict[str, Any]:
    return {**head.to_json(), "kid": state.server_kid}


async def get_sth(request: Request) -> Response:
    """The latest signed tree head, signing a new one at most once a second."""
    state = state_of(request)
    head = await state.storage.audit.publish(state.server_key, state.now_ms(),
                                             ON_DEMAND_INTERVAL_MS)
    return JSONResponse(head_json(state, head), headers=NO_STORE)


async def inclusion(request: Request) -> Response:
    """PATH(index, D[size]): the proof that leaf ``index`` is in the tree."""
    audit = state_of(request).storage.audit
    index, size = _int(request, "index"), _int(request, "size")
    try:
        proof = await audit.inclusion_proof(index, size)
    except ValueError:
        raise ProtocolError("need index < size <= the log's size") from None
    leaf_hash = (await audit.leaf_hashes(index, index + 1))[0]
    body = {"index": index, "size": size, "leaf_hash": leaf_hash.hex(),
            "proof": [p.hex() for p in proof]}
    return JSONResponse(body, headers=NO_STORE)


async def consistency(request: Request) -> Response:
    """PROOF(first, D[second]): the tree of ``first`` leaves is a prefix."""
    audit = state_of(request).storage.audit
    first, second = _int(request, "first"), _int(request, "second")
    try:
        proof = await audit.consistency_proof(first, second)
    except ValueError:
        raise ProtocolError("need 0 < first <= second <= the log's size") from None
    body = {"first": first, "second": second, "proof": [p.hex() for p in proof]}
    return JSONResponse(body, headers=NO_STORE)


async def leaves(request: Request) -> Response:
    """Leaves ``start <= index < end``, at most ``MAX_LEAVES_PAGE`` at once."""
    from .admin import authenticate

    state = state_of(request)
    admin = await authenticate(state, request)
    start = _int(request, "start")
    end = min(_int(request, "end", start + MAX_LEAVES_PAGE),
              start + MAX_LEAVES_PAGE)
    found = await state.storage.audit.leaves(start, end)
    await state.storage.log_event(
        state.now_ms(), "audit_read", "ok", None,
        {"admin": admin, "start": start, "end": end,
         "ip": request_ip(state, request)})
    body = {"start": start, "end": start + len(found),
            "leaves": [{"index": i, "leaf": base64.b64encode(leaf).decode()}
                       for i, leaf in found]}
    return JSONResponse(body, headers=NO_STORE)


def routes(state: AppState) -> list[BaseRoute]:
    """The audit routes."""
    return [
        Route("/v1/audit/sth", get_sth, methods=["GET"]),
        Route("/v1/audit/proof/inclusion", inclusion, methods=["GET"]),
        Route("/v1/audit/proof/consistency", consistency, methods=["GET"]),
        Route("/v1/audit/leaves", leaves, methods=["GET"]),
    ]


# -- publishing --------------------------------------------------------------------


async def publish_now(state: AppState) -> None:
    """Sign a tree head if the log grew; a failure is logged, not raised."""
    try:
        await state.storage.audit.publish(state.server_key, state.now_ms())
    except XinfengError as exc:
        logger.error("audit tree head not published: %s", exc.code)


async def _publish_forever(state: AppState, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await publish_now(state)


@contextlib.asynccontextmanager
async def publishing(
    state: AppState, interval_s: float | None = None
) -> AsyncIterator[None]:
    """Load the log, then publish a tree head every ``interval_s`` seconds
    in which it grew, and once more on the way out.

    Loading raises AuditCorrupt when the stored leaves contradict the latest
    signed tree head: the server then does not start.
    """
    await state.storage.audit.load()
    every = PUBLISH_INTERVAL_S if interval_s is None else interval_s
    task = asyncio.create_task(_publish_forever(state, every))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await publish_now(state)
