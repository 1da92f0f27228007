// Envelopes: sealing a message for its recipients, and checking and opening one (PROTOCOL.md §4).
//
// Layout: a JSON header (header.js) travels as its exact bytes; a fresh 32-byte content key encrypts the
// content with AES-256-GCM (the AAD binds the header hash); the content key is wrapped for every recipient
// device with HPKE, whose info binds the header hash and the recipient; one Ed25519 signature by the sender
// device covers the domain-separated header and the SHA-256 hashes of the body and of the wrapped keys.
// Checks run cheapest first — sizes, structure, signature, decryption — in exactly the order of
// hotline/protocol/envelope.py, so both implementations refuse a bad envelope with the same code.

import { decryptionFailed, malformed, tooLarge, unknownKey, unsupportedSuite } from "./errors.js";
import { b64d, b64e, concatBytes, dumpJson, frame, loadJsonObject, utf8 } from "./encoding.js";
import {
  AES_KEY_LEN,
  AES_NONCE_LEN,
  AES_TAG_LEN,
  ED25519_SIGNATURE_LEN,
  aeadOpen,
  aeadSeal,
  constantTimeEqual,
  randomBytes,
  sha256,
  verifySignature,
} from "./crypto.js";
import { openBase, sealBase } from "./hpke.js";
import { contentToBytes, parseContent } from "./content.js";
import { headerRecipient, headerToBytes, keyCommitment, parseHeader } from "./header.js";
import { uuid7 } from "./uuid7.js";
import { ContentType, DEFAULT_LIMITS, addressToString, requireObject, sameAddress } from "./model.js";

/** @typedef {import("./model.js").Limits} Limits */
/** @typedef {import("./keys.js").DeviceKeys} DeviceKeys */
/** @typedef {import("./keys.js").SignedPrekey} SignedPrekey */
/** @typedef {import("./content.js").Content} Content */
/** @typedef {import("./header.js").Header} Header */
/** @typedef {import("./header.js").Recipient} Recipient */
/** @typedef {import("./hpke.js").EphemeralKey} EphemeralKey */

export const DS_ENVELOPE = utf8("hotline/v1/envelope");
export const DS_ENVELOPE_HASH = utf8("hotline/v1/envelope-hash");
export const DS_BODY = utf8("hotline/v1/body");
export const DS_WRAP = utf8("hotline/v1/wrap");
const MAX_WRAPPED_KEY = 2048; // bytes; the classic suite's is 80, the hybrid suite's about 1,170
const EMPTY = new Uint8Array(0);

/** A sealed message as it travels. */
export class Envelope {
  /**
   * @param {Uint8Array} headerBytes
   * @param {Uint8Array} body nonce ‖ AES-GCM ciphertext ‖ tag
   * @param {Uint8Array[]} wrappedKeys one HPKE enc ‖ ct per header recipient
   * @param {Uint8Array} signature
   * @param {Header} header parsed from headerBytes
   */
  constructor(headerBytes, body, wrappedKeys, signature, header) {
    this.headerBytes = headerBytes;
    this.body = body;
    this.wrappedKeys = Object.freeze([...wrappedKeys]);
    this.signature = signature;
    this.header = header;
    Object.freeze(this);
  }

  bodyHash() {
    return sha256(this.body);
  }

  keysHash() {
    return sha256(frame(...this.wrappedKeys));
  }

  /**
   * What the sender signs: the header itself and hashes of the body and the wrapped keys, so an
   * auditor who keeps only the header, the two hashes and the signature can still check the sender.
   * @returns {Promise<Uint8Array>}
   */
  async signedBytes() {
    return frame(DS_ENVELOPE, this.headerBytes, await this.bodyHash(), await this.keysHash());
  }

  /** SHA-256 identifying these exact bytes; receipts and the audit log refer to it. @returns {Promise<Uint8Array>} */
  async hash() {
    const [bodyHash, keysHash] = [await this.bodyHash(), await this.keysHash()];
    return sha256(frame(DS_ENVELOPE_HASH, this.headerBytes, bodyHash, keysHash, this.signature));
  }

  /** @returns {{header: string, body: string, keys: string[], sig: string}} */
  toJson() {
    return {
      header: b64e(this.headerBytes),
      body: b64e(this.body),
      keys: this.wrappedKeys.map(b64e),
      sig: b64e(this.signature),
    };
  }

