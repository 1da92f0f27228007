// Self-test suite over tests/vectors/negative.json: every input the protocol must refuse, refused with its code.

import { b64d, fromHex, utf8 } from "../encoding.js";
import { Envelope, openEnvelope, sealEnvelope } from "../envelope.js";
import { Receipt } from "../receipts.js";
import { TreeHead, verifyAuthProof } from "../statements.js";
import { openKeyFile } from "../keyfile.js";
import { ReceiverState } from "../receiver.js";
import { addressToString, parseAddress } from "../model.js";
import { Cases, assertEqual, bufferRng, deterministicBytes, refusalCode, vectorKeyring } from "./support.js";

/**
 * One runner per operation, as described in negative.json (and as tests/protocol/test_vectors.py runs them).
 * @param {Awaited<ReturnType<typeof vectorKeyring>>} keyring
 */
function operations(keyring) {
  const key = (/** @type {string} */ address) => {
    const found = keyring.directory.get(address);
    if (!found) throw new Error(`no directory key for ${address}`);
    return found;
  };
  return {
    async open_envelope(/** @type {any} */ vector) {
      const envelope = Envelope.fromBytes(utf8(vector.wire_text));
      const keys = await keyring.device(vector.recipient);
      for (const id of vector.erase_prekeys ?? []) keys.erasePrekey(id);
      await openEnvelope(envelope, keys, key(addressToString(envelope.header.sender)));
    },
    async seal_envelope(/** @type {any} */ vector) {
      const recipients = await Promise.all(vector.recipients.map(keyring.signedPrekey));
      await sealEnvelope(await keyring.device(vector.sender), {
        channel: "delhi-islamabad",
        seq: Object.fromEntries(recipients.map((p) => [p.owner.member, 1])),
        recipients,
        precedence: "FLASH",
        intent: "link_test",
        text: "link test",
        nowMs: vector.now_ms,
        rng: bufferRng(await deterministicBytes("negative seal", 64)),
      });
    },
    async verify_receipt(/** @type {any} */ vector) {
      const receipt = await Receipt.fromJson(vector.receipt);
      await receipt.verify(key(receipt.issuer === null ? "relay" : addressToString(receipt.issuer)));
    },
    async verify_tree_head(/** @type {any} */ vector) {
      await TreeHead.fromJson(vector.tree_head).verify(key("relay"));
    },
    async verify_auth(/** @type {any} */ vector) {
      const signature = b64d(vector.signature, { field: "signature" });
      const challenge = fromHex(vector.challenge_hex);
      await verifyAuthProof(key(vector.device), signature, vector.relay_id, challenge, parseAddress(vector.device));
    },
    async open_key_file(/** @type {any} */ vector) {
      await openKeyFile(utf8(vector.file_text), vector.passphrase);
    },
  };
}

/** A receive vector: the events must match, and the last message must not be accepted again. */
function receiveCode(/** @type {any} */ vector) {
  const state = new ReceiverState({ strictStart: vector.strict_start });
  const events = vector.messages.map((/** @type {any} */ m) =>
    state.receive(parseAddress(m.sender), m.seq, m.id).map((e) => e.type),
  );
  assertEqual(events, vector.expected_events, "events");
  const last = events[events.length - 1];
  if (last.includes("Accepted") || !["Duplicate", "Replay"].includes(last[0])) throw new Error("last message accepted");
  return "replay";
}

/** negative.json: every vector refused with exactly its error code. */
export async function negativeSuite(/** @type {any} */ v) {
  const cases = new Cases();
  const keyring = await vectorKeyring(v.keys);
  const ops = /** @type {Record<string, (vector: any) => Promise<void>>} */ (operations(keyring));
  for (const vector of v.negative.vectors) {
    await cases.check(vector.name, async () => {
      const code =
        vector.operation === "receive" ? receiveCode(vector) : await refusalCode(() => ops[vector.operation](vector));
      assertEqual(code, vector.error, `${vector.operation} refusal code`);
    });
  }
  return cases.results;
}
