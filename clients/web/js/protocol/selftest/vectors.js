// Self-test suites over the shared deterministic vectors of tests/vectors/: every value reproduced byte for byte.

import { b64e, frame, fromHex, toHex, utf8, utf8Decode } from "../encoding.js";
import { aeadOpen, importKemSecret, importSigningSeed, sha256 } from "../crypto.js";
import { openBase } from "../hpke.js";
import { DeviceKeys, SignedPrekey, prekeyIdFor } from "../keys.js";
import { openKeyFile } from "../keyfile.js";
import { fingerprint, memberCode, normalizeSafetyNumber, safetyNumber } from "../fingerprints.js";
import { Envelope, DS_BODY, DS_WRAP, openEnvelope, sealEnvelope } from "../envelope.js";
import { contentToBytes } from "../content.js";
import { Receipt, issueDeviceReceipt, issueRelayAccepted } from "../receipts.js";
import { TreeHead, authMessage, signAuthChallenge, signTreeHead, verifyAuthProof } from "../statements.js";
import { addressToString, parseAddress } from "../model.js";
import { uuid7 } from "../uuid7.js";
import { Cases, assert, assertBytes, assertEqual, bufferRng, deterministicBytes, vectorKeyring } from "./support.js";

/** @typedef {import("./support.js").CaseResult} CaseResult */

/** keys.json: signing and prekey keys from their secrets, signed prekeys re-made byte for byte. */
export async function keysSuite(/** @type {any} */ v) {
  const cases = new Cases();
  for (const d of v.keys.devices) {
    await cases.check(`${d.address}: signing public key from the seed`, async () => {
      const pair = await importSigningSeed(fromHex(d.signing_seed_hex));
      assertEqual(toHex(pair.publicKey), d.signing_public_key_hex, "public key");
      assert(!pair.privateKey.extractable, "the imported private key is non-extractable");
    });
    await cases.check(`${d.address}: prekey public key and id`, async () => {
      const pair = await importKemSecret(fromHex(d.prekey_secret_hex));
      assertEqual(toHex(pair.publicKey), d.prekey_public_key_hex, "prekey public key");
      assertEqual(await prekeyIdFor(pair.publicKey), d.prekey_id, "prekey id");
    });
    await cases.check(`${d.address}: signed prekey re-made byte for byte`, async () => {
      const signing = await importSigningSeed(fromHex(d.signing_seed_hex));
      const keys = new DeviceKeys({ address: parseAddress(d.address), signing });
      const kemKey = await importKemSecret(fromHex(d.prekey_secret_hex));
      const lifetime = d.prekey_expires_ms - d.prekey_not_before_ms;
      const made = await keys.newPrekey(d.prekey_not_before_ms, lifetime, { kemKey });
      assertEqual(utf8Decode(made.body, "body"), d.signed_prekey_body_text, "prekey body");
      assertEqual(made.toJson(), d.signed_prekey, "signed prekey wire form");
    });
    await cases.check(`${d.address}: signed prekey parses and verifies`, async () => {
      const prekey = await SignedPrekey.fromJson(d.signed_prekey);
      await prekey.verify(fromHex(d.signing_public_key_hex));
      assertEqual(addressToString(prekey.owner), d.address, "owner");
      const fields = [prekey.id, prekey.notBeforeMs, prekey.expiresMs];
      assertEqual(fields, [d.prekey_id, d.prekey_not_before_ms, d.prekey_expires_ms], "fields");
      assert(prekey.isValidAt(d.prekey_not_before_ms) && !prekey.isValidAt(d.prekey_expires_ms), "validity window");
    });
    await cases.check(`${d.address}: fingerprint`, async () => {
      assertEqual(await fingerprint(fromHex(d.signing_public_key_hex)), d.fingerprint, "fingerprint");
    });
  }
  await cases.check("relay: signing public key and fingerprint", async () => {
    const pair = await importSigningSeed(fromHex(v.keys.relay.signing_seed_hex));
    assertEqual(toHex(pair.publicKey), v.keys.relay.signing_public_key_hex, "relay public key");
    assertEqual(await fingerprint(pair.publicKey), v.keys.relay.fingerprint, "relay fingerprint");
  });
  return cases.results;
}

