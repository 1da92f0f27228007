// Desk: one enrolled device of this browser talking to its relay — the browser twin of hotline/client/desk.py.
//
// The same rules as the Python client, so a desk behaves the same in a terminal and in a browser:
//  * Nothing lost. An envelope is saved in the profile's outbox before it is posted and leaves it only when
//    the relay's signed relay-accepted receipt verifies with the relay key pinned at enrollment and names
//    this envelope. Receipts have their own outbox. Anything left over is posted again on the next start.
//  * Nothing twice. An inbox item is acknowledged to the relay only after its effect is saved; a
//    redelivered item meets the receiver state machine, which accepts each message once.
//  * Sender identity from keys. Every envelope and receipt is checked against the pinned key of its
//    sender device (trust on first use); a key or device change after pinning blocks sending to that
//    member until a person accepts it or compares safety numbers.
//  * Failures are loud. What cannot be verified or opened is answered with a signed `rejected` receipt
//    and shown; gaps in a sender's numbering are raised in plain words.
// The page's views listen to this object's "event" and "change" events; it never touches the DOM.

import {
  ActKind,
  DeviceKeys,
  Envelope,
  ErrorCode,
  Intent,
  Notice,
  ProtocolError,
  Precedence,
  TreeHead,
  REJECT_REASONS,
  Receipt,
  ReceiptKind,
  ReceiverState,
  SignedPrekey,
  b64d,
  b64e,
  deviceAddress,
  fingerprint,
  isWeakEd25519PublicKey,
  issueDeviceReceipt,
  normalizeSafetyNumber,
  openEnvelope,
  safetyNumber,
  sealEnvelope,
  seqFor,
  signAct,
  signAuthChallenge,
} from "../protocol/index.js";
import { RelayError, RelayUnreachable, request } from "./api.js";
import { profileStore } from "./store.js";
import { checkConsistency } from "./audit.js";

/** @typedef {import("../protocol/model.js").DeviceAddress} DeviceAddress */
/** @typedef {import("./store.js").ProfileInfo} ProfileInfo */

const DAY_MS = 24 * 60 * 60 * 1000;
const TOKEN_REFRESH_MARGIN_MS = 30_000;
const PREKEY_RENEW_BEFORE_MS = 2 * DAY_MS; // publish a new prekey when the current one has less left
const PREKEY_ERASE_GRACE_MS = 14 * DAY_MS; // keep an expired prekey's secret this long for late envelopes
const SOCKET_PING_MS = 20_000;
const SOCKET_SILENCE_MS = 50_000; // no frame at all for this long: the socket is dead, reconnect
const MAX_ALARMS = 200;
const MAX_NOTICES = 200;
const MAX_ITEM_RETRIES = 3;
/** What processItem answers for an item that should come again (it arrived damaged). */
const RETRY = "retry";

export const SUPPORTED_SUITE = "hotline-c1";

/** A send refused because a recipient's keys changed since they were pinned; lists the members. */
export class KeyChangeError extends Error {
  /** @param {string[]} members */
  constructor(members) {
    super(
      `the keys of ${members.join(", ")} changed since you last checked them; compare safety numbers ` +
        "(Contacts) or accept the change before sending",
    );
    this.name = "KeyChangeError";
    this.code = "key_changed";
    this.members = members;
  }
}

/** A problem on this side (nothing to send to, no valid prekey…); `code` is stable. */
export class DeskError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = "DeskError";
    this.code = code;
  }
}

/** @param {DeviceAddress} a */
const addr = (a) => `${a.member}/${a.device}`;

/** A fresh profile state (plain data, kept in IndexedDB). */
export function newState() {
  return {
    strictStart: true,
    nextSeq: {},
    receiver: new ReceiverState().toJson(),
    pins: {},
    keyEvents: [],
    directoryVersion: -1,
    directory: null,
    sent: {},
    outbox: {},
    receiptOutbox: {},
    received: {},
    refused: {},
    alarms: [],
    notices: [],
    crisis: null,
    treeHead: null,
  };
}

/** The keys of a device as a record for IndexedDB: CryptoKeys as they are, public parts as bytes. @param {DeviceKeys} keys */
function keysRecord(keys) {
  return {
    member: keys.address.member,
    device: keys.address.device,
    suite: keys.suite,
    signing: { privateKey: keys.signing.privateKey, publicKey: keys.signing.publicKey },
    prekeys: [...keys.prekeys.values()].map(({ key, signed }) => ({
      privateKey: key.privateKey,
      publicKey: key.publicKey,
      body: signed.body,
      sig: signed.signature,
    })),
  };
}

