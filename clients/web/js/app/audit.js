// The operator's audit tools in the browser: fetch the log and tree heads, verify them here, export them.
//
// What "verify" proves, computed entirely in this browser with the relay key pinned at enrollment:
//   1. the tree head is signed by the relay;
//   2. the entries 0…size−1 hash (RFC 9162 leaves) to the signed root: nothing was edited, removed,
//      reordered or inserted below that size;
//   3. a tree head seen earlier is a prefix of this one (its root is recomputed from the same entries):
//      the relay did not rewrite history between the two;
//   4. every envelope-accepted entry is signed by its sender's device key, as enrolled earlier in the same
//      log and not revoked before, and its envelope hash and metadata match its header;
//   5. every device receipt in the log is signed by its issuer's enrolled key.
// Entries hold metadata and signatures only; nothing here can read a message.
//
// Where the entries come from is feature-detected: the audit API for operators is being built; until a
// relay offers it, an administrator can load the raw log with the admin token (kept in this tab only).

import {
  Act,
  Notice,
  Receipt,
  TreeHead,
  b64d,
  b64e,
  frame,
  leafHash,
  loadJsonObject,
  parseHeader,
  rootFromLeafHashes,
  utf8,
  verifyConsistency,
} from "../protocol/index.js";
import { sha256, verifySignature } from "../protocol/crypto.js";
import { dumpJson } from "../protocol/json.js";
import { RelayError, isMissingEndpoint, request } from "./api.js";

const DS_ENVELOPE = utf8("hotline/v1/envelope");
const DS_ENVELOPE_HASH = utf8("hotline/v1/envelope-hash");
const MAX_ENTRY_BYTES = 256 * 1024;
const PAGE = 1000;
const ED25519_KEY_LEN = 32;

/**
 * The newest signed tree head, verified with the relay key.
 * @param {Uint8Array} relayKey
 */
export async function fetchTreeHead(relayKey) {
  const raw = await request("GET", "/v1/audit/tree-head");
  const head = TreeHead.fromJson(raw.tree_head);
  await head.verify(relayKey);
  return { head, raw };
}

/**
 * Where this browser can read log entries from, tried in order. Each answers pages shaped like the admin
 * endpoint: {"size", "entries": [{"index", "at_ms", "entry", "leaf_hash"}]}.
 * @param {import("./desk.js").Desk} desk
 * @param {string | null} adminToken
 */
function entrySources(desk, adminToken) {
  /** @type {Array<{name: string, page: (start: number, limit: number) => Promise<any>}>} */
  const sources = [
    {
      name: "the operators' audit API (this channel's entries; other channels' as hashes only)",
      page: (start, limit) => desk.call("GET", "/audit/entries", { params: { start, limit } }),
    },
  ];
  if (adminToken) {
    // The administrator asked for everything: the admin sources go first.
    sources.unshift(
      {
        name: "admin audit API",
        page: (start, limit) => request("GET", "/v1/admin/audit/entries", { token: adminToken, params: { start, limit } }),
      },
      {
        name: "admin raw log",
        page: (start, limit) => request("GET", "/v1/admin/audit", { token: adminToken, params: { start, limit } }),
      },
    );
  }
  return sources;
}

/**
 * Every entry below `size`, from the first source that answers.
 * @param {import("./desk.js").Desk} desk
 * @param {string | null} adminToken
 * @param {number} size
 * @param {(done: number) => void} [progress]
 * @returns {Promise<{source: string | null, entries: any[], refusal: string | null}>}
 */
export async function fetchEntries(desk, adminToken, size, progress) {
  let refusal = null;
  for (const source of entrySources(desk, adminToken)) {
    try {
      const entries = [];
      while (entries.length < size) {
        const page = await source.page(entries.length, Math.min(PAGE, size - entries.length));
        const got = Array.isArray(page?.entries) ? page.entries : [];
        if (!got.length) break;
        entries.push(...got);
        progress?.(entries.length);
      }
      return { source: source.name, entries: entries.slice(0, size), refusal: null };
    } catch (err) {
      if (isMissingEndpoint(err)) continue;
      if (err instanceof RelayError && ["forbidden", "unauthorized", "not_a_member"].includes(err.code)) {
        refusal = `${source.name}: ${err.message}`;
        continue;
      }
      throw err;
    }
  }
  return { source: null, entries: [], refusal };
}