/** fingerprints.json: fingerprints, member codes, safety numbers in both orders, typed-in normalization. */
export async function fingerprintsSuite(/** @type {any} */ v) {
  const cases = new Cases();
  const doc = v.fingerprints;
  for (const f of doc.fingerprints) {
    await cases.check(`fingerprint ${f.address}`, async () => {
      assertEqual(await fingerprint(fromHex(f.signing_public_key_hex)), f.fingerprint, "fingerprint");
    });
  }
  for (const [i, m] of doc.member_codes.entries()) {
    await cases.check(`member code ${m.member} #${i} (${m.keys_hex.length} device keys)`, async () => {
      assertEqual(await memberCode(m.member, m.keys_hex.map(fromHex)), m.code, "member code");
    });
  }
  for (const s of doc.safety_numbers) {
    await cases.check(`safety number ${s.name}`, async () => {
      const a = s.keys_a_hex.map(fromHex);
      const b = s.keys_b_hex.map(fromHex);
      assertEqual(await safetyNumber(s.member_a, a, s.member_b, b), s.safety_number, "as listed");
      assertEqual(await safetyNumber(s.member_b, b, s.member_a, a), s.safety_number, "the other member computing it");
      const reordered = await safetyNumber(s.member_a, [...a].reverse(), s.member_b, [...b].reverse());
      assertEqual(reordered, s.safety_number, "keys in another order");
    });
  }
  for (const [i, n] of doc.normalization.entries()) {
    await cases.check(`safety number normalization #${i}`, () => {
      assertEqual(normalizeSafetyNumber(n.input), n.expected, "normalized");
    });
  }
  return cases.results;
}

/** receipts.json: each receipt re-issued byte for byte, parsed, verified and hashed. */
export async function receiptsSuite(/** @type {any} */ v) {
  const cases = new Cases();
  const keyring = await vectorKeyring(v.keys);
  for (const item of v.receipts.receipts) {
    const e = item.expected;
    await cases.check(`${item.name}: parses, verifies and hashes`, async () => {
      const receipt = await Receipt.fromJson(item.wire);
      await receipt.verify(fromHex(item.issuer_public_key_hex));
      assertEqual(utf8Decode(receipt.body, "body"), item.body_text, "body");
      assertEqual(toHex(receipt.signedBytes()), item.signed_bytes_hex, "signed bytes");
      assertEqual(toHex(await receipt.hash()), item.hash_hex, "receipt hash");
      const fields = {
        kind: receipt.kind,
        channel: receipt.channel,
        message_id: receipt.messageId,
        envelope_hash_hex: toHex(receipt.envelopeHash),
        at_ms: receipt.atMs,
        issuer: receipt.issuer && addressToString(receipt.issuer),
        log_index: receipt.logIndex,
        reply_id: receipt.replyId,
        reason: receipt.reason,
      };
      assertEqual(fields, e, "fields");
    });
    await cases.check(`${item.name}: re-issued byte for byte`, async () => {
      const common = {
        channel: e.channel,
        messageId: e.message_id,
        envelopeHash: fromHex(e.envelope_hash_hex),
        atMs: e.at_ms,
      };
      let receipt;
      if (e.kind === "relay-accepted") {
        const relay = await keyring.relaySigning();
        receipt = await issueRelayAccepted(relay.privateKey, { ...common, logIndex: e.log_index });
      } else {
        const device = await keyring.device(e.issuer);
        const fields = { ...common, replyId: e.reply_id, reason: e.reason };
        receipt = await issueDeviceReceipt(device.signing.privateKey, device.address, e.kind, fields);
      }
      assertEqual(receipt.toJson(), item.wire, "wire form");
    });
  }
  return cases.results;
}

