// The desk: the conversation with every message's precedence, intent and ladder, acknowledging with an
// optional reply, composing with precedence and intent templates, deadlines counting down, and the state
// of the link in each direction. Everything shown comes from the profile state the Desk saved; the
// countdowns tick every second without rebuilding anything.

import { h, fill, append, reconcile, clock, countdown, duration, announce } from "../dom.js";
import { describe, KeyChangeError } from "../desk.js";
import { RelayUnreachable } from "../api.js";
import { COMPOSE_INTENTS, INTENT_LABELS, PRECEDENCES, SHORT_WORD_LIMIT, shortSpan } from "../policy.js";
import { missileTestNoticeOk, wordCount } from "../../protocol/index.js";

const DAY_MS = 24 * 3600_000;

/** @param {string} intent */
const intentLabel = (intent) => INTENT_LABELS[/** @type {keyof typeof INTENT_LABELS} */ (intent)] ?? intent;

/** @param {string} text @param {number} n */
const snippet = (text, n = 90) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

/**
 * @param {HTMLElement} root
 * @param {import("../session.js").Session} session
 */
export function deskView(root, session) {
  const desk = session.desk;
  const me = desk.info.member;

  // --- side panel: link, open items, alarms -------------------------------------------------------
  const linkList = h("dl", { class: "link-status", id: "link-status" });
  const openList = h("dl", { class: "facts compact", id: "open-items" });
  const alarmList = h("ol", { class: "alarms", id: "alarms", "aria-label": "Recent alarms" });
  const crisis = crisisCard(session);
  const side = h(
    "aside",
    { class: "desk-side", "aria-label": "Desk status" },
    h("section", { class: "card", "aria-labelledby": "link-h" }, h("h2", { id: "link-h" }, "Link"), linkList),
    h("section", { class: "card", "aria-labelledby": "open-h" }, h("h2", { id: "open-h" }, "Open items"), openList),
    h("section", { class: "card", "aria-labelledby": "alarms-h" }, h("h2", { id: "alarms-h" }, "Alarms"), alarmList),
    crisis.element,
  );

  // --- conversation --------------------------------------------------------------------------------
  const messages = h("ol", { class: "messages", id: "messages" });
  const empty = h("p", { class: "empty muted", id: "no-messages" }, "No messages yet. Messages you send and receive appear here with every step of their delivery.");
  const conversation = h(
    "section",
    { class: "card conversation", "aria-labelledby": "conv-h" },
    h("div", { class: "card-head" }, h("h2", { id: "conv-h" }, "Conversation"), h("span", { class: "muted small" }, "times in UTC")),
    empty,
    messages,
  );

  // --- compose -------------------------------------------------------------------------------------
  const compose = composeForm(session);

  fill(root, h("div", { class: "desk-layout" }, conversation, compose.element, side));

  let lastCount = -1;

  function update() {
    const st = session.state;
    if (!st) return;
    const items = conversationItems(st);
    empty.hidden = items.length > 0;
    const nearBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 120;
    reconcile(messages, items, (it) => `${it.kind}:${it.id}`, (it) => createCard(it), (el, it) => updateCard(el, it));
    if (items.length !== lastCount && (nearBottom || lastCount === -1)) messages.scrollTop = messages.scrollHeight;
    lastCount = items.length;
    renderSide(st);
    crisis.update();
    compose.update();
    tick(Date.now());
  }

  /** @param {number} now */
  function tick(now) {
    for (const el of root.querySelectorAll("[data-due]")) {
      const due = Number(/** @type {HTMLElement} */ (el).dataset.due);
      const label = /** @type {HTMLElement} */ (el).dataset.label ?? "";
      const left = due - now;
      const text = left >= 0 ? `${label} ${countdown(left)}` : `overdue by ${duration(-left)}`;
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("overdue", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 120_000);
    }
  }

  // --- cards ---------------------------------------------------------------------------------------

  /** @param {any} it */
  function createCard(it) {
    const d = it.data;
    const li = h("li", {
      class: ["msg", `msg-${it.kind}`, `prec-${d.precedence}`],
      id: `msg-${it.id}`,
      tabindex: "-1",
      "data-message-id": it.id,
      "data-kind": it.kind,
      "aria-labelledby": `msg-${it.id}-meta`,
    });
    if (it.kind === "refused") {
      append(li, [
        h(
          "div",
          { class: "msg-meta", id: `msg-${it.id}-meta` },
          h("span", { class: "badge badge-refused" }, "REFUSED"),
          h("span", { class: "who" }, d.unauthenticated ? `claims to be from ${d.sender}` : `from ${d.sender}`),
          h("time", null, clock(d.createdAtMs)),
        ),
        h("p", { class: "msg-refusal" }, refusedText(d)),
        h("div", { class: "msg-status" }),
      ]);
      return li;
    }
    const direction = it.kind === "received" ? `from ${d.sender.member}/${d.sender.device}` : `to ${(d.to ?? []).join(", ")}`;
    append(li, [
      h(
        "div",
        { class: "msg-meta", id: `msg-${it.id}-meta` },
        h("span", { class: ["badge", `badge-${d.precedence}`] }, d.precedence),
        h("span", { class: "intent" }, intentLabel(d.intent)),
        d.exercise ? h("span", { class: "badge badge-exercise" }, "EXERCISE") : null,
        h("span", { class: "who" }, direction),
        h("time", { datetime: new Date(d.createdAtMs).toISOString() }, clock(d.createdAtMs)),
      ),
      h("div", { class: "msg-context" }),
      h("p", { class: "msg-text", lang: d.lang ?? "en" }, d.text),
      fieldsBlock(d.fields ?? {}, d.createdAtMs),
      h("div", { class: "msg-status" }),
    ]);
    if (it.kind === "received" && !d.acknowledgedAtMs) li.append(ackForm(it.id, d));
    return li;
  }

  /** @param {HTMLElement} li @param {any} it */
  function updateCard(li, it) {
    const st = session.state;
    const d = it.data;
    const signature = JSON.stringify([it.kind, d.recipients, d.acknowledgedAtMs, d.replyId, d.withdrawn, d.acceptedAtMs, d.logIndex, it.pending, session.ackDue(d)]);
    if (li.dataset.sig === signature) return;
    li.dataset.sig = signature;
    const status = /** @type {HTMLElement} */ (li.querySelector(".msg-status"));
    const context = li.querySelector(".msg-context");
    if (it.kind === "sent") fill(status, ladder(d, it.pending));
    else if (it.kind === "received") {
      fill(status, receivedStatus(d));
      if (d.acknowledgedAtMs || d.withdrawn) li.querySelector(".ack-form")?.remove();
    }
    if (context && d.inReplyTo) {
      const original = st.sent[d.inReplyTo] ?? st.received[d.inReplyTo];
      fill(
        context,
        h(
          "p",
          { class: "in-reply" },
          original
            ? `Reply to ${st.sent[d.inReplyTo] ? "your" : "their"} ${original.precedence} ${intentLabel(original.intent).toLowerCase()} of ${clock(original.createdAtMs)}: “${snippet(original.text)}”`
            : `Reply to message ${d.inReplyTo}`,
        ),
      );
    }
  }

  /** The ladder of a sent message, one row per recipient device. @param {any} s @param {boolean} pending */
  function ladder(s, pending) {
    if (pending) {
      return h("p", { class: "step waiting", "data-step": "outbox" }, "Waiting to reach the relay — kept in the outbox and sent again automatically.");
    }
    const ackDue = session.ackDue(s);
    const rows = Object.entries(/** @type {Record<string, any>} */ (s.recipients)).map(([device, steps]) => {
      const delivered = steps.delivered
        ? h("span", { class: "step done", "data-step": "delivered" }, h("span", { class: "step-name" }, "Delivered"), ` ${clock(steps.delivered)}`, h("span", { class: "muted" }, ` +${duration(steps.delivered - s.createdAtMs)}`))
        : h("span", { class: "step waiting", "data-step": "delivered" }, h("span", { class: "step-name" }, "Delivered"), " waiting");
      let last;
      let replyLine = null;
      if (steps.rejected) {
        last = h(
          "span",
          { class: "step rejected", "data-step": "rejected" },
          h("span", { class: "step-name" }, "Rejected"),
          ` ${clock(steps.rejected)}: ${rejectReason(steps.reason)}`,
        );
      } else if (steps.acknowledged) {
        const reply = steps.replyId ? session.state.received[steps.replyId] : null;
        last = h(
          "span",
          { class: steps.declined ? "step declined" : "step done", "data-step": "acknowledged", "data-declined": steps.declined ? "true" : false },
          h("span", { class: "step-name" }, steps.declined ? "Declined (signed refusal)" : "Acknowledged"),
          ` ${clock(steps.acknowledged)}`,
          h("span", { class: "muted" }, ` +${duration(steps.acknowledged - s.createdAtMs)}`),
        );
        if (steps.replyId) replyLine = h("p", { class: "reply-line" }, reply ? `Reply: “${snippet(reply.text, 120)}”` : "Acknowledged with a reply (not received here yet).");
      } else {
        last = h(
          "span",
          { class: "step waiting", "data-step": "acknowledged" },
          h("span", { class: "step-name" }, "Acknowledged"),
          " ",
          ackDue === null
            ? h("span", { class: "muted" }, "not required")
            : h("span", { class: "countdown", "data-due": String(ackDue), "data-label": "due in" }),
        );
      }
      return h("li", { class: "ladder-row", "data-recipient": device }, h("span", { class: "ladder-who" }, device), delivered, last, replyLine);
    });
    return h(
      "div",
      { class: "ladder" },
      h(
        "p",
        { class: "step done", "data-step": "accepted" },
        h("span", { class: "step-name" }, "Accepted by the relay"),
        ` ${clock(s.acceptedAtMs)}`,
        h("span", { class: "muted" }, ` · log entry #${s.logIndex}`),
      ),
      rows.length ? h("ol", { class: "ladder-rows", "aria-label": "Delivery to each device" }, rows) : h("p", { class: "muted" }, "No recipient device outside your desk."),
    );
  }

  /** @param {any} m */
  function receivedStatus(m) {
    const parts = [h("span", { class: "step done", "data-step": "delivered" }, h("span", { class: "step-name" }, "Delivered here"), ` ${clock(m.deliveredAtMs)}`)];
    if (m.withdrawn) {
      parts.push(h("span", { class: "step rejected" }, h("span", { class: "step-name" }, "Withdrawn by the sender"), ` ${clock(m.withdrawn.atMs)}`));
    }
    if (m.acknowledgedAtMs) {
      const reply = m.replyId ? session.state.sent[m.replyId] : null;
      parts.push(
        h(
          "span",
          { class: m.declined ? "step declined" : "step done", "data-step": "acknowledged" },
          h("span", { class: "step-name" }, m.declined ? "You declined" : "You acknowledged"),
          ` ${clock(m.acknowledgedAtMs)}`,
          reply ? h("span", { class: "reply-note" }, ` · reply sent: “${snippet(reply.text, 60)}”`) : null,
        ),
      );
    } else if (!m.withdrawn) {
      const due = session.ackDue(m);
      parts.push(
        h(
          "span",
          { class: "step waiting", "data-step": "acknowledged" },
          h("span", { class: "step-name" }, "Acknowledge"),
          " ",
          due === null
            ? h("span", { class: "muted" }, "when read (no deadline)")
            : h("span", { class: "countdown", "data-due": String(due), "data-label": "within" }),
        ),
      );
    }
    return h("div", { class: "ladder" }, h("p", { class: "received-steps" }, parts));
  }

  /** @param {string} id @param {any} m */
  function ackForm(id, m) {
    const textarea = /** @type {HTMLTextAreaElement} */ (h("textarea", { id: `reply-${id}`, rows: 2, class: "reply-text", placeholder: "Optional reply, sent with the acknowledgement" }));
    const button = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: ["button", m.precedence === "FLASH" ? "flash" : "primary"], "data-action": "acknowledge" }, "Acknowledge"));
    const decline = /** @type {HTMLButtonElement} */ (
      h("button", { type: "button", class: "button ghost", "data-action": "decline", title: "Answer with a signed refusal: read, and declined" }, "Decline")
    );
    const status = h("p", { class: "form-status", role: "status" });
    textarea.addEventListener("input", () => {
      button.textContent = textarea.value.trim() ? "Acknowledge and reply" : "Acknowledge";
    });
    textarea.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    const form = h(
      "form",
      { class: "ack-form" },
      h("label", { for: `reply-${id}`, class: "small" }, "Reply (optional)"),
      textarea,
      h("div", { class: "row wrap" }, button, decline, status),
    );
    const answer = async (/** @type {boolean} */ declined) => {
      button.disabled = true;
      decline.disabled = true;
      status.className = "form-status";
      status.textContent = textarea.value.trim() ? "Sending the reply and the signed answer…" : "Signing the answer…";
      try {
        await desk.acknowledge(id, textarea.value, { declined });
        announce(declined ? "Declined" : "Acknowledged");
      } catch (err) {
        status.className = "form-status error";
        status.textContent = `Not sent: ${describe(err)}`;
        button.disabled = false;
        decline.disabled = false;
      }
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      answer(false);
    });
    decline.addEventListener("click", () => answer(true));
    return form;
  }

  // --- side panel ------------------------------------------------------------------------------------

  /** @param {any} st */
  function renderSide(st) {
    const now = Date.now();
    const others = (st.directory?.members ?? []).filter((/** @type {any} */ m) => m.member !== me && m.role !== "operator" && m.status === "active");
    const rows = [];
    const socket = desk.link.state;
    for (const m of others) {
      const sentTo = Object.values(/** @type {Record<string, any>} */ (st.sent)).filter((s) => Object.keys(s.recipients).some((k) => k.startsWith(`${m.member}/`)));
      let lastDelivered = 0;
      let oldestUndelivered = 0;
      let refusedCount = 0;
      for (const s of sentTo) {
        const steps = Object.entries(/** @type {Record<string, any>} */ (s.recipients)).filter(([k]) => k.startsWith(`${m.member}/`)).map(([, v]) => v);
        const delivered = Math.max(0, ...steps.map((x) => x.delivered ?? 0));
        if (steps.some((x) => x.rejected)) refusedCount++;
        if (delivered) lastDelivered = Math.max(lastDelivered, delivered);
        else if (!steps.some((x) => x.rejected) && (!oldestUndelivered || s.acceptedAtMs < oldestUndelivered)) oldestUndelivered = s.acceptedAtMs;
      }
      let outText;
      let outClass;
      if (oldestUndelivered && now - oldestUndelivered > session.deadlines.FLASH.deliverMs) {
        outText = `Not delivered for ${duration(now - oldestUndelivered)} — their devices may be offline (link down)`;
        outClass = "bad";
      } else if (oldestUndelivered) {
        outText = "Delivering…";
        outClass = "waiting";
      } else if (lastDelivered) {
        outText = `Working — last delivery ${clock(lastDelivered)}`;
        outClass = "good";
      } else {
        outText = "Nothing sent yet";
        outClass = "muted";
      }
      if (refusedCount) outText += ` · ${refusedCount} refused by their device`;
      const fromThem = Object.values(/** @type {Record<string, any>} */ (st.received)).filter((r) => r.sender.member === m.member);
      const lastIn = Math.max(0, ...fromThem.map((r) => r.acceptedAtMs));
      const inText =
        socket === "connected"
          ? `Listening live${lastIn ? ` — last message ${clock(lastIn)}` : ""}`
          : `Not connected to the relay (${socket}); their messages wait there`;
      rows.push(
        h("dt", null, `To ${m.member}`),
        h("dd", { class: `link-${outClass}`, "data-direction": `to:${m.member}` }, outText),
        h("dt", null, `From ${m.member}`),
        h("dd", { class: socket === "connected" ? "link-good" : "link-bad", "data-direction": `from:${m.member}` }, inText),
      );
    }
    const relayLinks = session.features.links;
    if (relayLinks && Array.isArray(relayLinks.directions)) {
      for (const d of relayLinks.directions) {
        if (d.from !== me && d.to !== me) continue;
        const state = { up: "up", down: "DOWN", unknown: "not tested yet" }[/** @type {"up" | "down" | "unknown"} */ (d.state)] ?? d.state;
        const detail = [
          d.last_success_ms ? `last answered ${clock(d.last_success_ms)}` : null,
          Number.isFinite(d.rtt_ms) ? `round trip ${duration(d.rtt_ms)}` : null,
          d.missed ? `${d.missed} missed` : null,
        ].filter(Boolean).join(" · ");
        rows.push(
          h("dt", null, `Link test ${d.from} → ${d.to}`),
          h("dd", { class: d.state === "down" ? "link-bad" : d.state === "up" ? "link-good" : "muted", "data-link-test": `${d.from}:${d.to}` }, `${state}${detail ? ` — ${detail}` : ""}`),
        );
      }
    }
    const tests = Object.values(/** @type {Record<string, any>} */ (st.received)).filter((r) => r.intent === "link_test");
    if (tests.length) {
      const last = tests.reduce((a, b) => (a.acceptedAtMs > b.acceptedAtMs ? a : b));
      rows.push(h("dt", null, "Link tests"), h("dd", null, `${tests.length} answered; last from ${last.sender.member} at ${clock(last.acceptedAtMs)}`));
    }
    if (st.treeHead?.size) {
      const peers = Object.entries(/** @type {Record<string, any>} */ (st.peerHeads ?? {}));
      const split = peers.some(([, p]) => p.status !== "consistent");
      rows.push(
        h("dt", null, "Relay's log"),
        h(
          "dd",
          { class: split ? "link-bad" : "link-good", id: "audit-status" },
          `${st.treeHead.size} entries verified ${clock(st.treeHead.atMs)}` +
            (peers.length ? (split ? " — SPLIT VIEW with " : " — same history as ") + peers.map(([who]) => who).join(", ") : ""),
        ),
      );
    }
    fill(linkList, rows.length ? rows : [h("dt", null, "Nobody to talk to"), h("dd", { class: "muted" }, "No other desk is enrolled yet.")]);

    const toAck = Object.values(/** @type {Record<string, any>} */ (st.received)).filter((r) => !r.acknowledgedAtMs && r.intent !== "link_test").length;
    const awaiting = Object.values(/** @type {Record<string, any>} */ (st.sent)).filter(
      (s) => s.intent !== "link_test" && Object.values(/** @type {Record<string, any>} */ (s.recipients)).some((x) => !x.acknowledged && !x.rejected),
    ).length;
    fill(
      openList,
      h("dt", null, "To acknowledge"),
      h("dd", { id: "count-to-ack", class: toAck ? "strong" : "" }, String(toAck)),
      h("dt", null, "Awaiting their acknowledgement"),
      h("dd", { id: "count-awaiting" }, String(awaiting)),
      h("dt", null, "Unsent (outbox)"),
      h("dd", { id: "count-outbox" }, String(Object.keys(st.outbox).length + Object.keys(st.receiptOutbox).length)),
    );
    const alarms = [...(st.alarms ?? [])].reverse().slice(0, 8);
    fill(
      alarmList,
      alarms.length
        ? alarms.map((a) => h("li", { class: `alarm alarm-${a.kind}` }, h("time", null, clock(a.atMs)), " ", a.text ?? a.kind))
        : h("li", { class: "muted" }, "None. Gaps, refused messages and key changes would be listed here."),
    );
  }

  update();
  return { update, tick, destroy() {} };
}

