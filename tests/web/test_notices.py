"""Relay notices and desk acts (ADR 0007) mean the same in the browser as in the Python core.

The relay signs notices (escalations, crisis changes…) that the browser desk shows as alarms; it must
accept exactly what Python accepts, with the same error codes, and verify the relay's signature. A crisis
act the browser signs must verify in Python.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hotline.protocol.crypto import SigningKey
from hotline.protocol.encoding import b64d, b64e, dump_json
from hotline.protocol.errors import ProtocolError
from hotline.protocol.model import DeviceAddress
from hotline.protocol.notices import Act, ActKind, Notice, NoticeKind, sign_act, sign_notice
from tests.web.conftest import SelftestPage

pytestmark = pytest.mark.browser

RELAY = SigningKey(bytes(range(128, 160)))
DESK = SigningKey(bytes(range(64, 96)))
ISLAMABAD = DeviceAddress("islamabad", "desk")
CHANNEL = "delhi-islamabad"
ID = "01968924-9c00-7012-8567-89abcdef0123"


def act() -> Act:
    return sign_act(
        DESK,
        ISLAMABAD,
        ActKind.CRISIS_DECLARE,
        act_id=ID,
        channel=CHANNEL,
        at_ms=1,
        epoch=1,
        reason="FLASH seen",
    )


NOTICES: list[Notice] = [
    sign_notice(
        RELAY,
        NoticeKind.ESCALATION,
        notice_id=ID,
        channel=CHANNEL,
        at_ms=1746058200000,
        reason="ack_overdue",
        desk="islamabad",
        state="silent",
        deadline_ms=1746058200000,
        attempt=2,
        mode="normal",
        message_id=ID,
        sender="delhi",
        precedence="FLASH",
        checkin=None,
    ),
    sign_notice(
        RELAY,
        NoticeKind.CRISIS,
        notice_id=ID,
        channel=CHANNEL,
        at_ms=2,
        on=True,
        epoch=1,
        trigger="act",
        by="islamabad/desk",
        reason="FLASH seen",
        act=act().to_json(),
    ),
    sign_notice(RELAY, NoticeKind.POLICY, notice_id=ID, channel=CHANNEL, at_ms=3, version=2, by="admin"),
    sign_notice(
        RELAY,
        NoticeKind.CHECKIN_DUE,
        notice_id=ID,
        channel=CHANNEL,
        at_ms=4,
        checkin="dgmo@1732615200000",
        due_ms=1732615200000,
        answer_by_ms=1732616100000,
        desks=["delhi", "islamabad"],
    ),
]


def mutations() -> list[tuple[str, bytes]]:
    """Each notice and the act with one field removed, changed in type, or an extra field added."""
    out: list[tuple[str, bytes]] = []
    docs = [("notice", n.body) for n in NOTICES] + [("act", act().body)]
    for kind, body in docs:
        obj = json.loads(body)
        out.append((kind, body))
        for key in obj:
            out.append((kind, dump_json({k: v for k, v in obj.items() if k != key})))
            for wrong in (None, "x", -1, True, [], {}):
                if obj[key] != wrong:
                    out.append((kind, dump_json({**obj, key: wrong})))
        out.append((kind, dump_json({**obj, "extra": 1})))
        out.append((kind, dump_json({**obj, "v": 2})))
    return out


def python_verdict(kind: str, body: bytes) -> str:
    try:
        (Notice if kind == "notice" else Act).parse(body, bytes(64))
    except ProtocolError as exc:
        return exc.code.value
    return "ok"


def test_notice_and_act_verdicts_match_python(selftest: SelftestPage) -> None:
    cases = mutations()
    args = {
        "json": [],
        "b64": [],
        "dump": [],
        "safety": [],
        "parse": [{"kind": k, "hex": b.hex()} for k, b in cases],
    }
    browser = selftest.step("differential", args)["parse"]
    ours = [python_verdict(k, b) for k, b in cases]
    diff = [
        f"{b!r}: python {p}, browser {q}" for (_, b), p, q in zip(cases, ours, browser, strict=True) if p != q
    ]
    assert not diff, "\n".join(diff[:10])
    assert ours.count("ok") >= len(NOTICES) + 1


def test_browser_verifies_relay_notices_and_refuses_forged_ones(selftest: SelftestPage) -> None:
    forged = dict(NOTICES[0].to_json())
    forged["sig"] = NOTICES[1].to_json()["sig"]
    result: list[str] = selftest.page.evaluate(
        """async ([notices, relayKey]) => {
          const p = await import("/js/protocol/index.js");
          const key = p.b64d(relayKey, { field: "k" });
          const out = [];
          for (const n of notices) {
            try {
              await p.Notice.fromJson(n).verify(key);
              out.push("ok");
            } catch (e) {
              out.push(e.code ?? String(e));
            }
          }
          return out;
        }""",
        [[n.to_json() for n in NOTICES] + [forged], b64e(RELAY.public_bytes)],
    )
    assert result == ["ok"] * len(NOTICES) + ["bad_signature"]


def test_python_verifies_a_crisis_act_signed_in_the_browser(selftest: SelftestPage) -> None:
    made: dict[str, Any] = selftest.page.evaluate(
        """async () => {
          const p = await import("/js/protocol/index.js");
          const { generateSigningKey } = await import("/js/protocol/crypto.js");
          const key = await generateSigningKey();
          const a = await p.signAct(key.privateKey, p.deviceAddress("delhi", "browser"), "crisis-declare", {
            id: "01968924-9c00-7012-8567-89abcdef0124", channel: "delhi-islamabad", atMs: 5,
            fields: { epoch: 0, reason: "missile launch reported" } });
          return { act: a.toJson(), key: p.b64e(key.publicKey) };
        }"""
    )
    parsed = Act.from_json(made["act"])
    parsed.verify(b64d(made["key"], field="key"))
    assert parsed.kind is ActKind.CRISIS_DECLARE and parsed.reason == "missile launch reported"
