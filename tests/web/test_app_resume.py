"""Resuming after a dropped socket: every item the browser did not acknowledge comes again, and the
receiver state machine makes sure it is shown once.

The page's WebSocket is routed through the test (Playwright's route_web_socket): frames pass unchanged,
except that the browser's first acknowledgements are held back and the socket is then cut — exactly what
a crash between saving an item and acknowledging it looks like to the relay.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.relay.support import Desk
from tests.web.deskkit import BrowserDesk, eventually, make_channel

pytestmark = pytest.mark.browser


def test_items_come_again_after_a_cut_and_are_shown_once(
    browser: Any, web_relay: Any, open_desks: list[BrowserDesk]
) -> None:
    _, invites = make_channel(web_relay, {"delhi": "principal", "islamabad": "principal"})
    islamabad = Desk.enroll(web_relay, invites["islamabad"], device="pmo")
    held: list[str] = []
    sockets: list[Any] = []
    items: dict[int, int] = {}  # envelope items the relay sent on each socket (1-based)

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        sockets.append(ws)

        def from_page(message: str | bytes) -> None:
            if isinstance(message, str) and '"ack"' in message and len(sockets) == 1:
                held.append(message)  # the relay never hears of it
            else:
                server.send(message)

        def from_relay(message: str | bytes) -> None:
            if isinstance(message, str) and '"type":"item"' in message and '"kind":"envelope"' in message:
                items[len(sockets)] = items.get(len(sockets), 0) + 1
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_relay)

    desk = BrowserDesk.open(browser, f"{web_relay.url}/#enroll={invites['delhi']['code']}")
    open_desks.append(desk)
    desk.page.route_web_socket("**/socket", route)
    desk.page.wait_for_selector("#enroll-button:not([disabled])")
    desk.page.click("#enroll-button")
    desk.page.wait_for_selector("#compose-form")
    desk.member = "delhi"
    desk.wait_live()

    texts = [f"Message {n} of three, before the cut." for n in (1, 2, 3)]
    for text in texts:
        islamabad.send_text(["delhi"], text)
    for text in texts:
        desk.wait_received(text)
    eventually(lambda: len(held) >= 3, page=desk.page)
    sockets[0].close(code=4000, reason="cut by the test")  # the page reconnects; the relay resends

    eventually(lambda: len(sockets) >= 2, timeout=20, page=desk.page)
    desk.wait_live()
    desk.page.wait_for_timeout(1500)  # time for the resent items to arrive and be dropped
    for text in texts:
        assert desk.page.locator("#messages li[data-kind=received]", has_text=text).count() == 1
    assert desk.page.locator("#messages li[data-kind=received]").count() == 3
    assert desk.page.locator("#alarms li.alarm-replay").count() == 0

    # Acknowledged for real this time: the relay has nothing left for this device.
    def drained() -> bool:
        state = desk.state()
        return not state["receiptOutbox"] and len(held) == 3

    assert eventually(drained, page=desk.page)
    assert len(sockets) == 2
    assert items == {1: 3, 2: 3}  # all three came again on the new socket
