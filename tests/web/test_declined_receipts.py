"""The browser reads and writes signed refusals ("declined" acknowledgements, ADR 0007) as Python does.

An acknowledgement may carry ``"declined": true``; any other value of the field, or the field on another
kind of receipt, is malformed; an acknowledgement without it keeps its old bytes.
"""

from __future__ import annotations

import json

import pytest

from hotline.protocol.encoding import dump_json
from hotline.protocol.errors import ProtocolError
from hotline.protocol.receipts import Receipt
from tests.web.conftest import SelftestPage

pytestmark = pytest.mark.browser

BASE = {
    "v": 1,
    "type": "receipt",
    "kind": "acknowledged",
    "channel": "delhi-islamabad",
    "message_id": "01968924-9c00-7012-8567-89abcdef0123",
    "envelope_hash": "lMD_JBAxNFBQ1Jyqz5hMeLWmzfgUIv1oMLyj8jBebuk",
    "issuer": {"member": "islamabad", "device": "desk"},
    "at_ms": 1746057660000,
    "reply_id": None,
}
CASES = [
    BASE,
    {**BASE, "declined": True},
    {**BASE, "declined": False},
    {**BASE, "declined": 1},
    {**BASE, "declined": None},
    {**BASE, "declined": "true"},
    {**{k: v for k, v in BASE.items() if k != "reply_id"}, "kind": "delivered", "declined": True},
    {
        **{k: v for k, v in BASE.items() if k != "reply_id"},
        "kind": "rejected",
        "reason": "decryption_failed",
        "declined": True,
    },
]


def python_verdict(body: bytes) -> str:
    try:
        Receipt.parse(body, bytes(64))
    except ProtocolError as exc:
        return exc.code.value
    return "ok"


@pytest.mark.parametrize(
    "case", CASES, ids=[json.dumps(c.get("declined", "absent")) + c["kind"] for c in CASES]
)
def test_declined_field_verdicts_match_python(selftest: SelftestPage, case: dict[str, object]) -> None:
    body = dump_json(case)
    args = {
        "json": [],
        "b64": [],
        "dump": [],
        "safety": [],
        "parse": [{"kind": "receipt", "hex": body.hex()}],
    }
    result = selftest.step("differential", args)
    assert result["parse"] == [python_verdict(body)]


def test_python_reads_a_refusal_the_browser_signed(selftest: SelftestPage) -> None:
    made = selftest.page.evaluate(
        """async () => {
          const p = await import("/js/protocol/index.js");
          const { generateSigningKey } = await import("/js/protocol/crypto.js");
          const key = await generateSigningKey();
          const issuer = p.deviceAddress("islamabad", "desk");
          const r = await p.issueDeviceReceipt(key.privateKey, issuer, "acknowledged", {
            channel: "delhi-islamabad", messageId: "01968924-9c00-7012-8567-89abcdef0123",
            envelopeHash: new Uint8Array(32), atMs: 1746057660000, declined: true });
          return { receipt: r.toJson(), key: p.b64e(key.publicKey), declined: r.declined };
        }"""
    )
    from hotline.protocol.encoding import b64d

    receipt = Receipt.from_json(made["receipt"])
    receipt.verify(b64d(made["key"], field="key"))
    assert receipt.declined and made["declined"] is True
