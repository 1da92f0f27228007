// The envelope header: its fields, how they are written and parsed, and the content-key commitment (§4.1).
//
// The header travels as its exact bytes and is readable by the relay; it is always parsed from those bytes,
// never re-serialized. Parse order follows hotline/protocol/envelope.py (Header.parse) check for check:
// size, UTF-8, JSON, v, exact field set, suite, recipients, seq, content_type, then the remaining fields.

import { malformed, notARecipient, tooLarge, unsupportedSuite, unsupportedVersion } from "./errors.js";
import { b64d, b64e, dumpJson, frame, loadJsonObject, utf8 } from "./encoding.js";
import { compareCodePoints, isJsonObject } from "./json.js";
import { sha256 } from "./crypto.js";
import {
  ContentType,
  DEFAULT_LIMITS,
  PREKEY_ID_RE,
  PROTOCOL_VERSION,
  Precedence,
  Suite,
  addressFromJson,
  addressToJson,
  addressToString,
  isProtocolVersion,
  requireBool,
  requireChannel,
  requireEnum,
  requireInt,
  requireObject,
  requireStr,
  requireUuid,
  sameAddress,
} from "./model.js";

/** @typedef {import("./model.js").DeviceAddress} DeviceAddress */
/** @typedef {import("./model.js").Limits} Limits */

export const DS_KEY_COMMITMENT = utf8("hotline/v1/key-commitment");

const HEADER_FIELDS = [
  "v", "suite", "channel", "id", "sender", "seq", "recipients", "precedence", "key_commitment", "created_at_ms",
  "content_type", "exercise",
];

/**
 * @typedef {object} Recipient
 * @property {DeviceAddress} address
 * @property {string} prekeyId
 */

/**
 * A parsed header. It is always parsed from the exact header bytes, never the reverse.
 * @typedef {object} Header
 * @property {string} suite
 * @property {string} channel
 * @property {string} messageId
 * @property {DeviceAddress} sender
 * @property {Array<[string, number]>} seq (recipient member, sequence number), sorted by member
 * @property {Recipient[]} recipients
 * @property {string} precedence
 * @property {number} createdAtMs
 * @property {string} contentType
 * @property {boolean} exercise
 * @property {Uint8Array} keyCommitment SHA-256(frame(DS_KEY_COMMITMENT, content key)). AES-GCM and HPKE do
 *   not commit to their keys; this makes every recipient that opens the envelope read the same text.
 */

/**
 * @param {Header} h
 * @returns {Uint8Array}
 */
export function headerToBytes(h) {
  return dumpJson({
    v: PROTOCOL_VERSION,
    suite: h.suite,
    channel: h.channel,
    id: h.messageId,
    sender: addressToJson(h.sender),
    seq: Object.fromEntries(h.seq),
    recipients: h.recipients.map((r) => ({ ...addressToJson(r.address), prekey: r.prekeyId })),
    precedence: h.precedence,
    created_at_ms: h.createdAtMs,
    content_type: h.contentType,
    exercise: h.exercise,
    key_commitment: b64e(h.keyCommitment),
  });
}

/**
 * @param {unknown} obj
 * @param {Set<string>} members
 * @returns {Array<[string, number]>}
 */
function parseSeq(obj, members) {
  if (!isJsonObject(obj)) throw malformed("header.seq: expected an object of member -> sequence number");
  const keys = Object.keys(obj);
  if (keys.length !== members.size || !keys.every((m) => members.has(m))) {
    throw malformed("header.seq: needs exactly one sequence number per recipient member");
  }
  /** @type {Array<[string, number]>} */
  const seq = keys.map((m) => [m, requireInt(obj[m], { field: `header.seq.${m}`, minimum: 1 })]);
  return seq.sort((a, b) => compareCodePoints(a[0], b[0]));
}

/**
 * @param {unknown} raw
 * @param {Limits} limits
 * @returns {Recipient[]}
 */
