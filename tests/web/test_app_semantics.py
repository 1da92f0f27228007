"""Deadlines, escalations and crisis mode as the browser desk shows them, against a real relay.

The relay runs with its adjustable test clock: moving it past a FLASH message's acknowledgement deadline
and sweeping its timers makes it sign an escalation notice, which the browser verifies with the pinned
relay key and shows as an alarm. Crisis mode is declared and stood down from the browser with signed
acts; every desk sees the banner, and the compose form shows the crisis deadlines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from hotline.protocol.receipts import ReceiptKind
from tests.relay.support import Desk, message_id
from tests.web.conftest import start_web_relay
from tests.web.deskkit import BrowserDesk, eventually, make_channel, save_screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def clock_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A relay of its own whose clock the test moves forward. Acts (crisis declarations) are dated by
    the browser's clock, which stays behind, so the relay accepts acts up to a day off."""
    relay = start_web_relay(tmp_path_factory, test_clock="true", act_max_skew_s="86400")
    try:
        yield relay
    finally:
        relay.stop()


FLASH_TEXT = "Request clarification: air-defence radars near Sialkot switched to active mode at 0612Z."


def test_a_missed_flash_deadline_escalates_and_crisis_mode_is_declared_and_stood_down(
    browser: Any, clock_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    web_relay = clock_relay
    channel, invites = make_channel(web_relay, {"delhi": "principal", "islamabad": "principal"})
    delhi = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "browser")
    open_desks.append(delhi)
    islamabad = Desk.enroll(web_relay, invites["islamabad"], device="pmo")
    delhi.wait_live()
    page = delhi.page
    page.wait_for_selector("[data-precedence-hint=FLASH]:has-text('10 min')")

    sent = delhi.send(FLASH_TEXT, precedence="FLASH", intent="clarification_request", to=["islamabad"])
    # Islamabad's device receives it and says so, but nobody acknowledges.
    item = eventually(
        lambda: [i for i in islamabad.inbox() if i["kind"] == "envelope" and message_id(i) == sent]
    )[0]
    from hotline.protocol.envelope import Envelope

    envelope = Envelope.from_json(item["envelope"])
    assert islamabad.open(item) == FLASH_TEXT
    assert islamabad.send_receipt(islamabad.receipt(envelope, ReceiptKind.DELIVERED)).status_code == 201
    delhi.card(sent).locator("[data-step=delivered].done").wait_for()

    # Eleven minutes later (on the relay's clock) the relay escalates; the browser shows its signed notice.
    admin = web_relay.admin
    assert admin.post("/v1/admin/test/clock", json={"advance_ms": 11 * 60_000}).status_code == 200
    assert admin.post("/v1/admin/test/sweep").status_code == 200
    # The browser's clock follows the relay's, so the desk's own countdown has run out too.
    page.clock.set_system_time(admin.get("/v1/admin/test/clock").json()["now_ms"] / 1000)
    escalation = page.locator(".banner", has_text="ESCALATION")
    escalation.wait_for()
    assert "islamabad has not acknowledged delhi's FLASH message" in escalation.inner_text()
    assert "signed by the relay" in escalation.inner_text()
    state = delhi.state()
    notice = next(n for n in state["notices"] if n["kind"] == "escalation")
    assert notice["fields"]["message_id"] == sent and notice["fields"]["reason"] == "ack_overdue"

    # Delhi declares crisis mode with a signed act: every desk is told, deadlines tighten.
    page.fill("#crisis-reason", "No answer to a FLASH clarification request for 11 minutes.")
    page.click("#crisis-button")
    crisis = page.locator(".banner[data-level=crisis]")
    crisis.wait_for()
    assert "CRISIS MODE" in crisis.inner_text() and "delhi/browser" in crisis.inner_text()
    page.wait_for_selector("[data-precedence-hint=FLASH]:has-text('5 min')")
    # The message sent before the crisis keeps the deadline of the mode it was accepted in (10 min):
    # eleven minutes on, it is overdue by about one minute (by six, had the crisis table been applied).
    ladder = delhi.card(sent).locator("[data-step=acknowledged]").inner_text()
    assert re.search(r"overdue by 1 min \d\d s", ladder), ladder
    assert page.locator(".banner", has_text="NO ACKNOWLEDGEMENT").count() == 1
    with web_relay.client(islamabad.token) as c:
        assert c.get(f"/v1/channels/{channel}/crisis").json()["crisis"]["on"] is True
    kinds = eventually(lambda: [i["kind"] for i in islamabad.inbox() if i["kind"] == "notice"])
    assert "notice" in kinds
    page.mouse.move(0, 0)
    page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
    save_screenshot(page, "desk-crisis-escalation")

    page.click("#crisis-button")  # now "Stand down"
    page.locator(".banner[data-level=crisis]").wait_for(state="detached")
    page.wait_for_selector("#crisis-state:has-text('Off')")
    with web_relay.client(islamabad.token) as c:
        assert c.get(f"/v1/channels/{channel}/crisis").json()["crisis"]["on"] is False


