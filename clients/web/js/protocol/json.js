// Strict JSON (docs/PROTOCOL.md §1.2): a small parser that refuses what Python's strict loader refuses, and the
// sorted compact serializer Python uses for the bytes it signs.
//
// JSON.parse cannot be used to parse: it keeps the last of two duplicate keys (so "precedence" could
// read ROUTINE in one implementation and FLASH in another), it turns 1.0 and 1e0 into the integer 1
// (Python keeps them floats, which every integer field refuses), and it rounds integers beyond 2^53.
// This parser keeps those distinctions:
//   * objects are null-prototype objects (a key "__proto__" is just a key), duplicates are refused;
//   * integer literals are numbers when exact, BigInt otherwise (so range checks refuse them honestly);
//   * literals with a fraction or exponent are JsonFloat, never mistaken for integers;
//   * NaN/Infinity, a byte-order mark, control characters and lone surrogates in strings, and trailing
//     data are refused.

import { malformed, tooLarge } from "./errors.js";
import { utf8, utf8Decode } from "./utf8.js";

/** Nesting deeper than this is refused. Python refuses at about 1000 (its recursion limit); no valid
 *  hotline document nests deeper than 4, and PROTOCOL.md does not fix a limit. */
export const MAX_DEPTH = 512;

/** Python refuses integer literals with more digits than this (sys.int_info.default_max_str_digits). */
const PY_MAX_INT_DIGITS = 4300;

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/** A JSON number written with a fraction or exponent: a value no integer field accepts. */
export class JsonFloat {
  /** @param {number} value */
  constructor(value) {
    this.value = value;
    Object.freeze(this);
  }
}

/**
 * True for a parsed JSON object (or a plain object built by a caller), false for arrays and the rest.
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
export function isJsonObject(value) {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype;
}

class Parser {
  /** @param {string} text */
  constructor(text) {
    this.text = text;
    this.at = 0;
  }

  fail(reason = "not valid JSON") {
    return malformed(reason);
  }

  skipWhitespace() {
    const t = this.text;
    while (this.at < t.length) {
      const c = t.charCodeAt(this.at);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.at++;
    }
  }

  /** @param {number} depth */
  value(depth) {
    this.skipWhitespace();
    const c = this.text[this.at];
    if (c === "{") return this.object(depth + 1);
    if (c === "[") return this.array(depth + 1);
    if (c === '"') return this.string();
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return result;
      }
    }
    throw this.fail();
  }

  /** @param {number} depth */
  object(depth) {
    if (depth > MAX_DEPTH) throw this.fail(`JSON nested deeper than ${MAX_DEPTH}`);
    this.at++; // "{"
    const out = Object.create(null);
    this.skipWhitespace();
    if (this.text[this.at] === "}") {
      this.at++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.at] !== '"') throw this.fail();
      const key = this.string();
      this.skipWhitespace();
      if (this.text[this.at++] !== ":") throw this.fail();
      const item = this.value(depth);
      if (Object.hasOwn(out, key)) throw this.fail(`duplicate JSON key ${JSON.stringify(key)}`);
      out[key] = item;
      this.skipWhitespace();
      const next = this.text[this.at++];
      if (next === "}") return out;
      if (next !== ",") throw this.fail();
    }
  }

  /** @param {number} depth */
  array(depth) {
    if (depth > MAX_DEPTH) throw this.fail(`JSON nested deeper than ${MAX_DEPTH}`);
    this.at++; // "["
    const out = [];
    this.skipWhitespace();
    if (this.text[this.at] === "]") {
      this.at++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth));
      this.skipWhitespace();
      const next = this.text[this.at++];
      if (next === "]") return out;
      if (next !== ",") throw this.fail();
    }
  }

  string() {
    const t = this.text;
    this.at++; // opening quote
    let out = "";
    let runStart = this.at;
    for (;;) {
      if (this.at >= t.length) throw this.fail();
      const c = t.charCodeAt(this.at);
      if (c === 0x22 /* " */) {
        out += t.slice(runStart, this.at);
        this.at++;
        // An escaped lone surrogate ("\\ud800") is not Unicode and can never be re-encoded as UTF-8.
        if (!out.isWellFormed()) throw this.fail("a string is not valid Unicode (lone surrogate)");
        return out;
      }
      if (c < 0x20) throw this.fail("control character in a JSON string");
      if (c !== 0x5c /* \ */) {
        this.at++;
        continue;
      }
      out += t.slice(runStart, this.at);
      const esc = t[this.at + 1];
      if (esc === "u") {
        const hex = t.slice(this.at + 2, this.at + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw this.fail();
        // Surrogate pairs written as two escapes become one code point by themselves in UTF-16.
        out += String.fromCharCode(parseInt(hex, 16));
        this.at += 6;
      } else if (esc !== undefined && Object.hasOwn(ESCAPES, esc)) {
        out += ESCAPES[esc];
        this.at += 2;
      } else {
        throw this.fail();
      }
      runStart = this.at;
    }
  }

  number() {
    NUMBER_RE.lastIndex = this.at;
    const match = NUMBER_RE.exec(this.text);
    if (!match) throw this.fail();
    const literal = match[0];
    this.at += literal.length;
    if (match[1] !== undefined || match[2] !== undefined) return new JsonFloat(Number(literal));
    const digits = literal.startsWith("-") ? literal.length - 1 : literal.length;
    if (digits > PY_MAX_INT_DIGITS) throw this.fail("integer literal too long");
    const value = Number(literal);
    if (Number.isSafeInteger(value)) return value === 0 ? 0 : value; // "-0" is the integer 0
    return BigInt(literal);
  }
}

