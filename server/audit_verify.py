"""The offline audit-log verifier: sources and checks, trusting nothing.

It reads a database file (read-only) or an export, recomputes every leaf
hash and the tree, checks every signed tree head's signature and root and
the consistency of each head with the one before, and names the first
leaf that does not match. ``xinfeng audit`` (``server/audit_cli.py``) is
its command line; ``benchmarks/bench_audit.py`` times it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from xinfeng.sdk.errors import CryptoError, ProtocolError
from xinfeng.sdk.merkle import (
    InvalidProof,
    consistency_ranges,
    leaf_hash,
    verify_consistency,
)
from xinfeng.sdk.sm2 import SM2PublicKey

from . import native
from .audit import (
    HASH_SIZE,
    AuditError,
    SignedTreeHead,
    TreeCache,
    decode_leaf,
    fold_perfect,
)
from .cli import UsageError
from .keys import key_id

EXPORT_FORMAT = "xinfeng-audit-log"
EXPORT_VERSION = 1
PROGRESS_EVERY = 100_000
SQLITE_MAGIC = b"SQLite format 3\x00"


class LogMismatch(AuditError):
    """The audit log does not verify."""

    code = "audit_mismatch"


@dataclass(frozen=True)
class LeafItem:
    """One stored leaf; ``stored_hash`` is None where the source has none."""

    index: int
    leaf: bytes
    stored_hash: bytes | None


Item = LeafItem | SignedTreeHead


# -- sources ------------------------------------------------------------------------


def open_db(path: Path) -> sqlite3.Connection:
    """The database read-only, in one read transaction (a consistent view)."""
    if not path.is_file():
        raise UsageError(f"no database at {path}")
    uri = path.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.execute("BEGIN")
    found = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                         " AND name IN ('audit_leaves', 'audit_heads')").fetchone()
    if found[0] != 2:
        conn.close()
        raise UsageError(f"{path} holds no audit log")
    return conn


def _head_rows(conn: sqlite3.Connection) -> Iterator[SignedTreeHead]:
    sql = "SELECT size, root, time_ms, signature FROM audit_heads ORDER BY size"
    for size, root, time_ms, signature in conn.execute(sql):
        yield SignedTreeHead(size, root, time_ms, signature)


def db_items(conn: sqlite3.Connection) -> Iterator[Item]:
    """Leaves in index order, each head right after the leaves it covers."""
    heads = _head_rows(conn)
    head = next(heads, None)
    count = 0
    sql = "SELECT idx, leaf, leaf_hash FROM audit_leaves ORDER BY idx"
    for index, leaf, stored in conn.execute(sql):
        while head is not None and head.size <= count:
            yield head
            head = next(heads, None)
        yield LeafItem(index, leaf, stored)
        count += 1
    while head is not None:
        yield head
        head = next(heads, None)


def leaf_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM audit_leaves").fetchone()[0])


def write_export(
    conn: sqlite3.Connection, out: IO[str], public_key: SM2PublicKey
) -> tuple[int, int]:
    """Write the log as JSON lines; returns (leaves, heads) written."""
    header = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "hash": "sm3",
              "kid": key_id(public_key),
              "server_public_key": public_key.to_pem().decode()}
    out.write(json.dumps(header) + "\n")
    counts = Counter[str]()
    for item in db_items(conn):
        if isinstance(item, SignedTreeHead):
            line: dict[str, Any] = {"sth": item.to_json()}
            counts["heads"] += 1
        else:
            line = {"i": item.index, "leaf": base64.b64encode(item.leaf).decode()}
            counts["leaves"] += 1
        out.write(json.dumps(line) + "\n")
    out.write(json.dumps({"end": dict(counts)}) + "\n")
    return counts["leaves"], counts["heads"]


def read_export_header(line: str) -> dict[str, Any]:
    """The first line of an export. Raises LogMismatch when it is not one."""
    try:
        header = json.loads(line)
        assert header["format"] == EXPORT_FORMAT
        assert header["version"] == EXPORT_VERSION
    except (ValueError, KeyError, TypeError, AssertionError):
        raise LogMismatch("not an xinfeng audit export") from None
    return dict(header)


def _export_item(number: int, obj: Any) -> Item:
    try:
        if "sth" in obj:
            return SignedTreeHead.from_json(obj["sth"])
        index = obj["i"]
        assert isinstance(index, int)
        return LeafItem(index, base64.b64decode(obj["leaf"], validate=True), None)
    except (AuditError, KeyError, TypeError, ValueError, AssertionError):
        raise LogMismatch(f"export line {number}: not a leaf or tree head") from None


def export_items(lines: Iterable[str]) -> Iterator[Item]:
    """The items of an export after its header; checks the end marker."""
    counts = Counter[str]()
    for number, line in enumerate(lines, start=2):
        try:
            obj = json.loads(line)
        except ValueError:
            raise LogMismatch(f"export line {number}: not JSON") from None
        if isinstance(obj, dict) and "end" in obj:
            if obj["end"] != dict(counts):
                raise LogMismatch("the export's end marker does not match its lines")
            return
        item = _export_item(number, obj)
        counts["heads" if isinstance(item, SignedTreeHead) else "leaves"] += 1
        yield item
    raise LogMismatch("the export is truncated (no end marker)")


# -- verification -------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What a successful verification found."""

    leaves: int = 0
    heads: int = 0
    latest: SignedTreeHead | None = None
    saved_checked: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def unsigned(self) -> int:
        return self.leaves - (self.latest.size if self.latest else 0)

    def to_json(self) -> dict[str, Any]:
        latest = self.latest.to_json() if self.latest else None
        return {"ok": True, "leaves": self.leaves, "heads": self.heads,
                "latest_head": latest, "unsigned_leaves": self.unsigned,
                "saved_head_checked": self.saved_checked, "warnings": self.warnings}


