// The one module that calls WebCrypto (crypto.subtle); everything else uses these few recipes.
//
// Mirrors hotline/protocol/crypto.py. Private keys are CryptoKey objects and are created
// NON-EXTRACTABLE: script running in the page can use them but never read them, and they can be kept
// in IndexedDB as they are. Public keys are plain 32-byte arrays.
//
// Failures are opaque on purpose: a bad signature is bad_signature, any failure to open a ciphertext is
// decryption_failed, with no detail that could serve as an oracle.

import { badSignature, decryptionFailed, malformed } from "./errors.js";
import { b64d, concatBytes, fromHex } from "./encoding.js";

export const ED25519_PUBLIC_LEN = 32;
export const ED25519_SEED_LEN = 32;
export const ED25519_SIGNATURE_LEN = 64;
export const X25519_KEY_LEN = 32;
export const AES_KEY_LEN = 32;
export const AES_NONCE_LEN = 12;
export const AES_TAG_LEN = 16;

// PKCS#8 wrappers of a raw 32-byte private key (RFC 8410): the only way WebCrypto imports one.
const PKCS8_ED25519 = fromHex("302e020100300506032b657004220420");
const PKCS8_X25519 = fromHex("302e020100300506032b656e04220420");
const MAX_RANDOM_CHUNK = 65536; // getRandomValues fills at most this many bytes per call

const subtle = () => {
  if (!globalThis.crypto?.subtle) throw new Error("WebCrypto is unavailable: serve the client over HTTPS");
  return globalThis.crypto.subtle;
};

/**
 * @typedef {object} KeyPair
 * @property {CryptoKey} privateKey non-extractable unless a caller asked otherwise
 * @property {Uint8Array} publicKey raw 32 bytes
 */

/** @typedef {(n: number) => Uint8Array} RandomSource `rng(n)` returns n random bytes */

/** @type {RandomSource} */
export function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += MAX_RANDOM_CHUNK) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + MAX_RANDOM_CHUNK)));
  }
  return out;
}

/** @param {Uint8Array} data @returns {Promise<Uint8Array>} */
export async function sha256(data) {
  return new Uint8Array(await subtle().digest("SHA-256", data));
}

/** @param {Uint8Array} data @returns {Promise<Uint8Array>} */
export async function sha512(data) {
  return new Uint8Array(await subtle().digest("SHA-512", data));
}

/**
 * Equality of two byte strings in time that depends only on their length (for secrets and MACs).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
export function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * HMAC-SHA-256. An empty key is passed as 32 zero bytes: HMAC pads keys with zeros to the block size
 * (RFC 2104), so the result is the same, and WebCrypto refuses zero-length HMAC keys.
 * @param {Uint8Array} key
 * @param {Uint8Array} data
 * @returns {Promise<Uint8Array>}
 */
export async function hmacSha256(key, data) {
  const raw = key.length === 0 ? new Uint8Array(32) : key;
  const hmacKey = await subtle().importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle().sign("HMAC", hmacKey, data));
}

/**
 * PBKDF2-HMAC-SHA256 (RFC 8018), for scrypt.
 * @param {Uint8Array} password
 * @param {Uint8Array} salt
 * @param {number} iterations
 * @param {number} length in bytes
 * @returns {Promise<Uint8Array>}
 */
export async function pbkdf2Sha256(password, salt, iterations, length) {
  const key = await subtle().importKey("raw", password, "PBKDF2", false, ["deriveBits"]);
  const params = { name: "PBKDF2", hash: "SHA-256", salt, iterations };
  return new Uint8Array(await subtle().deriveBits(params, key, length * 8));
}

/** @param {Uint8Array} key @param {KeyUsage[]} usages */
function importAesKey(key, usages) {
  return subtle().importKey("raw", key, { name: "AES-GCM" }, false, usages);
}

/**
 * AES-256-GCM; returns ciphertext ‖ 16-byte tag.
 * @param {Uint8Array} key
 * @param {Uint8Array} nonce
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} aad
 * @returns {Promise<Uint8Array>}
 */
export async function aeadSeal(key, nonce, plaintext, aad) {
  if (key.length !== AES_KEY_LEN || nonce.length !== AES_NONCE_LEN) throw malformed("bad AES-GCM key or nonce");
  const aesKey = await importAesKey(key, ["encrypt"]);
  const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
  return new Uint8Array(await subtle().encrypt(params, aesKey, plaintext));
}

/**
 * AES-256-GCM decryption of ciphertext ‖ tag; any failure is decryption_failed.
 * @param {Uint8Array} key
 * @param {Uint8Array} nonce
 * @param {Uint8Array} ciphertext
 * @param {Uint8Array} aad
 * @returns {Promise<Uint8Array>}
 */
export async function aeadOpen(key, nonce, ciphertext, aad) {
  if (key.length !== AES_KEY_LEN || nonce.length !== AES_NONCE_LEN) throw decryptionFailed("could not open");
  try {
    const aesKey = await importAesKey(key, ["decrypt"]);
    const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
    return new Uint8Array(await subtle().decrypt(params, aesKey, ciphertext));
  } catch {
    throw decryptionFailed("could not open");
  }
}

// --- Ed25519 -----------------------------------------------------------------------------------------

/** A new Ed25519 signing key; the private half can never be read by script. @returns {Promise<KeyPair>} */
export async function generateSigningKey() {
  const usages = /** @type {KeyUsage[]} */ (["sign", "verify"]);
  const pair = /** @type {CryptoKeyPair} */ (await subtle().generateKey({ name: "Ed25519" }, false, usages));
  return { privateKey: pair.privateKey, publicKey: new Uint8Array(await subtle().exportKey("raw", pair.publicKey)) };
}