/**
 * Check that an earlier verified tree head is a prefix of a newer one with the relay's consistency
 * proof (RFC 9162 §2.1.4): what a desk that cannot read the entries can still prove.
 * @param {import("./desk.js").Desk} desk
 * @param {{size: number, root: string}} earlier
 * @param {TreeHead} head
 * @returns {Promise<boolean | null>} null when this relay offers no proofs
 */
export async function checkConsistency(desk, earlier, head) {
  if (earlier.size > head.size) return false;
  if (earlier.size === head.size) return earlier.root === b64e(head.root);
  let answer;
  try {
    answer = await desk.call("GET", "/audit/consistency", { params: { old_size: earlier.size, new_size: head.size } });
  } catch (err) {
    if (isMissingEndpoint(err)) return null;
    throw err;
  }
  const proof = (answer?.proof ?? []).map((/** @type {string} */ p) => b64d(p, { field: "proof", maxBytes: 32 }));
  try {
    await verifyConsistency(earlier.size, head.size, b64d(earlier.root, { field: "root", maxBytes: 32 }), head.root, proof);
    return true;
  } catch {
    return false;
  }
}

/**
 * @typedef {object} VerifyReport
 * @property {boolean} ok
 * @property {string[]} problems first problems found, in log order
 * @property {number} size
 * @property {boolean} rootMatches
 * @property {boolean} treeHeadSigned
 * @property {{size: number, ok: boolean} | null} earlier the tree head seen before, and whether this log extends it
 * @property {number} envelopesChecked
 * @property {number} receiptsChecked
 * @property {number} notChecked signatures of a suite the browser cannot check (hotline-pq1)
 * @property {number} hidden entries of other channels, served as leaf hashes only
 * @property {number} relayReceiptsChecked relay-accepted receipts served with the entries, checked
 * @property {number} noticesChecked relay notices (escalations, crisis changes…) checked
 * @property {Record<string, number>} types
 * @property {Record<string, any>} desks per channel/member counts
 * @property {number} ms
 */

/**
 * Verify entries 0…head.size−1 against a verified tree head (and an earlier head, if any).
 * @param {{head: TreeHead, entries: any[], relayKey: Uint8Array, earlier?: {size: number, root: string} | null,
 *          progress?: (done: number) => void}} input
 * @returns {Promise<VerifyReport>}
 */
