"""Browser ↔ Python interoperability: what one implementation seals, signs or publishes, the other accepts.

The browser side is clients/web/js/protocol (WebCrypto only); the Python side is hotline.protocol. Every
direction is checked by the other implementation: envelopes both ways with the fixed vector keys, a device
generated in the browser with non-extractable keys (its prekey, receipts, replies and login proof verified
in Python), and the worked example of docs/PROTOCOL.md §13 sealed in the browser with a fixed HPKE
ephemeral key and checked value by value against the reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hotline.protocol.content import Content
from hotline.protocol.crypto import SigningKey
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.envelope import Envelope, open_envelope, seal_envelope
from hotline.protocol.errors import ErrorCode
from hotline.protocol.fingerprints import fingerprint, member_code, safety_number
from hotline.protocol.keys import DeviceKeys, SignedPrekey
from hotline.protocol.merkle import consistency_proof, inclusion_proof, leaf_hash, root_from_leaf_hashes
from hotline.protocol.model import DeviceAddress, Intent, Precedence
from hotline.protocol.receipts import Receipt, ReceiptKind, issue_device_receipt, issue_relay_accepted
from hotline.protocol.statements import auth_message, sign_auth_challenge, verify_auth_proof
from tests.vectors.generate import (
    ISLAMABAD_DESK,
    NOW_MS,
    SENDER,
    WASHINGTON_DESK,
    device_keys,
    directory,
    only_prekey,
)
from tests.web.conftest import SelftestPage

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
KEYS_DOC = json.loads((ROOT / "tests" / "vectors" / "keys.json").read_text("utf-8"))
WORKED = json.loads((ROOT / "tests" / "web" / "data" / "protocol_worked_example.json").read_text("utf-8"))

# A message that exercises the awkward parts: non-ASCII text, a template, a reply id, the exercise flag.
MESSAGE: dict[str, Any] = {
    "channel": "delhi-islamabad-washington",
    "seq": {"islamabad": 7, "washington": 3},
    "precedence": "IMMEDIATE",
    "intent": "pre_notification",
    "text": "Pre-notification of a ballistic-missile test — پاکستان / भारत 🚀 \u2028 second line.",
    "lang": "en",
    "in_reply_to": "019b76da-a800-75bb-b83d-2ec6d56e566a",
    "fields": {
        "template": "missile_test",
        "launch_window_start": "2026-01-05T06:00:00Z",
        "launch_window_end": "2026-01-09T18:00:00+05:30",
        "launch_area": "Area A",
        "impact_area": "Area B, Bay of Bengal",
        "notice": "Notified under the 2005 agreement.",
    },
    "exercise": True,
    "now_ms": NOW_MS,
}


def content_fields(content: Content) -> dict[str, Any]:
    """A Python Content as the plain data the browser steps return."""
    return {
        "channel": content.channel,
        "id": content.message_id,
        "sender": str(content.sender),
        "recipients": [str(r) for r in content.recipients],
        "intent": content.intent.value,
        "text": content.text,
        "lang": content.lang,
        "in_reply_to": content.in_reply_to,
        "fields": content.fields,
    }


def python_seal(keys: DeviceKeys, recipients: list[SignedPrekey], seq: dict[str, int]) -> Envelope:
    return seal_envelope(
        keys,
        channel=MESSAGE["channel"],
        seq=seq,
        recipients=recipients,
        precedence=Precedence(MESSAGE["precedence"]),
        intent=Intent(MESSAGE["intent"]),
        text=MESSAGE["text"],
        lang=MESSAGE["lang"],
        in_reply_to=MESSAGE["in_reply_to"],
        fields=MESSAGE["fields"],
        exercise=MESSAGE["exercise"],
        now_ms=NOW_MS,
        rng=os.urandom,
    )


def expected_content(envelope: Envelope) -> dict[str, Any]:
    return {
        "channel": MESSAGE["channel"],
        "id": envelope.header.message_id,
        "sender": str(envelope.header.sender),
        "recipients": [str(r.address) for r in envelope.header.recipients],
        **{k: MESSAGE[k] for k in ("intent", "text", "lang", "in_reply_to", "fields")},
    }


def test_browser_sealed_envelope_opens_in_python(selftest: SelftestPage) -> None:
    sealed = selftest.step(
        "sealWithVectorKeys",
        {
            "keys": KEYS_DOC,
            "sender": str(SENDER),
            "recipients": [str(ISLAMABAD_DESK), str(WASHINGTON_DESK)],
            "message": MESSAGE,
        },
    )
    envelope = Envelope.from_bytes(sealed["wire_text"].encode("utf-8"))
    assert envelope.hash.hex() == sealed["envelope_hash_hex"]
    envelope.verify_signature(directory()[str(SENDER)])
    for recipient in (ISLAMABAD_DESK, WASHINGTON_DESK):
        opened = open_envelope(envelope, device_keys(recipient), directory()[str(SENDER)])
        assert content_fields(opened.content) == expected_content(envelope)
    assert dict(envelope.header.seq) == MESSAGE["seq"]


def test_python_sealed_envelope_opens_in_browser(selftest: SelftestPage) -> None:
    envelope = python_seal(
        device_keys(SENDER),
        [only_prekey(device_keys(ISLAMABAD_DESK)), only_prekey(device_keys(WASHINGTON_DESK))],
        MESSAGE["seq"],
    )
    for recipient in (ISLAMABAD_DESK, WASHINGTON_DESK):
        opened = selftest.step(
            "openWithVectorKeys",
            {"keys": KEYS_DOC, "recipient": str(recipient), "wire_text": envelope.to_bytes().decode("utf-8")},
        )
        assert opened["content"] == expected_content(envelope)
        assert opened["envelope_hash_hex"] == envelope.hash.hex()


@pytest.fixture(scope="module")
def browser_device(selftest: SelftestPage) -> dict[str, Any]:
    """A device whose keys were generated in the browser; only its public parts are here."""
    return dict(selftest.step("newBrowserDevice", {"address": "washington/browser", "now_ms": NOW_MS}))


def test_browser_device_keys_are_non_extractable(browser_device: dict[str, Any]) -> None:
    assert browser_device["signing_key_extractable"] is False
    assert browser_device["prekey_extractable"] is False
    assert browser_device["signing_key_type"] == "private/Ed25519"


def test_browser_device_prekey_verifies_in_python(browser_device: dict[str, Any]) -> None:
    prekey = SignedPrekey.from_json(browser_device["signed_prekey"])
    prekey.verify(bytes.fromhex(browser_device["signing_public_key_hex"]))
    assert prekey.owner == DeviceAddress("washington", "browser")
    assert prekey.is_valid_at(NOW_MS)


def test_python_seals_to_browser_device_which_opens_and_signs_a_receipt(
    selftest: SelftestPage, browser_device: dict[str, Any]
) -> None:
    browser_prekey = SignedPrekey.from_json(browser_device["signed_prekey"])
    envelope = python_seal(
        device_keys(SENDER),
        [browser_prekey, only_prekey(device_keys(ISLAMABAD_DESK))],
        {"washington": 4, "islamabad": 8},
    )
    result = selftest.step(
        "browserDeviceOpens",
        {
            "wire_text": envelope.to_bytes().decode("utf-8"),
            "sender_public_key_hex": directory()[str(SENDER)].hex(),
            "now_ms": NOW_MS + 900,
        },
    )
    assert result["content"] == expected_content(envelope)
    receipt = Receipt.from_json(result["receipt"])
    receipt.verify(bytes.fromhex(browser_device["signing_public_key_hex"]))
    assert receipt.kind is ReceiptKind.DELIVERED
    assert receipt.issuer == DeviceAddress("washington", "browser")
    assert receipt.envelope_hash == envelope.hash
    assert receipt.message_id == envelope.header.message_id
    assert receipt.at_ms == NOW_MS + 900


def test_browser_device_seals_to_python_which_opens_it(
    selftest: SelftestPage, browser_device: dict[str, Any]
) -> None:
    sealed = selftest.step(
        "browserDeviceSeals",
        {
            "prekeys": [only_prekey(device_keys(SENDER)).to_json()],
            "message": {**MESSAGE, "seq": {"delhi": 1}},
        },
    )
    envelope = Envelope.from_bytes(sealed["wire_text"].encode("utf-8"))
    browser_key = bytes.fromhex(browser_device["signing_public_key_hex"])
    opened = open_envelope(envelope, device_keys(SENDER), browser_key)
    assert str(opened.content.sender) == "washington/browser"
    assert opened.content.text == MESSAGE["text"]
    assert envelope.hash.hex() == sealed["envelope_hash_hex"]


def test_browser_device_login_proof_verifies_in_python(
    selftest: SelftestPage, browser_device: dict[str, Any]
) -> None:
    challenge = os.urandom(32)
    proof = selftest.step(
        "browserDeviceAuth", {"relay_id": "relay.hotline.test", "challenge": b64e(challenge)}
    )
    verify_auth_proof(
        bytes.fromhex(browser_device["signing_public_key_hex"]),
        b64d(proof["signature"], field="signature"),
        "relay.hotline.test",
        challenge,
        DeviceAddress("washington", "browser"),
    )


# --- the worked example of PROTOCOL.md §13 -------------------------------------------------------------


class FixedBytes:
    """A random source handing out fixed bytes in order, as the worked example's inputs prescribe."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __call__(self, n: int) -> bytes:
        if n > len(self._data):
            raise AssertionError("the worked example's random bytes are exhausted")
        out, self._data = self._data[:n], self._data[n:]
        return out


