// What this relay offers beyond the core API, found out by asking rather than assumed.
//
// Deadlines and escalation, link tests, crisis mode and the exercise engine come with newer relays. The
// client asks for each once (and again now and then); a relay without one answers 404 and the matching
// part of the page stays quiet — it never shows made-up data. Shapes are read defensively.
//   GET …/policy   {"policy": {"normal"|"crisis": {"deadlines": …}, "word_caps"}, "crisis": {…}, "mode"}
//   GET …/link     {"directions": [{"from", "to", "state", …}], "desks": [{"desk", "link", "silent", …}]}
//   GET …/exercise the exercise engine's state (a later relay)

import { isMissingEndpoint } from "./api.js";

/**
 * @typedef {object} Features
 * @property {any} policy the channel's policy view, or null
 * @property {any} links the relay's view of each link direction, or null
 * @property {any} exercise exercise state, or null
 * @property {boolean} exerciseEngine whether the relay has an exercise endpoint at all
 */

/**
 * GET a channel path; null when the relay does not have it (or refuses this role).
 * @param {import("./desk.js").Desk} desk
 * @param {string} suffix
 */
export async function optional(desk, suffix) {
  try {
    return await desk.call("GET", suffix);
  } catch (err) {
    if (isMissingEndpoint(err)) return null;
    if (err && typeof err === "object" && "code" in err && err.code === "forbidden") return null;
    throw err;
  }
}

/** @param {import("./desk.js").Desk} desk @returns {Promise<Features>} */
export async function detectFeatures(desk) {
  const quiet = (/** @type {string} */ suffix) => optional(desk, suffix).catch(() => null);
  const [policy, links, exercise] = await Promise.all([quiet("/policy"), quiet("/link"), quiet("/exercise")]);
  return { policy, links, exercise, exerciseEngine: exercise !== null };
}

/**
 * Crisis mode: the newest of what the relay's policy view says and what its signed notices said.
 * @param {any} policyView
 * @param {any} fromNotices the profile's state.crisis
 * @returns {{on: boolean, epoch: number, since: number | null, by: string | null, trigger: string | null,
 *            reason: string | null} | null}
 */
export function crisisFrom(policyView, fromNotices) {
  const c = policyView?.crisis;
  const viewed = c && typeof c === "object"
    ? { on: Boolean(c.on), epoch: Number(c.epoch) || 0, since: c.since_ms ?? null, by: c.by ?? null, trigger: c.trigger ?? null, reason: null }
    : null;
  if (!fromNotices) return viewed;
  if (!viewed || fromNotices.epoch >= viewed.epoch) return fromNotices;
  return viewed;
}
