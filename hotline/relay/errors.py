"""Every error a relay client can see: a stable code, an HTTP status and a message for people.

Only the HTTP layer (``hotline.relay.app``) turns these into responses. Messages never contain
secrets (tokens, invite codes) or message content.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from hotline.protocol.errors import ErrorCode, ProtocolError


class RelayErrorCode(StrEnum):
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNSUPPORTED_SUITE = "unsupported_suite"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED_PREKEY = "expired_prekey"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    SENDER_MISMATCH = "sender_mismatch"
    WRONG_CHANNEL = "wrong_channel"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"
    NOT_A_MEMBER = "not_a_member"
    DEVICE_REVOKED = "device_revoked"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    INVITE_INVALID = "invite_invalid"
    INVITE_EXPIRED = "invite_expired"
    INVITE_USED = "invite_used"
    CHALLENGE_INVALID = "challenge_invalid"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


STATUS: dict[RelayErrorCode, int] = {
    RelayErrorCode.MALFORMED: 400,
    RelayErrorCode.TOO_LARGE: 413,
    RelayErrorCode.UNSUPPORTED_VERSION: 400,
    RelayErrorCode.UNSUPPORTED_SUITE: 400,
    RelayErrorCode.BAD_SIGNATURE: 400,
    RelayErrorCode.EXPIRED_PREKEY: 409,
    RelayErrorCode.UNKNOWN_RECIPIENT: 409,
    RelayErrorCode.SENDER_MISMATCH: 403,
    RelayErrorCode.WRONG_CHANNEL: 400,
    RelayErrorCode.UNAUTHORIZED: 401,
    RelayErrorCode.TOKEN_EXPIRED: 401,
    RelayErrorCode.FORBIDDEN: 403,
    RelayErrorCode.NOT_A_MEMBER: 403,
    RelayErrorCode.DEVICE_REVOKED: 403,
    RelayErrorCode.NOT_FOUND: 404,
    RelayErrorCode.METHOD_NOT_ALLOWED: 405,
    RelayErrorCode.CONFLICT: 409,
    RelayErrorCode.INVITE_INVALID: 404,
    RelayErrorCode.INVITE_EXPIRED: 410,
    RelayErrorCode.INVITE_USED: 410,
    RelayErrorCode.CHALLENGE_INVALID: 401,
    RelayErrorCode.RATE_LIMITED: 429,
    RelayErrorCode.UNAVAILABLE: 503,
    RelayErrorCode.INTERNAL: 500,
}

# WebSocket close codes (docs/API.md): 4400 bad frame, 4401 auth, 4403 authorization, 4408 auth
# timeout, 4429 too slow or too many (frames, sockets).
SOCKET_CLOSE: dict[RelayErrorCode, int] = {
    RelayErrorCode.UNAUTHORIZED: 4401,
    RelayErrorCode.TOKEN_EXPIRED: 4401,
    RelayErrorCode.FORBIDDEN: 4403,
    RelayErrorCode.NOT_A_MEMBER: 4403,
    RelayErrorCode.DEVICE_REVOKED: 4403,
    RelayErrorCode.RATE_LIMITED: 4429,
    RelayErrorCode.UNAVAILABLE: 1011,
    RelayErrorCode.INTERNAL: 1011,
}


class RelayError(Exception):
    """An error with a stable ``code``; ``details`` is extra machine-readable data (JSON-safe)."""

    def __init__(
        self,
        code: RelayErrorCode,
        message: str,
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS[code]
        self.details = details
        self.headers = headers

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    @property
    def close_code(self) -> int:
        return SOCKET_CLOSE.get(self.code, 4400)


_PROTOCOL_CODES: dict[ErrorCode, RelayErrorCode] = {
    ErrorCode.MALFORMED: RelayErrorCode.MALFORMED,
    ErrorCode.TOO_LARGE: RelayErrorCode.TOO_LARGE,
    ErrorCode.UNSUPPORTED_VERSION: RelayErrorCode.UNSUPPORTED_VERSION,
    ErrorCode.UNSUPPORTED_SUITE: RelayErrorCode.UNSUPPORTED_SUITE,
    ErrorCode.BAD_SIGNATURE: RelayErrorCode.BAD_SIGNATURE,
    ErrorCode.EXPIRED_PREKEY: RelayErrorCode.EXPIRED_PREKEY,
    ErrorCode.UNKNOWN_KEY: RelayErrorCode.EXPIRED_PREKEY,
    ErrorCode.NOT_A_RECIPIENT: RelayErrorCode.FORBIDDEN,
}


def from_protocol(exc: ProtocolError) -> RelayError:
    """The relay error for a protocol error raised while checking client input."""
    code = _PROTOCOL_CODES.get(exc.code, RelayErrorCode.MALFORMED)
    return RelayError(code, exc.message)


def malformed(message: str) -> RelayError:
    return RelayError(RelayErrorCode.MALFORMED, message)


def not_found(message: str) -> RelayError:
    return RelayError(RelayErrorCode.NOT_FOUND, message)


def forbidden(message: str) -> RelayError:
    return RelayError(RelayErrorCode.FORBIDDEN, message)


def conflict(message: str, details: dict[str, Any] | None = None) -> RelayError:
    return RelayError(RelayErrorCode.CONFLICT, message, details=details)
