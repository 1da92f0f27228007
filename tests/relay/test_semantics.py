"""Hotline semantics on a real relay (SQLite and PostgreSQL): ladders, deadlines and escalation, link
tests, check-ins, crisis mode. The relay's clock is moved by the tests; timers fire on request."""

from __future__ import annotations

import pytest

from hotline.protocol.deadlines import DeskState
from hotline.protocol.errors import ErrorCode
from hotline.protocol.model import Precedence
from hotline.protocol.notices import ActKind, NoticeKind
from hotline.protocol.receipts import ReceiptKind, issue_device_receipt
from tests.conftest import BACKENDS
from tests.relay.hotline_support import (
    CLOCK_SETTINGS,
    MEMBERS,
    ack_receipt,
    act,
    advance,
    crisis_act,
    desk_states,
    drain,
    ladder,
    notices,
    relay_now,
    sweep,
)
from tests.relay.support import error_code, message_id, setup_channel


@pytest.fixture(scope="module", params=BACKENDS)
def relay(request, relay_factory):
    return relay_factory(request.param, **CLOCK_SETTINGS)


def channel(relay, **extra):
    return setup_channel(relay, MEMBERS, **extra)


def escalations(desk, message_id=None):
    r = desk.get("/escalations", params={"limit": 500})
    assert r.status_code == 200, r.text
    rows = r.json()["escalations"]
    return [e for e in rows if message_id is None or e["message_id"] == message_id]


# --- ordering and the ladder ---------------------------------------------------------------------------


def test_flash_is_delivered_ahead_of_queued_lower_precedence(relay):
    _, d = channel(relay)
    routine = [d["delhi"].send_text(["islamabad"], f"routine {n}")[0] for n in range(3)]
    flash, _ = d["delhi"].send_text(["islamabad"], "flash", precedence=Precedence.FLASH)
    immediate, _ = d["delhi"].send_text(["islamabad"], "immediate", precedence=Precedence.IMMEDIATE)
    order = [message_id(i) for i in d["islamabad"].inbox() if i["kind"] == "envelope"]
    assert order == [flash.header.message_id, immediate.header.message_id] + [
        e.header.message_id for e in routine
    ]


def test_ladder_shows_each_step_with_its_time_to_the_sender_and_overseers_only(relay):
    _, d = channel(relay)
    delhi, isb = d["delhi"], d["islamabad"]
    envelope, sent = delhi.send_text(
        ["islamabad", "washington"], "Are your forces on alert?", precedence=Precedence.FLASH
    )
    mid = envelope.header.message_id
    first = ladder(delhi, mid)
    assert first["accepted"]["log_index"] == sent["log_index"]
    assert first["purpose"] == "message" and first["mode"] == "normal"
    assert {x["desk"]: x["state"] for x in first["desks"]} == {
        "islamabad": "pending",
        "washington": "pending",
    }
    assert first["desks"][0]["deliver_by_ms"] - first["accepted"]["at_ms"] == 60_000  # FLASH: 1 minute
    assert first["desks"][0]["ack_by_ms"] - first["accepted"]["at_ms"] == 600_000  # FLASH: 10 minutes

    assert isb.send_receipt(isb.receipt(envelope)).status_code == 201
    ack_receipt(isb, envelope)
    after = ladder(delhi, mid)
    steps = {f"{r['member']}/{r['device']}": r for r in after["recipients"]}
    assert set(steps) == {"islamabad/laptop", "washington/laptop"}
    assert steps["islamabad/laptop"]["delivered"]["relay_at_ms"] >= after["accepted"]["at_ms"]
    assert steps["islamabad/laptop"]["acknowledged"]["declined"] is False
    assert "delivered" not in steps["washington/laptop"]
    assert desk_states(delhi, mid) == {"islamabad": "acknowledged", "washington": "pending"}

    # The controller oversees the exercise; the facilitator was a recipient: both may read it.
    assert ladder(d["excon"], mid)["message_id"] == mid
    assert ladder(d["washington"], mid)["message_id"] == mid
    # A recipient does not see others' receipts; an operator reads no ladders.
    assert error_code(isb.get(f"/messages/{mid}/ladder")) == "not_found"
    assert error_code(d["auditor"].get(f"/messages/{mid}/ladder")) == "forbidden"
    only_isb, _ = delhi.send_text(["islamabad"], "not for washington")
    assert error_code(d["washington"].get(f"/messages/{only_isb.header.message_id}/ladder")) == "not_found"


