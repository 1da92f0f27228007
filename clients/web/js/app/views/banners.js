// The alert banners above every view: crisis mode, FLASH waiting for this desk, missed deadlines (with
// what is known about why: not delivered, delivered but silent, or refused), key changes, escalations.
// Banners are keyed, so a countdown ticking every second never steals keyboard focus from a button.

import { h, fill, reconcile, clock, countdown, duration } from "../dom.js";
import { INTENT_LABELS } from "../policy.js";
import { escalationBeep } from "../sound.js";

/**
 * @typedef {{key: string, level: "crisis" | "flash" | "danger" | "warning", title: string, text: string,
 *   action?: {label: string, run: () => void}, dismissible?: boolean}} Banner
 */

/** @param {import("../session.js").Session} session @param {number} now */
export function renderBanners(session, now) {
  const container = document.getElementById("banners");
  if (!container) return;
  const items = computeBanners(session, now).filter((b) => !session.dismissed.has(b.key));
  reconcile(container, items, (b) => b.key, (b) => createBanner(session, b), updateBanner);
}

/** @param {import("../session.js").Session} session @param {string} messageId */
function showMessage(session, messageId) {
  const target = `#p=${encodeURIComponent(session.desk.info.id)}&v=desk`;
  if (!location.hash.includes("v=desk")) location.hash = target;
  setTimeout(() => {
    const card = document.getElementById(`msg-${messageId}`);
    card?.scrollIntoView({ block: "center" });
    card?.focus();
  }, 80);
}

/** @param {import("../session.js").Session} session */
function toContacts(session) {
  location.hash = `#p=${encodeURIComponent(session.desk.info.id)}&v=contacts`;
}

/** @param {import("../session.js").Session} session @param {number} now @returns {Banner[]} */
export function computeBanners(session, now) {
  const st = session.state;
  if (!st) return [];
  const me = session.desk.info.member;
  /** @type {Banner[]} */
  const out = [];
  if (session.problem) out.push({ key: "problem", level: "warning", title: "Offline", text: session.problem, dismissible: true });
  const crisis = session.crisis();
  if (crisis?.on) {
    const since = crisis.since ? ` since ${clock(crisis.since)}` : "";
    const how = crisis.trigger && crisis.trigger !== "act" ? ` (switched on by the relay: ${crisis.trigger.replace(/_/g, " ")})` : crisis.by ? ` (declared by ${crisis.by})` : "";
    out.push({
      key: "crisis",
      level: "crisis",
      title: "CRISIS MODE",
      text: `This channel is in crisis mode${since}${how}. Deadlines are shorter; acknowledge every message.${crisis.reason ? ` Reason: ${crisis.reason}` : ""}`,
    });
  }
  if (session.desk.link.state === "refused") {
    out.push({
      key: "refused",
      level: "danger",
      title: "Refused by the relay",
      text: `The relay refuses this device: ${session.desk.link.detail}. It may have been revoked; ask the channel's administrator.`,
    });
  }
  for (const [id, m] of Object.entries(/** @type {Record<string, any>} */ (st.received))) {
    const due = session.ackDue(m);
    if (m.acknowledgedAtMs || m.withdrawn || m.intent === "link_test" || due === null) continue;
    const from = `${m.sender.member}/${m.sender.device}`;
    const what = INTENT_LABELS[/** @type {keyof typeof INTENT_LABELS} */ (m.intent)] ?? m.intent;
    if (now > due) {
      if (!session.alerted.has(`overdue:${id}`)) {
        session.alerted.add(`overdue:${id}`);
        escalationBeep();
      }
      out.push({
        key: `overdue-in:${id}`,
        level: "danger",
        title: `OVERDUE — ${m.precedence}`,
        text: `${what} from ${from} is not acknowledged; its deadline passed ${duration(now - due)} ago.`,
        action: { label: "Show message", run: () => showMessage(session, id) },
      });
    } else if (m.precedence === "FLASH") {
      out.push({
        key: `flash:${id}`,
        level: "flash",
        title: "FLASH",
        text: `${what} from ${from} — acknowledge within ${countdown(due - now)}.`,
        action: { label: "Show message", run: () => showMessage(session, id) },
      });
    }
  }
  for (const [id, s] of Object.entries(/** @type {Record<string, any>} */ (st.sent))) {
    const due = session.ackDue(s);
    if (s.intent === "link_test" || due === null) continue;
    if (now <= due) continue;
    /** @type {Record<string, any[]>} */
    const byMember = {};
    for (const [device, steps] of Object.entries(/** @type {Record<string, any>} */ (s.recipients))) {
      (byMember[device.split("/")[0]] ??= []).push(steps);
    }
    for (const [member, steps] of Object.entries(byMember)) {
      if (member === me || steps.some((x) => x.acknowledged)) continue;
      const rejected = steps.find((x) => x.rejected);
      const delivered = steps.find((x) => x.delivered);
      let state;
      if (rejected) state = `their device refused it (${rejected.reason}); send it again`;
      else if (delivered) state = `delivered at ${clock(delivered.delivered)} but not acknowledged — the desk is silent`;
      else state = "not delivered to any of their devices — the link to them may be down";
      if (!session.alerted.has(`overdue-out:${id}:${member}`)) {
        session.alerted.add(`overdue-out:${id}:${member}`);
        escalationBeep();
      }
      out.push({
        key: `overdue-out:${id}:${member}`,
        level: "danger",
        title: `NO ACKNOWLEDGEMENT — ${s.precedence}`,
        text: `Your message to ${member} (sent ${clock(s.createdAtMs)}): ${state}. Deadline passed ${duration(now - due)} ago.`,
        action: { label: "Show message", run: () => showMessage(session, id) },
      });
    }
  }
  for (const [member, pin] of Object.entries(/** @type {Record<string, any>} */ (st.pins))) {
    if (!pin.unacceptedChange) continue;
    out.push({
      key: `keychange:${member}`,
      level: "danger",
      title: "KEY CHANGE",
      text: `The keys of ${member} changed since you last checked them. Sending to ${member} is blocked until you compare safety numbers or accept the change.`,
      action: { label: "Open contacts", run: () => toContacts(session) },
    });
  }
  for (const n of st.notices ?? []) {
    if (n.kind !== "checkin-due") continue;
    const f = n.fields;
    if (!f.desks.includes(me) || st.checkinsAnswered?.[f.checkin] || now - f.due_ms > 24 * 3600_000) continue;
    const late = now > f.answer_by_ms;
    out.push({
      key: `checkin:${f.checkin}`,
      level: late ? "danger" : "warning",
      title: "CHECK-IN",
      text: late
        ? `The scheduled check-in of ${clock(f.due_ms)} is unanswered; it was due by ${clock(f.answer_by_ms)}. Answer now: it is recorded as late.`
        : `Scheduled check-in of ${clock(f.due_ms)}: answer by ${clock(f.answer_by_ms)} to show this desk is manned.`,
      action: {
        label: "Answer check-in",
        run: () => {
          session.desk.answerCheckin(f.checkin).catch((err) => console.warn("check-in:", err));
        },
      },
    });
  }
  /** @type {Map<string, any>} the newest escalation per message (or link, or check-in) and desk */
  const escalations = new Map();
  for (const n of st.notices ?? []) {
    if (n.kind !== "escalation" || now - n.atMs > 6 * 3600_000) continue;
    const f = n.fields ?? {};
    escalations.set(`${f.message_id ?? f.checkin ?? f.reason}:${f.desk}`, n);
  }
  for (const [key, n] of escalations) {
    const f = n.fields;
    if (f.message_id && resolved(st, f.message_id, f.desk)) continue;
    out.push({
      key: `escalation:${key}:${n.id}`,
      level: "danger",
      title: `ESCALATION${f.attempt > 1 ? ` ×${f.attempt}` : ""}`,
      text: `${escalationText(f)} (signed by the relay at ${clock(n.atMs)})`,
      action: f.message_id && (st.sent[f.message_id] || st.received[f.message_id]) ? { label: "Show message", run: () => showMessage(session, f.message_id) } : undefined,
      dismissible: true,
    });
  }
  const order = { crisis: 0, flash: 1, danger: 2, warning: 3 };
  return out.sort((a, b) => order[a.level] - order[b.level]);
}