export async function verifyLog({ head, entries, relayKey, earlier = null, progress }) {
  const started = performance.now();
  /** @type {string[]} */
  const problems = [];
  const problem = (/** @type {string} */ text) => {
    if (problems.length < 20) problems.push(text);
  };
  const size = head.size;
  if (entries.length < size) problem(`only ${entries.length} of ${size} entries were served`);
  /** @type {Uint8Array[]} */
  const leaves = [];
  /** @type {Map<string, {key: Uint8Array, enrolledAt: number, revokedAt: number | null}>} */
  const keys = new Map();
  /** @type {Record<string, number>} */
  const types = {};
  /** @type {Record<string, any>} */
  const desks = {};
  let envelopesChecked = 0;
  let receiptsChecked = 0;
  let notChecked = 0;
  let hidden = 0;
  let relayReceiptsChecked = 0;
  let noticesChecked = 0;
  const deskOf = (/** @type {string} */ channel, /** @type {string} */ member) =>
    (desks[`${channel} · ${member}`] ??= { sent: 0, FLASH: 0, IMMEDIATE: 0, PRIORITY: 0, ROUTINE: 0, delivered: 0, acknowledged: 0, declined: 0, rejected: 0, escalations: 0, devices: 0 });

  for (let i = 0; i < Math.min(size, entries.length); i++) {
    const item = entries[i];
    if (item.index !== undefined && item.index !== i) problem(`entry ${i}: served as index ${item.index} (reordered or missing entries)`);
    if (item.entry === undefined) {
      // Another channel's entry: only its leaf hash is served, and it still counts in the root.
      hidden++;
      try {
        const leaf = b64d(item.leaf_hash, { field: "leaf_hash", maxBytes: 32 });
        if (leaf.length !== 32) throw new Error("not 32 bytes");
        leaves.push(leaf);
      } catch {
        problem(`entry ${i}: neither its bytes nor a valid leaf hash were served`);
        leaves.push(new Uint8Array(32));
      }
      continue;
    }
    let bytes;
    try {
      bytes = b64d(item.entry, { field: "entry", maxBytes: MAX_ENTRY_BYTES });
    } catch {
      problem(`entry ${i}: not base64url`);
      leaves.push(new Uint8Array(32));
      continue;
    }
    const leaf = await leafHash(bytes);
    leaves.push(leaf);
    if (item.leaf_hash && item.leaf_hash !== b64e(leaf)) problem(`entry ${i}: its bytes do not hash to the leaf hash served with it (edited)`);
    let e;
    try {
      e = loadJsonObject(bytes, { what: `entry ${i}`, maxBytes: MAX_ENTRY_BYTES });
      if (b64e(dumpJson(e)) !== b64e(bytes)) problem(`entry ${i}: not in the canonical form`);
    } catch (err) {
      problem(`entry ${i}: ${err instanceof Error ? err.message : err}`);
      continue;
    }
    const type = String(e.type);
    types[type] = (types[type] ?? 0) + 1;
    const channel = String(e.channel);
    const at = Number(e.at_ms);
    try {
      if (type === "device-enrolled") {
        keys.set(`${channel}/${e.member}/${e.device}`, {
          key: b64d(e.signing_key, { field: "signing_key", maxBytes: 4096 }),
          enrolledAt: at,
          revokedAt: null,
        });
        deskOf(channel, String(e.member)).devices++;
      } else if (type === "device-revoked") {
        const k = keys.get(`${channel}/${e.member}/${e.device}`);
        if (k && k.revokedAt === null) k.revokedAt = at;
      } else if (type === "member-revoked") {
        for (const d of /** @type {string[]} */ (e.devices ?? [])) {
          const k = keys.get(`${channel}/${e.member}/${d}`);
          if (k && k.revokedAt === null) k.revokedAt = at;
        }
      } else if (type === "envelope-accepted") {
        const sender = /** @type {any} */ (e.sender);
        const desk = deskOf(channel, sender.member);
        desk.sent++;
        desk[String(e.precedence)] = (desk[String(e.precedence)] ?? 0) + 1;
        const k = keys.get(`${channel}/${sender.member}/${sender.device}`);
        if (!k) {
          problem(`entry ${i}: envelope from ${sender.member}/${sender.device}, a device the log never enrolled`);
        } else if (k.key.length !== ED25519_KEY_LEN) {
          notChecked++;
        } else {
          if (k.revokedAt !== null && k.revokedAt <= at) problem(`entry ${i}: envelope from a device revoked before it`);
          await checkEnvelopeEntry(e, k.key, channel);
          envelopesChecked++;
        }
        if (item.accepted) {
          const accepted = Receipt.fromJson(item.accepted);
          await accepted.verify(relayKey);
          if (accepted.kind !== "relay-accepted" || accepted.logIndex !== i || accepted.messageId !== e.message_id || b64e(accepted.envelopeHash) !== e.envelope_hash) {
            throw new Error("the relay's receipt served with it names another entry");
          }
          relayReceiptsChecked++;
        }
      } else if (type === "receipt") {
        const issuer = /** @type {any} */ (e.issuer);
        const receipt = Receipt.fromJson(e.receipt);
        if (receipt.kind !== e.kind || receipt.messageId !== e.message_id || receipt.channel !== channel) {
          throw new Error("the receipt does not match its entry");
        }
        if (issuer) {
          const desk = deskOf(channel, issuer.member);
          desk[receipt.kind] = (desk[receipt.kind] ?? 0) + 1;
          const k = keys.get(`${channel}/${issuer.member}/${issuer.device}`);
          if (receipt.declined) desk.declined++;
          if (!k) problem(`entry ${i}: receipt from ${issuer.member}/${issuer.device}, a device the log never enrolled`);
          else if (k.key.length !== ED25519_KEY_LEN) notChecked++;
          else {
            await receipt.verify(k.key);
            receiptsChecked++;
          }
        }
      } else if (type === "notice") {
        const notice = Notice.fromJson(e.notice);
        if (notice.kind !== e.kind || notice.channel !== channel) throw new Error("the notice does not match its entry");
        if (relayKey.length === ED25519_KEY_LEN) {
          await notice.verify(relayKey);
          noticesChecked++;
        } else notChecked++;
        const f = /** @type {any} */ (notice).fields;
        if (notice.kind === "escalation") deskOf(channel, f.desk).escalations++;
      } else if (type === "act") {
        const act = Act.fromJson(e.act);
        const issuer = /** @type {any} */ (act).issuer;
        const k = keys.get(`${channel}/${issuer.member}/${issuer.device}`);
        if (!k) problem(`entry ${i}: act by ${issuer.member}/${issuer.device}, a device the log never enrolled`);
        else if (k.key.length !== ED25519_KEY_LEN) notChecked++;
        else {
          await act.verify(k.key);
          receiptsChecked++;
        }
      }
    } catch (err) {
      problem(`entry ${i} (${type}): ${err instanceof Error ? err.message : err}`);
    }
    if (i % 200 === 199) progress?.(i + 1);
  }
  let rootMatches = false;
  if (leaves.length === size) {
    rootMatches = b64e(await rootFromLeafHashes(leaves)) === b64e(head.root);
    if (!rootMatches) problem(`the entries do not hash to the signed root of size ${size}`);
  }
  let earlierResult = null;
  if (earlier && earlier.size > 0) {
    if (earlier.size > size) {
      earlierResult = { size: earlier.size, ok: false };
      problem(`an earlier tree head had ${earlier.size} entries; this one has only ${size} (the log went backwards)`);
    } else if (leaves.length >= earlier.size) {
      const ok = b64e(await rootFromLeafHashes(leaves.slice(0, earlier.size))) === earlier.root;
      earlierResult = { size: earlier.size, ok };
      if (!ok) problem(`the tree head of size ${earlier.size} seen earlier is not a prefix of this log (history was rewritten)`);
    }
  }
  progress?.(size);
  return {
    ok: problems.length === 0 && rootMatches,
    problems,
    size,
    rootMatches,
    treeHeadSigned: true,
    earlier: earlierResult,
    envelopesChecked,
    receiptsChecked,
    notChecked,
    hidden,
    relayReceiptsChecked,
    noticesChecked,
    types,
    desks,
    ms: Math.round(performance.now() - started),
  };
}