/**
 * Crisis mode: its state, and (for principals and controllers, on relays that have crisis mode) the
 * signed act that declares it or stands it down. Built once; only its texts change.
 * @param {import("../session.js").Session} session
 */
function crisisCard(session) {
  const desk = session.desk;
  const stateText = h("p", { id: "crisis-state" });
  const reason = /** @type {HTMLInputElement} */ (h("input", { id: "crisis-reason", type: "text", maxlength: 500, autocomplete: "off" }));
  const button = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "button", id: "crisis-button" }, "Declare crisis"));
  const status = h("p", { class: "form-status", role: "status" });
  const mayAct = ["principal", "controller"].includes(desk.info.role);
  const form = h(
    "form",
    { class: "stack", hidden: !mayAct },
    h("label", { for: "crisis-reason" }, "Reason (logged, seen by every desk)"),
    reason,
    h("div", { class: "row" }, button),
    status,
  );
  const element = h("section", { class: "card crisis-card", "aria-labelledby": "crisis-h", hidden: true }, h("h2", { id: "crisis-h" }, "Crisis mode"), stateText, form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const current = session.crisis();
    const declare = !current?.on;
    if (declare && !reason.value.trim()) {
      status.className = "form-status error";
      status.textContent = "Say why: every desk will see the reason.";
      reason.focus();
      return;
    }
    button.disabled = true;
    status.className = "form-status";
    status.textContent = "Signing the act…";
    try {
      await desk.changeCrisis(declare, reason.value.trim(), current?.epoch ?? 0);
      await session.refreshFeatures();
      reason.value = "";
      status.textContent = declare ? "Crisis mode declared." : "Crisis mode stood down.";
      announce(status.textContent);
    } catch (err) {
      status.className = "form-status error";
      status.textContent = describe(err);
    } finally {
      button.disabled = false;
    }
  });
  function update() {
    const policy = session.features.policy;
    const c = session.crisis();
    element.hidden = !policy && !c;
    element.classList.toggle("crisis-on", Boolean(c?.on));
    stateText.textContent = c?.on
      ? `ON since ${clock(c.since)}${c.by ? `, by ${c.by}` : ""}. Link tests run every minute and deadlines are shorter.`
      : "Off: normal deadlines apply.";
    button.textContent = c?.on ? "Stand down" : "Declare crisis";
    button.className = c?.on ? "button" : "button flash";
  }
  return { element, update };
}

