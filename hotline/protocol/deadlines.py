"""Hotline semantics as pure functions: policy, precedence deadlines, escalation, link and crisis state.

Theory of operation
-------------------
A channel has a :class:`Policy` with two :class:`ModePolicy` halves, *normal* and *crisis*. The mode in
force when the relay accepts a message fixes that message's deadlines for each recipient desk: a
*delivery* deadline (some device of the desk has verified and decrypted it) and an *acknowledgement*
deadline (a person at the desk confirmed or declined it). In normal mode an acknowledgement deadline may
be ``None`` (acknowledgement not required); in crisis mode every precedence has one, so every message
requires acknowledgement.

For each recipient desk, the facts the relay holds (receipts, deadlines, a withdrawal) map to exactly one
:class:`DeskState` by :func:`desk_state`; the three states a person must never confuse are kept apart:

* ``undelivered`` — the delivery deadline passed and no device of the desk has the message: the *link*
  is down (the relay cannot reach the desk's devices);
* ``silent`` — delivered, but the acknowledgement deadline passed with no answer from a person;
* ``declined`` — a person at the desk answered with a signed refusal.

A deadline that passes without the receipt it waits for raises an escalation (:func:`deadline_outcome`);
the escalation repeats every ``escalation_repeat_s`` until the receipt arrives or the sender withdraws.
Link tests (a signed message with intent ``link_test``, answered automatically by the recipient device's
``delivered`` receipt) give the state of each direction of the link (:func:`link_state`). Scheduled
check-ins occur at the times of a :class:`CheckinSchedule` (:func:`next_occurrence`). Crisis mode
changes only by a signed act or a configured automatic trigger (:func:`crisis_transition`).

Everything that decides a state or a deadline lives in this file. It does no I/O and keeps no clock:
every function that needs the time takes ``now_ms``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hotline.protocol.content import word_count
from hotline.protocol.errors import MalformedError
from hotline.protocol.model import (
    NAME_RE,
    Precedence,
    require_bool,
    require_int,
    require_name,
    require_object,
    require_str,
)

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
DAY_MS = 24 * 60 * MINUTE_MS
WEEK_MS = 7 * DAY_MS

MAX_DEADLINE_S = 30 * 24 * 3600  # a month: anything longer is not a deadline
MIN_LINK_TEST_INTERVAL_S = 10
MAX_CHECKIN_SCHEDULES = 16
MAX_CHECKIN_TIMES = 24
MAX_WORD_CAP = 100_000
MAX_REASON_CHARS = 500

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# 1970-01-01, day 0 of Unix time, was a Thursday (index 3 above).
_EPOCH_WEEKDAY = 3


class Mode(StrEnum):
    NORMAL = "normal"
    CRISIS = "crisis"


# --- policy ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrecedenceDeadlines:
    """Seconds after the relay accepted a message by which it must be delivered, and acknowledged."""

    deliver_s: int
    ack_s: int | None  # None: no acknowledgement required (normal mode only)

    def to_json(self) -> dict[str, Any]:
        return {"deliver_s": self.deliver_s, "ack_s": self.ack_s}


@dataclass(frozen=True)
class ModePolicy:
    deadlines: Mapping[Precedence, PrecedenceDeadlines]
    link_test_interval_s: int
    link_test_timeout_s: int
    escalation_repeat_s: int

    def to_json(self) -> dict[str, Any]:
        return {
            "deadlines": {p.value: self.deadlines[p].to_json() for p in Precedence},
            "link_test_interval_s": self.link_test_interval_s,
            "link_test_timeout_s": self.link_test_timeout_s,
            "escalation_repeat_s": self.escalation_repeat_s,
        }


@dataclass(frozen=True)
class CheckinSchedule:
    """Check-ins at fixed UTC times: on ``days`` (all days when empty) at each of ``times``.

    ``times`` are minutes after midnight UTC. The DGMO line's weekly slot is ``days=("tue",),
    times=(660,)``; the inter-Korean lines' twice-daily calls are ``times=(540, 960)``.
    """

    id: str
    times: tuple[int, ...]
    days: tuple[str, ...] = ()
    answer_within_s: int = 900
    desks: tuple[str, ...] = ()  # members expected to answer; empty: every principal

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "days": list(self.days),
            "times": [f"{t // 60:02d}:{t % 60:02d}" for t in self.times],
            "answer_within_s": self.answer_within_s,
            "desks": list(self.desks),
        }


@dataclass(frozen=True)
class AutoCrisis:
    """Triggers that switch a channel to crisis mode by themselves."""

    on_flash: bool = False
    on_missed_link_test: bool = False

    def to_json(self) -> dict[str, bool]:
        return {"on_flash": self.on_flash, "on_missed_link_test": self.on_missed_link_test}


@dataclass(frozen=True)
class Policy:
    normal: ModePolicy
    crisis: ModePolicy
    word_caps: Mapping[Precedence, int] = field(default_factory=dict)
    checkins: tuple[CheckinSchedule, ...] = ()
    auto_crisis: AutoCrisis = AutoCrisis()
    link_test_desks: tuple[str, ...] = ()  # members that test the link with each other; empty: principals

    def mode(self, mode: Mode) -> ModePolicy:
        return self.crisis if mode is Mode.CRISIS else self.normal

    def to_json(self) -> dict[str, Any]:
        return {
            "normal": self.normal.to_json(),
            "crisis": self.crisis.to_json(),
            "word_caps": {p.value: self.word_caps[p] for p in Precedence if p in self.word_caps},
            "checkins": [c.to_json() for c in self.checkins],
            "auto_crisis": self.auto_crisis.to_json(),
            "link_test_desks": list(self.link_test_desks),
        }

    @classmethod
    def from_json(cls, obj: object, *, base: Policy | None = None) -> Policy:
        """Parse a policy; fields left out keep ``base``'s values (default: :data:`DEFAULT_POLICY`)."""
        base = base or DEFAULT_POLICY
        f = require_object(
            obj,
            field="policy",
            keys=(),
            optional={"normal", "crisis", "word_caps", "checkins", "auto_crisis", "link_test_desks"},
        )
        normal = _mode_from_json(f["normal"], base.normal, "policy.normal") if "normal" in f else base.normal
        crisis = _mode_from_json(f["crisis"], base.crisis, "policy.crisis") if "crisis" in f else base.crisis
        for p in Precedence:
            if crisis.deadlines[p].ack_s is None:
                raise MalformedError(
                    f"policy.crisis.deadlines.{p.value}.ack_s: in crisis mode every message needs an ack"
                )
        word_caps = dict(base.word_caps)
        if "word_caps" in f:
            caps = require_object(
                f["word_caps"], field="policy.word_caps", keys=(), optional={p.value for p in Precedence}
            )
            word_caps = {}
            for name, value in caps.items():
                if value is not None:
                    word_caps[Precedence(name)] = require_int(
                        value, field=f"policy.word_caps.{name}", minimum=1, maximum=MAX_WORD_CAP
                    )
        checkins = base.checkins
        if "checkins" in f:
            raw = f["checkins"]
            if not isinstance(raw, list) or len(raw) > MAX_CHECKIN_SCHEDULES:
                raise MalformedError(f"policy.checkins: a list of at most {MAX_CHECKIN_SCHEDULES} schedules")
            checkins = tuple(_checkin_from_json(c, f"policy.checkins[{i}]") for i, c in enumerate(raw))
            if len({c.id for c in checkins}) != len(checkins):
                raise MalformedError("policy.checkins: schedule ids must be unique")
        auto = base.auto_crisis
        if "auto_crisis" in f:
            a = require_object(
                f["auto_crisis"],
                field="policy.auto_crisis",
                keys=(),
                optional={"on_flash", "on_missed_link_test"},
            )
            auto = AutoCrisis(
                on_flash=require_bool(a.get("on_flash", auto.on_flash), field="policy.auto_crisis.on_flash"),
                on_missed_link_test=require_bool(
                    a.get("on_missed_link_test", auto.on_missed_link_test),
                    field="policy.auto_crisis.on_missed_link_test",
                ),
            )
        desks = base.link_test_desks
        if "link_test_desks" in f:
            desks = _names(f["link_test_desks"], "policy.link_test_desks")
        return cls(
            normal=normal,
            crisis=crisis,
            word_caps=word_caps,
            checkins=checkins,
            auto_crisis=auto,
            link_test_desks=desks,
        )


