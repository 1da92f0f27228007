// Signed statements of hotline's semantics: a desk's acts and the relay's notices (mirrors
// hotline/protocol/notices.py; docs/adr/0007).
//
//   act     signed by a device for a person at its desk: declare or stand down crisis mode, answer a
//           scheduled check-in, withdraw a sent message;
//   notice  signed by the relay: an escalation (a deadline passed), a change of crisis mode, a policy
//           change, a check-in falling due, a withdrawal.
// Both travel like receipts, {"body", "sig"}, signed over frame(<domain>, body), with exactly the
// fields of their kind. A client checks a notice with the relay key it pinned at enrollment, so an
// escalation on screen provably came from the relay.

import { malformed, unsupportedVersion } from "./errors.js";
import { b64d, b64e, dumpJson, frame, loadJsonObject, utf8 } from "./encoding.js";
import { sign, verifySignature } from "./crypto.js";
import {
  NAME_RE,
  PROTOCOL_VERSION,
  Precedence,
  addressFromJson,
  addressToJson,
  isProtocolVersion,
  requireChannel,
  requireEnum,
  requireInt,
  requireName,
  requireObject,
  requireStr,
  requireUuid,
} from "./model.js";

/** @typedef {import("./model.js").DeviceAddress} DeviceAddress */

export const DS_ACT = utf8("hotline/v1/act");
export const DS_NOTICE = utf8("hotline/v1/notice");
const MAX_ACT_BYTES = 4 * 1024;
const MAX_NOTICE_BYTES = 16 * 1024; // a crisis notice carries the act it records
const MAX_SIGNATURE_BYTES = 3373; // the largest signature of any suite (hotline-pq1)
const MAX_REASON_CHARS = 500;

/** @enum {string} */
export const ActKind = Object.freeze({
  CRISIS_DECLARE: "crisis-declare",
  CRISIS_STAND_DOWN: "crisis-stand-down",
  CHECKIN_ANSWER: "checkin-answer",
  WITHDRAW: "withdraw",
});

/** @enum {string} */
export const NoticeKind = Object.freeze({
  ESCALATION: "escalation",
  CRISIS: "crisis",
  POLICY: "policy",
  CHECKIN_DUE: "checkin-due",
  WITHDRAWN: "withdrawn",
});

const ACT_COMMON = ["v", "type", "act", "id", "channel", "issuer", "at_ms"];
const ACT_FIELDS = {
  "crisis-declare": ["epoch", "reason"],
  "crisis-stand-down": ["epoch", "reason"],
  "checkin-answer": ["checkin", "text"],
  withdraw: ["message_id", "reason"],
};
const NOTICE_COMMON = ["v", "type", "notice", "id", "channel", "at_ms"];
const NOTICE_FIELDS = {
  escalation: ["reason", "desk", "state", "deadline_ms", "attempt", "mode", "message_id", "sender", "precedence", "checkin"],
  crisis: ["on", "epoch", "trigger", "by", "reason", "act"],
  policy: ["version", "by"],
  "checkin-due": ["checkin", "due_ms", "answer_by_ms", "desks"],
  withdrawn: ["message_id", "by", "act"],
};
const ESCALATION_REASONS = Object.freeze({ a: "delivery_overdue", b: "ack_overdue", c: "link_test_missed", d: "checkin_missed" });
const DESK_STATES = Object.freeze({
  a: "pending",
  b: "undelivered",
  c: "rejected",
  d: "delivered",
  e: "silent",
  f: "acknowledged",
  g: "declined",
  h: "withdrawn",
});
const MODES = Object.freeze({ a: "normal", b: "crisis" });
const CRISIS_TRIGGERS = Object.freeze({ a: "act", b: "flash", c: "link_test_missed" });

/** `<schedule>@<due_ms>`, e.g. dgmo@1732615200000. @param {unknown} value @param {string} field */
function requireCheckinId(value, field) {
  const text = requireStr(value, { field, maxLen: 64 });
  const at = text.indexOf("@");
  const schedule = text.slice(0, at);
  const due = text.slice(at + 1);
  if (at < 0 || !NAME_RE.test(schedule) || !/^[0-9]{1,16}$/.test(due)) throw malformed(`${field}: expected <schedule>@<due_ms>`);
  return text;
}

/** @param {unknown} obj @param {string} field */
const signatureOf = (obj, field) => b64d(obj, { field, maxBytes: MAX_SIGNATURE_BYTES });

