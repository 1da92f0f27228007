// Receipts: signed, timed statements about one envelope, one for each step of a message's life (PROTOCOL.md §5).
//
//   relay-accepted  signed by the relay: it durably stored the envelope at a log index;
//   delivered       signed by a recipient device: it verified and decrypted the envelope;
//   acknowledged    signed by a recipient device for a person at the desk (may name a reply);
//   rejected        signed by a recipient device that could not verify or open it, with a reason code,
//                   so the sender can resend. A failure is never silent.
// Receipts are non-repudiable on purpose. Mirrors hotline/protocol/receipts.py, check for check.

import { ErrorCode, malformed, unsupportedVersion } from "./errors.js";
import { b64d, b64e, dumpJson, frame, loadJsonObject, utf8 } from "./encoding.js";
import { ED25519_SIGNATURE_LEN, sha256, sign, verifySignature } from "./crypto.js";
import {
  DEFAULT_LIMITS,
  PROTOCOL_VERSION,
  addressFromJson,
  addressToJson,
  isProtocolVersion,
  requireChannel,
  requireEnum,
  requireInt,
  requireObject,
  requireStr,
  requireUuid,
} from "./model.js";

/** @typedef {import("./model.js").DeviceAddress} DeviceAddress */
/** @typedef {import("./model.js").Limits} Limits */

export const DS_RECEIPT = utf8("hotline/v1/receipt");

/** @enum {string} */
export const ReceiptKind = Object.freeze({
  RELAY_ACCEPTED: "relay-accepted",
  DELIVERED: "delivered",
  ACKNOWLEDGED: "acknowledged",
  REJECTED: "rejected",
});

/** The error codes a recipient may give in a rejected receipt: those a resend can cure or the sender must know. */
export const REJECT_REASONS = Object.freeze(
  new Set([
    ErrorCode.MALFORMED,
    ErrorCode.UNSUPPORTED_VERSION,
    ErrorCode.UNSUPPORTED_SUITE,
    ErrorCode.UNKNOWN_KEY,
    ErrorCode.EXPIRED_PREKEY,
    ErrorCode.BAD_SIGNATURE,
    ErrorCode.NOT_A_RECIPIENT,
    ErrorCode.DECRYPTION_FAILED,
  ]),
);

const COMMON_FIELDS = ["v", "type", "kind", "channel", "message_id", "envelope_hash", "at_ms"];
const EXTRA_FIELDS = {
  "relay-accepted": ["log_index"],
  delivered: ["issuer"],
  acknowledged: ["issuer", "reply_id"],
  rejected: ["issuer", "reason"],
};

/** A parsed receipt. `body` holds the exact signed bytes. */
export class Receipt {
  /**
   * @param {{body: Uint8Array, signature: Uint8Array, kind: string, channel: string, messageId: string,
   *          envelopeHash: Uint8Array, atMs: number, issuer: DeviceAddress | null, logIndex: number | null,
   *          replyId: string | null, reason: string | null, declined: boolean}} fields
   */
  constructor(fields) {
    Object.assign(this, fields);
    Object.freeze(this);
  }

  signedBytes() {
    return frame(DS_RECEIPT, /** @type {Uint8Array} */ (this.body));
  }

  /**
   * Raise bad_signature unless the issuer signed this receipt: the relay's key for relay-accepted, the
   * directory's key for `issuer` otherwise (the caller looks it up).
   * @param {Uint8Array} issuerPublicKey
   */
  verify(issuerPublicKey) {
    return verifySignature(issuerPublicKey, /** @type {Uint8Array} */ (this.signature), this.signedBytes());
  }

  /** SHA-256(frame(DS, body, sig)). @returns {Promise<Uint8Array>} */
  hash() {
    return sha256(frame(DS_RECEIPT, /** @type {Uint8Array} */ (this.body), /** @type {Uint8Array} */ (this.signature)));
  }

  /** @returns {{body: string, sig: string}} */
  toJson() {
    return { body: b64e(/** @type {Uint8Array} */ (this.body)), sig: b64e(/** @type {Uint8Array} */ (this.signature)) };
  }

  /**
   * @param {unknown} obj the wire form {"body", "sig"}
   * @param {Limits} [limits]
   */
  static fromJson(obj, limits = DEFAULT_LIMITS) {
    const f = requireObject(obj, { field: "receipt", keys: ["body", "sig"] });
    const body = b64d(f.body, { field: "receipt.body", maxBytes: limits.maxReceiptBytes });
    const sig = b64d(f.sig, { field: "receipt.sig", maxBytes: ED25519_SIGNATURE_LEN });
    return Receipt.parse(body, sig, limits);
  }

