"""The audit log on SQLite: leaf records, append-only storage, the tree,
signed tree heads, and the audit routes.

Tree hashes and proofs are checked against the RFC 9162 definitions in
tests/test_merkle.py, computed with ``hashlib``'s SM3.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import pytest

from xinfeng.sdk.errors import InvalidSignature
from xinfeng.sdk.merkle import (
    consistency_proof,
    inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from xinfeng.sdk.sm2 import SM2PublicKey
from xinfeng.server.admin_tokens import AdminTokens
from xinfeng.server.audit import (
    SECRET_KEYS,
    AuditCorrupt,
    TreeCache,
    decode_leaf,
    encode_leaf,
    event_record,
    sign_tree_head,
    tree_head_message,
)
from xinfeng.server.keys import KeyDir
from xinfeng.server.storage import Storage

from .conftest import Provider
from .test_merkle import H, ref_mth, ref_path, ref_subproof
from .test_server_api import get_data, mint, open_session

T = TypeVar("T")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def run(p: Provider, fn: Callable[[], Awaitable[T]]) -> T:
    assert p.client.portal is not None
    return p.client.portal.call(fn)


def all_leaves(p: Provider) -> list[bytes]:
    async def read() -> list[bytes]:
        return [leaf for _, leaf in await p.state.storage.audit.leaves(0, 10**9)]
    return run(p, read)


def keys_of(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from keys_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_of(item)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = Storage(tmp_path / "xinfeng.db")
    asyncio.run(store.open())
    yield store
    asyncio.run(store.close())


async def opened(path: Path) -> Storage:
    store = Storage(path)
    await store.open()
    await store.audit.load()
    return store


async def append_many(store: Storage, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        await store.log_event(T0 + i, "data_served", "ok", None,
                              {"counter": i, "ip": "10.0.0.1"})


def db_leaves(path: Path) -> list[bytes]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute(
            "SELECT leaf FROM audit_leaves ORDER BY idx")]


# -- leaf records -----------------------------------------------------------------


def test_leaf_names_licensee_and_project_from_the_stored_license(
    provider: Provider,
) -> None:
    assert mint(provider).status_code == 200
    minted = [decode_leaf(leaf) for leaf in all_leaves(provider)
              if decode_leaf(leaf)["type"] == "token_minted"]
    subject = minted[-1]["subject"]
    assert subject == {"license": provider.license_id,
                       "licensee": "Test Licensee", "project": "test-project"}
    assert minted[-1]["product"] is None
    assert minted[-1]["detail"]["products"] == ["test-product"]
    assert minted[-1]["env"]["network"]


def test_leaves_hold_no_token_credential_or_key(provider: Provider) -> None:
    token = mint(provider).json()["token"]
    session = open_session(provider)
    response, _ = get_data(provider, session)
    assert response.status_code == 200
    assert mint(provider, credential=provider.credential + "x").status_code == 401
    leaves = all_leaves(provider)
    kinds = {decode_leaf(leaf)["type"] for leaf in leaves}
    assert {"token_minted", "session_opened", "data_served",
            "token_refused"} <= kinds
    secret = provider.credential.split(".", 1)[1]
    for leaf in leaves:
        assert not set(keys_of(decode_leaf(leaf))) & SECRET_KEYS
        assert token.encode() not in leaf and secret.encode() not in leaf
        assert token.split(".")[2].encode() not in leaf


def test_detail_fields_named_like_secrets_are_dropped() -> None:
    subject = {"license": None, "licensee": None, "project": None}
    record = event_record(T0, "x", "ok", subject,
                          {"token": "t", "nested": {"password": "p", "n": 1},
                           "Session_Key": b"k", "reason": "kept"})
    assert record["detail"] == {"nested": {"n": 1}, "reason": "kept"}


def test_hostile_long_header_is_cut_to_a_bounded_leaf() -> None:
    subject = {"license": None, "licensee": None, "project": None}
    record = event_record(T0, "x", "origin_denied", subject,
                          {"origin": "http://" + "a" * 20000, "ip": "10.0.0.1"})
    assert len(record["env"]["origin"]) == 512
    assert len(encode_leaf(record)) < 1024


def test_leaf_encoding_is_canonical_whatever_the_key_order() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": None}}
    b = {"a": {"x": None, "y": (1, 2)}, "b": 1}
    assert encode_leaf(a) == encode_leaf(b)
    assert msgpack.unpackb(encode_leaf(a)) == {"a": {"x": None, "y": [1, 2]}, "b": 1}


def test_events_returns_the_detail_callers_logged(storage: Storage) -> None:
    detail = {"origin": "http://h", "ip": "10.1.2.3", "ua": "abcd",
              "product": "p1", "trace": "00ff", "counter": 3}
    asyncio.run(storage.log_event(T0, "data_served", "ok", "lic-1", detail))
    events = asyncio.run(storage.events("data_served"))
    assert events == [{"seq": 0, "time_ms": T0, "kind": "data_served",
                       "outcome": "ok", "license_id": "lic-1", "detail": detail}]
    assert asyncio.run(storage.events("other")) == []


# -- append-only storage -----------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE audit_leaves SET leaf = x'00' WHERE idx = 1",
    "DELETE FROM audit_leaves WHERE idx = 2",
    "INSERT INTO audit_leaves VALUES (1, x'00', zeroblob(32))",
    "INSERT INTO audit_leaves VALUES (9, x'00', zeroblob(32))",
    "INSERT OR REPLACE INTO audit_leaves VALUES (0, x'00', zeroblob(32))",
    "UPDATE audit_heads SET root = zeroblob(32)",
    "DELETE FROM audit_heads",
    "INSERT INTO audit_heads VALUES (1, zeroblob(32), 0, x'00')",
])
def test_database_refuses_to_change_the_log_in_place(
    tmp_path: Path, statement: str
) -> None:
    async def build() -> None:
        store = await opened(tmp_path / "xinfeng.db")
        await append_many(store, 3)
        key, _ = KeyDir(tmp_path / "keys").ensure()
        await store.audit.publish(key, T0)
        await store.close()

    asyncio.run(build())
    with sqlite3.connect(tmp_path / "xinfeng.db") as conn:
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute(statement)
    assert len(db_leaves(tmp_path / "xinfeng.db")) == 3


def test_concurrent_appends_from_two_connections_lose_nothing(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        first = await opened(tmp_path / "xinfeng.db")
        second = await opened(tmp_path / "xinfeng.db")
        jobs = [store.log_event(T0 + i, "data_served", "ok", None, {"counter": i})
                for i in range(300) for store in (first, second)]
        indices = await asyncio.gather(*jobs)
        await first.close()
        await second.close()
        return list(indices)

    indices = asyncio.run(scenario())
    assert sorted(indices) == list(range(600))
    counters = sorted(decode_leaf(leaf)["detail"]["counter"]
                      for leaf in db_leaves(tmp_path / "xinfeng.db"))
    assert counters == sorted(list(range(300)) * 2)


def test_tree_root_matches_independent_mth_after_each_sync(storage: Storage) -> None:
    async def scenario() -> None:
        await storage.audit.load()
        for count in (1, 2, 5, 8, 13):
            await append_many(storage, count)
            _, root = await storage.audit.snapshot()
            assert root == ref_mth(db_leaves(storage.path))

    asyncio.run(scenario())


def test_tree_cache_subtree_hashes_across_cached_levels() -> None:
    size = (1 << 16) + 300
    hashes = [H(i.to_bytes(4, "big")) for i in range(size)]
    tree = TreeCache(H)
    for value in hashes:
        tree.append(value)
    assert len(tree.levels[8]) == 32 * (size >> 8)
    assert len(tree.levels[16]) == 32
    for lo, hi in [(0, 1 << 16), (0, size), (1 << 15, 1 << 16), (0, 40_000),
                   (1 << 16, size), (512, 768)]:
        pieces = {p: root_hash(hashes[p[0]:p[1]], H) for p in tree.missing([(lo, hi)])}
        pieces.update(tree.frontier.pieces())
        assert tree.range_hash(lo, hi, pieces) == root_hash(hashes[lo:hi], H)


def test_proofs_from_the_log_match_the_rfc_definitions(storage: Storage) -> None:
    async def scenario() -> None:
        await storage.audit.load()
        await append_many(storage, 600)
        leaves = db_leaves(storage.path)
        for index, size in [(0, 1), (0, 600), (599, 600), (255, 256), (256, 600),
                            (300, 513), (511, 512), (17, 300)]:
            proof = await storage.audit.inclusion_proof(index, size)
            assert proof == ref_path(index, leaves[:size]), (index, size)
        for first, second in [(1, 600), (256, 600), (300, 600), (511, 513),
                              (599, 600), (600, 600), (7, 260)]:
            proof = await storage.audit.consistency_proof(first, second)
            expected = (ref_subproof(first, leaves[:second], True)
                        if first < second else [])
            assert proof == expected, (first, second)
        with pytest.raises(ValueError):
            await storage.audit.inclusion_proof(3, 601)
        with pytest.raises(ValueError):
            await storage.audit.inclusion_proof(600, 600)

    asyncio.run(scenario())


# -- signed tree heads --------------------------------------------------------------


def test_tree_head_message_is_the_documented_fixed_layout() -> None:
    root = bytes(range(32))
    message = tree_head_message(5, root, T0)
    assert message == (b"xinfeng/audit-sth/v1\n" + T0.to_bytes(8, "big")
                       + (5).to_bytes(8, "big") + root)
    assert len(message) == 69


def test_tree_head_signature_covers_size_root_and_time(tmp_path: Path) -> None:
    key, _ = KeyDir(tmp_path / "keys").ensure()
    head = sign_tree_head(key, 3, H(b"r"), T0)
    head.verify(key.public_key())
    for forged in (head.__class__(4, head.root, T0, head.signature),
                   head.__class__(3, H(b"s"), T0, head.signature),
                   head.__class__(3, head.root, T0 + 1, head.signature)):
        with pytest.raises(InvalidSignature):
            forged.verify(key.public_key())


def test_publish_signs_only_when_the_log_grew(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "xinfeng.db")
        key, _ = KeyDir(tmp_path / "keys").ensure()
        empty = await store.audit.publish(key, T0)
        assert (empty.size, empty.root) == (0, H(b""))
        await append_many(store, 5)
        head = await store.audit.publish(key, T0 + 1)
        assert (head.size, head.root) == (5, ref_mth(db_leaves(store.path)))
        assert await store.audit.publish(key, T0 + 2) == head
        await append_many(store, 1, 5)
        assert await store.audit.publish(key, T0 + 3, 10_000) == head
        assert (await store.audit.publish(key, T0 + 4)).size == 6
        assert [h.size for h in await store.audit.heads()] == [0, 5, 6]
        await store.close()

    asyncio.run(scenario())


def test_restart_after_leaves_written_past_the_last_head_recovers(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        key, _ = KeyDir(tmp_path / "keys").ensure()
        store = await opened(tmp_path / "xinfeng.db")
        await append_many(store, 10)
        await store.audit.publish(key, T0)
        await append_many(store, 7, 10)
        await store.close()  # as if killed: no head for the last 7
        again = await opened(tmp_path / "xinfeng.db")
        head = await again.audit.publish(key, T0 + 1)
        assert (head.size, head.root) == (17, ref_mth(db_leaves(again.path)))
        await again.close()

    asyncio.run(scenario())


def _drop_triggers(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        for name in names:
            conn.execute(f"DROP TRIGGER {name}")


@pytest.mark.parametrize("attack", [
    "DELETE FROM audit_leaves WHERE idx >= 8",
    "UPDATE audit_leaves SET leaf = x'90', leaf_hash = zeroblob(32) WHERE idx = 3",
    "DELETE FROM audit_leaves WHERE idx = 4",
])
def test_load_refuses_a_log_that_contradicts_its_latest_head(
    tmp_path: Path, attack: str
) -> None:
    async def build() -> None:
        key, _ = KeyDir(tmp_path / "keys").ensure()
        store = await opened(tmp_path / "xinfeng.db")
        await append_many(store, 10)
        await store.audit.publish(key, T0)
        await store.close()

    asyncio.run(build())
    _drop_triggers(tmp_path / "xinfeng.db")
    with sqlite3.connect(tmp_path / "xinfeng.db") as conn:
        conn.execute(attack)
    with pytest.raises(AuditCorrupt):
        asyncio.run(opened(tmp_path / "xinfeng.db"))


# -- routes ---------------------------------------------------------------------------


def _sth(p: Provider) -> dict[str, Any]:
    response = p.client.get("/v1/audit/sth")
    assert response.status_code == 200
    return dict(response.json())


def _server_key(p: Provider) -> SM2PublicKey:
    return SM2PublicKey.from_bytes(p.state.server_public_key)


def test_sth_route_serves_a_head_signed_by_the_server(provider: Provider) -> None:
    mint(provider)
    sth = _sth(provider)
    leaves = all_leaves(provider)
    assert sth["size"] == len(leaves) and sth["kid"] == provider.state.server_kid
    assert bytes.fromhex(sth["root"]) == ref_mth(leaves)
    message = tree_head_message(sth["size"], bytes.fromhex(sth["root"]), sth["time"])
    _server_key(provider).verify(bytes.fromhex(sth["signature"]), message)


def test_inclusion_route_proves_every_leaf_against_the_sth(
    provider: Provider,
) -> None:
    for _ in range(4):
        mint(provider)
    sth = _sth(provider)
    leaves = all_leaves(provider)
    for index in range(sth["size"]):
        body = provider.client.get(
            f"/v1/audit/proof/inclusion?index={index}&size={sth['size']}").json()
        assert bytes.fromhex(body["leaf_hash"]) == H(b"\x00" + leaves[index])
        verify_inclusion(index, sth["size"], bytes.fromhex(body["leaf_hash"]),
                         [bytes.fromhex(x) for x in body["proof"]],
                         bytes.fromhex(sth["root"]), H)


def test_consistency_route_links_two_heads(provider: Provider) -> None:
    old = _sth(provider)
    for _ in range(3):
        mint(provider)
    provider.clock.advance(2)
    new = _sth(provider)
    assert new["size"] > old["size"]
    body = provider.client.get("/v1/audit/proof/consistency",
                               params={"first": old["size"],
                                       "second": new["size"]}).json()
    verify_consistency(old["size"], new["size"], bytes.fromhex(old["root"]),
                       bytes.fromhex(new["root"]),
                       [bytes.fromhex(x) for x in body["proof"]], H)
    hashes = [H(b"\x00" + leaf) for leaf in all_leaves(provider)[: new["size"]]]
    assert body["proof"] == [x.hex() for x in consistency_proof(old["size"], hashes)]
    assert inclusion_proof(0, hashes)  # the sdk agrees on the same leaves


@pytest.mark.parametrize("query", [
    "proof/inclusion?index=0", "proof/inclusion?index=-1&size=1",
    "proof/inclusion?index=5&size=5", "proof/inclusion?index=0&size=99999",
    "proof/consistency?first=0&second=1", "proof/consistency?first=2&second=1",
    "proof/consistency?first=1&second=99999", "proof/inclusion?index=1e3&size=2",
])
def test_proof_routes_reject_impossible_requests(
    provider: Provider, query: str
) -> None:
    response = provider.client.get("/v1/audit/" + query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_leaves_route_needs_an_admin_token_and_pages(provider: Provider) -> None:
    assert provider.client.get("/v1/audit/leaves?start=0").status_code == 401
    assert provider.client.get(
        "/v1/audit/leaves?start=0",
        headers={"Authorization": f"Bearer {provider.credential}"}).status_code == 401
    token, _ = AdminTokens(provider.data_dir).new("auditor", provider.clock() // 1000)

    async def grow() -> None:
        await append_many(provider.state.storage, 1200)

    run(provider, grow)
    headers = {"Authorization": f"Bearer {token}"}
    body = provider.client.get("/v1/audit/leaves?start=3&end=99999",
                               headers=headers).json()
    assert (body["start"], body["end"], len(body["leaves"])) == (3, 1003, 1000)
    leaves = all_leaves(provider)
    assert base64.b64decode(body["leaves"][0]["leaf"]) == leaves[3]
    assert decode_leaf(leaves[-1])["type"] == "audit_read"
    assert decode_leaf(leaves[-1])["detail"]["admin"] == "auditor"


def test_app_refuses_to_start_when_signed_leaves_were_removed(
    tmp_path: Path,
) -> None:
    from .conftest import make_provider

    p = make_provider(tmp_path)
    with p.client:
        for _ in range(3):
            mint(p)
        size = _sth(p)["size"]
    _drop_triggers(p.data_dir / "xinfeng.db")
    with sqlite3.connect(p.data_dir / "xinfeng.db") as conn:
        conn.execute("DELETE FROM audit_leaves WHERE idx = ?", (size - 1,))
    with pytest.raises(AuditCorrupt), p.client:
        pass
