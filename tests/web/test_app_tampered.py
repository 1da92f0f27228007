"""A tampered envelope shows as refused, never as a message, and its sender gets a signed `rejected`.

The relay checks every envelope's signature, so a forgery cannot get past it; what can is an envelope the
sender signed whose wrapped key for the browser does not open (a buggy or malicious sender, or damage
before signing). The browser must verify, fail to open, show no content, and answer with a signed
`rejected` receipt naming the reason — and a gap in the sender's numbering must be raised, not hidden.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest

from hotline.protocol.encoding import b64d
from hotline.protocol.model import DeviceAddress
from hotline.protocol.receipts import Receipt
from tests.relay.support import Desk
from tests.web.deskkit import BrowserDesk, eventually, make_channel, save_screenshot

pytestmark = pytest.mark.browser

SECRET = "This text must never appear on the browser's screen."


def test_a_tampered_envelope_is_refused_and_answered_with_a_signed_rejected_receipt(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(web_relay, {"delhi": "principal", "islamabad": "principal"})
    delhi = BrowserDesk.enroll(browser, web_relay.url, invites["delhi"], "browser")
    open_desks.append(delhi)
    islamabad = Desk.enroll(web_relay, invites["islamabad"], device="laptop")
    delhi.wait_live()

    # Islamabad seals and signs an envelope whose wrapped key for the browser is garbage.
    envelope = islamabad.seal(["delhi"], SECRET)
    target = DeviceAddress("delhi", "browser")
    index = [r.address for r in envelope.header.recipients].index(target)
    keys = list(envelope.wrapped_keys)
    keys[index] = os.urandom(len(keys[index]))
    unsigned = replace(envelope, wrapped_keys=tuple(keys), signature=b"")
    tampered = replace(unsigned, signature=islamabad.keys.signing.sign(unsigned.signed_bytes()))
    posted = islamabad.send(tampered)
    assert posted.status_code == 201, posted.text
    message_id = tampered.header.message_id

    card = delhi.card(message_id)
    card.wait_for()
    assert card.get_attribute("data-kind") == "refused"
    text = card.inner_text()
    assert "REFUSED" in text and "decryption_failed" in text and "rejected" in text
    assert SECRET not in delhi.page.inner_text("body")
    assert delhi.page.locator("#messages li[data-kind=received]").count() == 0
    alarm = delhi.page.locator("#alarms li.alarm-rejected")
    alarm.wait_for()
    assert "islamabad/laptop" in alarm.inner_text()

    # The sender receives the browser's signed refusal, with the reason.
    def rejected() -> Receipt | None:
        for item in islamabad.inbox():
            if item["kind"] == "receipt":
                receipt = Receipt.from_json(item["receipt"])
                if receipt.message_id == message_id and receipt.kind.value == "rejected":
                    return receipt
        return None

    receipt = eventually(rejected)
    assert receipt.reason is not None and receipt.reason.value == "decryption_failed"
    assert receipt.envelope_hash == tampered.hash
    receipt.verify(islamabad.signing_key_of(target))

    # Islamabad's next, sound message arrives; the number the refused one used is reported missing.
    islamabad.send_text(["delhi"], "Second message, sealed properly.")
    delhi.wait_received("Second message, sealed properly.")
    gap = delhi.page.locator("#alarms li.alarm-gap")
    gap.wait_for()
    assert "Message 1 from islamabad/laptop is missing" in gap.inner_text()
    state = delhi.state()
    assert state["refused"][message_id]["reason"] == "decryption_failed"
    assert message_id not in state["received"]
    delhi.page.mouse.move(0, 0)
    save_screenshot(delhi.page, "desk-refused")
    assert b64d(state["refused"][message_id]["envelopeHash"], field="hash") == tampered.hash