/**
 * Parse one strict JSON value from text.
 * @param {string} text
 * @returns {unknown}
 */
export function parseJson(text) {
  const parser = new Parser(text);
  const value = parser.value(0);
  parser.skipWhitespace();
  if (parser.at !== text.length) throw parser.fail();
  return value;
}

/**
 * Parse bytes as one strict JSON object, after checking the size and the UTF-8 encoding.
 * @param {Uint8Array} data
 * @param {{what: string, maxBytes: number}} options
 * @returns {Record<string, unknown>}
 */
export function loadJsonObject(data, { what, maxBytes }) {
  if (data.length > maxBytes) {
    throw tooLarge(`${what}: ${data.length} bytes is over the limit of ${maxBytes}`);
  }
  const text = utf8Decode(data, what);
  let value;
  try {
    value = parseJson(text);
  } catch (err) {
    if (err instanceof RangeError) throw malformed(`${what}: not valid JSON`); // stack exhausted
    throw malformed(`${what}: ${err.message}`);
  }
  if (!isJsonObject(value)) throw malformed(`${what}: expected a JSON object`);
  return value;
}

/**
 * Order strings by Unicode code point, as Python sorts str (JS's default sort uses UTF-16 units,
 * which differs once characters beyond U+FFFF are compared with U+E000…U+FFFF).
 * @param {string} a
 * @param {string} b
 */
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = /** @type {number} */ (a.codePointAt(i));
    const y = /** @type {number} */ (b.codePointAt(i));
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

/** @param {unknown} value @returns {string} */
function serialize(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return JSON.stringify(value); // same escapes as Python's ensure_ascii=False
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") {
    // hotline never signs a non-integer number; refusing them avoids float formatting differences.
    if (!Number.isSafeInteger(value)) throw malformed("only integers up to 2^53-1 can be serialized");
    return String(value === 0 ? 0 : value);
  }
  if (Array.isArray(value)) return `[${value.map(serialize).join(",")}]`;
  if (isJsonObject(value)) {
    const keys = Object.keys(value).sort(compareCodePoints);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${serialize(value[k])}`).join(",")}}`;
  }
  throw malformed(`cannot serialize a ${typeof value} as JSON`);
}

/**
 * Serialize as compact UTF-8 JSON with sorted keys — byte for byte what Python's
 * json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) gives for the same data.
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function dumpJson(value) {
  return utf8(serialize(value));
}
