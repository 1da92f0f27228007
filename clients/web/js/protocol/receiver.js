// The receiver state machine: each message accepted once, in a stream whose gaps are never silent (PROTOCOL.md §7).
//
// Theory of operation (the same rules as hotline/protocol/receiver.py, so a desk's state can move
// between the CLI and the browser): a sender device numbers the messages it sends to each recipient
// member 1, 2, 3, … (header.seq). For every sender device this state keeps the highest number accepted
// and the ranges below it not yet seen (gaps), and the message ids it accepted from that sender (per
// sender, so a co-recipient who copies another sender's id cannot make the real message look like a
// duplicate). Each arrival, identified by (sender device, seq, message id), gives exactly one outcome,
// tested in this order:
//   1. message id accepted before from this sender → Duplicate; nothing accepted
//   2. first from this sender, non-strict start → Accepted; seq becomes the baseline
//   3. seq = high + 1                           → Accepted
//   4. seq > high + 1                           → GapDetected(high+1 … seq−1), then Accepted
//   5. seq inside a remembered gap              → Accepted with filledGap (a late or resent message)
//   6. anything else (≤ high, not missing)      → Replay; nothing accepted
// So no (sender device, message id) and no (sender device, seq) is ever accepted twice, and every
// skipped number is reported once. Feed only messages that passed openEnvelope. No I/O, no clock: persist toJson().

import { compareCodePoints } from "./json.js";

/** @typedef {import("./model.js").DeviceAddress} DeviceAddress */

/**
 * @typedef {{type: "Accepted", sender: DeviceAddress, seq: number, messageId: string, filledGap: boolean}
 *   | {type: "GapDetected", sender: DeviceAddress, first: number, last: number}
 *   | {type: "Duplicate", sender: DeviceAddress, seq: number, messageId: string}
 *   | {type: "Replay", sender: DeviceAddress, seq: number, messageId: string}} ReceiverEvent
 */

/**
 * @typedef {{sender: DeviceAddress, high: number | null, missing: Array<[number, number]>, ids: Set<string>}} Stream
 */

const streamKey = (/** @type {DeviceAddress} */ a) => `${a.member}/${a.device}`;

/** Remove `seq` from the sorted, disjoint, inclusive ranges; true if it was there. */
function takeMissing(/** @type {Array<[number, number]>} */ missing, /** @type {number} */ seq) {
  const i = missing.findIndex(([lo, hi]) => lo <= seq && seq <= hi);
  if (i < 0) return false;
  const [lo, hi] = missing[i];
  /** @type {Array<[number, number]>} */
  const parts = [];
  if (lo < seq) parts.push([lo, seq - 1]);
  if (seq < hi) parts.push([seq + 1, hi]);
  missing.splice(i, 1, ...parts);
  return true;
}

export class ReceiverState {
  /** @param {{strictStart?: boolean}} [options] strictStart=false for a device enrolled after its member's first */
  constructor({ strictStart = true } = {}) {
    this.strictStart = strictStart;
    /** @type {Map<string, Stream>} */
    this.streams = new Map();
  }

  /**
   * Feed one message; the events say whether to hand it to the application.
   * @param {DeviceAddress} sender
   * @param {number} seq
   * @param {string} messageId
   * @returns {ReceiverEvent[]}
   */
  receive(sender, seq, messageId) {
    if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError("sequence numbers start at 1");
    let stream = this.streams.get(streamKey(sender));
    if (!stream) {
      stream = { sender, high: this.strictStart ? 0 : null, missing: [], ids: new Set() };
      this.streams.set(streamKey(sender), stream);
    }
    if (stream.ids.has(messageId)) return [{ type: "Duplicate", sender, seq, messageId }];
    /** @type {ReceiverEvent[]} */
    const events = [];
    let filledGap = false;
    if (stream.high === null || seq === stream.high + 1) {
      stream.high = seq;
    } else if (seq > stream.high + 1) {
      events.push({ type: "GapDetected", sender, first: stream.high + 1, last: seq - 1 });
      stream.missing.push([stream.high + 1, seq - 1]);
      stream.high = seq;
    } else if (takeMissing(stream.missing, seq)) {
      filledGap = true;
    } else {
      return [{ type: "Replay", sender, seq, messageId }];
    }
    stream.ids.add(messageId);
    events.push({ type: "Accepted", sender, seq, messageId, filledGap });
    return events;
  }

  /** Ranges of sequence numbers from `sender` still missing (inclusive). @param {DeviceAddress} sender */
  missing(sender) {
    return (this.streams.get(streamKey(sender))?.missing ?? []).map(([lo, hi]) => [lo, hi]);
  }

  /** Every sender with open gaps and its missing ranges. */
  allMissing() {
    return [...this.streams.values()]
      .filter((s) => s.missing.length)
      .map((s) => ({ sender: s.sender, missing: s.missing.map(([lo, hi]) => [lo, hi]) }));
  }

  /** @param {DeviceAddress} sender @param {string} messageId */
  hasAccepted(sender, messageId) {
    return this.streams.get(streamKey(sender))?.ids.has(messageId) ?? false;
  }

  /** Plain data to persist between runs; the same shape as ReceiverState.to_json() in Python. */
  toJson() {
    // Python sorts by (member, device), comparing code points.
    const byAddress = (/** @type {Stream} */ a, /** @type {Stream} */ b) =>
      compareCodePoints(a.sender.member, b.sender.member) || compareCodePoints(a.sender.device, b.sender.device);
    return {
      strict_start: this.strictStart,
      streams: [...this.streams.values()].sort(byAddress).map((s) => ({
        member: s.sender.member,
        device: s.sender.device,
        high: s.high,
        missing: s.missing.map(([lo, hi]) => [lo, hi]),
        ids: [...s.ids].sort(compareCodePoints),
      })),
    };
  }

  /**
   * @param {{strict_start: boolean, streams: Array<{member: string, device: string, high: number | null,
   *          missing: Array<[number, number]>, ids: string[]}>}} obj
   */
  static fromJson(obj) {
    const state = new ReceiverState({ strictStart: Boolean(obj.strict_start) });
    for (const item of obj.streams) {
      const sender = Object.freeze({ member: item.member, device: item.device });
      /** @type {Array<[number, number]>} */
      const missing = item.missing.map(([lo, hi]) => [lo, hi]);
      state.streams.set(streamKey(sender), { sender, high: item.high, missing, ids: new Set(item.ids) });
    }
    return state;
  }
}