/** @param {any} record @returns {Promise<DeviceKeys>} */
async function keysFromRecord(record) {
  const keys = new DeviceKeys({
    address: deviceAddress(record.member, record.device),
    signing: { privateKey: record.signing.privateKey, publicKey: record.signing.publicKey },
    suite: record.suite,
  });
  for (const p of record.prekeys) {
    const signed = await SignedPrekey.parse(p.body, p.sig);
    keys.prekeys.set(signed.id, { key: { privateKey: p.privateKey, publicKey: p.publicKey }, signed });
  }
  return keys;
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {any[]} list @param {any} item @param {number} max */
function pushCapped(list, item, max) {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

export class Desk extends EventTarget {
  /**
   * @param {ProfileInfo} info
   * @param {DeviceKeys} keys
   */
  constructor(info, keys) {
    super();
    this.info = info;
    this.keys = keys;
    this.token = /** @type {string | null} */ (null);
    this.tokenExpiresMs = 0;
    /** @type {Map<string, any> | null} member → {member, role, status, devices: Map<device, {...}>} */
    this.directory = null;
    this.rawDirectory = /** @type {any} */ (null);
    this.link = { state: "offline", since: Date.now(), detail: "" };
    this.stopped = true;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.relayKey = b64d(info.relayPublicKey, { field: "relay_public_key", maxBytes: 64 });
    /** @type {Map<number, number>} inbox item id → times it arrived damaged */
    this.retries = new Map();
  }

  get address() {
    return this.keys.address;
  }

  get channel() {
    return this.info.channel;
  }

  // --- construction ---------------------------------------------------------------------------------

  /** @param {string} id */
  static async open(id) {
    const info = await profileStore.get(id);
    const record = await profileStore.getKeys(id);
    if (!info || !record) throw new DeskError("profile_missing", "this profile is not in this browser any more");
    return new Desk(info, await keysFromRecord(record));
  }

  /** What an invite offers, before anything is generated. @param {string} code */
  static async previewInvite(code) {
    const preview = await request("GET", `/v1/invites/${encodeURIComponent(code)}`);
    const relay = await request("GET", "/v1/relay");
    if (relay.public_key !== preview.relay_public_key) {
      throw new DeskError("relay_key_mismatch", "the relay's key differs between two answers; refusing to enroll");
    }
    return { preview, relay };
  }

  /**
   * Generate this device's keys here (non-extractable) and redeem an invite with the public halves.
   * @param {string} code
   * @param {string} deviceName
   */
  static async enroll(code, deviceName) {
    const { preview, relay } = await Desk.previewInvite(code);
    if (preview.suite !== SUPPORTED_SUITE) {
      throw new DeskError(
        "unsupported_suite",
        `this channel uses the ${preview.suite} suite, which the browser client cannot speak yet; ` +
          "enroll with the command-line client instead",
      );
    }
    const now = Date.now();
    const keys = await DeviceKeys.generate(deviceAddress(preview.member, deviceName), now);
    const answer = await request("POST", "/v1/enroll", {
      body: {
        code,
        device: deviceName,
        signing_key: b64e(keys.signingPublicKey),
        prekeys: [...keys.prekeys.values()].map((p) => p.signed.toJson()),
      },
    });
    /** @type {ProfileInfo} */
    const info = {
      id: crypto.randomUUID(),
      channel: answer.channel,
      member: answer.member,
      device: answer.device,
      role: answer.role,
      suite: answer.suite,
      relayId: relay.relay_id,
      relayPublicKey: relay.public_key,
      relayUrl: location.origin,
      createdAtMs: now,
    };
    await profileStore.create(info, keysRecord(keys), newState());
    const desk = new Desk(info, keys);
    await desk.refreshDirectory();
    // A later device of a member starts mid-stream: the earlier messages went to its older devices.
    const mine = desk.directory?.get(info.member);
    const older = [...(mine?.devices.values() ?? [])].filter((d) => d.status === "active" && d.device !== deviceName);
    if (older.length) {
      await desk.edit((st) => {
        st.strictStart = false;
        st.receiver = new ReceiverState({ strictStart: false }).toJson();
      });
    }
    return desk;
  }

  // --- state -----------------------------------------------------------------------------------------

  /** @returns {Promise<any>} */
  state() {
    return profileStore.getState(this.info.id);
  }

  /**
   * @template T
   * @param {(state: any) => T | Promise<T>} fn
   * @returns {Promise<T>}
   */
  async edit(fn) {
    const result = await profileStore.edit(this.info.id, fn);
    this.dispatchEvent(new Event("change"));
    return result;
  }

  /** @param {string} type @param {Record<string, unknown>} [detail] */
  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent("event", { detail: { type, ...detail } }));
  }

  // --- authentication --------------------------------------------------------------------------------

  async login() {
    const who = { channel: this.info.channel, member: this.info.member, device: this.info.device };
    const challenge = await request("POST", "/v1/auth/challenge", { body: who });
    const raw = b64d(challenge.challenge, { field: "challenge", maxBytes: 64 });
    const signature = await signAuthChallenge(this.keys.signing.privateKey, this.info.relayId, raw, this.address);
    const token = await request("POST", "/v1/auth/token", {
      body: { ...who, challenge: challenge.challenge, signature: b64e(signature) },
    });
    this.token = token.token;
    this.tokenExpiresMs = Number(token.expires_ms);
  }

  async ensureToken() {
    if (!this.token || Date.now() > this.tokenExpiresMs - TOKEN_REFRESH_MARGIN_MS) await this.login();
  }

  /**
   * A device-authenticated request on this channel, logging in again when the token lapses.
   * @param {string} method
   * @param {string} suffix path after /v1/channels/{channel}
   * @param {{body?: unknown, params?: Record<string, string | number>}} [options]
   */
  async call(method, suffix, options = {}) {
    await this.ensureToken();
    const path = `/v1/channels/${this.info.channel}${suffix}`;
    try {
      return await request(method, path, { ...options, token: this.token });
    } catch (err) {
      if (!(err instanceof RelayError) || !["token_expired", "unauthorized"].includes(err.code)) throw err;
      await this.login();
      return request(method, path, { ...options, token: this.token });
    }
  }

  // --- key directory ---------------------------------------------------------------------------------

  /** Fetch the roster, check every key and prekey signature, and compare keys with the pins. */
  async refreshDirectory() {
    const raw = await this.call("GET", "/directory");
    /** @type {Map<string, any>} */
    const members = new Map();
    /** @type {any[]} */
    const alarms = [];
    for (const m of raw.members) {
      const info = { member: m.member, role: m.role, status: m.status, devices: new Map() };
      for (const d of m.devices) {
        let signingKey;
        try {
          signingKey = b64d(d.signing_key, { field: "signing_key", maxBytes: 64 });
          if (signingKey.length !== 32 || isWeakEd25519PublicKey(signingKey)) throw new ProtocolError("malformed", "weak key");
        } catch {
          alarms.push({ kind: "relay", text: `The relay listed an unusable signing key for ${m.member}/${d.device}.` });
          continue;
        }
        const device = {
          address: deviceAddress(m.member, d.device),
          device: d.device,
          signingKey,
          status: d.status,
          prekeys: /** @type {SignedPrekey[]} */ ([]),
        };
        for (const p of d.prekeys ?? []) {
          try {
            const prekey = await SignedPrekey.fromJson(p);
            await prekey.verify(signingKey);
            if (prekey.owner.member !== m.member || prekey.owner.device !== d.device) throw new Error("owner");
            device.prekeys.push(prekey);
          } catch {
            alarms.push({
              kind: "relay",
              text: `The relay served a prekey for ${m.member}/${d.device} that is not signed by that device. It was ignored.`,
            });
          }
        }
        info.devices.set(d.device, device);
      }
      members.set(m.member, info);
    }
    this.directory = members;
    this.rawDirectory = raw;
    const now = Date.now();
    const changes = await this.edit((st) => {
      const events = this.updatePins(st, members, now);
      for (const ev of events) {
        pushCapped(st.keyEvents, { ...ev, atMs: now }, MAX_ALARMS);
        pushCapped(st.alarms, { kind: "key", atMs: now, ...ev, text: keyChangeText(ev) }, MAX_ALARMS);
      }
      for (const a of alarms) pushCapped(st.alarms, { ...a, atMs: now }, MAX_ALARMS);
      st.directoryVersion = Number(raw.version ?? st.directoryVersion);
      st.directory = summarizeDirectory(raw);
      return events;
    });
    for (const ev of changes) this.emit("keychange", ev);
    for (const a of alarms) this.emit("relayalarm", a);
    return changes;
  }

  /**
   * Trust on first use, then report every change (same rules as DeskClient._update_pins).
   * @param {any} st
   * @param {Map<string, any>} members
   * @param {number} now
   */
  updatePins(st, members, now) {
    /** @type {Array<{member: string, device: string, change: string}>} */
    const events = [];
    for (const [name, info] of members) {
      const pin = st.pins[name];
      if (!pin || !Object.keys(pin.devices).length) {
        /** @type {Record<string, any>} */
        const devices = {};
        for (const d of info.devices.values()) devices[d.device] = { signingKey: b64e(d.signingKey), firstSeenMs: now, status: d.status };
        st.pins[name] = { devices, verified: pin?.verified ?? false, unacceptedChange: false };
        continue;
      }
      for (const d of info.devices.values()) {
        const pinned = pin.devices[d.device];
        const key = b64e(d.signingKey);
        const mine = name === this.address.member && d.device === this.address.device;
        if (!pinned) {
          pin.devices[d.device] = { signingKey: key, firstSeenMs: now, status: d.status };
          if (d.status === "active" && !mine) {
            events.push({ member: name, device: d.device, change: "device_added" });
            pin.unacceptedChange = true;
          }
        } else if (pinned.signingKey !== key) {
          pinned.signingKey = key;
          pinned.status = d.status;
          events.push({ member: name, device: d.device, change: "key_changed" });
          pin.unacceptedChange = true;
        } else if (pinned.status !== d.status) {
          pinned.status = d.status;
          if (d.status !== "active") events.push({ member: name, device: d.device, change: "device_revoked" });
        }
      }
      if (pin.unacceptedChange) pin.verified = false;
    }
    return events;
  }

  /**
   * The pinned signing key of a device, if there is one.
   * @param {any} st
   * @param {DeviceAddress} address
   */
  pinnedKey(st, address) {
    const pinned = st.pins[address.member]?.devices?.[address.device];
    return pinned ? b64d(pinned.signingKey, { field: "pin", maxBytes: 64 }) : null;
  }

  /** @param {string} member */
  memberKeys(member) {
    const info = this.directory?.get(member);
    return info ? [...info.devices.values()].filter((d) => d.status === "active").map((d) => d.signingKey) : [];
  }

  /** Every member with devices, fingerprints, trust and the safety number to compare. */
  async contacts() {
    if (!this.directory) await this.refreshDirectory();
    const st = await this.state();
    const mine = this.memberKeys(this.info.member);
    const out = [];
    for (const [name, info] of [...(this.directory ?? new Map()).entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const pin = st.pins[name] ?? { verified: false, unacceptedChange: false };
      const keys = this.memberKeys(name);
      const number = keys.length && mine.length && name !== this.info.member ? await safetyNumber(this.info.member, mine, name, keys) : null;
      const devices = [];
      for (const d of [...info.devices.values()].sort((a, b) => (a.device < b.device ? -1 : 1))) {
        devices.push({ device: d.device, fingerprint: await fingerprint(d.signingKey), status: d.status });
      }
      out.push({
        member: name,
        role: info.role,
        status: info.status,
        devices,
        verified: Boolean(pin.verified),
        unacceptedChange: Boolean(pin.unacceptedChange),
        safetyNumber: number,
        isMe: name === this.info.member,
      });
    }
    return out;
  }

  /**
   * Mark `member` verified if `spoken` is the safety number computed here; false if it differs.
   * @param {string} member
   * @param {string} spoken
   */
  async verifyContact(member, spoken) {
    const theirs = this.memberKeys(member);
    if (!theirs.length) throw new DeskError("not_found", `${member} has no active devices`);
    const expected = await safetyNumber(this.info.member, this.memberKeys(this.info.member), member, theirs);
    let given;
    try {
      given = normalizeSafetyNumber(spoken);
    } catch {
      throw new DeskError("malformed", "a safety number is 60 digits (spaces and dashes are ignored)");
    }
    if (given !== expected) return false;
    await this.edit((st) => {
      st.pins[member] ??= { devices: {}, verified: false, unacceptedChange: false };
      st.pins[member].verified = true;
      st.pins[member].unacceptedChange = false;
    });
    return true;
  }

  /** Accept a member's changed keys without verifying them (they stay unverified). @param {string} member */
  async acceptKeyChange(member) {
    await this.edit((st) => {
      if (st.pins[member]) st.pins[member].unacceptedChange = false;
    });
  }

  // --- prekeys ---------------------------------------------------------------------------------------

  /** Publish a new prekey before the current one runs out, and erase secrets long expired. */
  async maintainPrekeys() {
    if (this.info.role === "operator") return;
    const now = Date.now();
    const current = this.keys.currentPrekey(now);
    let changed = this.keys.erasePrekeysExpiredBefore(now - PREKEY_ERASE_GRACE_MS).length > 0;
    if (!current || current.expiresMs - now < PREKEY_RENEW_BEFORE_MS) {
      const fresh = await this.keys.newPrekey(now);
      // Saved before it is published: a prekey the relay knows but this device forgot would make
      // every envelope sealed to it unreadable here.
      await profileStore.putKeys(this.info.id, keysRecord(this.keys));
      await this.call("POST", "/prekeys", { body: { prekeys: [fresh.toJson()] } });
      changed = false;
    }
    if (changed) await profileStore.putKeys(this.info.id, keysRecord(this.keys));
  }

  // --- sending ---------------------------------------------------------------------------------------

  /**
   * The current prekey of every active device of `to` and of this member's other devices.
   * @param {any} st
   * @param {string[]} to
   * @param {number} now
   */
  recipientPrekeys(st, to, now, { linkTest = false } = {}) {
    const me = this.info.member;
    const wanted = linkTest ? [...new Set(to)] : [...new Set([...to, me])];
    // A link test carries nothing but "the line works" (and a public tree head): it may test the line
    // to a desk whose keys changed, which is when testing it matters most.
    const blocked = linkTest ? [] : wanted.filter((m) => st.pins[m]?.unacceptedChange).sort();
    if (blocked.length) throw new KeyChangeError(blocked);
    /** @type {SignedPrekey[]} */
    const prekeys = [];
    for (const member of wanted) {
      const info = this.directory?.get(member);
      if (!info || info.status !== "active") throw new DeskError("not_found", `${member} is not an active member of ${this.channel}`);
      if (info.role === "operator") throw new DeskError("forbidden", `${member} is an operator and never receives messages`);
      for (const d of info.devices.values()) {
        if (d.status !== "active" || (member === me && d.device === this.address.device)) continue;
        const valid = d.prekeys.filter((/** @type {SignedPrekey} */ p) => p.isValidAt(now));
        if (!valid.length) throw new DeskError("expired_prekey", `${addr(d.address)} has no valid prekey; it must come online first`);
        valid.sort((/** @type {SignedPrekey} */ a, /** @type {SignedPrekey} */ b) => b.expiresMs - a.expiresMs || (b.id > a.id ? 1 : -1));
        prekeys.push(valid[0]);
      }
    }
    if (!prekeys.some((p) => p.owner.member !== me)) throw new DeskError("not_found", "no recipient device to send to");
    return prekeys;
  }

  /**
   * Seal and send a message to every device of the `to` members (and this member's other devices).
   * @param {{to: string[], text: string, precedence: string, intent: string, inReplyTo?: string | null,
   *          fields?: Record<string, unknown>, exercise?: boolean, lang?: string, linkTest?: boolean}} message
   */
  async send(message) {
    const { to, text, precedence, intent, inReplyTo = null, fields = {}, exercise = false, lang = "en" } = message;
    // A link test goes to /link-tests (the relay times its answer) and to the other member's devices only.
    const linkTest = Boolean(message.linkTest);
    const path = linkTest ? "/link-tests" : "/envelopes";
    if (!to.length) throw new DeskError("malformed", "choose at least one recipient");
    await this.flushOutbox();
    if (!this.directory) await this.refreshDirectory();
    for (let attempt = 0; attempt < 2; attempt++) {
      const now = Date.now();
      const prepared = await this.edit(async (st) => {
        const prekeys = this.recipientPrekeys(st, to, now, { linkTest });
        const members = [...new Set(prekeys.map((p) => p.owner.member))].sort();
        /** @type {Record<string, number>} */
        const seq = {};
        for (const m of members) seq[m] = st.nextSeq[m] ?? 1;
        const envelope = await sealEnvelope(this.keys, {
          channel: this.channel,
          seq,
          recipients: prekeys,
          precedence,
          intent,
          text,
          nowMs: now,
          lang,
          inReplyTo,
          fields,
          exercise,
        });
        for (const m of members) st.nextSeq[m] = seq[m] + 1;
        const id = envelope.header.messageId;
        st.outbox[id] = { envelope: envelope.toJson(), to, text, intent, inReplyTo, fields, precedence, exercise, createdAtMs: now, path };
        return { id, seq, members };
      });
      try {
        return await this.postEnvelope(prepared.id);
      } catch (err) {
        const stale = err instanceof RelayError && ["unknown_recipient", "expired_prekey"].includes(err.code);
        const refused = err instanceof RelayError && err.status < 500;
        if (refused) {
          // Refused for good: the numbers were never used, so the next message reuses them.
          await this.edit((st) => {
            delete st.outbox[prepared.id];
            for (const m of prepared.members) if (st.nextSeq[m] === prepared.seq[m] + 1) st.nextSeq[m] = prepared.seq[m];
          });
        }
        if (stale && attempt === 0) {
          await this.refreshDirectory();
          continue;
        }
        throw err;
      }
    }
    throw new Error("unreachable");
  }

  /** @param {string} id */
  async postEnvelope(id) {
    const st = await this.state();
    const entry = st.outbox[id];
    if (!entry) return null;
    const envelope = Envelope.fromJson(entry.envelope);
    const answer = await this.call("POST", entry.path ?? "/envelopes", { body: entry.envelope });
    const receipt = Receipt.fromJson(answer.receipt);
    await receipt.verify(this.relayKey);
    const hash = await envelope.hash();
    if (receipt.kind !== ReceiptKind.RELAY_ACCEPTED || receipt.messageId !== id || b64e(receipt.envelopeHash) !== b64e(hash)) {
      throw new DeskError("bad_receipt", "the relay's receipt is not about this envelope");
    }
    const { header } = envelope;
    const me = this.info.member;
    const sent = await this.edit((s) => {
      delete s.outbox[id];
      /** @type {Record<string, any>} */
      const recipients = {};
      for (const r of header.recipients) if (r.address.member !== me) recipients[addr(r.address)] = {};
      s.sent[id] = {
        to: entry.to,
        text: entry.text,
        intent: entry.intent,
        // A link test timed by the relay (a tree-head exchange is an ordinary message with that intent).
        linkTest: entry.path === "/link-tests",
        inReplyTo: entry.inReplyTo,
        fields: entry.fields ?? {},
        precedence: header.precedence,
        exercise: header.exercise,
        createdAtMs: header.createdAtMs,
        envelopeHash: b64e(hash),
        acceptedAtMs: receipt.atMs,
        logIndex: receipt.logIndex,
        relayReceipt: receipt.toJson(),
        recipients,
        ownDevices: header.recipients.filter((r) => r.address.member === me).map((r) => addr(r.address)),
      };
      return s.sent[id];
    });
    this.emit("sent", { messageId: id, acceptedAtMs: receipt.atMs, logIndex: receipt.logIndex, duplicate: Boolean(answer.duplicate) });
    return { messageId: id, ...sent };
  }

  /** Post whatever a crash or an unreachable relay left unsent (idempotent on the relay). */
  async flushOutbox() {
    const st = await this.state();
    for (const id of Object.keys(st.outbox)) await this.postEnvelope(id);
    for (const [key, body] of Object.entries(st.receiptOutbox)) await this.postReceiptJson(key, body);
  }

  // --- receipts --------------------------------------------------------------------------------------

  /** @param {Receipt} receipt */
  async sendReceipt(receipt) {
    const key = b64e(await receipt.hash());
    await this.edit((st) => {
      st.receiptOutbox[key] = receipt.toJson();
    });
    await this.postReceiptJson(key, receipt.toJson());
  }

  /** @param {string} key @param {any} body */
  async postReceiptJson(key, body) {
    try {
      await this.call("POST", "/receipts", { body: { receipt: body } });
    } catch (err) {
      if (!(err instanceof RelayError) || err.status >= 500) throw err; // kept in the outbox for later
      // A refusal will not change on retry; drop it from the outbox but remember why.
      await this.edit((st) => {
        delete st.receiptOutbox[key];
        pushCapped(
          st.alarms,
          { kind: "receipt_refused", code: err.code, atMs: Date.now(), text: `The relay refused one of our receipts (${err.code}).` },
          MAX_ALARMS,
        );
      });
      return;
    }
    await this.edit((st) => {
      delete st.receiptOutbox[key];
    });
  }

  /**
   * A person at this desk confirms a received message, optionally sending a reply first. With
   * `declined` the acknowledgement is a signed refusal: read, and declined (the reply may say why).
   * @param {string} messageId
   * @param {string | null} [reply]
   * @param {{declined?: boolean}} [options]
   */
  async acknowledge(messageId, reply = null, { declined = false } = {}) {
    const st = await this.state();
    const msg = st.received[messageId];
    if (!msg) throw new DeskError("not_found", `no received message ${messageId}`);
    if (msg.acknowledgedAtMs) return msg;
    let replyId = null;
    if (reply && reply.trim()) {
      const sent = await this.send({
        to: [msg.sender.member],
        text: reply.trim(),
        precedence: msg.precedence,
        intent: Intent.ACK_REPLY,
        inReplyTo: messageId,
        exercise: Boolean(msg.exercise),
      });
      replyId = sent?.messageId ?? null;
    }
    const receipt = await issueDeviceReceipt(this.keys.signing.privateKey, this.address, ReceiptKind.ACKNOWLEDGED, {
      channel: this.channel,
      messageId,
      envelopeHash: b64d(msg.envelopeHash, { field: "envelope_hash", maxBytes: 32 }),
      atMs: Date.now(),
      replyId,
      declined,
    });
    await this.sendReceipt(receipt);
    return this.edit((s) => {
      s.received[messageId].acknowledgedAtMs = receipt.atMs;
      s.received[messageId].replyId = replyId;
      s.received[messageId].declined = declined;
      return s.received[messageId];
    });
  }

  // --- receiving -------------------------------------------------------------------------------------

  /** Pull and process every pending inbox item (without the socket). */
  async sync() {
    await this.flushOutbox();
    for (;;) {
      const page = await this.call("GET", "/inbox", { params: { limit: 100 } });
      const done = [];
      for (const item of page.items) {
        const outcome = await this.processItem(item);
        if (!(outcome === RETRY && this.countRetry(item.id))) done.push(item.id);
      }
      if (done.length) await this.call("POST", "/inbox/ack", { body: { ids: done } });
      if (page.items.length < 100 || done.length < page.items.length) return;
    }
  }

  /**
   * Apply one inbox item; its effects are saved before the caller acknowledges it. Answers "retry"
   * when the item should be left unacknowledged so that the relay sends it again.
   * @param {any} item
   * @returns {Promise<string | void>}
   */
  async processItem(item) {
    const kind = item?.kind;
    if (kind === "envelope") return this.onEnvelope(item);
    if (kind === "receipt") return this.onReceipt(item);
    if (kind === "directory") {
      await this.refreshDirectory();
      return;
    }
    if (kind === "notice") return this.onNotice(item);
    // Kinds this client does not know yet (escalations, crisis changes, link tests… from newer relays):
    // kept and shown as they are, never dropped silently.
    const notice = { kind: String(kind), atMs: Number(item?.at_ms) || Date.now(), item: stripBulky(item) };
    await this.edit((st) => pushCapped(st.notices, notice, MAX_NOTICES));
    this.emit("notice", notice);
  }

  /** @param {any} item */
  async onEnvelope(item) {
    let envelope;
    let accepted;
    try {
      envelope = Envelope.fromJson(item.envelope);
      accepted = Receipt.fromJson(item.accepted);
      await accepted.verify(this.relayKey);
    } catch (err) {
      // Perhaps damaged on the way: left unacknowledged, the relay sends it again (a few times).
      await this.relayAlarm(`The relay handed over an unreadable envelope (item ${item.id}): ${describe(err)}.`);
      return RETRY;
    }
    const { header } = envelope;
    const hash = await envelope.hash();
    if (accepted.messageId !== header.messageId || b64e(accepted.envelopeHash) !== b64e(hash)) {
      await this.relayAlarm(`The relay's receipt for item ${item.id} is about another envelope.`);
      return RETRY;
    }
    const messageId = header.messageId;
    let st = await this.state();
    if (ReceiverState.fromJson(st.receiver).hasAccepted(header.sender, messageId)) {
      // Already ours: make sure our delivered receipt reached the relay, then drop it.
      const previous = st.received[messageId]?.deliveredReceipt;
      if (previous) await this.postReceiptJson(b64e(await Receipt.fromJson(previous).hash()), previous);
      return;
    }
    const earlier = st.refused[messageId];
    if (earlier?.receipt && earlier.envelopeHash === b64e(hash)) {
      // Refused before: say the same thing again (the same signed receipt), not a second one.
      await this.postReceiptJson(b64e(await Receipt.fromJson(earlier.receipt).hash()), earlier.receipt);
      return;
    }
    let senderKey = this.pinnedKey(st, header.sender);
    if (!senderKey) {
      await this.refreshDirectory();
      st = await this.state();
      senderKey = this.pinnedKey(st, header.sender);
    }
    let opened;
    let seq;
    try {
      if (!senderKey) throw new ProtocolError(ErrorCode.UNKNOWN_KEY, `${addr(header.sender)} is not a known device`);
      try {
        opened = await openEnvelope(envelope, this.keys, senderKey);
      } catch (err) {
        // Another tab of this desk may have made a prekey since this one loaded its keys: reload, retry.
        if (!(err instanceof ProtocolError) || err.code !== ErrorCode.UNKNOWN_KEY) throw err;
        const record = await profileStore.getKeys(this.info.id);
        if (record) this.keys = await keysFromRecord(record);
        opened = await openEnvelope(envelope, this.keys, senderKey);
      }
      seq = seqFor(header, this.address.member);
    } catch (err) {
      const code = err instanceof ProtocolError && REJECT_REASONS.has(err.code) ? err.code : ErrorCode.MALFORMED;
      return this.reject(envelope, hash, accepted, code, err instanceof ProtocolError && err.code === ErrorCode.BAD_SIGNATURE);
    }
    const now = Date.now();
    const { content } = opened;
    const delivered = await issueDeviceReceipt(this.keys.signing.privateKey, this.address, ReceiptKind.DELIVERED, {
      channel: header.channel,
      messageId,
      envelopeHash: hash,
      atMs: now,
    });
    const deliveredKey = b64e(await delivered.hash());
    const outcome = await this.edit((s) => {
      const receiver = ReceiverState.fromJson(s.receiver);
      const events = receiver.receive(header.sender, seq, messageId);
      s.receiver = receiver.toJson();
      const result = { accepted: false, gaps: /** @type {any[]} */ ([]), replay: false };
      for (const ev of events) {
        if (ev.type === "GapDetected") {
          const text = gapText(addr(ev.sender), ev.first, ev.last);
          result.gaps.push({ sender: addr(ev.sender), first: ev.first, last: ev.last, text });
          pushCapped(s.alarms, { kind: "gap", sender: addr(ev.sender), first: ev.first, last: ev.last, text, atMs: now }, MAX_ALARMS);
        } else if (ev.type === "Replay") {
          result.replay = true;
          pushCapped(
            s.alarms,
            {
              kind: "replay",
              messageId,
              atMs: now,
              text: `A message from ${addr(header.sender)} reused number ${seq}, which was already used. It was refused as a replay.`,
            },
            MAX_ALARMS,
          );
        } else if (ev.type === "Accepted") {
          result.accepted = true;
          if (ev.filledGap) {
            pushCapped(s.alarms, { kind: "gap_filled", atMs: now, text: `Missing message ${seq} from ${addr(header.sender)} has arrived late.` }, MAX_ALARMS);
          }
        }
      }
      if (!result.accepted) return result;
      s.received[messageId] = {
        sender: { member: header.sender.member, device: header.sender.device },
        seq,
        precedence: header.precedence,
        intent: content.intent,
        text: content.text,
        lang: content.lang,
        inReplyTo: content.inReplyTo,
        fields: content.fields,
        exercise: header.exercise,
        recipients: header.recipients.map((r) => addr(r.address)),
        createdAtMs: header.createdAtMs,
        acceptedAtMs: accepted.atMs,
        logIndex: accepted.logIndex,
        deliveredAtMs: now,
        envelopeHash: b64e(hash),
        deliveredReceipt: delivered.toJson(),
        acknowledgedAtMs: null,
        replyId: null,
      };
      s.receiptOutbox[deliveredKey] = delivered.toJson();
      return result;
    });
    for (const gap of outcome.gaps) this.emit("gap", gap);
    if (outcome.replay) this.emit("refused", { messageId, sender: addr(header.sender), reason: ErrorCode.REPLAY });
    if (!outcome.accepted) return;
    await this.postReceiptJson(deliveredKey, delivered.toJson());
    this.emit("message", { messageId, precedence: header.precedence, sender: addr(header.sender), intent: content.intent });
    if (content.intent === Intent.LINK_TEST && content.fields?.template === "tree_head") {
      this.checkPeerHead(header.sender, content.fields.tree_head, messageId, content.inReplyTo).catch((err) => console.warn("tree head check:", err));
    }
  }

  /**
   * Refuse an envelope with a signed `rejected` receipt, and remember it (without its content: there is none).
   * @param {Envelope} envelope
   * @param {Uint8Array} hash
   * @param {Receipt} accepted
   * @param {string} reason
   * @param {boolean} unauthenticated the sender's signature did not verify, so the header is not theirs
   */
  async reject(envelope, hash, accepted, reason, unauthenticated) {
    const { header } = envelope;
    const receipt = await issueDeviceReceipt(this.keys.signing.privateKey, this.address, ReceiptKind.REJECTED, {
      channel: header.channel,
      messageId: header.messageId,
      envelopeHash: hash,
      atMs: Date.now(),
      reason,
    });
    await this.edit((st) => {
      st.refused[header.messageId] = {
        sender: addr(header.sender),
        precedence: header.precedence,
        exercise: header.exercise,
        createdAtMs: header.createdAtMs,
        acceptedAtMs: accepted.atMs,
        logIndex: accepted.logIndex,
        envelopeHash: b64e(hash),
        reason,
        unauthenticated,
        atMs: receipt.atMs,
        receipt: receipt.toJson(),
      };
      pushCapped(
        st.alarms,
        { kind: "rejected", messageId: header.messageId, sender: addr(header.sender), reason, atMs: receipt.atMs, text: refusalText(addr(header.sender), reason) },
        MAX_ALARMS,
      );
    });
    await this.sendReceipt(receipt);
    this.emit("refused", { messageId: header.messageId, sender: addr(header.sender), reason });
  }

  /** @param {any} item */
  async onReceipt(item) {
    let receipt;
    try {
      receipt = Receipt.fromJson(item.receipt);
    } catch (err) {
      return this.relayAlarm(`The relay handed over an unreadable receipt (item ${item.id}): ${describe(err)}.`);
    }
    if (!receipt.issuer) return this.relayAlarm("The relay forwarded a receipt without an issuer.");
    const issuer = receipt.issuer;
    let st = await this.state();
    let key = this.pinnedKey(st, issuer);
    if (!key) {
      await this.refreshDirectory();
      st = await this.state();
      key = this.pinnedKey(st, issuer);
    }
    try {
      if (!key) throw new Error("unknown issuer");
      await receipt.verify(key);
    } catch {
      return this.relayAlarm(`A receipt claiming to be from ${addr(issuer)} does not verify. It was ignored.`);
    }
    const mismatch = await this.edit((s) => {
      const sent = s.sent[receipt.messageId];
      if (!sent) return false;
      if (b64e(receipt.envelopeHash) !== sent.envelopeHash) return true;
      const ownDevice = issuer.member === this.info.member;
      const steps = ownDevice ? ((sent.own ??= {})[addr(issuer)] ??= {}) : (sent.recipients[addr(issuer)] ??= {});
      steps[receipt.kind] = receipt.atMs;
      if (receipt.reason) steps.reason = receipt.reason;
      if (receipt.replyId) steps.replyId = receipt.replyId;
      if (receipt.declined) steps.declined = true;
      return false;
    });
    if (mismatch) return this.relayAlarm(`A receipt from ${addr(issuer)} names another envelope than the one we sent.`);
    this.emit("receipt", {
      messageId: receipt.messageId,
      kind: receipt.kind,
      issuer: addr(issuer),
      atMs: receipt.atMs,
      reason: receipt.reason,
      declined: receipt.declined,
    });
  }

  /**
   * A notice the relay signed: an escalation, a change of crisis mode, a policy change, a check-in
   * falling due, a withdrawal. Shown only if it verifies with the relay key pinned at enrollment.
   * @param {any} item
   */
  async onNotice(item) {
    let notice;
    try {
      notice = Notice.fromJson(item.notice);
      await notice.verify(this.relayKey);
      if (notice.channel !== this.channel) throw new Error(`it names channel ${notice.channel}`);
    } catch (err) {
      return this.relayAlarm(`The relay handed over a notice that does not check out: ${describe(err)}.`);
    }
    const f = notice.fields;
    const record = { kind: notice.kind, id: notice.id, atMs: notice.atMs, fields: { ...f, act: f.act ? true : null } };
    // (The act inside a crisis or withdrawal notice is checked by the relay and kept in the audit log.)
    await this.edit((st) => {
      if ((st.notices ?? []).some((/** @type {any} */ n) => n.id === notice.id)) return;
      pushCapped((st.notices ??= []), record, MAX_NOTICES);
      if (notice.kind === "crisis" && (!st.crisis || f.epoch >= st.crisis.epoch)) {
        // The notice carries the epoch after the change, as the relay's crisis state does.
        st.crisis = { on: f.on, epoch: f.epoch, since: notice.atMs, trigger: f.trigger, by: f.by, reason: f.reason };
      } else if (notice.kind === "withdrawn" && st.received[f.message_id]) {
        st.received[f.message_id].withdrawn = { atMs: notice.atMs, by: f.by };
      }
    });
    this.emit("notice", record);
  }

  /**
   * Declare crisis mode (`on`) or stand it down, with an act signed by this device for its desk.
   * @param {boolean} on
   * @param {string} reason
   * @param {number} epoch the channel's current crisis epoch
   */
  async changeCrisis(on, reason, epoch) {
    const act = await signAct(this.keys.signing.privateKey, this.address, on ? ActKind.CRISIS_DECLARE : ActKind.CRISIS_STAND_DOWN, {
      id: crypto.randomUUID(),
      channel: this.channel,
      atMs: Date.now(),
      fields: { epoch, reason },
    });
    const answer = await this.call("POST", "/crisis", { body: { act: act.toJson() } });
    const c = answer?.crisis;
    if (c) {
      await this.edit((st) => {
        st.crisis = { on: Boolean(c.on), epoch: Number(c.epoch), since: c.since_ms ?? Date.now(), trigger: c.trigger, by: c.by, reason };
      });
    }
    return answer;
  }

  // --- the relay's audit log, watched from the desk -----------------------------------------------------

  /**
   * Fetch the relay's newest tree head, check its signature and that it extends the newest one this
   * desk verified before (a consistency proof); keep it. A rollback, a rewrite or a fork is an alarm.
   * @returns {Promise<TreeHead | null>}
   */
  async checkTreeHead() {
    const raw = await request("GET", "/v1/audit/tree-head");
    const head = TreeHead.fromJson(raw.tree_head);
    try {
      await head.verify(this.relayKey);
    } catch {
      await this.relayAlarm("The relay served a tree head that its key did not sign.");
      return null;
    }
    await this.observeHead(head, "the relay's newest tree head");
    return head;
  }

  /**
   * Check a verified-signature head against the one this desk holds, in whichever direction; keep the
   * newer one if it checks out. Returns false when the two histories cannot both be true.
   * @param {TreeHead} head
   * @param {string} source
   */
  async observeHead(head, source) {
    const mine = (await this.state()).treeHead;
    const root = b64e(head.root);
    let ok = true;
    if (mine && mine.size === head.size) ok = mine.root === root;
    else if (mine && head.size > mine.size) ok = (await checkConsistency(this, mine, head)) !== false;
    else if (mine && head.size < mine.size) {
      ok = (await checkConsistency(this, { size: head.size, root }, { size: mine.size, root: b64d(mine.root, { field: "root", maxBytes: 32 }) })) !== false;
    }
    if (!ok) {
      const text =
        `SPLIT VIEW: ${source} (${head.size} entries) does not agree with the log this desk verified ` +
        `(${mine.size} entries). The relay may be showing different histories to different desks. Tell the operators.`;
      await this.edit((st) => pushCapped(st.alarms, { kind: "split_view", text, atMs: Date.now(), head: head.toJson(), mine }, MAX_ALARMS));
      this.emit("relayalarm", { text });
      return false;
    }
    if (!mine || head.size > mine.size) {
      await this.edit((st) => {
        if (!st.treeHead || head.size > st.treeHead.size) st.treeHead = { size: head.size, root, atMs: head.atMs, wire: head.toJson() };
      });
    }
    return true;
  }

  /**
   * A tree head another desk verified, carried in its signed link test: check it against ours, and
   * answer an unsolicited one with ours so that the other desk makes the same check.
   * @param {DeviceAddress} sender
   * @param {any} wire
   * @param {string} messageId
   * @param {string | null} inReplyTo
   */
  async checkPeerHead(sender, wire, messageId, inReplyTo) {
    const head = TreeHead.fromJson(wire);
    try {
      await head.verify(this.relayKey);
    } catch {
      await this.relayAlarm(`The tree head ${addr(sender)} sent is not signed by this relay's key.`);
      return;
    }
    const mine = (await this.state()).treeHead;
    if (!mine || head.size > mine.size) await this.checkTreeHead().catch(() => null);
    const ok = await this.observeHead(head, `the tree head ${addr(sender)} verified`);
    await this.edit((st) => {
      (st.peerHeads ??= {})[addr(sender)] = { size: head.size, atMs: Date.now(), status: ok ? "consistent" : "split view" };
    });
    if (inReplyTo === null && sender.member !== this.info.member && this.info.role !== "operator") {
      await this.sendTreeHead([sender.member], messageId).catch(() => null);
    }
  }

  /**
   * Send this desk's newest verified tree head to `to` in a link test (as the Python client does).
   * @param {string[]} to
   * @param {string | null} inReplyTo
   */
  async sendTreeHead(to, inReplyTo = null) {
    const head = await this.checkTreeHead();
    const st = await this.state();
    if (!head || !st.treeHead?.wire) return null;
    return this.send({
      to,
      text: `audit checkpoint: this desk has verified the relay's log up to ${st.treeHead.size} entries`,
      precedence: Precedence.ROUTINE,
      intent: Intent.LINK_TEST,
      fields: { template: "tree_head", tree_head: st.treeHead.wire },
      inReplyTo,
    });
  }

  /**
   * A link test to every device of `member`, timed by the relay (POST /link-tests): answered by their
   * device's delivered receipt, it shows the line works; unanswered, the relay escalates.
   * @param {string} member
   */
  async sendLinkTest(member) {
    const st = await this.state();
    /** @type {Record<string, unknown>} */
    const fields = st.treeHead?.wire ? { template: "tree_head", tree_head: st.treeHead.wire } : {};
    return this.send({
      to: [member],
      text: `link test from ${this.info.member} at ${new Date().toISOString().slice(11, 16)}Z`,
      precedence: Precedence.ROUTINE,
      intent: Intent.LINK_TEST,
      fields,
      linkTest: true,
    });
  }

  /**
   * Answer a scheduled check-in (`dgmo@1732615200000`) for this desk with a signed act.
   * @param {string} checkin
   * @param {string} [text]
   */
  async answerCheckin(checkin, text = "present") {
    const act = await signAct(this.keys.signing.privateKey, this.address, ActKind.CHECKIN_ANSWER, {
      id: crypto.randomUUID(),
      channel: this.channel,
      atMs: Date.now(),
      fields: { checkin, text },
    });
    let answer;
    try {
      answer = await this.call("POST", "/checkins/answer", { body: { act: act.toJson() } });
    } catch (err) {
      // Another device of this desk answered first: the check-in is answered all the same.
      if (!(err instanceof RelayError) || err.code !== "conflict") throw err;
      answer = { checkin, late: false };
    }
    await this.edit((st) => {
      (st.checkinsAnswered ??= {})[checkin] = { atMs: act.atMs, late: Boolean(answer?.late) };
    });
    return answer;
  }

  /** @param {string} text */
  async relayAlarm(text) {
    await this.edit((st) => pushCapped(st.alarms, { kind: "relay", text, atMs: Date.now() }, MAX_ALARMS));
    this.emit("relayalarm", { text });
  }

  // --- the live socket -------------------------------------------------------------------------------

  /** Whether a damaged item may be asked for again (at most MAX_ITEM_RETRIES times). @param {number} id */
  countRetry(id) {
    const n = (this.retries.get(id) ?? 0) + 1;
    this.retries.set(id, n);
    return n <= MAX_ITEM_RETRIES;
  }

  /** Connect and keep connected (reconnecting with backoff) until stop(). */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.runSocket();
  }

  stop() {
    this.stopped = true;
    this.socket?.close(1000, "closed by the page");
    this.setLink("offline", "");
  }

  /** @param {string} state @param {string} detail */
  setLink(state, detail) {
    if (this.link.state !== state || this.link.detail !== detail) {
      this.link = { state, since: Date.now(), detail };
      this.emit("link", this.link);
    }
  }

  async runSocket() {
    let backoff = 500;
    while (!this.stopped) {
      try {
        this.setLink("connecting", "");
        await this.flushOutbox();
        await this.ensureToken();
        const result = await this.socketOnce();
        if (result.error && ["device_revoked", "forbidden", "not_a_member"].includes(result.error.code)) {
          this.setLink("refused", result.error.message ?? result.error.code);
          this.stopped = true;
          return;
        }
        if (result.error && ["unauthorized", "token_expired"].includes(result.error.code)) this.token = null;
        if (result.ready) backoff = 500;
      } catch (err) {
        if (err instanceof RelayError && ["device_revoked", "not_a_member"].includes(err.code)) {
          this.setLink("refused", err.message);
          this.stopped = true;
          return;
        }
        if (!(err instanceof RelayUnreachable) && !(err instanceof RelayError)) console.warn("socket loop:", err);
      }
      if (this.stopped) return;
      this.setLink("reconnecting", `retrying in ${Math.round(backoff / 100) / 10} s`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10_000);
    }
  }

  /** One socket from open to close. @returns {Promise<{ready: boolean, error: any}>} */
  socketOnce() {
    return new Promise((resolve) => {
      const url = new URL(`/v1/channels/${this.channel}/socket`, location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(url);
      this.socket = ws;
      let ready = false;
      let error = null;
      let lastFrameAt = Date.now();
      let queue = Promise.resolve();
      const keepalive = setInterval(() => {
        if (Date.now() - lastFrameAt > SOCKET_SILENCE_MS) ws.close(4000, "no frames from the relay");
        else if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
      }, SOCKET_PING_MS);
      ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token }));
      ws.onmessage = (event) => {
        lastFrameAt = Date.now();
        let frame;
        try {
          frame = JSON.parse(String(event.data));
        } catch {
          return;
        }
        if (frame.type === "ready") {
          ready = true;
          this.setLink("connected", "");
        } else if (frame.type === "ping") {
          ws.send(JSON.stringify({ type: "pong" }));
        } else if (frame.type === "error") {
          error = frame.error ?? null;
        } else if (frame.type === "item") {
          // One item at a time, in order; acknowledged only after its effect is saved.
          queue = queue.then(async () => {
            try {
              const outcome = await this.processItem(frame.item);
              if (outcome === RETRY && this.countRetry(frame.item.id)) {
                ws.close(4000, "damaged item: ask for it again");
                return;
              }
              if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", ids: [frame.item.id] }));
            } catch (err) {
              // Not acknowledged: the relay sends it again on the next connection.
              console.warn("could not process item", frame.item?.id, err);
              ws.close(4000, "item not processed");
            }
          });
        }
      };
      ws.onclose = () => {
        clearInterval(keepalive);
        if (this.socket === ws) this.socket = null;
        queue.then(() => resolve({ ready, error }));
      };
    });
  }
}

