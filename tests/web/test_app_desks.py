"""Two browser desks talk through a real relay: enrollment, a FLASH clarification request, an
acknowledgement with a reply, and every step of the ladder on the sender's screen.

Each desk is its own browser context (its own IndexedDB), enrolled by opening the relay's invite link
and choosing a device name; all keys are made in the page, and the relay only ever sees public keys,
envelopes and receipts.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.web.deskkit import TIME, BrowserDesk, make_channel, save_screenshot

pytestmark = pytest.mark.browser

QUESTION = (
    "Request clarification: our radars report your fighter squadrons moving towards forward bases "
    "near the Line of Control since 0400Z. Is this an exercise?"
)
ANSWER = "Routine rotation, planned in March. No offensive intent. Aircraft return to home bases by 1800Z."


def test_the_relay_serves_the_client_under_a_strict_policy(web_relay: Any) -> None:
    with httpx.Client(base_url=web_relay.url) as c:
        page = c.get("/")
        module = c.get("/js/app/main.js")
        style = c.get("/css/app.css")
        head = c.head("/")
        misses = [
            c.get(p).status_code
            for p in (
                "/js/",
                "/js/app/",
                "/js/../pyproject.toml",
                "/js/%2e%2e/index.html",
                "/css/.hidden",
                "/img/nothing.svg",
            )
        ]
        post = c.post("/")
        api_miss = c.post("/v1/nothing")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "require-trusted-types-for 'script'" in csp and "trusted-types 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert head.status_code == 200 and head.content == b""
    assert '<script type="module" src="js/app/main.js"></script>' in page.text
    assert "<style" not in page.text and " style=" not in page.text and "onclick" not in page.text
    assert misses == [404] * len(misses)
    assert post.status_code in (404, 405) and api_miss.json()["error"]["code"] == "not_found"


def test_flash_clarification_acknowledged_with_a_reply_shows_every_ladder_step(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    channel, invites = make_channel(web_relay, {"delhi": "principal", "islamabad": "principal"})
    delhi = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "ops-room", screenshot="enroll")
    islamabad = BrowserDesk.enroll(browser, web_relay.url, invites["islamabad"], "pmo")
    open_desks += [delhi, islamabad]
    delhi.wait_live()
    islamabad.wait_live()

    sent_id = delhi.send(QUESTION, precedence="FLASH", intent="clarification_request", to=["islamabad"])
    card = delhi.card(sent_id)
    card.locator("[data-step=accepted]").wait_for()
    assert "log entry #" in card.locator("[data-step=accepted]").inner_text()

    # Islamabad: the FLASH arrives live, with a red banner and a countdown to its deadline.
    got_id = islamabad.wait_received(QUESTION)
    assert got_id == sent_id
    banner = islamabad.page.locator(".banner-flash")
    banner.wait_for()
    assert "Clarification request from delhi/ops-room" in banner.inner_text()
    received = islamabad.card(got_id)
    assert received.locator(".badge-FLASH").inner_text() == "FLASH"
    assert "within" in received.locator("[data-step=acknowledged]").inner_text()
    # Delhi sees the delivery before anyone has acknowledged.
    row = card.locator("[data-recipient='islamabad/pmo']")
    row.locator("[data-step=delivered].done").wait_for()
    assert "due in" in row.locator("[data-step=acknowledged]").inner_text()
    # And it sounds (WebAudio; the enrollment click was the gesture browsers require first).
    assert int(islamabad.page.get_attribute("html", "data-alerts-sounded") or 0) >= 1
    save_screenshot(islamabad.page, "desk-flash-received")

    islamabad.acknowledge(got_id, ANSWER)
    assert islamabad.page.locator(".banner-flash").count() == 0

    # Delhi: accepted, delivered and acknowledged, each with its time; the reply is shown with it.
    row.locator("[data-step=acknowledged].done").wait_for()
    steps = {s: row.locator(f"[data-step={s}]").inner_text() for s in ("delivered", "acknowledged")}
    steps["accepted"] = card.locator("[data-step=accepted]").inner_text()
    for name, text in steps.items():
        assert TIME.search(text), f"{name}: {text!r}"
    assert card.locator("[data-step=rejected]").count() == 0
    row.locator(".reply-line", has_text="Routine rotation").wait_for()
    reply_id = delhi.wait_received(ANSWER)
    reply = delhi.card(reply_id)
    assert "Reply to your FLASH clarification request" in reply.locator(".in-reply").inner_text()
    # The reply is FLASH too and waits for Delhi's acknowledgement.
    delhi.page.locator(".banner-flash", has_text="Reply from islamabad/pmo").wait_for()
    delhi.page.mouse.move(0, 0)
    save_screenshot(delhi.page, "desk")

    # No script in the page can write markup: Trusted Types with no policy make HTML sinks throw.
    sink = "() => { try { document.body.innerHTML = '<b>x</b>'; return 'ok'; } catch (e) { return e.name; } }"
    assert delhi.page.evaluate(sink) == "TypeError"
    delhi.problems[:] = [p for p in delhi.problems if "TrustedHTML" not in p]

    # The same facts are in the profile's saved state, and survive a reload.
    state = delhi.state()
    ladder = state["sent"][sent_id]["recipients"]["islamabad/pmo"]
    assert ladder["delivered"] <= ladder["acknowledged"] and ladder["replyId"] == reply_id
    delhi.page.reload()
    delhi.page.wait_for_selector(
        f"#msg-{sent_id} [data-recipient='islamabad/pmo'] [data-step=acknowledged].done"
    )
    assert channel in delhi.page.inner_text("#identity")


def test_several_profiles_in_one_browser_and_the_picker(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(web_relay, {"delhi": "principal", "washington": "facilitator"})
    desk = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "laptop")
    open_desks.append(desk)
    page = desk.page
    # A second desk in the same browser profile: paste its invite in the picker.
    page.click("#profiles-link")
    page.wait_for_selector("#profile-list li")
    page.fill("#invite-link", invites["washington"]["url"])
    page.press("#invite-link", "Enter")
    page.wait_for_selector("#enroll-button:not([disabled])")
    page.fill("#device-name", "laptop")
    page.press("#device-name", "Enter")
    page.wait_for_selector("#compose-form")
    assert "washington/laptop" in page.inner_text("#identity")
    page.click("#profiles-link")
    page.wait_for_selector("#profile-list li:nth-child(2)")
    names = page.locator("#profile-list strong").all_inner_texts()
    assert names == ["delhi/laptop", "washington/laptop"]
    page.locator("#profile-list li", has_text="delhi/laptop").get_by_role("button", name="Open").click()
    page.wait_for_selector("#identity:has-text('delhi/laptop')")


def test_a_message_sealed_while_the_relay_is_unreachable_is_kept_and_sent_later(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(web_relay, {"delhi": "principal", "islamabad": "principal"})
    islamabad = BrowserDesk.enroll(browser, web_relay.url, invites["islamabad"], "pmo")
    delhi = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "ops-room")
    open_desks += [islamabad, delhi]
    delhi.wait_live()
    page = delhi.page
    page.route("**/v1/channels/*/envelopes", lambda route: route.abort())
    page.fill("#message-text", "Sent while the line to the relay is cut.")
    page.click("#send-button")
    page.wait_for_selector("#compose-status:has-text('kept in the outbox')")
    pending = page.locator("#messages li[data-kind=sent] [data-step=outbox]")
    pending.wait_for()
    assert page.inner_text("#count-outbox") == "1"
    delhi.problems.clear()  # the aborted requests were this test's doing
    page.unroute("**/v1/channels/*/envelopes")
    page.locator("#messages li[data-kind=sent] [data-step=accepted]").wait_for()
    assert page.inner_text("#count-outbox") == "0"
    islamabad.wait_received("Sent while the line to the relay is cut.")
