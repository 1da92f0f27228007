// RFC 9180 HPKE, Base mode, single shot, for the one suite hotline-c1 uses:
// DHKEM(X25519, HKDF-SHA256) 0x0020 / HKDF-SHA256 0x0001 / AES-256-GCM 0x0002.
//
// WebCrypto has no HPKE, and its HKDF does extract and expand in one call while HPKE's LabeledExtract and
// LabeledExpand need them apart, so both are built here from HMAC-SHA-256 (RFC 5869). Output is
// enc ‖ ciphertext, as pyca/cryptography writes it. Only the first message of a context is ever sent
// (sequence number 0), so the nonce is base_nonce itself. Written from RFC 9180 §4, §5.1, §5.2 and §7.1.

import { decryptionFailed, malformed } from "./errors.js";
import { concatBytes } from "./encoding.js";
import {
  AES_KEY_LEN,
  AES_NONCE_LEN,
  X25519_KEY_LEN,
  aeadOpen,
  aeadSeal,
  generateKemKey,
  hmacSha256,
  x25519,
} from "./crypto.js";

const ascii = (/** @type {string} */ s) => Uint8Array.from(s, (c) => c.charCodeAt(0));

const HASH_LEN = 32; // Nh of HKDF-SHA256
const N_SECRET = 32; // Nsecret of DHKEM(X25519, HKDF-SHA256)
export const ENC_LEN = X25519_KEY_LEN; // Nenc
const MODE_BASE = 0x00;
const VERSION_LABEL = ascii("HPKE-v1");
const KEM_SUITE_ID = concatBytes(ascii("KEM"), new Uint8Array([0x00, 0x20]));
const HPKE_SUITE_ID = concatBytes(ascii("HPKE"), new Uint8Array([0x00, 0x20, 0x00, 0x01, 0x00, 0x02]));
const EMPTY = new Uint8Array(0);

/** I2OSP(n, 2) */
const twoBytes = (/** @type {number} */ n) => new Uint8Array([n >> 8, n & 0xff]);

/** HKDF-Expand (RFC 5869 §2.3) with HMAC-SHA-256. */
async function hkdfExpand(/** @type {Uint8Array} */ prk, /** @type {Uint8Array} */ info, /** @type {number} */ length) {
  if (length > 255 * HASH_LEN) throw new RangeError("HKDF-Expand length too large");
  const blocks = [];
  let previous = EMPTY;
  for (let i = 1; blocks.length * HASH_LEN < length; i++) {
    previous = await hmacSha256(prk, concatBytes(previous, info, new Uint8Array([i])));
    blocks.push(previous);
  }
  return concatBytes(...blocks).slice(0, length);
}

/** LabeledExtract(salt, label, ikm) = HKDF-Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm) (§4). */
function labeledExtract(
  /** @type {Uint8Array} */ suiteId,
  /** @type {Uint8Array} */ salt,
  /** @type {string} */ label,
  /** @type {Uint8Array} */ ikm,
) {
  return hmacSha256(salt, concatBytes(VERSION_LABEL, suiteId, ascii(label), ikm));
}

/** LabeledExpand(prk, label, info, L) = HKDF-Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L). */
function labeledExpand(
  /** @type {Uint8Array} */ suiteId,
  /** @type {Uint8Array} */ prk,
  /** @type {string} */ label,
  /** @type {Uint8Array} */ info,
  /** @type {number} */ length,
) {
  return hkdfExpand(prk, concatBytes(twoBytes(length), VERSION_LABEL, suiteId, ascii(label), info), length);
}

/** DHKEM ExtractAndExpand(dh, kem_context) → shared_secret (§4.1). */
async function extractAndExpand(/** @type {Uint8Array} */ dh, /** @type {Uint8Array} */ kemContext) {
  const eaePrk = await labeledExtract(KEM_SUITE_ID, EMPTY, "eae_prk", dh);
  return labeledExpand(KEM_SUITE_ID, eaePrk, "shared_secret", kemContext, N_SECRET);
}

/**
 * KeySchedule for mode_base (§5.1): psk and psk_id empty.
 * @param {Uint8Array} sharedSecret
 * @param {Uint8Array} info
 * @returns {Promise<{key: Uint8Array, baseNonce: Uint8Array}>}
 */