def _names(obj: object, where: str) -> tuple[str, ...]:
    if not isinstance(obj, list) or len(obj) > 64:
        raise MalformedError(f"{where}: a list of at most 64 member names")
    names = tuple(require_name(n, field=f"{where}[{i}]") for i, n in enumerate(obj))
    if len(set(names)) != len(names):
        raise MalformedError(f"{where}: a member is listed twice")
    return names


def _seconds(obj: object, where: str, *, minimum: int = 1) -> int:
    return require_int(obj, field=where, minimum=minimum, maximum=MAX_DEADLINE_S)


def _mode_from_json(obj: object, base: ModePolicy, where: str) -> ModePolicy:
    f = require_object(
        obj,
        field=where,
        keys=(),
        optional={"deadlines", "link_test_interval_s", "link_test_timeout_s", "escalation_repeat_s"},
    )
    deadlines = dict(base.deadlines)
    if "deadlines" in f:
        d = require_object(
            f["deadlines"], field=f"{where}.deadlines", keys=(), optional={p.value for p in Precedence}
        )
        for name, value in d.items():
            p = Precedence(name)
            here = f"{where}.deadlines.{name}"
            pf = require_object(value, field=here, keys=(), optional={"deliver_s", "ack_s"})
            deliver = _seconds(pf.get("deliver_s", deadlines[p].deliver_s), f"{here}.deliver_s")
            ack_raw = pf.get("ack_s", deadlines[p].ack_s)
            ack = None if ack_raw is None else _seconds(ack_raw, f"{here}.ack_s")
            if ack is not None and ack < deliver:
                raise MalformedError(f"{here}: ack_s must not be shorter than deliver_s")
            deadlines[p] = PrecedenceDeadlines(deliver, ack)
    interval = _seconds(
        f.get("link_test_interval_s", base.link_test_interval_s),
        f"{where}.link_test_interval_s",
        minimum=MIN_LINK_TEST_INTERVAL_S,
    )
    timeout = _seconds(f.get("link_test_timeout_s", base.link_test_timeout_s), f"{where}.link_test_timeout_s")
    if timeout > interval:
        raise MalformedError(f"{where}: link_test_timeout_s must not exceed link_test_interval_s")
    repeat = _seconds(f.get("escalation_repeat_s", base.escalation_repeat_s), f"{where}.escalation_repeat_s")
    return ModePolicy(deadlines, interval, timeout, repeat)


