"""Merkle tree hashes and proofs of RFC 9162 section 2.1, over SM3.

The audit log is shaped like Certificate Transparency: a leaf hashes as
``SM3(0x00 || leaf)``, an interior node as ``SM3(0x01 || left || right)``,
and the tree of ``n`` leaves splits at the largest power of two below
``n``. This module holds the small pure functions an auditor needs to check
the server's answers without trusting it: the tree hash, inclusion proofs
(section 2.1.3) and consistency proofs (section 2.1.4), both generation and
verification. Verification raises :class:`InvalidProof`; it never returns
False.

Proof generation is described by the *ranges* ``[lo, hi)`` of leaves whose
tree hashes make up the proof (:func:`inclusion_ranges`,
:func:`consistency_ranges`), so a server can fill them from whatever it
stores; :func:`inclusion_proof` and :func:`consistency_proof` fill them
from a list of leaf hashes.

Every function takes the hash as ``digest`` (the pure SM3 by default) so a
server can pass a native SM3 that produces the same bytes. The standard
library and :mod:`xinfeng.sdk.sm3` only: this module also runs in Pyodide.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from .errors import XinfengError
from .sm3 import DIGEST_SIZE, sm3_hash

__all__ = [
    "Digest",
    "Frontier",
    "InvalidProof",
    "consistency_proof",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

Digest = Callable[[bytes], bytes]
NodeHook = Callable[[int, int, bytes], None]
Range = tuple[int, int]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


class InvalidProof(XinfengError):
    """The Merkle proof does not prove what it claims."""

    code = "invalid_proof"


def leaf_hash(leaf: bytes, digest: Digest = sm3_hash) -> bytes:
    """The hash of one leaf: ``SM3(0x00 || leaf)``."""
    return digest(LEAF_PREFIX + leaf)


def node_hash(left: bytes, right: bytes, digest: Digest = sm3_hash) -> bytes:
    """The hash of an interior node: ``SM3(0x01 || left || right)``."""
    return digest(NODE_PREFIX + left + right)


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a growing tree: one hash per perfect subtree.

    ``hashes`` holds the roots of the perfect subtrees that tile
    ``[0, size)``, largest first. Appending a leaf merges equal subtrees, so
    each append costs one node hash on average and at most log2(size).
    ``on_node(level, index, hash)`` sees every perfect subtree of ``2**level``
    leaves (``level`` >= 1) as it completes; ``index`` counts subtrees of
    that level from the left.
    """

    def __init__(
        self, digest: Digest = sm3_hash, on_node: NodeHook | None = None
    ) -> None:
        self.size = 0
        self.hashes: list[bytes] = []
        self._digest = digest
        self._on_node = on_node

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf, given by its leaf hash."""
        merged, level, rest = leaf_hash, 0, self.size
        while rest & 1:
            merged = node_hash(self.hashes.pop(), merged, self._digest)
            rest >>= 1
            level += 1
            if self._on_node is not None:
                self._on_node(level, self.size >> level, merged)

        self.hashes.append(merged)
        self.size += 1

    def pieces(self) -> dict[Range, bytes]:
        """The perfect subtrees of the frontier by their leaf range."""
        found: dict[Range, bytes] = {}
        lo = 0
        for bit in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> bit & 1:
                found[(lo, lo + (1 << bit))] = self.hashes[len(found)]
                lo += 1 << bit
        return found

    def root(self) -> bytes:
        """The tree hash of the ``size`` leaves so far; ``SM3("")`` for none."""
        if not self.hashes:
            return self._digest(b"")
        merged = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            merged = node_hash(left, merged, self._digest)
        return merged


def root_hash(leaf_hashes: Sequence[bytes], digest: Digest = sm3_hash) -> bytes:
    """The tree hash (MTH) of the leaves whose leaf hashes are given."""
    frontier = Frontier(digest)
    for each in leaf_hashes:
        frontier.append(each)
    return frontier.root()


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The leaf ranges whose tree hashes form PATH(index, D[size]), in order.

    Raises ValueError unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError("leaf index must be inside the tree")
    ranges, lo, hi = [], 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The leaf ranges whose tree hashes form PROOF(first, D[second]), in order.

    Empty when ``first == second``. Raises ValueError unless
    ``0 < first <= second``.
    """
    if not 0 < first <= second:
        raise ValueError("need 0 < first <= second")
    ranges, lo, hi, m, whole = [], 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        ranges.append((lo, hi))
    return ranges[::-1]


def inclusion_proof(
    index: int, leaf_hashes: Sequence[bytes], digest: Digest = sm3_hash
) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``leaf_hashes``."""
    ranges = inclusion_ranges(index, len(leaf_hashes))
    return [root_hash(leaf_hashes[lo:hi], digest) for lo, hi in ranges]


def consistency_proof(
    first: int, leaf_hashes: Sequence[bytes], digest: Digest = sm3_hash
) -> list[bytes]:
    """The proof that the first ``first`` leaves are a prefix of all of them."""
    ranges = consistency_ranges(first, len(leaf_hashes))
    return [root_hash(leaf_hashes[lo:hi], digest) for lo, hi in ranges]


def _check_hashes(*hashes: bytes) -> None:
    for each in hashes:
        if not isinstance(each, bytes) or len(each) != DIGEST_SIZE:
            raise InvalidProof("a hash in the proof has the wrong length")


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes],
    digest: Digest = sm3_hash,
) -> bytes:
    """The root that ``proof`` leads to from leaf ``index`` (RFC 9162 2.1.3.2).

    Every proof element is consumed and the path must end exactly at the
    root: a proof that is too long or too short raises InvalidProof, as
    does ``index >= size``.
    """
    if not 0 <= index < size:
        raise InvalidProof("leaf index is outside the tree")
    _check_hashes(leaf_hash, *proof)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise InvalidProof("proof is longer than the tree needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r, digest)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p, digest)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("proof is shorter than the tree needs")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes],
    root: bytes, digest: Digest = sm3_hash,
) -> None:
    """Check that leaf ``index`` of the tree of ``size`` leaves has ``leaf_hash``.

    Raises InvalidProof when it does not.
    """
    _check_hashes(root)
    found = root_from_inclusion_proof(index, size, leaf_hash, proof, digest)
    if not _same(found, root):
        raise InvalidProof("proof does not lead to the tree head's root")


def _consistency_roots(
    first: int, second: int, first_root: bytes, proof: Sequence[bytes],
    digest: Digest,
) -> tuple[bytes, bytes, int]:
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("proof is longer than the trees need")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr, digest), node_hash(c, sr, digest)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c, digest)
        fn, sn = fn >> 1, sn >> 1
    return fr, sr, sn


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes,
    proof: Sequence[bytes], digest: Digest = sm3_hash,
) -> None:
    """Check that the tree of ``first`` leaves is a prefix of the ``second`` one.

    RFC 9162 2.1.4.2; for ``first == second`` the proof must be empty and
    the roots equal. Raises InvalidProof otherwise, and for ``first`` < 1 or
    ``first > second``.
    """
    if not 0 < first <= second:
        raise InvalidProof("need 0 < first <= second")
    _check_hashes(first_root, second_root, *proof)
    if first == second:
        if proof or not _same(first_root, second_root):
            raise InvalidProof("trees of one size must have one root")
        return
    if not proof:
        raise InvalidProof("empty consistency proof")
    fr, sr, sn = _consistency_roots(first, second, first_root, proof, digest)
    if sn != 0:
        raise InvalidProof("proof is shorter than the trees need")
    if not (_same(fr, first_root) and _same(sr, second_root)):
        raise InvalidProof("proof does not connect the two tree heads")
