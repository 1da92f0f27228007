// The operator's view of the audit log: tree heads, entries (metadata only), per-desk counts, a "verify"
// button that recomputes the Merkle root and checks every signature in this browser, and an export.

import { h, fill, clock, dateTime, announce } from "../dom.js";
import { describe } from "../desk.js";
import { checkConsistency, describeEntry, exportJsonLines, fetchEntries, fetchTreeHead, verifyLog } from "../audit.js";
import { b64d, toHex, utf8Decode } from "../../protocol/index.js";

const SHOWN_ENTRIES = 200;

/**
 * @param {HTMLElement} root
 * @param {import("../session.js").Session} session
 */
export function operatorView(root, session) {
  const desk = session.desk;
  /** Admin token: kept in this variable only — never stored, gone when the tab closes. */
  let adminToken = /** @type {string | null} */ (null);
  /** @type {{head: any, entries: any[], source: string | null} | null} */
  let loaded = null;

  const headBox = h("dl", { class: "facts", id: "tree-head" }, h("dt", null, "Tree head"), h("dd", null, "loading…"));
  const sourceNote = h("p", { class: "hint", id: "entries-source" });
  const verifyButton = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "button primary", id: "verify-button" }, "Verify log"));
  const exportButton = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "button", id: "export-button", disabled: true }, "Export (JSON Lines)"));
  const reloadButton = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "button ghost", id: "reload-button" }, "Reload"));
  const progress = /** @type {HTMLProgressElement} */ (h("progress", { id: "verify-progress", max: 1, value: 0, hidden: true, "aria-label": "Verification progress" }));
  const result = h("div", { class: "verify-result", id: "verify-result", role: "status" });
  const counts = h("div", { id: "desk-counts" });
  const table = h("tbody", { id: "entries-body" });
  const tokenInput = /** @type {HTMLInputElement} */ (h("input", { id: "admin-token", type: "password", autocomplete: "off", spellcheck: "false" }));

  fill(
    root,
    h(
      "div",
      { class: "page operator" },
      h(
        "section",
        { class: "card", "aria-labelledby": "audit-h" },
        h("div", { class: "card-head" }, h("h1", { id: "audit-h" }, "Audit log"), h("span", { class: "muted small" }, "metadata and signatures only — no message content")),
        headBox,
        h("div", { class: "row wrap" }, verifyButton, exportButton, reloadButton, progress),
        result,
        sourceNote,
      ),
      h("section", { class: "card", "aria-labelledby": "counts-h" }, h("h2", { id: "counts-h" }, "Per desk"), counts),
      h(
        "section",
        { class: "card", "aria-labelledby": "entries-h" },
        h("h2", { id: "entries-h" }, "Entries"),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "entries" },
            h("caption", { class: "visually-hidden" }, "Audit-log entries, newest first"),
            h("thead", null, h("tr", null, ["#", "Time", "Type", "What"].map((c) => h("th", { scope: "col" }, c)))),
            table,
          ),
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "admin-h", hidden: desk.info.role !== "operator" },
        h("h2", { id: "admin-h" }, "Administrator access"),
        h(
          "p",
          { class: "hint" },
          "Operators see their own channel's entries and the other channels' as hashes only. The relay's administrator can load every entry ",
          "by pasting the admin token here: it is kept in this tab's memory only, never stored, and sent only to this relay.",
        ),
        h(
          "form",
          {
            class: "row wrap",
            onsubmit: (/** @type {Event} */ ev) => {
              ev.preventDefault();
              adminToken = tokenInput.value.trim() || null;
              tokenInput.value = "";
              load();
            },
          },
          h("label", { for: "admin-token" }, "Admin token"),
          tokenInput,
          h("button", { type: "submit", class: "button" }, "Load the log"),
        ),
      ),
    ),
  );

  async function load() {
    fill(result);
    result.className = "verify-result";
    try {
      const { head } = await fetchTreeHead(desk.relayKey);
      const st = session.state;
      const earlier = st?.treeHead;
      fill(
        headBox,
        h("dt", null, "Newest tree head"),
        h("dd", { id: "tree-head-size" }, `${head.size} entries, signed by the relay ✓`),
        h("dt", null, "Root"),
        h("dd", { class: "mono small" }, toHex(head.root)),
        h("dt", null, "Signed at"),
        h("dd", null, dateTime(head.atMs)),
        h("dt", null, "Seen before here"),
        h("dd", null, earlier ? `${earlier.size} entries at ${dateTime(earlier.atMs)}` : "none"),
      );
      const fetched = await fetchEntries(desk, adminToken, head.size);
      loaded = { head, entries: fetched.entries, source: fetched.source };
      exportButton.disabled = false;
      if (fetched.source) {
        sourceNote.textContent = `Entries from: ${fetched.source}.`;
      } else {
        sourceNote.textContent = fetched.refusal
          ? "Only operators read the log's entries. This device checks the relay's signed tree head and, with consistency proofs, that the log only ever grows."
          : "This relay does not offer the log's entries to this device, so only the signed tree head can be checked here. The export then holds the tree head alone.";
      }
      renderEntries(fetched.entries);
      renderCounts(null);
    } catch (err) {
      fill(headBox, h("dt", null, "Tree head"), h("dd", { class: "error" }, describe(err)));
    }
  }

  /** @param {any[]} entries */
  function renderEntries(entries) {
    const shown = entries.filter((e) => e.entry !== undefined).slice(-SHOWN_ENTRIES).reverse();
    fill(
      table,
      shown.length
        ? shown.map((item) => {
            const d = /** @type {any} */ (describeEntry(item));
            const other = d.channel !== desk.info.channel ? `${d.channel}: ` : "";
            return h(
              "tr",
              { "data-type": d.type },
              h("td", null, String(item.index)),
              h("td", null, clock(d.atMs)),
              h("td", { class: "nowrap" }, d.type),
              h("td", null, `${other}${d.summary}`),
            );
          })
        : h("tr", null, h("td", { colspan: 4, class: "muted" }, "No entries loaded.")),
    );
  }

  /** @param {Record<string, any> | null} desks */
  function renderCounts(desks) {
    if (!loaded?.entries.length) {
      fill(counts, h("p", { class: "muted" }, "Counts appear once the entries are loaded."));
      return;
    }
    const rows = desks ?? countDesks(loaded.entries);
    const names = Object.keys(rows).sort();
    // One channel (an operator's view): name the desks alone.
    const own = `${desk.info.channel} · `;
    const label = (/** @type {string} */ n) => (names.every((x) => x.startsWith(own)) ? n.slice(own.length) : n);
    fill(
      counts,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "counts" },
          h("caption", { class: "visually-hidden" }, "Messages and receipts per desk"),
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              ["Desk", "Devices", "Sent", "FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE", "Delivered", "Acknowledged", "Declined", "Rejected", "Escalations"].map((c) =>
                h("th", { scope: "col" }, c),
              ),
            ),
          ),
          h(
            "tbody",
            null,
            names.map((n) => {
              const r = rows[n];
              return h(
                "tr",
                null,
                h("th", { scope: "row" }, label(n)),
                [r.devices, r.sent, r.FLASH, r.IMMEDIATE, r.PRIORITY, r.ROUTINE, r.delivered, r.acknowledged, r.declined, r.rejected, r.escalations].map((v) =>
                  h("td", null, String(v ?? 0)),
                ),
              );
            }),
          ),
        ),
      ),
    );
  }

  verifyButton.addEventListener("click", async () => {
    verifyButton.disabled = true;
    try {
      if (!loaded) await load();
      if (!loaded) return;
      const { head, entries } = loaded;
      if (!entries.length && head.size > 0) {
        // No entries for this device: what it can still prove is the signature and, against the
        // head it verified before, that the log only grew (a consistency proof).
        const earlier = session.state?.treeHead ?? null;
        const consistent = earlier ? await checkConsistency(desk, earlier, head) : null;
        if (consistent === false) {
          result.className = "verify-result bad";
          fill(
            result,
            h("p", { class: "verdict" }, h("strong", null, "VERIFICATION FAILED."), ` The relay's log of ${head.size} entries does not extend the one of ${earlier.size} entries this browser verified before: history was rewritten or forked.`),
          );
          announce("Log verification failed");
          return;
        }
        result.className = "verify-result partial";
        fill(
          result,
          h("p", { class: "verdict" }, h("strong", null, "Tree head verified: "), `signed by the relay key pinned at enrollment (size ${head.size}).`),
          h(
            "ul",
            null,
            consistent
              ? h("li", null, `It extends the tree head of size ${earlier.size} verified here before (consistency proof checked): nothing earlier was rewritten.`)
              : h("li", null, earlier ? "This relay offers no consistency proofs to check it against the head seen before." : "This is the first tree head verified here; later ones are checked against it."),
            h("li", null, "The entries themselves are for operators; this device cannot recompute the root."),
          ),
        );
        await rememberHead(head);
        return;
      }
      progress.hidden = false;
      progress.max = Math.max(1, head.size);
      const earlier = session.state?.treeHead ?? null;
      const report = await verifyLog({
        head,
        entries,
        relayKey: desk.relayKey,
        earlier,
        progress: (done) => {
          progress.value = done;
        },
      });
      progress.hidden = true;
      renderCounts(report.desks);
      if (report.ok) {
        result.className = "verify-result ok";
        fill(
          result,
          h("p", { class: "verdict" }, h("strong", null, "Log verified."), ` ${report.size} entries recomputed to the signed root in ${report.ms} ms.`),
          h(
            "ul",
            null,
            h("li", null, "Tree head signed by the relay key pinned at enrollment."),
            h("li", null, `${report.envelopesChecked} envelope signatures and ${report.receiptsChecked} receipt and act signatures check out against the keys the log enrolled.`),
            report.relayReceiptsChecked || report.noticesChecked
              ? h(
                  "li",
                  null,
                  `${[
                    report.relayReceiptsChecked ? `${report.relayReceiptsChecked} relay receipts` : "",
                    report.noticesChecked ? `${report.noticesChecked} relay notices (escalations, crisis changes…)` : "",
                  ]
                    .filter(Boolean)
                    .join(" and ")} carry the relay's signature.`,
                )
              : null,
            report.hidden ? h("li", null, `${report.hidden} entries of other channels were served as hashes only; they count in the root, their content is not yours to see.`) : null,
            report.earlier && report.earlier.size < report.size
              ? h("li", null, `The tree head of size ${report.earlier.size} verified here earlier is a prefix of this log: no history was rewritten.`)
              : null,
            report.notChecked ? h("li", null, `${report.notChecked} post-quantum (hotline-pq1) signatures cannot be checked in a browser; check them with the command-line verifier.`) : null,
          ),
        );
        await rememberHead(head);
        announce("Log verified");
      } else {
        result.className = "verify-result bad";
        fill(
          result,
          h("p", { class: "verdict" }, h("strong", null, "VERIFICATION FAILED."), " The log does not match what the relay signed:"),
          h("ul", null, report.problems.map((p) => h("li", null, p))),
        );
        announce("Log verification failed");
      }
    } catch (err) {
      progress.hidden = true;
      result.className = "verify-result bad";
      fill(result, h("p", null, `Could not verify: ${describe(err)}`));
    } finally {
      verifyButton.disabled = false;
    }
  });

  exportButton.addEventListener("click", () => {
    if (!loaded) return;
    const text = exportJsonLines({
      relayId: desk.info.relayId,
      relayPublicKey: desk.info.relayPublicKey,
      head: loaded.head,
      entries: loaded.entries,
      channel: desk.info.channel,
    });
    const blob = new Blob([text], { type: "application/x-ndjson" });
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: `hotline-audit-${desk.info.channel}-${loaded.head.size}.jsonl`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    announce("Export downloaded");
  });

  reloadButton.addEventListener("click", () => load());

  /** Keep the newest verified head (the desk checks every later one extends it). @param {any} head */
  async function rememberHead(head) {
    await desk.observeHead(head, "the tree head verified here");
  }

  load();
  return { update() {}, destroy() {} };
}