def parse_time_of_day(text: object, *, field: str) -> int:
    """``"HH:MM"`` (UTC, 24-hour) as minutes after midnight."""
    value = require_str(text, field=field, max_len=5)
    hh, sep, mm = value.partition(":")
    if sep != ":" or len(hh) != 2 or len(mm) != 2 or not (hh + mm).isdigit():
        raise MalformedError(f"{field}: expected HH:MM (UTC)")
    hours, minutes = int(hh), int(mm)
    if hours > 23 or minutes > 59:
        raise MalformedError(f"{field}: not a time of day")
    return hours * 60 + minutes


def _checkin_from_json(obj: object, where: str) -> CheckinSchedule:
    f = require_object(obj, field=where, keys={"id", "times"}, optional={"days", "answer_within_s", "desks"})
    schedule_id = require_name(f["id"], field=f"{where}.id")
    raw_times = f["times"]
    if not isinstance(raw_times, list) or not 1 <= len(raw_times) <= MAX_CHECKIN_TIMES:
        raise MalformedError(f"{where}.times: a list of 1 to {MAX_CHECKIN_TIMES} times HH:MM")
    times = tuple(
        sorted({parse_time_of_day(t, field=f"{where}.times[{i}]") for i, t in enumerate(raw_times)})
    )
    days: tuple[str, ...] = ()
    if "days" in f:
        raw_days = f["days"]
        if not isinstance(raw_days, list) or len(raw_days) > 7:
            raise MalformedError(f"{where}.days: a list of weekdays (mon … sun)")
        for i, day in enumerate(raw_days):
            if day not in WEEKDAYS:
                raise MalformedError(f"{where}.days[{i}]: one of {', '.join(WEEKDAYS)}")
        days = tuple(d for d in WEEKDAYS if d in raw_days)
    answer = _seconds(f.get("answer_within_s", 900), f"{where}.answer_within_s", minimum=60)
    desks = _names(f["desks"], f"{where}.desks") if "desks" in f else ()
    return CheckinSchedule(id=schedule_id, times=times, days=days, answer_within_s=answer, desks=desks)