  /**
   * Parse a receipt body in the order of PROTOCOL.md §5. Does not verify the signature.
   * @param {Uint8Array} body
   * @param {Uint8Array} signature
   * @param {Limits} [limits]
   */
  static parse(body, signature, limits = DEFAULT_LIMITS) {
    const obj = loadJsonObject(body, { what: "receipt", maxBytes: limits.maxReceiptBytes });
    if (Object.hasOwn(obj, "v") && !isProtocolVersion(obj.v)) {
      throw unsupportedVersion("receipt version is not supported");
    }
    const kind = requireEnum(Object.hasOwn(obj, "kind") ? obj.kind : null, ReceiptKind, { field: "receipt.kind" });
    const extra = EXTRA_FIELDS[/** @type {keyof typeof EXTRA_FIELDS} */ (kind)];
    // An acknowledgement may carry "declined": true — a signed refusal by a person (ADR 0007).
    const optional = kind === ReceiptKind.ACKNOWLEDGED ? ["declined"] : [];
    const f = requireObject(obj, { field: "receipt", keys: [...COMMON_FIELDS, ...extra], optional });
    if (f.type !== "receipt") throw malformed("receipt.type: expected 'receipt'");
    const envelopeHash = b64d(f.envelope_hash, { field: "receipt.envelope_hash", maxBytes: 32 });
    if (envelopeHash.length !== 32) throw malformed("receipt.envelope_hash: a SHA-256 hash is 32 bytes");
    const issuer = Object.hasOwn(f, "issuer") ? addressFromJson(f.issuer, { field: "receipt.issuer" }) : null;
    const logIndex = Object.hasOwn(f, "log_index") ? requireInt(f.log_index, { field: "receipt.log_index" }) : null;
    const hasReply = Object.hasOwn(f, "reply_id") && f.reply_id !== null;
    const replyId = hasReply ? requireUuid(f.reply_id, { field: "receipt.reply_id" }) : null;
    let reason = null;
    if (Object.hasOwn(f, "reason")) {
      reason = requireStr(f.reason, { field: "receipt.reason", maxLen: 64 });
      if (!REJECT_REASONS.has(reason)) {
        throw malformed(`receipt.reason: ${JSON.stringify(reason)} is not a rejection reason`);
      }
    }
    // One encoding only: a refusal says true; an acknowledgement that is not one leaves the field out.
    if (Object.hasOwn(f, "declined") && f.declined !== true) {
      throw malformed("receipt.declined: only true is allowed (leave it out otherwise)");
    }
    return new Receipt({
      body,
      signature,
      kind,
      channel: requireChannel(f.channel, { field: "receipt.channel" }),
      messageId: requireUuid(f.message_id, { field: "receipt.message_id" }),
      envelopeHash,
      atMs: requireInt(f.at_ms, { field: "receipt.at_ms" }),
      issuer,
      logIndex,
      replyId,
      reason,
      declined: Object.hasOwn(f, "declined"),
    });
  }
}

/**
 * Serialize, sign and re-parse (so a signer never emits what a verifier refuses).
 * @param {Record<string, unknown>} fields
 * @param {CryptoKey} signingKey
 */
async function issue(fields, signingKey) {
  const body = dumpJson({ v: PROTOCOL_VERSION, type: "receipt", ...fields });
  return Receipt.parse(body, await sign(signingKey, frame(DS_RECEIPT, body)));
}

/**
 * A relay-accepted receipt (the relay issues these; here for tests and tools).
 * @param {CryptoKey} relayKey
 * @param {{channel: string, messageId: string, envelopeHash: Uint8Array, logIndex: number, atMs: number}} f
 */
export function issueRelayAccepted(relayKey, { channel, messageId, envelopeHash, logIndex, atMs }) {
  return issue(
    {
      kind: ReceiptKind.RELAY_ACCEPTED,
      channel,
      message_id: messageId,
      envelope_hash: b64e(envelopeHash),
      log_index: logIndex,
      at_ms: atMs,
    },
    relayKey,
  );
}

/**
 * Issue a delivered, acknowledged or rejected receipt from a recipient device. `declined` (acknowledged
 * only) makes the acknowledgement a signed refusal.
 * @param {CryptoKey} deviceKey the device's (non-extractable) signing key
 * @param {DeviceAddress} issuer
 * @param {string} kind
 * @param {{channel: string, messageId: string, envelopeHash: Uint8Array, atMs: number,
 *          replyId?: string | null, reason?: string | null, declined?: boolean}} f
 */
export function issueDeviceReceipt(deviceKey, issuer, kind, f) {
  const { channel, messageId, envelopeHash, atMs, replyId = null, reason = null, declined = false } = f;
  if (declined && kind !== ReceiptKind.ACKNOWLEDGED) throw malformed("only an acknowledged receipt can be a refusal");
  /** @type {Record<string, unknown>} */
  const fields = {
    kind,
    channel,
    message_id: messageId,
    envelope_hash: b64e(envelopeHash),
    issuer: addressToJson(issuer),
    at_ms: atMs,
  };
  if (kind === ReceiptKind.ACKNOWLEDGED) {
    fields.reply_id = replyId;
    if (declined) fields.declined = true;
  } else if (kind === ReceiptKind.REJECTED) {
    if (reason === null || !REJECT_REASONS.has(reason)) throw malformed("a rejected receipt needs a rejection reason");
    fields.reason = reason;
  } else if (kind !== ReceiptKind.DELIVERED) {
    throw malformed(`a device cannot issue a ${kind} receipt`);
  }
  return issue(fields, deviceKey);
}
