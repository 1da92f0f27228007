"""The committed vectors in tests/vectors/: reproduced byte for byte, verified, and every negative refused.

Two kinds of check. Regeneration runs tests/vectors/generate.py in memory and compares the exact file text,
so any change to a signed format, a hash or a derivation shows up here. Verification reads the files as
another implementation would: it rebuilds keys from the recorded seeds, and besides the library it checks
signatures, hashes and the envelope's encryption with pyca/cryptography directly from the layout the files
document, so the library cannot agree with itself by mistake.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hotline.protocol import crypto
from hotline.protocol.content import Content
from hotline.protocol.encoding import b64d
from hotline.protocol.envelope import Envelope, Header, open_envelope, seal_envelope
from hotline.protocol.errors import ErrorCode, ProtocolError
from hotline.protocol.fingerprints import fingerprint, member_code, normalize_safety_number, safety_number
from hotline.protocol.keys import DeviceKeys, PrekeySecret, SignedPrekey
from hotline.protocol.model import DeviceAddress, Intent, Precedence
from hotline.protocol.receipts import Receipt
from hotline.protocol.receiver import ReceiverState
from hotline.protocol.statements import TreeHead, verify_auth_proof
from tests.vectors import generate
from tests.vectors.detrng import DeterministicRng

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"
DETERMINISTIC_FILES = (
    "keys.json",
    "receipts.json",
    "fingerprints.json",
    "tree_head.json",
    "auth.json",
    "keyfile.json",
    "negative.json",
)


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTOR_DIR / name).read_text(encoding="utf-8"))
    return doc


def address(text: str) -> DeviceAddress:
    member, device = text.split("/")
    return DeviceAddress(member, device)


def independent_frame(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def independent_verify(public_key_hex: str, signature: bytes, message: bytes) -> None:
    """Ed25519 straight from pyca, raising InvalidSignature on failure."""
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(signature, message)


KEYS = load("keys.json")
DEVICES = {d["address"]: d for d in KEYS["devices"]}
DIRECTORY = {a: bytes.fromhex(d["signing_public_key_hex"]) for a, d in DEVICES.items()}
DIRECTORY["relay"] = bytes.fromhex(KEYS["relay"]["signing_public_key_hex"])
ENVELOPE = load("envelope.json")
NEGATIVE = load("negative.json")


def device_keys(name: str) -> DeviceKeys:
    """A device's keys rebuilt from the seeds recorded in keys.json, without the generator."""
    entry = DEVICES[name]
    keys = DeviceKeys(
        address=address(name), signing=crypto.SigningKey(bytes.fromhex(entry["signing_seed_hex"]))
    )
    signed = SignedPrekey.from_json(entry["signed_prekey"])
    keys.prekeys[signed.id] = PrekeySecret(crypto.KemKey(bytes.fromhex(entry["prekey_secret_hex"])), signed)
    return keys


# --- every file starts the same way -------------------------------------------------------------------

ALL_FILES = (*DETERMINISTIC_FILES, "envelope.json")


@pytest.mark.parametrize("name", ALL_FILES)
def test_vector_file_starts_with_description_and_generator(name: str) -> None:
    doc = load(name)
    assert list(doc)[:2] == ["description", "generator"]
    assert doc["generator"] == "tests/vectors/generate.py"
    assert len(doc["description"]) > 40


# --- regeneration -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regenerated() -> dict[str, dict[str, Any]]:
    return generate.deterministic_documents(generate.load_committed_envelope(VECTOR_DIR))


@pytest.mark.parametrize("name", DETERMINISTIC_FILES)
def test_deterministic_vector_file_is_regenerated_byte_for_byte(
    name: str, regenerated: dict[str, dict[str, Any]]
) -> None:
    committed = (VECTOR_DIR / name).read_text(encoding="utf-8")
    assert generate.render(regenerated[name]) == committed


def test_envelope_file_agrees_with_its_own_wire_bytes() -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    committed = (VECTOR_DIR / "envelope.json").read_text(encoding="utf-8")
    assert generate.render(generate.envelope_document(envelope)) == committed


def test_resealing_reproduces_the_envelope_header_and_body_exactly() -> None:
    # Only the HPKE-wrapped keys (and so the signature) depend on pyca's own randomness.
    fresh = generate.seal_vector_envelope()
    committed = Envelope.from_json(ENVELOPE["wire"])
    assert fresh.header_bytes == committed.header_bytes
    assert fresh.body == committed.body
    assert fresh.wrapped_keys != committed.wrapped_keys


