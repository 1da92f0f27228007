"""Signed statements of hotline's semantics: a desk's *acts* and the relay's *notices*.

* An **act** is signed by a device on behalf of a person at its desk: declaring crisis mode, standing it
  down, answering a scheduled check-in, withdrawing a sent message. The relay verifies it, logs it whole
  in the audit log and forwards it, so every desk can check who did it and when, with the issuer's key.
* A **notice** is signed by the relay: an escalation (a deadline passed), a change of crisis mode, a
  policy change, a check-in falling due, a withdrawal. A client checks it with the relay key it pinned
  at enrollment, so an escalation shown on screen provably came from the relay, and the audit log holds
  the same signed bytes.

Both follow the receipts' pattern (docs/PROTOCOL.md §5): exact body bytes travel base64url-encoded with
their signature, ``{"body", "sig"}``; the signed input is ``frame(<domain>, body)``; the parser accepts
exactly the fields of each kind. Neither names a suite: the signer's key does.

Pure code: no I/O, no clock (``at_ms`` is a parameter), no randomness (ids are parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hotline.protocol import crypto
from hotline.protocol.deadlines import (
    MAX_REASON_CHARS,
    CrisisTrigger,
    DeskState,
    EscalationReason,
    Mode,
    parse_checkin_id,
)
from hotline.protocol.encoding import b64d, b64e, dump_json, frame, load_json_object
from hotline.protocol.errors import MalformedError, UnsupportedVersionError
from hotline.protocol.model import (
    MAX_SIGNATURE_BYTES,
    PROTOCOL_VERSION,
    DeviceAddress,
    Precedence,
    Suite,
    is_protocol_version,
    require_bool,
    require_channel,
    require_enum,
    require_int,
    require_name,
    require_object,
    require_str,
    require_uuid,
)

DS_ACT = b"hotline/v1/act"
DS_NOTICE = b"hotline/v1/notice"
MAX_ACT_BYTES = 4 * 1024
MAX_NOTICE_BYTES = 16 * 1024  # a crisis notice carries the act it records


class ActKind(StrEnum):
    CRISIS_DECLARE = "crisis-declare"
    CRISIS_STAND_DOWN = "crisis-stand-down"
    CHECKIN_ANSWER = "checkin-answer"
    WITHDRAW = "withdraw"


_ACT_FIELDS: dict[ActKind, frozenset[str]] = {
    ActKind.CRISIS_DECLARE: frozenset({"epoch", "reason"}),
    ActKind.CRISIS_STAND_DOWN: frozenset({"epoch", "reason"}),
    ActKind.CHECKIN_ANSWER: frozenset({"checkin", "text"}),
    ActKind.WITHDRAW: frozenset({"message_id", "reason"}),
}
_ACT_COMMON = frozenset({"v", "type", "act", "id", "channel", "issuer", "at_ms"})


def _signature(obj: object, field: str) -> bytes:
    return b64d(obj, field=field, max_bytes=MAX_SIGNATURE_BYTES)


@dataclass(frozen=True)
class Act:
    """A parsed act. ``body`` holds the exact signed bytes; ``fields`` the kind's own members."""

    body: bytes
    signature: bytes
    kind: ActKind
    id: str
    channel: str
    issuer: DeviceAddress
    at_ms: int
    fields: Mapping[str, Any]

    def signed_bytes(self) -> bytes:
        return frame(DS_ACT, self.body)

    @property
    def hash(self) -> bytes:
        return crypto.sha256(frame(DS_ACT, self.body, self.signature))

    def verify(self, issuer_public_key: bytes, *, suite: Suite | None = None) -> None:
        """Raise :class:`BadSignatureError` unless the issuer device signed this act."""
        if suite is not None:
            crypto.require_signing_key_suite(issuer_public_key, suite, who=str(self.issuer))
        crypto.verify_signature(issuer_public_key, self.signature, self.signed_bytes())

    def to_json(self) -> dict[str, str]:
        return {"body": b64e(self.body), "sig": b64e(self.signature)}

    @property
    def epoch(self) -> int:
        return int(self.fields["epoch"])

    @property
    def reason(self) -> str:
        return str(self.fields.get("reason", ""))

    @classmethod
    def from_json(cls, obj: object) -> Act:
        f = require_object(obj, field="act", keys={"body", "sig"})
        body = b64d(f["body"], field="act.body", max_bytes=MAX_ACT_BYTES)
        return cls.parse(body, _signature(f["sig"], "act.sig"))

    @classmethod
    def parse(cls, body: bytes, signature: bytes) -> Act:
        obj = load_json_object(body, what="act", max_bytes=MAX_ACT_BYTES)
        if "v" in obj and not is_protocol_version(obj["v"]):
            raise UnsupportedVersionError(f"act version {obj['v']!r} is not supported")
        kind = require_enum(obj.get("act"), ActKind, field="act.act")
        f = require_object(obj, field="act", keys=_ACT_COMMON | _ACT_FIELDS[kind])
        if f["type"] != "act":
            raise MalformedError("act.type: expected 'act'")
        fields: dict[str, Any] = {}
        if kind in {ActKind.CRISIS_DECLARE, ActKind.CRISIS_STAND_DOWN}:
            fields["epoch"] = require_int(f["epoch"], field="act.epoch")
            fields["reason"] = require_str(f["reason"], field="act.reason", max_len=MAX_REASON_CHARS)
        elif kind is ActKind.CHECKIN_ANSWER:
            parse_checkin_id(f["checkin"], field="act.checkin")
            fields["checkin"] = f["checkin"]
            fields["text"] = require_str(f["text"], field="act.text", max_len=MAX_REASON_CHARS)
        else:
            fields["message_id"] = require_uuid(f["message_id"], field="act.message_id")
            fields["reason"] = require_str(f["reason"], field="act.reason", max_len=MAX_REASON_CHARS)
        return cls(
            body=body,
            signature=signature,
            kind=kind,
            id=require_uuid(f["id"], field="act.id"),
            channel=require_channel(f["channel"], field="act.channel"),
            issuer=DeviceAddress.from_json(f["issuer"], field="act.issuer"),
            at_ms=require_int(f["at_ms"], field="act.at_ms"),
            fields=fields,
        )


