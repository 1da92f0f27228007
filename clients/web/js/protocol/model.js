// Domain vocabulary shared by the whole protocol layer: names, addresses, precedence, intents, limits, and the
// validators used while parsing untrusted input (mirrors hotline/protocol/model.py).
//
// Every regex is anchored with JS "^…$", which — unlike Python's re.match with "$" — never accepts a
// trailing newline: PROTOCOL.md §10.6 requires other implementations to refuse "delhi\n".

import { malformed } from "./errors.js";
import { codePointLength } from "./utf8.js";
import { isJsonObject } from "./json.js";

export const PROTOCOL_VERSION = 1;

export const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const CHANNEL_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const PREKEY_ID_RE = /^[A-Za-z0-9_-]{1,32}$/;
export const LANG_RE = /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/;

/** Member names the relay keeps for itself (not checked while parsing, as in the Python core). */
export const RESERVED_MEMBERS = Object.freeze(new Set(["relay", "admin", "all"]));

export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER; // 2^53 - 1

/** @enum {string} */
export const Suite = Object.freeze({ CLASSIC: "hotline-c1" });

/** @enum {string} */
export const Precedence = Object.freeze({
  FLASH: "FLASH",
  IMMEDIATE: "IMMEDIATE",
  PRIORITY: "PRIORITY",
  ROUTINE: "ROUTINE",
});

/** 0 is the most urgent; queues deliver lower ranks first. */
export const PRECEDENCE_RANK = Object.freeze({ FLASH: 0, IMMEDIATE: 1, PRIORITY: 2, ROUTINE: 3 });

/** @enum {string} */
export const Intent = Object.freeze({
  FREE_TEXT: "free_text",
  CLARIFICATION_REQUEST: "clarification_request",
  REASSURANCE: "reassurance",
  CORRECTION: "correction",
  RESTRAINT_NOTICE: "restraint_notice",
  PRE_NOTIFICATION: "pre_notification",
  PROPOSAL: "proposal",
  ACK_REPLY: "ack_reply",
  LINK_TEST: "link_test",
  INJECT: "inject",
});

/** @enum {string} */
export const ContentType = Object.freeze({ MESSAGE: "hotline.message.v1" });

/**
 * Every size limit of the protocol, checked while parsing and before any cryptography (§8).
 * @typedef {object} Limits
 * @property {number} maxHeaderBytes
 * @property {number} maxBodyPlaintextBytes
 * @property {number} maxRecipients
 * @property {number} maxReceiptBytes
 * @property {number} maxPrekeyBytes
 * @property {number} maxTextChars
 * @property {number} maxEnvelopeBytes derived: a generous bound on a whole JSON envelope
 */

/**
 * @param {Partial<Omit<Limits, "maxEnvelopeBytes">>} [overrides]
 * @returns {Readonly<Limits>}
 */
export function makeLimits(overrides = {}) {
  const base = {
    maxHeaderBytes: 16 * 1024,
    maxBodyPlaintextBytes: 64 * 1024,
    maxRecipients: 64,
    maxReceiptBytes: 4 * 1024,
    maxPrekeyBytes: 2 * 1024,
    maxTextChars: 32 * 1024,
    ...overrides,
  };
  const body = base.maxBodyPlaintextBytes + 12 + 16;
  const perKey = 256;
  const maxEnvelopeBytes = Math.floor(((base.maxHeaderBytes + body + perKey * base.maxRecipients) * 4) / 3) + 4096;
  return Object.freeze({ ...base, maxEnvelopeBytes });
}

export const DEFAULT_LIMITS = makeLimits();

/**
 * One device of one member, e.g. delhi/laptop.
 * @typedef {{readonly member: string, readonly device: string}} DeviceAddress
 */

/** @param {string} member @param {string} device @returns {DeviceAddress} */
export const deviceAddress = (member, device) => Object.freeze({ member, device });

/** @param {DeviceAddress} a @returns {string} "member/device" */
export const addressToString = (a) => `${a.member}/${a.device}`;

/** @param {string} text "member/device" @returns {DeviceAddress} */
export function parseAddress(text) {
  const [member, device, ...rest] = text.split("/");
  if (rest.length || device === undefined) throw malformed(`${text}: not a member/device address`);
  return deviceAddress(requireName(member, { field: "member" }), requireName(device, { field: "device" }));
}

/** @param {DeviceAddress} a @param {DeviceAddress} b */
export const sameAddress = (a, b) => a.member === b.member && a.device === b.device;

