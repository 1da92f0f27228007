// scrypt (RFC 7914), which WebCrypto lacks, for passphrase-sealed key files (PROTOCOL.md §3.4).
//
// PBKDF2-HMAC-SHA256 comes from WebCrypto; the memory-hard part (ROMix over BlockMix over Salsa20/8) is
// written here from RFC 7914 §3–§5. It runs on the page's thread: N = 2^15, r = 8 (what writers use)
// takes a fraction of a second and 32 MiB.

import { pbkdf2Sha256 } from "./crypto.js";

/**
 * Salsa20/8 core (RFC 7914 §3) on 16 words of `b` at `at`, in place. Unrolled on local variables
 * because this runs about a million times per key file: a double round is a column round
 * (quarter-rounds on 0,4,8,12 / 5,9,13,1 / 10,14,2,6 / 15,3,7,11) then a row round (0,1,2,3 /
 * 5,6,7,4 / 10,11,8,9 / 15,12,13,14); each quarter-round (a,b,c,d) is
 * b ^= (a+d) <<< 7; c ^= (b+a) <<< 9; d ^= (c+b) <<< 13; a ^= (d+c) <<< 18.
 * @param {Uint32Array} b
 */
function salsa208(b) {
  let x0 = b[0], x1 = b[1], x2 = b[2], x3 = b[3], x4 = b[4], x5 = b[5], x6 = b[6], x7 = b[7];
  let x8 = b[8], x9 = b[9], x10 = b[10], x11 = b[11], x12 = b[12], x13 = b[13], x14 = b[14], x15 = b[15];
  let t;
  for (let round = 0; round < 8; round += 2) {
    // Column round.
    t = (x0 + x12) | 0; x4 ^= (t << 7) | (t >>> 25);
    t = (x4 + x0) | 0; x8 ^= (t << 9) | (t >>> 23);
    t = (x8 + x4) | 0; x12 ^= (t << 13) | (t >>> 19);
    t = (x12 + x8) | 0; x0 ^= (t << 18) | (t >>> 14);
    t = (x5 + x1) | 0; x9 ^= (t << 7) | (t >>> 25);
    t = (x9 + x5) | 0; x13 ^= (t << 9) | (t >>> 23);
    t = (x13 + x9) | 0; x1 ^= (t << 13) | (t >>> 19);
    t = (x1 + x13) | 0; x5 ^= (t << 18) | (t >>> 14);
    t = (x10 + x6) | 0; x14 ^= (t << 7) | (t >>> 25);
    t = (x14 + x10) | 0; x2 ^= (t << 9) | (t >>> 23);
    t = (x2 + x14) | 0; x6 ^= (t << 13) | (t >>> 19);
    t = (x6 + x2) | 0; x10 ^= (t << 18) | (t >>> 14);
    t = (x15 + x11) | 0; x3 ^= (t << 7) | (t >>> 25);
    t = (x3 + x15) | 0; x7 ^= (t << 9) | (t >>> 23);
    t = (x7 + x3) | 0; x11 ^= (t << 13) | (t >>> 19);
    t = (x11 + x7) | 0; x15 ^= (t << 18) | (t >>> 14);
    // Row round.
    t = (x0 + x3) | 0; x1 ^= (t << 7) | (t >>> 25);
    t = (x1 + x0) | 0; x2 ^= (t << 9) | (t >>> 23);
    t = (x2 + x1) | 0; x3 ^= (t << 13) | (t >>> 19);
    t = (x3 + x2) | 0; x0 ^= (t << 18) | (t >>> 14);
    t = (x5 + x4) | 0; x6 ^= (t << 7) | (t >>> 25);
    t = (x6 + x5) | 0; x7 ^= (t << 9) | (t >>> 23);
    t = (x7 + x6) | 0; x4 ^= (t << 13) | (t >>> 19);
    t = (x4 + x7) | 0; x5 ^= (t << 18) | (t >>> 14);
    t = (x10 + x9) | 0; x11 ^= (t << 7) | (t >>> 25);
    t = (x11 + x10) | 0; x8 ^= (t << 9) | (t >>> 23);
    t = (x8 + x11) | 0; x9 ^= (t << 13) | (t >>> 19);
    t = (x9 + x8) | 0; x10 ^= (t << 18) | (t >>> 14);
    t = (x15 + x14) | 0; x12 ^= (t << 7) | (t >>> 25);
    t = (x12 + x15) | 0; x13 ^= (t << 9) | (t >>> 23);
    t = (x13 + x12) | 0; x14 ^= (t << 13) | (t >>> 19);
    t = (x14 + x13) | 0; x15 ^= (t << 18) | (t >>> 14);
  }
  const words = [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15];
  for (let i = 0; i < 16; i++) b[i] = (b[i] + words[i]) | 0;
}

