"""RFC 9162 Merkle hashing and proofs over SM3 (xinfeng.sdk.merkle).

Expected values come from outside the module: stored vectors made with the
RFC's recursive definitions over OpenSSL's SM3, and a small recursive
implementation in this file written straight from RFC 9162 section 2.1
over ``hashlib``'s SM3.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from tests.vectors import load, unhex
from xinfeng.sdk import merkle
from xinfeng.sdk.merkle import (
    Frontier,
    InvalidProof,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

INCLUSION = load("merkle_inclusion_edges")
CONSISTENCY = load("merkle_consistency")


def H(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def ref_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 2.1.1 defines it."""
    if not leaves:
        return H(b"")
    if len(leaves) == 1:
        return H(b"\x00" + leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return H(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_mth(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if whole else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, leaves[:k], whole) + [ref_mth(leaves[k:])]
    return ref_subproof(m - k, leaves[k:], False) + [ref_mth(leaves[:k])]


def entries(n: int) -> list[bytes]:
    return [f"leaf-{i}".encode() for i in range(n)]


def hashes_of(leaves: list[bytes]) -> list[bytes]:
    return [leaf_hash(leaf, H) for leaf in leaves]


# -- stored vectors ---------------------------------------------------------------


@pytest.mark.parametrize("case", INCLUSION["cases"], ids=lambda c: c["name"])
def test_inclusion_vector(case: dict) -> None:
    args = (case["leaf_index"], case["tree_size"], unhex(case["leaf_hash"]),
            [unhex(p) for p in case["proof"]], unhex(case["root"]))
    if case["expected_valid"]:
        verify_inclusion(*args)
    else:
        with pytest.raises(InvalidProof):
            verify_inclusion(*args)


def test_inclusion_vector_root_matches_the_entries() -> None:
    leaves = [e.encode() for e in INCLUSION["entries_utf8"]]
    assert root_hash(hashes_of(leaves)) == unhex(INCLUSION["root_size7"])


@pytest.mark.parametrize("case", CONSISTENCY["cases"], ids=lambda c: c["name"])
def test_consistency_vector(case: dict) -> None:
    args = (case["first"], case["second"], unhex(case["first_root"]),
            unhex(case["second_root"]), [unhex(p) for p in case["proof"]])
    if case["expected_valid"]:
        verify_consistency(*args)
    else:
        with pytest.raises(InvalidProof):
            verify_consistency(*args)


def test_consistency_vector_proofs_are_what_we_generate() -> None:
    leaves = [e.encode() for e in CONSISTENCY["entries_utf8"]]
    for case in CONSISTENCY["cases"]:
        if case["expected_valid"]:
            hashes = hashes_of(leaves[: case["second"]])
            made = consistency_proof(case["first"], hashes)
            assert [p.hex() for p in made] == case["proof"], case["name"]


# -- edge cases of inclusion ---------------------------------------------------------


def test_size_one_tree_accepts_the_empty_proof() -> None:
    only = leaf_hash(b"x")
    verify_inclusion(0, 1, only, [], only)


def test_empty_proof_rejected_where_the_tree_needs_one() -> None:
    hashes = hashes_of(entries(2))
    with pytest.raises(InvalidProof, match="shorter"):
        verify_inclusion(0, 2, hashes[0], [], root_hash(hashes))


def test_last_leaf_of_odd_tree_verifies() -> None:
    hashes = hashes_of(entries(7))
    proof = inclusion_proof(6, hashes)
    assert len(proof) == 2
    verify_inclusion(6, 7, hashes[6], proof, root_hash(hashes))


@pytest.mark.parametrize("size", [2, 4, 8, 16, 64])
def test_power_of_two_sizes_have_full_length_proofs(size: int) -> None:
    hashes = hashes_of(entries(size))
    root = root_hash(hashes)
    for index in (0, size // 2, size - 1):
        proof = inclusion_proof(index, hashes)
        assert len(proof) == size.bit_length() - 1
        verify_inclusion(index, size, hashes[index], proof, root)


def test_proof_longer_than_needed_rejected() -> None:
    hashes = hashes_of(entries(5))
    proof = inclusion_proof(1, hashes)
    with pytest.raises(InvalidProof, match="longer"):
        verify_inclusion(1, 5, hashes[1], proof + [proof[0]], root_hash(hashes))


@pytest.mark.parametrize("index", [5, 6, 100])
def test_index_at_or_past_size_rejected(index: int) -> None:
    hashes = hashes_of(entries(5))
    with pytest.raises(InvalidProof, match="outside"):
        verify_inclusion(index, 5, hashes[4], inclusion_proof(4, hashes),
                         root_hash(hashes))


def test_negative_index_and_empty_tree_rejected() -> None:
    with pytest.raises(InvalidProof):
        root_from_inclusion_proof(-1, 3, leaf_hash(b"a"), [])
    with pytest.raises(InvalidProof):
        root_from_inclusion_proof(0, 0, leaf_hash(b"a"), [])


def test_proof_element_of_wrong_length_rejected() -> None:
    hashes = hashes_of(entries(3))
    proof = inclusion_proof(0, hashes)
    with pytest.raises(InvalidProof, match="length"):
        verify_inclusion(0, 3, hashes[0], [proof[0][:31], proof[1]],
                         root_hash(hashes))


def test_leaf_data_in_place_of_its_hash_rejected() -> None:
    hashes = hashes_of(entries(4))
    proof = inclusion_proof(0, hashes)
    with pytest.raises(InvalidProof):
        verify_inclusion(0, 4, merkle.node_hash(hashes[0], hashes[1]), proof[1:],
                         root_hash(hashes))


def test_every_leaf_of_small_trees_proves_only_at_its_own_index() -> None:
    for size in range(1, 12):
        hashes = hashes_of(entries(size))
        root = root_hash(hashes)
        for index in range(size):
            proof = inclusion_proof(index, hashes)
            verify_inclusion(index, size, hashes[index], proof, root)
            for other in set(range(size)) - {index}:
                with pytest.raises(InvalidProof):
                    verify_inclusion(other, size, hashes[index], proof, root)


# -- cross-checks against the RFC's definitions ----------------------------------------


def test_tree_hash_matches_independent_sm3_implementation() -> None:
    rng = random.Random(9162)
    for size in range(1, 71):
        leaves = [rng.randbytes(rng.randrange(0, 40)) for _ in range(size)]
        assert root_hash(hashes_of(leaves), H) == ref_mth(leaves), size
        assert root_hash(hashes_of(leaves)) == ref_mth(leaves), size


def test_empty_tree_hash_is_sm3_of_nothing() -> None:
    assert root_hash([]) == H(b"")


def test_proofs_match_the_rfc_definitions_for_random_sizes() -> None:
    rng = random.Random(2)
    for size in rng.sample(range(1, 71), 20):
        leaves = entries(size)
        hashes = hashes_of(leaves)
        index, first = rng.randrange(size), rng.randrange(1, size + 1)
        assert inclusion_proof(index, hashes, H) == ref_path(index, leaves)
        expected = ref_subproof(first, leaves, True) if first < size else []
        assert consistency_proof(first, hashes, H) == expected
        verify_consistency(first, size, ref_mth(leaves[:first]), ref_mth(leaves),
                           expected, H)


def test_frontier_pieces_and_root_follow_every_append() -> None:
    seen: list[tuple[int, int]] = []
    frontier = Frontier(H, lambda level, index, _: seen.append((level, index)))
    leaves = entries(37)
    for n, leaf in enumerate(leaves, start=1):
        frontier.append(leaf_hash(leaf, H))
        assert frontier.root() == ref_mth(leaves[:n])
        for (lo, hi), value in frontier.pieces().items():
            assert value == ref_mth(leaves[lo:hi])
    assert (5, 0) in seen and (2, 8) in seen and len(seen) == 37 - 3


# -- consistency edge cases ------------------------------------------------------------


def test_consistency_of_equal_sizes_needs_empty_proof_and_same_root() -> None:
    root = root_hash(hashes_of(entries(3)))
    verify_consistency(3, 3, root, root, [])
    with pytest.raises(InvalidProof):
        verify_consistency(3, 3, root, root, [root])


def test_consistency_proof_against_a_rewritten_prefix_fails() -> None:
    old = hashes_of(entries(5))
    new = hashes_of(entries(9))
    new[2] = leaf_hash(b"rewritten")
    proof = consistency_proof(5, new)
    with pytest.raises(InvalidProof):
        verify_consistency(5, 9, root_hash(old), root_hash(new), proof)


def test_generation_rejects_impossible_requests() -> None:
    hashes = hashes_of(entries(4))
    with pytest.raises(ValueError):
        inclusion_proof(4, hashes)
    with pytest.raises(ValueError):
        consistency_proof(0, hashes)
    with pytest.raises(ValueError):
        consistency_proof(5, hashes)