def test_generator_check_mode_reports_no_difference(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0
    assert "0 vector file(s) differ" in capsys.readouterr().out


def test_generator_check_mode_notices_a_changed_file(tmp_path: Path) -> None:
    for name in ALL_FILES:
        (tmp_path / name).write_text((VECTOR_DIR / name).read_text(encoding="utf-8"), encoding="utf-8")
    keys = json.loads((tmp_path / "keys.json").read_text(encoding="utf-8"))
    keys["now_ms"] += 1
    (tmp_path / "keys.json").write_text(generate.render(keys), encoding="utf-8")
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1


def test_detrng_is_sha256_counter_mode_over_the_label() -> None:
    rng = DeterministicRng("label")
    stream = b"".join(hashlib.sha256(b"label" + i.to_bytes(8, "big")).digest() for i in range(3))
    assert rng(5) + rng(40) + rng(0) + rng(19) == stream[:64]


# --- keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_device_keys_match_their_seeds_and_prekeys_are_signed(name: str) -> None:
    entry = DEVICES[name]
    keys = device_keys(name)
    assert keys.signing_public_key.hex() == entry["signing_public_key_hex"]
    prekey = SignedPrekey.from_json(entry["signed_prekey"])
    prekey.verify(keys.signing_public_key)
    assert prekey.owner == address(name)
    assert prekey.public_key.hex() == entry["prekey_public_key_hex"]
    assert crypto.KemKey(bytes.fromhex(entry["prekey_secret_hex"])).public_bytes == prekey.public_key
    assert (prekey.not_before_ms, prekey.expires_ms) == (
        entry["prekey_not_before_ms"],
        entry["prekey_expires_ms"],
    )
    assert prekey.body.decode("utf-8") == entry["signed_prekey_body_text"]
    # Independently: prekey id and the signature over frame("hotline/v1/prekey", body).
    assert b64d(prekey.id, field="id") == hashlib.sha256(prekey.public_key).digest()[:9]
    independent_verify(
        entry["signing_public_key_hex"],
        prekey.signature,
        independent_frame(b"hotline/v1/prekey", prekey.body),
    )


# --- the envelope -------------------------------------------------------------------------------------


def header_fields(header: Header) -> dict[str, Any]:
    return {
        "v": 1,
        "suite": header.suite.value,
        "channel": header.channel,
        "id": header.message_id,
        "sender": str(header.sender),
        "seq": dict(header.seq),
        "recipients": [{"address": str(r.address), "prekey_id": r.prekey_id} for r in header.recipients],
        "precedence": header.precedence.value,
        "created_at_ms": header.created_at_ms,
        "content_type": header.content_type.value,
        "exercise": header.exercise,
    }


def content_fields(content: Content) -> dict[str, Any]:
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


def test_envelope_wire_text_is_the_wire_object() -> None:
    from_text = Envelope.from_bytes(ENVELOPE["wire_text"].encode("utf-8"))
    assert from_text.to_json() == ENVELOPE["wire"]
    assert from_text.to_bytes().decode("utf-8") == ENVELOPE["wire_text"]


def test_envelope_header_has_every_expected_field() -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    assert envelope.header_bytes.decode("utf-8") == ENVELOPE["header_text"]
    assert json.loads(ENVELOPE["header_text"])["v"] == 1
    assert header_fields(envelope.header) == ENVELOPE["expected_header"]
    assert envelope.header.seq_for("islamabad") == 1
    assert envelope.header.seq_for("washington") == 2
    assert envelope.header.precedence is Precedence.FLASH


def test_envelope_hashes_and_signed_bytes_match_the_documented_layout() -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    body_hash = hashlib.sha256(envelope.body).digest()
    keys_hash = hashlib.sha256(independent_frame(*envelope.wrapped_keys)).digest()
    signed = independent_frame(b"hotline/v1/envelope", envelope.header_bytes, body_hash, keys_hash)
    assert body_hash.hex() == ENVELOPE["body_hash_hex"]
    assert keys_hash.hex() == ENVELOPE["keys_hash_hex"]
    assert signed.hex() == ENVELOPE["signed_bytes_hex"] == envelope.signed_bytes().hex()
    envelope_hash = hashlib.sha256(
        independent_frame(
            b"hotline/v1/envelope-hash", envelope.header_bytes, body_hash, keys_hash, envelope.signature
        )
    ).digest()
    assert envelope_hash.hex() == ENVELOPE["envelope_hash_hex"] == envelope.hash.hex()
    assert hashlib.sha256(envelope.header_bytes).hexdigest() == ENVELOPE["header_hash_hex"]
    independent_verify(DEVICES["delhi/laptop"]["signing_public_key_hex"], envelope.signature, signed)
    envelope.verify_signature(DIRECTORY["delhi/laptop"])


@pytest.mark.parametrize("recipient", ENVELOPE["recipients"])
def test_committed_envelope_opens_for_each_recipient_with_every_expected_field(recipient: str) -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    opened = open_envelope(envelope, device_keys(recipient), DIRECTORY[ENVELOPE["sender"]])
    assert header_fields(opened.header) == ENVELOPE["expected_header"]
    assert content_fields(opened.content) == ENVELOPE["expected_content"][recipient]
    assert opened.content.intent is Intent.CLARIFICATION_REQUEST
    assert opened.content.to_bytes().hex() == ENVELOPE["expected_content_plaintext_hex"]


@pytest.mark.parametrize("recipient", ENVELOPE["recipients"])
def test_committed_envelope_decrypts_independently_with_pyca(recipient: str) -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    entry = DEVICES[recipient]
    index = ENVELOPE["recipients"].index(recipient)
    header_hash = hashlib.sha256(envelope.header_bytes).digest()
    member, device = recipient.split("/")
    info = independent_frame(
        b"hotline/v1/wrap", header_hash, member.encode(), device.encode(), entry["prekey_id"].encode()
    )
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    secret = X25519PrivateKey.from_private_bytes(bytes.fromhex(entry["prekey_secret_hex"]))
    content_key = suite.decrypt(envelope.wrapped_keys[index], secret, info=info)
    plaintext = AESGCM(content_key).decrypt(
        envelope.body[:12], envelope.body[12:], independent_frame(b"hotline/v1/body", header_hash)
    )
    assert plaintext.hex() == ENVELOPE["expected_content_plaintext_hex"]


# --- receipts, tree head, auth, key file --------------------------------------------------------------

RECEIPTS = load("receipts.json")


@pytest.mark.parametrize("item", RECEIPTS["receipts"], ids=lambda item: item["name"])
def test_receipt_verifies_and_has_every_expected_field(item: dict[str, Any]) -> None:
    receipt = Receipt.from_json(item["wire"])
    assert DIRECTORY[item["issuer"]].hex() == item["issuer_public_key_hex"]
    receipt.verify(DIRECTORY[item["issuer"]])
    assert receipt.body.decode("utf-8") == item["body_text"]
    signed = independent_frame(b"hotline/v1/receipt", receipt.body)
    assert signed.hex() == item["signed_bytes_hex"] == receipt.signed_bytes().hex()
    assert receipt.signature.hex() == item["signature_hex"]
    independent_verify(item["issuer_public_key_hex"], receipt.signature, signed)
    digest = hashlib.sha256(independent_frame(b"hotline/v1/receipt", receipt.body, receipt.signature))
    assert digest.hexdigest() == item["hash_hex"] == receipt.hash.hex()
    assert {
        "kind": receipt.kind.value,
        "channel": receipt.channel,
        "message_id": receipt.message_id,
        "envelope_hash_hex": receipt.envelope_hash.hex(),
        "at_ms": receipt.at_ms,
        "issuer": None if receipt.issuer is None else str(receipt.issuer),
        "log_index": receipt.log_index,
        "reply_id": receipt.reply_id,
        "reason": None if receipt.reason is None else receipt.reason.value,
    } == item["expected"]
    assert item["expected"]["envelope_hash_hex"] == ENVELOPE["envelope_hash_hex"]
    assert item["expected"]["message_id"] == ENVELOPE["expected_header"]["id"]


def test_receipts_cover_every_kind_with_the_asked_details() -> None:
    by_kind = {item["expected"]["kind"]: item["expected"] for item in RECEIPTS["receipts"]}
    assert set(by_kind) == {"relay-accepted", "delivered", "acknowledged", "rejected"}
    assert by_kind["acknowledged"]["reply_id"] is not None
    assert by_kind["rejected"]["reason"] == "decryption_failed"
    assert by_kind["relay-accepted"]["issuer"] is None


def test_tree_head_verifies_with_the_relay_key() -> None:
    doc = load("tree_head.json")
    head = TreeHead.from_json(doc["wire"])
    head.verify(DIRECTORY["relay"])
    assert doc["relay_public_key_hex"] == DIRECTORY["relay"].hex()
    assert {"size": head.size, "root_hex": head.root.hex(), "at_ms": head.at_ms} == doc["expected"]
    signed = independent_frame(b"hotline/v1/tree-head", head.body)
    assert signed.hex() == doc["signed_bytes_hex"]
    assert head.body.decode("utf-8") == doc["body_text"]
    independent_verify(doc["relay_public_key_hex"], bytes.fromhex(doc["signature_hex"]), signed)


def test_auth_proof_verifies_for_its_relay_challenge_and_device() -> None:
    doc = load("auth.json")
    device = address(doc["device"])
    challenge = bytes.fromhex(doc["challenge_hex"])
    signature = b64d(doc["signature"], field="signature")
    assert signature.hex() == doc["signature_hex"]
    verify_auth_proof(DIRECTORY[doc["device"]], signature, doc["relay_id"], challenge, device)
    message = independent_frame(
        b"hotline/v1/auth",
        doc["relay_id"].encode(),
        challenge,
        device.member.encode(),
        device.device.encode(),
    )
    assert message.hex() == doc["message_hex"]
    independent_verify(doc["device_public_key_hex"], signature, message)


def test_sealed_key_file_opens_with_its_passphrase() -> None:
    doc = load("keyfile.json")
    assert json.loads(doc["file_text"])["kdf"]["n"] == doc["scrypt"]["n"] == 2**10
    keys = DeviceKeys.from_file(doc["file_text"].encode("utf-8"), doc["passphrase"])
    plain = DeviceKeys.from_file(doc["plain_file_text"].encode("utf-8"), None)
    for opened in (keys, plain):
        assert str(opened.address) == doc["expected_address"]
        assert opened.signing_public_key.hex() == doc["expected_signing_public_key_hex"]
        assert sorted(opened.prekeys) == doc["expected_prekey_ids"]
    assert keys.to_plain_json() == device_keys(doc["expected_address"]).to_plain_json()


# --- fingerprints -------------------------------------------------------------------------------------

FINGERPRINTS = load("fingerprints.json")


@pytest.mark.parametrize("item", FINGERPRINTS["fingerprints"], ids=lambda item: item["address"])
def test_fingerprint_of_each_fixed_key(item: dict[str, Any]) -> None:
    key = bytes.fromhex(item["signing_public_key_hex"])
    assert key == DIRECTORY[item["address"]]
    assert fingerprint(key) == item["fingerprint"]
    digest = hashlib.sha256(independent_frame(b"hotline/v1/fingerprint", key)).hexdigest()[:32]
    assert item["fingerprint"].replace(" ", "") == digest


@pytest.mark.parametrize(
    "item", FINGERPRINTS["member_codes"], ids=lambda item: f"{item['member']}-{len(item['keys_hex'])}"
)
def test_member_code(item: dict[str, Any]) -> None:
    keys = [bytes.fromhex(k) for k in item["keys_hex"]]
    assert member_code(item["member"], keys) == item["code"]
    assert member_code(item["member"], keys[::-1]) == item["code"]
    assert len(item["code"]) == 30 and item["code"].isdigit()


@pytest.mark.parametrize("item", FINGERPRINTS["safety_numbers"], ids=lambda item: item["name"])
def test_safety_number(item: dict[str, Any]) -> None:
    keys_a = [bytes.fromhex(k) for k in item["keys_a_hex"]]
    keys_b = [bytes.fromhex(k) for k in item["keys_b_hex"]]
    assert safety_number(item["member_a"], keys_a, item["member_b"], keys_b) == item["safety_number"]
    assert safety_number(item["member_b"], keys_b, item["member_a"], keys_a) == item["safety_number"]


def test_safety_numbers_agree_in_both_orders_and_change_with_a_second_device() -> None:
    numbers = {item["name"]: item["safety_number"] for item in FINGERPRINTS["safety_numbers"]}
    assert numbers["delhi-islamabad"] == numbers["islamabad-delhi"]
    assert numbers["delhi-islamabad-two-devices"] == numbers["islamabad-delhi-two-devices-reversed"]
    assert numbers["delhi-islamabad"] != numbers["delhi-islamabad-two-devices"]
    assert len(set(numbers.values())) == 3
    codes = {(c["member"], len(c["keys_hex"])): c["code"] for c in FINGERPRINTS["member_codes"]}
    halves = sorted([codes[("delhi", 1)], codes[("islamabad", 1)]])
    assert numbers["delhi-islamabad"].replace(" ", "") == "".join(halves)


@pytest.mark.parametrize("item", FINGERPRINTS["normalization"], ids=lambda item: item["input"][:11])
def test_safety_number_normalization(item: dict[str, Any]) -> None:
    assert normalize_safety_number(item["input"]) == item["expected"]


# --- negative vectors ---------------------------------------------------------------------------------

REQUIRED_NEGATIVES = {
    "header-bit-flip-still-valid": "bad_signature",
    "header-bit-flip-breaks-json": "malformed",
    "body-bit-flip": "bad_signature",
    "signature-bit-flip": "bad_signature",
    "wrapped-key-bit-flip": "bad_signature",
    "not-a-recipient": "not_a_recipient",
    "duplicate-message": "replay",
    "replayed-seq-new-id": "replay",
    "truncated-wire": "malformed",
    "base64-padding": "malformed",
    "base64-standard-alphabet": "malformed",
    "duplicate-header-key": "malformed",
    "unknown-header-field": "malformed",
    "too-many-recipients": "too_large",
    "oversized-body": "too_large",
    "unsupported-version": "unsupported_version",
    "unsupported-suite": "unsupported_suite",
    "expired-prekey-at-seal": "expired_prekey",
    "erased-prekey": "unknown_key",
}


def test_negative_vectors_are_well_formed_and_cover_the_required_cases() -> None:
    vectors = NEGATIVE["vectors"]
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names))
    for vector in vectors:
        assert {"name", "description", "operation", "error"} <= set(vector)
        assert ErrorCode(vector["error"])
    codes = {v["name"]: v["error"] for v in vectors}
    assert {name: codes.get(name) for name in REQUIRED_NEGATIVES} == REQUIRED_NEGATIVES