/** A device's signed act. `fields` holds the kind's own members. */
export class Act {
  /**
   * @param {{body: Uint8Array, signature: Uint8Array, kind: string, id: string, channel: string,
   *          issuer: DeviceAddress, atMs: number, fields: Record<string, any>}} f
   */
  constructor(f) {
    Object.assign(this, f);
    Object.freeze(this);
  }

  /** @param {Uint8Array} issuerPublicKey */
  verify(issuerPublicKey) {
    const self = /** @type {any} */ (this);
    return verifySignature(issuerPublicKey, self.signature, frame(DS_ACT, self.body));
  }

  toJson() {
    const self = /** @type {any} */ (this);
    return { body: b64e(self.body), sig: b64e(self.signature) };
  }

  /** @param {unknown} obj */
  static fromJson(obj) {
    const f = requireObject(obj, { field: "act", keys: ["body", "sig"] });
    return Act.parse(b64d(f.body, { field: "act.body", maxBytes: MAX_ACT_BYTES }), signatureOf(f.sig, "act.sig"));
  }

  /** @param {Uint8Array} body @param {Uint8Array} signature */
  static parse(body, signature) {
    const obj = loadJsonObject(body, { what: "act", maxBytes: MAX_ACT_BYTES });
    if (Object.hasOwn(obj, "v") && !isProtocolVersion(obj.v)) throw unsupportedVersion("act version is not supported");
    const kind = requireEnum(Object.hasOwn(obj, "act") ? obj.act : null, ActKind, { field: "act.act" });
    const f = requireObject(obj, { field: "act", keys: [...ACT_COMMON, ...ACT_FIELDS[/** @type {keyof typeof ACT_FIELDS} */ (kind)]] });
    if (f.type !== "act") throw malformed("act.type: expected 'act'");
    /** @type {Record<string, any>} */
    const fields = {};
    if (kind === ActKind.CRISIS_DECLARE || kind === ActKind.CRISIS_STAND_DOWN) {
      fields.epoch = requireInt(f.epoch, { field: "act.epoch" });
      fields.reason = requireStr(f.reason, { field: "act.reason", maxLen: MAX_REASON_CHARS });
    } else if (kind === ActKind.CHECKIN_ANSWER) {
      fields.checkin = requireCheckinId(f.checkin, "act.checkin");
      fields.text = requireStr(f.text, { field: "act.text", maxLen: MAX_REASON_CHARS });
    } else {
      fields.message_id = requireUuid(f.message_id, { field: "act.message_id" });
      fields.reason = requireStr(f.reason, { field: "act.reason", maxLen: MAX_REASON_CHARS });
    }
    return new Act({
      body,
      signature,
      kind,
      id: requireUuid(f.id, { field: "act.id" }),
      channel: requireChannel(f.channel, { field: "act.channel" }),
      issuer: addressFromJson(f.issuer, { field: "act.issuer" }),
      atMs: requireInt(f.at_ms, { field: "act.at_ms" }),
      fields,
    });
  }
}

/**
 * Sign an act for this device's desk; `fields` are exactly the kind's (epoch and reason for crisis acts…).
 * @param {CryptoKey} signingKey
 * @param {DeviceAddress} issuer
 * @param {string} kind
 * @param {{id: string, channel: string, atMs: number, fields: Record<string, unknown>}} a
 */
export async function signAct(signingKey, issuer, kind, { id, channel, atMs, fields }) {
  const wanted = ACT_FIELDS[/** @type {keyof typeof ACT_FIELDS} */ (kind)];
  if (!wanted || Object.keys(fields).sort().join() !== [...wanted].sort().join()) {
    throw malformed(`${kind}: needs exactly the fields ${wanted}`);
  }
  const body = dumpJson({ v: PROTOCOL_VERSION, type: "act", act: kind, id, channel, issuer: addressToJson(issuer), at_ms: atMs, ...fields });
  // Round-trip through the parser so a device never signs what a verifier would refuse.
  return Act.parse(body, await sign(signingKey, frame(DS_ACT, body)));
}

/** A relay-signed notice. `fields` holds the kind's own members. */
export class Notice {
  /**
   * @param {{body: Uint8Array, signature: Uint8Array, kind: string, id: string, channel: string,
   *          atMs: number, fields: Record<string, any>}} f
   */
  constructor(f) {
    Object.assign(this, f);
    Object.freeze(this);
  }

