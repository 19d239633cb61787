"""State on SQLite through aiosqlite: licenses, sessions, counters, audit log.

One connection in WAL mode; every read-modify-write is a single statement
(``UPDATE ... RETURNING``) so that concurrent requests lose no update.
Any database failure surfaces as ``StorageUnavailable`` and the server
fails closed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from xinfeng.sdk.errors import StorageUnavailable

from .audit import SCHEMA as AUDIT_SCHEMA
from .audit import AuditLog
from .limits_store import SCHEMA as LIMITS_SCHEMA
from .registry_store import SCHEMA as REGISTRY_SCHEMA

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS licenses (
    license_id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'suspended', 'revoked')),
    status_reason TEXT NOT NULL DEFAULT '',
    credential_verifier BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id BLOB PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES licenses(license_id),
    products TEXT NOT NULL,
    origin TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    session_key BLOB NOT NULL,
    counter INTEGER NOT NULL DEFAULT 0,
    expires_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_license ON sessions(license_id);
"""


@dataclass(frozen=True)
class LicenseRecord:
    """A stored license: the signed token and its mutable status."""

    license_id: str
    token: str
    status: str
    credential_verifier: bytes


@dataclass(frozen=True)
class SessionRecord:
    """A session after its counter was advanced."""

    session_id: bytes
    license_id: str
    products: tuple[str, ...]
    origin: str
    session_key: bytes
    counter: int
    created_ms: int


@asynccontextmanager
async def _guard(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (sqlite3.Error, ValueError) as exc:
        logger.error("storage failure during %s: %s", what, type(exc).__name__)
        raise StorageUnavailable() from exc


class Storage:
    """The server's state on one SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self.audit = AuditLog(lambda: self.db, self._license_token)

    async def open(self) -> None:
        """Open the database, creating the schema when it is new."""
        async with _guard("open"):
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA foreign_keys=ON")
            await self._db.execute("PRAGMA busy_timeout=5000")
            await self._db.executescript(SCHEMA)
            await self._db.executescript(REGISTRY_SCHEMA)
            await self._db.executescript(AUDIT_SCHEMA)
            await self._db.executescript(LIMITS_SCHEMA)

    async def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageUnavailable()
        return self._db

    async def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        async with _guard(sql.split()[0].lower()):
            async with self.db.execute(sql, args) as cur:
                return await cur.fetchone()

    async def put_license(
        self, license_id: str, token: str, verifier: bytes, now_ms: int
    ) -> None:
        """Store a newly issued license."""
        await self._one(
            "INSERT INTO licenses (license_id, token, credential_verifier,"
            " created_ms) VALUES (?, ?, ?, ?) RETURNING license_id",
            (license_id, token, verifier, now_ms),
        )

    async def get_license(self, license_id: str) -> LicenseRecord | None:
        """The stored license, or None when there is none with that id."""
        row = await self._one(
            "SELECT license_id, token, status, credential_verifier"
            " FROM licenses WHERE license_id = ?",
            (license_id,),
        )
        return LicenseRecord(*row) if row else None

    async def list_licenses(self) -> list[LicenseRecord]:
        """Every stored license, oldest first."""
        async with _guard("select"):
            async with self.db.execute(
                "SELECT license_id, token, status, credential_verifier"
                " FROM licenses ORDER BY created_ms, license_id"
            ) as cur:
                return [LicenseRecord(*row) for row in await cur.fetchall()]

    async def set_license_status(
        self, license_id: str, status: str, reason: str
    ) -> bool:
        """Change a license's status; a revoked license never changes again."""
        row = await self._one(
            "UPDATE licenses SET status = ?, status_reason = ?"
            " WHERE license_id = ? AND status != 'revoked' RETURNING license_id",
            (status, reason, license_id),
        )
        return row is not None

    async def create_session(
        self,
        session_id: bytes,
        license_id: str,
        products: tuple[str, ...],
        origin: str,
        client_ip: str,
        session_key: bytes,
        expires_ms: int,
        now_ms: int,
    ) -> None:
        """Store a new session with counter 0."""
        await self._one(
            "INSERT INTO sessions (session_id, license_id, products, origin,"
            " client_ip, session_key, expires_ms, created_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING session_id",
            (session_id, license_id, json.dumps(list(products)), origin,
             client_ip, session_key, expires_ms, now_ms),
        )

    async def get_session_key(self, session_id: bytes, now_ms: int) -> bytes | None:
        """The key of a live session, or None."""
        row = await self._one(
            "SELECT session_key FROM sessions"
            " WHERE session_id = ? AND expires_ms > ?",
            (session_id, now_ms),
        )
        return row[0] if row else None

    async def advance_counter(
        self, session_id: bytes, counter: int, now_ms: int
    ) -> SessionRecord | None:
        """Move a live session's counter forward to ``counter``.

        Returns None when the session is unknown or expired, or when
        ``counter`` is not greater than the last one used: one atomic
        statement, so two requests can never both use one counter.
        """
        row = await self._one(
            "UPDATE sessions SET counter = ? WHERE session_id = ?"
            " AND counter < ? AND expires_ms > ?"
            " RETURNING session_id, license_id, products, origin, session_key,"
            " counter, created_ms",
            (counter, session_id, counter, now_ms),
        )
        if row is None:
            return None
        sid, license_id, products, origin, key, ctr, created = row
        return SessionRecord(sid, license_id, tuple(json.loads(products)),
                             origin, key, ctr, created)

    async def extend_session(
        self, session_id: bytes, expires_ms: int, now_ms: int
    ) -> bool:
        """Give a live session a new expiry; False when it already ended."""
        row = await self._one(
            "UPDATE sessions SET expires_ms = ? WHERE session_id = ?"
            " AND expires_ms > ? RETURNING session_id",
            (expires_ms, session_id, now_ms),
        )
        return row is not None

    async def log_event(
        self, now_ms: int, kind: str, outcome: str, license_id: str | None,
        detail: dict[str, Any],
    ) -> int:
        """Append a security event to the audit log; returns its leaf index."""
        return await self.audit.append_event(now_ms, kind, outcome, license_id,
                                             detail)

    async def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Logged events, oldest first, optionally of one kind."""
        return await self.audit.events(kind)

    async def _license_token(self, license_id: str) -> str | None:
        record = await self.get_license(license_id)
        return record.token if record else None
