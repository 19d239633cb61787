"""SQL for rate limits, quotas, session slots and the abuse ladder's state.

The tables live on the server's one aiosqlite connection, next to those of
:mod:`xinfeng.server.storage`, and are created when it opens. Every
read-modify-write is one statement (``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` or ``INSERT ... SELECT ... WHERE``), so concurrent requests, on
this connection or on others to the same database, lose no update and never
overshoot a limit. No explicit transaction is opened: the connection is
shared by every request in flight, and a transaction would take their
statements in too. Any database failure is ``StorageUnavailable``: the
server fails closed.

This class is the seam where a shared store (Redis, PostgreSQL) would take
over when the server runs as several replicas.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xinfeng.sdk.errors import StorageUnavailable

if TYPE_CHECKING:
    from .storage import Storage

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS limit_buckets (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS limit_buckets_expiry ON limit_buckets(expires_ms);
CREATE TABLE IF NOT EXISTS session_slots (
    slot_id TEXT PRIMARY KEY,
    license_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    net TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS session_slots_live
    ON session_slots(license_id, expires_ms);
CREATE INDEX IF NOT EXISTS session_slots_token ON session_slots(jti);
CREATE INDEX IF NOT EXISTS session_slots_expiry ON session_slots(expires_ms);
CREATE TABLE IF NOT EXISTS abuse_activity (
    subject TEXT PRIMARY KEY,
    stamps TEXT NOT NULL,
    nets TEXT NOT NULL,
    hidden INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS abuse_activity_expiry ON abuse_activity(expires_ms);
CREATE TABLE IF NOT EXISTS abuse_walks (
    key TEXT NOT NULL,
    param TEXT NOT NULL,
    last REAL NOT NULL,
    last_ms INTEGER NOT NULL,
    up REAL NOT NULL,
    down REAL NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (key, param)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS abuse_walks_expiry ON abuse_walks(expires_ms);
CREATE TABLE IF NOT EXISTS abuse_strikes (
    license_id TEXT NOT NULL,
    signal TEXT NOT NULL,
    subject TEXT NOT NULL,
    last_ms INTEGER NOT NULL,
    PRIMARY KEY (license_id, signal, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS abuse_suspicion (
    license_id TEXT PRIMARY KEY,
    score REAL NOT NULL,
    prior REAL NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS license_holds (
    license_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('throttle', 'freeze')),
    since_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS abuse_alerts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    license_id TEXT NOT NULL,
    level TEXT NOT NULL,
    signal TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""

STAMP_WIDTH = 13
MAX_NETS_TEXT = 400

_ADMIT_SQL = """
WITH req(scope, key, kind, step, cap, expires_ms) AS (VALUES {rows}),
nxt AS (
    SELECT req.scope AS scope, req.key AS key, req.kind AS kind,
        req.cap AS cap, req.expires_ms AS expires_ms,
        CASE req.kind WHEN 'gcra' THEN max(coalesce(b.value, 0), ?) + req.step
            ELSE coalesce(b.value, 0) + req.step END AS value
    FROM req LEFT JOIN limit_buckets AS b
        ON b.scope = req.scope AND b.key = req.key
)
INSERT INTO limit_buckets (scope, key, value, expires_ms)
SELECT scope, key, value,
    CASE kind WHEN 'gcra' THEN value / 1000 + 1 ELSE expires_ms END
FROM nxt
WHERE NOT EXISTS (
        SELECT 1 FROM nxt WHERE CASE kind WHEN 'gcra' THEN value - ? > cap
            ELSE value > cap END)
    AND NOT EXISTS (
        SELECT 1 FROM license_holds WHERE license_id = ? AND until_ms > ?)
ON CONFLICT (scope, key) DO UPDATE
    SET value = excluded.value, expires_ms = excluded.expires_ms
