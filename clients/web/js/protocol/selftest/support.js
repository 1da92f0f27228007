// Shared helpers of the self-test suites: recording cases, loading vector files and the fixed vector keys.

import { ProtocolError } from "../errors.js";
import { bytesEqual, concatBytes, fromHex, toHex, utf8 } from "../encoding.js";
import { importKemSecret, importSigningSeed, sha256 } from "../crypto.js";
import { DeviceKeys, SignedPrekey } from "../keys.js";
import { parseAddress } from "../model.js";

/** @typedef {{name: string, ok: boolean, error?: string}} CaseResult */

/** Collects named cases; a case passes when its function returns without throwing. */
export class Cases {
  constructor() {
    /** @type {CaseResult[]} */
    this.results = [];
  }

  /**
   * @param {string} name
   * @param {() => unknown} fn
   */
  async check(name, fn) {
    try {
      await fn();
      this.results.push({ name, ok: true });
    } catch (err) {
      const detail = err instanceof ProtocolError ? `${err.code}: ${err.message}` : String(err?.stack ?? err);
      this.results.push({ name, ok: false, error: detail });
    }
  }
}

/** @param {unknown} condition @param {string} message */
export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

/** @param {unknown} actual @param {unknown} expected @param {string} what */
export function assertEqual(actual, expected, what) {
  const a = actual instanceof Uint8Array ? toHex(actual) : JSON.stringify(actual);
  const e = expected instanceof Uint8Array ? toHex(expected) : JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/** @param {Uint8Array} actual @param {Uint8Array} expected @param {string} what */
export function assertBytes(actual, expected, what) {
  if (!bytesEqual(actual, expected)) throw new Error(`${what}: expected ${toHex(expected)}, got ${toHex(actual)}`);
}

/**
 * The error code `fn` is refused with; fails if it succeeds or throws something else.
 * @param {() => unknown} fn
 * @returns {Promise<string>}
 */
export async function refusalCode(fn) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    throw err;
  }
  throw new Error("accepted, but should have been refused");
}

/** @param {string} base @param {string} name */
export async function fetchJson(base, name) {
  const response = await fetch(new URL(name, new URL(base, location.href)));
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
  return response.json();
}

/** Where the page finds the shared vectors and the browser-only test data (data-* attributes of <body>). */
export function dataLocations() {
  const body = document.body;
  return { vectors: body?.dataset.vectors ?? "/vectors/", testData: body?.dataset.testData ?? "/test-data/" };
}

/**
 * The first `n` bytes of tests/vectors/detrng.py's stream for `label`: block i is SHA-256(label ‖ i),
 * i as 8 bytes big-endian.
 * @param {string} label
 * @param {number} n
 */
export async function deterministicBytes(label, n) {
  const blocks = [];
  for (let i = 0; blocks.length * 32 < n; i++) {
    const counter = new Uint8Array(8);
    new DataView(counter.buffer).setBigUint64(0, BigInt(i));
    blocks.push(await sha256(concatBytes(utf8(label), counter)));
  }
  return concatBytes(...blocks).slice(0, n);
}

/**
 * A synchronous random source handing out the given bytes in order (the protocol's rng is synchronous).
 * @param {Uint8Array} bytes
 * @returns {(n: number) => Uint8Array}
 */
export function bufferRng(bytes) {
  let at = 0;
  return (n) => {
    if (at + n > bytes.length) throw new Error("test random source exhausted");
    at += n;
    return bytes.slice(at - n, at);
  };
}

/**
 * The fixed devices of keys.json as DeviceKeys (keys imported non-extractable), and the key directory.
 * @param {any} keysDoc keys.json
 */
export async function vectorKeyring(keysDoc) {
  /** @type {Map<string, Uint8Array>} */
  const directory = new Map();
  /** @type {Map<string, any>} */
  const records = new Map();
  for (const d of keysDoc.devices) {
    directory.set(d.address, fromHex(d.signing_public_key_hex));
    records.set(d.address, d);
  }
  directory.set("relay", fromHex(keysDoc.relay.signing_public_key_hex));

  /** @param {string} address @returns {Promise<DeviceKeys>} fresh keys, so a case may erase prekeys */
  async function device(address) {
    const d = records.get(address);
    if (!d) throw new Error(`no vector device ${address}`);
    const signing = await importSigningSeed(fromHex(d.signing_seed_hex));
    const keys = new DeviceKeys({ address: parseAddress(address), signing });
    const kemKey = await importKemSecret(fromHex(d.prekey_secret_hex));
    await keys.addPrekey(kemKey, await SignedPrekey.fromJson(d.signed_prekey), address);
    return keys;
  }

  /** @param {string} address */
  async function signedPrekey(address) {
    const d = records.get(address);
    if (!d) throw new Error(`no vector device ${address}`);
    return SignedPrekey.fromJson(d.signed_prekey);
  }

  const relaySigning = () => importSigningSeed(fromHex(keysDoc.relay.signing_seed_hex));
  return { directory, records, device, signedPrekey, relaySigning };
}