def sign_act(
    device_key: crypto.Signer,
    issuer: DeviceAddress,
    kind: ActKind,
    *,
    act_id: str,
    channel: str,
    at_ms: int,
    **fields: Any,
) -> Act:
    """Sign an act; ``fields`` are exactly the kind's (``epoch`` and ``reason`` for crisis acts, …)."""
    if set(fields) != _ACT_FIELDS[kind]:
        raise MalformedError(f"{kind.value}: needs exactly the fields {sorted(_ACT_FIELDS[kind])}")
    body = dump_json(
        {
            "v": PROTOCOL_VERSION,
            "type": "act",
            "act": kind.value,
            "id": act_id,
            "channel": channel,
            "issuer": issuer.to_json(),
            "at_ms": at_ms,
            **fields,
        }
    )
    # Round-trip through the parser so a device can never sign what a verifier would refuse.
    return Act.parse(body, device_key.sign(frame(DS_ACT, body)))


# --- relay notices ------------------------------------------------------------------------------------


class NoticeKind(StrEnum):
    ESCALATION = "escalation"
    CRISIS = "crisis"
    POLICY = "policy"
    CHECKIN_DUE = "checkin-due"
    WITHDRAWN = "withdrawn"


_NOTICE_FIELDS: dict[NoticeKind, frozenset[str]] = {
    NoticeKind.ESCALATION: frozenset(
        {
            "reason",
            "desk",
            "state",
            "deadline_ms",
            "attempt",
            "mode",
            "message_id",
            "sender",
            "precedence",
            "checkin",
        }
    ),
    NoticeKind.CRISIS: frozenset({"on", "epoch", "trigger", "by", "reason", "act"}),
    NoticeKind.POLICY: frozenset({"version", "by"}),
    NoticeKind.CHECKIN_DUE: frozenset({"checkin", "due_ms", "answer_by_ms", "desks"}),
    NoticeKind.WITHDRAWN: frozenset({"message_id", "by", "act"}),
}
_NOTICE_COMMON = frozenset({"v", "type", "notice", "id", "channel", "at_ms"})