/** Counts without verifying (shown before "Verify" is pressed; verifyLog recounts). @param {any[]} entries */
function countDesks(entries) {
  /** @type {Record<string, any>} */
  const rows = {};
  for (const item of entries) {
    let e;
    try {
      e = JSON.parse(utf8Decode(b64d(item.entry, { field: "entry", maxBytes: 256 * 1024 }), "entry"));
    } catch {
      continue;
    }
    const row = (/** @type {string} */ member) =>
      (rows[`${e.channel} · ${member}`] ??= { devices: 0, sent: 0, FLASH: 0, IMMEDIATE: 0, PRIORITY: 0, ROUTINE: 0, delivered: 0, acknowledged: 0, declined: 0, rejected: 0, escalations: 0 });
    if (e.type === "device-enrolled") row(e.member).devices++;
    else if (e.type === "notice" && e.kind === "escalation") {
      try {
        const body = JSON.parse(utf8Decode(b64d(e.notice.body, { field: "notice", maxBytes: 16384 }), "notice"));
        row(body.desk).escalations = (row(body.desk).escalations ?? 0) + 1;
      } catch {
        // verifyLog reports it
      }
    }
    else if (e.type === "envelope-accepted") {
      const r = row(e.sender.member);
      r.sent++;
      r[e.precedence] = (r[e.precedence] ?? 0) + 1;
    } else if (e.type === "receipt" && e.issuer) {
      const r = row(e.issuer.member);
      r[e.kind] = (r[e.kind] ?? 0) + 1;
      try {
        if (JSON.parse(utf8Decode(b64d(e.receipt.body, { field: "receipt", maxBytes: 4096 }), "receipt")).declined === true) r.declined++;
      } catch {
        // verifyLog reports it
      }
    }
  }
  return rows;
}
