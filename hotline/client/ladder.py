"""The acknowledgement ladder of a sent message, as the sender's device sees it, and automatic resends.

A :class:`Ladder` has, for every recipient device, each step with its time — delivered, acknowledged
(or declined: a signed refusal), rejected with its reason — and, for every recipient desk, its state
(:class:`hotline.protocol.deadlines.DeskState`: pending, undelivered, delivered, silent, acknowledged,
declined, rejected, withdrawn). :meth:`Ladder.from_sent` builds it from this device's own records (the
signed receipts it received); :meth:`Ladder.from_relay` from the relay's view (``GET .../ladder``), which
adds the relay's deadlines and escalations.

A ``rejected`` receipt whose reason a fresh seal can cure (``unknown_key``, ``expired_prekey``,
``decryption_failed``: the device lost or rotated the prekey the message was sealed to) starts an
automatic resend (:func:`resend_rejected`): the directory is refreshed, the same text is sealed again to
the rejecting device alone, reusing the sequence number the original used for that member (the device
never accepted it, so it fills its place in the stream), under a new message id. Its content is the
original's, unchanged; the link to the original is made by posting it to ``POST
.../messages/{original}/resends`` (the relay checks the original was this member's and was rejected by
exactly the devices the resend goes to) and is recorded in the original's ladder on both sides. At most
:data:`MAX_RESENDS` per device and message (ADR 0007).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hotline.protocol.deadlines import (
    DEFAULT_POLICY,
    DeskFacts,
    DeskState,
    Mode,
    Policy,
    deadlines_for,
    desk_state,
)
from hotline.protocol.errors import ErrorCode
from hotline.protocol.model import DeviceAddress, Precedence

if TYPE_CHECKING:
    from hotline.client.desk import ClientEvent, DeskClient

CURABLE_REASONS = frozenset(
    {ErrorCode.UNKNOWN_KEY.value, ErrorCode.EXPIRED_PREKEY.value, ErrorCode.DECRYPTION_FAILED.value}
)
MAX_RESENDS = 2


@dataclass(frozen=True)
class DeviceSteps:
    """One recipient device's steps (times in ms; ``None``: not yet)."""

    address: DeviceAddress
    delivered_at_ms: int | None = None
    acknowledged_at_ms: int | None = None
    declined: bool = False
    rejected_at_ms: int | None = None
    reason: str | None = None
    reply_id: str | None = None
    resends: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "device": str(self.address),
            "delivered_at_ms": self.delivered_at_ms,
            "acknowledged_at_ms": self.acknowledged_at_ms,
            "declined": self.declined,
            "rejected_at_ms": self.rejected_at_ms,
            "reason": self.reason,
            "reply_id": self.reply_id,
            "resends": list(self.resends),
        }


@dataclass(frozen=True)
class DeskSteps:
    member: str
    state: DeskState
    deliver_by_ms: int | None = None
    ack_by_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "desk": self.member,
            "state": self.state.value,
            "deliver_by_ms": self.deliver_by_ms,
            "ack_by_ms": self.ack_by_ms,
        }