/** @param {DeviceAddress} a @returns {{member: string, device: string}} */
export const addressToJson = (a) => ({ member: a.member, device: a.device });

/**
 * @param {unknown} obj
 * @param {{field: string}} options
 * @returns {DeviceAddress}
 */
export function addressFromJson(obj, { field }) {
  const f = requireObject(obj, { field, keys: ["member", "device"] });
  return deviceAddress(
    requireName(f.member, { field: `${field}.member` }),
    requireName(f.device, { field: `${field}.device` }),
  );
}

/** True only for the JSON integer 1 (not true, not 1.0): §1.2. @param {unknown} value */
export const isProtocolVersion = (value) => value === PROTOCOL_VERSION;

/**
 * Check `obj` is a JSON object with exactly `keys` (plus any of `optional`).
 * @param {unknown} obj
 * @param {{field: string, keys: Iterable<string>, optional?: Iterable<string>}} options
 * @returns {Record<string, any>}
 */
export function requireObject(obj, { field, keys, optional = [] }) {
  if (!isJsonObject(obj)) throw malformed(`${field}: expected an object`);
  const required = new Set(keys);
  const allowed = new Set([...required, ...optional]);
  const present = Object.keys(obj);
  const missing = [...required].filter((k) => !Object.hasOwn(obj, k)).sort();
  if (missing.length) throw malformed(`${field}: missing field(s) ${missing.join(", ")}`);
  const unknown = present.filter((k) => !allowed.has(k)).sort();
  if (unknown.length) throw malformed(`${field}: unknown field(s) ${unknown.join(", ")}`);
  return obj;
}

/**
 * A string of at most `maxLen` code points (what Python's len() counts).
 * @param {unknown} obj
 * @param {{field: string, maxLen: number}} options
 * @returns {string}
 */
export function requireStr(obj, { field, maxLen }) {
  if (typeof obj !== "string") throw malformed(`${field}: expected a string`);
  if (obj.length > maxLen && codePointLength(obj) > maxLen) {
    throw malformed(`${field}: longer than ${maxLen} characters`);
  }
  return obj;
}

/** @param {unknown} obj @param {{field: string}} options @returns {string} */
export function requireName(obj, { field }) {
  const value = requireStr(obj, { field, maxLen: 32 });
  if (!NAME_RE.test(value)) {
    throw malformed(`${field}: must be 1-32 of a-z, 0-9, '_' or '-', starting with a letter or digit`);
  }
  return value;
}

/** @param {unknown} obj @param {{field: string}} options @returns {string} */
export function requireChannel(obj, { field }) {
  const value = requireStr(obj, { field, maxLen: 64 });
  if (!CHANNEL_RE.test(value)) throw malformed(`${field}: not a valid channel id`);
  return value;
}

/** @param {unknown} obj @param {{field: string}} options @returns {string} */
export function requireUuid(obj, { field }) {
  const value = requireStr(obj, { field, maxLen: 36 });
  if (!UUID_RE.test(value)) throw malformed(`${field}: not a lower-case UUID`);
  return value;
}

/**
 * An integer in [minimum, maximum]. The parser gives exact integers as numbers and larger ones as
 * BigInt (refused here by the range); numbers written with a fraction or exponent are never integers.
 * @param {unknown} obj
 * @param {{field: string, minimum?: number, maximum?: number}} options
 * @returns {number}
 */
export function requireInt(obj, { field, minimum = 0, maximum = MAX_SAFE_INTEGER }) {
  const isInteger = (typeof obj === "number" && Number.isInteger(obj)) || typeof obj === "bigint";
  if (!isInteger) throw malformed(`${field}: expected an integer`);
  if (typeof obj === "bigint" || obj < minimum || obj > maximum) {
    throw malformed(`${field}: must be between ${minimum} and ${maximum}`);
  }
  return obj;
}

/** @param {unknown} obj @param {{field: string}} options @returns {boolean} */
export function requireBool(obj, { field }) {
  if (typeof obj !== "boolean") throw malformed(`${field}: expected true or false`);
  return obj;
}

/**
 * One of the values of a string enum.
 * @param {unknown} obj
 * @param {Readonly<Record<string, string>>} values
 * @param {{field: string}} options
 * @returns {string}
 */
export function requireEnum(obj, values, { field }) {
  if (typeof obj !== "string") throw malformed(`${field}: expected a string`);
  const allowed = Object.values(values);
  if (!allowed.includes(obj)) throw malformed(`${field}: ${JSON.stringify(obj)} is not one of ${allowed.join(", ")}`);
  return obj;
}