def example_keys(prefix: str, address: DeviceAddress) -> DeviceKeys:
    inputs = WORKED["inputs"]
    seed = bytes.fromhex(inputs[f"{prefix}_signing_seed_hex"] + inputs[f"{prefix}_prekey_secret_hex"])
    return DeviceKeys.generate(address, FixedBytes(seed), WORKED["now_ms"], WORKED["prekey_lifetime_ms"])


@pytest.fixture(scope="module")
def worked(selftest: SelftestPage) -> dict[str, Any]:
    entries = [e.encode() for e in WORKED["merkle_entries"]]
    leaves = [leaf_hash(e) for e in entries]
    proofs = {
        "index": 2,
        "inclusion_proof_hex": [p.hex() for p in inclusion_proof(leaves, 2)],
        "old_size": 1,
        "consistency_proof_hex": [p.hex() for p in consistency_proof(leaves, 1)],
    }
    return dict(selftest.step("workedExample", {**WORKED, "merkle": proofs}))


def test_worked_example_keys_match_python(worked: dict[str, Any]) -> None:
    delhi = example_keys("delhi_laptop", DeviceAddress("delhi", "laptop"))
    islamabad = example_keys("islamabad_desk", DeviceAddress("islamabad", "desk"))
    assert worked["keys_non_extractable"] is True
    assert worked["delhi_laptop_signing_public_key_hex"] == delhi.signing_public_key.hex()
    assert worked["islamabad_desk_signing_public_key_hex"] == islamabad.signing_public_key.hex()
    assert worked["delhi_laptop_prekey"] == only_prekey(delhi).to_json()
    assert worked["islamabad_desk_prekey"] == only_prekey(islamabad).to_json()


