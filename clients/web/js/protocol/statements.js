// Other signed statements: the relay's tree heads and a device's login proof (PROTOCOL.md §6; mirrors statements.py).
//
// A tree head is the relay's signed statement of its audit log's size and Merkle root at a time; desks
// compare the heads they have seen to catch a relay showing each side a different history. An auth
// proof is a device's signature over a relay challenge, bound to the relay and the device address.

import { malformed, unsupportedVersion } from "./errors.js";
import { b64d, b64e, dumpJson, frame, loadJsonObject, utf8 } from "./encoding.js";
import { ED25519_SIGNATURE_LEN, sign, verifySignature } from "./crypto.js";
import { PROTOCOL_VERSION, isProtocolVersion, requireInt, requireObject, requireStr } from "./model.js";

/** @typedef {import("./model.js").DeviceAddress} DeviceAddress */

export const DS_TREE_HEAD = utf8("hotline/v1/tree-head");
export const DS_AUTH = utf8("hotline/v1/auth");
export const MAX_TREE_HEAD_BYTES = 1024;

/** A relay-signed tree head. `body` holds the exact signed bytes. */
export class TreeHead {
  /**
   * @param {{body: Uint8Array, signature: Uint8Array, size: number, root: Uint8Array, atMs: number}} fields
   */
  constructor({ body, signature, size, root, atMs }) {
    this.body = body;
    this.signature = signature;
    this.size = size;
    this.root = root;
    this.atMs = atMs;
    Object.freeze(this);
  }

  /** Raise bad_signature unless the relay signed it. @param {Uint8Array} relayPublicKey */
  verify(relayPublicKey) {
    return verifySignature(relayPublicKey, this.signature, frame(DS_TREE_HEAD, this.body));
  }

  /** @returns {{body: string, sig: string}} */
  toJson() {
    return { body: b64e(this.body), sig: b64e(this.signature) };
  }

  /** @param {unknown} obj the wire form {"body", "sig"} */
  static fromJson(obj) {
    const f = requireObject(obj, { field: "tree_head", keys: ["body", "sig"] });
    const body = b64d(f.body, { field: "tree_head.body", maxBytes: MAX_TREE_HEAD_BYTES });
    const sig = b64d(f.sig, { field: "tree_head.sig", maxBytes: ED25519_SIGNATURE_LEN });
    return TreeHead.parse(body, sig);
  }

  /**
   * Parse a tree head body (§6.1): size, JSON, exact fields, then v, type, root, size, at_ms.
   * @param {Uint8Array} body
   * @param {Uint8Array} signature
   */
  static parse(body, signature) {
    const obj = loadJsonObject(body, { what: "tree head", maxBytes: MAX_TREE_HEAD_BYTES });
    const f = requireObject(obj, { field: "tree_head", keys: ["v", "type", "size", "root", "at_ms"] });
    if (!isProtocolVersion(f.v)) throw unsupportedVersion("tree head version is not supported");
    if (f.type !== "tree-head") throw malformed("tree_head.type: expected 'tree-head'");
    const root = b64d(f.root, { field: "tree_head.root", maxBytes: 32 });
    if (root.length !== 32) throw malformed("tree_head.root: a SHA-256 hash is 32 bytes");
    return new TreeHead({
      body,
      signature,
      size: requireInt(f.size, { field: "tree_head.size" }),
      root,
      atMs: requireInt(f.at_ms, { field: "tree_head.at_ms" }),
    });
  }
}

/**
 * Sign a tree head (the relay does this; here for tests and tools).
 * @param {CryptoKey} relayKey
 * @param {{size: number, root: Uint8Array, atMs: number}} head
 */
export async function signTreeHead(relayKey, { size, root, atMs }) {
  const body = dumpJson({ v: PROTOCOL_VERSION, type: "tree-head", size, root: b64e(root), at_ms: atMs });
  return TreeHead.parse(body, await sign(relayKey, frame(DS_TREE_HEAD, body)));
}

/**
 * The bytes a device signs to log in: bound to the relay, the challenge and the device.
 * @param {string} relayId
 * @param {Uint8Array} challenge
 * @param {DeviceAddress} device
 */
export function authMessage(relayId, challenge, device) {
  requireStr(relayId, { field: "relay_id", maxLen: 128 });
  return frame(DS_AUTH, utf8(relayId), challenge, utf8(device.member), utf8(device.device));
}

/**
 * @param {CryptoKey} signingKey the device's (non-extractable) signing key
 * @param {string} relayId
 * @param {Uint8Array} challenge
 * @param {DeviceAddress} device
 * @returns {Promise<Uint8Array>}
 */
export function signAuthChallenge(signingKey, relayId, challenge, device) {
  return sign(signingKey, authMessage(relayId, challenge, device));
}

/**
 * Raise bad_signature unless `signature` proves `device` answered `challenge` for `relayId`.
 * @param {Uint8Array} publicKey
 * @param {Uint8Array} signature
 * @param {string} relayId
 * @param {Uint8Array} challenge
 * @param {DeviceAddress} device
 */
export function verifyAuthProof(publicKey, signature, relayId, challenge, device) {
  return verifySignature(publicKey, signature, authMessage(relayId, challenge, device));
}
