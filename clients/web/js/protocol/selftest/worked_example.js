// The worked example of PROTOCOL.md §13 computed in the browser with every input fixed (HPKE ephemeral key
// included); the Python test checks each value against the reference and against the document.

import { fromHex, toHex, utf8, utf8Decode } from "../encoding.js";
import { importKemSecret, importSigningSeed } from "../crypto.js";
import { DeviceKeys } from "../keys.js";
import { fingerprint, memberCode, safetyNumber } from "../fingerprints.js";
import { Envelope, openEnvelope, sealEnvelope } from "../envelope.js";
import { issueDeviceReceipt, issueRelayAccepted } from "../receipts.js";
import { authMessage, signAuthChallenge } from "../statements.js";
import { leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from "../merkle.js";
import { contentToBytes } from "../content.js";
import { deviceAddress } from "../model.js";
import { scrypt } from "../scrypt.js";
import { bufferRng } from "./support.js";

/** A device of the example from its seed and prekey secret (keys non-extractable). */
/**
 * @param {any} w
 * @param {string} member
 * @param {string} device
 * @param {string} prefix of the input names
 */
async function exampleDevice(w, member, device, prefix) {
  const keys = new DeviceKeys({
    address: deviceAddress(member, device),
    signing: await importSigningSeed(fromHex(w.inputs[`${prefix}_signing_seed_hex`])),
  });
  const kemKey = await importKemSecret(fromHex(w.inputs[`${prefix}_prekey_secret_hex`]));
  const prekey = await keys.newPrekey(w.now_ms, w.prekey_lifetime_ms, { kemKey });
  return { keys, prekey };
}

/**
 * Everything §13 derives, computed here. Merkle proofs are given by the caller and verified here.
 * @param {any} w tests/web/data/protocol_worked_example.json, plus `merkle` proofs from the Python reference
 */
export async function workedExample(w) {
  const delhi = await exampleDevice(w, "delhi", "laptop", "delhi_laptop");
  const islamabad = await exampleDevice(w, "islamabad", "desk", "islamabad_desk");
  const m = w.inputs.message;
  const rng = bufferRng(fromHex(w.inputs.message_id_random_hex + w.inputs.content_key_hex + w.inputs.body_nonce_hex));
  const env = await sealEnvelope(delhi.keys, {
    channel: m.channel,
    seq: m.seq,
    recipients: [islamabad.prekey],
    precedence: m.precedence,
    intent: m.intent,
    text: m.text,
    lang: m.lang,
    inReplyTo: m.in_reply_to,
    fields: m.fields,
    exercise: m.exercise,
    nowMs: w.now_ms,
    rng,
    ephemeralKeys: [await importKemSecret(fromHex(w.inputs.hpke_ephemeral_secret_hex))],
  });
  const opened = await openEnvelope(Envelope.fromBytes(env.toBytes()), islamabad.keys, delhi.keys.signingPublicKey);
  const envelopeHash = await env.hash();

  const relay = await importSigningSeed(fromHex(w.inputs.relay_signing_seed_hex));
  const common = { channel: m.channel, messageId: env.header.messageId, envelopeHash };
  const at = w.receipt_times_ms;
  const device = islamabad.keys.signing.privateKey;
  const issuer = islamabad.keys.address;
  const receipts = {
    "relay-accepted": await issueRelayAccepted(relay.privateKey, {
      ...common,
      logIndex: 0,
      atMs: at["relay-accepted"],
    }),
    delivered: await issueDeviceReceipt(device, issuer, "delivered", { ...common, atMs: at.delivered }),
    acknowledged: await issueDeviceReceipt(device, issuer, "acknowledged", { ...common, atMs: at.acknowledged }),
    rejected: await issueDeviceReceipt(device, issuer, "rejected", {
      ...common,
      atMs: at.rejected,
      reason: w.rejected_reason,
    }),
  };

  const leaves = await Promise.all(w.merkle_entries.map((/** @type {string} */ s) => leafHash(utf8(s))));
  const root = await rootFromLeafHashes(leaves);
  const { index } = w.merkle;
  await verifyInclusion(leaves[index], index, leaves.length, w.merkle.inclusion_proof_hex.map(fromHex), root);
  const oldRoot = await rootFromLeafHashes(leaves.slice(0, w.merkle.old_size));
  await verifyConsistency(w.merkle.old_size, leaves.length, oldRoot, root, w.merkle.consistency_proof_hex.map(fromHex));

  const challenge = fromHex(w.auth_challenge_hex);
  const second = await importSigningSeed(fromHex(w.inputs.delhi_second_device_signing_seed_hex));
  const delhiKey = delhi.keys.signingPublicKey;
  const islamabadKey = islamabad.keys.signingPublicKey;
  const s = w.scrypt;

  return {
    keys_non_extractable: !delhi.keys.signing.privateKey.extractable && !islamabad.keys.signing.privateKey.extractable,
    delhi_laptop_signing_public_key_hex: toHex(delhiKey),
    islamabad_desk_signing_public_key_hex: toHex(islamabadKey),
    relay_signing_public_key_hex: toHex(relay.publicKey),
    islamabad_desk_prekey: islamabad.prekey.toJson(),
    delhi_laptop_prekey: delhi.prekey.toJson(),
    wire_text: utf8Decode(env.toBytes(), "wire"),
    envelope_hash_hex: toHex(envelopeHash),
    opened_content_text: utf8Decode(contentToBytes(opened.content), "content"),
    receipts: Object.fromEntries(Object.entries(receipts).map(([kind, r]) => [kind, r.toJson()])),
    merkle_root_hex: toHex(root),
    auth_message_hex: toHex(authMessage(w.relay_id, challenge, islamabad.keys.address)),
    auth_proof_hex: toHex(await signAuthChallenge(device, w.relay_id, challenge, islamabad.keys.address)),
    fingerprints: { "delhi/laptop": await fingerprint(delhiKey), "islamabad/desk": await fingerprint(islamabadKey) },
    member_codes: {
      delhi: await memberCode("delhi", [delhiKey]),
      islamabad: await memberCode("islamabad", [islamabadKey]),
    },
    safety_number: await safetyNumber("delhi", [delhiKey], "islamabad", [islamabadKey]),
    safety_number_delhi_two_devices: await safetyNumber(
      "islamabad",
      [islamabadKey],
      "delhi",
      [delhiKey, second.publicKey],
    ),
    scrypt_key_hex: toHex(await scrypt(utf8(s.passphrase), fromHex(s.salt_hex), { n: s.n, r: s.r, p: s.p })),
  };
}