@dataclass(frozen=True)
class Ladder:
    message_id: str
    precedence: str
    created_at_ms: int
    accepted_at_ms: int | None
    log_index: int | None
    devices: tuple[DeviceSteps, ...]
    desks: tuple[DeskSteps, ...]
    source: str  # "device": this device's records; "relay": the relay's view
    withdrawn_at_ms: int | None = None
    escalations: tuple[dict[str, Any], ...] = field(default=())

    def desk(self, member: str) -> DeskSteps | None:
        return next((d for d in self.desks if d.member == member), None)

    def device(self, address: DeviceAddress | str) -> DeviceSteps | None:
        return next((d for d in self.devices if str(d.address) == str(address)), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "source": self.source,
            "precedence": self.precedence,
            "created_at_ms": self.created_at_ms,
            "accepted_at_ms": self.accepted_at_ms,
            "log_index": self.log_index,
            "withdrawn_at_ms": self.withdrawn_at_ms,
            "desks": [d.to_json() for d in self.desks],
            "devices": [d.to_json() for d in self.devices],
            "escalations": list(self.escalations),
        }

    @classmethod
    def from_sent(
        cls,
        message_id: str,
        sent: Mapping[str, Any],
        all_sent: Mapping[str, Mapping[str, Any]],
        *,
        now_ms: int,
        policy: Policy = DEFAULT_POLICY,
    ) -> Ladder:
        """From this device's records; deadlines from ``policy`` in the mode the message was sent in."""
        resends: Mapping[str, list[str]] = sent.get("resends", {})
        devices = []
        for name, steps in sorted(sent["recipients"].items()):
            merged = dict(steps)
            for resend_id in resends.get(name, []):
                later = all_sent.get(resend_id, {}).get("recipients", {}).get(name, {})
                for key in ("delivered", "acknowledged", "declined", "reply_id"):
                    if key in later and key not in merged:
                        merged[key] = later[key]
            member, device = name.split("/", 1)
            devices.append(
                DeviceSteps(
                    address=DeviceAddress(member, device),
                    delivered_at_ms=merged.get("delivered"),
                    acknowledged_at_ms=merged.get("acknowledged"),
                    declined=bool(merged.get("declined")),
                    rejected_at_ms=merged.get("rejected"),
                    reason=merged.get("reason"),
                    reply_id=merged.get("reply_id"),
                    resends=tuple(resends.get(name, [])),
                )
            )
        accepted = sent.get("accepted_at_ms")
        mode = Mode(sent.get("mode", Mode.NORMAL.value))
        withdrawn = sent.get("withdrawn_at_ms")
        desks = []
        for member in sorted({d.address.member for d in devices}):
            mine = [d for d in devices if d.address.member == member]
            d = deadlines_for(policy, Precedence(sent["precedence"]), mode, accepted or sent["created_at_ms"])
            acked = sorted(
                (x.acknowledged_at_ms, x.declined) for x in mine if x.acknowledged_at_ms is not None
            )
            # An acknowledgement is proof of delivery too (the device read it).
            delivered = [x.delivered_at_ms for x in mine if x.delivered_at_ms is not None] + [
                a for a, _ in acked
            ]
            rejected = [x.rejected_at_ms for x in mine if x.rejected_at_ms is not None]
            facts = DeskFacts(
                deliver_by_ms=d.deliver_by_ms,
                ack_by_ms=d.ack_by_ms,
                delivered_at_ms=min(delivered) if delivered else None,
                acknowledged_at_ms=acked[0][0] if acked else None,
                declined=bool(acked and acked[0][1]),
                rejected_at_ms=min(rejected) if rejected else None,
                withdrawn_at_ms=withdrawn,
            )
            desks.append(DeskSteps(member, desk_state(facts, now_ms), d.deliver_by_ms, d.ack_by_ms))
        return cls(
            message_id=message_id,
            precedence=sent["precedence"],
            created_at_ms=sent["created_at_ms"],
            accepted_at_ms=accepted,
            log_index=sent.get("log_index"),
            devices=tuple(devices),
            desks=tuple(desks),
            source="device",
            withdrawn_at_ms=withdrawn,
        )

    @classmethod
    def from_relay(cls, body: Mapping[str, Any]) -> Ladder:
        devices = []
        for r in body["recipients"]:
            delivered = r.get("delivered") or {}
            acked = r.get("acknowledged") or {}
            rejected = r.get("rejected") or {}
            devices.append(
                DeviceSteps(
                    address=DeviceAddress(r["member"], r["device"]),
                    delivered_at_ms=delivered.get("at_ms"),
                    acknowledged_at_ms=acked.get("at_ms"),
                    declined=bool(acked.get("declined")),
                    rejected_at_ms=rejected.get("at_ms"),
                    reason=rejected.get("reason"),
                    reply_id=acked.get("reply_id"),
                    resends=tuple(x["message_id"] for x in r.get("resends", [])),
                )
            )
        desks = tuple(
            DeskSteps(d["desk"], DeskState(d["state"]), d["deliver_by_ms"], d["ack_by_ms"])
            for d in body["desks"]
        )
        return cls(
            message_id=body["message_id"],
            precedence=body["precedence"],
            created_at_ms=body["created_at_ms"],
            accepted_at_ms=body["accepted"]["at_ms"],
            log_index=body["accepted"]["log_index"],
            devices=tuple(devices),
            desks=desks,
            source="relay",
            withdrawn_at_ms=body.get("withdrawn_at_ms"),
            escalations=tuple(body.get("escalations", [])),
        )


async def resend_rejected(
    desk: DeskClient, message_id: str, rejecting: DeviceAddress, reason: str
) -> list[ClientEvent]:
    """Reseal a rejected message to the rejecting device alone, once the directory is fresh."""
    from hotline.client.desk import RelayAlarm

    if reason not in CURABLE_REASONS:
        return []
    st = desk.state
    sent = st.sent.get(message_id)
    if sent is None or "text" not in sent:
        return []
    done = sent.get("resends", {}).get(str(rejecting), [])
    if len(done) >= MAX_RESENDS or sent.get("withdrawn_at_ms") is not None:
        return []
    await desk.refresh_directory()
    info = desk.directory.get(rejecting.member)
    device = info.devices.get(rejecting.device) if info else None
    now = desk.clock()
    prekeys = [
        p for p in (device.prekeys if device and device.status == "active" else []) if p.is_valid_at(now)
    ]
    if not prekeys:
        return [RelayAlarm(f"cannot resend {message_id} to {rejecting}: it has no valid prekey")]
    seq = sent.get("seq", {}).get(rejecting.member)
    if seq is None:
        return [RelayAlarm(f"cannot resend {message_id}: its sequence number was not recorded")]
    resend_id = await desk.watch.send_special(
        [max(prekeys, key=lambda p: (p.expires_ms, p.id))],
        sent["text"],
        precedence=Precedence(sent["precedence"]),
        intent=sent["intent"],
        in_reply_to=sent.get("in_reply_to"),
        exercise=bool(sent.get("exercise")),
        path=f"/messages/{message_id}/resends",
        seq={rejecting.member: seq},
        note={"resend_of": message_id},
        before_post=lambda st, mid: (
            st.sent[message_id].setdefault("resends", {}).setdefault(str(rejecting), []).append(mid)
        ),
    )
    return [RelayAlarm(f"{rejecting} rejected {message_id} ({reason}); resent as {resend_id}")]
