"""Contacts: safety numbers compared out of band, verification, and a loud key change that blocks sending.

Keys are pinned on first use. When a desk's keys change afterwards (here: Islamabad adds a device), the
browser says so in plain words, marks the contact unverified and refuses to send to it until a person
compares the safety number — computed independently here by the Python core — or accepts the change.
"""

from __future__ import annotations

from typing import Any

import pytest

from hotline.protocol.encoding import b64d
from hotline.protocol.fingerprints import fingerprint, safety_number
from tests.relay.support import Desk
from tests.web.deskkit import BrowserDesk, make_channel, save_screenshot

pytestmark = pytest.mark.browser


def _keys(directory: dict[str, Any], member: str) -> list[bytes]:
    (m,) = [m for m in directory["members"] if m["member"] == member]
    return [b64d(d["signing_key"], field="k") for d in m["devices"] if d["status"] == "active"]


def test_key_change_warns_blocks_sending_and_clears_after_comparing_safety_numbers(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    channel, invites = make_channel(web_relay, {"delhi": "principal", "islamabad": "principal"})
    islamabad = Desk.enroll(web_relay, invites["islamabad"], device="laptop")
    delhi = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "browser")
    open_desks.append(delhi)
    delhi.wait_live()
    page = delhi.page

    # First use: pinned, not verified; the safety number matches Python's.
    delhi.view("contacts")
    card = page.locator("section.contact[data-member=islamabad]")
    card.wait_for()
    directory = islamabad.directory()
    expected = safety_number("delhi", _keys(directory, "delhi"), "islamabad", _keys(directory, "islamabad"))
    shown = card.locator("[data-safety-number]").inner_text().replace("\n", " ")
    assert shown == expected
    assert card.locator(".trust").inner_text() == "Not verified"
    assert fingerprint(islamabad.keys.signing_public_key) in card.inner_text()
    assert page.inner_text("#my-fingerprint") == fingerprint(_keys(directory, "delhi")[0])

    # A wrong number is refused.
    card.locator("input").fill("12345 " * 12)
    card.get_by_role("button", name="Mark verified").click()
    card.locator(".form-status.error", has_text="MISMATCH").wait_for()

    # Islamabad enrolls another device: a loud warning, and sending to Islamabad is blocked.
    Desk.enroll(web_relay, web_relay.invite(channel, "islamabad"), device="phone")
    banner = page.locator(".banner[data-level=danger]", has_text="KEY CHANGE")
    banner.wait_for()
    changed = page.locator("section.contact[data-member=islamabad]")
    changed.locator(".trust-changed").wait_for()
    assert "Sending to islamabad is blocked" in changed.locator(".warning-box").inner_text()
    assert "islamabad has a new device (phone)" in page.inner_text("#key-events")
    save_screenshot(page, "contacts-key-change", full_page=True)
    delhi.view("desk")
    page.wait_for_selector("#send-blocked:not([hidden])")
    assert page.locator("#send-button").is_disabled()

    # Reading the new safety number over the phone and typing it clears the block.
    directory = islamabad.directory()
    new_number = safety_number("delhi", _keys(directory, "delhi"), "islamabad", _keys(directory, "islamabad"))
    assert new_number != expected
    delhi.view("contacts")
    changed = page.locator("section.contact[data-member=islamabad]")
    changed.locator("input").fill(new_number.replace(" ", "-"))
    changed.get_by_role("button", name="Mark verified").click()
    page.locator("section.contact[data-member=islamabad] .trust-verified").wait_for()
    assert page.locator(".banner", has_text="KEY CHANGE").count() == 0
    delhi.view("desk")
    sent = delhi.send("Verified by phone at 0915Z.", to=["islamabad"])
    rows = delhi.card(sent).locator(".ladder-row")
    rows.first.wait_for()
    assert sorted(rows.evaluate_all("els => els.map(e => e.dataset.recipient)")) == [
        "islamabad/laptop",
        "islamabad/phone",
    ]
