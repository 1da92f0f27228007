"""Receipts: signed, timed statements about one envelope, each step of a message's life.

* ``relay-accepted`` — signed by the relay: it durably stored the envelope at a log index.
* ``delivered`` — signed by a recipient device: it verified and decrypted the envelope.
* ``acknowledged`` — signed by a recipient device on behalf of a person at the desk (may name a reply).
  With ``"declined": true`` it is a signed refusal: a person read it and declines (ADR 0007). The field
  is absent otherwise, so every acknowledgement issued before it existed keeps its exact bytes.
* ``rejected`` — signed by a recipient device that could not verify or open it, with a reason code,
  so the sender can resend. A failure is never silent.

Receipts are non-repudiable on purpose: both sides want evidence, not deniability.

A receipt names no suite: its issuer's key does. A ``hotline-c1`` issuer signs with Ed25519, a
``hotline-pq1`` issuer with the hybrid, and :meth:`Receipt.verify` checks whichever the key is. A verifier
that knows the channel's suite passes it, so a key of the other suite is refused as ``unsupported_suite``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hotline.protocol import crypto
from hotline.protocol.encoding import b64d, b64e, dump_json, frame, load_json_object
from hotline.protocol.errors import ErrorCode, MalformedError, UnsupportedVersionError
from hotline.protocol.model import (
    DEFAULT_LIMITS,
    MAX_SIGNATURE_BYTES,
    PROTOCOL_VERSION,
    DeviceAddress,
    Limits,
    Suite,
    is_protocol_version,
    require_channel,
    require_enum,
    require_int,
    require_object,
    require_str,
    require_uuid,
)

DS_RECEIPT = b"hotline/v1/receipt"


class ReceiptKind(StrEnum):
    RELAY_ACCEPTED = "relay-accepted"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"


# Reasons a recipient may give in a ``rejected`` receipt: the protocol error codes that a resend
# can cure or that the sender must know about.
REJECT_REASONS = frozenset(
    {
        ErrorCode.MALFORMED,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.UNSUPPORTED_SUITE,
        ErrorCode.UNKNOWN_KEY,
        ErrorCode.EXPIRED_PREKEY,
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.NOT_A_RECIPIENT,
        ErrorCode.DECRYPTION_FAILED,
    }
)


@dataclass(frozen=True)
class Receipt:
    """A parsed receipt. ``body`` holds the exact signed bytes."""

    body: bytes
    signature: bytes
    kind: ReceiptKind
    channel: str
    message_id: str
    envelope_hash: bytes
    at_ms: int
    issuer: DeviceAddress | None  # None for relay-accepted: the relay signs
    log_index: int | None = None
    reply_id: str | None = None
    reason: ErrorCode | None = None
    declined: bool = False

    def signed_bytes(self) -> bytes:
        return frame(DS_RECEIPT, self.body)

    def verify(self, issuer_public_key: bytes, *, suite: Suite | None = None) -> None:
        """Raise :class:`BadSignatureError` unless the issuer signed this receipt.

        With ``suite`` (the channel's), a key of another suite is :class:`UnsupportedSuiteError` first.
        """
        if suite is not None:
            crypto.require_signing_key_suite(issuer_public_key, suite, who="the receipt's issuer")
        crypto.verify_signature(issuer_public_key, self.signature, self.signed_bytes())

    @property
    def hash(self) -> bytes:
        return crypto.sha256(frame(DS_RECEIPT, self.body, self.signature))

    def to_json(self) -> dict[str, str]:
        return {"body": b64e(self.body), "sig": b64e(self.signature)}

    @classmethod
    def from_json(cls, obj: object, *, limits: Limits = DEFAULT_LIMITS) -> Receipt:
        f = require_object(obj, field="receipt", keys={"body", "sig"})
        body = b64d(f["body"], field="receipt.body", max_bytes=limits.max_receipt_bytes)
        sig = b64d(f["sig"], field="receipt.sig", max_bytes=MAX_SIGNATURE_BYTES)
        return cls.parse(body, sig, limits=limits)

    @classmethod
    def parse(cls, body: bytes, signature: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Receipt:
        obj = load_json_object(body, what="receipt", max_bytes=limits.max_receipt_bytes)
        if "v" in obj and not is_protocol_version(obj["v"]):
            raise UnsupportedVersionError(f"receipt version {obj['v']!r} is not supported")
        kind = require_enum(obj.get("kind"), ReceiptKind, field="receipt.kind")
        common = {"v", "type", "kind", "channel", "message_id", "envelope_hash", "at_ms"}
        extra = {
            ReceiptKind.RELAY_ACCEPTED: {"log_index"},
            ReceiptKind.DELIVERED: {"issuer"},
            ReceiptKind.ACKNOWLEDGED: {"issuer", "reply_id"},
            ReceiptKind.REJECTED: {"issuer", "reason"},
        }[kind]
        optional = {"declined"} if kind is ReceiptKind.ACKNOWLEDGED else set()
        f = require_object(obj, field="receipt", keys=common | extra, optional=optional)
        if f["type"] != "receipt":
            raise MalformedError("receipt.type: expected 'receipt'")
        envelope_hash = b64d(f["envelope_hash"], field="receipt.envelope_hash", max_bytes=32)
        if len(envelope_hash) != 32:
            raise MalformedError("receipt.envelope_hash: a SHA-256 hash is 32 bytes")
        issuer = DeviceAddress.from_json(f["issuer"], field="receipt.issuer") if "issuer" in f else None
        log_index = require_int(f["log_index"], field="receipt.log_index") if "log_index" in f else None
        reply_id = None
        if f.get("reply_id") is not None:
            reply_id = require_uuid(f["reply_id"], field="receipt.reply_id")
        reason = None
        if "reason" in f:
            reason_text = require_str(f["reason"], field="receipt.reason", max_len=64)
            if reason_text not in {r.value for r in REJECT_REASONS}:
                raise MalformedError(f"receipt.reason: {reason_text!r} is not a rejection reason")
            reason = ErrorCode(reason_text)
        # One encoding only: a refusal says ``true``; an acknowledgement that is not one leaves it out.
        if "declined" in f and f["declined"] is not True:
            raise MalformedError("receipt.declined: only true is allowed (leave it out otherwise)")
        return cls(
            body=body,
            signature=signature,
            kind=kind,
            channel=require_channel(f["channel"], field="receipt.channel"),
            message_id=require_uuid(f["message_id"], field="receipt.message_id"),
            envelope_hash=envelope_hash,
            at_ms=require_int(f["at_ms"], field="receipt.at_ms"),
            issuer=issuer,
            log_index=log_index,
            reply_id=reply_id,
            reason=reason,
            declined="declined" in f,
        )


def _issue(fields: dict[str, Any], sign: crypto.Signer) -> Receipt:
    body = dump_json({"v": PROTOCOL_VERSION, "type": "receipt", **fields})
    return Receipt.parse(body, sign.sign(frame(DS_RECEIPT, body)))


def issue_relay_accepted(
    relay_key: crypto.Signer,
    *,
    channel: str,
    message_id: str,
    envelope_hash: bytes,
    log_index: int,
    at_ms: int,
) -> Receipt:
    return _issue(
        {
            "kind": ReceiptKind.RELAY_ACCEPTED.value,
            "channel": channel,
            "message_id": message_id,
            "envelope_hash": b64e(envelope_hash),
            "log_index": log_index,
            "at_ms": at_ms,
        },
        relay_key,
    )


def issue_device_receipt(
    device_key: crypto.Signer,
    issuer: DeviceAddress,
    kind: ReceiptKind,
    *,
    channel: str,
    message_id: str,
    envelope_hash: bytes,
    at_ms: int,
    reply_id: str | None = None,
    reason: ErrorCode | None = None,
    declined: bool = False,
) -> Receipt:
    """Issue a ``delivered``, ``acknowledged`` or ``rejected`` receipt from a recipient device.

    ``declined`` (acknowledged only) makes the acknowledgement a signed refusal.
    """
    fields: dict[str, Any] = {
        "kind": kind.value,
        "channel": channel,
        "message_id": message_id,
        "envelope_hash": b64e(envelope_hash),
        "issuer": issuer.to_json(),
        "at_ms": at_ms,
    }
    if declined and kind is not ReceiptKind.ACKNOWLEDGED:
        raise MalformedError("only an acknowledged receipt can be a refusal")
    if kind is ReceiptKind.ACKNOWLEDGED:
        fields["reply_id"] = reply_id
        if declined:
            fields["declined"] = True
    elif kind is ReceiptKind.REJECTED:
        if reason not in REJECT_REASONS:
            raise MalformedError("a rejected receipt needs a rejection reason")
        assert reason is not None
        fields["reason"] = reason.value
    elif kind is not ReceiptKind.DELIVERED:
        raise MalformedError(f"a device cannot issue a {kind.value} receipt")
    return _issue(fields, device_key)