# --- deadlines and escalation -------------------------------------------------------------------------


def test_missed_delivery_escalates_to_everyone_concerned_and_repeats_until_answered(relay):
    _, d = channel(relay)
    delhi, isb = d["delhi"], d["islamabad"]
    envelope, _ = delhi.send_text(["islamabad"], "FLASH: clarify", precedence=Precedence.FLASH)
    mid = envelope.header.message_id
    advance(relay, 59)
    sweep(relay)
    assert escalations(delhi, mid) == []  # not yet due

    advance(relay, 2)
    sweep(relay)
    [first] = escalations(delhi, mid)
    assert (first["reason"], first["desk"], first["state"], first["attempt"]) == (
        "delivery_overdue",
        "islamabad",
        "undelivered",
        1,
    )
    # Pushed, relay-signed, to the sender, the overdue desk (re-alert), the facilitator and the controller.
    for name in ("delhi", "islamabad", "washington", "excon"):
        got = [
            n for n in notices(d[name]) if n.kind is NoticeKind.ESCALATION and n.fields["message_id"] == mid
        ]
        assert [n.fields["reason"] for n in got] == ["delivery_overdue"], name
    assert notices(d["auditor"]) == []
    # The escalation is in the audit log, as the same signed notice.
    audit = relay.admin.get("/v1/admin/audit", params={"start": first["log_index"], "limit": 1}).json()
    assert audit["entries"][0]["index"] == first["log_index"]

    advance(relay, 300)  # FLASH repeats every 5 minutes in normal mode
    sweep(relay)
    assert [e["attempt"] for e in escalations(delhi, mid) if e["reason"] == "delivery_overdue"] == [1, 2]

    assert isb.send_receipt(isb.receipt(envelope)).status_code == 201  # delivered at last
    advance(relay, 300)
    sweep(relay)
    assert [e["attempt"] for e in escalations(delhi, mid) if e["reason"] == "delivery_overdue"] == [1, 2]
    assert desk_states(delhi, mid) == {"islamabad": "silent"}  # 10 minutes gone: ack is overdue too
    [ack_overdue] = [e for e in escalations(delhi, mid) if e["reason"] == "ack_overdue"]
    assert ack_overdue["state"] == "silent"

    ack_receipt(isb, envelope)
    advance(relay, 600)
    sweep(relay)
    assert len([e for e in escalations(delhi, mid) if e["reason"] == "ack_overdue"]) == 1
    assert desk_states(delhi, mid) == {"islamabad": "acknowledged"}


def test_a_withdrawn_message_stops_escalating(relay):
    _, d = channel(relay)
    delhi = d["delhi"]
    envelope, _ = delhi.send_text(["islamabad"], "ROUTINE", precedence=Precedence.ROUTINE)
    mid = envelope.header.message_id
    advance(relay, 3601)
    sweep(relay)
    assert [e["reason"] for e in escalations(delhi, mid)] == ["delivery_overdue"]
    drain(d["islamabad"])

    withdraw = act(delhi, ActKind.WITHDRAW, relay_now(relay), message_id=mid, reason="overtaken by events")
    r = delhi.post(f"/messages/{mid}/withdraw", json={"act": withdraw.to_json()})
    assert r.status_code == 200, r.text
    assert r.json()["duplicate"] is False
    again = delhi.post(f"/messages/{mid}/withdraw", json={"act": withdraw.to_json()})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    [notice] = [n for n in notices(d["islamabad"]) if n.kind is NoticeKind.WITHDRAWN]
    assert (
        notice.fields["message_id"] == mid and notice.act is not None and notice.act.issuer == delhi.address
    )

    advance(relay, 3 * 3600)
    sweep(relay)
    assert [e["reason"] for e in escalations(delhi, mid)] == ["delivery_overdue"]
    assert desk_states(delhi, mid) == {"islamabad": "withdrawn"}
    # Only the sender's member withdraws, with its own signature.
    other = act(d["islamabad"], ActKind.WITHDRAW, relay_now(relay), message_id=mid, reason="no")
    assert (
        error_code(d["islamabad"].post(f"/messages/{mid}/withdraw", json={"act": other.to_json()}))
        == "not_found"
    )