/** tree_head.json and auth.json. */
export async function statementsSuite(/** @type {any} */ v) {
  const cases = new Cases();
  const keyring = await vectorKeyring(v.keys);
  const th = v.tree_head;
  await cases.check("tree head: parses and verifies", async () => {
    const head = TreeHead.fromJson(th.wire);
    await head.verify(fromHex(th.relay_public_key_hex));
    assertEqual(utf8Decode(head.body, "body"), th.body_text, "body");
    assertEqual(toHex(head.signature), th.signature_hex, "signature");
    assertEqual({ size: head.size, root_hex: toHex(head.root), at_ms: head.atMs }, th.expected, "fields");
  });
  await cases.check("tree head: re-signed byte for byte", async () => {
    const head = await signTreeHead((await keyring.relaySigning()).privateKey, {
      size: th.expected.size,
      root: fromHex(th.expected.root_hex),
      atMs: th.expected.at_ms,
    });
    assertEqual(head.toJson(), th.wire, "wire form");
  });
  const auth = v.auth;
  await cases.check("auth: message bytes and signature", async () => {
    const device = parseAddress(auth.device);
    const challenge = fromHex(auth.challenge_hex);
    assertEqual(toHex(authMessage(auth.relay_id, challenge, device)), auth.message_hex, "auth message");
    const keys = await keyring.device(auth.device);
    const signature = await signAuthChallenge(keys.signing.privateKey, auth.relay_id, challenge, device);
    assertEqual(toHex(signature), auth.signature_hex, "signature");
    assertEqual(b64e(signature), auth.signature, "signature (base64url)");
    await verifyAuthProof(fromHex(auth.device_public_key_hex), signature, auth.relay_id, challenge, device);
  });
  return cases.results;
}

/** keyfile.json: the sealed key file opens (scrypt in JavaScript) and gives the same keys. */
export async function keyfileSuite(/** @type {any} */ v) {
  const cases = new Cases();
  const kf = v.keyfile;
  const checkKeys = async (/** @type {DeviceKeys} */ keys) => {
    assertEqual(addressToString(keys.address), kf.expected_address, "address");
    assertEqual(toHex(keys.signingPublicKey), kf.expected_signing_public_key_hex, "signing public key");
    assertEqual([...keys.prekeys.keys()].sort(), kf.expected_prekey_ids, "prekey ids");
    assert(!keys.signing.privateKey.extractable, "imported signing key is non-extractable");
  };
  await cases.check("sealed key file opens with its passphrase", async () => {
    await checkKeys(await openKeyFile(utf8(kf.file_text), kf.passphrase));
  });
  await cases.check("plain key file opens", async () => {
    await checkKeys(await openKeyFile(utf8(kf.plain_file_text), null));
  });
  return cases.results;
}

