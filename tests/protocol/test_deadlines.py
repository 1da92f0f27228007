"""Pure hotline semantics (hotline/protocol/deadlines.py): tables of facts and times in, states out."""

from __future__ import annotations

import pytest

from hotline.protocol.deadlines import (
    DAY_MS,
    DEFAULT_POLICY,
    MINUTE_MS,
    CheckinSchedule,
    CrisisConflict,
    CrisisState,
    CrisisTrigger,
    DeadlineKind,
    DeskFacts,
    DeskState,
    Escalate,
    EscalationReason,
    LinkFacts,
    LinkState,
    Mode,
    Policy,
    Resolved,
    auto_crisis_trigger,
    checkin_id,
    crisis_transition,
    deadline_outcome,
    deadlines_for,
    desk_state,
    escalation_desks,
    link_state,
    link_test_due,
    link_test_pairs,
    next_occurrence,
    parse_checkin_id,
    weekday_of,
    word_cap_excess,
)
from hotline.protocol.errors import MalformedError
from hotline.protocol.model import Precedence

T0 = 1_764_000_000_000  # 2025-11-24 16:00:00 UTC, a Monday
S = 1000


def test_t0_is_a_monday_and_weekdays_follow():
    assert weekday_of(T0) == "mon"
    assert [weekday_of(T0 + i * DAY_MS) for i in range(7)] == [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
    ]
    assert weekday_of(0) == "thu"  # 1970-01-01


@pytest.mark.parametrize(
    ("precedence", "mode", "deliver_s", "ack_s"),
    [
        (Precedence.FLASH, Mode.NORMAL, 60, 600),  # allied practice: FLASH within 10 minutes
        (Precedence.IMMEDIATE, Mode.NORMAL, 300, 1800),
        (Precedence.PRIORITY, Mode.NORMAL, 1800, 3 * 3600),
        (Precedence.ROUTINE, Mode.NORMAL, 3600, 6 * 3600),
        (Precedence.FLASH, Mode.CRISIS, 30, 300),
        (Precedence.ROUTINE, Mode.CRISIS, 600, 3600),
    ],
)
def test_default_deadlines_follow_allied_practice(precedence, mode, deliver_s, ack_s):
    d = deadlines_for(DEFAULT_POLICY, precedence, mode, T0)
    assert (d.mode, d.deliver_by_ms, d.ack_by_ms) == (mode, T0 + deliver_s * S, T0 + ack_s * S)


def test_crisis_deadlines_are_shorter_than_normal_ones():
    for p in Precedence:
        normal, crisis = DEFAULT_POLICY.normal.deadlines[p], DEFAULT_POLICY.crisis.deadlines[p]
        assert crisis.deliver_s < normal.deliver_s
        assert crisis.ack_s is not None and normal.ack_s is not None and crisis.ack_s < normal.ack_s
    assert DEFAULT_POLICY.normal.link_test_interval_s == 3600
    assert DEFAULT_POLICY.crisis.link_test_interval_s == 60


def test_a_policy_round_trips_and_partial_input_keeps_the_rest():
    assert Policy.from_json(DEFAULT_POLICY.to_json()) == DEFAULT_POLICY
    changed = Policy.from_json(
        {"normal": {"deadlines": {"FLASH": {"ack_s": 900}}}, "auto_crisis": {"on_flash": True}}
    )
    assert changed.normal.deadlines[Precedence.FLASH].ack_s == 900
    assert changed.normal.deadlines[Precedence.FLASH].deliver_s == 60
    assert changed.normal.deadlines[Precedence.ROUTINE] == DEFAULT_POLICY.normal.deadlines[Precedence.ROUTINE]
    assert changed.auto_crisis.on_flash and not changed.auto_crisis.on_missed_link_test
    assert changed.crisis == DEFAULT_POLICY.crisis


