// Self-test suite: RFC 6962 / RFC 9162 Merkle roots and proof verdicts for the transparency-dev test data.

import { fromHex, toHex } from "../encoding.js";
import { MerkleProofError, leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from "../merkle.js";
import { Cases, assertEqual } from "./support.js";

/** Standard (padded) base64, as the transparency-dev files write hashes. */
const fromBase64 = (/** @type {string} */ text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/**
 * The verifier's verdict on one proof file: null if it verifies, else the reason.
 * @param {string} kind "inclusion" or "consistency"
 * @param {any} c the parsed file (sizes beyond 2^53 arrive rounded, so they are refused as out of range)
 * @returns {Promise<string | null>}
 */
async function verdict(kind, c) {
  const proof = (c.proof ?? []).map(fromBase64);
  try {
    if (kind === "inclusion") {
      await verifyInclusion(fromBase64(c.leafHash), c.leafIdx, c.treeSize, proof, fromBase64(c.root));
    } else {
      await verifyConsistency(c.size1, c.size2, fromBase64(c.root1), fromBase64(c.root2), proof);
    }
    return null;
  } catch (err) {
    if (err instanceof MerkleProofError) return err.reason;
    throw err;
  }
}

/**
 * Roots for every size of roots.json, and a verdict for every proof file (the Python test compares them
 * with hotline/protocol/merkle.py's verdicts and with each file's wantErr).
 * @param {{roots: any, files: Array<{path: string, text: string}>}} args
 */
export async function merkleSuite(args) {
  const cases = new Cases();
  const leaves = await Promise.all(args.roots.leaf_inputs_hex.map((/** @type {string} */ h) => leafHash(fromHex(h))));
  for (const [size, rootHex] of Object.entries(args.roots.root_hashes_hex_by_size)) {
    await cases.check(`root of the first ${size} leaves`, async () => {
      assertEqual(toHex(await rootFromLeafHashes(leaves.slice(0, Number(size)))), rootHex, "root");
    });
  }
  /** @type {Array<{path: string, error: string | null}>} */
  const verdicts = [];
  for (const file of args.files) {
    const kind = file.path.startsWith("inclusion/") ? "inclusion" : "consistency";
    verdicts.push({ path: file.path, error: await verdict(kind, JSON.parse(file.text)) });
  }
  return { cases: cases.results, verdicts };
}
