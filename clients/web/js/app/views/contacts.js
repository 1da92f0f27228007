// Contacts: who is in the channel, their devices and key fingerprints, and the safety number to compare
// out of band (read it to each other over a separate line). A key change since the last check is shown
// loudly and blocks sending to that desk until a person compares numbers or accepts the change.

import { h, fill, clock, announce } from "../dom.js";
import { describe, keyChangeText } from "../desk.js";
import { fingerprint } from "../../protocol/index.js";

/**
 * @param {HTMLElement} root
 * @param {import("../session.js").Session} session
 */
export function contactsView(root, session) {
  const desk = session.desk;
  const mine = h("p", { class: "mono", id: "my-fingerprint" }, "…");
  const list = h("div", { class: "contacts", id: "contacts" }, h("p", { class: "muted" }, "Computing safety numbers…"));
  const history = h("ol", { class: "alarms", id: "key-events" });
  fill(
    root,
    h(
      "div",
      { class: "page" },
      h(
        "section",
        { class: "card", "aria-labelledby": "contacts-h" },
        h("h1", { id: "contacts-h" }, "Contacts"),
        h(
          "p",
          null,
          "Before you rely on a desk, compare the safety number below with its operator over a separate channel — a phone call, or in person. ",
          "If both of you see the same 60 digits, nobody (the relay included) has put their own keys in between. Mark the contact verified.",
        ),
        h("dl", { class: "facts compact" }, h("dt", null, "This device's fingerprint"), h("dd", null, mine)),
      ),
      list,
      h("section", { class: "card", "aria-labelledby": "history-h" }, h("h2", { id: "history-h" }, "Key history"), history),
    ),
  );
  fingerprint(desk.keys.signingPublicKey).then((f) => {
    mine.textContent = f;
  });

  let renderKey = "";
  let busy = false;

  async function update() {
    const st = session.state;
    if (!st) return;
    fill(
      history,
      [...(st.keyEvents ?? [])].reverse().slice(0, 20).map((e) => h("li", null, h("time", null, clock(e.atMs)), " ", keyChangeText(e))),
    );
    if (!history.children.length) fill(history, h("li", { class: "muted" }, "No key changes since these keys were first seen."));
    const key = JSON.stringify([st.pins, st.directory]);
    if (key === renderKey || busy) return;
    busy = true;
    try {
      const contacts = await desk.contacts();
      renderKey = key;
      const focused = document.activeElement?.id;
      fill(list, contacts.filter((c) => !c.isMe).map(contactCard));
      if (!list.children.length) fill(list, h("p", { class: "card muted" }, "No other desk is enrolled yet."));
      if (focused) document.getElementById(focused)?.focus();
    } catch (err) {
      fill(list, h("p", { class: "card error" }, `Could not load contacts: ${describe(err)}`));
    } finally {
      busy = false;
    }
  }

  /** @param {any} c */
  function contactCard(c) {
    const inputId = `sn-${c.member}`;
    const input = /** @type {HTMLInputElement} */ (
      h("input", { id: inputId, type: "text", inputmode: "numeric", autocomplete: "off", placeholder: "the 60 digits they read to you" })
    );
    const status = h("p", { class: "form-status", role: "status" });
    const trust = c.unacceptedChange
      ? h("span", { class: "trust trust-changed" }, "KEY CHANGED")
      : c.verified
        ? h("span", { class: "trust trust-verified" }, "Verified")
        : h("span", { class: "trust trust-unverified" }, "Not verified");
    return h(
      "section",
      { class: ["card", "contact", c.unacceptedChange && "contact-changed"], "data-member": c.member, "aria-labelledby": `contact-${c.member}` },
      h("div", { class: "card-head" }, h("h2", { id: `contact-${c.member}` }, c.member), h("span", { class: `role role-${c.role}` }, c.role), trust),
      c.unacceptedChange
        ? h(
            "p",
            { class: "warning-box", role: "alert" },
            `WARNING: the keys of ${c.member} changed since you last checked them. This happens when they add or replace a device — `,
            `or when someone is impersonating them. Sending to ${c.member} is blocked. Call them on a separate line and compare the safety number before you continue.`,
          )
        : null,
      c.status !== "active" ? h("p", { class: "muted" }, `This member is ${c.status}.`) : null,
      h(
        "table",
        { class: "devices" },
        h("caption", { class: "visually-hidden" }, `Devices of ${c.member}`),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Device"), h("th", { scope: "col" }, "Key fingerprint"), h("th", { scope: "col" }, "Status"))),
        h(
          "tbody",
          null,
          c.devices.map((/** @type {any} */ d) => h("tr", null, h("td", null, d.device), h("td", { class: "mono" }, d.fingerprint), h("td", null, d.status))),
        ),
      ),
      c.safetyNumber
        ? [
            h("p", { class: "label" }, `Safety number of you and ${c.member}`),
            h("p", { class: "safety-number mono", "data-safety-number": c.member }, groups(c.safetyNumber)),
            h(
              "form",
              {
                class: "verify-form",
                onsubmit: async (/** @type {Event} */ ev) => {
                  ev.preventDefault();
                  try {
                    const ok = await desk.verifyContact(c.member, input.value);
                    if (ok) {
                      announce(`${c.member} verified`);
                      status.className = "form-status good";
                      status.textContent = `${c.member} is verified.`;
                    } else {
                      status.className = "form-status error";
                      status.textContent = `MISMATCH: that is not the number this browser computes. Do not trust ${c.member}'s keys; tell the channel's administrator.`;
                    }
                  } catch (err) {
                    status.className = "form-status error";
                    status.textContent = describe(err);
                  }
                },
              },
              h("label", { for: inputId }, "The number they read to you"),
              h("div", { class: "row" }, input, h("button", { type: "submit", class: "button primary" }, "Mark verified")),
              c.unacceptedChange
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "button ghost",
                      onclick: async () => {
                        await desk.acceptKeyChange(c.member);
                        announce(`Accepted the new keys of ${c.member}, unverified`);
                      },
                    },
                    "Accept the new keys without verifying",
                  )
                : null,
              status,
            ),
          ]
        : h("p", { class: "muted" }, "No active device to compute a safety number with."),
    );
  }

  update();
  return { update: () => void update(), destroy() {} };
}

/** Two lines of six groups, as people read them aloud. @param {string} number */
function groups(number) {
  const g = number.split(" ");
  return [h("span", null, g.slice(0, 6).join(" ")), h("span", null, g.slice(6).join(" "))];
}