/**
 * Check one envelope-accepted entry from its own bytes (PROTOCOL.md §12.1).
 * @param {Record<string, any>} e
 * @param {Uint8Array} senderKey
 * @param {string} channel
 */
async function checkEnvelopeEntry(e, senderKey, channel) {
  const header = b64d(e.header, { field: "header", maxBytes: 16 * 1024 });
  const bodyHash = b64d(e.body_hash, { field: "body_hash", maxBytes: 32 });
  const keysHash = b64d(e.keys_hash, { field: "keys_hash", maxBytes: 32 });
  const sig = b64d(e.sig, { field: "sig", maxBytes: 64 });
  await verifySignature(senderKey, sig, frame(DS_ENVELOPE, header, bodyHash, keysHash));
  const hash = await sha256(frame(DS_ENVELOPE_HASH, header, bodyHash, keysHash, sig));
  if (b64e(hash) !== e.envelope_hash) throw new Error("the envelope hash does not match");
  const h = parseHeader(header);
  const same =
    h.messageId === e.message_id &&
    h.channel === channel &&
    h.sender.member === e.sender.member &&
    h.sender.device === e.sender.device &&
    h.precedence === e.precedence &&
    h.exercise === e.exercise &&
    JSON.stringify(Object.fromEntries(h.seq)) === JSON.stringify(sortedObject(e.seq)) &&
    JSON.stringify(h.recipients.map((r) => [r.address.member, r.address.device, r.prekeyId])) ===
      JSON.stringify(e.recipients.map((/** @type {any} */ r) => [r.member, r.device, r.prekey]));
  if (!same) throw new Error("the entry's metadata differs from the signed header");
}

