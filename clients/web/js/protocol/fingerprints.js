// Fingerprints and safety numbers, so two desks can check each other's keys out of band (PROTOCOL.md §3.5, §3.6).
//
// A fingerprint names one device signing key in 32 hex digits shown in groups of four. A safety number
// covers every device key of a pair of members: each member gets a 30-digit code from its name and
// sorted device keys; the two codes are sorted and joined, so both desks compute the same 60 digits and
// can read them to each other over a phone. Mirrors hotline/protocol/fingerprints.py.

import { malformed } from "./errors.js";
import { compareBytes, concatBytes, frame, toHex, utf8 } from "./encoding.js";
import { sha256, sha512 } from "./crypto.js";

const DS_FINGERPRINT = utf8("hotline/v1/fingerprint");
const DS_SAFETY = utf8("hotline/v1/safety-number");
export const SAFETY_ITERATIONS = 1024; // makes finding a second key set with the same code expensive

// Python's str.strip() and str.isspace() whitespace (JS's trim() differs: it strips U+FEFF and keeps
// U+001C–U+001F and U+0085).
const PY_WHITESPACE = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_STRIP_RE = new RegExp(`^[${PY_WHITESPACE}]+|[${PY_WHITESPACE}]+$`, "g");

/** @param {string} text @param {number} size */
const group = (text, size) => text.match(new RegExp(`.{1,${size}}`, "g"))?.join(" ") ?? "";

/**
 * The fingerprint of a device signing key: hex(SHA-256(frame(DS, key))[0:16]) in groups of four.
 * @param {Uint8Array} signingPublicKey
 * @returns {Promise<string>}
 */
export async function fingerprint(signingPublicKey) {
  const digest = await sha256(frame(DS_FINGERPRINT, signingPublicKey));
  return group(toHex(digest.subarray(0, 16)), 4);
}

/**
 * The 30-digit half of a safety number that belongs to one member.
 * @param {string} member
 * @param {Iterable<Uint8Array>} deviceKeys
 * @returns {Promise<string>}
 */
export async function memberCode(member, deviceKeys) {
  const distinct = new Map([...deviceKeys].map((k) => [toHex(k), k]));
  const keys = [...distinct.values()].sort(compareBytes);
  if (!keys.length) throw malformed(`member ${member} has no device keys`);
  const seed = frame(DS_SAFETY, utf8(member), ...keys);
  let digest = seed;
  for (let i = 0; i < SAFETY_ITERATIONS; i++) digest = await sha512(concatBytes(digest, seed));
  let code = "";
  for (let i = 0; i < 30; i += 5) {
    // 40-bit big-endian integer: exact in a JS number (below 2^53).
    const value = digest.subarray(i, i + 5).reduce((n, byte) => n * 256 + byte, 0);
    code += String(value % 100000).padStart(5, "0");
  }
  return code;
}

/**
 * 60 digits in 12 groups of 5; the same whichever member computes it.
 * @param {string} memberA
 * @param {Iterable<Uint8Array>} keysA
 * @param {string} memberB
 * @param {Iterable<Uint8Array>} keysB
 * @returns {Promise<string>}
 */
export async function safetyNumber(memberA, keysA, memberB, keysB) {
  const codes = [await memberCode(memberA, keysA), await memberCode(memberB, keysB)].sort();
  return group(codes.join(""), 5);
}

/**
 * Accept what a person types (spaces, dashes) and return the canonical grouped form.
 * @param {string} text
 * @returns {string}
 */
export function normalizeSafetyNumber(text) {
  const stripped = text.replace(PY_STRIP_RE, "");
  const digits = stripped.replace(/[ -]/g, "");
  if (!/^[0-9]{60}$/.test(digits)) throw malformed("a safety number is 60 digits");
  return group(digits, 5);
}