@dataclass(frozen=True)
class Notice:
    """A parsed relay notice; ``fields`` holds the kind's own members as parsed JSON values."""

    body: bytes
    signature: bytes
    kind: NoticeKind
    id: str
    channel: str
    at_ms: int
    fields: Mapping[str, Any]

    def signed_bytes(self) -> bytes:
        return frame(DS_NOTICE, self.body)

    @property
    def hash(self) -> bytes:
        return crypto.sha256(frame(DS_NOTICE, self.body, self.signature))

    def verify(self, relay_public_key: bytes, *, suite: Suite | None = None) -> None:
        """Raise :class:`BadSignatureError` unless the relay signed this notice."""
        if suite is not None:
            crypto.require_signing_key_suite(relay_public_key, suite, who="the relay")
        crypto.verify_signature(relay_public_key, self.signature, self.signed_bytes())

    def to_json(self) -> dict[str, str]:
        return {"body": b64e(self.body), "sig": b64e(self.signature)}

    @property
    def act(self) -> Act | None:
        """The device-signed act a crisis or withdrawal notice records (None for automatic changes)."""
        raw = self.fields.get("act")
        return None if raw is None else Act.from_json(raw)

    @classmethod
    def from_json(cls, obj: object) -> Notice:
        f = require_object(obj, field="notice", keys={"body", "sig"})
        body = b64d(f["body"], field="notice.body", max_bytes=MAX_NOTICE_BYTES)
        return cls.parse(body, _signature(f["sig"], "notice.sig"))

    @classmethod
    def parse(cls, body: bytes, signature: bytes) -> Notice:
        obj = load_json_object(body, what="notice", max_bytes=MAX_NOTICE_BYTES)
        if "v" in obj and not is_protocol_version(obj["v"]):
            raise UnsupportedVersionError(f"notice version {obj['v']!r} is not supported")
        kind = require_enum(obj.get("notice"), NoticeKind, field="notice.notice")
        f = require_object(obj, field="notice", keys=_NOTICE_COMMON | _NOTICE_FIELDS[kind])
        if f["type"] != "notice":
            raise MalformedError("notice.type: expected 'notice'")
        _check_notice_fields(kind, f)
        return cls(
            body=body,
            signature=signature,
            kind=kind,
            id=require_uuid(f["id"], field="notice.id"),
            channel=require_channel(f["channel"], field="notice.channel"),
            at_ms=require_int(f["at_ms"], field="notice.at_ms"),
            fields={k: v for k, v in f.items() if k not in _NOTICE_COMMON},
        )


def _opt(value: object, check: Any, field: str) -> None:
    if value is not None:
        check(value, field=field)


def _check_notice_fields(kind: NoticeKind, f: Mapping[str, Any]) -> None:
    if kind is NoticeKind.ESCALATION:
        require_enum(f["reason"], EscalationReason, field="notice.reason")
        require_name(f["desk"], field="notice.desk")
        require_enum(f["state"], DeskState, field="notice.state")
        require_int(f["deadline_ms"], field="notice.deadline_ms")
        require_int(f["attempt"], field="notice.attempt", minimum=1)
        require_enum(f["mode"], Mode, field="notice.mode")
        _opt(f["message_id"], require_uuid, "notice.message_id")
        _opt(f["sender"], require_name, "notice.sender")
        if f["precedence"] is not None:
            require_enum(f["precedence"], Precedence, field="notice.precedence")
        if f["checkin"] is not None:
            parse_checkin_id(f["checkin"], field="notice.checkin")
    elif kind is NoticeKind.CRISIS:
        require_bool(f["on"], field="notice.on")
        require_int(f["epoch"], field="notice.epoch")
        require_enum(f["trigger"], CrisisTrigger, field="notice.trigger")
        require_str(f["by"], field="notice.by", max_len=65)
        require_str(f["reason"], field="notice.reason", max_len=MAX_REASON_CHARS)
        if f["act"] is not None:
            Act.from_json(f["act"])
    elif kind is NoticeKind.POLICY:
        require_int(f["version"], field="notice.version")
        require_str(f["by"], field="notice.by", max_len=65)
    elif kind is NoticeKind.CHECKIN_DUE:
        parse_checkin_id(f["checkin"], field="notice.checkin")
        require_int(f["due_ms"], field="notice.due_ms")
        require_int(f["answer_by_ms"], field="notice.answer_by_ms")
        desks = f["desks"]
        if not isinstance(desks, list) or len(desks) > 64:
            raise MalformedError("notice.desks: a list of member names")
        for i, d in enumerate(desks):
            require_name(d, field=f"notice.desks[{i}]")
    else:
        require_uuid(f["message_id"], field="notice.message_id")
        require_str(f["by"], field="notice.by", max_len=65)
        Act.from_json(f["act"])


def sign_notice(
    relay_key: crypto.Signer,
    kind: NoticeKind,
    *,
    notice_id: str,
    channel: str,
    at_ms: int,
    **fields: Any,
) -> Notice:
    """Sign a notice with the relay's key; ``fields`` are exactly the kind's."""
    if set(fields) != _NOTICE_FIELDS[kind]:
        raise MalformedError(f"{kind.value}: needs exactly the fields {sorted(_NOTICE_FIELDS[kind])}")
    body = dump_json(
        {
            "v": PROTOCOL_VERSION,
            "type": "notice",
            "notice": kind.value,
            "id": notice_id,
            "channel": channel,
            "at_ms": at_ms,
            **fields,
        }
    )
    return Notice.parse(body, relay_key.sign(frame(DS_NOTICE, body)))