/** @param {Record<string, number>} obj */
function sortedObject(obj) {
  return Object.fromEntries(Object.entries(obj ?? {}).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * The log as JSON Lines: the relay's identity, the verified tree head, then every entry — what an
 * operator keeps and checks offline (hotline's own verifier or any RFC 9162 implementation).
 * @param {{relayId: string, relayPublicKey: string, head: TreeHead, entries: any[], channel: string}} input
 */
export function exportJsonLines({ relayId, relayPublicKey, head, entries, channel }) {
  const lines = [
    { type: "relay", relay_id: relayId, public_key: relayPublicKey, exported_for_channel: channel },
    { type: "tree-head", size: head.size, root: b64e(head.root), at_ms: head.atMs, tree_head: head.toJson() },
    ...entries.map((e) =>
      e.entry === undefined
        ? { type: "leaf", index: e.index, leaf_hash: e.leaf_hash }
        : { type: "entry", index: e.index, entry: e.entry, leaf_hash: e.leaf_hash, ...(e.accepted ? { accepted: e.accepted } : {}) },
    ),
  ];
  return `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`;
}

/**
 * What an entry says, in a line, for the table (metadata only: there is nothing else).
 * @param {any} item
 */
export function describeEntry(item) {
  if (item.entry === undefined) return null; // another channel's entry: a hash only
  let e;
  try {
    e = loadJsonObject(b64d(item.entry, { field: "entry", maxBytes: MAX_ENTRY_BYTES }), { what: "entry", maxBytes: MAX_ENTRY_BYTES });
  } catch {
    return { type: "?", channel: "", summary: "unreadable entry", atMs: item.at_ms };
  }
  const a = /** @type {any} */ (e);
  const who = (/** @type {any} */ x) => (x ? `${x.member}/${x.device}` : "relay");
  /** @type {Record<string, () => string>} */
  const summaries = {
    "channel-created": () => `channel created with ${a.members?.map((/** @type {any} */ m) => `${m.member} (${m.role})`).join(", ")}`,
    "member-added": () => `${a.member} added as ${a.role}`,
    "invite-created": () => `invite for ${a.member} (${a.role})`,
    "device-enrolled": () => `${a.member}/${a.device} enrolled (${a.role})`,
    "prekeys-published": () => `${a.member}/${a.device} published ${a.prekeys?.length ?? 0} prekey(s)`,
    "device-revoked": () => `${a.member}/${a.device} revoked by ${a.by}`,
    "member-revoked": () => `${a.member} revoked by ${a.by}`,
    "envelope-accepted": () =>
      `${a.precedence}${a.exercise ? " EXERCISE" : ""} ${who(a.sender)} → ${[...new Set(a.recipients?.map((/** @type {any} */ r) => r.member))].join(", ")} · ${a.message_id}`,
    receipt: () => `${a.kind} by ${who(a.issuer)} · ${a.message_id}`,
    "auth-refused": () => `log-in refused for ${a.member}/${a.device}: ${a.reason}`,
    notice: () => `relay notice: ${a.kind}`,
    act: () => `${a.kind} by ${who(a.issuer)}`,
    "policy-changed": () => `policy version ${a.version} set by ${a.by}`,
  };
  const summary = summaries[a.type]?.() ?? Object.keys(a).filter((k) => !["v", "type", "at_ms", "channel"].includes(k)).join(", ");
  return { type: String(a.type), channel: String(a.channel ?? ""), summary, atMs: Number(a.at_ms) };
}
