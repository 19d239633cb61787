"""The tamper-evident audit log: a Merkle log in the shape of RFC 9162, over SM3.

Every security event becomes one leaf: a canonical msgpack record (see
:func:`event_record`). Leaves live in ``audit_leaves`` with their leaf hash
``SM3(0x00 || leaf)``; signed tree heads (size, root, time, SM2 signature
over :func:`tree_head_message`) live in ``audit_heads``. SQLite triggers
refuse any update or delete of either table and any leaf that is not the
next index, so the application can only append.

An append is one ``INSERT`` statement that picks the next index itself, so
concurrent requests, and other processes on the same database, are
serialised by SQLite and lose nothing. The tree itself is derived state
held in memory (:class:`TreeCache`): the frontier of perfect subtrees and
cached subtree hashes every 256 leaves. It is rebuilt from the stored leaf
hashes when the log is loaded and extended from the table on every
:meth:`AuditLog.sync`; nothing derived is persisted, so a crash at any
point leaves nothing to repair beyond that rebuild.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiosqlite

from xinfeng.sdk.errors import (
    CryptoError,
    InvalidSignature,
    StorageUnavailable,
    XinfengError,
)
from xinfeng.sdk.merkle import (
    Digest,
    Frontier,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
)
from xinfeng.sdk.sm2 import SM2PublicKey
from xinfeng.sdk.wire import Limits, pack, unpack

from . import native
from .native_sm2 import SM2Signer

logger = logging.getLogger(__name__)

LEAF_VERSION = 1
MAX_TEXT = 512
HASH_SIZE = 32
STH_CONTEXT = b"xinfeng/audit-sth/v1\n"
LEAF_LIMITS = Limits(max_bytes=1 << 16, max_items=256, max_str=4096, max_bin=4096)
CACHED_LEVELS = (8, 16, 24, 32)
SECRET_KEYS = frozenset(
    {"token", "credential", "session_key", "secret", "password", "private_key",
     "key"}
)
_SUBJECT_CACHE_SIZE = 4096
_FETCH_ROWS = 4096

Range = tuple[int, int]

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_leaves (
    idx INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
);
CREATE TABLE IF NOT EXISTS audit_heads (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL CHECK (length(root) = 32),
    time_ms INTEGER NOT NULL,
    signature BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_leaves_in_order BEFORE INSERT ON audit_leaves
WHEN NEW.idx IS NOT (SELECT coalesce(max(idx) + 1, 0) FROM audit_leaves)
BEGIN SELECT RAISE(ABORT, 'audit leaves are appended in order'); END;
CREATE TRIGGER IF NOT EXISTS audit_leaves_no_update BEFORE UPDATE ON audit_leaves
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_leaves_no_delete BEFORE DELETE ON audit_leaves
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_heads_grow BEFORE INSERT ON audit_heads
WHEN NEW.size <= (SELECT coalesce(max(size), -1) FROM audit_heads)
BEGIN SELECT RAISE(ABORT, 'tree heads only grow'); END;
CREATE TRIGGER IF NOT EXISTS audit_heads_no_update BEFORE UPDATE ON audit_heads
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_heads_no_delete BEFORE DELETE ON audit_heads
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

_INSERT_LEAF = (
    "INSERT INTO audit_leaves (idx, leaf, leaf_hash)"
    " SELECT coalesce(max(idx) + 1, 0), ?, ? FROM audit_leaves"
)
_INSERT_HEAD = (
    "INSERT INTO audit_heads (size, root, time_ms, signature) SELECT ?, ?, ?, ?"
    " WHERE ? > (SELECT coalesce(max(size), -1) FROM audit_heads) RETURNING size"
)
_HEAD_COLUMNS = "SELECT size, root, time_ms, signature FROM audit_heads"


class AuditError(XinfengError):
    """The audit log cannot do what was asked."""

    code = "audit_error"


class AuditCorrupt(AuditError):
    """The stored audit log contradicts itself or its signed tree heads."""

    code = "audit_corrupt"
    status = 503


# -- leaves -----------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """``value`` with every map's keys sorted and long strings cut.

    Strings and byte strings longer than ``MAX_TEXT`` are truncated so that
    a hostile header cannot bloat the log. Raises TypeError for values that
    are not msgpack data.
    """
    if isinstance(value, str | bytes):
        return value[:MAX_TEXT]
    if isinstance(value, dict):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise TypeError(f"not loggable: {type(value).__name__}")


def _without_secrets(detail: Mapping[str, Any]) -> dict[str, Any]:
    kept = {}
    for key, value in detail.items():
        if str(key).lower() in SECRET_KEYS:
            logger.warning("audit: dropped detail field %r (secret-like name)", key)
            continue
        kept[key] = _without_secrets(value) if isinstance(value, dict) else value
    return kept


def event_record(
    time_ms: int, kind: str, outcome: str, subject: Mapping[str, str | None],
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    """The leaf record of one event, before encoding.

    ``origin``, ``ip`` and ``ua`` (a user-agent digest) move from ``detail``
    into ``env``, ``product`` to the top level; other detail fields stay in
    ``detail``, except fields named like secrets, which are dropped.
    """
    rest = _without_secrets(detail)
    env = {"origin": rest.pop("origin", None), "network": rest.pop("ip", None),
           "ua": rest.pop("ua", None)}
    record: dict[str, Any] = canonical({
        "v": LEAF_VERSION, "time": time_ms, "type": kind, "outcome": outcome,
        "subject": dict(subject), "env": env, "product": rest.pop("product", None),
        "detail": rest,
    })
    return record


def encode_leaf(record: Mapping[str, Any]) -> bytes:
    """The canonical msgpack bytes of a leaf record."""
    return pack(canonical(dict(record)))


def decode_leaf(leaf: bytes) -> dict[str, Any]:
    """The record in a leaf. Raises ProtocolError when it is not one."""
    record = unpack(leaf, LEAF_LIMITS)
    if not isinstance(record, dict):
        raise AuditCorrupt("a leaf is not a record")
    return record


def event_view(index: int, record: Mapping[str, Any]) -> dict[str, Any]:
    """A leaf record in the shape ``Storage.events`` has always returned."""
    detail = dict(record.get("detail") or {})
    env = record.get("env") or {}
    for name, key in (("origin", "origin"), ("network", "ip"), ("ua", "ua")):
        if env.get(name) is not None:
            detail[key] = env[name]
    if record.get("product") is not None:
        detail["product"] = record["product"]
    subject = record.get("subject") or {}
    return {"seq": index, "time_ms": record.get("time"), "kind": record.get("type"),
            "outcome": record.get("outcome"), "license_id": subject.get("license"),
            "detail": detail}


def subject_from_token(license_id: str, token: str | None) -> dict[str, str | None]:
    """Licensee and project from a stored license token's claims.

    The token was verified when it was issued; here its claims only name who
    an event is about, so the payload is read without checking the signature.
    """
    claims: Any = {}
    if token:
        try:
            payload = token.split(".")[1]
            padded = payload + "=" * (-len(payload) % 4)
            claims = json.loads(base64.urlsafe_b64decode(padded))
        except (IndexError, ValueError):
            claims = {}
    claims = claims if isinstance(claims, dict) else {}
    return {"license": license_id, "licensee": _text(claims.get("licensee")),
            "project": _text(claims.get("project"))}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# -- signed tree heads ------------------------------------------------------------


def tree_head_message(size: int, root: bytes, time_ms: int) -> bytes:
    """The bytes an STH signature covers: context, time, size, root.

    ``b"xinfeng/audit-sth/v1\\n" || uint64_be(time_ms) || uint64_be(size) ||
    root`` (69 bytes).
    """
    if len(root) != HASH_SIZE:
        raise ValueError("root must be 32 bytes")
    return STH_CONTEXT + struct.pack(">QQ", time_ms, size) + root


@dataclass(frozen=True)
class SignedTreeHead:
    """A tree size and root at a time, signed with the server's SM2 key."""

    size: int
    root: bytes
    time_ms: int
    signature: bytes

    def message(self) -> bytes:
        return tree_head_message(self.size, self.root, self.time_ms)

    def verify(self, public_key: SM2PublicKey) -> None:
        """Raises InvalidSignature unless the server key signed this head."""
        try:
            public_key.verify(self.signature, self.message())
        except CryptoError:
            raise InvalidSignature("tree head signature does not verify") from None

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "root": self.root.hex(), "time": self.time_ms,
                "signature": self.signature.hex()}

    @classmethod
    def from_json(cls, obj: Any) -> SignedTreeHead:
        """Parse :meth:`to_json` output. Raises AuditError when malformed."""
        try:
            head = cls(obj["size"], bytes.fromhex(obj["root"]), obj["time"],
                       bytes.fromhex(obj["signature"]))
        except (KeyError, TypeError, ValueError):
            raise AuditError("not a signed tree head") from None
        if not (_count(head.size) and _count(head.time_ms)
                and len(head.root) == HASH_SIZE):
            raise AuditError("not a signed tree head")
        return head


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def sign_tree_head(
    key: SM2Signer, size: int, root: bytes, time_ms: int
) -> SignedTreeHead:
    """Sign ``(size, root, time_ms)`` with the server key."""
    signature = key.sign(tree_head_message(size, root, time_ms))
    return SignedTreeHead(size, root, time_ms, signature)


