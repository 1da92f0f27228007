"""Limits that need a relay of their own: expired tokens, per-device rate limits, the socket auth timeout."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.conftest import BACKENDS
from tests.relay.support import error_code, recv_frame, setup_channel


@pytest.fixture(scope="module", params=BACKENDS)
def tight(request, relay_factory):
    """A relay with one-second tokens, a small per-device burst and a one-second socket auth timeout."""
    return relay_factory(request.param, token_ttl_s=1, rate_per_s=1, rate_burst=5, socket_auth_timeout_s=1)


CHANNEL_CALLS = [
    ("GET", "/directory", None),
    ("POST", "/prekeys", {"prekeys": []}),
    ("POST", "/devices/delhi/laptop/revoke", None),
    ("POST", "/envelopes", {}),
    ("GET", "/envelopes/00000000-0000-7000-8000-000000000000", None),
    ("POST", "/receipts", {"receipt": {}}),
    ("GET", "/inbox", None),
    ("POST", "/inbox/ack", {"ids": []}),
    ("GET", "/messages/00000000-0000-7000-8000-000000000000/receipts", None),
]


def test_expired_tokens_are_refused_everywhere(tight):
    _, desks = setup_channel(tight, {"delhi": "principal"})
    delhi = desks["delhi"]
    time.sleep(1.1)
    for method, suffix, body in CHANNEL_CALLS:
        r = delhi.http.request(method, delhi.path(suffix), json=body)
        assert (r.status_code, error_code(r)) == (401, "token_expired"), suffix
    url = tight.url.replace("http", "ws", 1) + delhi.path("/socket")
    with ws_connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "token": delhi.token}))
        assert recv_frame(ws)["error"]["code"] == "token_expired"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 4401
    delhi.login()
    assert delhi.get("/directory").status_code == 200


def test_a_device_over_its_rate_gets_429_with_retry_after(tight):
    _, desks = setup_channel(tight, {"delhi": "principal"})
    delhi = desks["delhi"]
    delhi.login()
    statuses = [delhi.get("/inbox") for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert error_code(limited[0]) == "rate_limited"
    assert int(limited[0].headers["retry-after"]) >= 1


def test_a_socket_without_an_auth_frame_is_closed(tight):
    _, desks = setup_channel(tight, {"delhi": "principal"})
    url = tight.url.replace("http", "ws", 1) + desks["delhi"].path("/socket")
    started = time.monotonic()
    with ws_connect(url, open_timeout=10) as ws:
        frame = recv_frame(ws, timeout=5)
        assert frame["type"] == "error" and frame["error"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 4408
    assert time.monotonic() - started < 4


@pytest.fixture(scope="module", params=BACKENDS)
def narrow(request, relay_factory):
    """A relay that keeps at most three items unacknowledged per socket, for one second."""
    return relay_factory(request.param, socket_max_unacked=3, socket_stall_timeout_s=1)


def test_a_socket_waits_for_acks_and_a_stalled_client_is_cut_off(narrow):
    from tests.relay.support import message_id, recv_items

    _, desks = setup_channel(narrow, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    sent = [delhi.send_text(["islamabad"], f"m{n}")[0].header.message_id for n in range(5)]
    ws = isb.socket()
    first = recv_items(ws, 3)
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.3)  # the window is full: the relay waits
    ws.send(json.dumps({"type": "ack", "ids": [first[0]["id"]]}))
    [fourth] = recv_items(ws, 1)
    # Full again and never acked: after the stall timeout the relay closes rather than wait forever.
    frame = recv_frame(ws, timeout=5)
    assert frame["type"] == "error" and frame["error"]["code"] == "rate_limited"
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    assert ws.close_code == 4429
    ws = isb.socket()
    try:
        again = recv_items(ws, 3)
        assert [message_id(i) for i in again] == [message_id(i) for i in [*first[1:], fourth]]
        ws.send(json.dumps({"type": "ack", "ids": [i["id"] for i in again]}))
        [last] = recv_items(ws, 1)
        assert message_id(last) == sent[4]
    finally:
        ws.close()
