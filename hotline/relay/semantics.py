"""Hotline semantics on the relay: deadlines and escalation, link tests, check-ins, crisis mode, policies.

The relay sees metadata — precedence, recipients, receipts — never content, and that is enough to turn
silence into an alarm. When it accepts a message it records, in the same transaction, each recipient
desk's delivery and acknowledgement deadlines (:mod:`hotline.protocol.deadlines`) and a durable timer
for each. Receipts fill in the facts; when a timer comes due (:meth:`SemanticsService.sweep`, run by
:mod:`hotline.relay.timers`) and the fact it waits for is missing, the relay signs an escalation notice
(:mod:`hotline.protocol.notices`), logs it, and queues it to the sender, to every device of the overdue
desk and to the channel's facilitators and controllers — and schedules the next repeat.

Every change is one transaction that holds the audit-log lock: the log entry, the rows, the inbox items
and (for a timer) the claim commit together or not at all, so a timer's effects happen exactly once.
Sockets are woken only after the commit. Errors are :class:`RelayError` with the codes of docs/API.md.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hotline.protocol import audit
from hotline.protocol.deadlines import (
    DEFAULT_POLICY,
    SECOND_MS,
    CrisisConflict,
    CrisisState,
    CrisisTrigger,
    DeadlineKind,
    DeskState,
    Escalate,
    EscalationReason,
    LinkFacts,
    Mode,
    Policy,
    auto_crisis_trigger,
    checkin_id,
    crisis_transition,
    deadline_outcome,
    deadlines_for,
    desk_state,
    escalation_desks,
    link_state,
    next_occurrence,
    parse_checkin_id,
)
from hotline.protocol.encoding import b64e, dump_json
from hotline.protocol.envelope import Envelope, Header
from hotline.protocol.errors import ProtocolError
from hotline.protocol.ids import RandomSource, uuid7
from hotline.protocol.model import DeviceAddress, Precedence
from hotline.protocol.notices import Act, ActKind, Notice, NoticeKind, sign_notice
from hotline.protocol.receipts import Receipt, ReceiptKind
from hotline.relay.access import SENDING_ROLES, Principal, require_channel, require_role
from hotline.relay.errors import (
    RelayError,
    RelayErrorCode,
    conflict,
    forbidden,
    from_protocol,
    malformed,
    not_found,
)
from hotline.relay.identity import RelayIdentity
from hotline.relay.notifier import Notifier
from hotline.relay.semantics_store import (
    ActRow,
    CheckinAnswerRow,
    CheckinRow,
    CrisisChangeRow,
    LinkTestRow,
    NewEscalation,
    NewTimer,
    SemanticsRow,
    TimerRow,
    TrackedDeskRow,
    TrackedMessageRow,
)
from hotline.relay.settings import RelaySettings
from hotline.relay.store import (
    ChannelRow,
    DeviceRow,
    EnvelopeRow,
    ItemKind,
    MemberRow,
    NewItem,
    Role,
    Store,
    Tx,
)

log = logging.getLogger(__name__)

NOTICE_RANK = 0  # escalations and crisis changes go out ahead of everything, like FLASH traffic
CHECKIN_RANK = 1
CRISIS_ROLES = frozenset({Role.PRINCIPAL, Role.CONTROLLER})
POLICY_ROLES = frozenset({Role.CONTROLLER})
OVERSIGHT_ROLES = frozenset({Role.FACILITATOR, Role.CONTROLLER})


class Purpose(StrEnum):
    """Why an envelope was posted: a message, a link test, or a resend of a rejected message."""

    MESSAGE = "message"
    LINK_TEST = "link_test"
    RESEND = "resend"


@dataclass(frozen=True)
class SendPurpose:
    kind: Purpose
    resend_of: str | None = None  # the original's message id, for a resend


class TimerKind(StrEnum):
    DELIVERY = "delivery"
    ACK = "ack"
    LINK_TEST = "link_test"
    CHECKIN = "checkin"
    CHECKIN_DEADLINE = "checkin_deadline"


def decode_policy(raw: bytes | None) -> Policy:
    return DEFAULT_POLICY if raw is None else Policy.from_json(json.loads(raw))


def encode_policy(policy: Policy) -> bytes:
    return dump_json(policy.to_json())


def _active(devices: Iterable[DeviceRow], members: Iterable[str], *, operators: bool = False) -> list[int]:
    wanted = set(members)
    return [
        d.id
        for d in devices
        if d.active and d.member in wanted and (operators or d.role is not Role.OPERATOR)
    ]


def _act(obj: object) -> Act:
    try:
        return Act.from_json(obj)
    except ProtocolError as exc:
        raise from_protocol(exc) from exc


class SemanticsService:
    def __init__(
        self,
        store: Store,
        identity: RelayIdentity,
        settings: RelaySettings,
        notifier: Notifier,
        *,
        now_ms: Callable[[], int],
        rng: RandomSource = os.urandom,
    ) -> None:
        self.store = store
        self.identity = identity
        self.settings = settings
        self.notifier = notifier
        self.now_ms = now_ms
        self.rng = rng
        # Names this process in ``timers.fired_by``, so tests (and operators) see who fired what.
        self.worker_id = f"{socket.gethostname()[:32]}:{os.getpid()}:{b64e(rng(6))}"

    # --- shared steps ------------------------------------------------------------------------------

    @staticmethod
    async def _channel(tx: Tx, name: str) -> ChannelRow:
        channel = await tx.get_channel(name)
        if channel is None:
            raise not_found(f"no channel {name}")
        return channel

    async def _policy(self, tx: Tx, channel_id: int) -> tuple[Policy, SemanticsRow | None]:
        row = await tx.semantics().get_semantics(channel_id)
        return decode_policy(row.policy if row else None), row

    def _sign(self, kind: NoticeKind, channel: str, now: int, **fields: Any) -> Notice:
        return sign_notice(
            self.identity.signing_key,
            kind,
            notice_id=uuid7(now, self.rng),
            channel=channel,
            at_ms=now,
            **fields,
        )

    async def _log_notice(self, tx: Tx, notice: Notice, now: int) -> int:
        return await tx.append_audit(
            now,
            audit.notice_logged(
                at_ms=now, channel=notice.channel, kind=notice.kind.value, notice=notice.to_json()
            ),
        )

    @staticmethod
    async def _queue_notice(
        tx: Tx, notice: Notice, device_ids: Sequence[int], now: int, rank: int = NOTICE_RANK
    ) -> list[int]:
        payload = dump_json({"notice": notice.to_json()})
        await tx.queue_items(
            [
                NewItem(device_id=d, kind=ItemKind.NOTICE, rank=rank, at_ms=now, payload=payload)
                for d in device_ids
            ]
        )
        return list(device_ids)

    @staticmethod
    def _check_act(who: Principal, channel: str, act: Act, kinds: set[ActKind]) -> None:
        if act.kind not in kinds:
            raise malformed(f"expected an act of kind {', '.join(sorted(k.value for k in kinds))}")
        if act.channel != channel:
            raise RelayError(RelayErrorCode.WRONG_CHANNEL, "act.channel is not the channel in the path")
        if act.issuer != who.address:
            raise RelayError(RelayErrorCode.SENDER_MISMATCH, "act.issuer is not the authenticated device")
        try:
            act.verify(who.device.signing_key)
        except ProtocolError as exc:
            raise RelayError(RelayErrorCode.BAD_SIGNATURE, "act signature does not verify") from exc

    def _check_act_time(self, act: Act, now: int) -> None:
        skew = self.settings.act_max_skew_s * SECOND_MS
        if abs(now - act.at_ms) > skew:
            raise malformed(
                f"act.at_ms is more than {self.settings.act_max_skew_s} s from the relay's clock ({now})"
            )

    @staticmethod
    async def _repeated_act(tx: Tx, act: Act) -> ActRow | None:
        row = await tx.semantics().get_act(act.id)
        if row is not None and row.act_hash != act.hash:
            raise conflict(f"act id {act.id} was already used for another act")
        return row

    # --- hooks called by RelayService inside its transactions ---------------------------------------

    async def check_recipients(
        self,
        tx: Tx,
        channel: ChannelRow,
        who: Principal,
        header: Header,
        active: Mapping[DeviceAddress, DeviceRow],
        purpose: SendPurpose,
    ) -> None:
        """Recipient rules of link tests and resends, which replace "every device of every member"."""
        listed = {r.address for r in header.recipients}
        if purpose.kind is Purpose.LINK_TEST:
            members = {a.member for a in listed}
            if len(members) != 1 or who.address.member in members:
                raise malformed("a link test goes to every device of exactly one other member")
            (member,) = members
            expected = {a for a, d in active.items() if a.member == member and d.role in SENDING_ROLES}
            if listed != expected:
                raise RelayError(
                    RelayErrorCode.UNKNOWN_RECIPIENT,
                    "a link test must reach every current device of its member: refresh the directory",
                    details={
                        "unknown": sorted(str(a) for a in listed - expected),
                        "missing": sorted(str(a) for a in expected - listed),
                    },
                )
            return
        assert purpose.kind is Purpose.RESEND and purpose.resend_of is not None
        original = await tx.get_envelope(channel.id, purpose.resend_of)
        if original is None:
            raise not_found(f"no message {purpose.resend_of}")
        sender = await tx.get_device_by_id(original.sender_device_id)
        if sender is None or sender.member_id != who.device.member_id:
            raise forbidden("only the sender's member resends a message")
        rejecting = set()
        for receipt in await tx.semantics().ladder_receipts(original.id):
            if receipt.kind == ReceiptKind.REJECTED.value:
                device = await tx.get_device_by_id(receipt.issuer_device_id)
                if device is not None:
                    rejecting.add(DeviceAddress(device.member, device.name))
        unknown = sorted(str(a) for a in listed if a not in rejecting or a not in active)
        if unknown:
            raise RelayError(
                RelayErrorCode.UNKNOWN_RECIPIENT,
                "a resend goes only to active devices that rejected the original",
                details={"unknown": unknown, "missing": []},
            )

    async def on_envelope_accepted(
        self,
        tx: Tx,
        channel: ChannelRow,
        who: Principal,
        header: Header,
        envelope_id: int,
        now: int,
        purpose: SendPurpose | None,
    ) -> list[int]:
        """Record deadlines and timers for a new envelope; returns devices to wake (auto-crisis)."""
        sem = tx.semantics()
        policy, row = await self._policy(tx, channel.id)
        crisis = row.crisis if row else CrisisState()
        kind = purpose.kind if purpose else Purpose.MESSAGE
        wake: list[int] = []
        if kind is Purpose.MESSAGE:
            trigger = auto_crisis_trigger(policy, crisis, flash=header.precedence is Precedence.FLASH)
            if trigger is not None:
                crisis, _, _, wake = await self._change_crisis(
                    tx, channel, declare=True, trigger=trigger, by="relay", reason="", act=None, now=now
                )
        mode = crisis.mode
        members = {m.name: m for m in await tx.list_members(channel.id)}
        resend_of = None
        if kind is Purpose.RESEND:
            assert purpose is not None and purpose.resend_of is not None
            original = await tx.get_envelope(channel.id, purpose.resend_of)
            resend_of = original.id if original else None
        await sem.insert_tracked_message(
            TrackedMessageRow(
                envelope_id=envelope_id,
                channel_id=channel.id,
                purpose=kind.value,
                mode=mode.value,
                resend_of=resend_of,
            )
        )
        if kind is Purpose.LINK_TEST:
            (to_member,) = header.recipient_members
            timeout = policy.mode(mode).link_test_timeout_s * SECOND_MS
            await sem.insert_link_test(
                LinkTestRow(
                    envelope_id=envelope_id,
                    channel_id=channel.id,
                    from_member_id=who.device.member_id,
                    to_member_id=members[to_member].id,
                    sent_at_ms=now,
                    timeout_at_ms=now + timeout,
                )
            )
            await sem.schedule_timers(
                [
                    NewTimer(
                        channel_id=channel.id,
                        kind=TimerKind.LINK_TEST.value,
                        key=f"link_test:{envelope_id}",
                        due_ms=now + timeout,
                        envelope_id=envelope_id,
                        member_id=members[to_member].id,
                    )
                ],
                now,
            )
        elif kind is Purpose.MESSAGE:
            desks: list[TrackedDeskRow] = []
            timers: list[NewTimer] = []
            for name in header.recipient_members:
                if name == who.address.member:
                    continue  # the sender's own other devices get copies, with no deadline
                member = members[name]
                d = deadlines_for(policy, header.precedence, mode, now)
                desks.append(TrackedDeskRow(envelope_id, member.id, d.deliver_by_ms, d.ack_by_ms))
                timers.append(
                    self._deadline_timer(
                        channel.id, TimerKind.DELIVERY, envelope_id, member.id, 1, d.deliver_by_ms
                    )
                )
                if d.ack_by_ms is not None:
                    timers.append(
                        self._deadline_timer(
                            channel.id, TimerKind.ACK, envelope_id, member.id, 1, d.ack_by_ms
                        )
                    )
            await sem.insert_tracked_desks(desks)
            await sem.schedule_timers(timers, now)
        return wake

    @staticmethod
    def _deadline_timer(
        channel_id: int, kind: TimerKind, envelope_id: int, member_id: int, attempt: int, due_ms: int
    ) -> NewTimer:
        return NewTimer(
            channel_id=channel_id,
            kind=kind.value,
            key=f"{kind.value}:{envelope_id}:{member_id}:{attempt}",
            due_ms=due_ms,
            envelope_id=envelope_id,
            member_id=member_id,
            attempt=attempt,
        )

    async def on_receipt(
        self, tx: Tx, envelope: EnvelopeRow, who: Principal, receipt: Receipt, now: int
    ) -> None:
        """Fill in the facts a receipt brings: a desk's delivery or answer, a link test's answer."""
        sem = tx.semantics()
        tracked = await sem.get_tracked_message(envelope.id)
        if tracked is None:
            return  # accepted before this relay tracked deadlines
        if tracked.purpose == Purpose.LINK_TEST.value:
            test = await sem.get_link_test(envelope.id)
            if (
                test is not None
                and receipt.kind in {ReceiptKind.DELIVERED, ReceiptKind.ACKNOWLEDGED}
                and who.device.member_id == test.to_member_id
            ):
                await sem.answer_link_test(envelope.id, now)
            return
        target = tracked.resend_of if tracked.purpose == Purpose.RESEND.value else envelope.id
        if target is not None:
            await sem.record_desk_receipt(
                target, who.device.member_id, receipt.kind.value, receipt.declined, now
            )

    async def init_channel(self, tx: Tx, channel: ChannelRow, raw_policy: object, now: int) -> None:
        """Store the policy an admin gave at channel creation (the log lock is held)."""
        if raw_policy is None:
            return
        try:
            policy = Policy.from_json(raw_policy)
        except ProtocolError as exc:
            raise from_protocol(exc) from exc
        await self._store_policy(tx, channel, policy, "admin", now, notify=False)

    # --- timers ------------------------------------------------------------------------------------

    async def sweep(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Fire every timer due now, each in its own transaction; returns what fired (for tests)."""
        limit = limit or self.settings.timer_batch
        now = self.now_ms()
        async with self.store.read() as tx:
            if not await tx.semantics().has_due_timer(now):
                return []
        fired: list[dict[str, Any]] = []
        for _ in range(limit):
            claimed: TimerRow | None = None
            try:
                async with self.store.write() as tx:
                    await tx.lock_log()
                    claimed = await tx.semantics().claim_timer(now, self.worker_id)
                    if claimed is None:
                        break
                    outcome, wake = await self._fire(tx, claimed, now)
                    await tx.semantics().finish_timer(claimed.id, outcome)
            except Exception:
                if claimed is None:
                    raise
                # A timer whose effects fail would fail again on every sweep: record it and go on.
                log.exception("timer %s (%s) failed; marked as an error", claimed.id, claimed.kind)
                async with self.store.write() as tx:
                    await tx.semantics().abandon_timer(claimed.id, now, self.worker_id)
                continue
            await self.notifier.publish(wake)
            fired.append(
                {
                    "id": claimed.id,
                    "kind": claimed.kind,
                    "key": claimed.key,
                    "outcome": outcome,
                    "by": self.worker_id,
                }
            )
        return fired

    async def _fire(self, tx: Tx, timer: TimerRow, now: int) -> tuple[str, list[int]]:
        kind = TimerKind(timer.kind)
        if kind in {TimerKind.DELIVERY, TimerKind.ACK}:
            return await self._fire_deadline(tx, timer, kind, now)
        if kind is TimerKind.LINK_TEST:
            return await self._fire_link_test(tx, timer, now)
        if kind is TimerKind.CHECKIN:
            return await self._fire_checkin(tx, timer, now)
        return await self._fire_checkin_deadline(tx, timer, now)

    async def _escalate(
        self,
        tx: Tx,
        channel: ChannelRow,
        timer: TimerRow,
        now: int,
        *,
        reason: EscalationReason,
        desk: MemberRow,
        state: DeskState,
        deadline_ms: int,
        mode: Mode,
        sender: str | None,
        others: Iterable[str] = (),
        envelope_id: int | None = None,
        message_id: str | None = None,
        precedence: str | None = None,
        checkin: str | None = None,
    ) -> list[int]:
        notice = self._sign(
            NoticeKind.ESCALATION,
            channel.name,
            now,
            reason=reason.value,
            desk=desk.name,
            state=state.value,
            deadline_ms=deadline_ms,
            attempt=timer.attempt,
            mode=mode.value,
            message_id=message_id,
            sender=sender,
            precedence=precedence,
            checkin=checkin,
        )
        log_index = await self._log_notice(tx, notice, now)
        await tx.semantics().insert_escalation(
            NewEscalation(
                channel_id=channel.id,
                timer_id=timer.id,
                reason=reason.value,
                member_id=desk.id,
                attempt=timer.attempt,
                state=state.value,
                deadline_ms=deadline_ms,
                at_ms=now,
                notice_body=notice.body,
                notice_sig=notice.signature,
                log_index=log_index,
                envelope_id=envelope_id,
                checkin=checkin,
            )
        )
        members = await tx.list_members(channel.id)
        roles = {m.name: m.role.value for m in members if m.status.value == "active"}
        targets = escalation_desks(sender, [desk.name, *others], roles)
        devices = _active(await tx.list_devices(channel.id), targets)
        return await self._queue_notice(tx, notice, devices, now)

    async def _fire_deadline(
        self, tx: Tx, timer: TimerRow, kind: TimerKind, now: int
    ) -> tuple[str, list[int]]:
        sem = tx.semantics()
        assert timer.envelope_id is not None and timer.member_id is not None
        brief = await sem.envelope_brief(timer.envelope_id)
        tracked = await sem.get_tracked_message(timer.envelope_id)
        desk = await tx.get_member_by_id(timer.member_id)
        channel = await tx.get_channel_by_id(timer.channel_id)
        row = next(
            (d for d in await sem.tracked_desks(timer.envelope_id) if d.member_id == timer.member_id), None
        )
        if brief is None or tracked is None or desk is None or channel is None or row is None:
            return "gone", []
        if desk.status.value != "active":
            return "desk_revoked", []
        policy, _ = await self._policy(tx, channel.id)
        mode = Mode(tracked.mode)
        facts = row.facts(tracked.withdrawn_at_ms)
        deadline_kind = DeadlineKind.DELIVERY if kind is TimerKind.DELIVERY else DeadlineKind.ACK
        outcome = deadline_outcome(deadline_kind, facts, now, policy.mode(mode).escalation_repeat_s)
        if not isinstance(outcome, Escalate):
            return f"resolved:{outcome.state.value}", []
        sender = await tx.get_device_by_id(brief.sender_device_id)
        deadline = facts.deliver_by_ms if kind is TimerKind.DELIVERY else facts.ack_by_ms
        assert deadline is not None
        wake = await self._escalate(
            tx,
            channel,
            timer,
            now,
            reason=outcome.reason,
            desk=desk,
            state=outcome.state,
            deadline_ms=deadline,
            mode=mode,
            sender=sender.member if sender else None,
            envelope_id=brief.id,
            message_id=brief.message_id,
            precedence=brief.precedence,
        )
        await sem.schedule_timers(
            [
                self._deadline_timer(
                    channel.id, kind, brief.id, desk.id, timer.attempt + 1, outcome.repeat_at_ms
                )
            ],
            now,
        )
        return "escalated", wake

    async def _fire_link_test(self, tx: Tx, timer: TimerRow, now: int) -> tuple[str, list[int]]:
        sem = tx.semantics()
        assert timer.envelope_id is not None
        test = await sem.get_link_test(timer.envelope_id)
        brief = await sem.envelope_brief(timer.envelope_id)
        channel = await tx.get_channel_by_id(timer.channel_id)
        if test is None or brief is None or channel is None:
            return "gone", []
        if test.answered_at_ms is not None:
            return "answered", []
        await sem.miss_link_test(test.envelope_id, now)
        desk = await tx.get_member_by_id(test.to_member_id)
        sender = await tx.get_member_by_id(test.from_member_id)
        assert desk is not None and sender is not None
        policy, row = await self._policy(tx, channel.id)
        crisis = row.crisis if row else CrisisState()
        wake = await self._escalate(
            tx,
            channel,
            timer,
            now,
            reason=EscalationReason.LINK_TEST_MISSED,
            desk=desk,
            state=DeskState.UNDELIVERED,
            deadline_ms=test.timeout_at_ms,
            mode=crisis.mode,
            sender=sender.name,
            envelope_id=brief.id,
            message_id=brief.message_id,
            precedence=brief.precedence,
        )
        trigger = auto_crisis_trigger(policy, crisis, missed_link_test=True)
        if trigger is not None:
            _, _, _, more = await self._change_crisis(
                tx, channel, declare=True, trigger=trigger, by="relay", reason="", act=None, now=now
            )
            wake += more
        return "missed", wake

    async def _checkin_desks(self, tx: Tx, channel: ChannelRow, desks: Sequence[str]) -> list[MemberRow]:
        members = [m for m in await tx.list_members(channel.id) if m.status.value == "active"]
        if desks:
            return [m for m in members if m.name in set(desks)]
        return [m for m in members if m.role is Role.PRINCIPAL]

    async def _fire_checkin(self, tx: Tx, timer: TimerRow, now: int) -> tuple[str, list[int]]:
        sem = tx.semantics()
        channel = await tx.get_channel_by_id(timer.channel_id)
        if channel is None:
            return "gone", []
        policy, _ = await self._policy(tx, channel.id)
        schedule = next((s for s in policy.checkins if s.id == timer.subject), None)
        if schedule is None:
            return "cancelled", []
        due = timer.due_ms
        name = checkin_id(schedule.id, due)
        answer_by = due + schedule.answer_within_s * SECOND_MS
        desks = await self._checkin_desks(tx, channel, schedule.desks)
        notice = self._sign(
            NoticeKind.CHECKIN_DUE,
            channel.name,
            now,
            checkin=name,
            due_ms=due,
            answer_by_ms=answer_by,
            desks=[m.name for m in desks],
        )
        log_index = await self._log_notice(tx, notice, now)
        inserted = await sem.insert_checkin(
            CheckinRow(
                id=0,
                channel_id=channel.id,
                checkin=name,
                schedule=schedule.id,
                due_ms=due,
                answer_by_ms=answer_by,
                desks=tuple(m.name for m in desks),
                notice_body=notice.body,
                notice_sig=notice.signature,
                log_index=log_index,
            )
        )
        if inserted is None:
            raise RuntimeError(f"check-in {name} recorded twice")  # rolls back this timer's transaction
        members = await tx.list_members(channel.id)
        roles = {m.name: m.role.value for m in members if m.status.value == "active"}
        targets = escalation_desks(None, [m.name for m in desks], roles)
        wake = await self._queue_notice(
            tx, notice, _active(await tx.list_devices(channel.id), targets), now, CHECKIN_RANK
        )
        timers = [
            NewTimer(
                channel_id=channel.id,
                kind=TimerKind.CHECKIN_DEADLINE.value,
                key=f"checkin_deadline:{channel.id}:{name}:{m.id}",
                due_ms=answer_by,
                member_id=m.id,
                subject=name,
            )
            for m in desks
        ]
        timers.append(self._checkin_timer(channel.id, schedule.id, next_occurrence(schedule, max(due, now))))
        await sem.schedule_timers(timers, now)
        return "due", wake

    @staticmethod
    def _checkin_timer(channel_id: int, schedule_id: str, due_ms: int) -> NewTimer:
        return NewTimer(
            channel_id=channel_id,
            kind=TimerKind.CHECKIN.value,
            key=f"checkin:{channel_id}:{schedule_id}:{due_ms}",
            due_ms=due_ms,
            subject=schedule_id,
        )

    async def _fire_checkin_deadline(self, tx: Tx, timer: TimerRow, now: int) -> tuple[str, list[int]]:
        sem = tx.semantics()
        channel = await tx.get_channel_by_id(timer.channel_id)
        desk = await tx.get_member_by_id(timer.member_id) if timer.member_id is not None else None
        checkin = await sem.get_checkin(timer.channel_id, timer.subject or "") if channel else None
        if channel is None or desk is None or checkin is None:
            return "gone", []
        if any(a.member_id == desk.id for a in await sem.checkin_answers(checkin.id)):
            return "answered", []
        _, row = await self._policy(tx, channel.id)
        wake = await self._escalate(
            tx,
            channel,
            timer,
            now,
            reason=EscalationReason.CHECKIN_MISSED,
            desk=desk,
            state=DeskState.SILENT,
            deadline_ms=checkin.answer_by_ms,
            mode=(row.crisis if row else CrisisState()).mode,
            sender=None,
            others=checkin.desks,
            checkin=checkin.checkin,
        )
        return "missed", wake

    async def ensure_checkin_timers(self) -> None:
        """Schedule the next occurrence of every check-in schedule that has none pending (at start)."""
        now = self.now_ms()
        async with self.store.write() as tx:
            sem = tx.semantics()
            for channel_id, raw in await sem.channels_with_policy():
                policy = decode_policy(raw)
                pending = {
                    t.subject
                    for t in await sem.timers_for(channel_id, TimerKind.CHECKIN.value)
                    if t.fired_at_ms is None
                }
                await sem.schedule_timers(
                    [
                        self._checkin_timer(channel_id, s.id, next_occurrence(s, now))
                        for s in policy.checkins
                        if s.id not in pending
                    ],
                    now,
                )

    # --- crisis mode -------------------------------------------------------------------------------

    async def _change_crisis(
        self,
        tx: Tx,
        channel: ChannelRow,
        *,
        declare: bool,
        trigger: CrisisTrigger,
        by: str,
        reason: str,
        act: Act | None,
        now: int,
    ) -> tuple[CrisisState, Notice, int, list[int]]:
        """Switch crisis mode (the log lock is held); raises CrisisConflict if it does not apply."""
        sem = tx.semantics()
        row = await sem.lock_semantics(channel.id, now)
        epoch = act.epoch if act is not None else row.crisis.epoch
        new = crisis_transition(row.crisis, declare=declare, epoch=epoch, trigger=trigger, by=by, at_ms=now)
        notice = self._sign(
            NoticeKind.CRISIS,
            channel.name,
            now,
            on=new.on,
            epoch=new.epoch,
            trigger=trigger.value,
            by=by,
            reason=reason,
            act=act.to_json() if act else None,
        )
        log_index = await self._log_notice(tx, notice, now)
        if act is not None:
            await self._store_act(tx, channel, act, log_index, now)
        await sem.insert_crisis_change(
            channel.id,
            CrisisChangeRow(
                id=0,
                epoch=new.epoch,
                on=new.on,
                trigger=trigger.value,
                by=by,
                reason=reason,
                act_id=act.id if act else None,
                at_ms=now,
                notice_body=notice.body,
                notice_sig=notice.signature,
                log_index=log_index,
            ),
        )
        await sem.save_crisis(channel.id, new, now)
        devices = [d.id for d in await tx.list_devices(channel.id) if d.active]
        wake = await self._queue_notice(tx, notice, devices, now)
        return new, notice, log_index, wake

    @staticmethod
    async def _store_act(tx: Tx, channel: ChannelRow, act: Act, log_index: int, now: int) -> None:
        device = await tx.get_device(channel.id, act.issuer.member, act.issuer.device)
        assert device is not None
        await tx.semantics().insert_act(
            ActRow(
                act_id=act.id,
                channel_id=channel.id,
                kind=act.kind.value,
                issuer_device_id=device.id,
                act_hash=act.hash,
                body=act.body,
                sig=act.signature,
                at_ms=now,
                log_index=log_index,
            )
        )

    async def post_crisis_act(self, who: Principal, channel_name: str, obj: object) -> dict[str, Any]:
        """A principal or controller declares crisis mode or stands it down with a signed act."""
        require_channel(who, channel_name)
        act = _act(obj)
        require_role(who, CRISIS_ROLES, "declare or stand down crisis mode")
        self._check_act(who, channel_name, act, {ActKind.CRISIS_DECLARE, ActKind.CRISIS_STAND_DOWN})
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            repeat = await self._repeated_act(tx, act)
            if repeat is None:
                self._check_act_time(act, now)
                await tx.lock_log()
                repeat = await self._repeated_act(tx, act)
            if repeat is not None:
                state = await self._crisis_state(tx, channel.id)
                return {"crisis": state.to_json(), "log_index": repeat.log_index, "duplicate": True}
            try:
                new, notice, log_index, wake = await self._change_crisis(
                    tx,
                    channel,
                    declare=act.kind is ActKind.CRISIS_DECLARE,
                    trigger=CrisisTrigger.ACT,
                    by=str(who.address),
                    reason=act.reason,
                    act=act,
                    now=now,
                )
            except CrisisConflict as exc:
                state = await self._crisis_state(tx, channel.id)
                raise conflict(str(exc), details={"crisis": state.to_json()}) from exc
        await self.notifier.publish(wake)
        return {
            "crisis": new.to_json(),
            "notice": notice.to_json(),
            "log_index": log_index,
            "duplicate": False,
        }

    @staticmethod
    async def _crisis_state(tx: Tx, channel_id: int) -> CrisisState:
        row = await tx.semantics().get_semantics(channel_id)
        return row.crisis if row else CrisisState()

    async def crisis_view(self, channel_name: str, limit: int = 50) -> dict[str, Any]:
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            state = await self._crisis_state(tx, channel.id)
            changes = await tx.semantics().crisis_changes(channel.id, limit)
        return {
            "channel": channel.name,
            "crisis": state.to_json(),
            "history": [
                {
                    "epoch": c.epoch,
                    "on": c.on,
                    "trigger": c.trigger,
                    "by": c.by,
                    "reason": c.reason,
                    "at_ms": c.at_ms,
                    "log_index": c.log_index,
                    "notice": {"body": b64e(c.notice_body), "sig": b64e(c.notice_sig)},
                }
                for c in changes
            ],
        }

    # --- policy ------------------------------------------------------------------------------------

    async def _store_policy(
        self, tx: Tx, channel: ChannelRow, policy: Policy, by: str, now: int, *, notify: bool
    ) -> tuple[int, list[int]]:
        sem = tx.semantics()
        row = await sem.lock_semantics(channel.id, now)
        version = row.policy_version + 1
        await sem.save_policy(channel.id, encode_policy(policy), version, now)
        await tx.append_audit(
            now,
            audit.policy_changed(
                at_ms=now, channel=channel.name, version=version, by=by, policy=policy.to_json()
            ),
        )
        # Check-in schedules start again from the new policy.
        await sem.cancel_timers(channel.id, TimerKind.CHECKIN.value, now, self.worker_id)
        await sem.schedule_timers(
            [self._checkin_timer(channel.id, s.id, next_occurrence(s, now)) for s in policy.checkins], now
        )
        wake: list[int] = []
        if notify:
            notice = self._sign(NoticeKind.POLICY, channel.name, now, version=version, by=by)
            await self._log_notice(tx, notice, now)
            devices = [d.id for d in await tx.list_devices(channel.id) if d.active]
            wake = await self._queue_notice(tx, notice, devices, now)
        return version, wake

    async def set_policy(self, who: Principal | None, channel_name: str, obj: object) -> dict[str, Any]:
        """Change a channel's policy: the admin (``who`` None) or a controller device. Fields left out
        keep their current values."""
        if who is not None:
            require_channel(who, channel_name)
            require_role(who, POLICY_ROLES, "change the channel policy")
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            current, _ = await self._policy(tx, channel.id)
            try:
                policy = Policy.from_json(obj, base=current)
            except ProtocolError as exc:
                raise from_protocol(exc) from exc
            await tx.lock_log()
            _, wake = await self._store_policy(
                tx, channel, policy, "admin" if who is None else str(who.address), now, notify=True
            )
        await self.notifier.publish(wake)
        return await self.policy_view(channel_name)

    async def policy_view(self, channel_name: str) -> dict[str, Any]:
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            policy, row = await self._policy(tx, channel.id)
        crisis = row.crisis if row else CrisisState()
        return {
            "channel": channel.name,
            "policy": policy.to_json(),
            "version": row.policy_version if row else 0,
            "crisis": crisis.to_json(),
            "mode": crisis.mode.value,
        }

    # --- the ladder --------------------------------------------------------------------------------

    async def ladder(self, who: Principal, channel_name: str, message_id: str) -> dict[str, Any]:
        """Every step of a message at every recipient device, with the desks' deadlines and states."""
        require_channel(who, channel_name)
        require_role(who, SENDING_ROLES, "read ladders")
        now = self.now_ms()
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            row = await tx.get_envelope(channel.id, message_id)
            if row is None:
                raise not_found(f"no message {message_id} for this device")
            sender = await tx.get_device_by_id(row.sender_device_id)
            header = Envelope.from_bytes(row.wire).header
            own = sender is not None and sender.member_id == who.device.member_id
            recipient_members = set(header.recipient_members)
            allowed = (
                own
                or who.role is Role.CONTROLLER
                or (who.role is Role.FACILITATOR and who.device.member in recipient_members)
            )
            if not allowed or sender is None:
                raise not_found(f"no message {message_id} for this device")
            sem = tx.semantics()
            devices = {d.id: d for d in await tx.list_devices(channel.id)}
            members = {m.id: m for m in await tx.list_members(channel.id)}
            tracked = await sem.get_tracked_message(row.id)
            desks = await sem.tracked_desks(row.id)
            receipts = [(message_id, r) for r in await sem.ladder_receipts(row.id)]
            resends = await sem.resends_of(row.id)
            for resend_id, resend_mid in resends:
                receipts += [(resend_mid, r) for r in await sem.ladder_receipts(resend_id)]
            escalations = await sem.escalations(channel.id, envelope_id=row.id, limit=1000)
            resend_rows = {mid: await tx.get_envelope(channel.id, mid) for _, mid in resends}
        steps: dict[str, dict[str, Any]] = {}
        for r in header.recipients:
            if r.address.member != sender.member:
                steps[str(r.address)] = {
                    "member": r.address.member,
                    "device": r.address.device,
                    "resends": [],
                }
        for mid, resend_row in resend_rows.items():
            if resend_row is None:
                continue
            for r in Envelope.from_bytes(resend_row.wire).header.recipients:
                entry = steps.get(str(r.address))
                if entry is not None:
                    entry["resends"].append({"message_id": mid, "accepted_at_ms": resend_row.accepted_at_ms})
        for mid, rec in receipts:
            device = devices.get(rec.issuer_device_id)
            if device is None or f"{device.member}/{device.name}" not in steps:
                continue
            parsed = Receipt.parse(rec.body, rec.sig)
            step: dict[str, Any] = {
                "at_ms": parsed.at_ms,
                "relay_at_ms": rec.received_at_ms,
                "message_id": mid,
            }
            if parsed.kind is ReceiptKind.REJECTED and parsed.reason is not None:
                step["reason"] = parsed.reason.value
            if parsed.kind is ReceiptKind.ACKNOWLEDGED:
                step["reply_id"] = parsed.reply_id
                step["declined"] = parsed.declined
            entry = steps[f"{device.member}/{device.name}"]
            # A resend's step replaces the original's failure; the first of each kind is kept.
            entry.setdefault(parsed.kind.value, step)
        withdrawn = tracked.withdrawn_at_ms if tracked else None
        desk_json = []
        for d in desks:
            facts = d.facts(withdrawn)
            desk_json.append(
                {
                    "desk": members[d.member_id].name if d.member_id in members else None,
                    "state": desk_state(facts, now).value,
                    "deliver_by_ms": d.deliver_by_ms,
                    "ack_by_ms": d.ack_by_ms,
                    "delivered_at_ms": d.delivered_at_ms,
                    "acknowledged_at_ms": d.acknowledged_at_ms,
                    "declined": d.declined,
                    "rejected_at_ms": d.rejected_at_ms,
                }
            )
        return {
            "channel": channel.name,
            "message_id": message_id,
            "sender": f"{sender.member}/{sender.name}",
            "precedence": header.precedence.value,
            "exercise": header.exercise,
            "created_at_ms": header.created_at_ms,
            "accepted": {"at_ms": row.accepted_at_ms, "log_index": row.log_index},
            "purpose": tracked.purpose if tracked else None,
            "mode": tracked.mode if tracked else None,
            "withdrawn_at_ms": withdrawn,
            "desks": desk_json,
            "recipients": list(steps.values()),
            "escalations": [self._escalation_json(e, members) for e in escalations],
        }

    @staticmethod
    def _escalation_json(e: Any, members: Mapping[int, MemberRow]) -> dict[str, Any]:
        return {
            "id": e.id,
            "reason": e.reason,
            "desk": members[e.member_id].name if e.member_id in members else None,
            "attempt": e.attempt,
            "state": e.state,
            "deadline_ms": e.deadline_ms,
            "at_ms": e.at_ms,
            "checkin": e.checkin,
            "log_index": e.log_index,
            "notice": {"body": b64e(e.notice_body), "sig": b64e(e.notice_sig)},
        }

    # --- withdrawal --------------------------------------------------------------------------------

    async def withdraw(
        self, who: Principal, channel_name: str, message_id: str, obj: object
    ) -> dict[str, Any]:
        """The sender's member withdraws a message with a signed act: its escalations stop."""
        require_channel(who, channel_name)
        require_role(who, SENDING_ROLES, "withdraw messages")
        act = _act(obj)
        self._check_act(who, channel_name, act, {ActKind.WITHDRAW})
        if act.fields["message_id"] != message_id:
            raise malformed("act.message_id is not the message in the path")
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            row = await tx.get_envelope(channel.id, message_id)
            sender = await tx.get_device_by_id(row.sender_device_id) if row else None
            if row is None or sender is None or sender.member_id != who.device.member_id:
                raise not_found(f"no message {message_id} sent by this member")
            sem = tx.semantics()
            tracked = await sem.get_tracked_message(row.id)
            if tracked is None or tracked.purpose != Purpose.MESSAGE.value:
                raise not_found(f"message {message_id} has no deadlines to withdraw")
            repeat = await self._repeated_act(tx, act)
            if repeat is None:
                self._check_act_time(act, now)
                await tx.lock_log()
                repeat = await self._repeated_act(tx, act)
            if repeat is not None:
                return {
                    "message_id": message_id,
                    "withdrawn_at_ms": tracked.withdrawn_at_ms,
                    "duplicate": True,
                }
            if tracked.withdrawn_at_ms is not None:
                raise conflict(f"message {message_id} was already withdrawn")
            notice = self._sign(
                NoticeKind.WITHDRAWN,
                channel.name,
                now,
                message_id=message_id,
                by=str(who.address),
                act=act.to_json(),
            )
            log_index = await self._log_notice(tx, notice, now)
            await self._store_act(tx, channel, act, log_index, now)
            await sem.withdraw_message(row.id, now, act.id)
            devices = await tx.list_devices(channel.id)
            roles = {
                m.name: m.role.value for m in await tx.list_members(channel.id) if m.status.value == "active"
            }
            targets = escalation_desks(
                sender.member, [n for n in Envelope.from_bytes(row.wire).header.recipient_members], roles
            )
            wake = await self._queue_notice(
                tx, notice, [d for d in _active(devices, targets) if d != who.device.id], now
            )
        await self.notifier.publish(wake)
        return {"message_id": message_id, "withdrawn_at_ms": now, "log_index": log_index, "duplicate": False}

    # --- link status -------------------------------------------------------------------------------

    async def link_view(self, who: Principal, channel_name: str) -> dict[str, Any]:
        """Each direction's link tests, and each desk's open messages: undelivered, silent, declined."""
        require_channel(who, channel_name)
        now = self.now_ms()
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            policy, row = await self._policy(tx, channel.id)
            crisis = row.crisis if row else CrisisState()
            members = {m.id: m for m in await tx.list_members(channel.id)}
            sem = tx.semantics()
            stats = await sem.link_stats(channel.id)
            open_rows = await sem.open_desks(channel.id, 500)
        interval = policy.mode(crisis.mode).link_test_interval_s
        directions = []
        inbound: dict[int, str] = {}
        for s in stats:
            view = link_state(
                LinkFacts(
                    last_sent_ms=s.last_sent_ms,
                    last_success_ms=s.last_success_ms,
                    last_rtt_ms=s.last_rtt_ms,
                    last_missed_ms=s.last_missed_ms,
                    consecutive_missed=s.consecutive_missed,
                    total_missed=s.total_missed,
                ),
                now,
                interval,
            )
            directions.append(
                {
                    "from": members[s.from_member_id].name,
                    "to": members[s.to_member_id].name,
                    **view.to_json(),
                    "last_sent_ms": s.last_sent_ms,
                    "last_success_ms": s.last_success_ms,
                    "rtt_ms": s.last_rtt_ms,
                    "missed": s.consecutive_missed,
                    "total_missed": s.total_missed,
                    "tests": s.total,
                }
            )
            # A desk's link is down if any other desk's newest test to it was missed.
            previous = inbound.get(s.to_member_id)
            if view.state.value == "down" or previous is None or previous == "unknown":
                inbound[s.to_member_id] = view.state.value
        desks: dict[int, dict[str, Any]] = {
            m.id: {
                "desk": m.name,
                "role": m.role.value,
                "link": inbound.get(m.id, "unknown"),
                "undelivered": [],
                "silent": [],
                "declined": [],
                "rejected": [],
            }
            for m in members.values()
            if m.role is not Role.OPERATOR and m.status.value == "active"
        }
        for d, mid, withdrawn in open_rows:
            entry = desks.get(d.member_id)
            if entry is None:
                continue
            state = desk_state(d.facts(withdrawn), now)
            key = {
                DeskState.UNDELIVERED: "undelivered",
                DeskState.SILENT: "silent",
                DeskState.DECLINED: "declined",
                DeskState.REJECTED: "rejected",
            }.get(state)
            if key is not None:
                entry[key].append(mid)
            if state is DeskState.UNDELIVERED:
                entry["link"] = "down"
        return {
            "channel": channel.name,
            "now_ms": now,
            "mode": crisis.mode.value,
            "interval_s": interval,
            "timeout_s": policy.mode(crisis.mode).link_test_timeout_s,
            "testing_desks": self._testing_desks(policy, list(members.values())),
            "directions": sorted(directions, key=lambda x: (x["from"], x["to"])),
            "desks": sorted(desks.values(), key=lambda x: x["desk"]),
        }

    @staticmethod
    def _testing_desks(policy: Policy, members: Sequence[MemberRow]) -> list[str]:
        active = [m for m in members if m.status.value == "active" and m.role is not Role.OPERATOR]
        if policy.link_test_desks:
            return sorted(m.name for m in active if m.name in set(policy.link_test_desks))
        return sorted(m.name for m in active if m.role is Role.PRINCIPAL)

    # --- check-ins ---------------------------------------------------------------------------------

    async def checkins_view(self, who: Principal, channel_name: str, limit: int = 20) -> dict[str, Any]:
        require_channel(who, channel_name)
        now = self.now_ms()
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            sem = tx.semantics()
            members = {m.id: m.name for m in await tx.list_members(channel.id)}
            rows = await sem.checkins(channel.id, limit)
            answers = {c.id: await sem.checkin_answers(c.id) for c in rows}
            upcoming = [
                t for t in await sem.timers_for(channel.id, TimerKind.CHECKIN.value) if t.fired_at_ms is None
            ]
        out = []
        for c in rows:
            answered = {members.get(a.member_id): a.at_ms for a in answers[c.id]}
            out.append(
                {
                    "checkin": c.checkin,
                    "schedule": c.schedule,
                    "due_ms": c.due_ms,
                    "answer_by_ms": c.answer_by_ms,
                    "desks": [
                        {
                            "desk": desk,
                            "answered_at_ms": answered.get(desk),
                            "state": "answered"
                            if desk in answered
                            else ("unanswered" if now >= c.answer_by_ms else "due"),
                        }
                        for desk in c.desks
                    ],
                    "notice": {"body": b64e(c.notice_body), "sig": b64e(c.notice_sig)},
                }
            )
        return {
            "channel": channel.name,
            "checkins": out,
            "upcoming": sorted(
                ({"schedule": t.subject, "due_ms": t.due_ms} for t in upcoming), key=lambda x: x["due_ms"]
            ),
        }

    async def answer_checkin(self, who: Principal, channel_name: str, obj: object) -> dict[str, Any]:
        """A desk answers a check-in with a signed act (late answers are recorded, and shown late)."""
        require_channel(who, channel_name)
        require_role(who, SENDING_ROLES, "answer check-ins")
        act = _act(obj)
        self._check_act(who, channel_name, act, {ActKind.CHECKIN_ANSWER})
        name = str(act.fields["checkin"])
        parse_checkin_id(name)
        now = self.now_ms()
        async with self.store.write() as tx:
            channel = await self._channel(tx, channel_name)
            sem = tx.semantics()
            checkin = await sem.get_checkin(channel.id, name)
            if checkin is None:
                raise not_found(f"no check-in {name}")
            if who.device.member not in checkin.desks:
                raise forbidden(f"{who.device.member} is not expected to answer check-in {name}")
            repeat = await self._repeated_act(tx, act)
            if repeat is None:
                self._check_act_time(act, now)
                await tx.lock_log()
                repeat = await self._repeated_act(tx, act)
            if repeat is not None:
                return {"checkin": name, "log_index": repeat.log_index, "duplicate": True, "late": False}
            if any(a.member_id == who.device.member_id for a in await sem.checkin_answers(checkin.id)):
                raise conflict(f"{who.device.member} already answered check-in {name}")
            log_index = await tx.append_audit(
                now,
                audit.act_logged(
                    at_ms=now, channel=channel.name, kind=act.kind.value, issuer=act.issuer, act=act.to_json()
                ),
            )
            await self._store_act(tx, channel, act, log_index, now)
            await sem.insert_checkin_answer(
                CheckinAnswerRow(
                    checkin_id=checkin.id, member_id=who.device.member_id, act_id=act.id, at_ms=now
                )
            )
        return {
            "checkin": name,
            "log_index": log_index,
            "duplicate": False,
            "late": now > checkin.answer_by_ms,
        }

    # --- escalations -------------------------------------------------------------------------------

    async def escalations_view(
        self, who: Principal, channel_name: str, after_id: int, limit: int
    ) -> dict[str, Any]:
        """Escalations this member was told about (facilitators and controllers: all of them)."""
        require_channel(who, channel_name)
        require_role(who, SENDING_ROLES, "read escalations")
        if not 1 <= limit <= 500 or after_id < 0:
            raise malformed("limit must be between 1 and 500 and after >= 0")
        async with self.store.read() as tx:
            channel = await self._channel(tx, channel_name)
            members = {m.id: m for m in await tx.list_members(channel.id)}
            rows = await tx.semantics().escalations(channel.id, after_id=after_id, limit=limit)
            checkin_desks: dict[str, tuple[str, ...]] = {}
            for name in {e.checkin for e in rows if e.checkin}:
                found = await tx.semantics().get_checkin(channel.id, name)
                checkin_desks[name] = found.desks if found else ()
        out = []
        for e in rows:
            notice = Notice.parse(e.notice_body, e.notice_sig)
            told = {notice.fields["desk"], notice.fields["sender"], *checkin_desks.get(e.checkin or "", ())}
            mine = who.role in OVERSIGHT_ROLES or who.device.member in told
            if mine:
                out.append({**self._escalation_json(e, members), "message_id": notice.fields["message_id"]})
        return {"channel": channel.name, "escalations": out, "last_id": rows[-1].id if rows else after_id}
