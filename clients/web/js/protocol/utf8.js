// Strict UTF-8 conversion and code-point counting, matching Python's str/bytes semantics.

import { malformed } from "./errors.js";

const textEncoder = new TextEncoder();
// fatal: refuse invalid UTF-8 (overlongs, surrogates, > U+10FFFF) as Python's strict decoder does.
// ignoreBOM: keep a leading U+FEFF in the text so the JSON parser refuses it, as Python's json does.
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Number of Unicode code points in `text` (what Python's len() counts), not UTF-16 units.
 * @param {string} text
 */
export function codePointLength(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    // A high surrogate followed by a low one is one code point; a lone surrogate counts as one too.
    if (unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) i++;
    n++;
  }
  return n;
}

/**
 * UTF-8 bytes of a string. A lone surrogate cannot be encoded (Python raises too); TextEncoder would
 * silently turn it into U+FFFD and so sign other text than the caller meant.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function utf8(text) {
  if (!text.isWellFormed()) throw malformed("text contains a lone surrogate and cannot be encoded");
  return textEncoder.encode(text);
}

/**
 * Strict UTF-8 decode; invalid UTF-8 is malformed.
 * @param {Uint8Array} bytes
 * @param {string} what
 * @returns {string}
 */
export function utf8Decode(bytes, what) {
  try {
    return textDecoder.decode(bytes);
  } catch {
    throw malformed(`${what}: not valid UTF-8`);
  }
}