def test_a_scheduled_check_in_is_shown_and_answered_with_a_signed_act(
    browser: Any, clock_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    relay = clock_relay
    channel, invites = make_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi = BrowserDesk.enroll(browser, relay.url, invites["delhi"], "browser")
    open_desks.append(delhi)
    islamabad = Desk.enroll(relay, invites["islamabad"], device="pmo")
    delhi.wait_live()
    admin = relay.admin
    now_ms = admin.get("/v1/admin/test/clock").json()["now_ms"]
    minute = (now_ms // 60_000 + 2) % (24 * 60)  # two minutes ahead on the relay's clock (UTC)
    at = f"{minute // 60:02d}:{minute % 60:02d}"
    policy = {"checkins": [{"id": "dgmo", "times": [at], "answer_within_s": 900}]}
    assert admin.put(f"/v1/admin/channels/{channel}/policy", json=policy).status_code == 200
    assert admin.post("/v1/admin/test/clock", json={"advance_ms": 3 * 60_000}).status_code == 200
    assert admin.post("/v1/admin/test/sweep").status_code == 200

    # The relay's signed check-in notice becomes a banner; one click answers it with a signed act.
    banner = delhi.page.locator(".banner", has_text="CHECK-IN")
    banner.wait_for()
    assert "answer by" in banner.inner_text()
    banner.get_by_role("button", name="Answer check-in").click()
    banner.wait_for(state="detached")

    def answered() -> list[dict[str, Any]]:
        checkins = islamabad.get("/checkins").json()["checkins"]
        return [d for c in checkins for d in c["desks"] if d["desk"] == "delhi" and d["state"] == "answered"]

    assert eventually(answered)


def test_browser_desks_test_the_line_to_each_other_and_show_the_relays_verdict(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(
        web_relay, {"delhi": "principal", "islamabad": "principal", "excon": "controller"}
    )
    excon = Desk.enroll(web_relay, invites["excon"], device="excon")
    delhi = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "browser")
    islamabad = BrowserDesk.enroll(browser, web_relay.url, invites["islamabad"], "browser")
    open_desks += [delhi, islamabad]

    def both_ways_up() -> list[Any]:
        directions = excon.get("/link").json()["directions"]
        up = [(d["from"], d["to"]) for d in directions if d["state"] == "up"]
        return sorted(up) if len(up) == 2 else []

    # Each desk sends a link test when it comes online; the other's device answers it at once.
    assert eventually(both_ways_up, timeout=30, page=delhi.page) == [
        ("delhi", "islamabad"),
        ("islamabad", "delhi"),
    ]
    delhi.page.wait_for_selector("[data-link-test='delhi:islamabad'].link-good", timeout=40_000)
    assert "up" in delhi.page.inner_text("[data-link-test='islamabad:delhi']")
    # Link tests are not conversation: nothing shows there, nothing waits for a person.
    assert delhi.page.locator("#messages li").count() == 0
    assert delhi.page.inner_text("#count-to-ack") == "0"
