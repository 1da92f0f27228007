// One open profile in this tab: its Desk, the latest saved state, what the relay offers, and the alerts.
//
// Views read `session.state` (a snapshot reloaded after every change the desk saves) and call the desk
// to act. Sounds and screen-reader alerts for what arrives live here, once, whatever view is shown.

import { Desk, describe } from "./desk.js";
import { DEFAULT_DEADLINES, deadlinesFrom } from "./policy.js";
import { crisisFrom, detectFeatures, optional } from "./features.js";
import { escalationBeep, flashBeep } from "./sound.js";

const STATUS_POLL_MS = 30_000;
const AUDIT_CHECK_MS = 15_000;
const LINK_TEST_CHECK_MS = 10_000;
const OUTBOX_RETRY_MS = 5_000;

export class Session {
  /**
   * @param {string} id
   * @param {{onChange: () => void}} hooks
   */
  static async open(id, hooks) {
    const session = new Session(await Desk.open(id), hooks);
    await session.start();
    return session;
  }

  /** @param {Desk} desk @param {{onChange: () => void}} hooks */
  constructor(desk, hooks) {
    this.desk = desk;
    this.hooks = hooks;
    /** @type {any} */
    this.state = null;
    /** @type {import("./features.js").Features} */
    this.features = { policy: null, links: null, exercise: null, exerciseEngine: false };
    this.deadlines = DEFAULT_DEADLINES;
    /** Messages already sounded or flagged as overdue in this tab. */
    this.alerted = new Set();
    /** Banners a person closed. */
    this.dismissed = new Set();
    /** @type {string | null} */
    this.problem = null;
    this.pending = false;
    this.closed = false;
    /** @type {Array<ReturnType<typeof setInterval>>} */
    this.timers = [];
    this.onChangeEvent = () => this.schedule();
    this.onDeskEvent = (/** @type {Event} */ ev) => this.onEvent(/** @type {CustomEvent} */ (ev).detail);
  }

  async start() {
    this.state = await this.desk.state();
    this.desk.addEventListener("change", this.onChangeEvent);
    this.desk.addEventListener("event", this.onDeskEvent);
    try {
      await this.desk.refreshDirectory();
    } catch (err) {
      this.problem = `Could not reach the relay: ${describe(err)}. Showing what this browser saved.`;
    }
    try {
      this.features = await detectFeatures(this.desk);
    } catch {
      // Nothing extra on this relay, or it is unreachable: the defaults stand.
    }
    this.desk.maintainPrekeys().catch((err) => console.warn("prekey upkeep:", err));
    this.desk.start();
    this.timers = [
      setInterval(() => this.refreshFeatures(), STATUS_POLL_MS),
      setInterval(() => this.desk.checkTreeHead().catch(() => null), AUDIT_CHECK_MS),
      setInterval(() => this.linkTests().catch((err) => console.warn("link test:", err)), LINK_TEST_CHECK_MS),
      setInterval(() => this.flushOutbox(), OUTBOX_RETRY_MS),
    ];
    this.desk.checkTreeHead().catch(() => null);
    this.state = await this.desk.state();
    this.refreshDeadlines();
    // The first link test goes as soon as the socket is up (then each interval).
    const firstTest = () => {
      if (this.desk.link.state !== "connected") return;
      this.desk.removeEventListener("event", onLink);
      this.linkTests().catch((err) => console.warn("link test:", err));
    };
    const onLink = () => firstTest();
    this.desk.addEventListener("event", onLink);
    firstTest();
  }

  /**
   * Test the line to each other testing desk when its interval has passed (the relay says who tests and
   * how often: hourly, every minute in crisis mode). Another device of this desk that tested recently
   * counts: the relay's view has the desk's last test.
   */
  async linkTests() {
    const view = this.features.links;
    const me = this.desk.info.member;
    if (!view || this.desk.link.state !== "connected" || !(view.testing_desks ?? []).includes(me)) return;
    const interval = Number(view.interval_s) * 1000;
    if (!(interval > 0)) return;
    const now = Date.now();
    const reachable = new Set(
      (this.state?.directory?.members ?? [])
        .filter((/** @type {any} */ m) => m.devices.some((/** @type {any} */ d) => d.status === "active"))
        .map((/** @type {any} */ m) => m.member),
    );
    let sent = false;
    for (const other of view.testing_desks) {
      if (other === me || !reachable.has(other)) continue;
      const relayLast = (view.directions ?? []).find((/** @type {any} */ d) => d.from === me && d.to === other)?.last_sent_ms ?? 0;
      const localLast = Math.max(
        0,
        ...Object.values(/** @type {Record<string, any>} */ (this.state?.sent ?? {}))
          .filter((x) => x.linkTest && Object.keys(x.recipients).some((k) => k.startsWith(`${other}/`)))
          .map((x) => x.createdAtMs),
      );
      if (now - Math.max(relayLast, localLast) < interval) continue;
      try {
        await this.desk.sendLinkTest(other);
        sent = true;
      } catch (err) {
        console.warn(`link test to ${other}:`, err);
      }
    }
    if (sent) setTimeout(() => this.refreshFeatures(), 2000); // show the answer without waiting
  }

