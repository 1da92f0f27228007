"""The operator's view verifies the audit log in the browser; the controller's view is honest.

The operator (a device with the operator role) reads the log's metadata, recomputes the Merkle root and
checks every signature in the page with the relay key pinned at enrollment, and exports JSON Lines that
the Python core verifies independently. A log altered on the way is caught and named.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.merkle import leaf_hash, root_from_leaf_hashes
from hotline.protocol.receipts import ReceiptKind
from hotline.protocol.statements import TreeHead
from tests.relay.support import Desk
from tests.web.deskkit import BrowserDesk, artifacts_dir, eventually, make_channel, save_screenshot

pytestmark = pytest.mark.browser


def _traffic(web_relay: Any, invites: dict[str, Any]) -> tuple[Desk, Desk]:
    """Two desks exchange a few messages with receipts, so the log has something to verify."""
    delhi = Desk.enroll(web_relay, invites["delhi"], device="ops-room")
    islamabad = Desk.enroll(web_relay, invites["islamabad"], device="pmo")
    for text in ("Link check 0900Z.", "Clarification of the 0400Z movements, please."):
        envelope, _ = delhi.send_text(["islamabad"], text)
        for kind in (ReceiptKind.DELIVERED, ReceiptKind.ACKNOWLEDGED):
            assert islamabad.send_receipt(islamabad.receipt(envelope, kind)).status_code == 201
    envelope, _ = islamabad.send_text(["delhi"], "Routine rotation; no offensive intent.")
    assert delhi.send_receipt(delhi.receipt(envelope)).status_code == 201
    return delhi, islamabad


def _newest_head(web_relay: Any, size: int) -> dict[str, Any]:
    def head() -> dict[str, Any] | None:
        with web_relay.client() as c:
            got = c.get("/v1/audit/tree-head").json()
        return got if got["size"] >= size else None

    return eventually(head, timeout=20)


def test_operator_verifies_the_log_in_the_browser_and_exports_it(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    channel, invites = make_channel(
        web_relay,
        {"delhi": "principal", "islamabad": "principal", "auditor": "operator", "excon": "controller"},
    )
    _traffic(web_relay, invites)
    _newest_head(web_relay, web_relay.admin.get("/v1/admin/audit", params={"limit": 1}).json()["size"])
    auditor = BrowserDesk.enroll(browser, web_relay.url, invites["auditor"], "audit-pc")
    open_desks.append(auditor)
    page = auditor.page
    page.wait_for_selector("#tree-head-size")
    page.click("#verify-button")
    result = page.locator(".verify-result.ok")
    result.wait_for()
    text = result.inner_text()
    assert "Log verified." in text and "3 envelope signatures" in text
    assert "5 receipt and act signatures" in text and "3 relay receipts" in text
    counts = page.locator("#desk-counts tbody tr", has_text="delhi").inner_text().split("\t")
    assert counts[2] == "2", counts  # sent
    rows = page.locator("#entries-body tr")
    assert rows.count() > 10 and "envelope-accepted" in page.inner_text("#entries-body")
    assert "Link check" not in page.inner_text("body")  # metadata only
    page.mouse.move(0, 0)
    save_screenshot(page, "operator", full_page=True)

    # The export holds the head and every entry (other channels as hashes); Python checks it alone.
    with page.expect_download() as download:
        page.click("#export-button")
    path = artifacts_dir() / "audit-export.jsonl"
    download.value.save_as(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    relay, head_line, *items = lines
    assert relay["public_key"] == web_relay.info()["public_key"]
    head = TreeHead.from_json(head_line["tree_head"])
    head.verify(b64d(relay["public_key"], field="key"))
    leaves = [
        leaf_hash(b64d(i["entry"], field="e", max_bytes=1 << 20))
        if i["type"] == "entry"
        else b64d(i["leaf_hash"], field="l")
        for i in items
    ]
    assert len(leaves) == head.size and root_from_leaf_hashes(leaves) == head.root
    assert any(
        i["type"] == "entry"
        and json.loads(base64.urlsafe_b64decode(i["entry"] + "==")).get("channel") == channel
        for i in items
    )


def test_a_log_altered_on_the_way_fails_verification(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(
        web_relay, {"delhi": "principal", "islamabad": "principal", "auditor": "operator"}
    )
    _traffic(web_relay, invites)
    _newest_head(web_relay, web_relay.admin.get("/v1/admin/audit", params={"limit": 1}).json()["size"])
    auditor = BrowserDesk.enroll(browser, web_relay.url, invites["auditor"], "audit-pc")
    open_desks.append(auditor)
    page = auditor.page

    def edit_one_entry(route: Any) -> None:
        body = route.fetch().json()
        for item in body["entries"]:
            entry = item.get("entry")
            if entry and b'"envelope-accepted"' in b64d(entry, field="e", max_bytes=1 << 20):
                data = json.loads(b64d(entry, field="e", max_bytes=1 << 20))
                data["precedence"] = "ROUTINE" if data["precedence"] != "ROUTINE" else "FLASH"
                edited = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
                item["entry"] = b64e(edited)
                break
        route.fulfill(json=body)

    page.route("**/audit/entries*", edit_one_entry)
    page.click("#reload-button")
    page.wait_for_timeout(500)
    page.click("#verify-button")
    failed = page.locator(".verify-result.bad")
    failed.wait_for()
    text = failed.inner_text()
    assert "VERIFICATION FAILED" in text
    assert "do not hash to the leaf hash" in text and "signed root" in text


def test_controller_view_shows_no_exercise_when_there_is_none(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(
        web_relay,
        {
            "delhi": "principal",
            "islamabad": "principal",
            "washington": "facilitator",
            "auditor": "operator",
            "excon": "controller",
        },
    )
    for member in ("delhi", "islamabad"):
        Desk.enroll(web_relay, invites[member], device="desk")
    excon = BrowserDesk.enroll(browser, web_relay.url, invites["excon"], "excon-pc")
    open_desks.append(excon)
    page = excon.page
    page.wait_for_selector("#no-exercise")
    assert "No exercise running" in page.inner_text("#no-exercise")
    buttons = page.locator("#exercise-body button")
    assert buttons.count() >= 4 and all(buttons.nth(i).is_disabled() for i in range(buttons.count()))
    roster = page.inner_text("#roster")
    assert "washington" in roster and "none enrolled yet" in roster and "desk" in roster
    page.mouse.move(0, 0)
    save_screenshot(page, "controller")
    # A controller is also a desk: its desk view works.
    excon.view("desk")
    page.wait_for_selector("#compose-form")
