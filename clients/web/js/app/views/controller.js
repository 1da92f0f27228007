// Exercise control (EXCON): the scenario timeline, inject status and start/pause/resume/skip — wired to
// whatever the relay's exercise engine offers. Until a relay has one, this view says so and shows
// nothing made up: no exercise is running.

import { h, fill, clock, announce } from "../dom.js";
import { describe } from "../desk.js";
import { isMissingEndpoint } from "../api.js";

const ACTION_LABELS = { start: "Start", pause: "Pause", resume: "Resume", skip: "Skip inject", endex: "End exercise (ENDEX)" };

/**
 * @param {HTMLElement} root
 * @param {import("../session.js").Session} session
 */
export function controllerView(root, session) {
  const desk = session.desk;
  const body = h("div", { id: "exercise-body" });
  const status = h("p", { class: "form-status", role: "status", id: "exercise-status" });
  const roster = h("tbody", { id: "roster" });
  const modeLine = h("p", { class: "muted", id: "channel-mode" });
  fill(
    root,
    h(
      "div",
      { class: "page" },
      h(
        "section",
        { class: "card", "aria-labelledby": "excon-h" },
        h("div", { class: "card-head" }, h("h1", { id: "excon-h" }, "Exercise control"), h("span", { class: "badge badge-exercise" }, "EXERCISE")),
        body,
        status,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "roster-h" },
        h("h2", { id: "roster-h" }, `Desks in ${desk.info.channel}`),
        modeLine,
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "entries" },
            h("caption", { class: "visually-hidden" }, "Members of the channel, their devices and their link as the relay sees it"),
            h("thead", null, h("tr", null, ["Desk", "Role", "Devices", "Link (relay's view)", "Open messages"].map((c) => h("th", { scope: "col" }, c)))),
            roster,
          ),
        ),
      ),
    ),
  );

  /** The channel as it is now: who is enrolled, and how the relay sees each desk's link. */
  function renderRoster() {
    const members = session.state?.directory?.members ?? [];
    const relayDesks = new Map((session.features.links?.desks ?? []).map((/** @type {any} */ d) => [d.desk, d]));
    const crisis = session.crisis();
    modeLine.textContent = crisis?.on ? `Crisis mode since ${clock(crisis.since)}.` : "Normal mode.";
    fill(
      roster,
      members.map((/** @type {any} */ m) => {
        const active = m.devices.filter((/** @type {any} */ d) => d.status === "active").map((/** @type {any} */ d) => d.device);
        const seen = /** @type {any} */ (relayDesks.get(m.member));
        const open = seen
          ? ["undelivered", "silent", "declined", "rejected"].filter((k) => seen[k]?.length).map((k) => `${seen[k].length} ${k}`).join(", ") || "none"
          : "—";
        return h(
          "tr",
          null,
          h("th", { scope: "row" }, m.member),
          h("td", null, m.role),
          h("td", null, active.length ? active.join(", ") : m.status === "active" ? "none enrolled yet" : m.status),
          h("td", null, seen ? String(seen.link) : m.role === "operator" ? "— (never receives)" : "—"),
          h("td", null, open),
        );
      }),
    );
  }

  async function refresh() {
    let exercise = null;
    let engine = false;
    try {
      exercise = await desk.call("GET", "/exercise");
      engine = true;
    } catch (err) {
      if (!isMissingEndpoint(err)) {
        status.className = "form-status error";
        status.textContent = `Could not ask the relay: ${describe(err)}`;
      }
    }
    session.features.exercise = exercise;
    session.features.exerciseEngine = engine;
    render(exercise, engine);
  }

  /** @param {any} exercise @param {boolean} engine */
  function render(exercise, engine) {
    const running = exercise && (exercise.status ?? exercise.state) && !["none", "idle", "ended"].includes(exercise.status ?? exercise.state);
    if (!running) {
      fill(
        body,
        h("div", { class: "empty-state", id: "no-exercise" }, h("p", { class: "big" }, "No exercise running"),
          h(
            "p",
            { class: "muted" },
            engine
              ? "The relay's exercise engine is idle. Start a scenario from the command line (hotline exercise run …); it will show here."
              : "This relay has no exercise engine yet. When it has, the scenario timeline, each inject's status and the start, pause, resume and skip controls appear here.",
          ),
        ),
        h(
          "div",
          { class: "row wrap", "aria-label": "Exercise controls" },
          Object.entries(ACTION_LABELS).map(([, label]) => h("button", { type: "button", class: "button", disabled: true, "aria-disabled": "true" }, label)),
        ),
      );
      return;
    }
    const state = exercise.status ?? exercise.state;
    const injects = Array.isArray(exercise.injects) ? exercise.injects : Array.isArray(exercise.timeline) ? exercise.timeline : [];
    const actions = Array.isArray(exercise.actions) ? exercise.actions : [];
    fill(
      body,
      h(
        "dl",
        { class: "facts" },
        h("dt", null, "Scenario"),
        h("dd", null, String(exercise.title ?? exercise.scenario ?? "—")),
        h("dt", null, "State"),
        h("dd", { id: "exercise-state" }, String(state)),
        exercise.scenario_time ? [h("dt", null, "Scenario time"), h("dd", null, String(exercise.scenario_time))] : null,
      ),
      h(
        "div",
        { class: "row wrap" },
        actions.map((/** @type {string} */ action) =>
          h(
            "button",
            {
              type: "button",
              class: "button",
              onclick: async () => {
                try {
                  await desk.call("POST", `/exercise/${encodeURIComponent(action)}`, { body: {} });
                  announce(`${action} sent`);
                  await refresh();
                } catch (err) {
                  status.className = "form-status error";
                  status.textContent = `${action}: ${describe(err)}`;
                }
              },
            },
            ACTION_LABELS[/** @type {keyof typeof ACTION_LABELS} */ (action)] ?? action,
          ),
        ),
      ),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "entries" },
          h("caption", null, "Injects"),
          h("thead", null, h("tr", null, ["Time", "Id", "To", "Status"].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            null,
            injects.map((/** @type {any} */ i) =>
              h(
                "tr",
                null,
                h("td", null, i.at_ms ? clock(i.at_ms) : String(i.time ?? "")),
                h("td", null, String(i.id ?? "")),
                h("td", null, Array.isArray(i.to) ? i.to.join(", ") : String(i.to ?? "")),
                h("td", null, String(i.status ?? "")),
              ),
            ),
          ),
        ),
      ),
    );
  }

  render(session.features.exercise, session.features.exerciseEngine);
  renderRoster();
  refresh();
  const timer = setInterval(refresh, 15_000);
  return { update: renderRoster, destroy: () => clearInterval(timer) };
}