def _table(rows: Iterable[tuple[Precedence, int, int | None]]) -> dict[Precedence, PrecedenceDeadlines]:
    return {p: PrecedenceDeadlines(deliver, ack) for p, deliver, ack in rows}


# Allied message handling: FLASH handled within 10 minutes, IMMEDIATE 30, PRIORITY about 3 hours, ROUTINE
# about 6 hours; delivery (a device has it) is expected much sooner than a person's answer.
DEFAULT_POLICY = Policy(
    normal=ModePolicy(
        deadlines=_table(
            [
                (Precedence.FLASH, 60, 600),
                (Precedence.IMMEDIATE, 300, 1800),
                (Precedence.PRIORITY, 1800, 3 * 3600),
                (Precedence.ROUTINE, 3600, 6 * 3600),
            ]
        ),
        link_test_interval_s=3600,  # the Moscow–Washington line has been tested hourly since 1963
        link_test_timeout_s=60,
        escalation_repeat_s=300,
    ),
    crisis=ModePolicy(
        deadlines=_table(
            [
                (Precedence.FLASH, 30, 300),
                (Precedence.IMMEDIATE, 60, 600),
                (Precedence.PRIORITY, 300, 1800),
                (Precedence.ROUTINE, 600, 3600),
            ]
        ),
        link_test_interval_s=60,
        link_test_timeout_s=30,
        escalation_repeat_s=60,
    ),
    word_caps={Precedence.FLASH: 200, Precedence.IMMEDIATE: 200},
)


# --- deadlines and word caps -------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageDeadlines:
    mode: Mode
    deliver_by_ms: int
    ack_by_ms: int | None


def deadlines_for(
    policy: Policy, precedence: Precedence, mode: Mode, accepted_at_ms: int
) -> MessageDeadlines:
    d = policy.mode(mode).deadlines[precedence]
    ack = None if d.ack_s is None else accepted_at_ms + d.ack_s * SECOND_MS
    return MessageDeadlines(mode, accepted_at_ms + d.deliver_s * SECOND_MS, ack)


def word_cap_excess(policy: Policy, precedence: Precedence, text: str) -> tuple[int, int] | None:
    """``(words, cap)`` if ``text`` is over the channel's cap for ``precedence``, else None.

    The relay cannot see content, so the cap binds clients: a sender refuses to seal an over-cap text and
    a recipient flags one it receives (docs/adr/0007).
    """
    cap = policy.word_caps.get(precedence)
    if cap is None:
        return None
    words = word_count(text)
    return (words, cap) if words > cap else None


# --- the state of a message at a recipient desk ------------------------------------------------------


class DeskState(StrEnum):
    PENDING = "pending"  # accepted; not yet delivered, delivery deadline not passed
    UNDELIVERED = "undelivered"  # delivery deadline passed with no device having it: link down
    REJECTED = "rejected"  # the desk's devices that answered could not open it (a resend may cure it)
    DELIVERED = "delivered"  # a device has it; no acknowledgement due yet (or none required)
    SILENT = "silent"  # delivered, acknowledgement deadline passed with no answer
    ACKNOWLEDGED = "acknowledged"
    DECLINED = "declined"  # a person answered with a signed refusal
    WITHDRAWN = "withdrawn"  # the sender withdrew it before it was answered


@dataclass(frozen=True)
class DeskFacts:
    """What the relay knows about one message at one recipient desk (relay clock, ms)."""

    deliver_by_ms: int
    ack_by_ms: int | None
    delivered_at_ms: int | None = None
    acknowledged_at_ms: int | None = None
    declined: bool = False
    rejected_at_ms: int | None = None
    withdrawn_at_ms: int | None = None


