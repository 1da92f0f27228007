// Self-test suite: the official RFC 9180 test vector for hotline-c1's HPKE suite, step by step.

import { fromHex, toHex } from "../encoding.js";
import { importKemSecret } from "../crypto.js";
import { decap, deriveX25519Secret, encap, keySchedule, openBase, sealBase } from "../hpke.js";
import { Cases, assertEqual, refusalCode } from "./support.js";

/** tests/web/data/rfc9180_base_x25519_sha256_aes256gcm.json: DeriveKeyPair, Encap/Decap, KeySchedule, Seal, Open. */
export async function hpkeSuite(/** @type {any} */ v) {
  const cases = new Cases();
  const t = v.rfc9180;
  const info = fromHex(t.info);
  const first = t.first_encryption;
  const ephemeral = await importKemSecret(fromHex(t.skEm));
  const recipient = await importKemSecret(fromHex(t.skRm));

  await cases.check("vector is for mode 0, KEM 0x0020, KDF 0x0001, AEAD 0x0002", () => {
    assertEqual([t.mode, t.kem_id, t.kdf_id, t.aead_id], [0, 32, 1, 2], "suite");
  });
  await cases.check("DeriveKeyPair(ikmE), DeriveKeyPair(ikmR)", async () => {
    assertEqual(toHex(await deriveX25519Secret(fromHex(t.ikmE))), t.skEm, "skEm");
    assertEqual(toHex(await deriveX25519Secret(fromHex(t.ikmR))), t.skRm, "skRm");
  });
  await cases.check("public keys from the private keys", () => {
    assertEqual(toHex(ephemeral.publicKey), t.pkEm, "pkEm");
    assertEqual(toHex(recipient.publicKey), t.pkRm, "pkRm");
  });
  await cases.check("Encap with the vector's ephemeral key", async () => {
    const { sharedSecret, enc } = await encap(fromHex(t.pkRm), ephemeral);
    assertEqual(toHex(enc), t.enc, "enc");
    assertEqual(toHex(sharedSecret), t.shared_secret, "shared_secret");
  });
  await cases.check("Decap", async () => {
    const sharedSecret = await decap(fromHex(t.enc), recipient.privateKey, recipient.publicKey);
    assertEqual(toHex(sharedSecret), t.shared_secret, "shared_secret");
  });
  await cases.check("KeySchedule (mode_base)", async () => {
    const { key, baseNonce } = await keySchedule(fromHex(t.shared_secret), info);
    assertEqual(toHex(key), t.key, "key");
    assertEqual(toHex(baseNonce), t.base_nonce, "base_nonce");
    assertEqual(first.nonce, t.base_nonce, "sequence number 0 uses base_nonce itself");
  });
  await cases.check("SealBase gives enc ‖ ct of the first encryption", async () => {
    const sealed = await sealBase(fromHex(t.pkRm), info, fromHex(first.aad), fromHex(first.pt), { ephemeral });
    assertEqual(toHex(sealed), t.enc + first.ct, "enc ‖ ct");
  });
  await cases.check("OpenBase recovers the plaintext", async () => {
    const sealed = fromHex(t.enc + first.ct);
    const pt = await openBase(recipient.privateKey, recipient.publicKey, sealed, info, fromHex(first.aad));
    assertEqual(toHex(pt), first.pt, "pt");
  });
  await cases.check("OpenBase refuses a changed ciphertext, info or aad", async () => {
    const sealed = fromHex(t.enc + first.ct);
    const flipped = new Uint8Array(sealed);
    flipped[40] ^= 1;
    const open = (/** @type {Uint8Array} */ s, /** @type {Uint8Array} */ i, /** @type {Uint8Array} */ a) =>
      openBase(recipient.privateKey, recipient.publicKey, s, i, a);
    const aad = fromHex(first.aad);
    const none = new Uint8Array(0);
    assertEqual(await refusalCode(() => open(flipped, info, aad)), "decryption_failed", "ciphertext");
    assertEqual(await refusalCode(() => open(sealed, none, aad)), "decryption_failed", "info");
    assertEqual(await refusalCode(() => open(sealed, info, none)), "decryption_failed", "aad");
    assertEqual(await refusalCode(() => open(sealed.subarray(0, 31), info, aad)), "decryption_failed", "short");
  });
  await cases.check("SealBase without a given ephemeral key draws a fresh one each time", async () => {
    const a = await sealBase(fromHex(t.pkRm), info, new Uint8Array(0), fromHex(first.pt));
    const b = await sealBase(fromHex(t.pkRm), info, new Uint8Array(0), fromHex(first.pt));
    assertEqual(toHex(a.subarray(0, 32)) !== toHex(b.subarray(0, 32)), true, "different enc");
    const pt = await openBase(recipient.privateKey, recipient.publicKey, a, info, new Uint8Array(0));
    assertEqual(toHex(pt), first.pt, "round trip");
  });
  return cases.results;
}