/** @param {import("../session.js").Session} session @param {Banner} b */
function createBanner(session, b) {
  // Not a live region: its countdown changes every second. Each alert is announced once, when it
  // arrives, through the page's assertive announcer (session.js).
  const el = h("div", { class: ["banner", `banner-${b.level}`], "data-level": b.level });
  el.append(
    h("strong", { class: "banner-title" }),
    h("span", { class: "banner-text" }),
    h("span", { class: "banner-actions" }),
  );
  const actions = /** @type {HTMLElement} */ (el.querySelector(".banner-actions"));
  if (b.action) {
    const action = b.action;
    actions.append(h("button", { type: "button", class: "button small", onclick: () => action.run() }, action.label));
  }
  if (b.dismissible) {
    actions.append(
      h(
        "button",
        {
          type: "button",
          class: "button ghost small",
          "aria-label": `Dismiss: ${b.title}`,
          onclick: () => {
            session.dismissed.add(b.key);
            el.remove();
          },
        },
        "Dismiss",
      ),
    );
  }
  return el;
}

/** @param {HTMLElement} el @param {Banner} b */
function updateBanner(el, b) {
  const title = /** @type {HTMLElement} */ (el.querySelector(".banner-title"));
  const text = /** @type {HTMLElement} */ (el.querySelector(".banner-text"));
  if (title.textContent !== b.title) fill(title, b.title);
  if (text.textContent !== b.text) fill(text, b.text);
}

/** Whether a message an escalation is about has since been answered by that desk. @param {any} st @param {string} id @param {string} desk */
function resolved(st, id, desk) {
  const sent = st.sent[id];
  if (sent) return Object.entries(sent.recipients).some(([device, steps]) => device.startsWith(`${desk}/`) && /** @type {any} */ (steps).acknowledged);
  const received = st.received[id];
  return Boolean(received?.acknowledgedAtMs);
}

/** An escalation notice in plain words. @param {any} f */
export function escalationText(f) {
  const what = f.precedence ? `${f.sender ?? "a"}'s ${f.precedence} message` : "a message";
  const deadline = f.deadline_ms ? ` (deadline ${clock(f.deadline_ms)})` : "";
  switch (f.reason) {
    case "ack_overdue":
      return `${f.desk} has not acknowledged ${what}${deadline}: delivered, but the desk is ${f.state === "declined" ? "declining" : "silent"}.`;
    case "delivery_overdue":
      return `${what} has not reached any device of ${f.desk}${deadline}: the link to ${f.desk} may be down.`;
    case "link_test_missed":
      return `A link test to ${f.desk} went unanswered: the relay cannot reach its devices (link down).`;
    case "checkin_missed":
      return `${f.desk} missed the scheduled check-in ${f.checkin ?? ""}.`;
    default:
      return `${f.desk}: ${f.reason}`;
  }
}