export async function keySchedule(sharedSecret, info) {
  const pskIdHash = await labeledExtract(HPKE_SUITE_ID, EMPTY, "psk_id_hash", EMPTY);
  const infoHash = await labeledExtract(HPKE_SUITE_ID, EMPTY, "info_hash", info);
  const context = concatBytes(new Uint8Array([MODE_BASE]), pskIdHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE_ID, sharedSecret, "secret", EMPTY);
  return {
    key: await labeledExpand(HPKE_SUITE_ID, secret, "key", context, AES_KEY_LEN),
    baseNonce: await labeledExpand(HPKE_SUITE_ID, secret, "base_nonce", context, AES_NONCE_LEN),
  };
}

/**
 * DeriveKeyPair's private key for X25519 (§7.1.3): sk = LabeledExpand(dkp_prk, "sk", "", 32).
 * The protocol never derives keys; this exists to check the RFC test vectors end to end.
 * @param {Uint8Array} ikm
 * @returns {Promise<Uint8Array>}
 */
export async function deriveX25519Secret(ikm) {
  const dkpPrk = await labeledExtract(KEM_SUITE_ID, EMPTY, "dkp_prk", ikm);
  return labeledExpand(KEM_SUITE_ID, dkpPrk, "sk", EMPTY, X25519_KEY_LEN);
}

/**
 * @typedef {object} EphemeralKey
 * @property {CryptoKey} privateKey
 * @property {Uint8Array} publicKey
 */

/**
 * DHKEM Encap(pkR) (§4.1): a fresh ephemeral key agreement with the recipient.
 * @param {Uint8Array} recipientPublicKey raw 32-byte X25519 key
 * @param {EphemeralKey} [fixedEphemeral] for test vectors only; production draws a fresh key from WebCrypto
 * @returns {Promise<{sharedSecret: Uint8Array, enc: Uint8Array}>}
 */
export async function encap(recipientPublicKey, fixedEphemeral) {
  if (recipientPublicKey.length !== X25519_KEY_LEN) throw malformed("an X25519 public key is 32 bytes");
  const ephemeral = fixedEphemeral ?? (await generateKemKey());
  let dh;
  try {
    dh = await x25519(ephemeral.privateKey, recipientPublicKey);
  } catch {
    throw malformed("not a usable X25519 public key");
  }
  const enc = ephemeral.publicKey;
  return { sharedSecret: await extractAndExpand(dh, concatBytes(enc, recipientPublicKey)), enc };
}

/**
 * DHKEM Decap(enc, skR) (§4.1).
 * @param {Uint8Array} enc
 * @param {CryptoKey} recipientPrivateKey
 * @param {Uint8Array} recipientPublicKey its raw public key (part of the KEM context)
 * @returns {Promise<Uint8Array>} shared_secret
 */
export async function decap(enc, recipientPrivateKey, recipientPublicKey) {
  const dh = await x25519(recipientPrivateKey, enc);
  return extractAndExpand(dh, concatBytes(enc, recipientPublicKey));
}

/**
 * SealBase(pkR, info, aad, pt) single shot (§6.1); returns enc ‖ ciphertext.
 * @param {Uint8Array} recipientPublicKey raw 32-byte X25519 key
 * @param {Uint8Array} info
 * @param {Uint8Array} aad
 * @param {Uint8Array} plaintext
 * @param {{ephemeral?: EphemeralKey}} [options] a fixed ephemeral key, for test vectors only
 * @returns {Promise<Uint8Array>}
 */
export async function sealBase(recipientPublicKey, info, aad, plaintext, options = {}) {
  const { sharedSecret, enc } = await encap(recipientPublicKey, options.ephemeral);
  const { key, baseNonce } = await keySchedule(sharedSecret, info);
  return concatBytes(enc, await aeadSeal(key, baseNonce, plaintext, aad));
}

/**
 * OpenBase(enc ‖ ct, skR, info, aad) single shot (§6.1); any failure is decryption_failed.
 * @param {CryptoKey} recipientPrivateKey
 * @param {Uint8Array} recipientPublicKey its raw public key (part of the KEM context)
 * @param {Uint8Array} sealed enc ‖ ciphertext
 * @param {Uint8Array} info
 * @param {Uint8Array} aad
 * @returns {Promise<Uint8Array>}
 */
export async function openBase(recipientPrivateKey, recipientPublicKey, sealed, info, aad) {
  if (sealed.length < ENC_LEN) throw decryptionFailed("could not open");
  const enc = sealed.subarray(0, ENC_LEN);
  let sharedSecret;
  try {
    sharedSecret = await decap(enc, recipientPrivateKey, recipientPublicKey);
  } catch {
    throw decryptionFailed("could not open");
  }
  const { key, baseNonce } = await keySchedule(sharedSecret, info);
  return aeadOpen(key, baseNonce, sealed.subarray(ENC_LEN), aad);
}
