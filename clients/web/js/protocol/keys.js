// Device keys: the Ed25519 identity key and signed X25519 prekeys (PROTOCOL.md §3; mirrors hotline/protocol/keys.py).
//
// A device's signing key is its identity: it signs envelopes, receipts, prekeys and login challenges.
// Its prekeys receive the content keys of envelopes; each is published as a SignedPrekey — id, public
// key, validity window — signed by the signing key, so the relay cannot substitute its own.
//
// In the browser every private key is a NON-EXTRACTABLE CryptoKey: page script (and so an injected
// script) can ask for signatures while the page is open but can never copy a key out. The price is that
// the browser cannot write a key file (keys.py's to_file); it can read one (keyfile.js).

import { expiredPrekey, malformed, unsupportedSuite, unsupportedVersion } from "./errors.js";
import { b64d, b64e, bytesEqual, dumpJson, frame, loadJsonObject, utf8 } from "./encoding.js";
import {
  ED25519_SIGNATURE_LEN,
  X25519_KEY_LEN,
  generateKemKey,
  generateSigningKey,
  sha256,
  sign,
  verifySignature,
} from "./crypto.js";
import {
  DEFAULT_LIMITS,
  PREKEY_ID_RE,
  PROTOCOL_VERSION,
  Suite,
  deviceAddress,
  isProtocolVersion,
  requireInt,
  requireName,
  requireObject,
  requireStr,
} from "./model.js";

/** @typedef {import("./model.js").DeviceAddress} DeviceAddress */
/** @typedef {import("./model.js").Limits} Limits */
/** @typedef {import("./crypto.js").KeyPair} KeyPair */

export const DS_PREKEY = utf8("hotline/v1/prekey");
export const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_PREKEY_LIFETIME_MS = 7 * DAY_MS;

const PREKEY_FIELDS = ["v", "type", "suite", "member", "device", "id", "public_key", "not_before_ms", "expires_ms"];

/**
 * A prekey's id: the first 9 bytes of SHA-256 of its public key, base64url (12 characters).
 * @param {Uint8Array} publicKey
 * @returns {Promise<string>}
 */
export async function prekeyIdFor(publicKey) {
  return b64e((await sha256(publicKey)).subarray(0, 9));
}

/**
 * A suite string this implementation speaks, else unsupported_suite.
 * @param {unknown} value
 * @param {{field: string}} options
 * @returns {string}
 */
export function requireSuite(value, { field }) {
  if (typeof value !== "string") throw malformed(`${field}: expected a string`);
  if (!Object.values(Suite).includes(value)) {
    throw unsupportedSuite(`${field}: suite ${JSON.stringify(value)} is not supported`);
  }
  return value;
}

/** A published prekey. `body` is the exact signed JSON; the other fields are parsed from it. */
export class SignedPrekey {
  /**
   * @param {{body: Uint8Array, signature: Uint8Array, suite: string, owner: DeviceAddress, id: string,
   *          publicKey: Uint8Array, notBeforeMs: number, expiresMs: number}} fields
   */
  constructor(fields) {
    this.body = fields.body;
    this.signature = fields.signature;
    this.suite = fields.suite;
    this.owner = fields.owner;
    this.id = fields.id;
    this.publicKey = fields.publicKey;
    this.notBeforeMs = fields.notBeforeMs;
    this.expiresMs = fields.expiresMs;
    Object.freeze(this);
  }

  /** @returns {{body: string, sig: string}} the wire form */
  toJson() {
    return { body: b64e(this.body), sig: b64e(this.signature) };
  }

  /**
   * Parse the wire form {"body", "sig"}. Does not verify the signature.
   * @param {unknown} obj
   * @param {Limits} [limits]
   */
  static fromJson(obj, limits = DEFAULT_LIMITS) {
    const f = requireObject(obj, { field: "prekey", keys: ["body", "sig"] });
    const body = b64d(f.body, { field: "prekey.body", maxBytes: limits.maxPrekeyBytes });
    const sig = b64d(f.sig, { field: "prekey.sig", maxBytes: ED25519_SIGNATURE_LEN });
    return SignedPrekey.parse(body, sig, limits);
  }

  /**
   * Parse a signed prekey body; checks in the order of PROTOCOL.md §3.2.
   * @param {Uint8Array} body
   * @param {Uint8Array} signature
   * @param {Limits} [limits]
   * @returns {Promise<SignedPrekey>}
   */
  static async parse(body, signature, limits = DEFAULT_LIMITS) {
    const obj = loadJsonObject(body, { what: "prekey", maxBytes: limits.maxPrekeyBytes });
    const f = requireObject(obj, { field: "prekey", keys: PREKEY_FIELDS });
    if (!isProtocolVersion(f.v)) throw unsupportedVersion("prekey version is not supported");
    if (f.type !== "prekey") throw malformed("prekey.type: expected 'prekey'");
    const suite = requireSuite(f.suite, { field: "prekey.suite" });
    // The bound is the suite's key size, so an over-long key is too_large before it is decoded (as in keys.py).
    const publicKey = b64d(f.public_key, { field: "prekey.public_key", maxBytes: X25519_KEY_LEN });
    if (publicKey.length !== X25519_KEY_LEN) throw malformed("prekey.public_key: an X25519 public key is 32 bytes");
    const id = requireStr(f.id, { field: "prekey.id", maxLen: 32 });
    if (!PREKEY_ID_RE.test(id) || id !== (await prekeyIdFor(publicKey))) {
      throw malformed("prekey.id: does not match the public key");
    }
    const notBeforeMs = requireInt(f.not_before_ms, { field: "prekey.not_before_ms" });
    const expiresMs = requireInt(f.expires_ms, { field: "prekey.expires_ms" });
    if (expiresMs <= notBeforeMs) throw malformed("prekey: expires_ms must be after not_before_ms");
    const owner = deviceAddress(
      requireName(f.member, { field: "prekey.member" }),
      requireName(f.device, { field: "prekey.device" }),
    );
    return new SignedPrekey({ body, signature, suite, owner, id, publicKey, notBeforeMs, expiresMs });
  }

