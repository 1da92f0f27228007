"""The relay's logs: JSON lines with a request id, and never any content or secret — even at debug."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest

from hotline.protocol.receipts import ReceiptKind
from hotline.relay.logging import JsonFormatter, RequestIdFilter, accept_request_id, request_id_var
from tests.conftest import BACKENDS
from tests.relay.support import Desk, recv_items


def test_a_client_request_id_is_kept_only_when_it_is_short_and_plain():
    assert accept_request_id("abc-123.X_y:z") == "abc-123.X_y:z"
    for bad in (None, "", "a b", "x" * 65, "new\nline", "é"):
        generated = accept_request_id(bad)
        assert generated != bad and len(generated) == 16


def test_a_json_line_carries_the_request_id_and_only_known_fields():
    record = logging.LogRecord("hotline.relay.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.__dict__.update(status=200, path="/x", password="hunter2")
    token = request_id_var.set("req-1")
    try:
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-1" and line["msg"] == "GET /x"
    assert (line["status"], line["path"]) == (200, "/x")
    assert "password" not in line


@pytest.mark.parametrize("backend", BACKENDS)
def test_logs_hold_no_content_token_code_or_key_even_at_debug(relay_factory, backend):
    relay = relay_factory(backend, log_format="json", log_level="debug")
    marker = f"MARKER-{uuid.uuid4().hex}"
    channel, invites = relay.create_channel({"delhi": "principal", "islamabad": "principal"})
    codes = [invite["code"] for invite in invites.values()]
    with relay.client() as c:  # an invite code travels in a path: it must be redacted
        assert c.get(f"/v1/invites/{codes[0]}").status_code == 200
    delhi, isb = Desk.enroll(relay, invites["delhi"]), Desk.enroll(relay, invites["islamabad"])
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    envelope = delhi.seal(["islamabad"], marker)
    r = delhi.post("/envelopes", json=envelope.to_json(), headers={"X-Request-Id": request_id})
    assert r.status_code == 201 and r.headers["x-request-id"] == request_id
    ws = isb.socket()  # the auth frame carries the token
    try:
        items = recv_items(ws, 1)
        assert isb.open(items[0]) == marker
        assert isb.send_receipt(isb.receipt(envelope, ReceiptKind.DELIVERED)).status_code == 201
        ws.send(json.dumps({"type": "ack", "ids": [items[0]["id"]]}))
        ws.send(json.dumps({"type": "ping"}))
    finally:
        ws.close()
    with httpx.Client(base_url=relay.url) as c:  # refusals are logged too
        assert (
            c.get(f"/v1/channels/{channel}/inbox", headers={"Authorization": "Bearer forged"}).status_code
            == 401
        )
        assert (
            c.get("/v1/admin/channels", headers={"Authorization": f"Bearer {relay.admin_token}"}).status_code
            == 200
        )
        generated = c.get("/healthz").headers["x-request-id"]
    relay.stop()  # flush, and log the shutdown

    text = relay.log_path.read_text()
    secrets = {
        "message text": marker,
        "device token (islamabad)": isb.token,
        "device token (delhi)": delhi.token,
        "admin token": relay.admin_token,
        "relay key": (relay.data_dir / "relay.key").read_text().strip(),
        "ciphertext": envelope.to_json()["body"][:48],
        **{f"invite code {n}": code for n, code in enumerate(codes)},
    }
    for what, secret in secrets.items():
        assert secret not in text, f"the relay logged the {what}"

    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    others = [line for line in text.splitlines() if not line.startswith("{")]
    assert all(" listening on " in line or line.startswith("admin token:") for line in others), others
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert any(
        line.get("path") == f"/v1/channels/{channel}/envelopes" and line["status"] == 201 for line in mine
    )
    assert any(line.get("request_id") == generated and line.get("path") == "/healthz" for line in lines)
    assert any(line.get("path") == "/v1/invites/…" for line in lines)
