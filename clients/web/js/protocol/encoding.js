// Byte-exact encodings used on the wire: strict unpadded base64url, frame() (docs/PROTOCOL.md §1).
//
// Everything signed in hotline is an exact byte string that travels base64url-encoded, so nothing is
// re-serialized before verification. The decoders here are strict — one accepted text per byte string —
// so that the browser and the Python core can never disagree about what was signed. The strict JSON
// parser (json.js) and the UTF-8 helpers (utf8.js) are re-exported from here.

import { malformed, tooLarge } from "./errors.js";
import { codePointLength } from "./utf8.js";

export { dumpJson, loadJsonObject } from "./json.js";
export { codePointLength, utf8, utf8Decode } from "./utf8.js";

const B64URL_RE = /^[A-Za-z0-9_-]*$/; // JS "$" never matches before a trailing newline (Python's does).
const CHUNK = 0x8000; // String.fromCharCode takes its bytes as arguments; keep the argument list short.

/** @param {Uint8Array} bytes @returns {string} a binary string, one char per byte */
function toBinaryString(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    out += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return out;
}

/**
 * Encode bytes as unpadded base64url (RFC 4648 §5).
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function b64e(bytes) {
  return btoa(toBinaryString(bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Decode strict unpadded base64url: no padding, no other alphabet, no non-zero trailing bits.
 * A size bound is checked on the text length first (too_large), before anything is decoded.
 * @param {unknown} text
 * @param {{field: string, maxBytes?: number}} options
 * @returns {Uint8Array}
 */
export function b64d(text, { field, maxBytes }) {
  if (typeof text !== "string") throw malformed(`${field}: expected a base64url string`);
  if (maxBytes !== undefined) {
    const maxChars = Math.floor((maxBytes * 4 + 2) / 3);
    // Python counts code points; only a text already too long in UTF-16 units can be too long in them.
    if (text.length > maxChars && codePointLength(text) > maxChars) {
      throw tooLarge(`${field}: longer than ${maxBytes} bytes`);
    }
  }
  if (!B64URL_RE.test(text) || text.length % 4 === 1) throw malformed(`${field}: not unpadded base64url`);
  const standard = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  const binary = atob(standard);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  // Re-encoding catches unused trailing bits that are not zero: "AB" and "AA" both decode to 0x00.
  if (b64e(bytes) !== text) throw malformed(`${field}: non-canonical base64url`);
  return bytes;
}

/**
 * Concatenate byte strings.
 * @param {...Uint8Array} parts
 * @returns {Uint8Array}
 */
export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Length-prefix each part (4-byte big-endian) so concatenations are unambiguous (§1.4).
 * @param {...Uint8Array} parts
 * @returns {Uint8Array}
 */
export function frame(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const part of parts) {
    view.setUint32(at, part.length);
    out.set(part, at + 4);
    at += 4 + part.length;
  }
  return out;
}

/** @param {Uint8Array} bytes @returns {string} lower-case hex */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} hex @returns {Uint8Array} */
export function fromHex(hex) {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw malformed("not a hex string");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Equality of two byte strings (not constant-time: for public values only).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
export function bytesEqual(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Unsigned lexicographic order of byte strings, for sorting (as Python compares bytes).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {number}
 */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}
