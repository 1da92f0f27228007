"""The committed ``hotline-pq1`` vectors (tests/vectors/pq_*.json): reproduced, checked, refused.

As for the classic set (test_vectors.py), two kinds of check. Regeneration runs generate_pq.py in memory and
compares the exact file text; the ML-DSA halves of signatures are random, so the generator reuses the
committed ones where they still verify, and everything else -- bodies, keys, hashes, every Ed25519 half --
must come out the same. Verification reads the files as another implementation would: it rebuilds keys from
the recorded seeds with pyca/cryptography directly, recomputes each Ed25519 half, verifies each ML-DSA-65
half, and opens the envelope with an HPKE key schedule written out here from RFC 9180 and the MLKEM768-X25519
(X-Wing) combiner of draft-ietf-hpke-pq, which pins the KEM id 0x647a.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hotline.protocol import crypto
from hotline.protocol.encoding import b64d
from hotline.protocol.envelope import Envelope, open_envelope, seal_envelope
from hotline.protocol.errors import ErrorCode, ProtocolError
from hotline.protocol.fingerprints import fingerprint, member_code, safety_number
from hotline.protocol.keys import DeviceKeys, PrekeySecret, SignedPrekey
from hotline.protocol.model import DeviceAddress, Intent, Precedence, Suite
from hotline.protocol.receipts import Receipt
from hotline.protocol.statements import TreeHead, verify_auth_proof
from tests.vectors import generate, generate_pq
from tests.vectors.detrng import DeterministicRng

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"
PQ_FILES = generate_pq.FILES
DETERMINISTIC_FILES = tuple(name for name in PQ_FILES if name != generate_pq.ENVELOPE_FILE)
PREFIX = b"hotline/v1/hotline-pq1/signature"
RAW = serialization.Encoding.Raw
RAW_PUB = serialization.PublicFormat.Raw


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTOR_DIR / name).read_text(encoding="utf-8"))
    return doc


def address(text: str) -> DeviceAddress:
    member, device = text.split("/")
    return DeviceAddress(member, device)


def independent_frame(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def independent_hybrid_verify(public: bytes, signature: bytes, message: bytes) -> None:
    """Both halves straight from pyca over frame(PREFIX, message); raises InvalidSignature."""
    assert len(public) == 32 + 1952 and len(signature) == 64 + 3309
    prefixed = independent_frame(PREFIX, message)
    Ed25519PublicKey.from_public_bytes(public[:32]).verify(signature[:64], prefixed)
    MLDSA65PublicKey.from_public_bytes(public[32:]).verify(signature[64:], prefixed)


def independent_ed25519_half(seed: bytes, message: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed[:32]).sign(independent_frame(PREFIX, message))


def independent_xwing_keys(seed: bytes) -> tuple[MLKEM768PrivateKey, X25519PrivateKey, bytes]:
    expanded = hashlib.shake_256(seed).digest(96)
    mlkem = MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    x25519 = X25519PrivateKey.from_private_bytes(expanded[64:])
    public = mlkem.public_key().public_bytes_raw() + x25519.public_key().public_bytes(RAW, RAW_PUB)
    return mlkem, x25519, public


KEYS = load("pq_keys.json")
DEVICES = {d["address"]: d for d in KEYS["devices"]}
DIRECTORY = {a: bytes.fromhex(d["signing_public_key_hex"]) for a, d in DEVICES.items()}
DIRECTORY["relay"] = bytes.fromhex(KEYS["relay"]["signing_public_key_hex"])
SEEDS = {a: bytes.fromhex(d["signing_seed_hex"]) for a, d in DEVICES.items()}
SEEDS["relay"] = bytes.fromhex(KEYS["relay"]["signing_seed_hex"])
ENVELOPE = load("pq_envelope.json")
NEGATIVE = load("pq_negative.json")
CLASSIC_KEYS = json.loads((VECTOR_DIR / "keys.json").read_text(encoding="utf-8"))
CLASSIC_DEVICES = {d["address"]: d for d in CLASSIC_KEYS["devices"]}
CLASSIC_DIRECTORY = {a: bytes.fromhex(d["signing_public_key_hex"]) for a, d in CLASSIC_DEVICES.items()}
CLASSIC_DIRECTORY["relay"] = bytes.fromhex(CLASSIC_KEYS["relay"]["signing_public_key_hex"])


def device_keys(name: str) -> DeviceKeys:
    """A device's hotline-pq1 keys rebuilt from the seeds in pq_keys.json, without the generator."""
    entry = DEVICES[name]
    keys = DeviceKeys(
        address=address(name),
        signing=crypto.HybridSigningKey(bytes.fromhex(entry["signing_seed_hex"])),
        suite=Suite.PQ_HYBRID,
    )
    signed = SignedPrekey.from_json(entry["signed_prekey"])
    keys.prekeys[signed.id] = PrekeySecret(
        crypto.HybridKemKey(bytes.fromhex(entry["prekey_secret_hex"])), signed
    )
    return keys