  /** @returns {Uint8Array} the wire JSON, compact with sorted keys */
  toBytes() {
    return dumpJson(this.toJson());
  }

  /**
   * Parse the wire form: sizes first, then structure. Does not verify the signature.
   * @param {unknown} obj
   * @param {Limits} [limits]
   */
  static fromJson(obj, limits = DEFAULT_LIMITS) {
    const f = requireObject(obj, { field: "envelope", keys: ["header", "body", "keys", "sig"] });
    const headerBytes = b64d(f.header, { field: "envelope.header", maxBytes: limits.maxHeaderBytes });
    const maxBody = limits.maxBodyPlaintextBytes + AES_NONCE_LEN + AES_TAG_LEN;
    const body = b64d(f.body, { field: "envelope.body", maxBytes: maxBody });
    if (body.length < AES_NONCE_LEN + AES_TAG_LEN) throw malformed("envelope.body: too short to be a ciphertext");
    if (!Array.isArray(f.keys)) throw malformed("envelope.keys: expected a list");
    if (f.keys.length > limits.maxRecipients) throw tooLarge(`envelope.keys: more than ${limits.maxRecipients} keys`);
    const keys = f.keys.map((k, i) => b64d(k, { field: `envelope.keys[${i}]`, maxBytes: MAX_WRAPPED_KEY }));
    const signature = b64d(f.sig, { field: "envelope.sig", maxBytes: ED25519_SIGNATURE_LEN });
    const header = parseHeader(headerBytes, limits);
    if (keys.length !== header.recipients.length) {
      throw malformed("envelope.keys: one wrapped key per header recipient is required");
    }
    return new Envelope(headerBytes, body, keys, signature, header);
  }

  /**
   * Parse wire bytes (the whole envelope JSON is size-checked first).
   * @param {Uint8Array} data
   * @param {Limits} [limits]
   */
  static fromBytes(data, limits = DEFAULT_LIMITS) {
    const obj = loadJsonObject(data, { what: "envelope", maxBytes: limits.maxEnvelopeBytes });
    return Envelope.fromJson(obj, limits);
  }

  /**
   * Raise bad_signature unless the sender device signed exactly these bytes. The caller passes the key
   * its directory holds for header.sender; verifying with any other key proves nothing.
   * @param {Uint8Array} senderSigningKey
   */
  async verifySignature(senderSigningKey) {
    await verifySignature(senderSigningKey, this.signature, await this.signedBytes());
  }
}

/** @param {Uint8Array} headerHash */
const bodyAad = (headerHash) => frame(DS_BODY, headerHash);

/** @param {Uint8Array} headerHash @param {Recipient} r */
const wrapInfo = (headerHash, r) =>
  frame(DS_WRAP, headerHash, utf8(r.address.member), utf8(r.address.device), utf8(r.prekeyId));

/**
 * @typedef {object} SealOptions
 * @property {string} channel
 * @property {Record<string, number>} seq for each recipient member, the next number of this device's stream to it
 * @property {SignedPrekey[]} recipients prekeys already verified by the caller against the key directory
 * @property {string} precedence
 * @property {string} intent
 * @property {string} text
 * @property {number} nowMs
 * @property {(n: number) => Uint8Array} [rng] draws 10 (message id), 32 (content key), 12 (nonce) bytes, in that order
 * @property {string} [lang]
 * @property {string | null} [inReplyTo]
 * @property {Record<string, unknown>} [fields]
 * @property {boolean} [exercise]
 * @property {Limits} [limits]
 * @property {EphemeralKey[]} [ephemeralKeys] one per recipient — for test vectors only; production
 *   leaves it out so every HPKE wrap gets a fresh WebCrypto key
 */

/**
 * Seal `text` from `keys`' device to every device whose prekey is in `recipients` (PROTOCOL.md §4.8).
 * @param {DeviceKeys} keys
 * @param {SealOptions} options
 * @returns {Promise<Envelope>}
 */
