"""Audit-log entries: the canonical bytes of every event the relay records in its Merkle log.

Theory of operation
-------------------
Each entry is one JSON object serialized with :func:`~hotline.protocol.encoding.dump_json` (sorted
keys, compact, UTF-8) of the form ``{"v": 1, "type": ..., "at_ms": ..., "channel": ..., ...}``. The
entry's bytes are the Merkle leaf (``merkle.leaf_hash(entry)``), so they are built here, once, and
never re-serialized: a verifier reads them back with :func:`parse_entry`.

Entries carry metadata and signatures, never content: an ``envelope-accepted`` entry keeps the
envelope's exact header bytes, the SHA-256 hashes of its body and wrapped keys, and the sender's
signature — enough for :func:`verify_envelope_entry` to re-check who sent what from the entry alone,
and nothing that decrypts to the message. No entry holds a secret (an invite is named by the SHA-256
of its code, which cannot be redeemed).

Pure code: no I/O, no clock (``at_ms`` is a parameter).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hotline.protocol import crypto
from hotline.protocol.encoding import b64d, b64e, dump_json, load_json_object
from hotline.protocol.envelope import Envelope, Header, envelope_hash, envelope_signed_bytes
from hotline.protocol.errors import MalformedError, ProtocolError, UnsupportedVersionError
from hotline.protocol.keys import SignedPrekey
from hotline.protocol.model import (
    PROTOCOL_VERSION,
    DeviceAddress,
    is_protocol_version,
    require_channel,
    require_enum,
    require_int,
    require_object,
)
from hotline.protocol.receipts import Receipt

MAX_ENTRY_BYTES = 256 * 1024
"""No entry is larger: the biggest is ``envelope-accepted`` (a header of at most 16 KiB, base64url)."""


class EntryType(StrEnum):
    CHANNEL_CREATED = "channel-created"
    MEMBER_ADDED = "member-added"
    INVITE_CREATED = "invite-created"
    DEVICE_ENROLLED = "device-enrolled"
    PREKEYS_PUBLISHED = "prekeys-published"
    DEVICE_REVOKED = "device-revoked"
    MEMBER_REVOKED = "member-revoked"
    ENVELOPE_ACCEPTED = "envelope-accepted"
    RECEIPT = "receipt"
    AUTH_REFUSED = "auth-refused"
    # Hotline semantics (docs/adr/0007): relay notices, desk acts and channel policies, each whole.
    NOTICE = "notice"
    ACT = "act"
    POLICY_CHANGED = "policy-changed"


# The fields each entry type has besides v, type, at_ms and channel.
_FIELDS: dict[EntryType, frozenset[str]] = {
    EntryType.CHANNEL_CREATED: frozenset({"title", "suite", "members"}),
    EntryType.MEMBER_ADDED: frozenset({"member", "role"}),
    EntryType.INVITE_CREATED: frozenset({"member", "role", "code_hash", "expires_ms"}),
    EntryType.DEVICE_ENROLLED: frozenset({"member", "device", "signing_key", "role"}),
    EntryType.PREKEYS_PUBLISHED: frozenset({"member", "device", "prekeys"}),
    EntryType.DEVICE_REVOKED: frozenset({"member", "device", "by"}),
    EntryType.MEMBER_REVOKED: frozenset({"member", "devices", "by"}),
    EntryType.ENVELOPE_ACCEPTED: frozenset(
        {
            "message_id",
            "sender",
            "recipients",
            "seq",
            "precedence",
            "exercise",
            "header",
            "body_hash",
            "keys_hash",
            "sig",
            "envelope_hash",
        }
    ),
    EntryType.RECEIPT: frozenset({"kind", "message_id", "issuer", "receipt"}),
    EntryType.AUTH_REFUSED: frozenset({"member", "device", "reason"}),
    EntryType.NOTICE: frozenset({"kind", "notice"}),
    EntryType.ACT: frozenset({"kind", "issuer", "act"}),
    EntryType.POLICY_CHANGED: frozenset({"version", "by", "policy"}),
}

_COMMON = frozenset({"v", "type", "at_ms", "channel"})


@dataclass(frozen=True)
class AuditEntry:
    """A parsed entry. ``raw`` is the exact logged bytes; ``fields`` the type-specific members."""

    raw: bytes
    type: EntryType
    at_ms: int
    channel: str
    fields: Mapping[str, Any]


def _entry(entry_type: EntryType, /, *, at_ms: int, channel: str, **fields: Any) -> bytes:
    if set(fields) != _FIELDS[entry_type]:
        raise ValueError(
            f"{entry_type.value}: fields {sorted(fields)} do not match {sorted(_FIELDS[entry_type])}"
        )
    body = {"v": PROTOCOL_VERSION, "type": entry_type.value, "at_ms": at_ms, "channel": channel, **fields}
    data = dump_json(body)
    if len(data) > MAX_ENTRY_BYTES:
        raise ValueError(f"{entry_type.value}: entry of {len(data)} bytes is over {MAX_ENTRY_BYTES}")
    return data


def channel_created(
    *, at_ms: int, channel: str, title: str, suite: str, members: Iterable[tuple[str, str]]
) -> bytes:
    """A channel and its first members (name, role)."""
    return _entry(
        EntryType.CHANNEL_CREATED,
        at_ms=at_ms,
        channel=channel,
        title=title,
        suite=suite,
        members=[{"member": m, "role": r} for m, r in members],
    )


def member_added(*, at_ms: int, channel: str, member: str, role: str) -> bytes:
    return _entry(EntryType.MEMBER_ADDED, at_ms=at_ms, channel=channel, member=member, role=role)


def invite_created(
    *, at_ms: int, channel: str, member: str, role: str, code_hash: bytes, expires_ms: int
) -> bytes:
    """An enrollment invite, named by the SHA-256 of its code (the code itself is a secret)."""
    return _entry(
        EntryType.INVITE_CREATED,
        at_ms=at_ms,
        channel=channel,
        member=member,
        role=role,
        code_hash=b64e(code_hash),
        expires_ms=expires_ms,
    )


def device_enrolled(
    *, at_ms: int, channel: str, address: DeviceAddress, role: str, signing_key: bytes
) -> bytes:
    return _entry(
        EntryType.DEVICE_ENROLLED,
        at_ms=at_ms,
        channel=channel,
        member=address.member,
        device=address.device,
        role=role,
        signing_key=b64e(signing_key),
    )


def prekeys_published(
    *, at_ms: int, channel: str, address: DeviceAddress, prekeys: Iterable[SignedPrekey]
) -> bytes:
    """Signed prekeys with their signatures, so anyone can check the relay did not substitute one."""
    return _entry(
        EntryType.PREKEYS_PUBLISHED,
        at_ms=at_ms,
        channel=channel,
        member=address.member,
        device=address.device,
        prekeys=[p.to_json() for p in prekeys],
    )


def device_revoked(*, at_ms: int, channel: str, address: DeviceAddress, by: str) -> bytes:
    """``by`` is ``"admin"`` or the ``member/device`` that revoked it."""
    return _entry(
        EntryType.DEVICE_REVOKED,
        at_ms=at_ms,
        channel=channel,
        member=address.member,
        device=address.device,
        by=by,
    )


def member_revoked(*, at_ms: int, channel: str, member: str, devices: Iterable[str], by: str) -> bytes:
    """A member and, with it, every device it had (``devices``: their names)."""
    return _entry(
        EntryType.MEMBER_REVOKED,
        at_ms=at_ms,
        channel=channel,
        member=member,
        devices=sorted(devices),
        by=by,
    )


def envelope_accepted(*, at_ms: int, envelope: Envelope) -> bytes:
    """An accepted envelope: its header, body and key hashes and signature — never the ciphertext."""
    header = envelope.header
    return _entry(
        EntryType.ENVELOPE_ACCEPTED,
        at_ms=at_ms,
        channel=header.channel,
        message_id=header.message_id,
        sender=header.sender.to_json(),
        recipients=[r.to_json() for r in header.recipients],
        seq=dict(header.seq),
        precedence=header.precedence.value,
        exercise=header.exercise,
        header=b64e(envelope.header_bytes),
        body_hash=b64e(envelope.body_hash),
        keys_hash=b64e(envelope.keys_hash),
        sig=b64e(envelope.signature),
        envelope_hash=b64e(envelope.hash),
    )


def receipt_logged(*, at_ms: int, receipt: Receipt) -> bytes:
    """A receipt as signed by its issuer (a device), body and signature."""
    return _entry(
        EntryType.RECEIPT,
        at_ms=at_ms,
        channel=receipt.channel,
        kind=receipt.kind.value,
        message_id=receipt.message_id,
        issuer=receipt.issuer.to_json() if receipt.issuer else None,
        receipt=receipt.to_json(),
    )


def auth_refused(*, at_ms: int, channel: str, address: DeviceAddress, reason: str) -> bytes:
    """A refused log-in of a known device (``reason``: an error code). Never holds the proof."""
    return _entry(
        EntryType.AUTH_REFUSED,
        at_ms=at_ms,
        channel=channel,
        member=address.member,
        device=address.device,
        reason=reason,
    )


def notice_logged(*, at_ms: int, channel: str, kind: str, notice: Mapping[str, str]) -> bytes:
    """A notice the relay signed (escalation, crisis change, check-in due, withdrawal), body and signature."""
    return _entry(EntryType.NOTICE, at_ms=at_ms, channel=channel, kind=kind, notice=dict(notice))


def act_logged(
    *, at_ms: int, channel: str, kind: str, issuer: DeviceAddress, act: Mapping[str, str]
) -> bytes:
    """An act a device signed for its desk (e.g. a check-in answer), body and signature."""
    return _entry(
        EntryType.ACT, at_ms=at_ms, channel=channel, kind=kind, issuer=issuer.to_json(), act=dict(act)
    )


def policy_changed(*, at_ms: int, channel: str, version: int, by: str, policy: Mapping[str, Any]) -> bytes:
    """A channel's deadlines, schedules and triggers; ``by`` is ``"admin"`` or ``member/device``."""
    return _entry(
        EntryType.POLICY_CHANGED, at_ms=at_ms, channel=channel, version=version, by=by, policy=dict(policy)
    )