def desk_state(facts: DeskFacts, now_ms: int) -> DeskState:
    if facts.acknowledged_at_ms is not None:
        return DeskState.DECLINED if facts.declined else DeskState.ACKNOWLEDGED
    if facts.withdrawn_at_ms is not None:
        return DeskState.WITHDRAWN
    if facts.delivered_at_ms is None:
        if facts.rejected_at_ms is not None:
            return DeskState.REJECTED
        return DeskState.UNDELIVERED if now_ms >= facts.deliver_by_ms else DeskState.PENDING
    if facts.ack_by_ms is not None and now_ms >= facts.ack_by_ms:
        return DeskState.SILENT
    return DeskState.DELIVERED


class DeadlineKind(StrEnum):
    DELIVERY = "delivery"
    ACK = "ack"


class EscalationReason(StrEnum):
    DELIVERY_OVERDUE = "delivery_overdue"
    ACK_OVERDUE = "ack_overdue"
    LINK_TEST_MISSED = "link_test_missed"
    CHECKIN_MISSED = "checkin_missed"


@dataclass(frozen=True)
class Escalate:
    reason: EscalationReason
    state: DeskState
    repeat_at_ms: int  # when to look again if still unanswered


@dataclass(frozen=True)
class Resolved:
    state: DeskState


def deadline_outcome(kind: DeadlineKind, facts: DeskFacts, now_ms: int, repeat_s: int) -> Escalate | Resolved:
    """What a passed deadline means: an escalation (to repeat at ``repeat_at_ms``), or nothing to do.

    A delivery deadline is met by delivery or by an answer; a device's rejection does not meet it (the
    message is still not readable there) — so a rejection that no resend cures escalates like a dead link.
    An acknowledgement deadline is met by an acknowledgement or a signed refusal. A withdrawal ends both.
    """
    state = desk_state(facts, now_ms)
    if facts.withdrawn_at_ms is not None or facts.acknowledged_at_ms is not None:
        return Resolved(state)
    if kind is DeadlineKind.DELIVERY:
        if facts.delivered_at_ms is not None or now_ms < facts.deliver_by_ms:
            return Resolved(state)
        reason = EscalationReason.DELIVERY_OVERDUE
    else:
        if facts.ack_by_ms is None or now_ms < facts.ack_by_ms:
            return Resolved(state)
        reason = EscalationReason.ACK_OVERDUE
    return Escalate(reason, state, now_ms + repeat_s * SECOND_MS)


def escalation_desks(sender: str | None, overdue: Iterable[str], roles: Mapping[str, str]) -> list[str]:
    """The members an escalation goes to: the sender, the overdue desks (re-alerted), and every
    facilitator and controller of the channel. Sorted, each once."""
    out = set(overdue)
    if sender is not None:
        out.add(sender)
    out.update(m for m, role in roles.items() if role in {"facilitator", "controller"})
    return sorted(out)


# --- link state ---------------------------------------------------------------------------------------


class LinkState(StrEnum):
    UNKNOWN = "unknown"  # no link test decided yet
    UP = "up"  # the newest decided test was answered in time
    DOWN = "down"  # the newest decided test was missed: the relay cannot reach the desk's devices


@dataclass(frozen=True)
class LinkFacts:
    """One direction of the link (desk A's tests to desk B), from the relay's records."""

    last_sent_ms: int | None = None
    last_success_ms: int | None = None
    last_rtt_ms: int | None = None
    last_missed_ms: int | None = None
    consecutive_missed: int = 0
    total_missed: int = 0


@dataclass(frozen=True)
class LinkView:
    state: LinkState
    sender_overdue: bool  # desk A sent no test for two intervals: its own client may be down

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "sender_overdue": self.sender_overdue}


def link_state(facts: LinkFacts, now_ms: int, interval_s: int) -> LinkView:
    if facts.last_missed_ms is None and facts.last_success_ms is None:
        state = LinkState.UNKNOWN
    elif facts.last_missed_ms is not None and (
        facts.last_success_ms is None or facts.last_missed_ms >= facts.last_success_ms
    ):
        state = LinkState.DOWN
    else:
        state = LinkState.UP
    overdue = facts.last_sent_ms is None or now_ms - facts.last_sent_ms > 2 * interval_s * SECOND_MS
    return LinkView(state, overdue)