export async function sealEnvelope(keys, options) {
  const { channel, seq, recipients, precedence, intent, text, nowMs } = options;
  const { rng = randomBytes, lang = "en", inReplyTo = null, exercise = false, limits = DEFAULT_LIMITS } = options;
  const fields = options.fields ?? {};
  if (!recipients.length) throw malformed("an envelope needs at least one recipient");
  for (const prekey of recipients) {
    prekey.requireValidAt(nowMs);
    if (prekey.suite !== keys.suite) {
      throw unsupportedSuite(`${addressToString(prekey.owner)} uses suite ${prekey.suite}, this device ${keys.suite}`);
    }
  }
  const messageId = uuid7(nowMs, rng);
  const contentKey = rng(AES_KEY_LEN);
  const headerBytes = headerToBytes({
    suite: keys.suite,
    channel,
    messageId,
    sender: keys.address,
    seq: Object.entries(seq),
    recipients: recipients.map((p) => ({ address: p.owner, prekeyId: p.id })),
    precedence,
    createdAtMs: nowMs,
    contentType: ContentType.MESSAGE,
    exercise,
    keyCommitment: await keyCommitment(contentKey),
  });
  // Round-trip through the parser so a sender can never emit what a receiver would refuse.
  const header = parseHeader(headerBytes, limits);
  const plaintext = contentToBytes({
    channel,
    messageId,
    sender: keys.address,
    recipients: header.recipients.map((r) => r.address),
    intent,
    text,
    lang,
    inReplyTo,
    fields,
  });
  if (plaintext.length > limits.maxBodyPlaintextBytes) {
    throw tooLarge(`message content is ${plaintext.length} bytes; the limit is ${limits.maxBodyPlaintextBytes}`);
  }
  parseContent(plaintext, limits);
  const headerHash = await sha256(headerBytes);
  const nonce = rng(AES_NONCE_LEN);
  const body = concatBytes(nonce, await aeadSeal(contentKey, nonce, plaintext, bodyAad(headerHash)));
  const wrapped = [];
  for (const [i, prekey] of recipients.entries()) {
    const ephemeral = options.ephemeralKeys?.[i];
    const info = wrapInfo(headerHash, header.recipients[i]);
    wrapped.push(await sealBase(prekey.publicKey, info, EMPTY, contentKey, { ephemeral }));
  }
  const unsigned = new Envelope(headerBytes, body, wrapped, EMPTY, header);
  const signature = await keys.sign(await unsigned.signedBytes());
  return new Envelope(headerBytes, body, wrapped, signature, header);
}

/**
 * Verify and decrypt an envelope addressed to `keys`' device (PROTOCOL.md §4.9, steps 8–15).
 * Raises, in order of the checks: unsupported_suite, bad_signature, not_a_recipient, unknown_key
 * (the prekey is unknown or erased), decryption_failed, malformed (the content does not match the header).
 * @param {Envelope} envelope
 * @param {DeviceKeys} keys
 * @param {Uint8Array} senderSigningKey the directory's key for header.sender
 * @param {Limits} [limits]
 * @returns {Promise<{envelope: Envelope, content: Content}>}
 */
export async function openEnvelope(envelope, keys, senderSigningKey, limits = DEFAULT_LIMITS) {
  const { header } = envelope;
  if (header.suite !== keys.suite) throw unsupportedSuite(`suite ${header.suite} is not this device's suite`);
  await envelope.verifySignature(senderSigningKey);
  const me = headerRecipient(header, keys.address);
  const index = header.recipients.indexOf(me);
  const secret = keys.prekeys.get(me.prekeyId);
  if (!secret) throw unknownKey(`prekey ${me.prekeyId} is unknown here or has been erased`);
  const headerHash = await sha256(envelope.headerBytes);
  const sealed = envelope.wrappedKeys[index];
  const info = wrapInfo(headerHash, me);
  const contentKey = await openBase(secret.key.privateKey, secret.key.publicKey, sealed, info, EMPTY);
  // A key of the wrong length, or one the header did not commit to, is as opaque a failure as a bad tag.
  if (contentKey.length !== AES_KEY_LEN || !constantTimeEqual(await keyCommitment(contentKey), header.keyCommitment)) {
    throw decryptionFailed("could not open");
  }
  const nonce = envelope.body.subarray(0, AES_NONCE_LEN);
  const plaintext = await aeadOpen(contentKey, nonce, envelope.body.subarray(AES_NONCE_LEN), bodyAad(headerHash));
  const content = parseContent(plaintext, limits);
  const matches =
    content.channel === header.channel &&
    content.messageId === header.messageId &&
    sameAddress(content.sender, header.sender) &&
    content.recipients.length === header.recipients.length &&
    content.recipients.every((r, i) => sameAddress(r, header.recipients[i].address));
  if (!matches) throw malformed("the content does not match the envelope header");
  return { envelope, content };
}

