"""Alerts to the operator: a webhook POST for each, never in a request's way."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx

from . import native
from .config import AbuseConfig

logger = logging.getLogger(__name__)


class AlertWebhook:
    """POSTs alerts to the operator's webhook in background tasks.

    Delivery never delays a request: each alert is one task with a timeout,
    at most ``webhook_max_pending`` at once (beyond that an alert is only
    stored and listed). There is one attempt per alert; the admin API's
    alert list is the record.
    """

    def __init__(self, cfg: AbuseConfig) -> None:
        self.cfg = cfg
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def send(self, alert: dict[str, Any]) -> None:
        """Start posting ``alert``; returns at once."""
        if not self.cfg.webhook_url:
            return
        if len(self._tasks) >= self.cfg.webhook_max_pending:
            logger.warning("alert webhook backlog full; alert %s kept only in the "
                           "alert list", alert.get("seq"))
            return
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.cfg.webhook_timeout_s, follow_redirects=False)
        task = asyncio.get_running_loop().create_task(self._post(self._client, alert))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, client: httpx.AsyncClient, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.cfg.webhook_secret:
            mac = native.hmac_sm3(self.cfg.webhook_secret.encode(), body)
            headers["X-Xf-Signature"] = "hmac-sm3=" + mac.hex()
        try:
            reply = await client.post(self.cfg.webhook_url, content=body,
                                      headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("alert webhook failed: %s", type(exc).__name__)
            return
        if reply.status_code >= 300:
            logger.warning("alert webhook answered %d", reply.status_code)

    async def drain(self) -> None:
        """Wait until every alert started so far was delivered or failed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Finish pending deliveries and close the HTTP client."""
        await self.drain()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


__all__ = ["AlertWebhook"]