def test_normal_mode_may_waive_acknowledgement_but_crisis_mode_may_not():
    relaxed = Policy.from_json({"normal": {"deadlines": {"ROUTINE": {"ack_s": None}}}})
    assert deadlines_for(relaxed, Precedence.ROUTINE, Mode.NORMAL, T0).ack_by_ms is None
    # In crisis mode every message requires acknowledgement.
    assert deadlines_for(relaxed, Precedence.ROUTINE, Mode.CRISIS, T0).ack_by_ms is not None
    with pytest.raises(MalformedError, match="every message needs an ack"):
        Policy.from_json({"crisis": {"deadlines": {"ROUTINE": {"ack_s": None}}}})


@pytest.mark.parametrize(
    "bad",
    [
        {"surprise": 1},
        {"normal": {"deadlines": {"FLASH": {"deliver_s": 0}}}},
        {"normal": {"deadlines": {"FLASH": {"deliver_s": 900, "ack_s": 600}}}},  # ack before delivery
        {"normal": {"deadlines": {"URGENT": {"deliver_s": 1}}}},
        {"normal": {"link_test_interval_s": 5}},
        {"normal": {"link_test_timeout_s": 7200}},  # longer than the interval
        {"word_caps": {"FLASH": 0}},
        {"checkins": [{"id": "x", "times": ["25:00"]}]},
        {"checkins": [{"id": "x", "times": ["11:00"], "days": ["tuesday"]}]},
        {"checkins": [{"id": "x", "times": []}]},
        {"checkins": [{"id": "x", "times": ["11:00"]}, {"id": "x", "times": ["12:00"]}]},
        {"auto_crisis": {"on_flash": "yes"}},
        {"link_test_desks": ["Delhi"]},
    ],
)
def test_bad_policies_are_refused(bad):
    with pytest.raises(MalformedError):
        Policy.from_json(bad)


@pytest.mark.parametrize(
    ("precedence", "words", "over"),
    [
        (Precedence.FLASH, 200, False),
        (Precedence.FLASH, 201, True),
        (Precedence.IMMEDIATE, 201, True),
        (Precedence.ROUTINE, 5000, False),  # no cap below IMMEDIATE by default
    ],
)
def test_word_caps(precedence, words, over):
    result = word_cap_excess(DEFAULT_POLICY, precedence, " ".join(["word"] * words))
    assert (result is not None) == over
    if over:
        assert result == (words, 200)


# --- the state of a message at a desk -----------------------------------------------------------------

DELIVER_BY, ACK_BY = T0 + 60 * S, T0 + 600 * S


def facts(**kw):
    return DeskFacts(deliver_by_ms=DELIVER_BY, ack_by_ms=ACK_BY, **kw)


@pytest.mark.parametrize(
    ("given", "now", "state"),
    [
        (facts(), T0, DeskState.PENDING),
        (facts(), DELIVER_BY, DeskState.UNDELIVERED),  # link down: no device has it in time
        (facts(rejected_at_ms=T0 + S), T0 + 2 * S, DeskState.REJECTED),
        (facts(rejected_at_ms=T0 + S), DELIVER_BY + S, DeskState.REJECTED),
        (facts(delivered_at_ms=T0 + S), T0 + 2 * S, DeskState.DELIVERED),
        (facts(delivered_at_ms=T0 + S), ACK_BY, DeskState.SILENT),  # delivered, nobody answered
        (facts(delivered_at_ms=T0 + S, acknowledged_at_ms=T0 + 9 * S), ACK_BY + S, DeskState.ACKNOWLEDGED),
        (facts(delivered_at_ms=T0 + S, acknowledged_at_ms=T0 + 9 * S, declined=True), T0, DeskState.DECLINED),
        (facts(withdrawn_at_ms=T0 + S), ACK_BY + S, DeskState.WITHDRAWN),
        # An answer given before the withdrawal stays the answer.
        (facts(acknowledged_at_ms=T0 + S, withdrawn_at_ms=T0 + 2 * S), T0 + 3 * S, DeskState.ACKNOWLEDGED),
    ],
)
def test_desk_state_keeps_link_down_silent_and_declined_apart(given, now, state):
    assert desk_state(given, now) is state


