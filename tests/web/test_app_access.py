"""The client explains itself off a secure context, works from the keyboard, is labelled for screen
readers, and fits a phone-sized screen as well as a 1280×800 one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.web.conftest import CHROMIUM, LAUNCH_ARGS
from tests.web.deskkit import PHONE, BrowserDesk, make_channel, save_screenshot

pytestmark = pytest.mark.browser

# Controls without an accessible name, and interactive elements kept out of the keyboard order.
UNLABELLED = """() => {
  const bad = [];
  for (const el of document.querySelectorAll("input, select, textarea, button, a[href]")) {
    if (el.closest("[hidden]") || el.type === "hidden") continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") ||
      el.getAttribute("aria-labelledby") || (el.textContent || "").trim() || el.getAttribute("title");
    if (!named) bad.push(el.outerHTML.slice(0, 120));
    if (el.getAttribute("tabindex") === "-1") bad.push("not focusable: " + el.outerHTML.slice(0, 80));
  }
  return bad;
}"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_plain_http_from_another_host_explains_the_need_for_a_secure_connection(web_relay: Any) -> None:
    from playwright.sync_api import sync_playwright

    port = urlsplit(web_relay.url).port
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*LAUNCH_ARGS, "--host-resolver-rules=MAP hotline.test 127.0.0.1"],
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://hotline.test:{port}/#enroll=abcdefghijklmnopqrstuv")
            page.wait_for_selector("#insecure")
            assert page.evaluate("() => window.isSecureContext") is False
            text = page.inner_text("#insecure")
            assert "secure connection" in text and "https://" in text and "http://hotline.test" in text
            assert page.locator("#enroll-button").count() == 0
            assert not errors
        finally:
            browser.close()


def test_every_view_is_labelled_and_reachable_by_keyboard(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(
        web_relay,
        {"delhi": "principal", "islamabad": "principal", "auditor": "operator", "excon": "controller"},
    )
    excon = BrowserDesk.enroll(browser, web_relay.url, invites["excon"], "excon")
    delhi = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "browser")
    auditor = BrowserDesk.enroll(browser, web_relay.url, invites["auditor"], "audit")
    open_desks += [excon, delhi, auditor]
    for desk, views in (
        (delhi, ["desk", "contacts", "operator"]),
        (excon, ["controller", "desk"]),
        (auditor, ["operator"]),
    ):
        for view in views:
            desk.view(view)
            desk.page.wait_for_timeout(200)
            assert desk.page.evaluate(UNLABELLED) == [], (desk.member, view)
    page = delhi.page
    delhi.view("desk")
    assert page.locator("main#main").count() == 1 and page.locator("nav[aria-label]").count() == 1
    # From a fresh page, the skip link is the first stop and lands in the main region.
    page.reload()
    page.wait_for_selector("#compose-form")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    # Islamabad has no device yet, so it cannot be chosen; the controller can.
    assert page.locator("#to-field input[value=islamabad]").is_disabled()
    page.focus("#to-field input[value=excon]")
    page.keyboard.press("Space")
    # Compose and send without a mouse: type, then Ctrl+Enter.
    page.focus("#message-text")
    page.keyboard.press("Control+A")
    page.keyboard.type("Keyboard-only message: link check 1100Z.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#compose-status:has-text('Sent.')")
    # Views are links: keyboard users switch with Tab and Enter.
    page.focus("#tabs a[data-view=contacts]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#contacts-h")


def test_phone_sized_screen_has_no_sideways_scrolling(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(
        web_relay, {"delhi": "principal", "islamabad": "principal", "auditor": "operator"}
    )
    islamabad = BrowserDesk.enroll(browser, web_relay.url, invites["islamabad"], "desktop")
    phone = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "phone", viewport=PHONE)
    open_desks += [islamabad, phone]
    islamabad.wait_live()
    sent = islamabad.send(
        "Pre-notification: a surface-to-surface missile test, launch window 10–14 May, impact area at sea.",
        precedence="IMMEDIATE",
        intent="free_text",
        to=["delhi"],
    )
    phone.wait_received("Pre-notification")
    phone.page.wait_for_selector(f"#msg-{sent}")
    assert phone.page.evaluate(OVERFLOW) <= 0
    save_screenshot(phone.page, "desk-phone")
    for view in ("contacts", "operator"):
        phone.view(view)
        phone.page.wait_for_timeout(300)
        assert phone.page.evaluate(OVERFLOW) <= 0, view
