// Enrollment: an invite link (#enroll=CODE) becomes a device of this browser. The keys are generated here,
// non-extractable, and only their public halves go to the relay.

import { h, fill, dateTime, announce } from "../dom.js";
import { Desk, describe, SUPPORTED_SUITE } from "../desk.js";
import { fingerprint, b64d } from "../../protocol/index.js";

const DEVICE_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/**
 * @param {HTMLElement} root
 * @param {string} code
 * @param {{onEnrolled: (info: import("../store.js").ProfileInfo) => void}} hooks
 */
export function enrollView(root, code, hooks) {
  const status = h("p", { class: "form-status", id: "enroll-status", role: "status" });
  const details = h("div", { class: "invite-details" }, h("p", null, "Reading the invite…"));
  const input = /** @type {HTMLInputElement} */ (
    h("input", {
      id: "device-name",
      name: "device",
      type: "text",
      value: "browser",
      required: true,
      maxlength: 32,
      pattern: "[a-z0-9][a-z0-9_\\-]{0,31}",
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": "device-hint",
    })
  );
  const button = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "button primary", id: "enroll-button", disabled: true }, "Create keys and enroll"));
  const form = h(
    "form",
    { class: "stack", id: "enroll-form", novalidate: true },
    h("label", { for: "device-name" }, "Name for this device"),
    input,
    h("p", { class: "hint", id: "device-hint" }, "Lower-case letters, digits, - and _; for example browser, laptop or ops-room. Others see it next to your desk's name."),
    button,
    status,
  );
  fill(
    root,
    h(
      "section",
      { class: "panel enroll", "aria-labelledby": "enroll-h" },
      h("h1", { id: "enroll-h" }, "Join a hotline channel"),
      details,
      form,
      h(
        "p",
        { class: "hint" },
        "Your keys are created in this browser and never leave it; the relay receives only their public halves. ",
        "Anyone who can use this browser profile can act as this desk: keep the device with you.",
      ),
    ),
  );
  let enrolling = false;
  Desk.previewInvite(code)
    .then(async ({ preview, relay }) => {
      const relayFingerprint = await fingerprint(b64d(relay.public_key, { field: "relay key", maxBytes: 64 }));
      fill(
        details,
        h(
          "dl",
          { class: "facts" },
          h("dt", null, "Channel"),
          h("dd", { id: "invite-channel" }, preview.channel),
          h("dt", null, "Desk"),
          h("dd", { id: "invite-member" }, preview.member),
          h("dt", null, "Role"),
          h("dd", null, preview.role),
          h("dt", null, "Invite valid until"),
          h("dd", null, dateTime(preview.expires_ms)),
          h("dt", null, "Relay key fingerprint"),
          h("dd", { class: "mono" }, relayFingerprint),
        ),
      );
      if (preview.suite !== SUPPORTED_SUITE) {
        status.textContent = `This channel uses the ${preview.suite} cipher suite, which the browser client cannot speak yet. Enroll with the command-line client (hotline enroll).`;
        status.className = "form-status error";
        return;
      }
      button.disabled = false;
      input.focus();
      input.select();
    })
    .catch((err) => {
      fill(details, h("p", { class: "error" }, `This invite cannot be used: ${inviteProblem(err)}`));
      details.setAttribute("role", "alert");
    });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (enrolling) return;
    const name = input.value.trim();
    if (!DEVICE_RE.test(name)) {
      status.textContent = "Use 1–32 lower-case letters, digits, - or _, starting with a letter or digit.";
      status.className = "form-status error";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    enrolling = true;
    button.disabled = true;
    status.className = "form-status";
    status.textContent = "Creating keys and enrolling…";
    try {
      const desk = await Desk.enroll(code, name);
      announce(`Enrolled as ${desk.info.member}/${desk.info.device}`);
      hooks.onEnrolled(desk.info);
    } catch (err) {
      status.textContent = `Enrollment failed: ${inviteProblem(err)}`;
      status.className = "form-status error";
      button.disabled = false;
      enrolling = false;
    }
  });
  return { update() {} };
}

/** Invite errors in plain words. @param {unknown} err */
function inviteProblem(err) {
  const code = /** @type {any} */ (err)?.code;
  const words = {
    invite_invalid: "the code is not known to this relay (check the whole link was copied)",
    invite_used: "it has already been used; ask for a new invite",
    invite_expired: "it has expired; ask for a new invite",
    device_revoked: "this desk has been revoked",
    conflict: "this device name is already taken for this desk; choose another",
  };
  return words[/** @type {keyof typeof words} */ (code)] ?? describe(err);
}
