"""Test support for hotline semantics: a relay with a movable clock, acts, notices, sweeps.

Relays made here run with ``HOTLINE_TEST_CLOCK=1`` and a background timer interval of an hour, so a
timer fires only when a test moves the clock and asks for a sweep: nothing depends on real waiting.
"""

from __future__ import annotations

import os
from typing import Any

from hotline.protocol.encoding import b64d
from hotline.protocol.ids import uuid7
from hotline.protocol.notices import Act, ActKind, Notice, sign_act
from hotline.protocol.receipts import Receipt, ReceiptKind, issue_device_receipt
from tests.relay.support import Desk, RelayProcess

# Tokens outlive every clock jump a test makes (the clock moves hours; a token lives 15 minutes).
CLOCK_SETTINGS = {"test_clock": "1", "timer_interval_s": "3600", "token_ttl_s": str(10 * 365 * 86400)}
MEMBERS = {
    "delhi": "principal",
    "islamabad": "principal",
    "washington": "facilitator",
    "excon": "controller",
    "auditor": "operator",
}


def relay_now(relay: RelayProcess) -> int:
    r = relay.admin.get("/v1/admin/test/clock")
    assert r.status_code == 200, r.text
    return int(r.json()["now_ms"])


def advance(relay: RelayProcess, seconds: float) -> int:
    r = relay.admin.post("/v1/admin/test/clock", json={"advance_ms": int(seconds * 1000)})
    assert r.status_code == 200, r.text
    return int(r.json()["now_ms"])


def sweep(relay: RelayProcess) -> list[dict[str, Any]]:
    r = relay.admin.post("/v1/admin/test/sweep")
    assert r.status_code == 200, r.text
    return list(r.json()["fired"])


def act(desk: Desk, kind: ActKind, at_ms: int, **fields: Any) -> Act:
    return sign_act(
        desk.keys.signing,
        desk.address,
        kind,
        act_id=uuid7(at_ms, os.urandom),
        channel=desk.channel,
        at_ms=at_ms,
        **fields,
    )


def crisis_act(desk: Desk, declare: bool, epoch: int, reason: str = "exercise") -> Act:
    kind = ActKind.CRISIS_DECLARE if declare else ActKind.CRISIS_STAND_DOWN
    return act(desk, kind, relay_now(desk.relay), epoch=epoch, reason=reason)


def notices(desk: Desk, *, ack: bool = True) -> list[Notice]:
    """The relay-signed notices pending in ``desk``'s inbox (checked), oldest first; acked by default."""
    relay_key = b64d(desk.relay.info()["public_key"], field="relay key")
    items = [i for i in desk.inbox(500) if i["kind"] == "notice"]
    out = []
    for item in items:
        notice = Notice.from_json(item["notice"])
        notice.verify(relay_key)
        out.append(notice)
    if ack and items:
        desk.ack(i["id"] for i in items)
    return out


def drain(desk: Desk) -> None:
    desk.ack(i["id"] for i in desk.inbox(500))


def ack_receipt(
    desk: Desk, envelope: Any, *, declined: bool = False, kind: ReceiptKind | None = None
) -> Receipt:
    receipt = issue_device_receipt(
        desk.keys.signing,
        desk.address,
        kind or ReceiptKind.ACKNOWLEDGED,
        channel=envelope.header.channel,
        message_id=envelope.header.message_id,
        envelope_hash=envelope.hash,
        at_ms=relay_now(desk.relay),
        reply_id=None,
        declined=declined,
    )
    r = desk.send_receipt(receipt)
    assert r.status_code == 201, r.text
    return receipt


def ladder(desk: Desk, message_id: str) -> dict[str, Any]:
    r = desk.get(f"/messages/{message_id}/ladder")
    assert r.status_code == 200, r.text
    return dict(r.json())


def desk_states(desk: Desk, message_id: str) -> dict[str, str]:
    return {d["desk"]: d["state"] for d in ladder(desk, message_id)["desks"]}