@pytest.mark.parametrize(
    ("kind", "given", "now", "expected"),
    [
        (DeadlineKind.DELIVERY, facts(), DELIVER_BY, EscalationReason.DELIVERY_OVERDUE),
        (DeadlineKind.DELIVERY, facts(), DELIVER_BY - 1, DeskState.PENDING),  # fired early: nothing yet
        (DeadlineKind.DELIVERY, facts(delivered_at_ms=T0 + S), DELIVER_BY, DeskState.DELIVERED),
        # A rejection is not a delivery: with no cure it escalates like a dead link.
        (DeadlineKind.DELIVERY, facts(rejected_at_ms=T0 + S), DELIVER_BY, EscalationReason.DELIVERY_OVERDUE),
        (DeadlineKind.DELIVERY, facts(withdrawn_at_ms=T0 + S), DELIVER_BY, DeskState.WITHDRAWN),
        (DeadlineKind.ACK, facts(delivered_at_ms=T0 + S), ACK_BY, EscalationReason.ACK_OVERDUE),
        (DeadlineKind.ACK, facts(), ACK_BY, EscalationReason.ACK_OVERDUE),  # not even delivered
        (
            DeadlineKind.ACK,
            facts(delivered_at_ms=T0, acknowledged_at_ms=T0 + S),
            ACK_BY,
            DeskState.ACKNOWLEDGED,
        ),
        (DeadlineKind.ACK, facts(acknowledged_at_ms=T0 + S, declined=True), ACK_BY, DeskState.DECLINED),
        (DeadlineKind.ACK, facts(delivered_at_ms=T0, withdrawn_at_ms=T0 + S), ACK_BY, DeskState.WITHDRAWN),
        (
            DeadlineKind.ACK,
            DeskFacts(deliver_by_ms=DELIVER_BY, ack_by_ms=None),
            ACK_BY,
            DeskState.UNDELIVERED,
        ),
    ],
)
def test_a_passed_deadline_escalates_only_without_its_receipt(kind, given, now, expected):
    outcome = deadline_outcome(kind, given, now, repeat_s=300)
    if isinstance(expected, EscalationReason):
        assert isinstance(outcome, Escalate)
        assert outcome.reason is expected
        assert outcome.repeat_at_ms == now + 300 * S
    else:
        assert outcome == Resolved(expected)


def test_escalations_go_to_the_sender_the_overdue_desk_and_the_overseers_once_each():
    roles = {
        "delhi": "principal",
        "islamabad": "principal",
        "washington": "facilitator",
        "excon": "controller",
        "auditor": "operator",
    }
    assert escalation_desks("delhi", ["islamabad"], roles) == ["delhi", "excon", "islamabad", "washington"]
    assert escalation_desks(None, ["delhi", "islamabad", "delhi"], {"delhi": "principal"}) == [
        "delhi",
        "islamabad",
    ]


# --- links --------------------------------------------------------------------------------------------

H = 3600 * S


@pytest.mark.parametrize(
    ("given", "now", "state", "overdue"),
    [
        (LinkFacts(), T0, LinkState.UNKNOWN, True),
        (LinkFacts(last_sent_ms=T0), T0 + S, LinkState.UNKNOWN, False),  # first test still out
        (LinkFacts(last_sent_ms=T0, last_success_ms=T0, last_rtt_ms=120), T0 + H, LinkState.UP, False),
        (LinkFacts(last_sent_ms=T0, last_missed_ms=T0, consecutive_missed=1), T0 + H, LinkState.DOWN, False),
        (
            LinkFacts(last_sent_ms=T0 + H, last_success_ms=T0 + H, last_missed_ms=T0),
            T0 + H,
            LinkState.UP,
            False,
        ),
        (
            LinkFacts(last_sent_ms=T0 + H, last_success_ms=T0, last_missed_ms=T0 + H),
            T0 + H,
            LinkState.DOWN,
            False,
        ),
        (LinkFacts(last_sent_ms=T0, last_success_ms=T0), T0 + 3 * H, LinkState.UP, True),  # tester silent
    ],
)
def test_link_state(given, now, state, overdue):
    view = link_state(given, now, 3600)
    assert (view.state, view.sender_overdue) == (state, overdue)