def link_test_due(last_sent_ms: int | None, interval_s: int, now_ms: int) -> bool:
    """Whether a desk should send its next link test now."""
    return last_sent_ms is None or now_ms - last_sent_ms >= interval_s * SECOND_MS


def link_test_pairs(desks: Iterable[str]) -> list[tuple[str, str]]:
    """Every ordered pair of distinct testing desks: each tests the link to each other one."""
    names = sorted(set(desks))
    return [(a, b) for a in names for b in names if a != b]


# --- check-in schedules -------------------------------------------------------------------------------


def weekday_of(ms: int) -> str:
    return WEEKDAYS[(ms // DAY_MS + _EPOCH_WEEKDAY) % 7]


def next_occurrence(schedule: CheckinSchedule, after_ms: int) -> int:
    """The first time of ``schedule`` strictly after ``after_ms`` (UTC, whole minutes)."""
    day = after_ms // DAY_MS
    for offset in range(8):
        start = (day + offset) * DAY_MS
        if schedule.days and weekday_of(start) not in schedule.days:
            continue
        for minute in schedule.times:
            at = start + minute * MINUTE_MS
            if at > after_ms:
                return at
    raise AssertionError("a schedule has at least one time and one day")  # pragma: no cover


def checkin_id(schedule_id: str, due_ms: int) -> str:
    """The name of one occurrence, the same on every relay process: ``dgmo@1732615200000``."""
    return f"{schedule_id}@{due_ms}"


def parse_checkin_id(value: object, *, field: str = "checkin") -> tuple[str, int]:
    text = require_str(value, field=field, max_len=64)
    schedule, sep, due = text.partition("@")
    if sep != "@" or not NAME_RE.fullmatch(schedule) or not due.isdigit() or len(due) > 16:
        raise MalformedError(f"{field}: expected <schedule>@<due_ms>")
    return schedule, int(due)


# --- crisis mode --------------------------------------------------------------------------------------


class CrisisTrigger(StrEnum):
    ACT = "act"  # a signed act of a principal or controller
    FLASH = "flash"  # automatic: a FLASH message was accepted
    LINK_TEST_MISSED = "link_test_missed"  # automatic: a link test went unanswered


@dataclass(frozen=True)
class CrisisState:
    on: bool = False
    epoch: int = 0  # grows by one with every change; an act names the epoch it changes
    since_ms: int | None = None
    trigger: CrisisTrigger | None = None
    by: str | None = None  # "member/device" for an act, "relay" for an automatic trigger

    @property
    def mode(self) -> Mode:
        return Mode.CRISIS if self.on else Mode.NORMAL

    def to_json(self) -> dict[str, Any]:
        return {
            "on": self.on,
            "epoch": self.epoch,
            "since_ms": self.since_ms,
            "trigger": self.trigger.value if self.trigger else None,
            "by": self.by,
        }


class CrisisConflict(Exception):
    """The act does not apply to the current state (already so, or made against another epoch)."""


CRISIS_ROLES = frozenset({"principal", "controller"})


def crisis_transition(
    state: CrisisState, *, declare: bool, epoch: int, trigger: CrisisTrigger, by: str, at_ms: int
) -> CrisisState:
    """The state after a declaration (``declare``) or a stand-down; raises :class:`CrisisConflict`."""
    if epoch != state.epoch:
        raise CrisisConflict(f"the act names epoch {epoch}; the channel is at epoch {state.epoch}")
    if declare == state.on:
        raise CrisisConflict("the channel is already in crisis mode" if declare else "there is no crisis")
    if not declare and trigger is not CrisisTrigger.ACT:
        raise CrisisConflict("only a signed act stands a crisis down")
    return CrisisState(on=declare, epoch=state.epoch + 1, since_ms=at_ms, trigger=trigger, by=by)


def auto_crisis_trigger(
    policy: Policy, state: CrisisState, *, flash: bool = False, missed_link_test: bool = False
) -> CrisisTrigger | None:
    """The trigger that switches the channel to crisis now, if any."""
    if state.on:
        return None
    if flash and policy.auto_crisis.on_flash:
        return CrisisTrigger.FLASH
    if missed_link_test and policy.auto_crisis.on_missed_link_test:
        return CrisisTrigger.LINK_TEST_MISSED
    return None
