// Precedence deadlines and message vocabulary: what the desk shows and counts down.
//
// Deadlines are relay policy (PROTOCOL.md §4.1). When the relay publishes a channel policy this client
// uses it; otherwise it falls back to allied message-handling practice: FLASH acknowledged within
// 10 minutes, IMMEDIATE 30 minutes, PRIORITY 3 hours, ROUTINE 6 hours.

const MIN = 60_000;

/** @type {Record<string, {ackMs: number | null, deliverMs: number}>} */
export const DEFAULT_DEADLINES = Object.freeze({
  FLASH: { ackMs: 10 * MIN, deliverMs: 1 * MIN },
  IMMEDIATE: { ackMs: 30 * MIN, deliverMs: 5 * MIN },
  PRIORITY: { ackMs: 180 * MIN, deliverMs: 30 * MIN },
  ROUTINE: { ackMs: 360 * MIN, deliverMs: 60 * MIN },
});

export const PRECEDENCES = ["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"];
export const SHORT_WORD_LIMIT = 200; // FLASH and IMMEDIATE are kept short

/** Names people read, for each intent. */
export const INTENT_LABELS = Object.freeze({
  clarification_request: "Clarification request",
  reassurance: "Reassurance",
  correction: "Correction",
  restraint_notice: "Restraint notice",
  pre_notification: "Pre-notification",
  proposal: "Proposal",
  free_text: "Free text",
  ack_reply: "Reply",
  link_test: "Link test",
  inject: "Exercise inject",
});

/** What compose offers, with a starting text for each (the sender edits it). */
export const COMPOSE_INTENTS = Object.freeze([
  { intent: "clarification_request", label: "Clarification request", starter: "Request clarification of: " },
  { intent: "reassurance", label: "Reassurance", starter: "We state that the following is not directed against you: " },
  { intent: "restraint_notice", label: "Restraint notice", starter: "We are exercising restraint: " },
  { intent: "correction", label: "Correction", starter: "Correction of a report: " },
  { intent: "pre_notification", label: "Pre-notification (missile test)", starter: "Pre-notification of a ballistic-missile test." },
  { intent: "proposal", label: "Proposal", starter: "We propose: " },
  { intent: "free_text", label: "Free text", starter: "" },
]);

/**
 * The channel's deadlines in its current mode, from the relay's policy view
 * ({"policy": {"normal"|"crisis": {"deadlines": {"FLASH": {"deliver_s", "ack_s"}}}}, "mode"}), else the
 * defaults. `ackMs` is null where the policy requires no acknowledgement.
 * @param {any} view
 * @param {"normal" | "crisis"} [mode] the mode to read; by default the view's own
 * @returns {Record<string, {ackMs: number | null, deliverMs: number}>}
 */
export function deadlinesFrom(view, mode) {
  /** @type {Record<string, {ackMs: number | null, deliverMs: number}>} */
  const out = { ...DEFAULT_DEADLINES };
  mode ??= view?.mode === "crisis" || view?.crisis?.on === true ? "crisis" : "normal";
  const table = view?.policy?.[mode]?.deadlines ?? view?.[mode]?.deadlines ?? view?.deadlines ?? null;
  if (!table || typeof table !== "object") return out;
  for (const p of PRECEDENCES) {
    const row = table[p];
    if (!row || typeof row !== "object") continue;
    const deliver = Number(row.deliver_s) * 1000;
    out[p] = {
      ackMs: row.ack_s === null ? null : Number.isFinite(row.ack_s) && row.ack_s > 0 ? row.ack_s * 1000 : out[p].ackMs,
      deliverMs: Number.isFinite(deliver) && deliver > 0 ? deliver : out[p].deliverMs,
    };
  }
  return out;
}

/** The word cap per precedence from the policy view (default: 200 for FLASH and IMMEDIATE). @param {any} view */
export function wordCapsFrom(view) {
  const caps = view?.policy?.word_caps;
  if (caps && typeof caps === "object") return /** @type {Record<string, number>} */ (caps);
  return { FLASH: SHORT_WORD_LIMIT, IMMEDIATE: SHORT_WORD_LIMIT };
}

/** "10 min", "3 h" @param {number | null} ms */
export function shortSpan(ms) {
  if (ms === null) return "no ack needed";
  if (ms % (60 * MIN) === 0) return `${ms / (60 * MIN)} h`;
  if (ms % MIN === 0) return `${ms / MIN} min`;
  return `${Math.round(ms / 1000)} s`;
}