def classic_device_keys(name: str) -> DeviceKeys:
    entry = CLASSIC_DEVICES[name]
    keys = DeviceKeys(address(name), crypto.SigningKey(bytes.fromhex(entry["signing_seed_hex"])))
    signed = SignedPrekey.from_json(entry["signed_prekey"])
    keys.prekeys[signed.id] = PrekeySecret(crypto.KemKey(bytes.fromhex(entry["prekey_secret_hex"])), signed)
    return keys


# --- every file -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PQ_FILES)
def test_pq_vector_file_starts_with_description_and_generator(name: str) -> None:
    doc = load(name)
    assert list(doc)[:2] == ["description", "generator"]
    assert doc["generator"] == "tests/vectors/generate.py"
    assert len(doc["description"]) > 40


@pytest.fixture(scope="module")
def regenerated() -> dict[str, dict[str, Any]]:
    documents = generate_pq.documents(VECTOR_DIR, reseal=False)
    assert isinstance(documents, dict), documents
    return documents


@pytest.mark.parametrize("name", PQ_FILES)
def test_pq_vector_file_is_regenerated_byte_for_byte(
    name: str, regenerated: dict[str, dict[str, Any]]
) -> None:
    assert generate.render(regenerated[name]) == (VECTOR_DIR / name).read_text(encoding="utf-8")


def test_resealing_reproduces_header_body_and_the_ed25519_half_of_nothing_else() -> None:
    vectors = generate_pq.PqVectors(generate_pq.Pins())
    fresh = vectors.seal_envelope()
    committed = Envelope.from_json(ENVELOPE["wire"])
    assert fresh.header_bytes == committed.header_bytes
    assert fresh.body == committed.body
    assert fresh.wrapped_keys != committed.wrapped_keys  # HPKE ephemeral keys: pyca's own randomness


def test_without_pins_only_the_mldsa_halves_change() -> None:
    """A generation from no committed files: every 3373-byte signature differs, in its ML-DSA half only."""
    fresh = generate_pq.PqVectors(generate_pq.Pins())
    pinned = generate_pq.PqVectors(generate_pq.Pins.from_dir(VECTOR_DIR))
    for make in (
        lambda v: v.tree_head().signature,
        lambda v: v.auth_signature(),
        lambda v: v.prekey(address("islamabad/desk")).signature,
    ):
        a, b = make(fresh), make(pinned)
        assert a[:64] == b[:64]
        assert a[64:] != b[64:]


