"""RFC 9162 (RFC 6962) Merkle tree hashing, proof generation and proof verification.

Pure functions over SHA-256 hashes: no I/O, no clock, no randomness, standard library only.

Terminology follows RFC 9162 §2.1: a *leaf hash* is ``SHA-256(0x00 || entry)``, an interior node
is ``SHA-256(0x01 || left || right)``, and the tree over ``n`` leaves is left-balanced: its left
subtree holds the first ``k`` leaves, ``k`` being the largest power of two smaller than ``n``.

Every verifier takes untrusted input and fails closed: any hash argument that is not exactly
:data:`HASH_SIZE` bytes is rejected before any hashing, so a malformed value can never match by
accident (for example an empty leaf hash "proving" itself in a one-leaf tree whose root is empty).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "MerkleProofError",
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


class MerkleProofError(ValueError):
    """A proof did not verify, or its parameters cannot describe a valid proof."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def leaf_hash(entry: bytes) -> bytes:
    """The hash of a leaf holding ``entry`` (RFC 9162 §2.1.1)."""
    return _sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node over two child hashes (RFC 9162 §2.1.1)."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (which must be at least 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _hash_pairs(level: Sequence[bytes]) -> list[bytes]:
    """Parents of adjacent pairs ``(level[0], level[1]), (level[2], level[3]), ...``.

    An unpaired last node is left out; callers decide what it means for them.
    """
    # Inlined rather than calling node_hash: this loop is the whole cost of hashing a large log.
    return [
        _sha256(NODE_PREFIX + left + right).digest()
        for left, right in zip(level[0::2], level[1::2], strict=False)
    ]


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes (RFC 9162 §2.1.1); :data:`EMPTY_ROOT` for no leaves.

    Built level by level, which takes ``n - 1`` node hashes and no recursion.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        parents = _hash_pairs(level)
        if len(level) % 2:
            # Carrying the unpaired right-edge node up unchanged gives exactly the RFC's
            # left-balanced shape: it is the right subtree that the power-of-two split leaves
            # smaller than its left sibling.
            parents.append(level[-1])
        level = parents
    return level[0]


# --- Proof generation ------------------------------------------------------------------------

# A function returning MTH(D[start:end]) for the tree a proof is generated from.
_SubtreeHash = Callable[[int, int], bytes]


def _inclusion_path(index: int, size: int, subtree_hash: _SubtreeHash) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, walked top-down instead of recursively."""
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _largest_power_of_two_below(end - start)
        if index < mid:
            path.append(subtree_hash(mid, end))
            end = mid
        else:
            path.append(subtree_hash(start, mid))
            start = mid
    # The recursion emits the deepest sibling first.
    path.reverse()
    return path


def _consistency_path(old_size: int, new_size: int, subtree_hash: _SubtreeHash) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1, walked top-down.

    Empty when ``old_size`` is 0 or equal to ``new_size``, which is what
    :func:`verify_consistency` expects for those trivial cases.
    """
    if old_size == 0:
        return []
    proof: list[bytes] = []
    start, end = 0, new_size
    # SUBPROOF's flag b: whether the current subtree still starts at leaf 0 of the old tree, in
    # which case its hash is the old root itself and the verifier already has it.
    whole_old_tree = True
    while old_size != end:
        mid = start + _largest_power_of_two_below(end - start)
        if old_size <= mid:
            proof.append(subtree_hash(mid, end))
            end = mid
        else:
            proof.append(subtree_hash(start, mid))
            start = mid
            whole_old_tree = False
    if not whole_old_tree:
        proof.append(subtree_hash(start, end))
    proof.reverse()
    return proof


def _check_inclusion_args(index: int, size: int, tree_size: int) -> None:
    if not 0 <= index < size <= tree_size:
        raise ValueError(f"need 0 <= index < size <= {tree_size}, got index={index} size={size}")