# -- the tree ---------------------------------------------------------------------


def perfect_pieces(lo: int, hi: int) -> list[Range]:
    """The perfect subtrees that tile ``[lo, hi)``, largest first.

    ``lo`` must be aligned as in every range of an RFC 9162 tree.
    """
    pieces = []
    while lo < hi:
        width = 1 << ((hi - lo).bit_length() - 1)
        pieces.append((lo, lo + width))
        lo += width
    return pieces


def fold_perfect(hashes: list[bytes], digest: Digest) -> bytes:
    """The root of a perfect subtree from its ``2**k`` lowest-level hashes."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1], digest)
                  for i in range(0, len(hashes), 2)]
    return hashes[0]


class TreeCache:
    """The tree over the leaf hashes seen so far, kept for proofs.

    Holds the frontier and the hash of every perfect subtree of 2**8, 2**16,
    2**24 and 2**32 leaves (32 bytes per 256 leaves), so any subtree hash
    needs at most 255 node hashes plus, below 256 leaves, leaf hashes that
    the caller fetches (:meth:`missing`).
    """

    def __init__(self, digest: Digest) -> None:
        self.digest = digest
        self.levels = {level: bytearray() for level in CACHED_LEVELS}
        self.frontier = Frontier(digest, self._keep)

    @property
    def size(self) -> int:
        return self.frontier.size

    def _keep(self, level: int, index: int, value: bytes) -> None:
        cache = self.levels.get(level)
        if cache is not None:
            cache += value

    def append(self, leaf_hash: bytes) -> None:
        self.frontier.append(leaf_hash)

    def root(self) -> bytes:
        return self.frontier.root()

    def missing(self, ranges: Iterable[Range]) -> list[Range]:
        """Pieces under 256 leaves of ``ranges`` that are not at hand."""
        known = self.frontier.pieces()
        wanted = []
        for lo, hi in ranges:
            if not 0 <= lo < hi <= self.size:
                raise ValueError("range outside the tree")
            wanted += [p for p in perfect_pieces(lo, hi)
                       if p[1] - p[0] < 1 << CACHED_LEVELS[0] and p not in known]
        return wanted

    def range_hash(self, lo: int, hi: int, pieces: Mapping[Range, bytes]) -> bytes:
        """The tree hash of leaves ``[lo, hi)``; small pieces from ``pieces``."""
        hashes = [self._piece(p, pieces) for p in perfect_pieces(lo, hi)]
        merged = hashes[-1]
        for left in reversed(hashes[:-1]):
            merged = node_hash(left, merged, self.digest)
        return merged

    def _piece(self, piece: Range, pieces: Mapping[Range, bytes]) -> bytes:
        if piece in pieces:
            return pieces[piece]
        lo, hi = piece
        height = (hi - lo).bit_length() - 1
        level = max(x for x in CACHED_LEVELS if x <= height)
        first, count = lo >> level, 1 << (height - level)
        cache = self.levels[level]
        hashes = [bytes(cache[i * HASH_SIZE : (i + 1) * HASH_SIZE])
                  for i in range(first, first + count)]
        return fold_perfect(hashes, self.digest)


# -- the log on SQLite --------------------------------------------------------------


@asynccontextmanager
async def _guard(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (sqlite3.Error, ValueError) as exc:
        logger.error("audit storage failure during %s: %s", what, type(exc).__name__)
        raise StorageUnavailable() from exc


LicenseToken = Callable[[str], Awaitable[str | None]]


class AuditLog:
    """The audit log on the storage's SQLite connection.

    ``connection`` returns the open connection; ``license_token`` returns
    the stored token of a license (for licensee and project), or None.
    Database failures raise StorageUnavailable.
    """

    def __init__(
        self, connection: Callable[[], aiosqlite.Connection],
        license_token: LicenseToken, digest: Digest = native.sm3_hash,
    ) -> None:
        self._conn = connection
        self._license_token = license_token
        self.digest = digest
        self.tree = TreeCache(digest)
        self._lock = asyncio.Lock()
        self._subjects: dict[str, dict[str, str | None]] = {}

    # appending

    async def append_event(
        self, time_ms: int, kind: str, outcome: str, license_id: str | None,
        detail: Mapping[str, Any],
    ) -> int:
        """Append one security event; returns its leaf index."""
        subject = await self.subject(license_id)
        record = event_record(time_ms, kind, outcome, subject, detail)
        return await self.append(encode_leaf(record))

    async def append(self, leaf: bytes) -> int:
        """Append one leaf as a single statement; returns its index."""
        value = leaf_hash(leaf, self.digest)
        async with _guard("audit append"):
            row = await self._conn().execute_insert(_INSERT_LEAF, (leaf, value))
        if row is None:
            raise StorageUnavailable()
        return int(row[0])

    async def subject(self, license_id: str | None) -> dict[str, str | None]:
        """Who an event is about: license id, licensee, project (cached)."""
        if license_id is None:
            return {"license": None, "licensee": None, "project": None}
        cached = self._subjects.get(license_id)
        if cached is not None:
            return cached
        token = await self._license_token(license_id)
        subject = subject_from_token(license_id, token)
        if token is not None:
            if len(self._subjects) >= _SUBJECT_CACHE_SIZE:
                self._subjects.clear()
            self._subjects[license_id] = subject
        return subject

    # the tree

    async def load(self) -> None:
        """Rebuild the tree from the stored leaf hashes; check the latest head.

        Raises AuditCorrupt when a leaf is missing or the latest signed tree
        head does not match the stored leaves (a rollback or an edit).
        """
        async with self._lock:
            self.tree = TreeCache(self.digest)
            await self._sync_locked()
        head = await self.latest_head()
        if head is None:
            return
        if head.size > self.tree.size:
            raise AuditCorrupt(f"the latest signed tree head covers {head.size}"
                               f" leaves but only {self.tree.size} are stored")
        if await self.root_at(head.size) != head.root:
            raise AuditCorrupt(f"the stored leaves do not match the signed tree"
                               f" head at size {head.size}")

    async def sync(self) -> int:
        """Take in leaves appended since the last sync; returns the tree size."""
        async with self._lock:
            await self._sync_locked()
            return self.tree.size

    async def _sync_locked(self) -> None:
        sql = "SELECT idx, leaf_hash FROM audit_leaves WHERE idx >= ? ORDER BY idx"
        async with _guard("audit sync"):
            async with self._conn().execute(sql, (self.tree.size,)) as cursor:
                while rows := await cursor.fetchmany(_FETCH_ROWS):
                    self._take(rows)

    def _take(self, rows: Iterable[Any]) -> None:
        for index, value in rows:
            if index != self.tree.size:
                raise AuditCorrupt(f"audit leaf {self.tree.size} is missing")
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise AuditCorrupt(f"audit leaf {index} has a malformed hash")
            self.tree.append(value)

    async def snapshot(self) -> tuple[int, bytes]:
        """The current tree size and root, after a sync."""
        async with self._lock:
            await self._sync_locked()
            return self.tree.size, self.tree.root()

    async def range_hashes(self, ranges: list[Range]) -> list[bytes]:
        """Tree hashes of leaf ranges of the synced tree."""
        pieces = dict(self.tree.frontier.pieces())
        for lo, hi in self.tree.missing(ranges):
            hashes = await self.leaf_hashes(lo, hi)
            pieces[(lo, hi)] = fold_perfect(hashes, self.digest)
        return [self.tree.range_hash(lo, hi, pieces) for lo, hi in ranges]

    async def root_at(self, size: int) -> bytes:
        """The root of the tree of the first ``size`` leaves."""
        if size == 0:
            return self.digest(b"")
        return (await self.range_hashes([(0, size)]))[0]

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[size]). Raises ValueError for a bad index or size."""
        await self._need(size)
        return await self.range_hashes(inclusion_ranges(index, size))

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """PROOF(first, D[second]). Raises ValueError for bad sizes."""
        await self._need(second)
        return await self.range_hashes(consistency_ranges(first, second))

    async def _need(self, size: int) -> None:
        if size > self.tree.size and size > await self.sync():
            raise ValueError("tree size is larger than the log")

    # reading

    async def leaf_hashes(self, lo: int, hi: int) -> list[bytes]:
        sql = ("SELECT leaf_hash FROM audit_leaves WHERE idx >= ? AND idx < ?"
               " ORDER BY idx")
        async with _guard("audit read"):
            async with self._conn().execute(sql, (lo, hi)) as cursor:
                rows = list(await cursor.fetchall())
        if len(rows) != hi - lo:
            raise AuditCorrupt("audit leaves are missing")
        return [bytes(row[0]) for row in rows]

    async def leaves(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Stored leaves with ``start <= index < end``, in order."""
        sql = ("SELECT idx, leaf FROM audit_leaves WHERE idx >= ? AND idx < ?"
               " ORDER BY idx")
        async with _guard("audit read"):
            async with self._conn().execute(sql, (start, end)) as cursor:
                return [(int(i), bytes(leaf)) for i, leaf in await cursor.fetchall()]

    async def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every event (optionally of one kind), oldest first, as a dict."""
        found = []
        for index, leaf in await self.leaves(0, 1 << 62):
            view = event_view(index, decode_leaf(leaf))
            if kind is None or view["kind"] == kind:
                found.append(view)
        return found

    # signed tree heads

    async def latest_head(self) -> SignedTreeHead | None:
        async with _guard("audit read"):
            async with self._conn().execute(
                _HEAD_COLUMNS + " ORDER BY size DESC LIMIT 1"
            ) as cursor:
                row = await cursor.fetchone()
        return SignedTreeHead(*row) if row else None

    async def heads(self) -> list[SignedTreeHead]:
        async with _guard("audit read"):
            async with self._conn().execute(_HEAD_COLUMNS + " ORDER BY size") as cur:
                return [SignedTreeHead(*row) for row in await cur.fetchall()]

    async def publish(
        self, key: SM2Signer, now_ms: int, min_interval_ms: int = 0
    ) -> SignedTreeHead:
        """Sign and store a head for the current tree unless one covers it.

        Returns the latest head: the new one, or an existing one that covers
        every leaf or is younger than ``min_interval_ms``.
        """
        size, root = await self.snapshot()
        latest = await self.latest_head()
        if latest is not None and (
            latest.size >= size or now_ms - latest.time_ms < min_interval_ms
        ):
            return latest
        head = sign_tree_head(key, size, root, now_ms)
        async with _guard("audit publish"):
            async with self._conn().execute(
                _INSERT_HEAD, (size, root, now_ms, head.signature, size)
            ) as cursor:
                stored = await cursor.fetchone()
        if stored is None:
            latest = await self.latest_head()
            assert latest is not None
            return latest
        logger.debug("published audit tree head at size %d", size)
        return head
