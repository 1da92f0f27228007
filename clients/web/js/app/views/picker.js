// The profile picker: every desk this browser holds (one per enrollment), and a place to paste an invite.

import { h, fill, dateTime } from "../dom.js";
import { profileStore } from "../store.js";

/**
 * @param {HTMLElement} root
 * @param {import("../store.js").ProfileInfo[]} profiles
 * @param {{open: (p: import("../store.js").ProfileInfo) => void}} hooks
 */
export function pickerView(root, profiles, hooks) {
  const invite = /** @type {HTMLInputElement} */ (h("input", { id: "invite-link", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "https://…/#enroll=…" }));
  const inviteStatus = h("p", { class: "form-status", role: "status" });
  const list = h(
    "ul",
    { class: "profile-list", id: "profile-list" },
    profiles.map((p) =>
      h(
        "li",
        { class: "profile" },
        h(
          "div",
          { class: "profile-main" },
          h("strong", null, `${p.member}/${p.device}`),
          h("span", { class: `role role-${p.role}` }, p.role),
          h("span", { class: "muted" }, ` in ${p.channel} · enrolled ${dateTime(p.createdAtMs)}`),
        ),
        h(
          "div",
          { class: "profile-actions" },
          h("button", { type: "button", class: "button primary small", onclick: () => hooks.open(p) }, "Open"),
          h(
            "button",
            {
              type: "button",
              class: "button danger ghost small",
              "aria-label": `Remove ${p.member}/${p.device} from this browser`,
              onclick: async () => {
                const sure = confirm(
                  `Remove ${p.member}/${p.device} (${p.channel}) from this browser? Its private keys are deleted for good; ` +
                    "messages sealed to it can no longer be read here. Revoke the device on the relay too.",
                );
                if (!sure) return;
                await profileStore.remove(p.id);
                location.reload();
              },
            },
            "Remove",
          ),
        ),
      ),
    ),
  );
  fill(
    root,
    h(
      "section",
      { class: "panel", "aria-labelledby": "profiles-h" },
      h("h1", { id: "profiles-h" }, "Desks in this browser"),
      profiles.length ? list : h("p", null, "No desk is enrolled in this browser yet."),
      h(
        "form",
        {
          class: "stack invite-form",
          onsubmit: (/** @type {Event} */ ev) => {
            ev.preventDefault();
            const text = invite.value.trim();
            const code = text.includes("#enroll=") ? text.split("#enroll=")[1] : text;
            if (!/^[A-Za-z0-9_-]{10,64}$/.test(code)) {
              inviteStatus.textContent = "That does not look like an invite link or code.";
              inviteStatus.className = "form-status error";
              return;
            }
            location.hash = `#enroll=${code}`;
          },
        },
        h("h2", null, "Enroll with an invite"),
        h("label", { for: "invite-link" }, "Invite link or code (from the channel's administrator)"),
        invite,
        h("button", { type: "submit", class: "button" }, "Continue"),
        inviteStatus,
      ),
    ),
  );
  return { update() {} };
}
