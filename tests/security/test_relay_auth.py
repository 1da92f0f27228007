"""Tokens, challenges and identities at the relay: what an attacker replays or forges is refused.

The full endpoint × role matrix (with a revoked device, a non-member, no and bad tokens) is in
tests/relay/test_authz.py, and expired tokens in tests/relay/test_limits.py; this module covers
replays, forged senders and signatures, and the revoked device's traffic.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from websockets.exceptions import ConnectionClosed

from hotline.protocol import DeviceKeys
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.receipts import ReceiptKind, issue_device_receipt
from hotline.protocol.statements import sign_auth_challenge
from tests.relay.support import Desk, error_code, now_ms, recv_frame, setup_channel


@pytest.fixture(scope="module")
def relay(relay_factory):
    return relay_factory("sqlite", challenge_ttl_s=1)


def who(desk: Desk) -> dict[str, str]:
    return {"channel": desk.channel, "member": desk.member, "device": desk.address.device}


def challenge(relay, desk: Desk) -> bytes:
    with relay.client() as c:
        r = c.post("/v1/auth/challenge", json=who(desk))
    assert r.status_code == 200, r.text
    return b64d(r.json()["challenge"], field="challenge")


def token_request(relay, desk: Desk, raw: bytes, signer=None, relay_id=None):
    sig = sign_auth_challenge(
        (signer or desk.keys).signing, relay_id or relay.info()["relay_id"], raw, desk.address
    )
    with relay.client() as c:
        return c.post("/v1/auth/token", json={**who(desk), "challenge": b64e(raw), "signature": b64e(sig)})


def test_a_challenge_works_once_even_after_a_failed_attempt(relay):
    _, desks = setup_channel(relay, {"delhi": "principal"})
    delhi = desks["delhi"]
    raw = challenge(relay, delhi)
    assert token_request(relay, delhi, raw).status_code == 200
    r = token_request(relay, delhi, raw)
    assert (r.status_code, error_code(r)) == (401, "challenge_invalid")
    # A bad proof consumes the challenge too: no retrying a guess against one challenge.
    raw = challenge(relay, delhi)
    impostor = DeviceKeys.generate(delhi.address, os.urandom, now_ms())
    r = token_request(relay, delhi, raw, signer=impostor)
    assert (r.status_code, error_code(r)) == (400, "bad_signature")
    r = token_request(relay, delhi, raw)
    assert (r.status_code, error_code(r)) == (401, "challenge_invalid")


def test_an_expired_challenge_is_refused(relay):
    _, desks = setup_channel(relay, {"delhi": "principal"})
    raw = challenge(relay, desks["delhi"])
    time.sleep(1.2)
    r = token_request(relay, desks["delhi"], raw)
    assert (r.status_code, error_code(r)) == (401, "challenge_invalid")


def test_a_proof_for_another_relay_or_another_device_is_refused(relay):
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    r = token_request(relay, delhi, challenge(relay, delhi), relay_id="hotline-relay:" + "f" * 32)
    assert (r.status_code, error_code(r)) == (400, "bad_signature")
    # Islamabad's key signing a proof for Delhi's device: refused.
    r = token_request(relay, delhi, challenge(relay, delhi), signer=isb.keys)
    assert (r.status_code, error_code(r)) == (400, "bad_signature")


def test_a_revoked_devices_token_is_dead_at_once_everywhere(relay):
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"}, {"delhi": ["phone"]})
    laptop, phone = desks["delhi"], desks["delhi/phone"]
    ws = phone.socket()
    sealed_before = phone.seal(["islamabad"], "sealed before the revocation")
    # The member revokes its lost phone from its laptop.
    assert laptop.post("/devices/delhi/phone/revoke").status_code == 200
    frame = recv_frame(ws, timeout=5)
    assert frame["type"] == "error" and frame["error"]["code"] == "device_revoked"
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    assert ws.close_code == 4403
    for r in (phone.get("/directory"), phone.send(sealed_before), phone.get("/inbox")):
        assert (r.status_code, error_code(r)) == (403, "device_revoked"), r.text
    with relay.client() as c:
        r = c.post("/v1/auth/challenge", json=who(phone))
    assert (r.status_code, error_code(r)) == (403, "device_revoked")
    # Its old socket token cannot open a new socket either.
    url = relay.url.replace("http", "ws", 1) + phone.path("/socket")
    from websockets.sync.client import connect

    with connect(url, open_timeout=10) as again:
        again.send(json.dumps({"type": "auth", "token": phone.token}))
        assert recv_frame(again)["error"]["code"] == "device_revoked"
    # The member's other device is untouched, and the revoked one is no longer a recipient.
    assert laptop.get("/directory").status_code == 200
    envelope, _ = desks["islamabad"].send_text(["delhi"], "after the revocation")
    assert "delhi/phone" not in [str(r.address) for r in envelope.header.recipients]


def test_forged_senders_and_signatures_are_refused(relay):
    _, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal", "dc": "principal"})
    delhi, isb, dc = desks["delhi"], desks["islamabad"], desks["dc"]
    # dc's token, an envelope naming delhi as its sender (sealed with delhi's real keys even).
    r = dc.send(delhi.seal(["islamabad"], "we attack at dawn"))
    assert (r.status_code, error_code(r)) == (403, "sender_mismatch")
    # delhi's token, an envelope in delhi's name signed by a key that is not delhi's.
    impostor = Desk(
        relay, delhi.channel, DeviceKeys.generate(delhi.address, os.urandom, now_ms()), "principal"
    )
    impostor.token = delhi.token
    r = delhi.send(impostor.seal(["islamabad"], "forged", recipients=delhi.recipients(["islamabad"])))
    assert (r.status_code, error_code(r)) == (400, "bad_signature")
    # Receipts: a delivered receipt in islamabad's name, posted by dc, or signed by dc's key.
    envelope, _ = delhi.send_text(["islamabad"], "real")
    forged = issue_device_receipt(
        dc.keys.signing, isb.address, ReceiptKind.DELIVERED, channel=delhi.channel,
        message_id=envelope.header.message_id, envelope_hash=envelope.hash, at_ms=now_ms(),
    )  # fmt: skip
    r = dc.send_receipt(forged)
    assert (r.status_code, error_code(r)) == (403, "sender_mismatch")
    r = isb.send_receipt(forged)
    assert (r.status_code, error_code(r)) == (400, "bad_signature")


def test_tokens_do_not_cross_channels_or_roles(relay):
    channel_a, a = setup_channel(relay, {"delhi": "principal"})
    _, b = setup_channel(relay, {"delhi": "principal"})
    r = b["delhi"].http.get(f"/v1/channels/{channel_a}/directory")
    assert (r.status_code, error_code(r)) == (403, "not_a_member")
    # A device token is not an admin token, and the admin token is not a device token.
    r = a["delhi"].http.get("/v1/admin/channels")
    assert (r.status_code, error_code(r)) == (401, "unauthorized")
    r = relay.admin.get(f"/v1/channels/{channel_a}/directory")
    assert (r.status_code, error_code(r)) == (401, "unauthorized")
