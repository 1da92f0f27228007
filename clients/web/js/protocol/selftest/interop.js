// Steps of the browser ↔ Python interoperability tests: the Python test calls them and checks the results with
// the Python reference (hotline.protocol), so each direction is proved by the other implementation.

import { b64d, b64e, fromHex, toHex, utf8, utf8Decode } from "../encoding.js";
import { DeviceKeys, SignedPrekey } from "../keys.js";
import { Envelope, openEnvelope, sealEnvelope } from "../envelope.js";
import { ReceiptKind, issueDeviceReceipt } from "../receipts.js";
import { signAuthChallenge } from "../statements.js";
import { addressToString, parseAddress } from "../model.js";
import { vectorKeyring } from "./support.js";

/** @typedef {import("../content.js").Content} Content */

/** A device generated in this page (keys non-extractable), kept between steps. @type {DeviceKeys | null} */
let browserDevice = null;

/** Content as plain data with the wire's field names. @param {Content} c */
function plainContent(c) {
  return {
    channel: c.channel,
    id: c.messageId,
    sender: addressToString(c.sender),
    recipients: c.recipients.map(addressToString),
    intent: c.intent,
    text: c.text,
    lang: c.lang,
    in_reply_to: c.inReplyTo,
    fields: JSON.parse(JSON.stringify(c.fields)),
  };
}

/** The message options of a step's arguments. @param {any} m */
const sealOptions = (m) => ({
  channel: m.channel,
  seq: m.seq,
  precedence: m.precedence,
  intent: m.intent,
  text: m.text,
  lang: m.lang,
  inReplyTo: m.in_reply_to,
  fields: m.fields,
  exercise: m.exercise,
  nowMs: m.now_ms,
});

export const interopSteps = {
  /** Seal with the fixed vector keys (sender and recipients by address); returns the wire text. */
  async sealWithVectorKeys(/** @type {any} */ args) {
    const keyring = await vectorKeyring(args.keys);
    const recipients = await Promise.all(args.recipients.map(keyring.signedPrekey));
    const env = await sealEnvelope(await keyring.device(args.sender), { ...sealOptions(args.message), recipients });
    return { wire_text: utf8Decode(env.toBytes(), "wire"), envelope_hash_hex: toHex(await env.hash()) };
  },

  /** Open a Python-sealed envelope with the fixed vector keys of `recipient`. */
  async openWithVectorKeys(/** @type {any} */ args) {
    const keyring = await vectorKeyring(args.keys);
    const env = Envelope.fromBytes(utf8(args.wire_text));
    const senderKey = keyring.directory.get(addressToString(env.header.sender));
    if (!senderKey) throw new Error("unknown sender");
    const { content } = await openEnvelope(env, await keyring.device(args.recipient), senderKey);
    return { content: plainContent(content), envelope_hash_hex: toHex(await env.hash()) };
  },

  /** Generate a device in the browser; only its public parts leave the page. */
  async newBrowserDevice(/** @type {any} */ args) {
    browserDevice = await DeviceKeys.generate(parseAddress(args.address), args.now_ms);
    const [{ key, signed }] = browserDevice.prekeys.values();
    return {
      signing_public_key_hex: toHex(browserDevice.signingPublicKey),
      signed_prekey: signed.toJson(),
      signing_key_extractable: browserDevice.signing.privateKey.extractable,
      prekey_extractable: key.privateKey.extractable,
      signing_key_type: `${browserDevice.signing.privateKey.type}/${browserDevice.signing.privateKey.algorithm.name}`,
    };
  },

  /** Open an envelope sealed (by Python) to the browser device, and sign a delivered receipt for it. */
  async browserDeviceOpens(/** @type {any} */ args) {
    if (!browserDevice) throw new Error("no browser device yet");
    const env = Envelope.fromBytes(utf8(args.wire_text));
    const { content } = await openEnvelope(env, browserDevice, fromHex(args.sender_public_key_hex));
    const envelopeHash = await env.hash();
    const { signing, address } = browserDevice;
    const receipt = await issueDeviceReceipt(signing.privateKey, address, ReceiptKind.DELIVERED, {
      channel: env.header.channel,
      messageId: env.header.messageId,
      envelopeHash,
      atMs: args.now_ms,
    });
    return { content: plainContent(content), envelope_hash_hex: toHex(envelopeHash), receipt: receipt.toJson() };
  },

  /** Seal from the browser device to the given (Python-published) signed prekeys. */
  async browserDeviceSeals(/** @type {any} */ args) {
    if (!browserDevice) throw new Error("no browser device yet");
    const recipients = await Promise.all(args.prekeys.map((/** @type {any} */ p) => SignedPrekey.fromJson(p)));
    const env = await sealEnvelope(browserDevice, { ...sealOptions(args.message), recipients });
    return { wire_text: utf8Decode(env.toBytes(), "wire"), envelope_hash_hex: toHex(await env.hash()) };
  },

  /** The browser device's login proof for a relay challenge. */
  async browserDeviceAuth(/** @type {any} */ args) {
    if (!browserDevice) throw new Error("no browser device yet");
    const signature = await signAuthChallenge(
      browserDevice.signing.privateKey,
      args.relay_id,
      b64d(args.challenge, { field: "challenge" }),
      browserDevice.address,
    );
    return { signature: b64e(signature) };
  },
};
