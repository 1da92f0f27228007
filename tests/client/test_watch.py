"""The client side of hotline semantics (hotline/client/watch.py, ladder.py) against a real relay:
ladders and refusals, word caps, automatic resends, link tests, crisis acts and banners, escalation and
withdrawal notices, check-ins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hotline.client import (
    AdminClient,
    DeskClient,
    GapAlarm,
    MemoryProfileStore,
    MessageReceived,
    ReceiptReceived,
)
from hotline.client.errors import ClientError
from hotline.client.notices import NoticeReceived
from hotline.client.watch import banner, hotline_state
from hotline.protocol import Intent, Precedence
from hotline.protocol.deadlines import DeskState
from hotline.protocol.receipts import ReceiptKind
from tests.relay.hotline_support import CLOCK_SETTINGS, advance, sweep

# The relay's clock moves ahead of the desks' in these tests; acts stay acceptable.
SETTINGS = {**CLOCK_SETTINGS, "act_max_skew_s": str(30 * 86400)}


@pytest.fixture(scope="module")
def relay(relay_factory):
    return relay_factory("sqlite", **SETTINGS)


async def desks(relay, members: dict[str, str] | None = None, policy: dict[str, Any] | None = None):
    members = members or {"delhi": "principal", "islamabad": "principal", "excon": "controller"}
    async with AdminClient(relay.url, relay.admin_token) as admin:
        created = await admin.create_channel(f"w{id(members) % 10**8}{len(relay.log_tail())}", members)
    channel = created["channel"]["channel"]
    if policy is not None:
        r = relay.admin.put(f"/v1/admin/channels/{channel}/policy", json=policy)
        assert r.status_code == 200, r.text
    out = {}
    for invite in created["invites"]:
        out[invite["member"]] = await DeskClient.enroll(
            relay.url, invite["code"], "laptop", MemoryProfileStore()
        )
    for desk in out.values():
        await desk.sync()
    return out


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


async def test_ladder_shows_a_signed_refusal_as_declined(relay):
    d = await desks(relay)
    delhi, isb = d["delhi"], d["islamabad"]
    sent = await delhi.send(["islamabad"], "Recall your aircraft.", precedence=Precedence.FLASH)
    local = delhi.watch.ladder(sent.message_id)
    assert local.desk("islamabad").state is DeskState.PENDING
    [msg] = of(await isb.sync(), MessageReceived)
    await isb.acknowledge(msg.message_id, reply="We will not.", declined=True)
    receipts = of(await delhi.sync(), ReceiptReceived)
    assert [(r.kind, r.declined) for r in receipts] == [
        (ReceiptKind.DELIVERED, False),
        (ReceiptKind.ACKNOWLEDGED, True),
    ]
    local = delhi.watch.ladder(sent.message_id)
    assert local.desk("islamabad").state is DeskState.DECLINED
    assert local.device("islamabad/laptop").reply_id is not None
    remote = await delhi.watch.relay_ladder(sent.message_id)
    assert remote.desk("islamabad").state is DeskState.DECLINED
    assert remote.device("islamabad/laptop").declined
    for desk in d.values():
        await desk.aclose()


async def test_flash_over_the_word_cap_is_refused_before_sealing(relay):
    d = await desks(relay)
    delhi = d["delhi"]
    before = dict(delhi.state.next_seq)
    with pytest.raises(ClientError) as err:
        await delhi.send(["islamabad"], " ".join(["word"] * 201), precedence=Precedence.FLASH)
    assert err.value.code == "too_long"
    assert delhi.state.outbox == {} and delhi.state.next_seq == before
    await delhi.send(["islamabad"], " ".join(["word"] * 201), precedence=Precedence.PRIORITY)  # no cap
    for desk in d.values():
        await desk.aclose()


async def test_a_rejection_for_a_lost_prekey_is_cured_by_an_automatic_resend(relay):
    d = await desks(relay)
    delhi, isb = d["delhi"], d["islamabad"]
    sent = await delhi.send(["islamabad"], "FLASH: confirm receipt", precedence=Precedence.FLASH)
    # Islamabad rotates its prekey and erases the old secret before it reads the message.
    old = list(isb.keys.prekeys)
    fresh = isb.keys.new_prekey(isb.rng, isb.clock())
    await isb._call("POST", "/prekeys", json_body={"prekeys": [fresh.to_json()]})
    for prekey_id in old:
        isb.keys.erase_prekey(prekey_id)
    first = await isb.sync()
    assert of(first, MessageReceived) == []
    events = await delhi.sync()  # the rejection arrives; the resend goes out by itself
    [rejected] = [e for e in of(events, ReceiptReceived) if e.kind is ReceiptKind.REJECTED]
    assert rejected.reason == "unknown_key"
    resends = hotline_state_resends(delhi, sent.message_id)
    assert len(resends) == 1
    second = await isb.sync()
    [msg] = of(second, MessageReceived)
    assert msg.text == "FLASH: confirm receipt" and msg.message_id == resends[0]
    assert of(second, GapAlarm) == []  # it took the original's place in the stream
    await isb.acknowledge(msg.message_id)
    await delhi.sync()
    local = delhi.watch.ladder(sent.message_id)
    step = local.device("islamabad/laptop")
    assert step.reason == "unknown_key" and step.resends == tuple(resends)
    assert step.delivered_at_ms is not None and step.acknowledged_at_ms is not None
    assert local.desk("islamabad").state is DeskState.ACKNOWLEDGED
    remote = await delhi.watch.relay_ladder(sent.message_id)
    assert remote.desk("islamabad").state is DeskState.ACKNOWLEDGED
    for desk in d.values():
        await desk.aclose()


def hotline_state_resends(desk: DeskClient, message_id: str) -> list[str]:
    return list(desk.state.sent[message_id].get("resends", {}).get("islamabad/laptop", []))


async def test_link_tests_crisis_acts_and_the_banner(relay):
    d = await desks(relay)
    delhi, isb, excon = d["delhi"], d["islamabad"], d["excon"]
    assert await delhi.watch.link_tests_due() == ["islamabad"]
    await delhi.watch.send_link_test("islamabad")
    [test] = of(await isb.sync(), MessageReceived)
    assert test.intent is Intent.LINK_TEST  # answered by the delivered receipt already sent
    view = await delhi.watch.link()
    [direction] = view["directions"]
    assert (direction["from"], direction["to"], direction["state"]) == ("delhi", "islamabad", "up")
    assert await delhi.watch.link_tests_due() == []  # tested within the hour
    assert await excon.watch.link_tests_due() == []  # a controller does not test by default

    assert banner(isb.state) is None
    await delhi.watch.declare_crisis("Reports of a missile launch")
    assert banner(delhi.state) is not None
    [notice] = of(await isb.sync(), NoticeReceived)
    assert (notice.kind, notice.by, notice.fields["on"]) == ("crisis", "delhi/laptop", True)
    text = banner(isb.state)
    assert text is not None and "delhi/laptop" in text and "missile" in text
    # In crisis mode link tests run every minute: islamabad's first is due, and delhi's comes due soon.
    assert await isb.watch.link_tests_due() == ["delhi"]
    advance(relay, 61)
    assert await delhi.watch.link_tests_due() == ["islamabad"]

    stop = asyncio.Event()
    sent: list[tuple[str, str]] = []
    runner = asyncio.create_task(
        isb.watch.run_link_tests(stop, poll_s=0.05, on_sent=lambda to, m: sent.append((to, m)))
    )
    for _ in range(100):
        if sent:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    assert [to for to, _ in sent] == ["delhi"]

    await excon.watch.stand_down("De-escalated")
    events = of(await delhi.sync(), NoticeReceived)
    assert [e.fields["on"] for e in events if e.kind == "crisis"] == [
        True,
        False,
    ]  # its own act, then excon's
    assert banner(delhi.state) is None
    for desk in d.values():
        await desk.aclose()


async def test_escalation_and_withdrawal_notices_reach_the_desks(relay):
    d = await desks(relay)
    delhi, isb = d["delhi"], d["islamabad"]
    sent = await delhi.send(["islamabad"], "FLASH", precedence=Precedence.FLASH)
    advance(relay, 61)
    sweep(relay)
    [escalation] = [n for n in of(await delhi.sync(), NoticeReceived) if n.kind == "escalation"]
    assert escalation.fields["message_id"] == sent.message_id
    assert escalation.fields["reason"] == "delivery_overdue"
    assert hotline_state(delhi.state)["escalations"][-1]["message_id"] == sent.message_id
    events = await isb.sync()
    assert [n.kind for n in of(events, NoticeReceived)] == ["escalation"]  # the re-alert
    await delhi.watch.withdraw(sent.message_id, "overtaken by events")
    [withdrawn] = of(await isb.sync(), NoticeReceived)
    assert (withdrawn.kind, withdrawn.by) == ("withdrawn", "delhi/laptop")
    assert isb.state.received[sent.message_id]["withdrawn_at_ms"] == withdrawn.at_ms
    assert delhi.watch.ladder(sent.message_id).desk("islamabad").state is DeskState.WITHDRAWN
    for desk in d.values():
        await desk.aclose()


async def test_a_desk_answers_the_checkins_it_owes(relay):
    from tests.relay.hotline_support import relay_now

    now = relay_now(relay)
    due = (now // 60_000 + 2) * 60_000
    minutes = (due // 60_000) % 1440
    policy = {"checkins": [{"id": "korea", "times": [f"{minutes // 60:02d}:{minutes % 60:02d}"]}]}
    d = await desks(relay, policy=policy)
    advance(relay, (due - now) / 1000 + 1)
    sweep(relay)
    [due_notice] = [n for n in of(await d["islamabad"].sync(), NoticeReceived) if n.kind == "checkin-due"]
    assert due_notice.fields["checkin"] == f"korea@{due}"
    answers = await d["islamabad"].watch.answer_checkin(text="Islamabad here")
    assert [a["checkin"] for a in answers] == [f"korea@{due}"]
    assert await d["islamabad"].watch.answer_checkin() == []  # nothing owed any more
    view = await d["delhi"].watch.checkins()
    states = {x["desk"]: x["state"] for x in view["checkins"][0]["desks"]}
    assert states == {"delhi": "due", "islamabad": "answered"}
    for desk in d.values():
        await desk.aclose()
