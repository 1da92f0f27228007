// Step of the weak-key test: the browser refuses the same small-order and non-canonical Ed25519 keys as
// hotline/protocol/crypto.py, with the same error code, including the identity-key forgery (R = key, S = 0).

import { ProtocolError } from "../errors.js";
import { concatBytes, fromHex, utf8 } from "../encoding.js";
import { generateSigningKey, isWeakEd25519PublicKey, sign, verifySignature } from "../crypto.js";

/**
 * For each hex key: the verdict of verifying the forged signature (R = the key, S = 0) over a message,
 * "ok" or the protocol error code; plus whether freshly generated keys are ever judged weak.
 * @param {{keys: string[]}} args
 */
export async function weakKeys({ keys }) {
  const message = utf8("any message at all");
  /** @type {Record<string, string>} */
  const verdicts = {};
  for (const hex of keys) {
    const key = fromHex(hex);
    try {
      await verifySignature(key, concatBytes(key, new Uint8Array(32)), message);
      verdicts[hex] = "ok";
    } catch (err) {
      verdicts[hex] = err instanceof ProtocolError ? err.code : `bug: ${err}`;
    }
  }
  let honestWeak = 0;
  let honestVerify = 0;
  for (let i = 0; i < 20; i++) {
    const pair = await generateSigningKey();
    if (isWeakEd25519PublicKey(pair.publicKey)) honestWeak++;
    await verifySignature(pair.publicKey, await sign(pair.privateKey, message), message);
    honestVerify++;
  }
  return { verdicts, honestWeak, honestVerify };
}
