// The protocol self-test page (test-vectors.html): runs the shared vectors in this browser and shows the results.
//
// A person can press "Run" to check that their browser computes the protocol exactly as the reference
// does; the automated tests (tests/web/) drive the same suites through `globalThis.hotlineSelftest`.

import { dataLocations, fetchJson } from "./support.js";
import {
  envelopeSuite,
  fingerprintsSuite,
  keyfileSuite,
  keysSuite,
  receiptsSuite,
  statementsSuite,
} from "./vectors.js";
import { negativeSuite } from "./negative.js";
import { apiSuite } from "./api.js";
import { hpkeSuite } from "./hpke.js";
import { workedExample } from "./worked_example.js";
import { receiverSuite, runReceiverScripts } from "./receiver.js";
import { merkleSuite } from "./merkle.js";
import { interopSteps } from "./interop.js";
import { differential } from "./differential.js";
import { weakKeys } from "./weak_keys.js";

/** @typedef {import("./support.js").CaseResult} CaseResult */

const VECTOR_FILES = ["keys", "fingerprints", "receipts", "tree_head", "auth", "keyfile", "envelope", "negative"];

/** @type {Promise<Record<string, any>> | null} */
let vectorData = null;

/** Every vector file, fetched once. */
function loadVectors() {
  vectorData ??= (async () => {
    const where = dataLocations();
    /** @type {Record<string, any>} */
    const data = {};
    for (const name of VECTOR_FILES) data[name] = await fetchJson(where.vectors, `${name}.json`);
    data.rfc9180 = await fetchJson(where.testData, "rfc9180_base_x25519_sha256_aes256gcm.json");
    return data;
  })();
  return vectorData;
}

/** Suites that need nothing but the vector files. @type {Record<string, (v: any) => Promise<CaseResult[]>>} */
const SUITES = {
  keys: keysSuite,
  fingerprints: fingerprintsSuite,
  receipts: receiptsSuite,
  statements: statementsSuite,
  keyfile: keyfileSuite,
  envelope: envelopeSuite,
  negative: negativeSuite,
  hpke: hpkeSuite,
  receiver: () => receiverSuite(),
  api: () => apiSuite(),
};

/** Steps that take their inputs from the caller (the Python tests). @type {Record<string, (args: any) => unknown>} */
const STEPS = {
  merkle: merkleSuite,
  receiverScripts: runReceiverScripts,
  differential,
  workedExample,
  weakKeys,
  ...interopSteps,
};

/**
 * Run one suite by name.
 * @param {string} name
 * @returns {Promise<{suite: string, cases: CaseResult[], ms: number}>}
 */
async function run(name) {
  const suite = SUITES[name];
  if (!suite) throw new Error(`no suite ${name}`);
  const started = performance.now();
  const cases = await suite(await loadVectors());
  return { suite: name, cases, ms: Math.round(performance.now() - started) };
}

/** @param {string} name @param {unknown} args */
async function step(name, args) {
  const fn = STEPS[name];
  if (!fn) throw new Error(`no step ${name}`);
  return fn(args);
}

/** Show one suite's results in the page's table (textContent only: nothing is parsed as HTML). */
function render(/** @type {{suite: string, cases: CaseResult[]}} */ result) {
  const tbody = document.querySelector("#results tbody");
  if (!tbody) return;
  for (const c of result.cases) {
    const row = document.createElement("tr");
    for (const text of [result.suite, c.name, c.ok ? "pass" : `FAIL — ${c.error}`]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    row.className = c.ok ? "pass" : "fail";
    tbody.append(row);
  }
}

async function runAllInPage() {
  const status = document.getElementById("status");
  const button = /** @type {HTMLButtonElement | null} */ (document.getElementById("run"));
  if (button) button.disabled = true;
  document.querySelector("#results tbody")?.replaceChildren();
  let passed = 0;
  let failed = 0;
  try {
    for (const name of Object.keys(SUITES)) {
      if (status) status.textContent = `running ${name}…`;
      const result = await run(name);
      render(result);
      for (const c of result.cases) c.ok ? passed++ : failed++;
    }
    if (status) status.textContent = `${passed} passed, ${failed} failed`;
  } catch (err) {
    if (status) status.textContent = `could not run: ${err}`;
  } finally {
    if (button) button.disabled = false;
  }
}

globalThis.hotlineSelftest = Object.freeze({ suites: Object.keys(SUITES), steps: Object.keys(STEPS), run, step });

const button = document.getElementById("run");
if (button) {
  button.addEventListener("click", runAllInPage);
  /** @type {HTMLButtonElement} */ (button).disabled = false;
  const status = document.getElementById("status");
  if (status) status.textContent = "ready";
}