_FAST_DECODER = json.JSONDecoder(parse_constant=lambda name: None)  # a NaN never re-serializes as itself


def _load_entry(data: bytes) -> tuple[dict[str, Any], bool]:
    """The entry's JSON object, and whether its bytes are already known to be canonical.

    An auditor parses every entry of a log, so the common case is fast: bytes that re-serialize to
    themselves are strict JSON (no duplicate key, constant, lone surrogate or BOM survives a round
    trip). Anything else goes through the strict loader, whose error says what is wrong.
    """
    if len(data) <= MAX_ENTRY_BYTES:
        try:
            obj = _FAST_DECODER.decode(data.decode("utf-8"))
            if isinstance(obj, dict) and dump_json(obj) == data:
                return obj, True
        except (ValueError, RecursionError, ProtocolError):
            pass
    return load_json_object(data, what="audit entry", max_bytes=MAX_ENTRY_BYTES), False


def parse_entry(data: bytes) -> AuditEntry:
    """Parse logged bytes strictly; checks the shape, not any signature inside."""
    obj, canonical = _load_entry(data)
    if not is_protocol_version(obj.get("v")):
        raise UnsupportedVersionError("audit entry version is not supported")
    kind = require_enum(obj.get("type"), EntryType, field="audit.type")
    f = require_object(obj, field="audit", keys=_COMMON | _FIELDS[kind])
    if not canonical and dump_json(f) != data:
        raise MalformedError("audit entry is not in canonical form")
    return AuditEntry(
        raw=data,
        type=kind,
        at_ms=require_int(f["at_ms"], field="audit.at_ms"),
        channel=require_channel(f["channel"], field="audit.channel"),
        fields={k: v for k, v in f.items() if k not in _COMMON},
    )