def test_a_signed_refusal_is_declined_not_silent(relay):
    _, d = channel(relay)
    delhi, isb = d["delhi"], d["islamabad"]
    envelope, _ = delhi.send_text(
        ["islamabad"], "Stand down your batteries.", precedence=Precedence.IMMEDIATE
    )
    mid = envelope.header.message_id
    isb.send_receipt(isb.receipt(envelope))
    ack_receipt(isb, envelope, declined=True)
    advance(relay, 1801)
    sweep(relay)
    assert escalations(delhi, mid) == []
    assert desk_states(delhi, mid) == {"islamabad": "declined"}
    [step] = ladder(delhi, mid)["recipients"]
    assert step["acknowledged"]["declined"] is True


# --- link tests ----------------------------------------------------------------------------------------


def link(desk):
    r = desk.get("/link")
    assert r.status_code == 200, r.text
    body = r.json()
    return {(x["from"], x["to"]): x for x in body["directions"]}, {x["desk"]: x for x in body["desks"]}


def send_link_test(sender, to):
    envelope = sender.seal([to], "link test")
    r = sender.post("/link-tests", json=envelope.to_json())
    assert r.status_code == 201, r.text
    return envelope


def test_link_down_silent_and_declined_are_three_different_states(relay):
    _, d = channel(relay)
    delhi, isb = d["delhi"], d["islamabad"]
    drain(isb)
    # Delhi -> Islamabad: answered at once (the device's delivered receipt is the answer).
    answered = send_link_test(delhi, "islamabad")
    assert isb.send_receipt(isb.receipt(answered)).status_code == 201
    directions, _ = link(delhi)
    up = directions[("delhi", "islamabad")]
    assert (up["state"], up["missed"], up["tests"]) == ("up", 0, 1)
    assert up["rtt_ms"] is not None and up["rtt_ms"] >= 0
    assert up["last_success_ms"] == up["last_sent_ms"]

    # Islamabad -> Delhi: nobody at Delhi answers within the timeout: the link is down.
    send_link_test(isb, "delhi")
    advance(relay, 61)
    sweep(relay)
    directions, desks = link(delhi)
    down = directions[("islamabad", "delhi")]
    assert (down["state"], down["missed"], down["total_missed"]) == ("down", 1, 1)
    assert desks["delhi"]["link"] == "down"
    missed = [e for e in escalations(isb) if e["reason"] == "link_test_missed"]
    assert [e["desk"] for e in missed] == ["delhi"]
    assert any(
        n.fields["reason"] == "link_test_missed" for n in notices(isb) if n.kind is NoticeKind.ESCALATION
    )

    # Silent: delivered but unanswered past the deadline. Declined: answered with a signed refusal.
    silent, _ = delhi.send_text(["islamabad"], "are you there?", precedence=Precedence.FLASH)
    refused, _ = delhi.send_text(["islamabad"], "withdraw your forces", precedence=Precedence.FLASH)
    for envelope in (silent, refused):
        isb.send_receipt(isb.receipt(envelope))
    ack_receipt(isb, refused, declined=True)
    advance(relay, 601)
    sweep(relay)
    _, desks = link(delhi)
    assert desks["islamabad"]["silent"] == [silent.header.message_id]
    assert desks["islamabad"]["declined"] == [refused.header.message_id]
    assert desks["islamabad"]["undelivered"] == []
    assert desks["islamabad"]["link"] == "up"


def test_a_link_test_must_reach_every_device_of_one_other_member(relay):
    _, d = setup_channel(relay, MEMBERS, devices={"islamabad": ["phone"]})
    delhi = d["delhi"]
    everyone = delhi.seal(["islamabad", "washington"], "link test")
    assert error_code(delhi.post("/link-tests", json=everyone.to_json())) == "malformed"
    partial = delhi.seal(
        ["islamabad"],
        "link test",
        recipients=[
            p
            for p in delhi.recipients(["islamabad"])
            if p.owner.device == "laptop" and p.owner.member == "islamabad"
        ],
    )
    r = delhi.post("/link-tests", json=partial.to_json())
    assert error_code(r) == "unknown_recipient" and r.json()["error"]["details"]["missing"] == [
        "islamabad/phone"
    ]


