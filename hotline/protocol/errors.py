"""Every error the protocol core can raise, each with a stable machine-readable code.

Codes are part of the wire contract (docs/PROTOCOL.md, "Errors"): clients and the relay report them to
peers and users, so they never change meaning. Messages are for people and never contain secrets or
message content.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNSUPPORTED_SUITE = "unsupported_suite"
    UNKNOWN_KEY = "unknown_key"
    EXPIRED_PREKEY = "expired_prekey"
    BAD_SIGNATURE = "bad_signature"
    NOT_A_RECIPIENT = "not_a_recipient"
    DECRYPTION_FAILED = "decryption_failed"
    REPLAY = "replay"
    SEQUENCE_GAP = "sequence_gap"
    BAD_PASSPHRASE = "bad_passphrase"


class ProtocolError(Exception):
    """Base of all protocol errors. ``code`` is stable; ``str(err)`` is a human explanation."""

    code: ErrorCode = ErrorCode.MALFORMED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"


class MalformedError(ProtocolError):
    code = ErrorCode.MALFORMED


class TooLargeError(ProtocolError):
    code = ErrorCode.TOO_LARGE


class UnsupportedVersionError(ProtocolError):
    code = ErrorCode.UNSUPPORTED_VERSION


class UnsupportedSuiteError(ProtocolError):
    code = ErrorCode.UNSUPPORTED_SUITE


class UnknownKeyError(ProtocolError):
    code = ErrorCode.UNKNOWN_KEY


class ExpiredPrekeyError(ProtocolError):
    code = ErrorCode.EXPIRED_PREKEY


class BadSignatureError(ProtocolError):
    code = ErrorCode.BAD_SIGNATURE


class NotARecipientError(ProtocolError):
    code = ErrorCode.NOT_A_RECIPIENT


class DecryptionFailedError(ProtocolError):
    code = ErrorCode.DECRYPTION_FAILED


class ReplayError(ProtocolError):
    code = ErrorCode.REPLAY


class SequenceGapError(ProtocolError):
    code = ErrorCode.SEQUENCE_GAP


class BadPassphraseError(ProtocolError):
    code = ErrorCode.BAD_PASSPHRASE


ERROR_CLASSES: dict[ErrorCode, type[ProtocolError]] = {
    cls.code: cls
    for cls in (
        MalformedError,
        TooLargeError,
        UnsupportedVersionError,
        UnsupportedSuiteError,
        UnknownKeyError,
        ExpiredPrekeyError,
        BadSignatureError,
        NotARecipientError,
        DecryptionFailedError,
        ReplayError,
        SequenceGapError,
        BadPassphraseError,
    )
}
