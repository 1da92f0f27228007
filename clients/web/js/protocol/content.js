// The inner content of an envelope — what only recipients read — and its structured templates (PROTOCOL.md §4.10).
//
// The content repeats the channel, message id, sender and recipients of the header, so decrypted text
// can never be presented under another header. Mirrors hotline/protocol/content.py, check for check.

import { malformed, unsupportedVersion } from "./errors.js";
import { dumpJson, loadJsonObject } from "./encoding.js";
import { isJsonObject } from "./json.js";
import { TreeHead } from "./statements.js";
import {
  DEFAULT_LIMITS,
  Intent,
  LANG_RE,
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

const DAY_MS = 24 * 60 * 60 * 1000;
const CONTENT_FIELDS = [
  "v", "channel", "id", "sender", "recipients", "intent", "text", "lang", "in_reply_to", "fields",
];

/**
 * @typedef {object} Content
 * @property {string} channel
 * @property {string} messageId
 * @property {DeviceAddress} sender
 * @property {DeviceAddress[]} recipients
 * @property {string} intent
 * @property {string} text the authoritative original text
 * @property {string} lang
 * @property {string | null} inReplyTo
 * @property {Record<string, unknown>} fields {} or a template
 */

/**
 * The exact bytes of a content object, as the sender encrypts them.
 * @param {Content} c
 * @returns {Uint8Array}
 */
export function contentToBytes(c) {
  return dumpJson({
    v: PROTOCOL_VERSION,
    channel: c.channel,
    id: c.messageId,
    sender: addressToJson(c.sender),
    recipients: c.recipients.map(addressToJson),
    intent: c.intent,
    text: c.text,
    lang: c.lang,
    in_reply_to: c.inReplyTo,
    fields: c.fields,
  });
}

/**
 * Parse decrypted content bytes, with the checks of content.py in the same order.
 * @param {Uint8Array} data
 * @param {Limits} [limits]
 * @returns {Content}
 */
export function parseContent(data, limits = DEFAULT_LIMITS) {
  const obj = loadJsonObject(data, { what: "content", maxBytes: limits.maxBodyPlaintextBytes });
  const f = requireObject(obj, { field: "content", keys: CONTENT_FIELDS });
  if (!isProtocolVersion(f.v)) throw unsupportedVersion("content version is not supported");
  if (!Array.isArray(f.recipients) || f.recipients.length > limits.maxRecipients) {
    throw malformed("content.recipients: expected a list within the recipient limit");
  }
  const lang = requireStr(f.lang, { field: "content.lang", maxLen: 35 });
  if (!LANG_RE.test(lang)) throw malformed("content.lang: not a language tag");
  const inReplyTo = f.in_reply_to === null ? null : requireUuid(f.in_reply_to, { field: "content.in_reply_to" });
  if (!isJsonObject(f.fields)) throw malformed("content.fields: expected an object");
  const intent = requireEnum(f.intent, Intent, { field: "content.intent" });
  const content = {
    channel: requireChannel(f.channel, { field: "content.channel" }),
    messageId: requireUuid(f.id, { field: "content.id" }),
    sender: addressFromJson(f.sender, { field: "content.sender" }),
    recipients: f.recipients.map((r, i) => addressFromJson(r, { field: `content.recipients[${i}]` })),
    intent,
    text: requireStr(f.text, { field: "content.text", maxLen: limits.maxTextChars }),
    lang,
    inReplyTo,
    fields: f.fields,
  };
  validateTemplate(content.intent, content.fields);
  return content;
}

/**
 * Whitespace-separated words, as Python's str.split() counts them (clients use it for FLASH/IMMEDIATE).
 * @param {string} text
 */
export function wordCount(text) {
  return text.split(/[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/).filter(Boolean)
    .length;
}

// --- templates ---------------------------------------------------------------------------------------

// RFC 3339 date-time with an upper-case T and a Z or numeric offset: the interoperable subset of what the
// Python reference accepts (PROTOCOL.md §4.10, §10.6). Python's wider ISO 8601 dialect is refused here.
const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/** @param {number} year */
const isLeap = (year) => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;

/**
 * Milliseconds since the epoch of an RFC 3339 date-time, as content.py computes them:
 * int(datetime.timestamp() * 1000), with fractions beyond microseconds cut off.
 * @param {unknown} value
 * @param {{field: string}} options
 * @returns {number}
 */
export function isoMs(value, { field }) {
  const text = requireStr(value, { field, maxLen: 40 });
  const m = RFC3339_RE.exec(text);
  if (!m) throw malformed(`${field}: not an RFC 3339 date-time with a time zone (e.g. 2025-05-10T06:00:00Z)`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const monthDays = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  const offsetHours = m[8] ? Number(m[9]) : 0;
  const offsetMinutes = m[8] ? Number(m[10]) : 0;
  const valid =
    year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= monthDays[month - 1] &&
    hour <= 23 && minute <= 59 && second <= 59 && offsetHours <= 23 && offsetMinutes <= 59;
  if (!valid) throw malformed(`${field}: not a valid date-time`);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // three-argument form: years 0-99 are not shifted to 19xx
  date.setUTCHours(hour, minute, second, 0);
  const offsetMs = (m[8] === "-" ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  const micros = Number((m[7] ?? "").slice(0, 6).padEnd(6, "0"));
  // Same float steps as Python (exact integer microseconds / 1e6, * 1000, truncate) for dates within
  // about ±285 years of 1970, where the microsecond count is exact in a double.
  const totalMicros = (date.getTime() - offsetMs) * 1000 + micros;
  return Math.trunc((totalMicros / 1e6) * 1000);
}

/** @param {Record<string, unknown>} fields */
function missileTest(fields) {
  const f = requireObject(fields, {
    field: "fields",
    keys: ["template", "launch_window_start", "launch_window_end", "launch_area", "impact_area"],
    optional: ["missile_type", "notice"],
  });
  const start = isoMs(f.launch_window_start, { field: "fields.launch_window_start" });
  const end = isoMs(f.launch_window_end, { field: "fields.launch_window_end" });
  if (end <= start) throw malformed("fields: the launch window must end after it starts");
  if (end - start > 5 * DAY_MS) throw malformed("fields: a launch window may last at most 5 days");
  for (const key of ["launch_area", "impact_area", "missile_type", "notice"]) {
    if (Object.hasOwn(f, key)) requireStr(f[key], { field: `fields.${key}`, maxLen: 512 });
  }
}

/** @param {Record<string, unknown>} fields */
function installationsList(fields) {
  const f = requireObject(fields, { field: "fields", keys: ["template", "year", "entries"] });
  // PROTOCOL.md §1.2 bounds every integer to 0…2^53−1; the Python reference does not bound this one (§10.6).
  requireInt(f.year, { field: "fields.year" });
  if (!Array.isArray(f.entries) || f.entries.length > 1000) {
    throw malformed("fields.entries: expected a list of at most 1000 entries");
  }
  f.entries.forEach((entry, i) => requireStr(entry, { field: `fields.entries[${i}]`, maxLen: 512 }));
}

/** @param {Record<string, unknown>} fields */
function treeHead(fields) {
  const f = requireObject(fields, { field: "fields", keys: ["template", "tree_head"] });
  TreeHead.fromJson(f.tree_head); // its signature is the receiving desk's to check (relay key)
}

/** Template name → [the intent it needs, its checker]. */
export const TEMPLATES = Object.freeze({
  // 2005 India–Pakistan agreement: pre-notify ballistic-missile tests, window of at most 5 days.
  missile_test: [Intent.PRE_NOTIFICATION, missileTest],
  // 1988/1992 agreement: lists of nuclear installations exchanged every 1 January.
  nuclear_installations: [Intent.PRE_NOTIFICATION, installationsList],
  // The newest relay tree head the sender verified (PROTOCOL.md §12.3); link tests carry it.
  tree_head: [Intent.LINK_TEST, treeHead],
});

/**
 * Check structured fields: either empty, or a known template valid for the intent.
 * @param {string} intent
 * @param {Record<string, unknown>} fields
 */
export function validateTemplate(intent, fields) {
  if (Object.keys(fields).length === 0) return;
  const name = fields.template;
  if (typeof name !== "string" || !Object.hasOwn(TEMPLATES, name)) {
    throw malformed(`fields.template: unknown template ${typeof name === "string" ? JSON.stringify(name) : ""}`);
  }
  const [expectedIntent, check] = TEMPLATES[/** @type {keyof typeof TEMPLATES} */ (name)];
  if (intent !== expectedIntent) throw malformed(`fields: template ${name} needs intent ${expectedIntent}`);
  check(fields);
}

/**
 * True if a missile-test notice came at least 3 days before the launch window opens (2005 agreement).
 * A late notice is still a valid message; clients flag it.
 * @param {Record<string, unknown>} fields
 * @param {number} createdAtMs
 */
export function missileTestNoticeOk(fields, createdAtMs) {
  return isoMs(fields.launch_window_start, { field: "fields.launch_window_start" }) - createdAtMs >= 3 * DAY_MS;
}
