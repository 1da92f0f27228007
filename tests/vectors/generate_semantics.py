"""Generates ``tests/vectors/semantics.json``: acts, relay notices and a declined acknowledgement.

Run ``python -m tests.vectors.generate_semantics`` from the repository root (``--check`` writes nothing and
exits 1 if the committed file differs). Keys come from :class:`~tests.vectors.detrng.DeterministicRng`
over fixed labels and every time from ``NOW_MS``; Ed25519 signatures are deterministic, so the file is
reproduced byte for byte (``tests/protocol/test_notices.py`` regenerates and compares it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hotline.protocol import crypto
from hotline.protocol.encoding import b64e, dump_json, frame
from hotline.protocol.errors import ProtocolError
from hotline.protocol.model import DeviceAddress
from hotline.protocol.notices import (
    DS_ACT,
    DS_NOTICE,
    Act,
    ActKind,
    Notice,
    NoticeKind,
    sign_act,
    sign_notice,
)
from hotline.protocol.receipts import DS_RECEIPT, Receipt, ReceiptKind, issue_device_receipt
from tests.vectors.detrng import DeterministicRng

GENERATOR = "tests/vectors/generate_semantics.py"
FILE = Path(__file__).resolve().parent / "semantics.json"
NOW_MS = 1767225600000  # 2026-01-01T00:00:00Z
CHANNEL = "delhi-islamabad"
DEVICE = DeviceAddress("delhi", "laptop")
ISLAMABAD = DeviceAddress("islamabad", "desk")
MESSAGE_ID = "019b7600-0000-7000-8000-000000000001"
ENVELOPE_HASH = bytes(range(32))


def _key(label: str) -> crypto.SigningKey:
    return crypto.SigningKey(DeterministicRng(f"hotline semantics vectors v1 {label}")(32))


def _id(n: int) -> str:
    return f"019b7600-0000-7000-8000-{n:012x}"


def _statement(kind: str, obj: Act | Notice | Receipt, domain: bytes, signer: str) -> dict[str, Any]:
    return {
        "name": kind,
        "signer": signer,
        "body_text": obj.body.decode("utf-8"),
        "wire": obj.to_json(),
        "signed_input_b64": b64e(frame(domain, obj.body)),
        "hash_b64": b64e(obj.hash),
    }


def document() -> dict[str, Any]:
    relay, delhi, islamabad = _key("relay"), _key("delhi/laptop"), _key("islamabad/desk")
    acts = [
        sign_act(
            delhi,
            DEVICE,
            ActKind.CRISIS_DECLARE,
            act_id=_id(1),
            channel=CHANNEL,
            at_ms=NOW_MS,
            epoch=0,
            reason="Missile launch reported near the border",
        ),
        sign_act(
            delhi,
            DEVICE,
            ActKind.CRISIS_STAND_DOWN,
            act_id=_id(2),
            channel=CHANNEL,
            at_ms=NOW_MS + 3_600_000,
            epoch=1,
            reason="Launch confirmed as a scheduled test",
        ),
        sign_act(
            delhi,
            DEVICE,
            ActKind.CHECKIN_ANSWER,
            act_id=_id(3),
            channel=CHANNEL,
            at_ms=NOW_MS + 60_000,
            checkin=f"dgmo@{NOW_MS}",
            text="Delhi DGMO on the line",
        ),
        sign_act(
            delhi,
            DEVICE,
            ActKind.WITHDRAW,
            act_id=_id(4),
            channel=CHANNEL,
            at_ms=NOW_MS + 120_000,
            message_id=MESSAGE_ID,
            reason="Overtaken by events",
        ),
    ]
    notices = [
        sign_notice(
            relay,
            NoticeKind.ESCALATION,
            notice_id=_id(11),
            channel=CHANNEL,
            at_ms=NOW_MS + 600_000,
            reason="ack_overdue",
            desk="islamabad",
            state="silent",
            deadline_ms=NOW_MS + 600_000,
            attempt=1,
            mode="normal",
            message_id=MESSAGE_ID,
            sender="delhi",
            precedence="FLASH",
            checkin=None,
        ),
        sign_notice(
            relay,
            NoticeKind.CRISIS,
            notice_id=_id(12),
            channel=CHANNEL,
            at_ms=NOW_MS,
            on=True,
            epoch=1,
            trigger="act",
            by=str(DEVICE),
            reason=acts[0].reason,
            act=acts[0].to_json(),
        ),
        sign_notice(
            relay,
            NoticeKind.CRISIS,
            notice_id=_id(13),
            channel=CHANNEL,
            at_ms=NOW_MS,
            on=True,
            epoch=1,
            trigger="flash",
            by="relay",
            reason="",
            act=None,
        ),
        sign_notice(
            relay,
            NoticeKind.CHECKIN_DUE,
            notice_id=_id(14),
            channel=CHANNEL,
            at_ms=NOW_MS,
            checkin=f"dgmo@{NOW_MS}",
            due_ms=NOW_MS,
            answer_by_ms=NOW_MS + 900_000,
            desks=["delhi", "islamabad"],
        ),
        sign_notice(
            relay, NoticeKind.POLICY, notice_id=_id(15), channel=CHANNEL, at_ms=NOW_MS, version=2, by="admin"
        ),
        sign_notice(
            relay,
            NoticeKind.WITHDRAWN,
            notice_id=_id(16),
            channel=CHANNEL,
            at_ms=NOW_MS + 120_000,
            message_id=MESSAGE_ID,
            by=str(DEVICE),
            act=acts[3].to_json(),
        ),
    ]
    declined = issue_device_receipt(
        islamabad,
        ISLAMABAD,
        ReceiptKind.ACKNOWLEDGED,
        channel=CHANNEL,
        message_id=MESSAGE_ID,
        envelope_hash=ENVELOPE_HASH,
        at_ms=NOW_MS + 300_000,
        reply_id=_id(5),
        declined=True,
    )

    def resign(body: bytes, key: crypto.SigningKey, domain: bytes) -> dict[str, str]:
        return {"body": b64e(body), "sig": b64e(key.sign(frame(domain, body)))}

    declare = json.loads(acts[0].body)
    negative = [
        {
            "name": "act-signature-by-another-device",
            "what": "act",
            "wire": resign(acts[0].body, islamabad, DS_ACT),
            "error": "bad_signature",
        },
        {
            "name": "act-unknown-field",
            "what": "act",
            "wire": resign(dump_json({**declare, "extra": 1}), delhi, DS_ACT),
            "error": "malformed",
        },
        {
            "name": "act-epoch-not-an-integer",
            "what": "act",
            "wire": resign(dump_json({**declare, "epoch": "0"}), delhi, DS_ACT),
            "error": "malformed",
        },
        {
            "name": "act-version-2",
            "what": "act",
            "wire": resign(dump_json({**declare, "v": 2}), delhi, DS_ACT),
            "error": "unsupported_version",
        },
        {
            "name": "act-signed-as-a-notice",
            "what": "act",
            "wire": resign(acts[0].body, delhi, DS_NOTICE),
            "error": "bad_signature",
        },
        {
            "name": "notice-unknown-kind",
            "what": "notice",
            "wire": resign(dump_json({**json.loads(notices[4].body), "notice": "alarm"}), relay, DS_NOTICE),
            "error": "malformed",
        },
        {
            "name": "notice-escalation-unknown-reason",
            "what": "notice",
            "wire": resign(dump_json({**json.loads(notices[0].body), "reason": "late"}), relay, DS_NOTICE),
            "error": "malformed",
        },
        {
            "name": "notice-signed-by-a-device",
            "what": "notice",
            "wire": resign(notices[0].body, delhi, DS_NOTICE),
            "error": "bad_signature",
        },
        {
            "name": "receipt-declined-false",
            "what": "receipt",
            "wire": resign(
                dump_json({**json.loads(declined.body), "declined": False}), islamabad, DS_RECEIPT
            ),
            "error": "malformed",
        },
        {
            "name": "receipt-declined-on-delivered",
            "what": "receipt",
            "wire": resign(
                dump_json(
                    {k: v for k, v in json.loads(declined.body).items() if k != "reply_id"}
                    | {"kind": "delivered"}
                ),
                islamabad,
                DS_RECEIPT,
            ),
            "error": "malformed",
        },
    ]
    return {
        "description": (
            "Hotline-semantics statements (docs/PROTOCOL.md §15): device-signed acts (crisis declaration and "
            "stand-down, check-in answer, withdrawal), relay-signed notices (escalation, crisis change, "
            "check-in due, policy change, withdrawal) and an acknowledged receipt that is a signed refusal "
            "(declined: true). Keys are Ed25519 seeds from DeterministicRng over 'hotline semantics vectors "
            "v1 <signer>'. signed_input is frame(domain, body); hash is SHA-256(frame(domain, body, sig))."
        ),
        "generator": GENERATOR,
        "now_ms": NOW_MS,
        "keys": {
            name: {"seed_hex": key.seed().hex(), "public_key_b64": b64e(key.public_bytes)}
            for name, key in (("relay", relay), ("delhi/laptop", delhi), ("islamabad/desk", islamabad))
        },
        "domains": {"act": DS_ACT.decode(), "notice": DS_NOTICE.decode(), "receipt": DS_RECEIPT.decode()},
        "acts": [_statement(a.kind.value, a, DS_ACT, "delhi/laptop") for a in acts],
        "notices": [_statement(n.kind.value, n, DS_NOTICE, "relay") for n in notices],
        "receipts": [_statement("acknowledged-declined", declined, DS_RECEIPT, "islamabad/desk")],
        "negative": negative,
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def check_negative(item: dict[str, Any], keys: dict[str, bytes]) -> str:
    """The error code a negative vector meets: parse, then verify with the key it claims."""
    parser = {"act": Act.from_json, "notice": Notice.from_json, "receipt": Receipt.from_json}[item["what"]]
    signer = {"act": "delhi/laptop", "notice": "relay", "receipt": "islamabad/desk"}[item["what"]]
    try:
        parsed = parser(item["wire"])
        parsed.verify(keys[signer])
    except ProtocolError as exc:
        return exc.code.value
    return "accepted"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file would change")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        same = FILE.exists() and FILE.read_text(encoding="utf-8") == text
        print(f"{0 if same else 1} vector file(s) differ")
        return 0 if same else 1
    FILE.write_text(text, encoding="utf-8")
    print(f"wrote {FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