  /**
   * Raise bad_signature unless the owner's signing key signed this prekey. Which key belongs to the owner
   * is the key directory's business (and the safety number's).
   * @param {Uint8Array} signingPublicKey
   */
  verify(signingPublicKey) {
    return verifySignature(signingPublicKey, this.signature, frame(DS_PREKEY, this.body));
  }

  /** @param {number} nowMs */
  isValidAt(nowMs) {
    return this.notBeforeMs <= nowMs && nowMs < this.expiresMs;
  }

  /** @param {number} nowMs */
  requireValidAt(nowMs) {
    if (!this.isValidAt(nowMs)) {
      throw expiredPrekey(`prekey ${this.id} of ${this.owner.member}/${this.owner.device} is not valid now`);
    }
  }
}

/**
 * @typedef {object} PrekeySecret
 * @property {KeyPair} key the X25519 key pair (private half non-extractable)
 * @property {SignedPrekey} signed
 */

/** All private key material of one device, as non-extractable CryptoKeys. */
export class DeviceKeys {
  /**
   * @param {{address: DeviceAddress, signing: KeyPair, suite?: string}} fields
   */
  constructor({ address, signing, suite = Suite.CLASSIC }) {
    this.address = address;
    this.signing = signing;
    this.suite = suite;
    /** @type {Map<string, PrekeySecret>} */
    this.prekeys = new Map();
  }

  /**
   * Fresh keys for a new device: a signing key and one prekey valid from `nowMs`.
   * @param {DeviceAddress} address
   * @param {number} nowMs
   * @param {number} [prekeyLifetimeMs]
   */
  static async generate(address, nowMs, prekeyLifetimeMs = DEFAULT_PREKEY_LIFETIME_MS) {
    const keys = new DeviceKeys({ address, signing: await generateSigningKey() });
    await keys.newPrekey(nowMs, prekeyLifetimeMs);
    return keys;
  }

  get signingPublicKey() {
    return this.signing.publicKey;
  }

  /** @param {Uint8Array} message @returns {Promise<Uint8Array>} */
  sign(message) {
    return sign(this.signing.privateKey, message);
  }

  /**
   * Make, sign and keep a new prekey valid from `nowMs` for `lifetimeMs`.
   * @param {number} nowMs
   * @param {number} [lifetimeMs]
   * @param {{kemKey?: KeyPair}} [options] a given X25519 key (tests, imports); by default a fresh one
   * @returns {Promise<SignedPrekey>}
   */
  async newPrekey(nowMs, lifetimeMs = DEFAULT_PREKEY_LIFETIME_MS, options = {}) {
    const kemKey = options.kemKey ?? (await generateKemKey());
    const body = dumpJson({
      v: PROTOCOL_VERSION,
      type: "prekey",
      suite: this.suite,
      member: this.address.member,
      device: this.address.device,
      id: await prekeyIdFor(kemKey.publicKey),
      public_key: b64e(kemKey.publicKey),
      not_before_ms: nowMs,
      expires_ms: nowMs + lifetimeMs,
    });
    const signature = await this.sign(frame(DS_PREKEY, body));
    const signed = await SignedPrekey.parse(body, signature);
    this.prekeys.set(signed.id, { key: kemKey, signed });
    return signed;
  }

  /**
   * Keep an existing prekey (from a key file) after checking it belongs to this device.
   * @param {KeyPair} kemKey
   * @param {SignedPrekey} signed
   * @param {string} field where it came from, for messages
   */
  async addPrekey(kemKey, signed, field) {
    await signed.verify(this.signingPublicKey);
    const samePublic = bytesEqual(signed.publicKey, kemKey.publicKey);
    const sameOwner = signed.owner.member === this.address.member && signed.owner.device === this.address.device;
    if (!samePublic || !sameOwner) throw malformed(`${field}: secret does not match its prekey`);
    this.prekeys.set(signed.id, { key: kemKey, signed });
  }

  /**
   * The valid prekey that expires last (ties: the larger id), or null.
   * @param {number} nowMs
   * @returns {SignedPrekey | null}
   */
  currentPrekey(nowMs) {
    let best = null;
    for (const { signed } of this.prekeys.values()) {
      if (!signed.isValidAt(nowMs)) continue;
      if (!best || signed.expiresMs > best.expiresMs || (signed.expiresMs === best.expiresMs && signed.id > best.id)) {
        best = signed;
      }
    }
    return best;
  }

  /** Forget a prekey's secret for good; envelopes sealed to it can no longer be opened here. @param {string} id */
  erasePrekey(id) {
    this.prekeys.delete(id);
  }

  /**
   * Erase every prekey that expired before `cutoffMs` (now minus a grace period).
   * @param {number} cutoffMs
   * @returns {string[]} the erased ids
   */
  erasePrekeysExpiredBefore(cutoffMs) {
    const gone = [...this.prekeys.values()].filter((p) => p.signed.expiresMs < cutoffMs).map((p) => p.signed.id);
    for (const id of gone) this.erasePrekey(id);
    return gone;
  }
}