def test_worked_example_envelope_matches_python_and_opens_there(worked: dict[str, Any]) -> None:
    inputs = WORKED["inputs"]
    message = inputs["message"]
    delhi = example_keys("delhi_laptop", DeviceAddress("delhi", "laptop"))
    islamabad = example_keys("islamabad_desk", DeviceAddress("islamabad", "desk"))
    random = bytes.fromhex(
        inputs["message_id_random_hex"] + inputs["content_key_hex"] + inputs["body_nonce_hex"]
    )
    reference = seal_envelope(
        delhi,
        channel=message["channel"],
        seq=message["seq"],
        recipients=[only_prekey(islamabad)],
        precedence=Precedence(message["precedence"]),
        intent=Intent(message["intent"]),
        text=message["text"],
        lang=message["lang"],
        in_reply_to=message["in_reply_to"],
        fields=message["fields"],
        exercise=message["exercise"],
        now_ms=WORKED["now_ms"],
        rng=FixedBytes(random),
    )
    browser = Envelope.from_bytes(worked["wire_text"].encode("utf-8"))
    # Header and body are fixed by the inputs; the HPKE wrap differs only by pyca's random ephemeral key.
    assert browser.header_bytes == reference.header_bytes
    assert browser.body == reference.body
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["hpke_ephemeral_secret_hex"]))
    assert browser.wrapped_keys[0][:32] == ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    opened = open_envelope(browser, islamabad, delhi.signing_public_key)
    assert opened.content.to_bytes().decode("utf-8") == worked["opened_content_text"]
    assert opened.content.text == message["text"]
    assert browser.hash.hex() == worked["envelope_hash_hex"]


