// Self-test suite through the public API (index.js) only: two browser devices exchange a message end to end.

import {
  DeviceKeys,
  Envelope,
  ErrorCode,
  Intent,
  Precedence,
  ProtocolError,
  Receipt,
  ReceiptKind,
  ReceiverState,
  deviceAddress,
  issueDeviceReceipt,
  openEnvelope,
  safetyNumber,
  sealEnvelope,
  seqFor,
} from "../index.js";
import { Cases, assert, assertEqual } from "./support.js";

/** A desk's whole exchange: generate keys, seal, open, feed the receiver, sign and check a receipt. */
export async function apiSuite() {
  const cases = new Cases();
  const now = Date.UTC(2026, 0, 1);
  const delhi = await DeviceKeys.generate(deviceAddress("delhi", "browser"), now);
  const islamabad = await DeviceKeys.generate(deviceAddress("islamabad", "browser"), now);

  await cases.check("generated keys are non-extractable", () => {
    assert(!delhi.signing.privateKey.extractable, "signing key");
    for (const { key } of delhi.prekeys.values()) assert(!key.privateKey.extractable, "prekey");
  });
  await cases.check("seal, send as bytes, open, accept, acknowledge", async () => {
    const prekey = islamabad.currentPrekey(now + 1000);
    assert(prekey !== null, "a current prekey");
    const sealed = await sealEnvelope(delhi, {
      channel: "delhi-islamabad",
      seq: { islamabad: 1 },
      recipients: [/** @type {any} */ (prekey)],
      precedence: Precedence.FLASH,
      intent: Intent.LINK_TEST,
      text: "Link test 0400Z. Please acknowledge.",
      nowMs: now + 1000,
    });
    const received = Envelope.fromBytes(sealed.toBytes());
    const { content } = await openEnvelope(received, islamabad, delhi.signingPublicKey);
    assertEqual(content.text, "Link test 0400Z. Please acknowledge.", "text");
    const seq = seqFor(received.header, "islamabad");
    const events = new ReceiverState().receive(received.header.sender, seq, content.messageId);
    assertEqual(events.map((e) => e.type), ["Accepted"], "receiver");
    const { signing, address } = islamabad;
    const receipt = await issueDeviceReceipt(signing.privateKey, address, ReceiptKind.ACKNOWLEDGED, {
      channel: content.channel,
      messageId: content.messageId,
      envelopeHash: await received.hash(),
      atMs: now + 5000,
    });
    await (await Receipt.fromJson(receipt.toJson())).verify(islamabad.signingPublicKey);
  });
  await cases.check("a device that is not addressed cannot open", async () => {
    const prekey = /** @type {any} */ (islamabad.currentPrekey(now));
    const sealed = await sealEnvelope(delhi, {
      channel: "delhi-islamabad",
      seq: { islamabad: 2 },
      recipients: [prekey],
      precedence: Precedence.ROUTINE,
      intent: Intent.FREE_TEXT,
      text: "Not for delhi's own device.",
      nowMs: now,
    });
    let code = null;
    try {
      await openEnvelope(sealed, delhi, delhi.signingPublicKey);
    } catch (err) {
      code = err instanceof ProtocolError ? err.code : String(err);
    }
    assertEqual(code, ErrorCode.NOT_A_RECIPIENT, "refusal");
  });
  await cases.check("both desks compute the same safety number", async () => {
    const a = await safetyNumber("delhi", [delhi.signingPublicKey], "islamabad", [islamabad.signingPublicKey]);
    const b = await safetyNumber("islamabad", [islamabad.signingPublicKey], "delhi", [delhi.signingPublicKey]);
    assertEqual(a, b, "safety number");
    assert(/^(\d{5} ){11}\d{5}$/.test(a), "12 groups of 5 digits");
  });
  return cases.results;
}