RETURNING scope
"""

_ACTIVITY_SQL = """
INSERT INTO abuse_activity (subject, stamps, nets, hidden, expires_ms)
VALUES {rows}
ON CONFLICT (subject) DO UPDATE SET
    stamps = substr(stamps || excluded.stamps, ?),
    nets = CASE WHEN instr(nets, excluded.nets) > 0 OR length(nets) >= ?
        THEN nets ELSE nets || substr(excluded.nets, 2) END,
    hidden = hidden + excluded.hidden,
    expires_ms = excluded.expires_ms
RETURNING subject, stamps, nets, hidden,
    (SELECT kind FROM license_holds WHERE license_id = ? AND until_ms > ?),
    (SELECT until_ms FROM license_holds WHERE license_id = ? AND until_ms > ?)
"""

# A walk scores steps up and steps down apart: a quick step up adds 1 to
# ``up`` and halves ``down``, and the other way round; a slow step halves
# both; a repeated value changes neither. Tiles walked row by row (up, up,
# ..., one jump back, up, up...) keep ``up`` climbing.
_WALK_SQL = """
INSERT INTO abuse_walks (key, param, last, last_ms, up, down, expires_ms)
VALUES {rows}
ON CONFLICT (key, param) DO UPDATE SET
    up = CASE WHEN excluded.last = last THEN up
        WHEN excluded.last > last AND excluded.last_ms - last_ms <= ?
            THEN up + 1 ELSE up / 2 END,
    down = CASE WHEN excluded.last = last THEN down
        WHEN excluded.last < last AND excluded.last_ms - last_ms <= ?
            THEN down + 1 ELSE down / 2 END,
    last = excluded.last,
    last_ms = excluded.last_ms,
    expires_ms = excluded.expires_ms
RETURNING key, param, max(up, down)
"""

_SUSPICION_SQL = """
INSERT INTO abuse_suspicion (license_id, score, prior, updated_ms)
VALUES (?, ?, 0, ?)
ON CONFLICT (license_id) DO UPDATE SET
    prior = max(score - max(excluded.updated_ms - updated_ms, 0) * ?, 0),
    score = max(score - max(excluded.updated_ms - updated_ms, 0) * ?, 0)
        + excluded.score,
    updated_ms = max(updated_ms, excluded.updated_ms)
RETURNING score, prior
"""

# A hold replaces one that has ended, and a freeze replaces a throttle; an
# active hold is never shortened.
_HOLD_SQL = """
INSERT INTO license_holds (license_id, kind, since_ms, until_ms, reason)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (license_id) DO UPDATE SET
    kind = excluded.kind, since_ms = excluded.since_ms,
    until_ms = excluded.until_ms, reason = excluded.reason
WHERE license_holds.until_ms <= excluded.since_ms
    OR (license_holds.kind = 'throttle' AND excluded.kind = 'freeze')
RETURNING kind, until_ms
"""


@dataclass(frozen=True)
class Bucket:
    """One limit a request must pass.

    ``kind`` is ``"gcra"`` (``step`` is the emission interval and ``cap``
    the burst tolerance, both in microseconds; the stored value is the
    theoretical arrival time) or ``"count"`` (``step`` is 1 and ``cap`` the
    number allowed until ``expires_ms``, when the window ends).
    """

    scope: str
    key: str
    kind: str
    step: int
    cap: int
    expires_ms: int = 0


@dataclass(frozen=True)
class Hold:
    """A throttle or freeze on a license, active until ``until_ms``."""

    kind: str
    until_ms: int


@dataclass(frozen=True)
class Activity:
    """One subject's recent request times, networks and hidden requests."""

    subject: str
    stamps: list[int]
    nets: list[str]
    hidden: int


