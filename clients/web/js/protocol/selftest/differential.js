// Differential checks: the Python test sends inputs, the browser judges them with the protocol layer's own
// parsers, and the test compares each verdict (and each serialized byte) with hotline.protocol's.

import { ProtocolError } from "../errors.js";
import { b64d, dumpJson, fromHex, loadJsonObject, toHex, utf8 } from "../encoding.js";
import { parseHeader } from "../header.js";
import { parseContent } from "../content.js";
import { Receipt } from "../receipts.js";
import { SignedPrekey } from "../keys.js";
import { TreeHead } from "../statements.js";
import { normalizeSafetyNumber } from "../fingerprints.js";
import { openKeyFile } from "../keyfile.js";
import { Act, Notice } from "../notices.js";

const SIGNATURE = new Uint8Array(64); // parsing never looks at the signature

/** Parsers by the name the Python test uses. @type {Record<string, (data: Uint8Array) => unknown>} */
const PARSERS = {
  header: (data) => parseHeader(data),
  content: (data) => parseContent(data),
  receipt: (data) => Receipt.parse(data, SIGNATURE),
  prekey: (data) => SignedPrekey.parse(data, SIGNATURE),
  tree_head: (data) => TreeHead.parse(data, SIGNATURE),
  keyfile: (data) => openKeyFile(data, null),
  notice: (data) => Notice.parse(data, SIGNATURE),
  act: (data) => Act.parse(data, SIGNATURE),
};

/** "ok" or the error code; anything but a ProtocolError is a bug and is reported as such. */
async function judge(/** @type {() => unknown} */ fn) {
  try {
    await fn();
    return "ok";
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    return `bug: ${err}`;
  }
}

/**
 * @param {{json: Array<{hex: string, max_bytes: number}>, b64: Array<{text: string, max_bytes: number | null}>,
 *          dump: string[], parse: Array<{kind: string, hex: string}>, safety: string[]}} args
 */
export async function differential(args) {
  const all = (/** @type {Array<() => unknown>} */ fns) => Promise.all(fns.map(judge));
  return {
    json: await all(args.json.map((c) => () => loadJsonObject(fromHex(c.hex), { what: "x", maxBytes: c.max_bytes }))),
    b64: await all(args.b64.map((c) => () => b64d(c.text, { field: "x", maxBytes: c.max_bytes ?? undefined }))),
    // Inputs arrive as JSON text; the browser's own parser builds the objects it then serializes.
    dump: args.dump.map((text) => toHex(dumpJson(loadJsonObject(utf8(text), { what: "x", maxBytes: 1 << 20 })))),
    parse: await all(args.parse.map((c) => () => PARSERS[c.kind](fromHex(c.hex)))),
    safety: await all(args.safety.map((text) => () => normalizeSafetyNumber(text))),
  };
}