  /** Raise bad_signature unless the relay signed this notice. @param {Uint8Array} relayPublicKey */
  verify(relayPublicKey) {
    const self = /** @type {any} */ (this);
    return verifySignature(relayPublicKey, self.signature, frame(DS_NOTICE, self.body));
  }

  toJson() {
    const self = /** @type {any} */ (this);
    return { body: b64e(self.body), sig: b64e(self.signature) };
  }

  /** @param {unknown} obj */
  static fromJson(obj) {
    const f = requireObject(obj, { field: "notice", keys: ["body", "sig"] });
    return Notice.parse(b64d(f.body, { field: "notice.body", maxBytes: MAX_NOTICE_BYTES }), signatureOf(f.sig, "notice.sig"));
  }

  /** @param {Uint8Array} body @param {Uint8Array} signature */
  static parse(body, signature) {
    const obj = loadJsonObject(body, { what: "notice", maxBytes: MAX_NOTICE_BYTES });
    if (Object.hasOwn(obj, "v") && !isProtocolVersion(obj.v)) throw unsupportedVersion("notice version is not supported");
    const kind = requireEnum(Object.hasOwn(obj, "notice") ? obj.notice : null, NoticeKind, { field: "notice.notice" });
    const own = NOTICE_FIELDS[/** @type {keyof typeof NOTICE_FIELDS} */ (kind)];
    const f = requireObject(obj, { field: "notice", keys: [...NOTICE_COMMON, ...own] });
    if (f.type !== "notice") throw malformed("notice.type: expected 'notice'");
    const opt = (/** @type {unknown} */ v, /** @type {(v: unknown) => unknown} */ check) => (v === null ? null : check(v));
    if (kind === NoticeKind.ESCALATION) {
      requireEnum(f.reason, ESCALATION_REASONS, { field: "notice.reason" });
      requireName(f.desk, { field: "notice.desk" });
      requireEnum(f.state, DESK_STATES, { field: "notice.state" });
      requireInt(f.deadline_ms, { field: "notice.deadline_ms" });
      requireInt(f.attempt, { field: "notice.attempt", minimum: 1 });
      requireEnum(f.mode, MODES, { field: "notice.mode" });
      opt(f.message_id, (v) => requireUuid(v, { field: "notice.message_id" }));
      opt(f.sender, (v) => requireName(v, { field: "notice.sender" }));
      opt(f.precedence, (v) => requireEnum(v, Precedence, { field: "notice.precedence" }));
      opt(f.checkin, (v) => requireCheckinId(v, "notice.checkin"));
    } else if (kind === NoticeKind.CRISIS) {
      if (typeof f.on !== "boolean") throw malformed("notice.on: expected true or false");
      requireInt(f.epoch, { field: "notice.epoch" });
      requireEnum(f.trigger, CRISIS_TRIGGERS, { field: "notice.trigger" });
      requireStr(f.by, { field: "notice.by", maxLen: 65 });
      requireStr(f.reason, { field: "notice.reason", maxLen: MAX_REASON_CHARS });
      opt(f.act, (v) => Act.fromJson(v));
    } else if (kind === NoticeKind.POLICY) {
      requireInt(f.version, { field: "notice.version" });
      requireStr(f.by, { field: "notice.by", maxLen: 65 });
    } else if (kind === NoticeKind.CHECKIN_DUE) {
      requireCheckinId(f.checkin, "notice.checkin");
      requireInt(f.due_ms, { field: "notice.due_ms" });
      requireInt(f.answer_by_ms, { field: "notice.answer_by_ms" });
      if (!Array.isArray(f.desks) || f.desks.length > 64) throw malformed("notice.desks: a list of member names");
      f.desks.forEach((d, i) => requireName(d, { field: `notice.desks[${i}]` }));
    } else {
      requireUuid(f.message_id, { field: "notice.message_id" });
      requireStr(f.by, { field: "notice.by", maxLen: 65 });
      Act.fromJson(f.act);
    }
    /** @type {Record<string, any>} */
    const fields = {};
    for (const key of own) fields[key] = f[key];
    return new Notice({
      body,
      signature,
      kind,
      id: requireUuid(f.id, { field: "notice.id" }),
      channel: requireChannel(f.channel, { field: "notice.channel" }),
      atMs: requireInt(f.at_ms, { field: "notice.at_ms" }),
      fields,
    });
  }
}
