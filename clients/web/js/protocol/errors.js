// Every error the protocol layer raises, each with the stable machine-readable code of hotline/protocol/errors.py.
//
// Codes are part of the wire contract (docs/PROTOCOL.md §9): the browser reports them to peers (in
// `rejected` receipts) and to people, so they mean exactly what they mean in the Python core. Messages
// are for people and never contain secrets or message content.

/** @enum {string} */
export const ErrorCode = Object.freeze({
  MALFORMED: "malformed",
  TOO_LARGE: "too_large",
  UNSUPPORTED_VERSION: "unsupported_version",
  UNSUPPORTED_SUITE: "unsupported_suite",
  UNKNOWN_KEY: "unknown_key",
  EXPIRED_PREKEY: "expired_prekey",
  BAD_SIGNATURE: "bad_signature",
  NOT_A_RECIPIENT: "not_a_recipient",
  DECRYPTION_FAILED: "decryption_failed",
  REPLAY: "replay",
  SEQUENCE_GAP: "sequence_gap",
  BAD_PASSPHRASE: "bad_passphrase",
});

/** A protocol error: `code` is stable, `message` explains it to a person. */
export class ProtocolError extends Error {
  /**
   * @param {string} code one of {@link ErrorCode}
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

/** @param {string} message */
export const malformed = (message) => new ProtocolError(ErrorCode.MALFORMED, message);
/** @param {string} message */
export const tooLarge = (message) => new ProtocolError(ErrorCode.TOO_LARGE, message);
/** @param {string} message */
export const unsupportedVersion = (message) => new ProtocolError(ErrorCode.UNSUPPORTED_VERSION, message);
/** @param {string} message */
export const unsupportedSuite = (message) => new ProtocolError(ErrorCode.UNSUPPORTED_SUITE, message);
/** @param {string} message */
export const unknownKey = (message) => new ProtocolError(ErrorCode.UNKNOWN_KEY, message);
/** @param {string} message */
export const expiredPrekey = (message) => new ProtocolError(ErrorCode.EXPIRED_PREKEY, message);
/** @param {string} message */
export const badSignature = (message) => new ProtocolError(ErrorCode.BAD_SIGNATURE, message);
/** @param {string} message */
export const notARecipient = (message) => new ProtocolError(ErrorCode.NOT_A_RECIPIENT, message);
/** @param {string} message */
export const decryptionFailed = (message) => new ProtocolError(ErrorCode.DECRYPTION_FAILED, message);
/** @param {string} message */
export const badPassphrase = (message) => new ProtocolError(ErrorCode.BAD_PASSPHRASE, message);