def test_worked_example_receipts_match_python(worked: dict[str, Any]) -> None:
    islamabad = example_keys("islamabad_desk", DeviceAddress("islamabad", "desk"))
    browser = Envelope.from_bytes(worked["wire_text"].encode("utf-8"))
    relay_key = SigningKey(bytes.fromhex(WORKED["inputs"]["relay_signing_seed_hex"]))
    assert worked["relay_signing_public_key_hex"] == relay_key.public_bytes.hex()
    at = WORKED["receipt_times_ms"]
    common = {
        "channel": browser.header.channel,
        "message_id": browser.header.message_id,
        "envelope_hash": browser.hash,
    }
    expected = {
        "relay-accepted": issue_relay_accepted(relay_key, log_index=0, at_ms=at["relay-accepted"], **common),
        "delivered": issue_device_receipt(
            islamabad.signing, islamabad.address, ReceiptKind.DELIVERED, at_ms=at["delivered"], **common
        ),
        "acknowledged": issue_device_receipt(
            islamabad.signing, islamabad.address, ReceiptKind.ACKNOWLEDGED, at_ms=at["acknowledged"], **common
        ),
        "rejected": issue_device_receipt(
            islamabad.signing,
            islamabad.address,
            ReceiptKind.REJECTED,
            at_ms=at["rejected"],
            reason=ErrorCode(WORKED["rejected_reason"]),
            **common,
        ),
    }
    assert worked["receipts"] == {kind: receipt.to_json() for kind, receipt in expected.items()}


def test_worked_example_statements_and_numbers_match_python(worked: dict[str, Any]) -> None:
    delhi = example_keys("delhi_laptop", DeviceAddress("delhi", "laptop"))
    islamabad = example_keys("islamabad_desk", DeviceAddress("islamabad", "desk"))
    challenge = bytes.fromhex(WORKED["auth_challenge_hex"])
    relay_id = WORKED["relay_id"]
    assert worked["auth_message_hex"] == auth_message(relay_id, challenge, islamabad.address).hex()
    assert (
        worked["auth_proof_hex"]
        == sign_auth_challenge(islamabad.signing, relay_id, challenge, islamabad.address).hex()
    )
    leaves = [leaf_hash(e.encode()) for e in WORKED["merkle_entries"]]
    assert worked["merkle_root_hex"] == root_from_leaf_hashes(leaves).hex()
    keys = {"delhi": [delhi.signing_public_key], "islamabad": [islamabad.signing_public_key]}
    second = DeviceKeys.generate(
        DeviceAddress("delhi", "second"),
        FixedBytes(bytes.fromhex(WORKED["inputs"]["delhi_second_device_signing_seed_hex"]) + bytes(32)),
        WORKED["now_ms"],
    )
    assert worked["fingerprints"] == {
        "delhi/laptop": fingerprint(delhi.signing_public_key),
        "islamabad/desk": fingerprint(islamabad.signing_public_key),
    }
    assert worked["member_codes"] == {m: member_code(m, k) for m, k in keys.items()}
    assert worked["safety_number"] == safety_number("delhi", keys["delhi"], "islamabad", keys["islamabad"])
    assert worked["safety_number_delhi_two_devices"] == safety_number(
        "delhi", [*keys["delhi"], second.signing_public_key], "islamabad", keys["islamabad"]
    )
    s = WORKED["scrypt"]
    key = hashlib.scrypt(
        s["passphrase"].encode(),
        salt=bytes.fromhex(s["salt_hex"]),
        n=s["n"],
        r=s["r"],
        p=s["p"],
        dklen=32,
        maxmem=64 * 1024 * 1024,
    )
    assert worked["scrypt_key_hex"] == key.hex()


def test_worked_example_in_protocol_md_is_what_the_browser_seals(worked: dict[str, Any]) -> None:
    doc = (ROOT / "docs" / "PROTOCOL.md").read_text("utf-8")
    found = re.search(r"Wire form:\n\n```json\n(\{\"body\".*?\})\n```", doc)
    assert found, "docs/PROTOCOL.md §13 has no envelope wire form"
    assert found.group(1) == worked["wire_text"], "docs/PROTOCOL.md §13 is out of date with the protocol"