/**
 * Import a raw private key from its 32 bytes (a key file, or a fixed test key) and learn its public key.
 * WebCrypto cannot compute a public key from a private one directly; an extractable copy exported as
 * JWK carries it ("x"). That copy is dropped and the key kept is non-extractable.
 * @param {"Ed25519" | "X25519"} name
 * @param {Uint8Array} secret
 * @param {KeyUsage[]} usages
 * @returns {Promise<KeyPair>}
 */
async function importPrivateKey(name, secret, usages) {
  if (secret.length !== 32) throw malformed(`an ${name} private key is 32 bytes`);
  const pkcs8 = concatBytes(name === "Ed25519" ? PKCS8_ED25519 : PKCS8_X25519, secret);
  const algorithm = { name };
  const temporary = await subtle().importKey("pkcs8", pkcs8, algorithm, true, usages);
  const jwk = await subtle().exportKey("jwk", temporary);
  const publicKey = b64d(jwk.x, { field: "jwk.x", maxBytes: 32 });
  const privateKey = await subtle().importKey("pkcs8", pkcs8, algorithm, false, usages);
  return { privateKey, publicKey };
}

/** @param {Uint8Array} seed 32-byte Ed25519 seed @returns {Promise<KeyPair>} */
export function importSigningSeed(seed) {
  return importPrivateKey("Ed25519", seed, ["sign"]);
}

/**
 * @param {CryptoKey} privateKey
 * @param {Uint8Array} message
 * @returns {Promise<Uint8Array>} 64-byte signature
 */
export async function sign(privateKey, message) {
  return new Uint8Array(await subtle().sign({ name: "Ed25519" }, privateKey, message));
}

// Encodings (sign bit cleared) of the points of order 1, 2, 4 and 8 on edwards25519. With such a key the
// signature (R = the key, S = 0) verifies for every message, so a device that enrolled one could later
// deny anything "it" signed. Non-canonical encodings (y >= p) are refused too. Same list as crypto.py.
const SMALL_ORDER_ED25519 = new Set([
  "0000000000000000000000000000000000000000000000000000000000000000", // order 4
  "0100000000000000000000000000000000000000000000000000000000000000", // identity
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
]);
const P25519 = (1n << 255n) - 19n;

/**
 * True for small-order points and non-canonical encodings, which no honest key generator makes.
 * @param {Uint8Array} publicKey 32 bytes
 */
export function isWeakEd25519PublicKey(publicKey) {
  const masked = Uint8Array.from(publicKey);
  masked[31] &= 0x7f;
  let hex = "";
  let y = 0n;
  for (let i = 0; i < masked.length; i++) hex += masked[i].toString(16).padStart(2, "0");
  for (let i = masked.length - 1; i >= 0; i--) y = (y << 8n) | BigInt(masked[i]);
  return SMALL_ORDER_ED25519.has(hex) || y >= P25519;
}

/**
 * Raise bad_signature unless `signature` is a valid Ed25519 signature by `publicKey` over `message`.
 * Checks in the order of crypto.py: signature length, then the key (its length, then weak keys, both
 * malformed), then the signature itself.
 * @param {Uint8Array} publicKey
 * @param {Uint8Array} signature
 * @param {Uint8Array} message
 */
export async function verifySignature(publicKey, signature, message) {
  if (signature.length !== ED25519_SIGNATURE_LEN) throw badSignature("signature does not verify");
  if (publicKey.length !== ED25519_PUBLIC_LEN) throw malformed("an Ed25519 public key is 32 bytes");
  if (isWeakEd25519PublicKey(publicKey)) {
    throw malformed("a weak (small-order or non-canonical) Ed25519 public key is refused");
  }
  let valid = false;
  try {
    const key = await subtle().importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    valid = await subtle().verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    valid = false; // a key WebCrypto will not load verifies nothing, as with OpenSSL
  }
  if (!valid) throw badSignature("signature does not verify");
}

// --- X25519 -------------------------------------------------------------------------------------------

/** A new X25519 key for HPKE; the private half can never be read by script. @returns {Promise<KeyPair>} */
export async function generateKemKey() {
  const pair = /** @type {CryptoKeyPair} */ (await subtle().generateKey({ name: "X25519" }, false, ["deriveBits"]));
  return { privateKey: pair.privateKey, publicKey: new Uint8Array(await subtle().exportKey("raw", pair.publicKey)) };
}

/** @param {Uint8Array} secret 32-byte X25519 private key @returns {Promise<KeyPair>} */
export function importKemSecret(secret) {
  return importPrivateKey("X25519", secret, ["deriveBits"]);
}

/**
 * X25519(privateKey, publicKey): the 32-byte shared secret. WebCrypto refuses an all-zero result (a
 * low-order public key), as RFC 9180 §7.1.4 requires; that surfaces here as a thrown error.
 * @param {CryptoKey} privateKey
 * @param {Uint8Array} publicKey
 * @returns {Promise<Uint8Array>}
 */
export async function x25519(privateKey, publicKey) {
  if (publicKey.length !== X25519_KEY_LEN) throw malformed("an X25519 public key is 32 bytes");
  const peer = await subtle().importKey("raw", publicKey, { name: "X25519" }, false, []);
  return new Uint8Array(await subtle().deriveBits({ name: "X25519", public: peer }, privateKey, 256));
}