def _check_consistency_args(old_size: int, new_size: int, tree_size: int) -> None:
    if not 0 <= old_size <= new_size <= tree_size:
        raise ValueError(f"need 0 <= old_size <= new_size <= {tree_size}, got {old_size} and {new_size}")


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path proving ``leaf_hashes[index]`` is in the tree over all of ``leaf_hashes``.

    Hashes every leaf once (the path's subtrees are disjoint); for repeated proofs over a growing
    log use :class:`MerkleTree`, which caches interior nodes.
    """
    _check_inclusion_args(index, len(leaf_hashes), len(leaf_hashes))
    return _inclusion_path(
        index, len(leaf_hashes), lambda start, end: root_from_leaf_hashes(leaf_hashes[start:end])
    )


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The proof that the tree over ``leaf_hashes[:old_size]`` is a prefix of the whole tree."""
    _check_consistency_args(old_size, len(leaf_hashes), len(leaf_hashes))
    return _consistency_path(
        old_size,
        len(leaf_hashes),
        lambda start, end: root_from_leaf_hashes(leaf_hashes[start:end]),
    )


class MerkleTree:
    """An append-only tree that keeps its leaf hashes and every complete subtree hash.

    ``_levels[h][i]`` is the hash of the perfect subtree over leaves ``[i * 2**h, (i + 1) * 2**h)``.
    Any MTH(D[start:end]) a proof or historical root needs splits into O(log n) of those, so
    roots and proofs for any past size cost O(log n) hashes, and appending costs O(1) amortised.
    The cache roughly doubles the memory of the leaf hashes.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        leaves = list(leaf_hashes)
        for value in leaves:
            _require_leaf_hash_size(value)
        self._levels: list[list[bytes]] = [leaves]
        while len(self._levels[-1]) > 1:
            self._levels.append(_hash_pairs(self._levels[-1]))

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def append(self, entry: bytes) -> int:
        """Add a leaf holding ``entry`` (hashed here); return its index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, leaf_hash: bytes) -> int:
        """Add a leaf whose hash is already known; return its index."""
        _require_leaf_hash_size(leaf_hash)
        index = self.size
        node = leaf_hash
        height = 0
        self._levels[0].append(node)
        # Each time a level gains a right child, the perfect subtree above it is complete.
        while len(self._levels[height]) % 2 == 0:
            node = node_hash(self._levels[height][-2], node)
            height += 1
            if height == len(self._levels):
                self._levels.append([])
            self._levels[height].append(node)
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The hash of leaf ``index``."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} out of range for size {self.size}")
        return self._levels[0][index]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"need 0 <= size <= {self.size}, got {size}")
        return self._subtree_hash(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path for leaf ``index`` in the tree of the first ``size`` leaves."""
        size = self.size if size is None else size
        _check_inclusion_args(index, size, self.size)
        return _inclusion_path(index, size, self._subtree_hash)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof that the tree of size ``old_size`` is a prefix of the one of ``new_size``."""
        new_size = self.size if new_size is None else new_size
        _check_consistency_args(old_size, new_size, self.size)
        return _consistency_path(old_size, new_size, self._subtree_hash)

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for ``0 <= start < end <= size``: the root of any range of leaves.

        Auditors use it to test what-if trees (a leaf removed or two swapped) without rehashing the
        unchanged part of the log.
        """
        if not 0 <= start < end <= self.size:
            raise ValueError(f"need 0 <= start < end <= {self.size}, got {start} and {end}")
        return self._subtree_hash(start, end)

    def _subtree_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a non-empty range, from cached perfect subtrees where possible."""
        width = end - start
        # Ranges from the RFC's recursion are always aligned to their width; checking anyway
        # keeps this correct for any range.
        if width & (width - 1) == 0 and start % width == 0:
            return self._levels[width.bit_length() - 1][start // width]
        # A range ending at a (historical) right edge. Its left part is a cached perfect
        # subtree, so only the right part recurses: O(log n) hashes and recursion depth.
        mid = start + _largest_power_of_two_below(width)
        return node_hash(self._subtree_hash(start, mid), self._subtree_hash(mid, end))


def _require_leaf_hash_size(value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(value)}")


# --- Proof verification ----------------------------------------------------------------------


def _require_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for leaf ``index`` of a tree of ``size`` leaves.

    Steps 1-4 of RFC 9162 §2.1.3.2 plus its check that the path length fits the tree; raises
    :class:`MerkleProofError` if the proof cannot belong to such a tree.
    """
    _require_hash(leaf_hash, "leaf hash")
    for position, element in enumerate(proof):
        _require_hash(element, f"proof element {position}")
    if not 0 <= index < size:
        raise MerkleProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise MerkleProofError("proof has more elements than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # The last node of a level, when it is a left child, has no sibling and moves up
            # unchanged: those levels have no proof element, so skip them.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError("proof has fewer elements than the tree has levels")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``proof`` proves leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 §2.1.3.2. Returns None on success, raises :class:`MerkleProofError` otherwise.
    """
    _require_hash(root, "root")
    if root_from_inclusion_proof(leaf_hash, index, size, proof) != root:
        raise MerkleProofError("inclusion proof does not lead to the given root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that ``proof`` shows the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``. The RFC leaves the trivial cases open;
    here equal sizes need an empty proof and equal roots, and size 0 needs an empty proof and
    the empty-tree root (every tree extends the empty one, but a size-0 tree head with any other
    root is not a tree head at all). Returns None, or raises :class:`MerkleProofError`.
    """
    _require_hash(old_root, "old root")
    _require_hash(new_root, "new root")
    for position, element in enumerate(proof):
        _require_hash(element, f"proof element {position}")
    if not 0 <= old_size <= new_size:
        raise MerkleProofError(f"sizes {old_size} -> {new_size} do not describe a growing tree")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise MerkleProofError("the root of the empty tree is SHA-256 of the empty string")
    if old_size == new_size or old_size == 0:
        if proof:
            raise MerkleProofError("proof must be empty for equal sizes or an empty old tree")
        if old_size == new_size and old_root != new_root:
            raise MerkleProofError("trees of equal size have different roots")
        return

    # From here on this is the RFC algorithm, step by step.
    if not proof:
        raise MerkleProofError("empty consistency proof for different sizes")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one, so the generator omitted its hash.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleProofError("proof has more elements than the trees have levels")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # Levels without a sibling, as in root_from_inclusion_proof.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError("proof has fewer elements than the trees have levels")
    if fr != old_root:
        raise MerkleProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise MerkleProofError("consistency proof does not lead to the new root")