function parseRecipients(raw, limits) {
  if (!Array.isArray(raw) || raw.length === 0) throw malformed("header.recipients: expected a non-empty list");
  if (raw.length > limits.maxRecipients) {
    throw tooLarge(`header.recipients: more than ${limits.maxRecipients} recipients`);
  }
  const recipients = raw.map((item, i) => {
    const name = `header.recipients[${i}]`;
    const rf = requireObject(item, { field: name, keys: ["member", "device", "prekey"] });
    const prekeyId = requireStr(rf.prekey, { field: `${name}.prekey`, maxLen: 32 });
    if (!PREKEY_ID_RE.test(prekeyId)) throw malformed(`${name}.prekey: not a prekey id`);
    const address = addressFromJson({ member: rf.member, device: rf.device }, { field: name });
    return { address, prekeyId };
  });
  if (new Set(recipients.map((r) => addressToString(r.address))).size !== recipients.length) {
    throw malformed("header.recipients: a device is listed twice");
  }
  return recipients;
}

/**
 * Parse header bytes in the order of PROTOCOL.md §4.1.
 * @param {Uint8Array} data
 * @param {Limits} [limits]
 * @returns {Header}
 */
export function parseHeader(data, limits = DEFAULT_LIMITS) {
  const obj = loadJsonObject(data, { what: "header", maxBytes: limits.maxHeaderBytes });
  // The version comes before the field set: a future version may have other fields.
  if (Object.hasOwn(obj, "v") && !isProtocolVersion(obj.v)) {
    throw unsupportedVersion("protocol version is not supported");
  }
  const f = requireObject(obj, { field: "header", keys: HEADER_FIELDS });
  const suite = requireStr(f.suite, { field: "header.suite", maxLen: 64 });
  if (!Object.values(Suite).includes(suite)) throw unsupportedSuite(`suite ${JSON.stringify(suite)} is not supported`);
  const recipients = parseRecipients(f.recipients, limits);
  const seq = parseSeq(f.seq, new Set(recipients.map((r) => r.address.member)));
  const contentType = requireStr(f.content_type, { field: "header.content_type", maxLen: 64 });
  if (contentType !== ContentType.MESSAGE) {
    throw unsupportedVersion(`content type ${JSON.stringify(contentType)} is not supported`);
  }
  return {
    suite,
    channel: requireChannel(f.channel, { field: "header.channel" }),
    messageId: requireUuid(f.id, { field: "header.id" }),
    sender: addressFromJson(f.sender, { field: "header.sender" }),
    seq,
    recipients,
    precedence: requireEnum(f.precedence, Precedence, { field: "header.precedence" }),
    createdAtMs: requireInt(f.created_at_ms, { field: "header.created_at_ms" }),
    contentType,
    exercise: requireBool(f.exercise, { field: "header.exercise" }),
    keyCommitment: requireHash(f.key_commitment, { field: "header.key_commitment" }),
  };
}

/** A base64url SHA-256 hash: exactly 32 bytes. @param {unknown} value @param {{field: string}} options */
function requireHash(value, { field }) {
  const digest = b64d(value, { field, maxBytes: 32 });
  if (digest.length !== 32) throw malformed(`${field}: a SHA-256 hash is 32 bytes`);
  return digest;
}

/** The header's commitment to a content key. @param {Uint8Array} contentKey */
export const keyCommitment = (contentKey) => sha256(frame(DS_KEY_COMMITMENT, contentKey));

/**
 * This device's entry among the header's recipients, else not_a_recipient.
 * @param {Header} header
 * @param {DeviceAddress} address
 * @returns {Recipient}
 */
export function headerRecipient(header, address) {
  const found = header.recipients.find((r) => sameAddress(r.address, address));
  if (!found) throw notARecipient(`${addressToString(address)} is not a recipient of message ${header.messageId}`);
  return found;
}

/**
 * The sender device's sequence number in its stream to `member`.
 * @param {Header} header
 * @param {string} member
 * @returns {number}
 */
export function seqFor(header, member) {
  const entry = header.seq.find(([name]) => name === member);
  if (!entry) throw notARecipient(`${member} is not a recipient of message ${header.messageId}`);
  return entry[1];
}

/** A sealed message as it travels. */
