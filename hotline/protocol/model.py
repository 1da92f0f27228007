"""Domain vocabulary shared by every part of hotline: names, addresses, precedence, intents, limits.

Validation helpers here are used while parsing untrusted input, before any cryptography is done.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from hotline.protocol.errors import MalformedError

PROTOCOL_VERSION = 1

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PREKEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
LANG_RE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")

# Member names the relay keeps for itself.
RESERVED_MEMBERS = frozenset({"relay", "admin", "all"})

E = TypeVar("E", bound=StrEnum)

MAX_SAFE_INTEGER = 2**53 - 1  # largest integer every JSON implementation (and JavaScript) keeps exact


def is_protocol_version(value: object) -> bool:
    """True only for the JSON integer ``1``: Python compares ``true`` and ``1.0`` equal to it, but they are
    other bytes, which a stricter implementation refuses, so accepting them would let two parties disagree."""
    return type(value) is int and value == PROTOCOL_VERSION


class Suite(StrEnum):
    """A cipher suite names every algorithm an envelope, prekey or receipt uses (docs/PROTOCOL.md §2)."""

    # HPKE DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/AES-256-GCM (0x0020/0x0001/0x0002) key wrap,
    # AES-256-GCM body, Ed25519 signatures.
    CLASSIC = "hotline-c1"
    # HPKE MLKEM768-X25519 (X-Wing)/HKDF-SHA256/AES-256-GCM (0x647a/0x0001/0x0002) key wrap,
    # AES-256-GCM body, hybrid Ed25519 + ML-DSA-65 signatures (both must verify). ADR 0006.
    PQ_HYBRID = "hotline-pq1"

    @property
    def sizes(self) -> SuiteSizes:
        return _SUITE_SIZES[self]


@dataclass(frozen=True)
class SuiteSizes:
    """The exact byte lengths a suite puts on the wire, so parsers can check them before any cryptography.

    ``hotline/protocol/crypto.py`` holds the algorithms; a test checks that what they make has these sizes.
    """

    signing_public_key: int
    signature: int
    prekey_public_key: int
    wrapped_key: int  # HPKE enc, then the 32-byte content key sealed with AES-256-GCM (16-byte tag)
    signing_seed: int  # key files only
    prekey_secret: int  # key files only


_SUITE_SIZES = {
    # Ed25519; X25519 HPKE: enc 32 + 32 + 16.
    Suite.CLASSIC: SuiteSizes(
        signing_public_key=32,
        signature=64,
        prekey_public_key=32,
        wrapped_key=80,
        signing_seed=32,
        prekey_secret=32,
    ),
    # Ed25519 (32) ‖ ML-DSA-65 (1952) keys, 64 ‖ 3309 signatures, 32 ‖ 32 seeds;
    # MLKEM768-X25519 public key 1184 ‖ 32 from a 32-byte seed; HPKE: enc 1120 + 32 + 16.
    Suite.PQ_HYBRID: SuiteSizes(
        signing_public_key=32 + 1952,
        signature=64 + 3309,
        prekey_public_key=1184 + 32,
        wrapped_key=1120 + 32 + 16,
        signing_seed=32 + 32,
        prekey_secret=32,
    ),
}

MAX_SIGNATURE_BYTES = max(s.signature for s in _SUITE_SIZES.values())
"""The longest signature of any suite: the bound for signatures parsed before their suite is known."""
MAX_WRAPPED_KEY_BYTES = max(s.wrapped_key for s in _SUITE_SIZES.values())


class Precedence(StrEnum):
    FLASH = "FLASH"
    IMMEDIATE = "IMMEDIATE"
    PRIORITY = "PRIORITY"
    ROUTINE = "ROUTINE"

    @property
    def rank(self) -> int:
        """0 is the most urgent; queues deliver lower ranks first."""
        return _PRECEDENCE_RANK[self]


_PRECEDENCE_RANK = {
    Precedence.FLASH: 0,
    Precedence.IMMEDIATE: 1,
    Precedence.PRIORITY: 2,
    Precedence.ROUTINE: 3,
}


class Intent(StrEnum):
    """What a message is for; clients show it and offer a template for each."""

    FREE_TEXT = "free_text"
    CLARIFICATION_REQUEST = "clarification_request"
    REASSURANCE = "reassurance"
    CORRECTION = "correction"
    RESTRAINT_NOTICE = "restraint_notice"
    PRE_NOTIFICATION = "pre_notification"
    PROPOSAL = "proposal"
    ACK_REPLY = "ack_reply"
    LINK_TEST = "link_test"
    INJECT = "inject"


class ContentType(StrEnum):
    MESSAGE = "hotline.message.v1"


@dataclass(frozen=True, order=True)
class DeviceAddress:
    """One device of one member, e.g. ``delhi/laptop``."""

    member: str
    device: str

    def __str__(self) -> str:
        return f"{self.member}/{self.device}"

    def to_json(self) -> dict[str, str]:
        return {"member": self.member, "device": self.device}

    @classmethod
    def from_json(cls, obj: object, *, field: str) -> DeviceAddress:
        fields = require_object(obj, field=field, keys={"member", "device"})
        return cls(
            member=require_name(fields["member"], field=f"{field}.member"),
            device=require_name(fields["device"], field=f"{field}.device"),
        )


@dataclass(frozen=True)
class Limits:
    """Every size limit of the protocol core, checked while parsing and before any cryptography."""

    max_header_bytes: int = 16 * 1024
    max_body_plaintext_bytes: int = 64 * 1024
    max_recipients: int = 64
    max_receipt_bytes: int = 4 * 1024
    max_prekey_bytes: int = 2 * 1024
    max_text_chars: int = 32 * 1024

    @property
    def max_envelope_bytes(self) -> int:
        """A bound on a whole JSON envelope of any suite, for HTTP layers to refuse before parsing.

        Every field at its limit, base64url-encoded (4/3), plus 4 KiB for the JSON around them. Wrapped
        keys and the signature count at the largest suite's sizes (``hotline-pq1``: 1,168 and 3,373 bytes).
        """
        body = self.max_body_plaintext_bytes + 12 + 16
        keys = MAX_WRAPPED_KEY_BYTES * self.max_recipients
        return (self.max_header_bytes + body + keys + MAX_SIGNATURE_BYTES) * 4 // 3 + 4096


DEFAULT_LIMITS = Limits()


def require_object(
    obj: object, *, field: str, keys: Collection[str], optional: Collection[str] = ()
) -> dict[str, Any]:
    """Check ``obj`` is a JSON object with exactly ``keys`` (plus any of ``optional``)."""
    if not isinstance(obj, dict):
        raise MalformedError(f"{field}: expected an object")
    present = set(obj)
    missing = set(keys) - present
    if missing:
        raise MalformedError(f"{field}: missing field(s) {', '.join(sorted(missing))}")
    unknown = present - set(keys) - set(optional)
    if unknown:
        raise MalformedError(f"{field}: unknown field(s) {', '.join(sorted(unknown))}")
    return obj


def require_str(obj: object, *, field: str, max_len: int) -> str:
    if not isinstance(obj, str):
        raise MalformedError(f"{field}: expected a string")
    if len(obj) > max_len:
        raise MalformedError(f"{field}: longer than {max_len} characters")
    return obj


def require_name(obj: object, *, field: str) -> str:
    value = require_str(obj, field=field, max_len=32)
    if not NAME_RE.fullmatch(value):
        raise MalformedError(
            f"{field}: must be 1-32 of a-z, 0-9, '_' or '-', starting with a letter or digit"
        )
    return value


def require_channel(obj: object, *, field: str) -> str:
    value = require_str(obj, field=field, max_len=64)
    if not CHANNEL_RE.fullmatch(value):
        raise MalformedError(f"{field}: not a valid channel id")
    return value


def require_uuid(obj: object, *, field: str) -> str:
    value = require_str(obj, field=field, max_len=36)
    if not UUID_RE.fullmatch(value):
        raise MalformedError(f"{field}: not a lower-case UUID")
    return value


def require_int(obj: object, *, field: str, minimum: int = 0, maximum: int = MAX_SAFE_INTEGER) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise MalformedError(f"{field}: expected an integer")
    if not minimum <= obj <= maximum:
        raise MalformedError(f"{field}: must be between {minimum} and {maximum}")
    return obj


def require_bool(obj: object, *, field: str) -> bool:
    if not isinstance(obj, bool):
        raise MalformedError(f"{field}: expected true or false")
    return obj


def require_enum(obj: object, enum: type[E], *, field: str) -> E:
    if not isinstance(obj, str):
        raise MalformedError(f"{field}: expected a string")
    try:
        return enum(obj)
    except ValueError as exc:
        allowed = ", ".join(e.value for e in enum)
        raise MalformedError(f"{field}: {obj!r} is not one of {allowed}") from exc
