// The public API of the browser's hotline protocol layer: import from here, not from the modules behind it.
//
// Sans-I/O like hotline/protocol: no network, no storage, no clock — `nowMs` is always a parameter.
// Randomness comes from WebCrypto unless a caller passes its own source (test vectors do).

export { ErrorCode, ProtocolError } from "./errors.js";
export { isWeakEd25519PublicKey } from "./crypto.js";
export { b64d, b64e, dumpJson, frame, fromHex, loadJsonObject, toHex, utf8, utf8Decode } from "./encoding.js";
export {
  DEFAULT_LIMITS,
  Intent,
  PRECEDENCE_RANK,
  Precedence,
  Suite,
  addressToString,
  deviceAddress,
  makeLimits,
  parseAddress,
} from "./model.js";
export { DEFAULT_PREKEY_LIFETIME_MS, DeviceKeys, SignedPrekey, prekeyIdFor } from "./keys.js";
export { openKeyFile } from "./keyfile.js";
export { fingerprint, memberCode, normalizeSafetyNumber, safetyNumber } from "./fingerprints.js";
export { TEMPLATES, missileTestNoticeOk, parseContent, wordCount } from "./content.js";
export { headerRecipient, parseHeader, seqFor } from "./header.js";
export { Envelope, openEnvelope, sealEnvelope } from "./envelope.js";
export { REJECT_REASONS, Receipt, ReceiptKind, issueDeviceReceipt } from "./receipts.js";
export { TreeHead, authMessage, signAuthChallenge, verifyAuthProof } from "./statements.js";
export { MerkleProofError, leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from "./merkle.js";
export { ReceiverState } from "./receiver.js";
export { Act, ActKind, Notice, NoticeKind, signAct } from "./notices.js";
export { uuid7, uuid7TimeMs } from "./uuid7.js";