/** Every message in time order: sent (and unsent), received, refused. @param {any} st */
function conversationItems(st) {
  const items = [];
  for (const [id, s] of Object.entries(/** @type {Record<string, any>} */ (st.sent))) {
    if (s.intent !== "link_test") items.push({ kind: "sent", id, at: s.createdAtMs, data: s, pending: false });
  }
  for (const [id, o] of Object.entries(/** @type {Record<string, any>} */ (st.outbox))) {
    items.push({ kind: "sent", id, at: o.createdAtMs ?? 0, data: { ...o, recipients: {}, precedence: o.precedence ?? "ROUTINE" }, pending: true });
  }
  for (const [id, r] of Object.entries(/** @type {Record<string, any>} */ (st.received))) {
    if (r.intent !== "link_test") items.push({ kind: "received", id, at: r.createdAtMs, data: r, pending: false });
  }
  for (const [id, x] of Object.entries(/** @type {Record<string, any>} */ (st.refused ?? {}))) {
    items.push({ kind: "refused", id, at: x.createdAtMs, data: x, pending: false });
  }
  return items.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1));
}

/** @param {any} d */
function refusedText(d) {
  const why = rejectReason(d.reason);
  const who = d.unauthenticated
    ? "Its signature does not match the key of the device it claims to come from, so even its sender is unknown."
    : "It was signed by that device, so the sender is known; its content could not be read.";
  return `A ${d.precedence} message could not be accepted: ${why}. ${who} Nothing of it is shown. Your device answered with a signed “rejected” receipt at ${clock(d.atMs)}, so the sender can resend.`;
}