def refuse_open_envelope(vector: dict[str, Any]) -> None:
    envelope = Envelope.from_bytes(vector["wire_text"].encode("utf-8"))
    keys = device_keys(vector["recipient"])
    for prekey_id in vector.get("erase_prekeys", []):
        keys.erase_prekey(prekey_id)
    open_envelope(envelope, keys, DIRECTORY[str(envelope.header.sender)])


def refuse_seal_envelope(vector: dict[str, Any]) -> None:
    recipients = [device_keys(r) for r in vector["recipients"]]
    seal_envelope(
        device_keys(vector["sender"]),
        channel="delhi-islamabad",
        seq={k.address.member: 1 for k in recipients},
        recipients=[next(iter(k.prekeys.values())).signed for k in recipients],
        precedence=Precedence.FLASH,
        intent=Intent.LINK_TEST,
        text="link test",
        now_ms=vector["now_ms"],
        rng=DeterministicRng("negative seal"),
    )


def refuse_verify_receipt(vector: dict[str, Any]) -> None:
    receipt = Receipt.from_json(vector["receipt"])
    receipt.verify(DIRECTORY["relay" if receipt.issuer is None else str(receipt.issuer)])


def refuse_verify_tree_head(vector: dict[str, Any]) -> None:
    TreeHead.from_json(vector["tree_head"]).verify(DIRECTORY["relay"])