# --- check-ins ------------------------------------------------------------------------------------------


def hhmm(ms):
    minutes = (ms // 60_000) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def test_a_missed_checkin_escalates_and_shows_unanswered(relay):
    name, d = channel(relay)
    delhi, isb = d["delhi"], d["islamabad"]
    now = relay_now(relay)
    due = (now // 60_000 + 2) * 60_000  # the next whole minute but one
    policy = {"checkins": [{"id": "dgmo", "times": [hhmm(due)], "answer_within_s": 900}]}
    r = relay.admin.put(f"/v1/admin/channels/{name}/policy", json=policy)
    assert r.status_code == 200, r.text
    assert r.json()["policy"]["checkins"][0]["times"] == [hhmm(due)]
    for desk in d.values():
        assert [n.kind for n in notices(desk)] == [NoticeKind.POLICY]
    upcoming = delhi.get("/checkins").json()["upcoming"]
    assert upcoming == [{"schedule": "dgmo", "due_ms": due}]

    advance(relay, (due - now) / 1000 + 1)
    sweep(relay)
    [due_notice] = [n for n in notices(delhi) if n.kind is NoticeKind.CHECKIN_DUE]
    checkin = due_notice.fields["checkin"]
    assert checkin == f"dgmo@{due}" and due_notice.fields["desks"] == ["delhi", "islamabad"]
    assert [n.kind for n in notices(d["excon"])] == [NoticeKind.CHECKIN_DUE]

    answer = act(delhi, ActKind.CHECKIN_ANSWER, relay_now(relay), checkin=checkin, text="Delhi on the line")
    r = delhi.post("/checkins/answer", json={"act": answer.to_json()})
    assert r.status_code == 201, r.text
    assert r.json()["late"] is False
    r = d["washington"].post(
        "/checkins/answer",
        json={
            "act": act(
                d["washington"], ActKind.CHECKIN_ANSWER, relay_now(relay), checkin=checkin, text="x"
            ).to_json()
        },
    )
    assert error_code(r) == "forbidden"  # the facilitator is not expected to answer

    advance(relay, 901)
    sweep(relay)
    missed = [e for e in escalations(delhi) if e["reason"] == "checkin_missed"]
    assert [(e["desk"], e["checkin"]) for e in missed] == [("islamabad", checkin)]
    view = delhi.get("/checkins").json()
    [row] = [c for c in view["checkins"] if c["checkin"] == checkin]
    assert {x["desk"]: x["state"] for x in row["desks"]} == {"delhi": "answered", "islamabad": "unanswered"}
    assert view["upcoming"] == [{"schedule": "dgmo", "due_ms": due + 24 * 3600 * 1000}]  # tomorrow, same time
    late = act(isb, ActKind.CHECKIN_ANSWER, relay_now(relay), checkin=checkin, text="sorry")
    r = isb.post("/checkins/answer", json={"act": late.to_json()})
    assert r.status_code == 201 and r.json()["late"] is True


# --- crisis mode ------------------------------------------------------------------------------------------


def crisis(desk):
    r = desk.get("/crisis")
    assert r.status_code == 200, r.text
    return r.json()


def test_crisis_is_declared_and_stood_down_by_signed_acts_seen_by_every_device(relay):
    name, d = channel(relay)
    delhi, excon = d["delhi"], d["excon"]
    declare = crisis_act(delhi, True, epoch=0, reason="missile launch reported")
    r = delhi.post("/crisis", json={"act": declare.to_json()})
    assert r.status_code == 201, r.text
    assert r.json()["crisis"] == {
        "on": True,
        "epoch": 1,
        "since_ms": r.json()["crisis"]["since_ms"],
        "trigger": "act",
        "by": "delhi/laptop",
    }
    again = delhi.post("/crisis", json={"act": declare.to_json()})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    for member, desk in d.items():  # every device, the operator's too: the banner is everywhere
        [notice] = [n for n in notices(desk) if n.kind is NoticeKind.CRISIS]
        assert notice.fields["on"] is True and notice.act is not None, member
        assert notice.act.verify(delhi.keys.signing_public_key) is None

    # While it lasts: shorter deadlines (FLASH delivered within 30 s), and link tests every minute.
    envelope, _ = delhi.send_text(["islamabad"], "FLASH", precedence=Precedence.FLASH)
    first = ladder(delhi, envelope.header.message_id)
    assert first["mode"] == "crisis"
    assert first["desks"][0]["deliver_by_ms"] - first["accepted"]["at_ms"] == 30_000
    assert delhi.get("/link").json()["interval_s"] == 60
    policy = delhi.get("/policy").json()
    assert policy["mode"] == "crisis"

    # Who may act, and on which state.
    for who in ("washington", "auditor"):
        bad = crisis_act(d[who], False, epoch=1)
        assert error_code(d[who].post("/crisis", json={"act": bad.to_json()})) == "forbidden"
    stale = crisis_act(excon, False, epoch=0)
    r = excon.post("/crisis", json={"act": stale.to_json()})
    assert error_code(r) == "conflict" and r.json()["error"]["details"]["crisis"]["epoch"] == 1
    twice = crisis_act(excon, True, epoch=1)
    assert error_code(excon.post("/crisis", json={"act": twice.to_json()})) == "conflict"
    forged = crisis_act(excon, False, epoch=1)
    assert error_code(delhi.post("/crisis", json={"act": forged.to_json()})) == "sender_mismatch"

    down = excon.post(
        "/crisis", json={"act": crisis_act(excon, False, epoch=1, reason="de-escalated").to_json()}
    )
    assert down.status_code == 201, down.text
    view = crisis(d["auditor"])
    assert view["crisis"]["on"] is False and view["crisis"]["epoch"] == 2
    assert [(h["on"], h["by"], h["trigger"]) for h in view["history"]] == [
        (True, "delhi/laptop", "act"),
        (False, "excon/laptop", "act"),
    ]
    assert relay.admin.get(f"/v1/admin/channels/{name}/crisis").json()["crisis"]["epoch"] == 2


def test_an_act_far_from_the_relays_clock_is_refused(relay):
    _, d = channel(relay)
    old = act(d["delhi"], ActKind.CRISIS_DECLARE, relay_now(relay) - 3_600_000, epoch=0, reason="stale")
    assert error_code(d["delhi"].post("/crisis", json={"act": old.to_json()})) == "malformed"


def test_auto_crisis_on_flash_and_on_a_missed_link_test(relay):
    _, d = setup_channel(relay, MEMBERS)
    name = d["delhi"].channel
    r = relay.admin.put(f"/v1/admin/channels/{name}/policy", json={"auto_crisis": {"on_flash": True}})
    assert r.status_code == 200
    d["delhi"].send_text(["islamabad"], "routine first")
    assert crisis(d["delhi"])["crisis"]["on"] is False
    d["delhi"].send_text(["islamabad"], "FLASH", precedence=Precedence.FLASH)
    state = crisis(d["delhi"])["crisis"]
    assert (state["on"], state["trigger"], state["by"]) == (True, "flash", "relay")
    [notice] = [n for n in notices(d["auditor"]) if n.kind is NoticeKind.CRISIS]
    assert notice.act is None and notice.fields["trigger"] == "flash"

    _, d2 = setup_channel(relay, MEMBERS)
    name2 = d2["delhi"].channel
    relay.admin.put(f"/v1/admin/channels/{name2}/policy", json={"auto_crisis": {"on_missed_link_test": True}})
    send_link_test(d2["delhi"], "islamabad")
    advance(relay, 61)
    sweep(relay)
    state = crisis(d2["delhi"])["crisis"]
    assert (state["on"], state["trigger"]) == (True, "link_test_missed")


# --- policy ---------------------------------------------------------------------------------------------


def test_policy_is_set_at_creation_and_changed_by_the_controller_or_admin(relay):
    name, invites = relay.create_channel(
        {"delhi": "principal", "excon": "controller"},
        policy={
            "normal": {"deadlines": {"FLASH": {"deliver_s": 30, "ack_s": 300}}},
            "word_caps": {"FLASH": 100},
        },
    )
    r = relay.admin.get(f"/v1/admin/channels/{name}/policy")
    body = r.json()
    assert body["version"] == 1 and body["policy"]["normal"]["deadlines"]["FLASH"] == {
        "deliver_s": 30,
        "ack_s": 300,
    }
    assert body["policy"]["word_caps"] == {"FLASH": 100}
    bad = relay.admin.post(
        "/v1/admin/channels",
        json={
            "channel": name + "-x",
            "members": [{"member": "a", "role": "principal"}],
            "policy": {"nope": 1},
        },
    )
    assert error_code(bad) == "malformed"

    from tests.relay.support import Desk

    delhi, excon = Desk.enroll(relay, invites["delhi"]), Desk.enroll(relay, invites["excon"])
    r = excon.http.put(excon.path("/policy"), json={"word_caps": {"FLASH": 50}})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["policy"]["word_caps"] == {"FLASH": 50}
    assert r.json()["policy"]["normal"]["deadlines"]["FLASH"]["deliver_s"] == 30  # the rest is kept
    r = delhi.http.put(delhi.path("/policy"), json={"word_caps": {"FLASH": 10}})
    assert error_code(r) == "forbidden"
    assert delhi.get("/policy").json()["policy"]["word_caps"] == {"FLASH": 50}


# --- resends --------------------------------------------------------------------------------------------


def test_a_rejected_message_is_resent_to_the_rejecting_device_only_and_fills_the_ladder(relay):
    _, d = setup_channel(relay, MEMBERS, devices={"islamabad": ["phone"]})
    delhi, laptop, phone = d["delhi"], d["islamabad"], d["islamabad/phone"]
    envelope, _ = delhi.send_text(["islamabad"], "FLASH", precedence=Precedence.FLASH)
    mid = envelope.header.message_id
    rejected = issue_device_receipt(
        phone.keys.signing,
        phone.address,
        ReceiptKind.REJECTED,
        channel=envelope.header.channel,
        message_id=mid,
        envelope_hash=envelope.hash,
        at_ms=relay_now(relay),
        reason=ErrorCode.DECRYPTION_FAILED,
    )
    assert phone.send_receipt(rejected).status_code == 201
    assert desk_states(delhi, mid) == {"islamabad": "rejected"}

    # Re-sealed to the phone alone, reusing the phone's sequence number (it never accepted it).
    prekeys = [p for p in delhi.recipients(["islamabad"]) if p.owner == phone.address]
    delhi.seq["islamabad"] -= 1
    resend = delhi.seal(["islamabad"], "FLASH", recipients=prekeys, precedence=Precedence.FLASH)
    assert resend.header.seq == envelope.header.seq
    wrong = delhi.seal(
        ["islamabad"],
        "FLASH",
        recipients=[p for p in delhi.recipients(["islamabad"]) if p.owner == laptop.address],
    )
    r = delhi.post(f"/messages/{mid}/resends", json=wrong.to_json())
    assert error_code(r) == "unknown_recipient"  # the laptop did not reject it
    r = delhi.post(f"/messages/{mid}/resends", json=resend.to_json())
    assert r.status_code == 201, r.text
    assert phone.open([i for i in phone.inbox() if i["kind"] == "envelope"][-1]) == "FLASH"

    assert phone.send_receipt(phone.receipt(resend)).status_code == 201
    view = ladder(delhi, mid)
    [step] = [x for x in view["recipients"] if x["device"] == "phone"]
    assert step["rejected"]["reason"] == "decryption_failed"
    assert step["delivered"]["message_id"] == resend.header.message_id
    assert step["resends"][0]["message_id"] == resend.header.message_id
    assert {x["desk"]: x["state"] for x in view["desks"]} == {"islamabad": DeskState.DELIVERED.value}
    assert escalations(delhi, mid) == []
    # Only the original sender's member resends it.
    theirs = laptop.seal(["delhi"], "not yours")
    assert error_code(laptop.post(f"/messages/{mid}/resends", json=theirs.to_json())) == "forbidden"


def test_the_test_clock_is_refused_unless_enabled(relay_factory):
    plain = relay_factory("sqlite")
    for method, path in (("GET", "/v1/admin/test/clock"), ("POST", "/v1/admin/test/sweep")):
        r = plain.admin.request(method, path)
        assert error_code(r) == "not_found"
    r = plain.admin.post("/v1/admin/test/clock", json={"advance_ms": 1000})
    assert error_code(r) == "not_found"
