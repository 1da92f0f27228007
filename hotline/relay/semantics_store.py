"""Storage interface of hotline semantics: policies, crisis state, deadlines, link tests, check-ins, timers.

Like :mod:`hotline.relay.store`, the service layer sees only these protocols; one SQL implementation
(:class:`hotline.relay.sql_semantics.SqlSemanticsTx`) runs on SQLite and PostgreSQL. A
:class:`SemanticsTx` works inside the transaction of the :class:`hotline.relay.store.Tx` that made it
(``tx.semantics()``), so a message, its deadlines and its timers commit together.

Timers fire once: :meth:`SemanticsTx.claim_timer` marks one due timer fired (PostgreSQL: ``FOR UPDATE
SKIP LOCKED``; SQLite: its single writer) in the transaction that then applies its effects, so a crash
before the commit leaves it unfired and a second process never claims it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hotline.protocol.deadlines import CrisisState, DeskFacts


@dataclass(frozen=True)
class SemanticsRow:
    channel_id: int
    policy: bytes | None  # None: the default policy
    policy_version: int
    crisis: CrisisState
    updated_at_ms: int


@dataclass(frozen=True)
class ActRow:
    act_id: str
    channel_id: int
    kind: str
    issuer_device_id: int
    act_hash: bytes
    body: bytes
    sig: bytes
    at_ms: int
    log_index: int


@dataclass(frozen=True)
class CrisisChangeRow:
    id: int
    epoch: int
    on: bool
    trigger: str
    by: str
    reason: str
    act_id: str | None
    at_ms: int
    notice_body: bytes
    notice_sig: bytes
    log_index: int


@dataclass(frozen=True)
class TrackedMessageRow:
    envelope_id: int
    channel_id: int
    purpose: str  # message | link_test | resend
    mode: str
    resend_of: int | None = None
    withdrawn_at_ms: int | None = None
    withdraw_act_id: str | None = None


@dataclass(frozen=True)
class TrackedDeskRow:
    envelope_id: int
    member_id: int
    deliver_by_ms: int
    ack_by_ms: int | None
    delivered_at_ms: int | None = None
    acknowledged_at_ms: int | None = None
    declined: bool = False
    rejected_at_ms: int | None = None

    def facts(self, withdrawn_at_ms: int | None) -> DeskFacts:
        return DeskFacts(
            deliver_by_ms=self.deliver_by_ms,
            ack_by_ms=self.ack_by_ms,
            delivered_at_ms=self.delivered_at_ms,
            acknowledged_at_ms=self.acknowledged_at_ms,
            declined=self.declined,
            rejected_at_ms=self.rejected_at_ms,
            withdrawn_at_ms=withdrawn_at_ms,
        )


@dataclass(frozen=True)
class LinkTestRow:
    envelope_id: int
    channel_id: int
    from_member_id: int
    to_member_id: int
    sent_at_ms: int
    timeout_at_ms: int
    answered_at_ms: int | None = None
    missed_at_ms: int | None = None


@dataclass(frozen=True)
class LinkStatsRow:
    """One direction of the link, aggregated over all its tests."""

    from_member_id: int
    to_member_id: int
    last_sent_ms: int | None
    last_success_ms: int | None  # when the newest answered test was sent
    last_rtt_ms: int | None
    last_missed_ms: int | None  # when the newest missed test was sent
    consecutive_missed: int
    total_missed: int
    total: int


@dataclass(frozen=True)
class NewTimer:
    channel_id: int
    kind: str
    key: str  # names the occurrence: a second schedule of the same key is ignored
    due_ms: int
    envelope_id: int | None = None
    member_id: int | None = None
    subject: str | None = None
    attempt: int = 1


@dataclass(frozen=True)
class TimerRow:
    id: int
    channel_id: int
    kind: str
    key: str
    due_ms: int
    envelope_id: int | None
    member_id: int | None
    subject: str | None
    attempt: int
    fired_at_ms: int | None
    fired_by: str | None
    outcome: str | None


@dataclass(frozen=True)
class NewEscalation:
    channel_id: int
    timer_id: int
    reason: str
    member_id: int
    attempt: int
    state: str
    deadline_ms: int
    at_ms: int
    notice_body: bytes
    notice_sig: bytes
    log_index: int
    envelope_id: int | None = None
    checkin: str | None = None


@dataclass(frozen=True)
class EscalationRow:
    id: int
    channel_id: int
    timer_id: int
    reason: str
    envelope_id: int | None
    member_id: int
    checkin: str | None
    attempt: int
    state: str
    deadline_ms: int
    at_ms: int
    notice_body: bytes
    notice_sig: bytes
    log_index: int


@dataclass(frozen=True)
class CheckinRow:
    id: int
    channel_id: int
    checkin: str
    schedule: str
    due_ms: int
    answer_by_ms: int
    desks: tuple[str, ...]
    notice_body: bytes
    notice_sig: bytes
    log_index: int


@dataclass(frozen=True)
class CheckinAnswerRow:
    checkin_id: int
    member_id: int
    act_id: str
    at_ms: int


@dataclass(frozen=True)
class EnvelopeBrief:
    id: int
    channel_id: int
    message_id: str
    sender_device_id: int
    precedence: str
    exercise: bool
    accepted_at_ms: int
    log_index: int


@dataclass(frozen=True)
class LadderReceiptRow:
    kind: str
    issuer_device_id: int
    body: bytes
    sig: bytes
    received_at_ms: int
    log_index: int


class SemanticsTx(Protocol):
    # channel policy and crisis state
    async def get_semantics(self, channel_id: int) -> SemanticsRow | None: ...
    async def lock_semantics(self, channel_id: int, at_ms: int) -> SemanticsRow: ...
    async def save_policy(self, channel_id: int, policy: bytes, version: int, at_ms: int) -> None: ...
    async def save_crisis(self, channel_id: int, state: CrisisState, at_ms: int) -> None: ...
    async def channels_with_policy(self) -> list[tuple[int, bytes]]: ...

    # acts and crisis history
    async def get_act(self, act_id: str) -> ActRow | None: ...
    async def insert_act(self, row: ActRow) -> None: ...
    async def insert_crisis_change(self, channel_id: int, row: CrisisChangeRow) -> None: ...
    async def crisis_changes(self, channel_id: int, limit: int) -> list[CrisisChangeRow]: ...

    # messages, deadlines and resends
    async def envelope_brief(self, envelope_id: int) -> EnvelopeBrief | None: ...
    async def envelope_recipient_devices(self, envelope_id: int) -> list[int]: ...
    async def insert_tracked_message(self, row: TrackedMessageRow) -> None: ...
    async def get_tracked_message(self, envelope_id: int) -> TrackedMessageRow | None: ...
    async def withdraw_message(self, envelope_id: int, at_ms: int, act_id: str) -> None: ...
    async def resends_of(self, envelope_id: int) -> list[tuple[int, str]]: ...
    async def insert_tracked_desks(self, rows: Sequence[TrackedDeskRow]) -> None: ...
    async def tracked_desks(self, envelope_id: int) -> list[TrackedDeskRow]: ...
    async def record_desk_receipt(
        self, envelope_id: int, member_id: int, kind: str, declined: bool, at_ms: int
    ) -> None: ...
    async def ladder_receipts(self, envelope_id: int) -> list[LadderReceiptRow]: ...
    async def open_desks(self, channel_id: int, limit: int) -> list[tuple[TrackedDeskRow, str, int | None]]:
        """Newest first: desks not yet answered or that declined, with the message id and withdrawal."""
        ...

    # link tests
    async def insert_link_test(self, row: LinkTestRow) -> None: ...
    async def get_link_test(self, envelope_id: int) -> LinkTestRow | None: ...
    async def answer_link_test(self, envelope_id: int, at_ms: int) -> bool: ...
    async def miss_link_test(self, envelope_id: int, at_ms: int) -> bool: ...
    async def link_stats(self, channel_id: int) -> list[LinkStatsRow]: ...

    # timers
    async def schedule_timers(self, timers: Sequence[NewTimer], at_ms: int) -> None: ...
    async def has_due_timer(self, at_ms: int) -> bool: ...
    async def claim_timer(self, at_ms: int, by: str) -> TimerRow | None: ...
    async def finish_timer(self, timer_id: int, outcome: str) -> None: ...
    async def abandon_timer(self, timer_id: int, at_ms: int, by: str) -> None: ...
    async def cancel_timers(self, channel_id: int, kind: str, at_ms: int, by: str) -> int: ...
    async def timers_for(self, channel_id: int, kind: str | None = None) -> list[TimerRow]: ...

    # escalations
    async def insert_escalation(self, row: NewEscalation) -> int: ...
    async def escalations(
        self, channel_id: int, *, after_id: int = 0, limit: int = 100, envelope_id: int | None = None
    ) -> list[EscalationRow]: ...

    # check-ins
    async def insert_checkin(self, row: CheckinRow) -> int | None: ...
    async def get_checkin(self, channel_id: int, checkin: str) -> CheckinRow | None: ...
    async def checkins(self, channel_id: int, limit: int) -> list[CheckinRow]: ...
    async def insert_checkin_answer(self, row: CheckinAnswerRow) -> bool: ...
    async def checkin_answers(self, checkin_id: int) -> list[CheckinAnswerRow]: ...