def refuse_verify_auth(vector: dict[str, Any]) -> None:
    verify_auth_proof(
        DIRECTORY[vector["device"]],
        b64d(vector["signature"], field="signature"),
        vector["relay_id"],
        bytes.fromhex(vector["challenge_hex"]),
        address(vector["device"]),
    )


def refuse_open_key_file(vector: dict[str, Any]) -> None:
    DeviceKeys.from_file(vector["file_text"].encode("utf-8"), vector["passphrase"])


RAISING_OPERATIONS = {
    "open_envelope": refuse_open_envelope,
    "seal_envelope": refuse_seal_envelope,
    "verify_receipt": refuse_verify_receipt,
    "verify_tree_head": refuse_verify_tree_head,
    "verify_auth": refuse_verify_auth,
    "open_key_file": refuse_open_key_file,
}


def refusal_code(vector: dict[str, Any]) -> ErrorCode:
    """Run one negative vector; the code it was refused with. Any other exception fails the test."""
    if vector["operation"] == "receive":
        state = ReceiverState(strict_start=vector["strict_start"])
        events = [
            [type(e).__name__ for e in state.receive(address(m["sender"]), m["seq"], m["id"])]
            for m in vector["messages"]
        ]
        assert events == vector["expected_events"]
        assert "Accepted" not in events[-1]
        assert events[-1] in (["Duplicate"], ["Replay"])
        return ErrorCode.REPLAY
    try:
        RAISING_OPERATIONS[vector["operation"]](vector)
    except ProtocolError as exc:
        return exc.code
    pytest.fail(f"{vector['name']} was accepted")


@pytest.mark.parametrize("vector", NEGATIVE["vectors"], ids=lambda vector: vector["name"])
def test_negative_vector_is_refused_with_its_error_code(vector: dict[str, Any]) -> None:
    assert refusal_code(vector) == ErrorCode(vector["error"])
