// Reading device key files — plain or passphrase-sealed with scrypt + AES-256-GCM (PROTOCOL.md §3.3, §3.4).
//
// Lets a desk move a device identity made by the CLI into the browser. The keys are imported
// non-extractable, so the browser can read a key file but never write one back (see keys.js).
// Mirrors DeviceKeys.from_file / from_plain_json of hotline/protocol/keys.py, check for check.

import { badPassphrase, malformed, unsupportedSuite, unsupportedVersion } from "./errors.js";
import { b64d, loadJsonObject, utf8 } from "./encoding.js";
import { aeadOpen, importKemSecret, importSigningSeed } from "./crypto.js";
import { DeviceKeys, SignedPrekey, requireSuite } from "./keys.js";
import { deviceAddress, isProtocolVersion, requireInt, requireName, requireObject } from "./model.js";
import { scrypt } from "./scrypt.js";

/** The AES-GCM AAD of a sealed key file: the string's bytes, not framed. */
export const DS_KEYFILE = utf8("hotline/v1/keyfile");
export const MAX_KEY_FILE_BYTES = 4 * 1024 * 1024;
const SCRYPT_MAX_N = 2 ** 20;

/**
 * Device keys from a plain key file object (every prekey is checked against the file's signing key).
 * @param {unknown} obj
 * @returns {Promise<DeviceKeys>}
 */
export async function keysFromPlainJson(obj) {
  const f = requireObject(obj, {
    field: "keyfile",
    keys: ["v", "type", "suite", "member", "device", "signing_seed", "prekeys"],
  });
  if (!isProtocolVersion(f.v) || f.type !== "hotline-device-keys") {
    throw unsupportedVersion("not a hotline device key file of a supported version");
  }
  const address = deviceAddress(
    requireName(f.member, { field: "keyfile.member" }),
    requireName(f.device, { field: "keyfile.device" }),
  );
  const signing = await importSigningSeed(b64d(f.signing_seed, { field: "keyfile.signing_seed" }));
  const keys = new DeviceKeys({ address, signing, suite: requireSuite(f.suite, { field: "keyfile.suite" }) });
  if (!Array.isArray(f.prekeys)) throw malformed("keyfile.prekeys: expected a list");
  for (const [i, item] of f.prekeys.entries()) {
    const field = `keyfile.prekeys[${i}]`;
    const pf = requireObject(item, { field, keys: ["secret", "signed"] });
    const kemKey = await importKemSecret(b64d(pf.secret, { field: `${field}.secret` }));
    const signed = await SignedPrekey.fromJson(pf.signed);
    await keys.addPrekey(kemKey, signed, field);
  }
  return keys;
}

/**
 * Load key-file bytes. A sealed file that will not open — no passphrase, a wrong one, or any change to
 * the file — is bad_passphrase.
 * @param {Uint8Array} data
 * @param {string | null} passphrase
 * @returns {Promise<DeviceKeys>}
 */
export async function openKeyFile(data, passphrase) {
  const obj = loadJsonObject(data, { what: "key file", maxBytes: MAX_KEY_FILE_BYTES });
  if (obj.type === "hotline-device-keys") return keysFromPlainJson(obj);
  const f = requireObject(obj, { field: "keyfile", keys: ["v", "type", "kdf", "nonce", "ciphertext"] });
  if (!isProtocolVersion(f.v) || f.type !== "hotline-sealed-device-keys") {
    throw unsupportedVersion("not a hotline key file of a supported version");
  }
  if (passphrase === null || passphrase === undefined) {
    throw badPassphrase("this key file is sealed with a passphrase; none was given");
  }
  const kdf = requireObject(f.kdf, { field: "keyfile.kdf", keys: ["name", "n", "r", "p", "salt"] });
  if (kdf.name !== "scrypt") throw unsupportedSuite("keyfile.kdf: only scrypt is supported");
  const n = requireInt(kdf.n, { field: "keyfile.kdf.n", minimum: 2, maximum: SCRYPT_MAX_N });
  const r = requireInt(kdf.r, { field: "keyfile.kdf.r", minimum: 1, maximum: 32 });
  const p = requireInt(kdf.p, { field: "keyfile.kdf.p", minimum: 1, maximum: 16 });
  if (n & (n - 1)) throw malformed("keyfile.kdf.n: must be a power of two");
  const salt = b64d(kdf.salt, { field: "keyfile.kdf.salt", maxBytes: 64 });
  let key;
  try {
    key = await scrypt(utf8(passphrase), salt, { n, r, p });
  } catch (err) {
    // Only a browser that cannot allocate n·r·128 bytes gets here (the bounds allow 4 GiB).
    if (err instanceof RangeError) throw malformed("keyfile.kdf: scrypt parameters too costly for this browser");
    throw err;
  }
  const nonce = b64d(f.nonce, { field: "keyfile.nonce", maxBytes: 12 });
  const ciphertext = b64d(f.ciphertext, { field: "keyfile.ciphertext" });
  let plain;
  try {
    plain = await aeadOpen(key, nonce, ciphertext, DS_KEYFILE);
  } catch {
    throw badPassphrase("the passphrase is wrong, or the key file has been altered");
  }
  return keysFromPlainJson(loadJsonObject(plain, { what: "key file", maxBytes: plain.length }));
}
