// The hotline browser client: boots the page, picks the profile and the view, and keeps the frame
// (top bar, alert banners) in step with the desk.
//
// Addresses (the part after #) say what to show, so every view can be bookmarked and the back button
// works: #enroll=CODE (an invite link from the relay), #p=PROFILE&v=desk|contacts|operator|controller,
// or nothing (the profile picker). All state lives in IndexedDB (store.js); all cryptography runs in this
// page on WebCrypto (../protocol/), which browsers offer only in a secure context — so that is checked
// first, and explained in plain words when it is missing.

import { h, fill, announce } from "./dom.js";
import { profileStore } from "./store.js";
import { Session } from "./session.js";
import { installSoundUnlock, setSound, soundEnabled } from "./sound.js";
import { enrollView } from "./views/enroll.js";
import { pickerView } from "./views/picker.js";
import { deskView } from "./views/desk.js";
import { contactsView } from "./views/contacts.js";
import { operatorView } from "./views/operator.js";
import { controllerView } from "./views/controller.js";
import { renderBanners } from "./views/banners.js";

/** @typedef {{update: () => void, tick?: (now: number) => void, destroy?: () => void}} MountedView */

const VIEWS = {
  desk: { label: "Desk", mount: deskView, roles: ["principal", "facilitator", "controller"] },
  contacts: { label: "Contacts", mount: contactsView, roles: ["principal", "facilitator", "controller", "operator"] },
  operator: { label: "Audit log", mount: operatorView, roles: ["operator", "principal", "facilitator", "controller"] },
  controller: { label: "Exercise control", mount: controllerView, roles: ["controller"] },
};

/** @type {Session | null} */
let session = null;
/** @type {MountedView | null} */
let mounted = null;
let mountedKey = "";

const main = () => /** @type {HTMLElement} */ (document.getElementById("main"));

function boot() {
  if (!window.isSecureContext || !globalThis.crypto?.subtle) {
    showInsecure();
    return;
  }
  installSoundUnlock();
  window.addEventListener("hashchange", () => route());
  route().catch(showFatal);
  setInterval(() => {
    const now = Date.now();
    mounted?.tick?.(now);
    if (session) renderBanners(session, now);
  }, 1000);
}

/** Open over plain HTTP from another machine: no WebCrypto, so no hotline. Say so plainly. */
function showInsecure() {
  document.title = "hotline — needs a secure connection";
  fill(
    main(),
    h(
      "section",
      { class: "panel notice insecure", id: "insecure", "aria-labelledby": "insecure-h" },
      h("h1", { id: "insecure-h" }, "This page needs a secure connection"),
      h(
        "p",
        null,
        "hotline encrypts and signs every message inside this browser. Browsers allow that only on a ",
        h("strong", null, "secure connection"),
        ": an https:// address, or http://localhost and http://127.0.0.1 on your own machine.",
      ),
      h("p", null, "This page was opened as ", h("code", null, location.origin), ", which is neither, so nothing can be done safely here."),
      h(
        "ul",
        null,
        h("li", null, "If you are a desk user: ask whoever runs the relay for its https:// address."),
        h("li", null, "If you run the relay: serve it over TLS (hotline serve --tls-cert … --tls-key …) or behind an HTTPS proxy; see docs/WEB.md."),
      ),
    ),
  );
  fill(document.getElementById("tabs") ?? h("div"));
}

/** @param {unknown} err */
function showFatal(err) {
  console.error(err);
  fill(
    main(),
    h(
      "section",
      { class: "panel notice" },
      h("h1", null, "Something went wrong"),
      h("p", null, err instanceof Error ? err.message : String(err)),
      h("p", null, h("a", { href: "#" }, "Back to the profile list")),
    ),
  );
}

/** Read the address after '#'. */
function parseHash() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

/** @param {string} profileId @param {string} view */
export function navigate(profileId, view) {
  const target = `#p=${encodeURIComponent(profileId)}&v=${view}`;
  if (location.hash === target) route();
  else location.hash = target;
}

/** The first view a role sees. @param {string} role */
function defaultView(role) {
  if (role === "operator") return "operator";
  if (role === "controller") return "controller";
  return "desk";
}

let routedBefore = false;

async function route() {
  try {
    await routeTo(parseHash());
  } finally {
    routedBefore = true;
  }
}

