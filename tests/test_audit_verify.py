"""``xinfeng audit``: the auditor's offline verification and the licensor's
views, run through the real command line on logs an attacker changed.

The attacker has the database file: they drop the append-only triggers and
edit, delete, reorder or insert rows, recomputing stored leaf hashes where
that helps them. They do not have the server's signing key, except in the
rollback story, where only a tree head saved earlier gives them away.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from xinfeng.sdk.merkle import verify_inclusion
from xinfeng.sdk.sm2 import SM2PrivateKey
from xinfeng.server.audit import leaf_hash
from xinfeng.server.cli import main
from xinfeng.server.keys import KeyDir
from xinfeng.server.storage import Storage

from .test_merkle import H, ref_mth

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000


class Log:
    """A data dir with a log of events and a pinned copy of the public key."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.db = self.data / "xinfeng.db"
        self.key, _ = KeyDir(self.data / "keys").ensure()
        self.pub = root / "server.pub.pem"
        self.pub.write_bytes(self.key.public_key().to_pem())

    def build(self, count: int, head_every: int, start: int = 0,
              tag: str = "e") -> None:
        asyncio.run(self._append(count, head_every, start, tag))

    async def _append(self, count: int, head_every: int, start: int,
                      tag: str) -> None:
        store = Storage(self.db)
        await store.open()
        await store.audit.load()
        for i in range(start, start + count):
            await store.log_event(*event(i, tag))
            if (i + 1) % head_every == 0:
                await store.audit.publish(self.key, T0 + i)
        await store.close()

    def sql(self, *statements: str) -> None:
        with sqlite3.connect(self.db) as conn:
            for name in [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'")]:
                conn.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.execute(statement)

    def rehash(self) -> None:
        """What a careful attacker does after editing leaves."""
        with sqlite3.connect(self.db) as conn:
            conn.create_function("lh", 1, lambda b: H(b"\x00" + b))
            conn.execute("UPDATE audit_leaves SET leaf_hash = lh(leaf)")

    def leaves(self) -> list[bytes]:
        with sqlite3.connect(self.db) as conn:
            return [r[0] for r in conn.execute(
                "SELECT leaf FROM audit_leaves ORDER BY idx")]


def event(i: int, tag: str = "e") -> tuple[Any, ...]:
    license_id = "lic-a" if i % 3 else "lic-b"
    kind, outcome = [("data_served", "ok"), ("data_refused", "rate_limited"),
                     ("abuse_alert", "alert"), ("license_frozen", "ok")][
                         0 if i % 5 else (i // 5) % 4]
    detail = {"ip": f"10.0.0.{i % 7}", "origin": "http://host.example",
              "product": "radar", "counter": i, "tag": tag}
    return (T0 + (i // 10) * DAY + i, kind, outcome, license_id, detail)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def verify(capsys: pytest.CaptureFixture[str], log: Log, *extra: str
           ) -> tuple[int, str, str]:
    return cli(capsys, "audit", "verify", "--data-dir", str(log.data),
               "--pubkey", str(log.pub), *extra)


@pytest.fixture
def log(tmp_path: Path) -> Log:
    built = Log(tmp_path)
    built.build(20, head_every=1)
    return built


# -- a log that verifies -------------------------------------------------------------


def test_untouched_log_verifies_with_a_summary(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = verify(capsys, log, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    assert (report["leaves"], report["heads"], report["unsigned_leaves"]) == (20, 20, 0)
    assert report["latest_head"]["root"] == ref_mth(log.leaves()).hex()


def test_verify_without_pinned_key_warns(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "audit", "verify", "--data-dir", str(log.data))
    assert code == 0 and "verifies: 20 leaves" in out
    assert "--pubkey" in err


def test_leaves_after_the_last_head_are_reported_as_unsigned(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    log.build(2, head_every=1000, start=20)
    code, _, err = verify(capsys, log)
    assert code == 0
    assert "2 leaves after the latest signed tree head" in err


def test_wrong_server_key_fails(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    log.pub.write_bytes(SM2PrivateKey.generate().public_key().to_pem())
    code, out, _ = verify(capsys, log)
    assert code == 1 and "tree head at size 1: the signature does not verify" in out


def test_progress_is_reported_on_large_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    log.build(1, head_every=1)
    rows = [(i, b"\x81\xa4time\xcf" + (T0 + i).to_bytes(8, "big")) for i in
            range(1, 100_001)]
    with sqlite3.connect(log.db) as conn:
        conn.executemany("INSERT INTO audit_leaves VALUES (?, ?, ?)",
                         [(i, leaf, H(b"\x00" + leaf)) for i, leaf in rows])
    code, _, err = verify(capsys, log)
    assert code == 0
    assert "verified 100000 of 100001 leaves" in err


# -- tampering names the leaf ----------------------------------------------------------


def test_edited_leaf_without_rehash_is_named(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    log.sql("UPDATE audit_leaves SET leaf = CAST(leaf || x'00' AS BLOB) WHERE idx = 7")
    code, out, _ = verify(capsys, log)
    assert code == 1
    assert "leaf 7: its content does not match its stored leaf hash" in out


def test_edited_and_rehashed_leaf_is_named_by_the_signed_heads(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = event(7)[4] | {"ip": "192.0.2.1"}
    from xinfeng.server.audit import encode_leaf, event_record

    subject = {"license": "lic-a", "licensee": None, "project": None}
    leaf = encode_leaf(event_record(T0 + 7, "data_served", "ok", subject, forged))
    log.sql(f"UPDATE audit_leaves SET leaf = x'{leaf.hex()}' WHERE idx = 7")
    log.rehash()
    code, out, _ = verify(capsys, log)
    assert code == 1
    assert "the first leaf that does not match is leaf 7" in out


def test_with_sparse_heads_the_span_between_heads_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    log.build(20, head_every=5)
    leaf = log.leaves()[7].replace(b"10.0.0.0", b"10.9.9.9")
    log.sql(f"UPDATE audit_leaves SET leaf = x'{leaf.hex()}' WHERE idx = 7")
    log.rehash()
    code, out, _ = verify(capsys, log)
    assert code == 1
    assert "one of leaves 5..9 (the signed tree head at size 5 still matches)" in out


def test_deleted_leaf_is_named(log: Log, capsys: pytest.CaptureFixture[str]) -> None:
    log.sql("DELETE FROM audit_leaves WHERE idx = 7")
    code, out, _ = verify(capsys, log)
    assert code == 1 and "leaf 7 is missing" in out


def test_deleted_leaf_with_renumbered_rows_is_named(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    log.sql("DELETE FROM audit_leaves WHERE idx = 7",
            "UPDATE audit_leaves SET idx = idx - 1 WHERE idx > 7")
    code, out, _ = verify(capsys, log)
    assert code == 1 and "the first leaf that does not match is leaf 7" in out


def test_reordered_leaves_are_named(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    log.sql("UPDATE audit_leaves SET idx = -1 WHERE idx = 3",
            "UPDATE audit_leaves SET idx = 3 WHERE idx = 8",
            "UPDATE audit_leaves SET idx = 8 WHERE idx = -1")
    code, out, _ = verify(capsys, log)
    assert code == 1 and "the first leaf that does not match is leaf 3" in out


def test_inserted_leaf_is_named(log: Log, capsys: pytest.CaptureFixture[str]) -> None:
    leaf = log.leaves()[2]
    log.sql("UPDATE audit_leaves SET idx = -idx - 100 WHERE idx >= 5",
            "UPDATE audit_leaves SET idx = -idx - 99 WHERE idx < 0",
            f"INSERT INTO audit_leaves VALUES (5, x'{leaf.hex()}',"
            f" x'{leaf_hash(leaf, H).hex()}')")
    assert len(log.leaves()) == 21
    code, out, _ = verify(capsys, log)
    assert code == 1 and "the first leaf that does not match is leaf 5" in out


def test_forged_tree_head_fails_its_signature(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    log.sql("UPDATE audit_heads SET signature = (SELECT signature FROM audit_heads"
            " WHERE size = 3) WHERE size = 12")
    code, out, _ = verify(capsys, log)
    assert code == 1
    assert "tree head at size 12: the signature does not verify" in out


def test_leaf_that_is_not_a_record_is_named(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    log.sql("UPDATE audit_leaves SET leaf = x'c1' WHERE idx = 4")
    log.rehash()
    code, out, _ = verify(capsys, log)
    assert code == 1 and "leaf 4 is not an audit record" in out


# -- rollback ------------------------------------------------------------------------


def _save_sth(log: Log, capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, _, _ = cli(capsys, "audit", "sth", "--data-dir", str(log.data),
                     "--out", str(path))
    assert code == 0


def _backup(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def _restore(backup: Path, log: Log) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{log.db}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, log.db)


def test_rollback_to_an_earlier_state_fails_against_a_saved_head(
    tmp_path: Path, log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    _backup(log.db, tmp_path / "at20.db")
    log.build(10, head_every=5, start=20)
    _save_sth(log, capsys, tmp_path / "saved.json")
    assert verify(capsys, log, "--sth", str(tmp_path / "saved.json"))[0] == 0
    _restore(tmp_path / "at20.db", log)
    assert verify(capsys, log)[0] == 0  # consistent in itself...
    code, out, _ = verify(capsys, log, "--sth", str(tmp_path / "saved.json"))
    assert code == 1  # ...but not with what the auditor saw
    assert "rolled back: the saved tree head covers 30 leaves, the log has 20" in out


def test_rollback_then_regrowth_fails_against_a_saved_head(
    tmp_path: Path, log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    _backup(log.db, tmp_path / "at20.db")
    log.build(10, head_every=5, start=20)
    _save_sth(log, capsys, tmp_path / "saved.json")
    _restore(tmp_path / "at20.db", log)
    log.build(15, head_every=5, start=20, tag="rewritten history")
    assert verify(capsys, log)[0] == 0
    code, out, _ = verify(capsys, log, "--sth", str(tmp_path / "saved.json"))
    assert code == 1 and "first 30 leaves were rewritten" in out


def test_removed_heads_fail_against_a_saved_head(
    tmp_path: Path, log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    _save_sth(log, capsys, tmp_path / "saved.json")
    log.sql("DELETE FROM audit_heads WHERE size > 10")
    code, out, _ = verify(capsys, log, "--sth", str(tmp_path / "saved.json"))
    assert code == 1 and "tree heads were removed" in out


# -- exports ------------------------------------------------------------------


def _export(log: Log, capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, _, _ = cli(capsys, "audit", "export", "--data-dir", str(log.data),
                     "--out", str(path))
    assert code == 0


def test_export_verifies_offline_with_a_pinned_key(
    tmp_path: Path, log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    _export(log, capsys, tmp_path / "log.jsonl")
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["format"] == "xinfeng-audit-log"
    assert json.loads(lines[-1]) == {"end": {"leaves": 20, "heads": 20}}
    code, out, _ = cli(capsys, "audit", "verify", str(tmp_path / "log.jsonl"),
                       "--pubkey", str(log.pub))
    assert code == 0 and "verifies: 20 leaves, 20 signed tree heads" in out


def test_export_without_pinned_key_warns_to_check_it(
    tmp_path: Path, log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    _export(log, capsys, tmp_path / "log.jsonl")
    code, _, err = cli(capsys, "audit", "verify", str(tmp_path / "log.jsonl"))
    assert code == 0 and "out of band" in err


def test_export_with_another_key_than_the_pinned_one_fails(
    tmp_path: Path, log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    _export(log, capsys, tmp_path / "log.jsonl")
    log.pub.write_bytes(SM2PrivateKey.generate().public_key().to_pem())
    code, out, _ = cli(capsys, "audit", "verify", str(tmp_path / "log.jsonl"),
                       "--pubkey", str(log.pub))
    assert code == 1 and "not the pinned key" in out


def test_edited_export_names_the_leaf(
    tmp_path: Path, log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    _export(log, capsys, tmp_path / "log.jsonl")
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    for n, line in enumerate(lines):
        obj = json.loads(line)
        if obj.get("i") == 11:
            leaf = base64.b64decode(obj["leaf"]).replace(b"10.0.0.4", b"10.9.9.9")
            lines[n] = json.dumps({"i": 11, "leaf": base64.b64encode(leaf).decode()})
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\n")
    code, out, _ = cli(capsys, "audit", "verify", str(tmp_path / "log.jsonl"),
                       "--pubkey", str(log.pub))
    assert code == 1 and "the first leaf that does not match is leaf 11" in out


def test_truncated_export_fails(
    tmp_path: Path, log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    _export(log, capsys, tmp_path / "log.jsonl")
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    (tmp_path / "log.jsonl").write_text("\n".join(lines[:-5]) + "\n")
    code, out, _ = cli(capsys, "audit", "verify", str(tmp_path / "log.jsonl"),
                       "--pubkey", str(log.pub))
    assert code == 1 and "truncated" in out


# -- the licensor's views -------------------------------------------------------


def test_show_filters_by_license_type_and_time(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "audit", "show", "--data-dir", str(log.data),
                       "--json", "--license", "lic-b", "--type", "data_served",
                       "--since", "2026-01-01T08:00:00+08:00",
                       "--until", "2026-01-02T00:00:00Z")
    rows = json.loads(out)
    assert code == 0 and [r["index"] for r in rows] == [0, 3, 6, 9]
    assert all(r["subject"]["license"] == "lic-b" for r in rows)
    code, out, _ = cli(capsys, "audit", "show", "--data-dir", str(log.data),
                       "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 2 and "lic-a" in out


def test_show_rejects_a_time_without_zone(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "audit", "show", "--data-dir", str(log.data),
                       "--since", "2026-01-02T00:00:00")
    assert code == 2 and "error" in err


def test_summary_counts_calls_refusals_alerts_and_freezes_per_day(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "audit", "summary", "--data-dir", str(log.data),
                       "--json")
    rows = {(r["license"], r["day"]): r for r in json.loads(out)["rows"]}
    assert code == 0
    counted = ("calls", "refusals", "alerts", "throttles", "freezes")
    expected = {  # events 0..9 on day 1, 10..19 on day 2; lic-b every third
        ("lic-a", "2026-01-01"): (5, 1, 0, 0, 0),  # 5 refused
        ("lic-b", "2026-01-01"): (4, 0, 0, 0, 0),
        ("lic-a", "2026-01-02"): (6, 0, 1, 0, 0),  # 10 an alert
        ("lic-b", "2026-01-02"): (2, 0, 0, 0, 1),  # 15 a freeze
    }
    assert {k: tuple(r[c] for c in counted) for k, r in rows.items()} == expected
    text = cli(capsys, "audit", "summary", "--data-dir", str(log.data))[1]
    assert "lic-a" in text and "calls" in text


def test_prove_gives_an_inclusion_proof_that_verifies_independently(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "audit", "prove", "--data-dir", str(log.data),
                       "--index", "13", "--pubkey", str(log.pub), "--json")
    result = json.loads(out)
    assert code == 0 and result["ok"] and result["record"]["detail"]["counter"] == 13
    leaf = base64.b64decode(result["leaf"])
    assert leaf == log.leaves()[13]
    verify_inclusion(13, result["head"]["size"], H(b"\x00" + leaf),
                     [bytes.fromhex(p) for p in result["proof"]],
                     bytes.fromhex(result["head"]["root"]), H)


def test_prove_an_index_past_the_end_is_a_usage_error(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "audit", "prove", "--data-dir", str(log.data),
                       "--index", "20")
    assert code == 2 and "no leaf 20" in err


def test_tree_head_with_a_malformed_root_fails(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    log.sql(f"UPDATE audit_heads SET root = '{'x' * 32}' WHERE size = 6")
    code, out, _ = verify(capsys, log)
    assert code == 1 and "a tree head after leaf 5 is malformed" in out


def test_database_without_an_audit_log_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "xinfeng.db").execute(
        "CREATE TABLE t (x)").connection.close()
    code, _, err = cli(capsys, "audit", "verify", "--data-dir",
                       str(tmp_path / "data"), "--pubkey", str(tmp_path / "x"))
    assert code == 2 and "holds no audit log" in err