/** @param {string} reason */
function rejectReason(reason) {
  const words = {
    decryption_failed: "it did not decrypt (decryption_failed)",
    bad_signature: "the signature does not verify (bad_signature)",
    unknown_key: "it was sealed to a key this device does not have (unknown_key)",
    not_a_recipient: "it was not addressed to this device (not_a_recipient)",
    malformed: "it is not well-formed (malformed)",
    unsupported_suite: "an unsupported cipher suite (unsupported_suite)",
    unsupported_version: "an unsupported protocol version (unsupported_version)",
    expired_prekey: "sealed to an expired key (expired_prekey)",
  };
  return words[/** @type {keyof typeof words} */ (reason)] ?? reason;
}

/**
 * Structured template fields, read-only.
 * @param {Record<string, any>} fields
 * @param {number} createdAtMs
 */
function fieldsBlock(fields, createdAtMs) {
  if (!fields || !fields.template) return null;
  if (fields.template === "missile_test") {
    let noticeOk = true;
    try {
      noticeOk = missileTestNoticeOk(fields, createdAtMs);
    } catch {
      noticeOk = true;
    }
    const start = Date.parse(fields.launch_window_start);
    const days = Math.floor((start - createdAtMs) / DAY_MS);
    return h(
      "div",
      { class: "template" },
      h("p", { class: "template-title" }, "Ballistic-missile test pre-notification"),
      h(
        "dl",
        { class: "facts compact" },
        fields.missile_type ? [h("dt", null, "Missile type"), h("dd", null, fields.missile_type)] : null,
        h("dt", null, "Launch window"),
        h("dd", null, `${fields.launch_window_start} – ${fields.launch_window_end}`),
        h("dt", null, "Launch area"),
        h("dd", null, fields.launch_area),
        h("dt", null, "Impact area"),
        h("dd", null, fields.impact_area),
        fields.notice ? [h("dt", null, "Remarks"), h("dd", null, fields.notice)] : null,
      ),
      noticeOk
        ? h("p", { class: "notice-ok" }, `Notified ${days} days before the window opens (at least 3 required).`)
        : h("p", { class: "notice-late", role: "note" }, `LATE NOTICE: only ${Math.max(0, days)} day(s) before the window opens; the 2005 agreement asks for at least 3 days.`),
    );
  }
  if (fields.template === "nuclear_installations") {
    return h(
      "div",
      { class: "template" },
      h("p", { class: "template-title" }, `List of nuclear installations, ${fields.year}`),
      h("ul", null, (fields.entries ?? []).map((/** @type {string} */ e) => h("li", null, e))),
    );
  }
  return h("p", { class: "muted" }, `Template ${fields.template}`);
}