/** @param {URLSearchParams} params */
async function routeTo(params) {
  const code = params.get("enroll");
  if (code) {
    await closeSession();
    setFrame(null, null);
    unmount();
    mounted = enrollView(main(), code, {
      onEnrolled: (/** @type {import("./store.js").ProfileInfo} */ info) => {
        // Forget the invite code in the address bar and history: it has been used.
        history.replaceState(null, "", location.pathname + location.search);
        navigate(info.id, defaultView(info.role));
      },
    });
    mountedKey = "enroll";
    return;
  }
  const profileId = params.get("p");
  if (!profileId) {
    const profiles = await profileStore.list();
    if (profiles.length === 1 && !params.has("profiles")) {
      navigate(profiles[0].id, defaultView(profiles[0].role));
      return;
    }
    await closeSession();
    setFrame(null, null);
    unmount();
    mounted = pickerView(main(), profiles, { open: (/** @type {any} */ p) => navigate(p.id, defaultView(p.role)) });
    mountedKey = "picker";
    return;
  }
  if (!session || session.desk.info.id !== profileId) {
    await closeSession();
    const info = await profileStore.get(profileId);
    if (!info) {
      location.hash = "#profiles";
      return;
    }
    session = await Session.open(profileId, {
      onChange: () => {
        mounted?.update();
        if (session) {
          renderBanners(session, Date.now());
          setFrame(session, currentView());
        }
      },
    });
  }
  let view = params.get("v") ?? "";
  const role = session.desk.info.role;
  if (!(view in VIEWS) || !VIEWS[/** @type {keyof typeof VIEWS} */ (view)].roles.includes(role)) view = defaultView(role);
  const key = `${profileId}:${view}`;
  setFrame(session, view);
  renderBanners(session, Date.now());
  if (key !== mountedKey) {
    unmount();
    mounted = VIEWS[/** @type {keyof typeof VIEWS} */ (view)].mount(main(), session);
    mountedKey = key;
    // After a change of view, focus moves to it (a screen reader reads the new view); on the first
    // load it stays at the top of the page, where the skip link is.
    if (routedBefore) main().focus({ preventScroll: true });
    announce(`${VIEWS[/** @type {keyof typeof VIEWS} */ (view)].label} view`);
  }
}

function currentView() {
  return parseHash().get("v") ?? "";
}

function unmount() {
  mounted?.destroy?.();
  mounted = null;
  mountedKey = "";
}

async function closeSession() {
  if (session) {
    session.close();
    session = null;
  }
}

/**
 * The top bar: who this is, the views, the link and sound controls.
 * @param {Session | null} s
 * @param {string | null} view
 */
let frameKey = "";

function setFrame(s, view) {
  // Rebuilt only when something in it changed, so keyboard focus on a tab is not lost on every update.
  const key = s ? JSON.stringify([s.desk.info.id, view, s.desk.link.state, s.desk.link.detail]) : "none";
  if (key === frameKey) return;
  frameKey = key;
  const identity = /** @type {HTMLElement} */ (document.getElementById("identity"));
  const tabs = /** @type {HTMLElement} */ (document.getElementById("tabs"));
  const actions = /** @type {HTMLElement} */ (document.getElementById("top-actions"));
  if (!s) {
    fill(identity);
    fill(tabs);
    fill(actions, soundButton());
    document.title = "hotline";
    return;
  }
  const info = s.desk.info;
  document.title = `hotline — ${info.member}/${info.device} · ${info.channel}`;
  fill(
    identity,
    h("span", { class: "channel", title: "channel" }, info.channel),
    h("span", { class: "me" }, h("span", { class: "visually-hidden" }, "you are "), `${info.member}/${info.device}`),
    h("span", { class: `role role-${info.role}` }, info.role),
  );
  const links = Object.entries(VIEWS)
    .filter(([, v]) => v.roles.includes(info.role))
    .map(([name, v]) =>
      h(
        "a",
        {
          href: `#p=${encodeURIComponent(info.id)}&v=${name}`,
          class: ["tab", name === view && "active"],
          "aria-current": name === view ? "page" : false,
          "data-view": name,
        },
        v.label,
      ),
    );
  fill(tabs, ...links);
  const link = s.desk.link;
  const linkText = { connected: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", offline: "Offline", refused: "Refused" }[link.state] ?? link.state;
  fill(
    actions,
    h(
      "span",
      { class: `link-pill link-${link.state}`, id: "link-pill", role: "status", title: link.detail || "connection to the relay" },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "visually-hidden" }, "Relay connection: "),
      linkText,
    ),
    soundButton(),
    h("a", { class: "button ghost small", href: "#profiles", id: "profiles-link" }, "Profiles"),
  );
}

function soundButton() {
  const on = soundEnabled();
  return h(
    "button",
    {
      type: "button",
      class: "button ghost small",
      id: "sound-toggle",
      "aria-pressed": on ? "true" : "false",
      title: "Audible alerts for FLASH and escalations",
      onclick: (/** @type {Event} */ ev) => {
        setSound(!soundEnabled());
        const btn = /** @type {HTMLElement} */ (ev.currentTarget);
        btn.setAttribute("aria-pressed", soundEnabled() ? "true" : "false");
        btn.textContent = soundEnabled() ? "Sound on" : "Sound off";
      },
    },
    on ? "Sound on" : "Sound off",
  );
}

boot();
