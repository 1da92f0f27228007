// RFC 9162 (RFC 6962) Merkle tree hashing and proof verification, for checking the relay's audit log (PROTOCOL.md §12).
//
// A leaf hash is SHA-256(0x00 ‖ entry), an interior node SHA-256(0x01 ‖ left ‖ right); the tree over n
// leaves is left-balanced. The browser only verifies: the relay generates proofs. Every verifier takes
// untrusted input and fails closed — any hash that is not exactly 32 bytes is refused before hashing —
// and follows hotline/protocol/merkle.py, including its answers to the trivial cases the RFC leaves open.
// Sizes and indexes are handled as BigInt: JS bitwise operators work on 32 bits only.

import { bytesEqual, concatBytes } from "./encoding.js";
import { sha256 } from "./crypto.js";

export const HASH_SIZE = 32;
const LEAF_PREFIX = new Uint8Array([0x00]);
const NODE_PREFIX = new Uint8Array([0x01]);

/** A proof did not verify, or its parameters cannot describe a valid proof. */
export class MerkleProofError extends Error {
  /** @param {string} reason */
  constructor(reason) {
    super(reason);
    this.name = "MerkleProofError";
    this.reason = reason;
  }
}

/** The root of the empty tree: SHA-256 of nothing. */
export const emptyRoot = () => sha256(new Uint8Array(0));

/** @param {Uint8Array} entry @returns {Promise<Uint8Array>} */
export const leafHash = (entry) => sha256(concatBytes(LEAF_PREFIX, entry));

/** @param {Uint8Array} left @param {Uint8Array} right @returns {Promise<Uint8Array>} */
export const nodeHash = (left, right) => sha256(concatBytes(NODE_PREFIX, left, right));

/**
 * MTH over the given leaf hashes; the empty root for none. Built level by level: an unpaired last node
 * moves up unchanged, which gives exactly the RFC's left-balanced shape.
 * @param {Uint8Array[]} leafHashes
 * @returns {Promise<Uint8Array>}
 */
export async function rootFromLeafHashes(leafHashes) {
  if (!leafHashes.length) return emptyRoot();
  let level = leafHashes;
  while (level.length > 1) {
    const parents = [];
    for (let i = 0; i + 1 < level.length; i += 2) parents.push(await nodeHash(level[i], level[i + 1]));
    if (level.length % 2) parents.push(level[level.length - 1]);
    level = parents;
  }
  return level[0];
}

/** @param {Uint8Array} value @param {string} what */
function requireHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
    throw new MerkleProofError(`${what} is ${value?.length} bytes, not ${HASH_SIZE}`);
  }
}

/** @param {unknown} value @param {string} what @returns {bigint} */
function requireCount(value, what) {
  if (typeof value === "bigint" && value >= 0n) return value;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw new MerkleProofError(`${what} is not an integer from 0 to 2^53-1`);
}

/**
 * The root that `proof` implies for leaf `index` of a tree of `size` leaves (RFC 9162 §2.1.3.2,
 * including the check that the path length fits the tree).
 * @param {Uint8Array} leaf
 * @param {number | bigint} index
 * @param {number | bigint} size
 * @param {Uint8Array[]} proof
 * @returns {Promise<Uint8Array>}
 */
export async function rootFromInclusionProof(leaf, index, size, proof) {
  requireHash(leaf, "leaf hash");
  proof.forEach((element, i) => requireHash(element, `proof element ${i}`));
  const idx = requireCount(index, "leaf index");
  const n = requireCount(size, "tree size");
  if (idx >= n) throw new MerkleProofError(`leaf index ${idx} is outside a tree of size ${n}`);
  let fn = idx;
  let sn = n - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new MerkleProofError("proof has more elements than the tree has levels");
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      // The last node of a level, when it is a left child, has no sibling and moves up unchanged.
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new MerkleProofError("proof has fewer elements than the tree has levels");
  return r;
}

/**
 * Check that `proof` proves leaf `index` of the tree of `size` leaves with `root`; throws MerkleProofError.
 * @param {Uint8Array} leaf
 * @param {number | bigint} index
 * @param {number | bigint} size
 * @param {Uint8Array[]} proof
 * @param {Uint8Array} root
 */
export async function verifyInclusion(leaf, index, size, proof, root) {
  requireHash(root, "root");
  if (!bytesEqual(await rootFromInclusionProof(leaf, index, size, proof), root)) {
    throw new MerkleProofError("inclusion proof does not lead to the given root");
  }
}

/**
 * Check that `proof` shows the tree (oldSize, oldRoot) is a prefix of (newSize, newRoot): RFC 9162
 * §2.1.4.2 for 0 < oldSize < newSize. Equal sizes need an empty proof and equal roots; size 0 needs an
 * empty proof and the empty root (PROTOCOL.md §12). Throws MerkleProofError.
 * @param {number | bigint} oldSize
 * @param {number | bigint} newSize
 * @param {Uint8Array} oldRoot
 * @param {Uint8Array} newRoot
 * @param {Uint8Array[]} proof
 */
export async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  requireHash(oldRoot, "old root");
  requireHash(newRoot, "new root");
  proof.forEach((element, i) => requireHash(element, `proof element ${i}`));
  const m = requireCount(oldSize, "old size");
  const n = requireCount(newSize, "new size");
  if (m > n) throw new MerkleProofError(`sizes ${m} -> ${n} do not describe a growing tree`);
  if (m === 0n && !bytesEqual(oldRoot, await emptyRoot())) {
    throw new MerkleProofError("the root of the empty tree is SHA-256 of the empty string");
  }
  if (m === n || m === 0n) {
    if (proof.length) throw new MerkleProofError("proof must be empty for equal sizes or an empty old tree");
    if (m === n && !bytesEqual(oldRoot, newRoot)) {
      throw new MerkleProofError("trees of equal size have different roots");
    }
    return;
  }
  if (!proof.length) throw new MerkleProofError("empty consistency proof for different sizes");
  // When the old tree is a perfect subtree of the new one, the generator left out its hash.
  const path = (m & (m - 1n)) === 0n ? [oldRoot, ...proof] : [...proof];
  let fn = m - 1n;
  let sn = n - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new MerkleProofError("proof has more elements than the trees have levels");
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new MerkleProofError("proof has fewer elements than the trees have levels");
  if (!bytesEqual(fr, oldRoot)) throw new MerkleProofError("consistency proof does not lead to the old root");
  if (!bytesEqual(sr, newRoot)) throw new MerkleProofError("consistency proof does not lead to the new root");
}