// --- compose ---------------------------------------------------------------------------------------

/** @param {import("../session.js").Session} session */
function composeForm(session) {
  const desk = session.desk;
  const me = desk.info.member;
  const toField = h("fieldset", { class: "to-field", id: "to-field" }, h("legend", null, "To"));
  const precedenceField = h(
    "fieldset",
    { class: "precedence-field" },
    h("legend", null, "Precedence"),
    PRECEDENCES.map((p) =>
      h(
        "label",
        { class: ["choice", `choice-${p}`] },
        h("input", { type: "radio", name: "precedence", value: p, checked: p === "ROUTINE" }),
        h("span", { class: ["badge", `badge-${p}`] }, p),
        h("span", { class: "choice-hint", "data-precedence-hint": p }),
      ),
    ),
  );
  const intentSelect = /** @type {HTMLSelectElement} */ (
    h("select", { id: "intent", name: "intent" }, COMPOSE_INTENTS.map((i) => h("option", { value: i.intent }, i.label)))
  );
  const text = /** @type {HTMLTextAreaElement} */ (h("textarea", { id: "message-text", name: "text", rows: 5, required: true, "aria-describedby": "word-count" }));
  const words = h("p", { class: "hint", id: "word-count" }, "0 words");
  const exercise = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", id: "exercise", name: "exercise" }));
  const sendButton = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "button primary", id: "send-button" }, "Send"));
  const status = h("p", { class: "form-status", id: "compose-status", role: "status" });
  const blockNote = h("p", { class: "form-status error", id: "send-blocked", hidden: true });

  // Missile-test pre-notification (2005 India–Pakistan agreement): a window of at most 5 days, notified
  // at least 3 days ahead. Times are UTC.
  const tf = {
    missileType: /** @type {HTMLInputElement} */ (h("input", { id: "tf-missile-type", type: "text", maxlength: 512 })),
    start: /** @type {HTMLInputElement} */ (h("input", { id: "tf-start", type: "datetime-local", step: 60 })),
    end: /** @type {HTMLInputElement} */ (h("input", { id: "tf-end", type: "datetime-local", step: 60 })),
    launchArea: /** @type {HTMLInputElement} */ (h("input", { id: "tf-launch-area", type: "text", maxlength: 512 })),
    impactArea: /** @type {HTMLInputElement} */ (h("input", { id: "tf-impact-area", type: "text", maxlength: 512 })),
    notice: /** @type {HTMLInputElement} */ (h("input", { id: "tf-notice", type: "text", maxlength: 512 })),
  };
  const templateNote = h("p", { class: "hint", id: "template-note", "aria-live": "polite" });
  const templateBox = h(
    "fieldset",
    { class: "template-fields", id: "template-fields", hidden: true },
    h("legend", null, "Missile test (times in UTC)"),
    h("div", { class: "grid-2" },
      h("div", null, h("label", { for: "tf-start" }, "Launch window opens"), tf.start),
      h("div", null, h("label", { for: "tf-end" }, "Launch window closes"), tf.end),
      h("div", null, h("label", { for: "tf-launch-area" }, "Launch area"), tf.launchArea),
      h("div", null, h("label", { for: "tf-impact-area" }, "Impact area"), tf.impactArea),
      h("div", null, h("label", { for: "tf-missile-type" }, "Missile type (optional)"), tf.missileType),
      h("div", null, h("label", { for: "tf-notice" }, "Remarks (optional)"), tf.notice),
    ),
    templateNote,
  );

  const form = h(
    "form",
    { class: "stack", id: "compose-form", novalidate: true },
    toField,
    precedenceField,
    h("label", { for: "intent" }, "Purpose"),
    intentSelect,
    templateBox,
    h("label", { for: "message-text" }, "Message ", h("span", { class: "hint" }, "(Ctrl+Enter sends)")),
    text,
    words,
    h("label", { class: "checkbox" }, exercise, " Mark as EXERCISE traffic"),
    blockNote,
    h("div", { class: "row" }, sendButton),
    status,
  );
  const element = h("section", { class: "card compose", "aria-labelledby": "compose-h" }, h("h2", { id: "compose-h" }, "New message"), form);

  let lastStarter = COMPOSE_INTENTS[0].starter;
  intentSelect.value = "clarification_request";
  text.value = lastStarter;

  const precedence = () => /** @type {HTMLInputElement | null} */ (form.querySelector("input[name=precedence]:checked"))?.value ?? "ROUTINE";
  const recipients = () => [...toField.querySelectorAll("input[type=checkbox]:checked")].map((el) => /** @type {HTMLInputElement} */ (el).value);

  function refreshHints() {
    for (const el of form.querySelectorAll("[data-precedence-hint]")) {
      const p = /** @type {HTMLElement} */ (el).dataset.precedenceHint ?? "";
      const ackMs = session.deadlines[p].ackMs;
      el.textContent = ackMs === null ? "no acknowledgement needed" : `acknowledge within ${shortSpan(ackMs)}`;
    }
  }

  function refreshWords() {
    const n = wordCount(text.value);
    const p = precedence();
    const long = (p === "FLASH" || p === "IMMEDIATE") && n > SHORT_WORD_LIMIT;
    words.textContent = long ? `${n} words — keep ${p} messages short (about ${SHORT_WORD_LIMIT} words)` : `${n} word${n === 1 ? "" : "s"}`;
    words.classList.toggle("warn", long);
  }

  function refreshBlock() {
    const st = session.state;
    if (!st) return;
    const blocked = [...new Set([...recipients(), me])].filter((m) => st.pins[m]?.unacceptedChange);
    blockNote.hidden = blocked.length === 0;
    blockNote.textContent = blocked.length
      ? `Sending is blocked: the keys of ${blocked.join(", ")} changed. Compare safety numbers in Contacts, or accept the change there.`
      : "";
    sendButton.disabled = blocked.length > 0 || recipients().length === 0;
  }

  intentSelect.addEventListener("change", () => {
    const choice = COMPOSE_INTENTS.find((i) => i.intent === intentSelect.value);
    if (choice && (text.value.trim() === "" || text.value === lastStarter)) text.value = choice.starter;
    lastStarter = choice?.starter ?? "";
    templateBox.hidden = intentSelect.value !== "pre_notification";
    refreshWords();
  });
  text.addEventListener("input", refreshWords);
  // Ctrl+Enter (⌘+Enter) sends, so the whole form works from the keyboard without reaching for Tab.
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  precedenceField.addEventListener("change", refreshWords);
  toField.addEventListener("change", refreshBlock);
  for (const input of [tf.start, tf.end]) input.addEventListener("change", () => checkTemplate(false));

  /** The template fields as the protocol wants them, or an error text. @param {boolean} strict */
  function checkTemplate(strict) {
    const start = tf.start.value ? Date.parse(`${tf.start.value}Z`) : NaN;
    const end = tf.end.value ? Date.parse(`${tf.end.value}Z`) : NaN;
    let problem = "";
    if (Number.isNaN(start) || Number.isNaN(end)) problem = "Give the launch window's opening and closing times.";
    else if (end <= start) problem = "The launch window must close after it opens.";
    else if (end - start > 5 * DAY_MS) problem = "A launch window may last at most 5 days.";
    else if (strict && (!tf.launchArea.value.trim() || !tf.impactArea.value.trim())) problem = "Give the launch area and the impact area.";
    if (!problem && start - Date.now() < 3 * DAY_MS) {
      templateNote.textContent = "Late notice: less than 3 days before the window opens. It can be sent, and will be flagged as late.";
      templateNote.className = "hint warn";
    } else {
      templateNote.textContent = problem && !strict ? problem : "";
      templateNote.className = "hint";
    }
    if (problem) return { error: problem };
    /** @type {Record<string, string>} */
    const fields = {
      template: "missile_test",
      launch_window_start: new Date(start).toISOString().replace(".000Z", "Z"),
      launch_window_end: new Date(end).toISOString().replace(".000Z", "Z"),
      launch_area: tf.launchArea.value.trim(),
      impact_area: tf.impactArea.value.trim(),
    };
    if (tf.missileType.value.trim()) fields.missile_type = tf.missileType.value.trim();
    if (tf.notice.value.trim()) fields.notice = tf.notice.value.trim();
    return { fields };
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const to = recipients();
    if (!to.length) {
      status.className = "form-status error";
      status.textContent = "Choose at least one recipient.";
      return;
    }
    if (!text.value.trim()) {
      status.className = "form-status error";
      status.textContent = "Write the message first.";
      text.focus();
      return;
    }
    /** @type {Record<string, unknown>} */
    let fields = {};
    if (intentSelect.value === "pre_notification") {
      const checked = checkTemplate(true);
      if (checked.error) {
        status.className = "form-status error";
        status.textContent = checked.error;
        return;
      }
      fields = checked.fields ?? {};
    }
    sendButton.disabled = true;
    status.className = "form-status";
    status.textContent = "Sealing and sending…";
    try {
      const sent = await desk.send({
        to,
        text: text.value.trim(),
        precedence: precedence(),
        intent: intentSelect.value,
        fields,
        exercise: exercise.checked,
      });
      status.textContent = `Sent. The relay accepted it at ${clock(sent?.acceptedAtMs)} (log entry #${sent?.logIndex}).`;
      announce("Message sent and accepted by the relay");
      const choice = COMPOSE_INTENTS.find((i) => i.intent === intentSelect.value);
      text.value = choice?.starter ?? "";
      lastStarter = text.value;
      refreshWords();
    } catch (err) {
      status.className = "form-status error";
      if (err instanceof RelayUnreachable) {
        // Sealed and saved before the relay was asked: it goes out by itself when the relay answers.
        status.textContent = "The relay does not answer. The message is sealed and kept in the outbox; it is sent as soon as the relay answers.";
      } else {
        status.textContent = err instanceof KeyChangeError ? err.message : `Not sent: ${describe(err)}`;
      }
    } finally {
      refreshBlock();
    }
  });

  let recipientKey = "";
  function update() {
    const st = session.state;
    const members = (st?.directory?.members ?? []).filter((/** @type {any} */ m) => m.member !== me && m.role !== "operator" && m.status === "active");
    const reachable = (/** @type {any} */ m) => m.devices.some((/** @type {any} */ d) => d.status === "active");
    const key = JSON.stringify(members.map((/** @type {any} */ m) => [m.member, m.role, reachable(m)]));
    if (key !== recipientKey) {
      const previous = new Set(recipients());
      const first = recipientKey === "";
      recipientKey = key;
      const boxes = members.map((/** @type {any} */ m) =>
        h(
          "label",
          { class: "choice" },
          h("input", {
            type: "checkbox",
            name: "to",
            value: m.member,
            disabled: !reachable(m),
            checked: reachable(m) && (first || !previous.size ? m.role === "principal" : previous.has(m.member)),
          }),
          ` ${m.member}`,
          h("span", { class: "muted small" }, reachable(m) ? ` ${m.role}` : ` ${m.role} · no device enrolled yet`),
        ),
      );
      fill(toField, h("legend", null, "To"), boxes.length ? boxes : h("p", { class: "muted" }, "No other desk is enrolled yet."));
    }
    refreshHints();
    refreshBlock();
  }
  refreshWords();
  return { element, update };
}
