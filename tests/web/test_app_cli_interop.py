"""A browser desk and a command-line desk exchange messages both ways through a real relay.

The CLI is the real ``hotline`` command in a subprocess with its own HOTLINE_HOME; the browser is the
web client served by the relay. Each reads, verifies and acknowledges what the other sealed and signed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.deskkit import TIME, BrowserDesk, CliDesk, eventually, make_channel

pytestmark = pytest.mark.browser

TO_CLI = "Reassurance: the naval exercise in the Arabian Sea ends at 1200Z today. No live firing."
CLI_REPLY = "Noted. Thank you for the early word."
TO_BROWSER = "Request clarification: reports of a missile launch from a site near Sonmiani at 0710Z."
BROWSER_REPLY = "A scheduled test, notified on 3 May. Impact area at sea, as notified."


def test_browser_and_cli_desks_exchange_both_ways(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk], tmp_path: Path
) -> None:
    _, invites = make_channel(web_relay, {"delhi": "principal", "islamabad": "principal"})
    delhi = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "browser")
    open_desks.append(delhi)
    cli = CliDesk(tmp_path / "home", web_relay.url)
    enrolled = cli("enroll", invites["islamabad"]["url"], "--device", "terminal")
    assert (enrolled["member"], enrolled["device"]) == ("islamabad", "terminal")
    delhi.wait_live()

    # Browser → CLI, acknowledged with a reply from the terminal.
    sent_id = delhi.send(TO_CLI, precedence="IMMEDIATE", intent="reassurance", to=["islamabad"])
    inbox = eventually(lambda: [m for m in cli("inbox")["messages"] if m["message_id"] == sent_id])
    (message,) = inbox
    assert message["text"] == TO_CLI
    assert (message["precedence"], message["intent"]) == ("IMMEDIATE", "reassurance")
    assert message["sender"] == {"member": "delhi", "device": "browser"}
    acked = cli("ack", sent_id, "--reply", CLI_REPLY)
    assert acked["reply_id"]
    row = delhi.card(sent_id).locator("[data-recipient='islamabad/terminal']")
    row.locator("[data-step=acknowledged].done").wait_for()
    assert TIME.search(row.locator("[data-step=delivered]").inner_text())
    reply_id = delhi.wait_received(CLI_REPLY)
    assert reply_id == acked["reply_id"]

    # CLI → browser, acknowledged with a reply in the browser.
    cli_sent = cli("send", "--to", "delhi", "--precedence", "FLASH", "--intent", "clarification", TO_BROWSER)
    got = delhi.wait_received(TO_BROWSER)
    assert got == cli_sent["message_id"]
    delhi.acknowledge(got, BROWSER_REPLY)
    status = eventually(
        lambda: (
            (s := cli("status")["sent"][got]["recipients"].get("delhi/browser", {})).get("acknowledged") and s
        )
    )
    assert status["delivered"] <= status["acknowledged"] and status["reply_id"]
    messages = eventually(
        lambda: [m for m in cli("inbox", "--all")["messages"] if m["text"] == BROWSER_REPLY]
    )
    assert messages[0]["in_reply_to"] == got and messages[0]["intent"] == "ack_reply"
