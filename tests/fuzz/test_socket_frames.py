"""Fuzzing the relay's WebSocket: garbage, huge, binary, invalid UTF-8, half-open and malformed frames.

Whatever a client sends, the relay answers with an error frame and a 44xx close (or the WebSocket
layer's own 1002/1007/1009), never a relay fault (1011), and every other socket keeps working: a
canary socket of another device must answer a ping after every case, and /healthz must stay up.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.rawws import BINARY, CLOSE, CONTINUATION, PING, TEXT, RawWebSocket, frame
from tests.relay.support import recv_frame, setup_channel

ALLOWED_CLOSES = {1002, 1007, 1009} | set(range(4400, 4500))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def world(relay_factory):
    relay = relay_factory(
        "sqlite", rate_per_s=10_000, rate_burst=10_000, socket_auth_timeout_s=1, max_sockets_per_device=64
    )
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    canary = desks["islamabad"].socket()
    yield relay, desks, canary
    canary.close()


def socket_url(relay, desk) -> str:
    return relay.url.replace("http", "ws", 1) + desk.path("/socket")


def assert_relay_unharmed(world) -> None:
    relay, _, canary = world
    canary.send(json.dumps({"type": "ping"}))
    assert recv_frame(canary, timeout=5) == {"type": "pong"}
    with relay.client() as c:
        assert c.get("/healthz").status_code == 200


def outcome(ws: RawWebSocket, timeout: float = 5) -> str:
    """'open' if the relay answered and kept the socket, else 'closed <code>' (error frames skipped)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            opcode, payload = ws.recv(max(0.01, deadline - time.monotonic()))
            if opcode == CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                return f"closed {code}"
            if opcode == TEXT:
                body = json.loads(payload)
                if body.get("type") == "error":
                    continue  # the close follows
                return "open"
    except TimeoutError:
        return "open"
    except (ConnectionError, OSError):
        return "closed none"
    return "open"


def authed(world) -> RawWebSocket:
    relay, desks, _ = world
    ws = RawWebSocket(socket_url(relay, desks["delhi"]))
    ws.send_text(json.dumps({"type": "auth", "token": desks["delhi"].token}))
    opcode, payload = ws.recv()
    assert (opcode, json.loads(payload)) == (TEXT, {"type": "ready"})
    return ws


def check_closed_properly(result: str) -> None:
    assert result.startswith("closed"), result
    code = result.split()[1]
    assert code != "1011", "the relay faulted"
    if code != "none":
        assert int(code) in ALLOWED_CLOSES, result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values, after_auth=st.booleans())
def test_any_json_frame_is_answered_or_refused_with_a_44xx_close(world, value, after_auth) -> None:
    relay, desks, _ = world
    ws = authed(world) if after_auth else RawWebSocket(socket_url(relay, desks["delhi"]))
    try:
        ws.send_text(json.dumps(value))
        result = outcome(ws, timeout=2)
        if result != "open":
            check_closed_properly(result)
        else:
            # Only well-formed frames keep a socket open: a ping (answered) or an ack.
            assert after_auth and isinstance(value, dict) and value.get("type") in {"ping", "pong", "ack"}, (
                value
            )
    finally:
        ws.close()
    assert_relay_unharmed(world)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=300), after_auth=st.booleans())
def test_any_bytes_in_a_text_frame_are_refused_cleanly(world, data, after_auth) -> None:
    relay, desks, _ = world
    ws = authed(world) if after_auth else RawWebSocket(socket_url(relay, desks["delhi"]))
    try:
        ws.send_text(data)
        result = outcome(ws, timeout=2)
        if result != "open":
            check_closed_properly(result)
    finally:
        ws.close()
    assert_relay_unharmed(world)


CASES = {
    "binary frame": lambda: frame(BINARY, b'{"type":"ping"}'),
    "invalid utf-8": lambda: frame(TEXT, b'{"type":"ping","x":"\xff\xfe"}'),
    "lone surrogate": lambda: frame(TEXT, b'{"type":"ping","x":"\\ud800"}'),
    "huge frame": lambda: frame(TEXT, b'{"type":"ping","x":"' + b"a" * 70_000 + b'"}'),
    "unmasked frame": lambda: frame(TEXT, b'{"type":"ping"}', mask=False),
    "orphan continuation": lambda: frame(CONTINUATION, b'{"type":"ping"}'),
    "oversized ping": lambda: frame(PING, b"x" * 200),
    "reserved opcode": lambda: frame(0x3, b"x"),
    "ack of 5000 ids": lambda: frame(TEXT, json.dumps({"type": "ack", "ids": list(range(5000))}).encode()),
    "ack of huge ints": lambda: frame(TEXT, b'{"type":"ack","ids":[' + b"9" * 400 + b"]}"),
    "deep nesting": lambda: frame(TEXT, b'{"type":"ack","ids":' + b"[" * 3000 + b"]" * 3000 + b"}"),
}


@pytest.mark.parametrize("after_auth", [False, True], ids=["before-auth", "after-auth"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_frames_close_the_socket_without_harm(world, case, after_auth) -> None:
    relay, desks, _ = world
    ws = authed(world) if after_auth else RawWebSocket(socket_url(relay, desks["delhi"]))
    try:
        ws.send(CASES[case]())
        check_closed_properly(outcome(ws, timeout=5))
    finally:
        ws.close()
    assert_relay_unharmed(world)


def test_a_half_open_frame_holds_nothing_but_its_own_socket(world) -> None:
    """A frame header that promises 60 000 bytes, ten of them sent, then silence."""
    relay, desks, _ = world
    stalled = [RawWebSocket(socket_url(relay, desks["delhi"])) for _ in range(3)]
    stalled.append(authed(world))
    for ws in stalled:
        ws.send(frame(TEXT, b"x" * 10, length=60_000)[:20])
    try:
        for _ in range(3):
            assert_relay_unharmed(world)
        # Before auth, the auth timeout (1 s here) still closes a socket stuck mid-frame.
        for ws in stalled[:3]:
            check_closed_properly(outcome(ws, timeout=5))
    finally:
        for ws in stalled:
            ws.close()
    assert_relay_unharmed(world)


def test_a_client_that_vanishes_mid_frame_leaves_the_relay_unharmed(world) -> None:
    ws = authed(world)
    ws.send(frame(TEXT, b'{"type":"ping"}' * 100)[:300])
    ws.sock.close()
    assert_relay_unharmed(world)
