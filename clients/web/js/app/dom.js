// Building the page without HTML strings: every text goes in through textContent, so nothing a peer or the
// relay sends can ever become markup (and the strict Content-Security-Policy never has to be relaxed).

/**
 * Create an element. `attrs` values: strings and numbers become attributes, `true` a bare attribute,
 * false/null/undefined nothing; `on*` functions become listeners; `class` may be an array.
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...(Node | string | number | null | undefined | false | Array<any>)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = null, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : String(value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * Append children, skipping null, undefined and false (so optional parts can be written inline).
 * @param {Element} el
 * @param {any[]} children
 */
export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. @param {Element} el @param {...any} children */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** @param {number | null | undefined} ms @returns {string} "14:03:07Z" (UTC, the hotline's clock) */
export function clock(ms) {
  if (!ms) return "—";
  return `${new Date(ms).toISOString().slice(11, 19)}Z`;
}

/** @param {number | null | undefined} ms @returns {string} "2025-05-10 14:03:07Z" */
export function dateTime(ms) {
  if (!ms) return "—";
  return `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")}Z`;
}

/** A duration for people: "0.8 s", "42 s", "3 min 05 s", "2 h 10 min". @param {number} ms */
export function duration(ms) {
  const abs = Math.abs(ms);
  if (abs < 10_000) return `${(abs / 1000).toFixed(1)} s`;
  const s = Math.floor(abs / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const hours = Math.floor(m / 60);
  return `${hours} h ${String(m % 60).padStart(2, "0")} min`;
}

/** A countdown "09:41" or "2:59:10". @param {number} ms */
export function countdown(ms) {
  const s = Math.max(0, Math.floor(Math.abs(ms) / 1000));
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** Announce a short text to screen readers (and show it in the status line). @param {string} text */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A change after a tick is read out even when the text repeats.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}

/**
 * Keep `list`'s children in the order of `items`, one element per key: new keys get `create`, every
 * element gets `update`, gone keys are removed. Elements are reused, so focus and typed text survive.
 * @template T
 * @param {Element} list
 * @param {T[]} items
 * @param {(item: T) => string} keyOf
 * @param {(item: T) => HTMLElement} create
 * @param {(el: HTMLElement, item: T) => void} update
 */
export function reconcile(list, items, keyOf, create, update) {
  /** @type {Map<string, HTMLElement>} */
  const existing = new Map();
  for (const child of list.children) {
    const el = /** @type {HTMLElement} */ (child);
    if (el.dataset.key !== undefined) existing.set(el.dataset.key, el);
  }
  /** @type {ChildNode | null} */
  let prev = null;
  for (const item of items) {
    const key = keyOf(item);
    let el = existing.get(key);
    if (el) existing.delete(key);
    else {
      el = create(item);
      el.dataset.key = key;
    }
    update(el, item);
    const want = prev ? prev.nextSibling : list.firstChild;
    if (el !== want) list.insertBefore(el, want);
    prev = el;
  }
  for (const el of existing.values()) el.remove();
}
