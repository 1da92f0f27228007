// Message identifiers: UUIDv7 (RFC 9562) from a caller-supplied time and random source (PROTOCOL.md §1.7).

/**
 * A UUIDv7 string: 48-bit Unix milliseconds, version 7, 74 random bits, RFC 9562 variant.
 * Exactly one draw of 10 bytes from `rng`, as hotline/protocol/ids.py does, so seeded tests agree.
 * @param {number} nowMs
 * @param {(n: number) => Uint8Array} rng
 * @returns {string}
 */
export function uuid7(nowMs, rng) {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0 || nowMs >= 2 ** 48) {
    throw new RangeError("timestamp out of range for UUIDv7");
  }
  const rand = rng(10).reduce((n, byte) => (n << 8n) | BigInt(byte), 0n);
  const randA = (rand >> 68n) & 0xfffn;
  const randB = rand & ((1n << 62n) - 1n);
  const value = (BigInt(nowMs) << 80n) | (0x7n << 76n) | (randA << 64n) | (0b10n << 62n) | randB;
  const h = value.toString(16).padStart(32, "0");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The millisecond timestamp inside a UUIDv7.
 * @param {string} value
 * @returns {number}
 */
export function uuid7TimeMs(value) {
  return parseInt(value.replace(/-/g, "").slice(0, 12), 16);
}