def verify_envelope_entry(entry: AuditEntry, sender_signing_key: bytes) -> None:
    """Re-check an ``envelope-accepted`` entry from its own bytes: signature and envelope hash.

    Raises :class:`UnsupportedSuiteError` if the sender's key is not of the header's suite,
    :class:`BadSignatureError` if the sender did not sign it, :class:`MalformedError` if the
    entry is inconsistent (a hash that does not match, a header that names another message).
    """
    if entry.type is not EntryType.ENVELOPE_ACCEPTED:
        raise MalformedError("not an envelope-accepted entry")
    f = entry.fields
    header_bytes = b64d(f["header"], field="audit.header")
    body_hash = b64d(f["body_hash"], field="audit.body_hash")
    keys_hash = b64d(f["keys_hash"], field="audit.keys_hash")
    signature = b64d(f["sig"], field="audit.sig")
    if len(body_hash) != 32 or len(keys_hash) != 32:
        raise MalformedError("audit: a SHA-256 hash is 32 bytes")
    header = Header.parse(header_bytes)
    # The header names the suite; the sender's key must be of it (unsupported_suite), as when opening.
    crypto.require_signing_key_suite(sender_signing_key, header.suite, who=str(header.sender))
    crypto.verify_signature(
        sender_signing_key, signature, envelope_signed_bytes(header_bytes, body_hash, keys_hash)
    )
    claimed = b64d(f["envelope_hash"], field="audit.envelope_hash")
    actual = envelope_hash(header_bytes, body_hash, keys_hash, signature)
    if not crypto.constant_time_equal(claimed, actual):
        raise MalformedError("audit: envelope_hash does not match the header, hashes and signature")
    # The header, not the entry's copies of its fields, is what was signed; they must agree.
    if (
        header.message_id != f["message_id"]
        or header.channel != entry.channel
        or header.sender.to_json() != f["sender"]
        or [r.to_json() for r in header.recipients] != f["recipients"]
        or dict(header.seq) != f["seq"]
        or header.precedence.value != f["precedence"]
        or header.exercise != f["exercise"]
    ):
        raise MalformedError("audit: entry fields do not match the signed header")