@asynccontextmanager
async def _failing_closed(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (sqlite3.Error, ValueError) as exc:
        logger.error("limits storage failure during %s: %s", what,
                     type(exc).__name__)
        raise StorageUnavailable() from exc


class LimitsStore:
    """The limiter's and the abuse monitor's state, on ``storage``'s database."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def _rows(self, what: str, sql: str, args: Sequence[Any]) -> list[Any]:
        async with _failing_closed(what):
            async with self.storage.db.execute(sql, tuple(args)) as cur:
                return list(await cur.fetchall())

    async def admit(
        self, buckets: Sequence[Bucket], license_id: str, now_ms: int
    ) -> bool:
        """Take one request from every bucket, or from none.

        False when a bucket is empty or the license is on hold; nothing is
        taken then, so a refused request costs the client nothing.
        """
        rows = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(buckets))
        args: list[Any] = [v for b in buckets for v in
                           (b.scope, b.key, b.kind, b.step, b.cap, b.expires_ms)]
        now_us = now_ms * 1000
        args += [now_us, now_us, license_id, now_ms]
        taken = await self._rows("admit", _ADMIT_SQL.format(rows=rows), args)
        return len(taken) == len(buckets)

    async def bucket_values(self, buckets: Sequence[Bucket]) -> dict[str, int]:
        """The stored value of each bucket that has one, by scope."""
        found: dict[str, int] = {}
        for b in buckets:
            rows = await self._rows(
                "read", "SELECT value FROM limit_buckets WHERE scope = ? AND key = ?",
                (b.scope, b.key))
            if rows:
                found[b.scope] = int(rows[0][0])
        return found

    async def bump(self, scope: str, key: str, expires_ms: int) -> int:
        """Add one to a plain counter; its new value."""
        rows = await self._rows(
            "bump",
            "INSERT INTO limit_buckets (scope, key, value, expires_ms)"
            " VALUES (?, ?, 1, ?) ON CONFLICT (scope, key) DO UPDATE"
            " SET value = value + 1, expires_ms = excluded.expires_ms"
            " RETURNING value",
            (scope, key, expires_ms))
        return int(rows[0][0])

    async def bump_in_window(
        self, scope: str, key: str, now_ms: int, window_ms: int
    ) -> int:
        """Add one to ``key``'s counter for the fixed window of ``window_ms``
        that ``now_ms`` falls in; its new value (the window's count)."""
        window = now_ms // window_ms
        return await self.bump(scope, f"{key}|{window}", (window + 1) * window_ms)

    async def take_slot(
        self, slot_id: str, license_id: str, jti: str, net: str,
        expires_ms: int, now_ms: int, max_live: int,
    ) -> bool:
        """Open a session slot unless the license already has ``max_live``."""
        rows = await self._rows(
            "slot",
            "INSERT INTO session_slots (slot_id, license_id, jti, net,"
            " expires_ms) SELECT ?, ?, ?, ?, ? WHERE (SELECT count(*)"
            " FROM session_slots WHERE license_id = ? AND expires_ms > ?) < ?"
            " RETURNING slot_id",
            (slot_id, license_id, jti, net, expires_ms, license_id, now_ms,
             max_live))
        return bool(rows)

    async def extend_slot(self, slot_id: str, expires_ms: int, now_ms: int) -> bool:
        """Keep a live slot until ``expires_ms``; False when it is gone."""
        rows = await self._rows(
            "slot", "UPDATE session_slots SET expires_ms = ? WHERE slot_id = ?"
            " AND expires_ms > ? RETURNING slot_id", (expires_ms, slot_id, now_ms))
        return bool(rows)

    async def release_slot(self, slot_id: str) -> None:
        """Give back a slot whose handshake was refused after all."""
        await self._rows("slot", "DELETE FROM session_slots WHERE slot_id = ?"
                         " RETURNING slot_id", (slot_id,))

    async def first_slot_expiry(self, license_id: str, now_ms: int) -> int:
        """When the license's oldest live session slot ends (``now_ms`` if none)."""
        rows = await self._rows(
            "slot", "SELECT min(expires_ms) FROM session_slots"
            " WHERE license_id = ? AND expires_ms > ?", (license_id, now_ms))
        return int(rows[0][0]) if rows and rows[0][0] is not None else now_ms

    async def token_use(self, jti: str, net: str) -> tuple[int, int]:
        """Sessions opened with a token, and its networks, counting ``net``."""
        rows = await self._rows(
            "slot",
            "SELECT count(*), count(DISTINCT net), coalesce(max(net = ?), 0)"
            " FROM session_slots WHERE jti = ?", (net, jti))
        sessions, nets, seen = rows[0]
        return int(sessions), int(nets) + (0 if seen else 1)

    async def record_activity(
        self, license_id: str, subjects: Sequence[str], now_ms: int, net: str,
        hidden: bool, window: int, expires_ms: int,
    ) -> tuple[list[Activity], Hold | None]:
        """Append a request to each subject's recent history.

        Also returns the license's active hold: one round trip for both.
        """
        stamp = f"{now_ms:0{STAMP_WIDTH}d}"
        rows = ", ".join(["(?, ?, ?, ?, ?)"] * len(subjects))
        args: list[Any] = [v for subject in subjects for v in
                           (subject, stamp, f"|{net}|", int(hidden), expires_ms)]
        args += [-(window + 1) * STAMP_WIDTH, MAX_NETS_TEXT,
                 license_id, now_ms, license_id, now_ms]
        found = await self._rows("activity", _ACTIVITY_SQL.format(rows=rows), args)
        kind, until = found[0][4:6]
        hold = Hold(kind, int(until)) if kind is not None else None
        return [Activity(subject, _stamps(stamps), nets.strip("|").split("|"),
                         int(hid)) for subject, stamps, nets, hid, *_ in found], hold

    async def record_walks(
        self, steps: Sequence[tuple[str, str, float]], now_ms: int,
        max_gap_ms: float, expires_ms: int,
    ) -> dict[str, float]:
        """Record each ``(key, param, value)``; the highest walk score by key."""
        if not steps:
            return {}
        rows = ", ".join(["(?, ?, ?, ?, 0, 0, ?)"] * len(steps))
        args: list[Any] = [v for key, param, value in steps
                           for v in (key, param, value, now_ms, expires_ms)]
        args += [max_gap_ms, max_gap_ms]
        found = await self._rows("walks", _WALK_SQL.format(rows=rows), args)
        scores: dict[str, float] = {}
        for key, _param, score in found:
            scores[key] = max(scores.get(key, 0.0), float(score))
        return scores

    async def strike(
        self, license_id: str, signal: str, subject: str, now_ms: int,
        cooldown_ms: int,
    ) -> bool:
        """True when this signal for this subject has not counted recently."""
        rows = await self._rows(
            "strike",
            "INSERT INTO abuse_strikes (license_id, signal, subject, last_ms)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (license_id, signal, subject)"
            " DO UPDATE SET last_ms = excluded.last_ms"
            " WHERE excluded.last_ms - abuse_strikes.last_ms >= ?"
            " RETURNING last_ms",
            (license_id, signal, subject, now_ms, cooldown_ms))
        return bool(rows)

    async def add_suspicion(
        self, license_id: str, weight: float, now_ms: int, leak_per_ms: float
    ) -> tuple[float, float]:
        """Add to a license's leaking score; (new score, score just before)."""
        rows = await self._rows(
            "suspicion", _SUSPICION_SQL,
            (license_id, weight, now_ms, leak_per_ms, leak_per_ms))
        return float(rows[0][0]), float(rows[0][1])

    async def set_hold(
        self, license_id: str, kind: str, now_ms: int, until_ms: int, reason: str
    ) -> Hold | None:
        """Put a license on hold; None when an equal or stronger one is active."""
        rows = await self._rows("hold", _HOLD_SQL,
                                (license_id, kind, now_ms, until_ms, reason))
        return Hold(rows[0][0], int(rows[0][1])) if rows else None

    async def active_hold(self, license_id: str, now_ms: int) -> Hold | None:
        """The license's current throttle or freeze, if any."""
        rows = await self._rows(
            "hold", "SELECT kind, until_ms FROM license_holds"
            " WHERE license_id = ? AND until_ms > ?", (license_id, now_ms))
        return Hold(rows[0][0], int(rows[0][1])) if rows else None

    async def active_holds(self, now_ms: int) -> dict[str, Hold]:
        """Every license's current throttle or freeze, by license id."""
        rows = await self._rows(
            "hold", "SELECT license_id, kind, until_ms FROM license_holds"
            " WHERE until_ms > ?", (now_ms,))
        return {lid: Hold(kind, int(until)) for lid, kind, until in rows}

    async def lift_hold(self, license_id: str) -> bool:
        """End a license's throttle or freeze now (a licensor's decision)."""
        rows = await self._rows(
            "hold", "DELETE FROM license_holds WHERE license_id = ?"
            " RETURNING license_id", (license_id,))
        return bool(rows)

    async def add_alert(
        self, now_ms: int, license_id: str, level: str, signal: str,
        detail: dict[str, Any],
    ) -> int:
        """Store an alert; its sequence number."""
        rows = await self._rows(
            "alert",
            "INSERT INTO abuse_alerts (time_ms, license_id, level, signal, detail)"
            " VALUES (?, ?, ?, ?, ?) RETURNING seq",
            (now_ms, license_id, level, signal,
             json.dumps(detail, sort_keys=True, ensure_ascii=False)))
        return int(rows[0][0])

    async def alerts(self, since: int, limit: int) -> list[dict[str, Any]]:
        """Alerts after sequence number ``since``, oldest first."""
        rows = await self._rows(
            "alert", "SELECT seq, time_ms, license_id, level, signal, detail"
            " FROM abuse_alerts WHERE seq > ? ORDER BY seq LIMIT ?",
            (since, limit))
        return [{"seq": r[0], "time_ms": r[1], "license_id": r[2],
                 "level": r[3], "signal": r[4], "detail": json.loads(r[5])}
                for r in rows]

    async def session_license(self, session_id: bytes) -> str | None:
        """The license a stored session belongs to."""
        rows = await self._rows(
            "read", "SELECT license_id FROM sessions WHERE session_id = ?",
            (session_id,))
        return str(rows[0][0]) if rows else None

    async def sweep(self, now_ms: int, cooldown_ms: int, leak_per_ms: float) -> None:
        """Delete state that no longer changes any decision."""
        for sql, args in (
            ("DELETE FROM limit_buckets WHERE expires_ms <= ?", (now_ms,)),
            ("DELETE FROM session_slots WHERE expires_ms <= ?", (now_ms,)),
            ("DELETE FROM abuse_activity WHERE expires_ms <= ?", (now_ms,)),
            ("DELETE FROM abuse_walks WHERE expires_ms <= ?", (now_ms,)),
            ("DELETE FROM abuse_strikes WHERE last_ms <= ?",
             (now_ms - cooldown_ms,)),
            ("DELETE FROM abuse_suspicion WHERE score <= (? - updated_ms) * ?",
             (now_ms, leak_per_ms)),
            ("DELETE FROM license_holds WHERE until_ms <= ?", (now_ms,)),
        ):
            await self._rows("sweep", sql, args)


async def frozen_until(storage: Storage, now_ms: int) -> dict[str, int]:
    """When each frozen license thaws (ms since the epoch), by license id.

    For the licensor's views (``xinfeng license list``, the admin API).
    """
    holds = await LimitsStore(storage).active_holds(now_ms)
    return {lid: h.until_ms for lid, h in holds.items() if h.kind == "freeze"}


def _stamps(text: str) -> list[int]:
    return [int(text[i:i + STAMP_WIDTH])
            for i in range(0, len(text) - STAMP_WIDTH + 1, STAMP_WIDTH)]


__all__ = ["SCHEMA", "Activity", "Bucket", "Hold", "LimitsStore", "frozen_until"]
