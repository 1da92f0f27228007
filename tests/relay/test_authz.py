"""The authorization matrix: every channel endpoint × every role, a non-member, a revoked device, no token.

Expired tokens are covered in test_limits.py (a relay with a one-second token lifetime).
One channel serves the whole module: members ``p`` (principal), ``f`` (facilitator), ``c``
(controller), ``o`` (operator) and ``r`` (principal whose device gets revoked); ``n`` is a member of
another channel. Message ``M`` goes from ``c`` to ``p`` and ``f``; message ``M2`` from ``p`` to ``c``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from hotline.protocol import Envelope
from tests.relay.support import Desk, error_code, now_ms, recv_frame, setup_channel

ROLES = {"p": "principal", "f": "facilitator", "c": "controller", "o": "operator", "r": "principal"}
ACTORS = [
    "principal",
    "facilitator",
    "controller",
    "operator",
    "non_member",
    "revoked",
    "no_token",
    "bad_token",
]
ACTOR_MEMBER = {"principal": "p", "facilitator": "f", "controller": "c", "operator": "o"}


@dataclass
class World:
    channel: str
    desks: dict[str, Desk]
    outsider: Desk
    m: Envelope
    m2: Envelope

    def actor(self, name: str) -> tuple[Desk, str | None]:
        """The desk whose keys build the body, and the token to present."""
        if name in ACTOR_MEMBER:
            desk = self.desks[ACTOR_MEMBER[name]]
            return desk, desk.token
        if name == "non_member":
            return self.outsider, self.outsider.token
        if name == "revoked":
            return self.desks["r"], self.desks["r"].token
        return self.desks["p"], None if name == "no_token" else "not-a-real-token"


@pytest.fixture(scope="module")
def world(relay) -> World:
    channel, desks = setup_channel(relay, ROLES)
    _, others = setup_channel(relay, {"n": "principal"})
    r = relay.admin.post(f"/v1/admin/channels/{channel}/devices/r/laptop/revoke")
    assert r.status_code == 200
    m, _ = desks["c"].send_text(["p", "f"], "M")
    m2, _ = desks["p"].send_text(["c"], "M2")
    return World(channel, desks, others["n"], m, m2)


def _prekeys(w: World, desk: Desk) -> dict[str, Any]:
    return {"prekeys": [desk.keys.new_prekey(os.urandom, now_ms()).to_json()]}


def _envelope(w: World, desk: Desk) -> dict[str, Any]:
    to = ["p"] if desk.member == "c" else ["c"]
    return desk.seal(to, "matrix").to_json()


def _receipt(w: World, desk: Desk) -> dict[str, Any]:
    return {"receipt": desk.receipt(w.m).to_json()}


OK, FORBIDDEN, NOT_FOUND = (200, None), (403, "forbidden"), (404, "not_found")
ALL_ROLES_OK = {a: OK for a in ACTOR_MEMBER}

# endpoint -> (method, path suffix, body builder, expected per role actor)
ENDPOINTS: dict[str, tuple[str, str, Any, dict[str, tuple[int, str | None]]]] = {
    "directory": ("GET", "/directory", None, ALL_ROLES_OK),
    "prekeys": (
        "POST",
        "/prekeys",
        _prekeys,
        {"principal": OK, "facilitator": OK, "controller": OK, "operator": FORBIDDEN},
    ),
    "revoke-device": (
        "POST",
        "/devices/p/spare/revoke",
        None,
        {"principal": NOT_FOUND, "facilitator": FORBIDDEN, "controller": FORBIDDEN, "operator": FORBIDDEN},
    ),
    "send-envelope": (
        "POST",
        "/envelopes",
        _envelope,
        {
            "principal": (201, None),
            "facilitator": (201, None),
            "controller": (201, None),
            "operator": FORBIDDEN,
        },
    ),
    "get-envelope-addressed": (
        "GET",
        "/envelopes/{m}",
        None,
        {"principal": OK, "facilitator": OK, "controller": OK, "operator": FORBIDDEN},
    ),
    "get-envelope-not-addressed": (
        "GET",
        "/envelopes/{m2}",
        None,
        {"principal": OK, "facilitator": NOT_FOUND, "controller": OK, "operator": FORBIDDEN},
    ),
    "post-receipt": (
        "POST",
        "/receipts",
        _receipt,
        {
            "principal": (201, None),
            "facilitator": (201, None),
            "controller": FORBIDDEN,
            "operator": FORBIDDEN,
        },
    ),
    "inbox": ("GET", "/inbox", None, ALL_ROLES_OK),
    "ack": ("POST", "/inbox/ack", lambda w, d: {"ids": []}, ALL_ROLES_OK),
    "message-receipts": (
        "GET",
        "/messages/{m}/receipts",
        None,
        {"principal": NOT_FOUND, "facilitator": NOT_FOUND, "controller": OK, "operator": FORBIDDEN},
    ),
}

EVERYONE_ELSE = {
    "non_member": (403, "not_a_member"),
    "revoked": (403, "device_revoked"),
    "no_token": (401, "unauthorized"),
    "bad_token": (401, "unauthorized"),
}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_channel_endpoint_authorization(relay, world, endpoint, actor):
    method, suffix, build, expected_by_role = ENDPOINTS[endpoint]
    expected = {**expected_by_role, **EVERYONE_ELSE}[actor]
    desk, token = world.actor(actor)
    path = f"/v1/channels/{world.channel}" + suffix.format(
        m=world.m.header.message_id, m2=world.m2.header.message_id
    )
    # Refused callers are refused before their body is read: any body will do.
    body = (build(world, desk) if actor in ACTOR_MEMBER else {}) if build else None
    with relay.client(token) as client:
        r = client.request(method, path, json=body)
    assert r.status_code == expected[0], r.text
    if expected[1] is not None:
        assert error_code(r) == expected[1]


ADMIN_ENDPOINTS = [
    (
        "POST",
        "/v1/admin/channels",
        {"channel": "x-admin-only", "members": [{"member": "a", "role": "principal"}]},
    ),
    ("GET", "/v1/admin/channels", None),
    ("GET", "/v1/admin/channels/{channel}", None),
    ("POST", "/v1/admin/channels/{channel}/members", {"member": "z", "role": "principal"}),
    ("POST", "/v1/admin/channels/{channel}/invites", {"member": "p"}),
    ("POST", "/v1/admin/channels/{channel}/members/p/revoke", None),
    ("POST", "/v1/admin/channels/{channel}/devices/p/laptop/revoke", None),
    ("GET", "/v1/admin/audit", None),
]


@pytest.mark.parametrize("actor", ["principal", "controller", "operator", "no_token", "bad_token"])
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
def test_admin_endpoints_need_the_admin_token(relay, world, method, path, body, actor):
    _, token = world.actor(actor)
    with relay.client(token) as client:
        r = client.request(method, path.format(channel=world.channel), json=body)
    assert (r.status_code, error_code(r)) == (401, "unauthorized")


def test_the_admin_token_is_not_a_device_token(relay, world):
    with relay.client(relay.admin_token) as client:
        r = client.get(f"/v1/channels/{world.channel}/inbox")
    assert (r.status_code, error_code(r)) == (401, "unauthorized")


@pytest.mark.parametrize(
    ("actor", "close_code", "code"),
    [
        ("principal", None, None),
        ("facilitator", None, None),
        ("controller", None, None),
        ("operator", None, None),
        ("non_member", 4403, "not_a_member"),
        ("revoked", 4403, "device_revoked"),
        ("bad_token", 4401, "unauthorized"),
    ],
)
def test_socket_authorization(relay, world, actor, close_code, code):
    _, token = world.actor(actor)
    url = relay.url.replace("http", "ws", 1) + f"/v1/channels/{world.channel}/socket"
    with ws_connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        frame = recv_frame(ws)
        if close_code is None:
            assert frame == {"type": "ready"}
            return
        assert frame["type"] == "error" and frame["error"]["code"] == code
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == close_code