class LogVerifier:
    """Checks a stream of leaves and tree heads; raises LogMismatch.

    Leaves must arrive in index order, each head right after the leaves it
    covers. ``saved`` is a tree head the auditor kept from earlier: the log
    must still contain it (a rollback or rewrite fails here).
    """

    def __init__(
        self, public_key: SM2PublicKey, saved: SignedTreeHead | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.key = public_key
        self.saved = saved
        self.progress = progress
        self.digest = native.sm3_hash
        self.tree = TreeCache(self.digest)
        self.hashes = bytearray()
        self.report = VerifyReport()
        self._last_time = -1
        self._late: list[int] = []
        if saved is not None:
            self._check_signature(saved, "the saved tree head")

    def take(self, item: Item) -> None:
        if isinstance(item, SignedTreeHead):
            self.head(item)
        else:
            self.leaf(item)

    def leaf(self, item: LeafItem) -> None:
        index, size = item.index, self.tree.size
        if index != size:
            what = "missing" if index > size else "out of order"
            raise LogMismatch(f"leaf {size} is {what} (next stored index is {index})")
        if not isinstance(item.leaf, bytes):
            raise LogMismatch(f"leaf {index} is not a byte string")
        value = leaf_hash(item.leaf, self.digest)
        if item.stored_hash is not None and item.stored_hash != value:
            raise LogMismatch(f"leaf {index}: its content does not match its"
                              " stored leaf hash")
        self._note_time(index, item.leaf)
        self.tree.append(value)
        self.hashes += value
        self.report.leaves += 1
        if self.saved is not None and self.saved.size == self.tree.size:
            self._check_saved()
        if self.progress is not None and self.tree.size % PROGRESS_EVERY == 0:
            self.progress(self.tree.size)

    def _note_time(self, index: int, leaf: bytes) -> None:
        try:
            time_ms = decode_leaf(leaf).get("time")
        except (ProtocolError, AuditError):
            raise LogMismatch(f"leaf {index} is not an audit record") from None
        if not isinstance(time_ms, int):
            raise LogMismatch(f"leaf {index} has no time")
        if time_ms < self._last_time - 60_000:
            self._late.append(index)
        self._last_time = max(self._last_time, time_ms)

    def head(self, head: SignedTreeHead) -> None:
        if not (isinstance(head.size, int) and isinstance(head.time_ms, int)
                and isinstance(head.root, bytes) and len(head.root) == HASH_SIZE
                and isinstance(head.signature, bytes)):
            raise LogMismatch(f"a tree head after leaf {self.tree.size - 1} is"
                              " malformed")
        if head.size > self.tree.size:
            raise LogMismatch(f"the tree head at size {head.size} covers leaves"
                              f" the log does not have (it has {self.tree.size})")
        if head.size < self.tree.size:
            raise LogMismatch(f"the tree head at size {head.size} is out of place")
        self._check_signature(head, f"the tree head at size {head.size}")
        if head.root != self.tree.root():
            raise LogMismatch(self._span_message(head))
        previous = self.report.latest
        if previous is not None:
            self._check_consistency(previous, head)
        self.report.latest = head
        self.report.heads += 1

    def _check_signature(self, head: SignedTreeHead, what: str) -> None:
        try:
            head.verify(self.key)
        except CryptoError:
            raise LogMismatch(f"{what}: the signature does not verify with the"
                              f" server key {key_id(self.key)}") from None

    def _span_message(self, head: SignedTreeHead) -> str:
        good = self.report.latest.size if self.report.latest else 0
        where = (f"leaf {good}" if head.size - good == 1 else
                 f"one of leaves {good}..{head.size - 1} (the signed tree head"
                 f" at size {good} still matches)")
        return (f"the leaves do not match the signed tree head at size"
                f" {head.size}: the first leaf that does not match is {where}")

    def _check_consistency(self, old: SignedTreeHead, new: SignedTreeHead) -> None:
        if new.time_ms < old.time_ms:
            self.report.warnings.append(f"tree head at size {new.size} is older"
                                        f" than the one at size {old.size}")
        if old.size == 0:
            return
        try:
            proof = self._proof(consistency_ranges(old.size, new.size))
            verify_consistency(old.size, new.size, old.root, new.root, proof,
                               self.digest)
        except InvalidProof:
            raise LogMismatch(f"tree heads at sizes {old.size} and {new.size} are"
                              " not consistent") from None

    def _proof(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        pieces = dict(self.tree.frontier.pieces())
        for lo, hi in self.tree.missing(ranges):
            hashes = [bytes(self.hashes[i * HASH_SIZE : (i + 1) * HASH_SIZE])
                      for i in range(lo, hi)]
            pieces[(lo, hi)] = fold_perfect(hashes, self.digest)
        return [self.tree.range_hash(lo, hi, pieces) for lo, hi in ranges]

    def _check_saved(self) -> None:
        assert self.saved is not None
        if self.saved.root != self.tree.root():
            raise LogMismatch(f"the log does not contain the saved tree head: its"
                              f" first {self.saved.size} leaves were rewritten")
        self.report.saved_checked = True

    def finish(self) -> VerifyReport:
        """The report; raises LogMismatch if the saved head is not in the log."""
        saved, latest = self.saved, self.report.latest
        if saved is not None and saved.size == 0:
            self._check_saved()
        if saved is not None and saved.size > self.tree.size:
            raise LogMismatch(f"the log was rolled back: the saved tree head covers"
                              f" {saved.size} leaves, the log has {self.tree.size}")
        if saved is not None and (latest is None or latest.size < saved.size):
            raise LogMismatch("tree heads were removed: the log's latest tree head"
                              " is older than the saved one")
        if self._late:
            self.report.warnings.append(
                f"{len(self._late)} leaves are more than a minute older than an"
                f" earlier leaf (first: leaf {self._late[0]})")
        if self.report.unsigned:
            self.report.warnings.append(
                f"{self.report.unsigned} leaves after the latest signed tree head"
                " are not covered by any signature yet")
        return self.report


def verify_items(
    items: Iterable[Item], public_key: SM2PublicKey,
    saved: SignedTreeHead | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify a whole log; raises LogMismatch naming the first problem."""
    verifier = LogVerifier(public_key, saved, progress)
    for item in items:
        verifier.take(item)
    return verifier.finish()


__all__ = ["SQLITE_MAGIC", "LeafItem", "LogMismatch", "LogVerifier", "VerifyReport",
           "db_items", "export_items", "leaf_count", "open_db",
           "read_export_header", "verify_items", "write_export"]
