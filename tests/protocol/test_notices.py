"""Acts, relay notices and declined acknowledgements (hotline/protocol/notices.py, receipts.py): the
committed vectors are reproduced byte for byte and verify independently with pyca; every negative fails."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hotline.protocol import crypto
from hotline.protocol.encoding import b64d
from hotline.protocol.errors import ErrorCode, MalformedError, ProtocolError
from hotline.protocol.ids import uuid7
from hotline.protocol.keys import DeviceKeys
from hotline.protocol.model import DeviceAddress, Suite
from hotline.protocol.notices import Act, ActKind, Notice, NoticeKind, sign_act, sign_notice
from hotline.protocol.receipts import Receipt, ReceiptKind, issue_device_receipt
from tests.vectors import generate_semantics

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "semantics.json").read_text(encoding="utf-8")
)
KEYS = {name: b64d(k["public_key_b64"], field=name) for name, k in VECTORS["keys"].items()}
PARSERS = {"act": Act.from_json, "notice": Notice.from_json, "receipt": Receipt.from_json}


def independent_frame(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def test_the_vector_file_is_regenerated_byte_for_byte():
    committed = generate_semantics.FILE.read_text(encoding="utf-8")
    assert generate_semantics.render(generate_semantics.document()) == committed
    assert list(VECTORS)[:2] == ["description", "generator"]


@pytest.mark.parametrize(
    ("group", "item"),
    [(g, i) for g in ("acts", "notices", "receipts") for i in VECTORS[g]],
    ids=lambda x: x if isinstance(x, str) else x["name"],
)
def test_statement_verifies_independently_and_with_the_library(group, item):
    what = {"acts": "act", "notices": "notice", "receipts": "receipt"}[group]
    domain = VECTORS["domains"][what].encode()
    body, sig = b64d(item["wire"]["body"], field="body"), b64d(item["wire"]["sig"], field="sig")
    assert body.decode() == item["body_text"]
    signed = independent_frame(domain, body)
    assert b64d(item["signed_input_b64"], field="input") == signed
    Ed25519PublicKey.from_public_bytes(KEYS[item["signer"]]).verify(sig, signed)
    assert (
        b64d(item["hash_b64"], field="hash") == hashlib.sha256(independent_frame(domain, body, sig)).digest()
    )
    parsed = PARSERS[what](item["wire"])
    parsed.verify(KEYS[item["signer"]])
    assert parsed.hash == b64d(item["hash_b64"], field="hash")


@pytest.mark.parametrize("item", VECTORS["negative"], ids=lambda i: i["name"])
def test_negative_vectors_are_refused_with_their_code(item):
    assert generate_semantics.check_negative(item, KEYS) == item["error"]


def test_notices_carry_their_acts_and_declined_is_a_flag():
    crisis = Notice.from_json(next(n for n in VECTORS["notices"] if n["name"] == "crisis")["wire"])
    act = crisis.act
    assert act is not None and act.kind is ActKind.CRISIS_DECLARE and act.epoch == 0
    act.verify(KEYS["delhi/laptop"])
    declined = Receipt.from_json(VECTORS["receipts"][0]["wire"])
    assert declined.kind is ReceiptKind.ACKNOWLEDGED and declined.declined


# --- sign and parse -----------------------------------------------------------------------------------

NOW = 1767225600000
DEVICE = DeviceAddress("delhi", "laptop")


@pytest.fixture(scope="module", params=[Suite.CLASSIC, Suite.PQ_HYBRID])
def keys(request):
    return DeviceKeys.generate(DEVICE, os.urandom, NOW, suite=request.param)


def test_acts_round_trip_in_both_suites(keys):
    act = sign_act(
        keys.signing,
        DEVICE,
        ActKind.WITHDRAW,
        act_id=uuid7(NOW, os.urandom),
        channel="c",
        at_ms=NOW,
        message_id=uuid7(NOW, os.urandom),
        reason="r",
    )
    again = Act.from_json(act.to_json())
    again.verify(keys.signing_public_key, suite=keys.suite)
    assert again == act
    other = Suite.CLASSIC if keys.suite is Suite.PQ_HYBRID else Suite.PQ_HYBRID
    with pytest.raises(ProtocolError) as err:
        again.verify(keys.signing_public_key, suite=other)
    assert err.value.code is ErrorCode.UNSUPPORTED_SUITE


def test_signing_needs_exactly_the_kinds_fields():
    key = crypto.SigningKey(bytes(32))
    with pytest.raises(MalformedError):
        sign_act(
            key,
            DEVICE,
            ActKind.CRISIS_DECLARE,
            act_id=uuid7(NOW, os.urandom),
            channel="c",
            at_ms=NOW,
            epoch=0,
        )
    with pytest.raises(MalformedError):
        sign_notice(
            key, NoticeKind.POLICY, notice_id=uuid7(NOW, os.urandom), channel="c", at_ms=NOW, version=1
        )
    with pytest.raises(MalformedError):  # a reason longer than 500 characters
        sign_act(
            key,
            DEVICE,
            ActKind.CRISIS_DECLARE,
            act_id=uuid7(NOW, os.urandom),
            channel="c",
            at_ms=NOW,
            epoch=0,
            reason="x" * 501,
        )


def test_only_an_acknowledgement_can_be_declined_and_old_acknowledgements_keep_their_bytes():
    key = crypto.SigningKey(bytes(32))
    common = {"channel": "c", "message_id": uuid7(NOW, os.urandom), "envelope_hash": bytes(32), "at_ms": NOW}
    with pytest.raises(MalformedError):
        issue_device_receipt(key, DEVICE, ReceiptKind.DELIVERED, declined=True, **common)
    plain = issue_device_receipt(key, DEVICE, ReceiptKind.ACKNOWLEDGED, **common)
    assert b"declined" not in plain.body and not plain.declined