/**
 * scryptBlockMix (RFC 7914 §4): `block` holds 2r 64-byte blocks as words; the result goes to `out`,
 * even-numbered outputs first, then odd-numbered ones.
 * @param {Uint32Array} block
 * @param {Uint32Array} out
 * @param {number} r
 * @param {Uint32Array} x 16 words of scratch space
 */
function blockMix(block, out, r, x) {
  x.set(block.subarray((2 * r - 1) * 16, 2 * r * 16));
  for (let i = 0; i < 2 * r; i++) {
    for (let k = 0; k < 16; k++) x[k] ^= block[i * 16 + k];
    salsa208(x);
    out.set(x, ((i >> 1) + (i & 1) * r) * 16);
  }
}

/**
 * scryptROMix (RFC 7914 §5) on one 128·r-byte block, in place.
 * @param {Uint32Array} block
 * @param {number} n
 * @param {number} r
 */
function roMix(block, n, r) {
  const words = 32 * r;
  const v = new Uint32Array(n * words);
  const x = new Uint32Array(words);
  const y = new Uint32Array(words);
  const scratch = new Uint32Array(16);
  x.set(block);
  for (let i = 0; i < n; i++) {
    v.set(x, i * words);
    blockMix(x, y, r, scratch);
    x.set(y);
  }
  for (let i = 0; i < n; i++) {
    // Integerify: the first word of the last 64-byte block; n is a power of two below 2^32.
    const j = x[(2 * r - 1) * 16] & (n - 1);
    for (let k = 0; k < words; k++) x[k] ^= v[j * words + k];
    blockMix(x, y, r, scratch);
    x.set(y);
  }
  block.set(x);
}

/** Byte arrays as little-endian 32-bit words and back (scrypt is defined little-endian). */
function toWords(/** @type {Uint8Array} */ bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint32Array.from({ length: bytes.length / 4 }, (_, i) => view.getUint32(i * 4, true));
}
function toBytes(/** @type {Uint32Array} */ words) {
  const out = new Uint8Array(words.length * 4);
  const view = new DataView(out.buffer);
  words.forEach((w, i) => view.setUint32(i * 4, w, true));
  return out;
}

/**
 * scrypt(P, S, N, r, p, dkLen) of RFC 7914 §6.
 * @param {Uint8Array} password
 * @param {Uint8Array} salt
 * @param {{n: number, r: number, p: number, dkLen?: number}} params n a power of two
 * @returns {Promise<Uint8Array>}
 */
export async function scrypt(password, salt, { n, r, p, dkLen = 32 }) {
  if (n < 2 || (n & (n - 1)) !== 0 || r < 1 || p < 1) throw new RangeError("bad scrypt parameters");
  const blockBytes = 128 * r;
  const b = await pbkdf2Sha256(password, salt, 1, p * blockBytes);
  for (let i = 0; i < p; i++) {
    const words = toWords(b.subarray(i * blockBytes, (i + 1) * blockBytes));
    roMix(words, n, r);
    b.set(toBytes(words), i * blockBytes);
  }
  return pbkdf2Sha256(password, b, 1, dkLen);
}