def test_link_tests_are_due_on_their_interval_and_every_desk_tests_every_other():
    assert link_test_due(None, 3600, T0)
    assert not link_test_due(T0, 3600, T0 + H - 1)
    assert link_test_due(T0, 3600, T0 + H)
    assert link_test_due(T0, 60, T0 + 60 * S)  # crisis mode: every minute
    assert link_test_pairs(["islamabad", "delhi"]) == [("delhi", "islamabad"), ("islamabad", "delhi")]


# --- check-ins ----------------------------------------------------------------------------------------


def test_weekly_checkin_like_the_dgmo_line():
    dgmo = Policy.from_json({"checkins": [{"id": "dgmo", "days": ["tue"], "times": ["11:00"]}]}).checkins[0]
    first = next_occurrence(dgmo, T0)  # Monday 16:00 -> Tuesday 11:00
    assert first == T0 - 16 * 60 * MINUTE_MS + DAY_MS + 11 * 60 * MINUTE_MS
    assert weekday_of(first) == "tue"
    assert next_occurrence(dgmo, first) == first + 7 * DAY_MS  # strictly after
    assert next_occurrence(dgmo, first - 1) == first


def test_twice_daily_checkins_like_the_korean_lines():
    korea = CheckinSchedule(id="korea", times=(9 * 60, 16 * 60))
    midnight = T0 - 16 * 60 * MINUTE_MS
    assert next_occurrence(korea, midnight) == midnight + 9 * 60 * MINUTE_MS
    assert next_occurrence(korea, midnight + 9 * 60 * MINUTE_MS) == midnight + 16 * 60 * MINUTE_MS
    assert next_occurrence(korea, T0) == midnight + DAY_MS + 9 * 60 * MINUTE_MS  # 16:00 is not after 16:00


def test_checkin_ids_name_one_occurrence():
    name = checkin_id("dgmo", T0)
    assert name == f"dgmo@{T0}" and parse_checkin_id(name) == ("dgmo", T0)
    for bad in ("dgmo", "DGMO@1", "dgmo@-1", "dgmo@1x", 7):
        with pytest.raises(MalformedError):
            parse_checkin_id(bad)


# --- crisis mode --------------------------------------------------------------------------------------


def test_crisis_declare_and_stand_down_by_signed_acts():
    off = CrisisState()
    on = crisis_transition(off, declare=True, epoch=0, trigger=CrisisTrigger.ACT, by="delhi/laptop", at_ms=T0)
    assert (on.on, on.epoch, on.mode, on.by) == (True, 1, Mode.CRISIS, "delhi/laptop")
    back = crisis_transition(
        on, declare=False, epoch=1, trigger=CrisisTrigger.ACT, by="excon/cli", at_ms=T0 + S
    )
    assert (back.on, back.epoch, back.mode) == (False, 2, Mode.NORMAL)


@pytest.mark.parametrize(
    ("state", "declare", "epoch", "trigger"),
    [
        (CrisisState(), False, 0, CrisisTrigger.ACT),  # nothing to stand down
        (CrisisState(on=True, epoch=1), True, 1, CrisisTrigger.ACT),  # already on
        (CrisisState(on=True, epoch=3), False, 1, CrisisTrigger.ACT),  # an old act replayed
        (CrisisState(on=True, epoch=1), False, 1, CrisisTrigger.FLASH),  # only an act stands down
    ],
)
def test_crisis_acts_that_do_not_apply_are_conflicts(state, declare, epoch, trigger):
    with pytest.raises(CrisisConflict):
        crisis_transition(state, declare=declare, epoch=epoch, trigger=trigger, by="x/y", at_ms=T0)


def test_auto_crisis_triggers_only_when_configured_and_not_already_on():
    both = Policy.from_json({"auto_crisis": {"on_flash": True, "on_missed_link_test": True}})
    assert auto_crisis_trigger(DEFAULT_POLICY, CrisisState(), flash=True) is None
    assert auto_crisis_trigger(both, CrisisState(), flash=True) is CrisisTrigger.FLASH
    assert auto_crisis_trigger(both, CrisisState(), missed_link_test=True) is CrisisTrigger.LINK_TEST_MISSED
    assert auto_crisis_trigger(both, CrisisState(on=True, epoch=1), flash=True) is None
    assert auto_crisis_trigger(both, CrisisState()) is None
