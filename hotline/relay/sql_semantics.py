"""SQL implementation of :class:`hotline.relay.semantics_store.SemanticsTx` (SQLite and PostgreSQL).

It runs on the connection of the surrounding :class:`hotline.relay.sql_store.SqlTx`, inside its
transaction. Timer claims use ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) AND fired_at_ms IS
NULL RETURNING …`` on PostgreSQL; SQLite has one writer, so the same statement without the row lock is
already exclusive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping

from hotline.protocol.deadlines import CrisisState, CrisisTrigger
from hotline.relay import schema as t
from hotline.relay.db import Executor
from hotline.relay.semantics_store import (
    ActRow,
    CheckinAnswerRow,
    CheckinRow,
    CrisisChangeRow,
    EnvelopeBrief,
    EscalationRow,
    LadderReceiptRow,
    LinkStatsRow,
    LinkTestRow,
    NewEscalation,
    NewTimer,
    SemanticsRow,
    TimerRow,
    TrackedDeskRow,
    TrackedMessageRow,
)


def _b(value: Any) -> bytes:
    return bytes(value)


def _semantics(r: RowMapping) -> SemanticsRow:
    trigger = r["crisis_trigger"]
    return SemanticsRow(
        channel_id=r["channel_id"],
        policy=None if r["policy"] is None else _b(r["policy"]),
        policy_version=r["policy_version"],
        crisis=CrisisState(
            on=bool(r["crisis_on"]),
            epoch=r["crisis_epoch"],
            since_ms=r["crisis_since_ms"],
            trigger=CrisisTrigger(trigger) if trigger else None,
            by=r["crisis_by"],
        ),
        updated_at_ms=r["updated_at_ms"],
    )


def _timer(r: RowMapping) -> TimerRow:
    return TimerRow(
        id=r["id"],
        channel_id=r["channel_id"],
        kind=r["kind"],
        key=r["key"],
        due_ms=r["due_ms"],
        envelope_id=r["envelope_id"],
        member_id=r["member_id"],
        subject=r["subject"],
        attempt=r["attempt"],
        fired_at_ms=r["fired_at_ms"],
        fired_by=r["fired_by"],
        outcome=r["outcome"],
    )


def _tracked_desk(r: RowMapping) -> TrackedDeskRow:
    return TrackedDeskRow(
        envelope_id=r["envelope_id"],
        member_id=r["member_id"],
        deliver_by_ms=r["deliver_by_ms"],
        ack_by_ms=r["ack_by_ms"],
        delivered_at_ms=r["delivered_at_ms"],
        acknowledged_at_ms=r["acknowledged_at_ms"],
        declined=bool(r["declined"]),
        rejected_at_ms=r["rejected_at_ms"],
    )


def _checkin(r: RowMapping) -> CheckinRow:
    return CheckinRow(
        id=r["id"],
        channel_id=r["channel_id"],
        checkin=r["checkin"],
        schedule=r["schedule"],
        due_ms=r["due_ms"],
        answer_by_ms=r["answer_by_ms"],
        desks=tuple(json.loads(r["desks"])),
        notice_body=_b(r["notice_body"]),
        notice_sig=_b(r["notice_sig"]),
        log_index=r["log_index"],
    )


# The statements every message or receipt runs, built once (building one costs SQLAlchemy far more
# than SQLite takes to run it; docs/PERFORMANCE.md).
_SEMANTICS_OF = select(t.channel_semantics).where(
    t.channel_semantics.c.channel_id == bindparam("for_channel")
)
_INSERT_TRACKED_MESSAGE = insert(t.tracked_messages)
_TRACKED_MESSAGE = select(t.tracked_messages).where(
    t.tracked_messages.c.envelope_id == bindparam("for_envelope")
)
_INSERT_TRACKED_DESKS = insert(t.tracked_desks)
_DESK_DELIVERED = (
    update(t.tracked_desks)
    .where(
        t.tracked_desks.c.envelope_id == bindparam("for_envelope"),
        t.tracked_desks.c.member_id == bindparam("for_member"),
        t.tracked_desks.c.delivered_at_ms.is_(None),
    )
    .values(delivered_at_ms=bindparam("at_ms"))
)
_INSERT_TIMERS = {
    postgres: (pg_insert(t.timers) if postgres else sqlite_insert(t.timers)).on_conflict_do_nothing(
        index_elements=["key"]
    )
    for postgres in (False, True)
}


class SqlSemanticsTx:
    def __init__(self, conn: Executor, *, postgres: bool) -> None:
        self._conn = conn
        self._postgres = postgres

    async def _one(self, stmt: Any, params: dict[str, Any] | None = None) -> RowMapping | None:
        return (await self._conn.execute(stmt, params)).mappings().first()

    async def _all(self, stmt: Any) -> list[RowMapping]:
        return list((await self._conn.execute(stmt)).mappings().all())

    def _insert_ignoring(self, table: Any, unique: list[str]) -> Any:
        """``INSERT … ON CONFLICT (unique) DO NOTHING`` in the dialect at hand."""
        stmt = pg_insert(table) if self._postgres else sqlite_insert(table)
        return stmt.on_conflict_do_nothing(index_elements=unique)

    # --- channel policy and crisis state -------------------------------------------------------------

    async def get_semantics(self, channel_id: int) -> SemanticsRow | None:
        row = await self._one(_SEMANTICS_OF, {"for_channel": channel_id})
        return _semantics(row) if row else None

    async def lock_semantics(self, channel_id: int, at_ms: int) -> SemanticsRow:
        """The channel's row, created with defaults if missing, locked until the transaction ends."""
        await self._conn.execute(
            self._insert_ignoring(t.channel_semantics, ["channel_id"]).values(
                channel_id=channel_id,
                policy=None,
                policy_version=0,
                crisis_on=False,
                crisis_epoch=0,
                updated_at_ms=at_ms,
            )
        )
        stmt = select(t.channel_semantics).where(t.channel_semantics.c.channel_id == channel_id)
        if self._postgres:
            stmt = stmt.with_for_update()
        row = await self._one(stmt)
        assert row is not None
        return _semantics(row)

    async def save_policy(self, channel_id: int, policy: bytes, version: int, at_ms: int) -> None:
        await self._conn.execute(
            update(t.channel_semantics)
            .where(t.channel_semantics.c.channel_id == channel_id)
            .values(policy=policy, policy_version=version, updated_at_ms=at_ms)
        )

    async def save_crisis(self, channel_id: int, state: CrisisState, at_ms: int) -> None:
        await self._conn.execute(
            update(t.channel_semantics)
            .where(t.channel_semantics.c.channel_id == channel_id)
            .values(
                crisis_on=state.on,
                crisis_epoch=state.epoch,
                crisis_since_ms=state.since_ms,
                crisis_trigger=state.trigger.value if state.trigger else None,
                crisis_by=state.by,
                updated_at_ms=at_ms,
            )
        )

    async def channels_with_policy(self) -> list[tuple[int, bytes]]:
        rows = await self._all(
            select(t.channel_semantics.c.channel_id, t.channel_semantics.c.policy).where(
                t.channel_semantics.c.policy.is_not(None)
            )
        )
        return [(r["channel_id"], _b(r["policy"])) for r in rows]

    # --- acts and crisis history ---------------------------------------------------------------------

    async def get_act(self, act_id: str) -> ActRow | None:
        r = await self._one(select(t.acts).where(t.acts.c.act_id == act_id))
        if r is None:
            return None
        return ActRow(
            act_id=r["act_id"],
            channel_id=r["channel_id"],
            kind=r["kind"],
            issuer_device_id=r["issuer_device_id"],
            act_hash=_b(r["act_hash"]),
            body=_b(r["body"]),
            sig=_b(r["sig"]),
            at_ms=r["at_ms"],
            log_index=r["log_index"],
        )

    async def insert_act(self, row: ActRow) -> None:
        await self._conn.execute(
            insert(t.acts).values(
                act_id=row.act_id,
                channel_id=row.channel_id,
                kind=row.kind,
                issuer_device_id=row.issuer_device_id,
                act_hash=row.act_hash,
                body=row.body,
                sig=row.sig,
                at_ms=row.at_ms,
                log_index=row.log_index,
            )
        )

    async def insert_crisis_change(self, channel_id: int, row: CrisisChangeRow) -> None:
        await self._conn.execute(
            insert(t.crisis_changes).values(
                channel_id=channel_id,
                epoch=row.epoch,
                crisis_on=row.on,
                trigger=row.trigger,
                by=row.by,
                reason=row.reason,
                act_id=row.act_id,
                at_ms=row.at_ms,
                notice_body=row.notice_body,
                notice_sig=row.notice_sig,
                log_index=row.log_index,
            )
        )

    async def crisis_changes(self, channel_id: int, limit: int) -> list[CrisisChangeRow]:
        c = t.crisis_changes.c
        rows = await self._all(
            select(t.crisis_changes).where(c.channel_id == channel_id).order_by(c.epoch.desc()).limit(limit)
        )
        return [
            CrisisChangeRow(
                id=r["id"],
                epoch=r["epoch"],
                on=bool(r["crisis_on"]),
                trigger=r["trigger"],
                by=r["by"],
                reason=r["reason"],
                act_id=r["act_id"],
                at_ms=r["at_ms"],
                notice_body=_b(r["notice_body"]),
                notice_sig=_b(r["notice_sig"]),
                log_index=r["log_index"],
            )
            for r in reversed(rows)
        ]

    # --- messages, deadlines and resends -------------------------------------------------------------

    async def envelope_brief(self, envelope_id: int) -> EnvelopeBrief | None:
        e = t.envelopes.c
        r = await self._one(
            select(
                e.id,
                e.channel_id,
                e.message_id,
                e.sender_device_id,
                e.precedence,
                e.exercise,
                e.accepted_at_ms,
                e.log_index,
            ).where(e.id == envelope_id)
        )
        if r is None:
            return None
        return EnvelopeBrief(
            id=r["id"],
            channel_id=r["channel_id"],
            message_id=r["message_id"],
            sender_device_id=r["sender_device_id"],
            precedence=r["precedence"],
            exercise=bool(r["exercise"]),
            accepted_at_ms=r["accepted_at_ms"],
            log_index=r["log_index"],
        )

    async def envelope_recipient_devices(self, envelope_id: int) -> list[int]:
        i = t.inbox_items.c
        rows = await self._all(
            select(i.device_id).where(i.envelope_id == envelope_id, i.kind == "envelope").order_by(i.id)
        )
        return [int(r["device_id"]) for r in rows]

    async def insert_tracked_message(self, row: TrackedMessageRow) -> None:
        await self._conn.execute(
            _INSERT_TRACKED_MESSAGE,
            {
                "envelope_id": row.envelope_id,
                "channel_id": row.channel_id,
                "purpose": row.purpose,
                "mode": row.mode,
                "resend_of": row.resend_of,
            },
        )

    async def get_tracked_message(self, envelope_id: int) -> TrackedMessageRow | None:
        r = await self._one(_TRACKED_MESSAGE, {"for_envelope": envelope_id})
        if r is None:
            return None
        return TrackedMessageRow(
            envelope_id=r["envelope_id"],
            channel_id=r["channel_id"],
            purpose=r["purpose"],
            mode=r["mode"],
            resend_of=r["resend_of"],
            withdrawn_at_ms=r["withdrawn_at_ms"],
            withdraw_act_id=r["withdraw_act_id"],
        )

    async def withdraw_message(self, envelope_id: int, at_ms: int, act_id: str) -> None:
        await self._conn.execute(
            update(t.tracked_messages)
            .where(t.tracked_messages.c.envelope_id == envelope_id)
            .values(withdrawn_at_ms=at_ms, withdraw_act_id=act_id)
        )

    async def resends_of(self, envelope_id: int) -> list[tuple[int, str]]:
        m, e = t.tracked_messages.c, t.envelopes.c
        rows = await self._all(
            select(e.id, e.message_id)
            .select_from(t.tracked_messages.join(t.envelopes, e.id == m.envelope_id))
            .where(m.resend_of == envelope_id)
            .order_by(e.id)
        )
        return [(int(r["id"]), str(r["message_id"])) for r in rows]

    async def insert_tracked_desks(self, rows: Sequence[TrackedDeskRow]) -> None:
        if not rows:
            return
        await self._conn.execute(
            _INSERT_TRACKED_DESKS,
            [
                {
                    "envelope_id": r.envelope_id,
                    "member_id": r.member_id,
                    "deliver_by_ms": r.deliver_by_ms,
                    "ack_by_ms": r.ack_by_ms,
                    "declined": False,
                }
                for r in rows
            ],
        )

    async def tracked_desks(self, envelope_id: int) -> list[TrackedDeskRow]:
        d = t.tracked_desks.c
        rows = await self._all(
            select(t.tracked_desks).where(d.envelope_id == envelope_id).order_by(d.member_id)
        )
        return [_tracked_desk(r) for r in rows]

    async def record_desk_receipt(
        self, envelope_id: int, member_id: int, kind: str, declined: bool, at_ms: int
    ) -> None:
        """The first receipt of each step from any device of the desk sets its time; later ones do not."""
        d = t.tracked_desks.c
        where = and_(d.envelope_id == envelope_id, d.member_id == member_id)
        if kind in {"delivered", "acknowledged"}:
            # An acknowledgement is also proof of delivery (the device read it).
            await self._conn.execute(
                _DESK_DELIVERED, {"for_envelope": envelope_id, "for_member": member_id, "at_ms": at_ms}
            )
        if kind == "acknowledged":
            await self._conn.execute(
                update(t.tracked_desks)
                .where(where, d.acknowledged_at_ms.is_(None))
                .values(acknowledged_at_ms=at_ms, declined=declined)
            )
        elif kind == "rejected":
            await self._conn.execute(
                update(t.tracked_desks).where(where, d.rejected_at_ms.is_(None)).values(rejected_at_ms=at_ms)
            )

    async def ladder_receipts(self, envelope_id: int) -> list[LadderReceiptRow]:
        r = t.receipts.c
        rows = await self._all(select(t.receipts).where(r.envelope_id == envelope_id).order_by(r.id))
        return [
            LadderReceiptRow(
                kind=x["kind"],
                issuer_device_id=x["issuer_device_id"],
                body=_b(x["body"]),
                sig=_b(x["sig"]),
                received_at_ms=x["received_at_ms"],
                log_index=x["log_index"],
            )
            for x in rows
        ]

    async def open_desks(self, channel_id: int, limit: int) -> list[tuple[TrackedDeskRow, str, int | None]]:
        d, m, e = t.tracked_desks.c, t.tracked_messages.c, t.envelopes.c
        rows = await self._all(
            select(t.tracked_desks, e.message_id, m.withdrawn_at_ms)
            .select_from(
                t.tracked_desks.join(t.tracked_messages, m.envelope_id == d.envelope_id).join(
                    t.envelopes, e.id == d.envelope_id
                )
            )
            .where(
                m.channel_id == channel_id,
                m.withdrawn_at_ms.is_(None),
                (d.acknowledged_at_ms.is_(None)) | (d.declined.is_(True)),
            )
            .order_by(d.envelope_id.desc())
            .limit(limit)
        )
        return [(_tracked_desk(r), str(r["message_id"]), r["withdrawn_at_ms"]) for r in rows]

    # --- link tests ----------------------------------------------------------------------------------

    async def insert_link_test(self, row: LinkTestRow) -> None:
        await self._conn.execute(
            insert(t.link_tests).values(
                envelope_id=row.envelope_id,
                channel_id=row.channel_id,
                from_member_id=row.from_member_id,
                to_member_id=row.to_member_id,
                sent_at_ms=row.sent_at_ms,
                timeout_at_ms=row.timeout_at_ms,
            )
        )

    async def get_link_test(self, envelope_id: int) -> LinkTestRow | None:
        r = await self._one(select(t.link_tests).where(t.link_tests.c.envelope_id == envelope_id))
        if r is None:
            return None
        return LinkTestRow(
            envelope_id=r["envelope_id"],
            channel_id=r["channel_id"],
            from_member_id=r["from_member_id"],
            to_member_id=r["to_member_id"],
            sent_at_ms=r["sent_at_ms"],
            timeout_at_ms=r["timeout_at_ms"],
            answered_at_ms=r["answered_at_ms"],
            missed_at_ms=r["missed_at_ms"],
        )

    async def answer_link_test(self, envelope_id: int, at_ms: int) -> bool:
        """Record the first answer; a test already missed stays missed (the answer came too late)."""
        c = t.link_tests.c
        result = await self._conn.execute(
            update(t.link_tests)
            .where(c.envelope_id == envelope_id, c.answered_at_ms.is_(None))
            .values(answered_at_ms=at_ms)
        )
        return bool(result.rowcount)

    async def miss_link_test(self, envelope_id: int, at_ms: int) -> bool:
        c = t.link_tests.c
        result = await self._conn.execute(
            update(t.link_tests)
            .where(c.envelope_id == envelope_id, c.answered_at_ms.is_(None), c.missed_at_ms.is_(None))
            .values(missed_at_ms=at_ms)
        )
        return bool(result.rowcount)

    async def link_stats(self, channel_id: int) -> list[LinkStatsRow]:
        c = t.link_tests.c
        # An answer that came after the timeout does not make the test a success.
        success = and_(c.answered_at_ms.is_not(None), c.missed_at_ms.is_(None))
        rows = await self._all(
            select(
                c.from_member_id,
                c.to_member_id,
                func.max(c.sent_at_ms).label("last_sent"),
                func.max(case((success, c.sent_at_ms))).label("last_success"),
                func.max(case((c.missed_at_ms.is_not(None), c.sent_at_ms))).label("last_missed"),
                func.sum(case((c.missed_at_ms.is_not(None), 1), else_=0)).label("missed"),
                func.count().label("total"),
            )
            .where(c.channel_id == channel_id)
            .group_by(c.from_member_id, c.to_member_id)
        )
        out = []
        for r in rows:
            direction = and_(
                c.channel_id == channel_id,
                c.from_member_id == r["from_member_id"],
                c.to_member_id == r["to_member_id"],
            )
            rtt = None
            if r["last_success"] is not None:
                newest = await self._one(
                    select(c.sent_at_ms, c.answered_at_ms)
                    .where(direction, success, c.sent_at_ms == r["last_success"])
                    .limit(1)
                )
                if newest is not None:
                    rtt = int(newest["answered_at_ms"]) - int(newest["sent_at_ms"])
            since = r["last_success"] if r["last_success"] is not None else -1
            consecutive = await self._conn.execute(
                select(func.count()).where(direction, c.missed_at_ms.is_not(None), c.sent_at_ms > since)
            )
            out.append(
                LinkStatsRow(
                    from_member_id=r["from_member_id"],
                    to_member_id=r["to_member_id"],
                    last_sent_ms=r["last_sent"],
                    last_success_ms=r["last_success"],
                    last_rtt_ms=rtt,
                    last_missed_ms=r["last_missed"],
                    consecutive_missed=int(consecutive.scalar_one()),
                    total_missed=int(r["missed"] or 0),
                    total=int(r["total"]),
                )
            )
        return out

    # --- timers --------------------------------------------------------------------------------------

    async def schedule_timers(self, timers: Sequence[NewTimer], at_ms: int) -> None:
        """Insert timers; one whose key is already scheduled (by this or another process) is skipped."""
        if not timers:
            return
        await self._conn.execute(
            _INSERT_TIMERS[self._postgres],
            [
                {
                    "channel_id": timer.channel_id,
                    "kind": timer.kind,
                    "key": timer.key,
                    "due_ms": timer.due_ms,
                    "envelope_id": timer.envelope_id,
                    "member_id": timer.member_id,
                    "subject": timer.subject,
                    "attempt": timer.attempt,
                    "created_at_ms": at_ms,
                }
                for timer in timers
            ],
        )

    async def has_due_timer(self, at_ms: int) -> bool:
        c = t.timers.c
        row = await self._one(select(c.id).where(c.fired_at_ms.is_(None), c.due_ms <= at_ms).limit(1))
        return row is not None

    async def claim_timer(self, at_ms: int, by: str) -> TimerRow | None:
        c = t.timers.c
        oldest = (
            select(c.id).where(c.fired_at_ms.is_(None), c.due_ms <= at_ms).order_by(c.due_ms, c.id).limit(1)
        )
        if self._postgres:
            oldest = oldest.with_for_update(skip_locked=True)
        result = await self._conn.execute(
            update(t.timers)
            .where(c.id == oldest.scalar_subquery(), c.fired_at_ms.is_(None))
            .values(fired_at_ms=at_ms, fired_by=by)
            .returning(*t.timers.c)
        )
        row = result.mappings().first()
        return _timer(row) if row else None

    async def finish_timer(self, timer_id: int, outcome: str) -> None:
        await self._conn.execute(update(t.timers).where(t.timers.c.id == timer_id).values(outcome=outcome))

    async def abandon_timer(self, timer_id: int, at_ms: int, by: str) -> None:
        c = t.timers.c
        await self._conn.execute(
            update(t.timers)
            .where(c.id == timer_id, c.fired_at_ms.is_(None))
            .values(fired_at_ms=at_ms, fired_by=by, outcome="error")
        )

    async def cancel_timers(self, channel_id: int, kind: str, at_ms: int, by: str) -> int:
        c = t.timers.c
        result = await self._conn.execute(
            update(t.timers)
            .where(c.channel_id == channel_id, c.kind == kind, c.fired_at_ms.is_(None))
            .values(fired_at_ms=at_ms, fired_by=by, outcome="cancelled")
        )
        return int(result.rowcount)

    async def timers_for(self, channel_id: int, kind: str | None = None) -> list[TimerRow]:
        c = t.timers.c
        stmt = select(t.timers).where(c.channel_id == channel_id)
        if kind is not None:
            stmt = stmt.where(c.kind == kind)
        return [_timer(r) for r in await self._all(stmt.order_by(c.id))]

    # --- escalations ---------------------------------------------------------------------------------

    async def insert_escalation(self, row: NewEscalation) -> int:
        result = await self._conn.execute(
            insert(t.escalations)
            .values(
                channel_id=row.channel_id,
                timer_id=row.timer_id,
                reason=row.reason,
                envelope_id=row.envelope_id,
                member_id=row.member_id,
                checkin=row.checkin,
                attempt=row.attempt,
                state=row.state,
                deadline_ms=row.deadline_ms,
                at_ms=row.at_ms,
                notice_body=row.notice_body,
                notice_sig=row.notice_sig,
                log_index=row.log_index,
            )
            .returning(t.escalations.c.id)
        )
        return int(result.scalar_one())

    async def escalations(
        self, channel_id: int, *, after_id: int = 0, limit: int = 100, envelope_id: int | None = None
    ) -> list[EscalationRow]:
        c = t.escalations.c
        stmt = select(t.escalations).where(c.channel_id == channel_id, c.id > after_id)
        if envelope_id is not None:
            stmt = stmt.where(c.envelope_id == envelope_id)
        rows = await self._all(stmt.order_by(c.id).limit(limit))
        return [
            EscalationRow(
                id=r["id"],
                channel_id=r["channel_id"],
                timer_id=r["timer_id"],
                reason=r["reason"],
                envelope_id=r["envelope_id"],
                member_id=r["member_id"],
                checkin=r["checkin"],
                attempt=r["attempt"],
                state=r["state"],
                deadline_ms=r["deadline_ms"],
                at_ms=r["at_ms"],
                notice_body=_b(r["notice_body"]),
                notice_sig=_b(r["notice_sig"]),
                log_index=r["log_index"],
            )
            for r in rows
        ]

    # --- check-ins -----------------------------------------------------------------------------------

    async def insert_checkin(self, row: CheckinRow) -> int | None:
        """Insert an occurrence; None if it exists already (another process recorded it)."""
        result = await self._conn.execute(
            self._insert_ignoring(t.checkins, ["channel_id", "checkin"])
            .values(
                channel_id=row.channel_id,
                checkin=row.checkin,
                schedule=row.schedule,
                due_ms=row.due_ms,
                answer_by_ms=row.answer_by_ms,
                desks=json.dumps(list(row.desks)),
                notice_body=row.notice_body,
                notice_sig=row.notice_sig,
                log_index=row.log_index,
            )
            .returning(t.checkins.c.id)
        )
        value = result.scalar_one_or_none()
        return None if value is None else int(value)

    async def get_checkin(self, channel_id: int, checkin: str) -> CheckinRow | None:
        c = t.checkins.c
        r = await self._one(select(t.checkins).where(c.channel_id == channel_id, c.checkin == checkin))
        return _checkin(r) if r else None

    async def checkins(self, channel_id: int, limit: int) -> list[CheckinRow]:
        c = t.checkins.c
        rows = await self._all(
            select(t.checkins)
            .where(c.channel_id == channel_id)
            .order_by(c.due_ms.desc(), c.id.desc())
            .limit(limit)
        )
        return [_checkin(r) for r in reversed(rows)]

    async def insert_checkin_answer(self, row: CheckinAnswerRow) -> bool:
        result = await self._conn.execute(
            self._insert_ignoring(t.checkin_answers, ["checkin_id", "member_id"]).values(
                checkin_id=row.checkin_id, member_id=row.member_id, act_id=row.act_id, at_ms=row.at_ms
            )
        )
        return bool(result.rowcount)

    async def checkin_answers(self, checkin_id: int) -> list[CheckinAnswerRow]:
        c = t.checkin_answers.c
        rows = await self._all(select(t.checkin_answers).where(c.checkin_id == checkin_id).order_by(c.at_ms))
        return [
            CheckinAnswerRow(
                checkin_id=r["checkin_id"], member_id=r["member_id"], act_id=r["act_id"], at_ms=r["at_ms"]
            )
            for r in rows
        ]