/** envelope.json: the committed Python-sealed envelope parses, verifies, and opens for both recipients. */
export async function envelopeSuite(/** @type {any} */ v) {
  const cases = new Cases();
  const doc = v.envelope;
  const keyring = await vectorKeyring(v.keys);
  const senderKey = /** @type {Uint8Array} */ (keyring.directory.get(doc.sender));
  const stream = await deterministicBytes(doc.rng_label, 10 + 32 + 12); // message id, content key, nonce
  const contentKey = stream.subarray(10, 42);

  await cases.check("wire form parses; hashes and signed bytes match", async () => {
    const env = Envelope.fromBytes(utf8(doc.wire_text));
    assertEqual(env.toJson(), doc.wire, "wire object");
    assertEqual(utf8Decode(env.toBytes(), "wire"), doc.wire_text, "wire text re-serialized");
    assertEqual(utf8Decode(env.headerBytes, "header"), doc.header_text, "header bytes");
    assertEqual(toHex(await sha256(env.headerBytes)), doc.header_hash_hex, "header hash");
    assertEqual(toHex(await env.bodyHash()), doc.body_hash_hex, "body hash");
    assertEqual(toHex(await env.keysHash()), doc.keys_hash_hex, "keys hash");
    assertEqual(toHex(await env.signedBytes()), doc.signed_bytes_hex, "signed bytes");
    assertEqual(toHex(await env.hash()), doc.envelope_hash_hex, "envelope hash");
    await env.verifySignature(senderKey);
  });
  await cases.check("parsed header equals the expected fields", () => {
    const h = Envelope.fromJson(doc.wire).header;
    const fields = {
      v: 1,
      suite: h.suite,
      channel: h.channel,
      id: h.messageId,
      sender: addressToString(h.sender),
      seq: Object.fromEntries(h.seq),
      recipients: h.recipients.map((r) => ({ address: addressToString(r.address), prekey_id: r.prekeyId })),
      precedence: h.precedence,
      created_at_ms: h.createdAtMs,
      content_type: h.contentType,
      exercise: h.exercise,
    };
    assertEqual(fields, doc.expected_header, "header fields");
    assertEqual(h.messageId, uuid7(doc.now_ms, bufferRng(stream)), "message id = uuid7(now, first 10 rng bytes)");
  });
  for (const [i, address] of doc.recipients.entries()) {
    await cases.check(`${address}: Python's HPKE wrap opens to the content key, the body to the content`, async () => {
      const env = Envelope.fromJson(doc.wire);
      const keys = await keyring.device(address);
      const headerHash = await sha256(env.headerBytes);
      const me = env.header.recipients[i];
      const info = frame(DS_WRAP, headerHash, utf8(me.address.member), utf8(me.address.device), utf8(me.prekeyId));
      const secret = /** @type {any} */ (keys.prekeys.get(me.prekeyId));
      const sealed = env.wrappedKeys[i];
      const key = await openBase(secret.key.privateKey, secret.key.publicKey, sealed, info, new Uint8Array(0));
      assertBytes(key, contentKey, "content key");
      const [nonce, ciphertext] = [env.body.subarray(0, 12), env.body.subarray(12)];
      const plaintext = await aeadOpen(key, nonce, ciphertext, frame(DS_BODY, headerHash));
      assertEqual(toHex(plaintext), doc.expected_content_plaintext_hex, "content bytes");
    });
    await cases.check(`${address}: openEnvelope gives the expected content`, async () => {
      const { content } = await openEnvelope(Envelope.fromJson(doc.wire), await keyring.device(address), senderKey);
      const fields = {
        channel: content.channel,
        id: content.messageId,
        sender: addressToString(content.sender),
        recipients: content.recipients.map(addressToString),
        intent: content.intent,
        text: content.text,
        lang: content.lang,
        in_reply_to: content.inReplyTo,
        fields: { ...content.fields },
      };
      assertEqual(fields, doc.expected_content[address], "content");
      assertEqual(toHex(contentToBytes(content)), doc.expected_content_plaintext_hex, "content re-serialized");
    });
  }
  await cases.check("re-sealed from the same inputs and rng: identical header and body", async () => {
    const inputs = doc.inputs;
    const env = await sealEnvelope(await keyring.device(doc.sender), {
      channel: inputs.channel,
      seq: inputs.seq,
      recipients: await Promise.all(doc.recipients.map(keyring.signedPrekey)),
      precedence: inputs.precedence,
      intent: inputs.intent,
      text: inputs.text,
      lang: inputs.lang,
      inReplyTo: inputs.in_reply_to,
      fields: inputs.fields,
      exercise: inputs.exercise,
      nowMs: doc.now_ms,
      rng: bufferRng(stream),
    });
    assertEqual(utf8Decode(env.headerBytes, "header"), doc.header_text, "header");
    assertEqual(b64e(env.body), doc.wire.body, "body");
    // The wrapped keys use fresh ephemeral keys, so they differ; they must still open.
    assert(b64e(env.wrappedKeys[0]) !== doc.wire.keys[0], "a fresh HPKE ephemeral key per wrap");
    for (const address of doc.recipients) await openEnvelope(env, await keyring.device(address), senderKey);
  });
  await cases.check("uuid7 example of PROTOCOL.md §1.7", () => {
    const id = uuid7(1746057600000, bufferRng(fromHex("0123456789abcdef0123")));
    assertEqual(id, "01968924-9c00-7012-8567-89abcdef0123", "uuid");
  });
  await cases.check("a signature with S + L (the group order) is refused", async () => {
    // Ed25519 verification must reject a non-canonical S (PROTOCOL.md §2), else signatures are malleable.
    const env = Envelope.fromJson(doc.wire);
    const sig = new Uint8Array(env.signature);
    const order = fromHex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"); // L, little-endian
    let carry = 0;
    for (let i = 0; i < 32; i++) {
      const sum = sig[32 + i] + order[i] + carry;
      sig[32 + i] = sum & 0xff;
      carry = sum >> 8;
    }
    const tampered = new Envelope(env.headerBytes, env.body, [...env.wrappedKeys], sig, env.header);
    let refused = false;
    try {
      await tampered.verifySignature(senderKey);
    } catch (err) {
      refused = /** @type {any} */ (err).code === "bad_signature";
    }
    assert(refused, "S + L refused with bad_signature");
  });
  return cases.results;
}

