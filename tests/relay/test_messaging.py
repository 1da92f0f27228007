"""Store-and-forward: live and offline delivery, resume, idempotency, receipts, ordering, revocation."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from hotline.protocol import Envelope, Precedence
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.receipts import Receipt, ReceiptKind
from tests.relay.support import Desk, error_code, message_id, now_ms, recv_frame, recv_items, setup_channel

TRIO = {"delhi": "principal", "islamabad": "principal", "washington": "facilitator"}


@pytest.fixture
def trio(relay):
    """Delhi (laptop + phone), Islamabad and a Washington facilitator, all enrolled and logged in."""
    _, desks = setup_channel(relay, TRIO, devices={"delhi": ["phone"]})
    return desks


def envelope_items(items):
    return [i for i in items if i["kind"] == "envelope"]


def test_two_desks_and_a_facilitator_exchange_messages_live(trio):
    delhi, phone, isb, wash = trio["delhi"], trio["delhi/phone"], trio["islamabad"], trio["washington"]
    sockets = {name: trio[name].socket() for name in ("delhi", "delhi/phone", "islamabad", "washington")}
    try:
        # Delhi -> Islamabad and Washington: both get it live, and so does Delhi's own phone.
        envelope, _ = delhi.send_text(["islamabad", "washington"], "we are standing down")
        for name, desk in (("islamabad", isb), ("washington", wash), ("delhi/phone", phone)):
            [item] = recv_items(sockets[name], 1)
            assert item["kind"] == "envelope" and message_id(item) == envelope.header.message_id
            assert desk.open(item) == "we are standing down"
        # Islamabad -> Delhi only: the facilitator is not a recipient and sees nothing.
        reply, _ = isb.send_text(["delhi"], "acknowledged; we hold")
        for name in ("delhi", "delhi/phone"):
            [item] = recv_items(sockets[name], 1)
            assert message_id(item) == reply.header.message_id
        sockets["washington"].send(json.dumps({"type": "ping"}))
        assert recv_frame(sockets["washington"]) == {"type": "pong"}  # and not the reply
    finally:
        for ws in sockets.values():
            ws.close()


def test_offline_recipient_pulls_in_precedence_order_and_acks(trio):
    delhi, isb = trio["delhi"], trio["islamabad"]
    routine, _ = delhi.send_text(["islamabad"], "routine", precedence=Precedence.ROUTINE)
    priority, _ = delhi.send_text(["islamabad"], "priority", precedence=Precedence.PRIORITY)
    flash, _ = delhi.send_text(["islamabad"], "flash", precedence=Precedence.FLASH)
    items = envelope_items(isb.inbox())
    assert [message_id(i) for i in items] == [
        flash.header.message_id,
        priority.header.message_id,
        routine.header.message_id,
    ]
    assert [isb.open(i) for i in items] == ["flash", "priority", "routine"]
    assert isb.inbox() == isb.inbox()  # pulling does not consume
    assert isb.ack([i["id"] for i in items]) == 3
    assert isb.ack([i["id"] for i in items]) == 0
    assert envelope_items(isb.inbox()) == []


def test_socket_sends_flash_first_from_a_backlog(trio):
    delhi, isb = trio["delhi"], trio["islamabad"]
    for n in range(3):
        delhi.send_text(["islamabad"], f"routine {n}")
    flash, _ = delhi.send_text(["islamabad"], "flash", precedence=Precedence.FLASH)
    ws = isb.socket()
    try:
        items = recv_items(ws, 4)
        assert message_id(items[0]) == flash.header.message_id
    finally:
        ws.close()


def test_dropped_socket_resends_every_unacked_item(trio):
    delhi, isb = trio["delhi"], trio["islamabad"]
    sent = [delhi.send_text(["islamabad"], f"m{n}")[0].header.message_id for n in range(4)]
    ws = isb.socket()
    first = recv_items(ws, 4)
    assert sorted(message_id(i) for i in first) == sorted(sent)
    ws.send(json.dumps({"type": "ack", "ids": [first[0]["id"], first[1]["id"]]}))
    ws.send(json.dumps({"type": "ping"}))
    assert recv_frame(ws) == {"type": "pong"}  # the ack was processed before the pong
    ws.close()  # dropped without acking the rest
    ws = isb.socket()
    try:
        again = recv_items(ws, 2)
        assert [i["id"] for i in again] == [first[2]["id"], first[3]["id"]]
        ws.send(json.dumps({"type": "ack", "ids": [i["id"] for i in again]}))
        late, _ = delhi.send_text(["islamabad"], "after resume")
        [item] = recv_items(ws, 1)
        assert message_id(item) == late.header.message_id
    finally:
        ws.close()
    assert [message_id(i) for i in envelope_items(isb.inbox())] == [late.header.message_id]


def test_retrying_a_send_returns_the_original_receipt_and_stores_once(trio):
    delhi, isb = trio["delhi"], trio["islamabad"]
    envelope = delhi.seal(["islamabad"], "retry me")
    first = delhi.send(envelope)
    second = delhi.send(envelope)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
    assert first.json()["receipt"] == second.json()["receipt"]
    assert first.json()["log_index"] == second.json()["log_index"]
    assert len(envelope_items(isb.inbox())) == 1


def test_same_message_id_with_another_envelope_is_a_conflict(trio):
    delhi = trio["delhi"]
    envelope = delhi.seal(["islamabad"], "original")
    assert delhi.send(envelope).status_code == 201
    tampered = envelope.to_json()
    body = bytearray(envelope.body)
    body[-1] ^= 1
    tampered["body"] = b64e(bytes(body))
    r = delhi.send(tampered)
    assert (r.status_code, error_code(r)) == (409, "conflict")


def test_relay_accepted_receipt_verifies_and_names_the_log_index(relay, trio):
    delhi = trio["delhi"]
    envelope, answer = delhi.send_text(["islamabad"], "signed receipt please")
    receipt = Receipt.from_json(answer["receipt"])
    receipt.verify(b64d(relay.info()["public_key"], field="public_key"))
    assert receipt.kind is ReceiptKind.RELAY_ACCEPTED
    assert receipt.log_index == answer["log_index"]
    assert receipt.message_id == envelope.header.message_id
    assert receipt.envelope_hash == envelope.hash


def test_device_receipts_travel_back_to_every_device_of_the_sender(trio):
    delhi, phone, isb = trio["delhi"], trio["delhi/phone"], trio["islamabad"]
    envelope, _ = delhi.send_text(["islamabad"], "please confirm")
    ws = delhi.socket()
    try:
        recv_items(ws, 0)
        delivered = isb.receipt(envelope, ReceiptKind.DELIVERED)
        r = isb.send_receipt(delivered)
        assert r.status_code == 201 and r.json()["duplicate"] is False
        again = isb.send_receipt(delivered)
        assert again.status_code == 200 and again.json() == {
            "log_index": r.json()["log_index"],
            "duplicate": True,
        }
        [item] = recv_items(ws, 1)
        assert item["kind"] == "receipt"
        got = Receipt.from_json(item["receipt"])
        got.verify(isb.keys.signing_public_key)
        assert got.hash == delivered.hash
    finally:
        ws.close()
    phone_receipts = [i for i in phone.inbox() if i["kind"] == "receipt"]
    assert [Receipt.from_json(i["receipt"]).hash for i in phone_receipts] == [delivered.hash]
    # A second, different delivered receipt from the same device is refused; acknowledged is new.
    time.sleep(0.002)
    r = isb.send_receipt(isb.receipt(envelope, ReceiptKind.DELIVERED))
    assert (r.status_code, error_code(r)) == (409, "conflict")
    assert isb.send_receipt(isb.receipt(envelope, ReceiptKind.ACKNOWLEDGED)).status_code == 201
    listed = delhi.get(f"/messages/{envelope.header.message_id}/receipts").json()["receipts"]
    kinds = [Receipt.from_json(x).kind for x in listed]
    assert kinds == [ReceiptKind.RELAY_ACCEPTED, ReceiptKind.DELIVERED, ReceiptKind.ACKNOWLEDGED]


def test_receipts_are_checked(trio):
    delhi, isb, wash = trio["delhi"], trio["islamabad"], trio["washington"]
    envelope, _ = delhi.send_text(["islamabad"], "check my receipts")
    # Washington was not a recipient.
    r = wash.send_receipt(wash.receipt(envelope))
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    # Islamabad's receipt posted with Washington's token: issuer is not the caller.
    r = wash.post("/receipts", json={"receipt": isb.receipt(envelope).to_json()})
    assert (r.status_code, error_code(r)) == (403, "sender_mismatch")
    # A receipt signed by another key.
    forged = isb.receipt(envelope)
    bad = {"body": b64e(forged.body), "sig": b64e(wash.keys.signing.sign(forged.signed_bytes()))}
    r = isb.post("/receipts", json={"receipt": bad})
    assert (r.status_code, error_code(r)) == (400, "bad_signature")
    # A receipt about an envelope the relay does not have (other hash).
    other = delhi.seal(["islamabad"], "never sent")
    r = isb.send_receipt(isb.receipt(other))
    assert (r.status_code, error_code(r)) == (404, "not_found")


def test_envelope_can_be_fetched_by_its_sender_member_and_recipients_only(relay):
    _, desks = setup_channel(relay, {**TRIO, "audit": "operator"})
    delhi, isb, wash, op = desks["delhi"], desks["islamabad"], desks["washington"], desks["audit"]
    envelope, answer = delhi.send_text(["islamabad"], "for islamabad only")
    path = f"/envelopes/{envelope.header.message_id}"
    for desk in (delhi, isb):
        r = desk.get(path)
        assert r.status_code == 200
        assert Envelope.from_json(r.json()["envelope"]).hash == envelope.hash
        assert r.json()["accepted"] == answer["receipt"]
    assert error_code(wash.get(path)) == "not_found"
    assert error_code(op.get(path)) == "forbidden"
    assert error_code(isb.get(f"/messages/{envelope.header.message_id}/receipts")) == "not_found"


def test_key_changes_are_pushed_as_directory_items(relay):
    channel, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    isb.ack([i["id"] for i in isb.inbox()])
    version = isb.directory()["version"]
    phone = Desk.enroll(relay, relay.invite(channel, "delhi"), device="phone")
    prekey = delhi.keys.new_prekey(__import__("os").urandom, now_ms())
    assert delhi.post("/prekeys", json={"prekeys": [prekey.to_json()]}).json() == {"accepted": 1}
    assert delhi.post("/prekeys", json={"prekeys": [prekey.to_json()]}).json() == {"accepted": 0}
    r = delhi.post("/devices/delhi/phone/revoke")
    assert r.status_code == 200 and r.json()["device"]["status"] == "revoked"
    changes = [(i["change"], i["member"], i["device"]) for i in isb.inbox() if i["kind"] == "directory"]
    assert changes == [
        ("device_enrolled", "delhi", "phone"),
        ("prekeys", "delhi", "laptop"),
        ("device_revoked", "delhi", "phone"),
    ]
    directory = isb.directory()
    assert directory["version"] == version + 3
    [delhi_entry] = [m for m in directory["members"] if m["member"] == "delhi"]
    devices = {d["device"]: d for d in delhi_entry["devices"]}
    assert devices["phone"]["status"] == "revoked" and devices["phone"]["prekeys"] == []
    assert prekey.to_json() in devices["laptop"]["prekeys"]
    # The revoked phone can no longer use its token.
    r = phone.get("/inbox")
    assert (r.status_code, error_code(r)) == (403, "device_revoked")


def test_revocation_closes_the_live_socket_and_removes_the_recipient(relay):
    channel, desks = setup_channel(relay, {"delhi": "principal", "islamabad": "principal"})
    delhi, isb = desks["delhi"], desks["islamabad"]
    ws = isb.socket()
    stale = delhi.recipients(["islamabad"])
    r = relay.admin.post(f"/v1/admin/channels/{channel}/devices/islamabad/laptop/revoke")
    assert r.status_code == 200
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frame = recv_frame(ws)
            if frame["type"] == "error":
                assert frame["error"]["code"] == "device_revoked"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    r = delhi.send(delhi.seal(["islamabad"], "to a revoked device", recipients=stale))
    assert (r.status_code, error_code(r)) == (409, "unknown_recipient")
    assert r.json()["error"]["details"]["unknown"] == ["islamabad/laptop"]


def test_a_missing_device_of_a_recipient_member_is_refused_with_details(trio):
    delhi = trio["delhi"]
    only_islamabad = [p for p in delhi.recipients(["islamabad"]) if p.owner.member == "islamabad"]
    r = delhi.send(delhi.seal(["islamabad"], "forgot my phone", recipients=only_islamabad))
    assert (r.status_code, error_code(r)) == (409, "unknown_recipient")
    assert r.json()["error"]["details"] == {"unknown": [], "missing": ["delhi/phone"]}


def test_concurrent_retries_of_one_envelope_are_stored_once(relay, trio):
    from concurrent.futures import ThreadPoolExecutor

    delhi, isb = trio["delhi"], trio["islamabad"]
    envelope = delhi.seal(["islamabad"], "sent eight times at once")

    def post(_):
        with relay.client(delhi.token) as client:
            return client.post(delhi.path("/envelopes"), json=envelope.to_json())

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201]
    assert len({json.dumps(r.json()["receipt"]) for r in answers}) == 1
    assert len(envelope_items(isb.inbox())) == 1


def test_concurrent_senders_get_distinct_log_indexes(relay, trio):
    from concurrent.futures import ThreadPoolExecutor

    delhi, isb = trio["delhi"], trio["islamabad"]
    sealed = [delhi.seal(["islamabad"], f"d{n}") for n in range(10)] + [
        isb.seal(["delhi"], f"i{n}") for n in range(10)
    ]

    def post(envelope):
        desk = delhi if envelope.header.sender == delhi.address else isb
        with relay.client(desk.token) as client:
            return client.post(desk.path("/envelopes"), json=envelope.to_json())

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(post, sealed))
    assert [r.status_code for r in answers] == [201] * 20
    assert len({r.json()["log_index"] for r in answers}) == 20
    assert len(envelope_items(isb.inbox())) == 10


def test_a_post_quantum_channel_carries_hybrid_signed_messages_and_receipts(relay):
    from hotline.protocol.model import Suite

    channel, desks = setup_channel(
        relay, {"delhi": "principal", "islamabad": "principal"}, suite="hotline-pq1"
    )
    delhi, isb = desks["delhi"], desks["islamabad"]
    assert delhi.keys.suite is Suite.PQ_HYBRID
    envelope, _ = delhi.send_text(["islamabad"], "quantum-safe", precedence=Precedence.FLASH)
    [item] = envelope_items(isb.inbox())
    assert isb.open(item) == "quantum-safe"
    assert isb.send_receipt(isb.receipt(envelope)).status_code == 201
    [receipt_item] = [i for i in delhi.inbox() if i["kind"] == "receipt"]
    Receipt.from_json(receipt_item["receipt"]).verify(isb.keys.signing_public_key)
    # A classic key cannot enroll in a hotline-pq1 channel.
    import os

    from hotline.protocol import DeviceKeys
    from hotline.protocol.model import DeviceAddress
    from tests.relay.support import enroll_body

    classic = DeviceKeys.generate(DeviceAddress("delhi", "old"), os.urandom, now_ms())
    with relay.client() as c:
        r = c.post("/v1/enroll", json=enroll_body(classic, relay.invite(channel, "delhi")["code"]))
    assert (r.status_code, error_code(r)) == (400, "unsupported_suite")