  /** Ask again for the policy and the link view (only those this relay has). */
  async refreshFeatures() {
    const again = async (/** @type {"policy" | "links"} */ name, /** @type {string} */ path) => {
      if (this.features[name] === null) return;
      this.features[name] = (await optional(this.desk, path).catch(() => null)) ?? this.features[name];
    };
    await Promise.all([again("policy", "/policy"), again("links", "/link")]);
    this.refreshDeadlines();
    this.hooks.onChange();
  }

  /** Post what is still in the outboxes (the relay was unreachable); quiet while it still is. */
  async flushOutbox() {
    const st = this.state;
    if (!st || (!Object.keys(st.outbox).length && !Object.keys(st.receiptOutbox).length)) return;
    await this.desk.flushOutbox().catch(() => null);
  }

  /** Crisis mode as best known: the relay's policy view or the newest signed crisis notice. */
  crisis() {
    return crisisFrom(this.features.policy, this.state?.crisis ?? null);
  }

  /**
   * When a message must be acknowledged, or null if its precedence needs no acknowledgement. The mode
   * that counts is the one in force when the relay accepted it, as on the relay.
   * @param {{precedence: string, acceptedAtMs: number}} m
   */
  ackDue(m) {
    const view = this.features.policy;
    const crisis = this.crisis();
    const inCrisis = Boolean(crisis?.on && (crisis.since === null || crisis.since <= m.acceptedAtMs));
    const table = view ? deadlinesFrom(view, inCrisis ? "crisis" : "normal") : DEFAULT_DEADLINES;
    const ackMs = table[m.precedence]?.ackMs ?? null;
    return ackMs === null ? null : m.acceptedAtMs + ackMs;
  }

  /** The deadlines of the channel's current mode. */
  refreshDeadlines() {
    const view = this.features.policy;
    this.deadlines = view ? deadlinesFrom(view, this.crisis()?.on ? "crisis" : "normal") : DEFAULT_DEADLINES;
  }

  /** Reload the state soon (many saves in a burst give one reload). */
  schedule() {
    if (this.pending || this.closed) return;
    this.pending = true;
    setTimeout(async () => {
      this.pending = false;
      if (this.closed) return;
      this.state = await this.desk.state();
      this.refreshDeadlines();
      this.hooks.onChange();
    }, 30);
  }

  /** @param {any} ev */
  onEvent(ev) {
    if (ev.type === "message") {
      if (ev.precedence === "FLASH") {
        flashBeep();
        alertText(`FLASH message from ${ev.sender}`);
      }
      if (ev.intent === "link_test") {
        // A link test is answered at once, without a person: its acknowledgement is the answer.
        this.desk.acknowledge(ev.messageId).catch((err) => console.warn("link test answer:", err));
      }
    } else if (ev.type === "notice" && ev.kind === "escalation") {
      escalationBeep();
      alertText(`Escalation: ${ev.fields?.desk ?? "a desk"} missed a deadline`);
    } else if (ev.type === "notice" && ev.kind === "crisis") {
      escalationBeep();
      alertText(ev.fields?.on ? "Crisis mode declared" : "Crisis mode stood down");
      this.refreshFeatures();
    } else if (ev.type === "notice" && ev.kind === "policy") {
      this.refreshFeatures();
    } else if (ev.type === "keychange") {
      alertText(`Key change: ${ev.member}/${ev.device} ${String(ev.change).replace("_", " ")}`);
    } else if (ev.type === "refused") {
      alertText(`A message from ${ev.sender} was refused (${ev.reason})`);
    } else if (ev.type === "gap") {
      alertText(`Missing messages from ${ev.sender}`);
    } else if (ev.type === "link") {
      this.hooks.onChange();
    }
  }

  close() {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.desk.removeEventListener("change", this.onChangeEvent);
    this.desk.removeEventListener("event", this.onDeskEvent);
    this.desk.stop();
  }
}

/** @param {string} text */
function alertText(text) {
  const region = document.getElementById("alert-announcer");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}