def test_generator_check_mode_reports_no_difference(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0
    assert "0 vector file(s) differ" in capsys.readouterr().out


def copy_vectors(tmp_path: Path) -> Path:
    for path in VECTOR_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_check_mode_notices_a_changed_pq_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = copy_vectors(tmp_path)
    keys = json.loads((out / "pq_keys.json").read_text(encoding="utf-8"))
    keys["now_ms"] += 1
    (out / "pq_keys.json").write_text(generate.render(keys), encoding="utf-8")
    assert generate.main(["--check", "--out", str(out)]) == 1
    assert "pq_keys.json" in capsys.readouterr().out


def test_check_mode_notices_a_corrupted_mldsa_half(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pin that no longer verifies is not reused: a fresh signature is made and the file differs."""
    out = copy_vectors(tmp_path)
    text = (out / "pq_tree_head.json").read_text(encoding="utf-8")
    signature_hex = load("pq_tree_head.json")["signature_hex"]
    broken = signature_hex[:200] + ("0" if signature_hex[200] != "0" else "1") + signature_hex[201:]
    (out / "pq_tree_head.json").write_text(text.replace(signature_hex, broken), encoding="utf-8")
    assert generate.main(["--check", "--out", str(out)]) == 1
    assert "pq_tree_head.json" in capsys.readouterr().out


def test_check_mode_refuses_to_reseal_a_missing_pq_envelope(tmp_path: Path) -> None:
    out = copy_vectors(tmp_path)
    (out / "pq_envelope.json").unlink()
    assert generate.main(["--check", "--out", str(out)]) == 1


# --- keys -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_pq_device_keys_match_their_seeds_independently(name: str) -> None:
    entry = DEVICES[name]
    seed = bytes.fromhex(entry["signing_seed_hex"])
    assert seed == DeterministicRng(entry["rng_label"])(64)
    ed = Ed25519PrivateKey.from_private_bytes(seed[:32]).public_key().public_bytes(RAW, RAW_PUB)
    ml = MLDSA65PrivateKey.from_seed_bytes(seed[32:]).public_key().public_bytes_raw()
    assert (ed + ml).hex() == entry["signing_public_key_hex"]
    assert device_keys(name).signing_public_key == ed + ml

    prekey_seed = bytes.fromhex(entry["prekey_secret_hex"])
    rng = DeterministicRng(entry["rng_label"])
    rng(64)
    assert prekey_seed == rng(32)
    _, _, public = independent_xwing_keys(prekey_seed)
    assert public.hex() == entry["prekey_public_key_hex"]
    assert hashlib.shake_256(prekey_seed).digest(96).hex() == (
        entry["prekey_mlkem768_seed_hex"] + entry["prekey_x25519_secret_hex"]
    )
    assert crypto.HybridKemKey(prekey_seed).public_bytes == public

    prekey = SignedPrekey.from_json(entry["signed_prekey"])
    assert prekey.suite is Suite.PQ_HYBRID
    assert prekey.public_key == public
    assert prekey.body.decode("utf-8") == entry["signed_prekey_body_text"]
    assert b64d(prekey.id, field="id") == hashlib.sha256(public).digest()[:9]
    assert prekey.id == entry["prekey_id"]
    prekey.verify(ed + ml)
    message = independent_frame(b"hotline/v1/prekey", prekey.body)
    assert prekey.signature[:64] == independent_ed25519_half(seed, message)
    independent_hybrid_verify(ed + ml, prekey.signature, message)
    assert fingerprint(ed + ml) == entry["fingerprint"]


def test_the_relay_key_matches_its_seed() -> None:
    seed = bytes.fromhex(KEYS["relay"]["signing_seed_hex"])
    assert crypto.HybridSigningKey(seed).public_bytes == DIRECTORY["relay"]
    assert seed == DeterministicRng(KEYS["relay"]["rng_label"])(64)


def test_generate_makes_the_vector_keys() -> None:
    for name, entry in DEVICES.items():
        keys = DeviceKeys.generate(
            address(name), DeterministicRng(entry["rng_label"]), KEYS["now_ms"], suite=Suite.PQ_HYBRID
        )
        assert keys.signing_public_key == DIRECTORY[name]
        assert list(keys.prekeys) == [entry["prekey_id"]]
        (secret,) = keys.prekeys.values()
        assert secret.signed.body.decode("utf-8") == entry["signed_prekey_body_text"]


# --- the envelope -----------------------------------------------------------------------------------------


def test_envelope_file_agrees_with_its_own_wire_bytes() -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    vectors = generate_pq.PqVectors(generate_pq.Pins.from_dir(VECTOR_DIR))
    assert generate.render(vectors.envelope_document(envelope)) == (
        VECTOR_DIR / "pq_envelope.json"
    ).read_text(encoding="utf-8")
    assert Envelope.from_bytes(ENVELOPE["wire_text"].encode("utf-8")).to_json() == ENVELOPE["wire"]


def test_envelope_layout_hashes_and_both_signature_halves() -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    assert envelope.header.suite is Suite.PQ_HYBRID
    assert json.loads(envelope.header_bytes)["suite"] == "hotline-pq1"
    assert [len(k) for k in envelope.wrapped_keys] == [1168, 1168]
    body_hash = hashlib.sha256(envelope.body).digest()
    keys_hash = hashlib.sha256(independent_frame(*envelope.wrapped_keys)).digest()
    signed = independent_frame(b"hotline/v1/envelope", envelope.header_bytes, body_hash, keys_hash)
    assert signed.hex() == ENVELOPE["signed_bytes_hex"]
    assert independent_frame(PREFIX, signed).hex() == ENVELOPE["hybrid_signed_bytes_hex"]
    assert body_hash.hex() == ENVELOPE["body_hash_hex"] and keys_hash.hex() == ENVELOPE["keys_hash_hex"]
    envelope_hash = hashlib.sha256(
        independent_frame(
            b"hotline/v1/envelope-hash", envelope.header_bytes, body_hash, keys_hash, envelope.signature
        )
    ).digest()
    assert envelope_hash.hex() == ENVELOPE["envelope_hash_hex"] == envelope.hash.hex()
    sender = ENVELOPE["sender"]
    assert envelope.signature[:64] == independent_ed25519_half(SEEDS[sender], signed)
    independent_hybrid_verify(DIRECTORY[sender], envelope.signature, signed)
    envelope.verify_signature(DIRECTORY[sender])


def test_envelope_header_and_body_are_the_expected_ones() -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    header = json.loads(envelope.header_bytes)
    expected = ENVELOPE["expected_header"]
    assert header["suite"] == expected["suite"] == "hotline-pq1"
    assert header["id"] == expected["id"]
    assert [f"{r['member']}/{r['device']}" for r in header["recipients"]] == [
        r["address"] for r in expected["recipients"]
    ]
    assert [r["prekey"] for r in header["recipients"]] == [r["prekey_id"] for r in expected["recipients"]]


@pytest.mark.parametrize("recipient", ENVELOPE["recipients"])
def test_committed_envelope_opens_for_each_recipient(recipient: str) -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    opened = open_envelope(envelope, device_keys(recipient), DIRECTORY[ENVELOPE["sender"]])
    assert opened.content.to_bytes().hex() == ENVELOPE["expected_content_plaintext_hex"]
    assert opened.content.text == ENVELOPE["inputs"]["text"]
    assert opened.content.intent is Intent.CLARIFICATION_REQUEST


def xwing_hpke_open(seed: bytes, sealed: bytes, info: bytes) -> bytes:
    """RFC 9180 Base-mode open with KEM 0x647a written out: X-Wing decapsulation, then the key schedule."""
    mlkem, x25519, _ = independent_xwing_keys(seed)
    enc, ciphertext = sealed[:1120], sealed[1120:]
    ct_pq, ct_t = enc[:1088], enc[1088:]
    ss_pq = mlkem.decapsulate(ct_pq)
    ss_t = x25519.exchange(X25519PublicKey.from_public_bytes(ct_t))
    pk_t = x25519.public_key().public_bytes(RAW, RAW_PUB)
    shared = hashlib.sha3_256(ss_pq + ss_t + ct_t + pk_t + bytes.fromhex("5c2e2f2f5e5c")).digest()
    suite_id = b"HPKE" + bytes.fromhex("647a") + bytes.fromhex("0001") + bytes.fromhex("0002")

    def extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return hmac.new(salt or bytes(32), b"HPKE-v1" + suite_id + label + ikm, hashlib.sha256).digest()

    def expand(prk: bytes, label: bytes, context: bytes, length: int) -> bytes:
        data = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + context
        return hmac.new(prk, data + b"\x01", hashlib.sha256).digest()[:length]

    context = b"\x00" + extract(b"", b"psk_id_hash", b"") + extract(b"", b"info_hash", info)
    secret = extract(shared, b"secret", b"")
    key, nonce = expand(secret, b"key", context, 32), expand(secret, b"base_nonce", context, 12)
    return AESGCM(key).decrypt(nonce, ciphertext, b"")


@pytest.mark.parametrize("recipient", ENVELOPE["recipients"])
def test_committed_envelope_decrypts_independently(recipient: str) -> None:
    envelope = Envelope.from_json(ENVELOPE["wire"])
    entry = DEVICES[recipient]
    index = ENVELOPE["recipients"].index(recipient)
    header_hash = hashlib.sha256(envelope.header_bytes).digest()
    member, device = recipient.split("/")
    info = independent_frame(
        b"hotline/v1/wrap", header_hash, member.encode(), device.encode(), entry["prekey_id"].encode()
    )
    seed = bytes.fromhex(entry["prekey_secret_hex"])
    content_key = xwing_hpke_open(seed, envelope.wrapped_keys[index], info)
    # pyca's own HPKE agrees, given the component keys from the SHAKE256 expansion.
    mlkem, x25519, _ = independent_xwing_keys(seed)
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    private = hpke.MLKEM768X25519PrivateKey(mlkem, x25519)
    assert suite.decrypt(envelope.wrapped_keys[index], private, info=info) == content_key
    commitment = hashlib.sha256(independent_frame(b"hotline/v1/key-commitment", content_key)).digest()
    assert commitment == b64d(json.loads(envelope.header_bytes)["key_commitment"], field="kc")
    plaintext = AESGCM(content_key).decrypt(
        envelope.body[:12], envelope.body[12:], independent_frame(b"hotline/v1/body", header_hash)
    )
    assert plaintext.hex() == ENVELOPE["expected_content_plaintext_hex"]


# --- receipts, tree head, auth, key file, fingerprints ----------------------------------------------------

RECEIPTS = load("pq_receipts.json")


@pytest.mark.parametrize("item", RECEIPTS["receipts"], ids=lambda item: item["name"])
def test_pq_receipt_verifies_independently_and_has_every_expected_field(item: dict[str, Any]) -> None:
    receipt = Receipt.from_json(item["wire"])
    issuer = item["issuer"]
    assert DIRECTORY[issuer].hex() == item["issuer_public_key_hex"]
    receipt.verify(DIRECTORY[issuer], suite=Suite.PQ_HYBRID)
    assert receipt.body.decode("utf-8") == item["body_text"]
    signed = independent_frame(b"hotline/v1/receipt", receipt.body)
    assert signed.hex() == item["signed_bytes_hex"]
    assert independent_frame(PREFIX, signed).hex() == item["hybrid_signed_bytes_hex"]
    assert receipt.signature.hex() == item["signature_hex"]
    assert receipt.signature[:64] == independent_ed25519_half(SEEDS[issuer], signed)
    independent_hybrid_verify(DIRECTORY[issuer], receipt.signature, signed)
    digest = hashlib.sha256(independent_frame(b"hotline/v1/receipt", receipt.body, receipt.signature))
    assert digest.hexdigest() == item["hash_hex"] == receipt.hash.hex()
    assert item["expected"]["envelope_hash_hex"] == ENVELOPE["envelope_hash_hex"]
    assert item["expected"]["kind"] == receipt.kind.value
    assert item["expected"]["issuer"] == (None if receipt.issuer is None else str(receipt.issuer))


def test_pq_receipts_cover_every_kind() -> None:
    assert {item["expected"]["kind"] for item in RECEIPTS["receipts"]} == {
        "relay-accepted",
        "delivered",
        "acknowledged",
        "rejected",
    }


def test_pq_tree_head_verifies_independently() -> None:
    doc = load("pq_tree_head.json")
    head = TreeHead.from_json(doc["wire"])
    head.verify(DIRECTORY["relay"], suite=Suite.PQ_HYBRID)
    signed = independent_frame(b"hotline/v1/tree-head", head.body)
    assert signed.hex() == doc["signed_bytes_hex"]
    assert head.signature.hex() == doc["signature_hex"]
    assert head.signature[:64] == independent_ed25519_half(SEEDS["relay"], signed)
    independent_hybrid_verify(DIRECTORY["relay"], head.signature, signed)
    assert {"size": head.size, "root_hex": head.root.hex(), "at_ms": head.at_ms} == doc["expected"]
    assert head.body.decode("utf-8") == load("tree_head.json")["body_text"]


def test_pq_auth_proof_verifies_independently() -> None:
    doc = load("pq_auth.json")
    device = address(doc["device"])
    signature = b64d(doc["signature"], field="signature")
    challenge = bytes.fromhex(doc["challenge_hex"])
    verify_auth_proof(
        DIRECTORY[doc["device"]], signature, doc["relay_id"], challenge, device, suite=Suite.PQ_HYBRID
    )
    message = independent_frame(
        b"hotline/v1/auth",
        doc["relay_id"].encode(),
        challenge,
        device.member.encode(),
        device.device.encode(),
    )
    assert message.hex() == doc["message_hex"]
    assert signature[:64] == independent_ed25519_half(SEEDS[doc["device"]], message)
    independent_hybrid_verify(DIRECTORY[doc["device"]], signature, message)


def test_pq_sealed_key_file_opens_with_its_passphrase() -> None:
    doc = load("pq_keyfile.json")
    sealed = DeviceKeys.from_file(doc["file_text"].encode("utf-8"), doc["passphrase"])
    plain = DeviceKeys.from_file(doc["plain_file_text"].encode("utf-8"), None)
    for opened in (sealed, plain):
        assert opened.suite.value == doc["expected_suite"] == "hotline-pq1"
        assert str(opened.address) == doc["expected_address"]
        assert opened.signing_public_key.hex() == doc["expected_signing_public_key_hex"]
        assert sorted(opened.prekeys) == doc["expected_prekey_ids"]
    assert sealed.to_plain_json() == device_keys(doc["expected_address"]).to_plain_json()


FINGERPRINTS = load("pq_fingerprints.json")


@pytest.mark.parametrize("item", FINGERPRINTS["fingerprints"], ids=lambda item: item["address"])
def test_pq_fingerprint(item: dict[str, Any]) -> None:
    key = bytes.fromhex(item["signing_public_key_hex"])
    assert key == DIRECTORY[item["address"]]
    digest = hashlib.sha256(independent_frame(b"hotline/v1/fingerprint", key)).hexdigest()[:32]
    assert item["fingerprint"].replace(" ", "") == digest == fingerprint(key).replace(" ", "")


@pytest.mark.parametrize("item", FINGERPRINTS["safety_numbers"], ids=lambda item: item["name"])
def test_pq_safety_number(item: dict[str, Any]) -> None:
    keys_a = [bytes.fromhex(k) for k in item["keys_a_hex"]]
    keys_b = [bytes.fromhex(k) for k in item["keys_b_hex"]]
    assert safety_number(item["member_a"], keys_a, item["member_b"], keys_b) == item["safety_number"]
    assert safety_number(item["member_b"], keys_b[::-1], item["member_a"], keys_a) == item["safety_number"]


@pytest.mark.parametrize("item", FINGERPRINTS["member_codes"], ids=lambda item: item["member"])
def test_pq_member_code(item: dict[str, Any]) -> None:
    keys = [bytes.fromhex(k) for k in item["keys_hex"]]
    assert member_code(item["member"], keys) == member_code(item["member"], keys[::-1]) == item["code"]


# --- negative vectors -------------------------------------------------------------------------------------

REQUIRED_NEGATIVES = {
    "header-bit-flip-still-valid": "bad_signature",
    "body-bit-flip": "bad_signature",
    "signature-ed25519-half-bit-flip": "bad_signature",
    "signature-mldsa-half-bit-flip": "bad_signature",
    "signature-halves-from-two-signatures": "bad_signature",
    "signature-stripped-to-ed25519": "bad_signature",
    "signature-stripped-to-mldsa": "bad_signature",
    "wrapped-key-bit-flip": "bad_signature",
    "wrapped-key-bit-flip-in-mlkem-resigned": "decryption_failed",
    "wrapped-key-bit-flip-in-x25519-resigned": "decryption_failed",
    "not-a-recipient": "not_a_recipient",
    "erased-prekey": "unknown_key",
    "truncated-wire": "malformed",
    "signature-truncated": "bad_signature",
    "downgrade-header-to-classic-stripped-signature": "unsupported_suite",
    "pq-envelope-opened-by-classic-device": "unsupported_suite",
    "classic-envelope-opened-by-pq-device": "unsupported_suite",
    "pq-sender-seals-to-classic-prekey": "unsupported_suite",
    "classic-sender-seals-to-pq-prekey": "unsupported_suite",
    "receipt-stripped-verified-as-classic": "bad_signature",
    "classic-receipt-in-pq-channel": "unsupported_suite",
    "pq-receipt-in-classic-channel": "unsupported_suite",
    "tree-head-stripped-verified-as-classic": "bad_signature",
    "auth-proof-stripped-verified-as-classic": "bad_signature",
    "pq-prekey-signed-by-classic-key": "unsupported_suite",
}


def test_pq_negative_vectors_are_well_formed_and_cover_the_required_cases() -> None:
    vectors = NEGATIVE["vectors"]
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names))
    for vector in vectors:
        assert list(vector)[:4] == ["name", "description", "error", "operation"]
        assert ErrorCode(vector["error"])
    codes = {v["name"]: v["error"] for v in vectors}
    assert {name: codes.get(name) for name in REQUIRED_NEGATIVES} == REQUIRED_NEGATIVES


def keys_from(file: str, name: str) -> DeviceKeys:
    return {"pq_keys.json": device_keys, "keys.json": classic_device_keys}[file](name)


def signer_key(vector: dict[str, Any], name: str) -> bytes:
    if "signer_public_key_hex" in vector:
        return bytes.fromhex(vector["signer_public_key_hex"])
    return {"pq_keys.json": DIRECTORY, "keys.json": CLASSIC_DIRECTORY}[
        vector.get("directory", "pq_keys.json")
    ][name]


def required_suite(vector: dict[str, Any]) -> Suite | None:
    return Suite(vector["suite"]) if "suite" in vector else None


def refuse_open_envelope(vector: dict[str, Any]) -> None:
    envelope = Envelope.from_bytes(vector["wire_text"].encode("utf-8"))
    keys = keys_from(vector.get("recipient_keys", "pq_keys.json"), vector["recipient"])
    for prekey_id in vector.get("erase_prekeys", []):
        keys.erase_prekey(prekey_id)
    open_envelope(envelope, keys, signer_key(vector, str(envelope.header.sender)))


def refuse_seal_envelope(vector: dict[str, Any]) -> None:
    recipients = [keys_from(vector.get("recipient_keys", "pq_keys.json"), r) for r in vector["recipients"]]
    seal_envelope(
        keys_from(vector.get("sender_keys", "pq_keys.json"), vector["sender"]),
        channel="delhi-islamabad-pq1",
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
    issuer = "relay" if receipt.issuer is None else str(receipt.issuer)
    receipt.verify(signer_key(vector, issuer), suite=required_suite(vector))


def refuse_verify_tree_head(vector: dict[str, Any]) -> None:
    TreeHead.from_json(vector["tree_head"]).verify(signer_key(vector, "relay"), suite=required_suite(vector))


def refuse_verify_auth(vector: dict[str, Any]) -> None:
    verify_auth_proof(
        signer_key(vector, vector["device"]),
        b64d(vector["signature"], field="signature"),
        vector["relay_id"],
        bytes.fromhex(vector["challenge_hex"]),
        address(vector["device"]),
        suite=required_suite(vector),
    )


def refuse_verify_prekey(vector: dict[str, Any]) -> None:
    prekey = SignedPrekey.from_json(vector["prekey"])
    prekey.verify(signer_key(vector, str(prekey.owner)))


def refuse_open_key_file(vector: dict[str, Any]) -> None:
    DeviceKeys.from_file(vector["file_text"].encode("utf-8"), vector["passphrase"])


OPERATIONS = {
    "open_envelope": refuse_open_envelope,
    "seal_envelope": refuse_seal_envelope,
    "verify_receipt": refuse_verify_receipt,
    "verify_tree_head": refuse_verify_tree_head,
    "verify_auth": refuse_verify_auth,
    "verify_prekey": refuse_verify_prekey,
    "open_key_file": refuse_open_key_file,
}


@pytest.mark.parametrize("vector", NEGATIVE["vectors"], ids=lambda vector: vector["name"])
def test_pq_negative_vector_is_refused_with_its_error_code(vector: dict[str, Any]) -> None:
    try:
        OPERATIONS[vector["operation"]](vector)
    except ProtocolError as exc:
        assert exc.code == ErrorCode(vector["error"]), exc
        return
    pytest.fail(f"{vector['name']} was accepted")