// --- plain words -------------------------------------------------------------------------------------

/** @param {{member: string, device: string, change: string}} ev */
export function keyChangeText(ev) {
  const who = `${ev.member}/${ev.device}`;
  if (ev.change === "device_added") return `${ev.member} has a new device (${ev.device}). Compare safety numbers before you trust it.`;
  if (ev.change === "key_changed") return `The key of ${who} CHANGED. Someone may be impersonating ${ev.member}. Compare safety numbers before sending.`;
  if (ev.change === "device_revoked") return `${who} was revoked; it no longer receives messages.`;
  return `${who}: ${ev.change}`;
}

/** @param {string} sender @param {number} first @param {number} last */
export function gapText(sender, first, last) {
  const which = first === last ? `Message ${first} from ${sender} is` : `Messages ${first}–${last} from ${sender} are`;
  return `${which} missing: never received here, or refused as unreadable. Delayed, dropped or damaged on the way — ask ${sender.split("/")[0]} to resend.`;
}

/** @param {string} sender @param {string} reason */
export function refusalText(sender, reason) {
  const why = {
    decryption_failed: "it could not be decrypted (its encryption does not check out)",
    bad_signature: "its signature does not match the sender's key — it may be forged",
    unknown_key: "it was sealed to a key this device does not have",
    not_a_recipient: "it was not addressed to this device",
    malformed: "it is not well-formed",
    unsupported_suite: "it uses a cipher suite this device does not speak",
    unsupported_version: "it uses a protocol version this device does not speak",
    expired_prekey: "it was sealed to an expired key",
  }[reason] ?? reason;
  return `A message from ${sender} was refused: ${why}. Its sender was told with a signed "rejected" receipt.`;
}

/** @param {unknown} err */
export function describe(err) {
  if (err instanceof ProtocolError || err instanceof RelayError || err instanceof DeskError || err instanceof KeyChangeError) {
    return err.message;
  }
  if (err instanceof RelayUnreachable) return "the relay does not answer; check the connection";
  return err instanceof Error ? err.message : String(err);
}

/** The directory without prekeys, for showing while offline. @param {any} raw */
function summarizeDirectory(raw) {
  return {
    version: raw.version,
    members: raw.members.map((/** @type {any} */ m) => ({
      member: m.member,
      role: m.role,
      status: m.status,
      devices: m.devices.map((/** @type {any} */ d) => ({ device: d.device, status: d.status })),
    })),
    extra: Object.fromEntries(Object.entries(raw).filter(([k]) => !["channel", "suite", "members", "version"].includes(k))),
  };
}

/** An unknown item without envelopes or signatures (metadata only). @param {any} item */
function stripBulky(item) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [k, v] of Object.entries(item ?? {})) {
    if (k === "envelope") continue;
    out[k] = typeof v === "string" && v.length > 300 ? `${v.slice(0, 300)}…` : v;
  }
  return out;
}
