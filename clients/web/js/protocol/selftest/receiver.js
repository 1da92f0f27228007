// Self-test suite: the receiver state machine on scripted arrivals (the Python test compares them with Python's).

import { ReceiverState } from "../receiver.js";
import { addressToString, parseAddress } from "../model.js";
import { Cases, assertEqual } from "./support.js";

/** Events as plain data with Python's field names, for comparison with ReceiverState.receive in Python. */
function plainEvent(/** @type {import("../receiver.js").ReceiverEvent} */ e) {
  const sender = addressToString(e.sender);
  if (e.type === "GapDetected") return { type: e.type, sender, first: e.first, last: e.last };
  if (e.type === "Accepted") {
    return { type: e.type, sender, seq: e.seq, message_id: e.messageId, filled_gap: e.filledGap };
  }
  return { type: e.type, sender, seq: e.seq, message_id: e.messageId };
}

/**
 * Run each script on a fresh state; return the events of every arrival and the final persisted state.
 * @param {Array<{strict_start: boolean, messages: Array<{sender: string, seq: number, id: string}>}>} scripts
 */
export function runReceiverScripts(scripts) {
  return scripts.map((script) => {
    const state = new ReceiverState({ strictStart: script.strict_start });
    const events = script.messages.map((m) => state.receive(parseAddress(m.sender), m.seq, m.id).map(plainEvent));
    const saved = state.toJson();
    const restored = ReceiverState.fromJson(JSON.parse(JSON.stringify(saved))).toJson();
    return { events, state: saved, restored_equal: JSON.stringify(saved) === JSON.stringify(restored) };
  });
}

/** Built-in expectations (the same rules as PROTOCOL.md §7), independent of Python. */
export async function receiverSuite() {
  const cases = new Cases();
  const a = parseAddress("delhi/laptop");
  const types = (/** @type {any[]} */ events) => events.map((e) => e.type);
  await cases.check("in order, then a gap, then the gap filled, then a replay and a duplicate", () => {
    const s = new ReceiverState();
    assertEqual(types(s.receive(a, 1, "id-1")), ["Accepted"], "first");
    assertEqual(s.receive(a, 4, "id-4"), [
      { type: "GapDetected", sender: a, first: 2, last: 3 },
      { type: "Accepted", sender: a, seq: 4, messageId: "id-4", filledGap: false },
    ], "gap 2-3");
    assertEqual(s.missing(a), [[2, 3]], "missing");
    assertEqual(s.receive(a, 3, "id-3")[0].filledGap, true, "late 3 fills");
    assertEqual(s.missing(a), [[2, 2]], "still missing");
    assertEqual(types(s.receive(a, 3, "id-3b")), ["Replay"], "3 again with a new id");
    assertEqual(types(s.receive(a, 9, "id-1")), ["Duplicate"], "an accepted id again");
    assertEqual(s.hasAccepted(a, "id-3b"), false, "replay not accepted");
    const other = parseAddress("washington/desk");
    assertEqual(types(s.receive(other, 1, "id-1")), ["Accepted"], "another sender's copy of an id is not a duplicate");
  });
  await cases.check("strict start reports a gap before the first message; non-strict takes a baseline", () => {
    assertEqual(types(new ReceiverState().receive(a, 3, "x")), ["GapDetected", "Accepted"], "strict");
    const late = new ReceiverState({ strictStart: false });
    assertEqual(types(late.receive(a, 3, "x")), ["Accepted"], "baseline");
    assertEqual(types(late.receive(a, 2, "y")), ["Replay"], "below the baseline");
  });
  await cases.check("sequence numbers start at 1", () => {
    let refused = false;
    try {
      new ReceiverState().receive(a, 0, "z");
    } catch (err) {
      refused = err instanceof RangeError;
    }
    assertEqual(refused, true, "seq 0 refused");
  });
  return cases.results;
}
