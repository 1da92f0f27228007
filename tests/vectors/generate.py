"""Generates the protocol test vectors in ``tests/vectors/`` from fixed keys, a fixed clock and fixed labels.

Run ``python -m tests.vectors.generate`` (or ``make vectors``) from the repository root. Every key comes
from a :class:`~tests.vectors.detrng.DeterministicRng` over a fixed label and every time from ``NOW_MS``,
so all Ed25519 signatures, hashes, fingerprints, safety numbers, receipts, tree heads and key files are
byte-for-byte reproducible; ``tests/protocol/test_vectors.py`` regenerates them and compares.

The one exception is ``envelope.json``: HPKE's ephemeral key is drawn by pyca/cryptography itself, so the
wrapped keys (and with them the signature and the envelope hash) differ on every run. That file is written
once and kept; pass ``--force`` to replace it, which changes ``receipts.json`` and ``negative.json`` too,
since those are derived from the committed envelope. ``--check`` writes nothing and exits 1 if a
committed file differs from what would be generated.

The ``hotline-pq1`` set (``pq_*.json``) comes from tests/vectors/generate_pq.py in the same run;
``--force-pq`` reseals ``pq_envelope.json``. Its ML-DSA signature halves are random, so committed
signatures are reused where they still fit (see that module).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotline.protocol import crypto
from hotline.protocol.content import Content
from hotline.protocol.encoding import b64d, b64e, dump_json, frame
from hotline.protocol.envelope import Envelope, seal_envelope
from hotline.protocol.errors import ErrorCode, ProtocolError
from hotline.protocol.fingerprints import fingerprint, member_code, normalize_safety_number, safety_number
from hotline.protocol.ids import uuid7
from hotline.protocol.keys import DeviceKeys, SignedPrekey
from hotline.protocol.model import DEFAULT_LIMITS, PROTOCOL_VERSION, DeviceAddress, Intent, Precedence
from hotline.protocol.receipts import (
    DS_RECEIPT,
    Receipt,
    ReceiptKind,
    issue_device_receipt,
    issue_relay_accepted,
)
from hotline.protocol.statements import DS_TREE_HEAD, auth_message, sign_auth_challenge, sign_tree_head
from tests.vectors.detrng import DeterministicRng

GENERATOR = "tests/vectors/generate.py"
VECTOR_DIR = Path(__file__).resolve().parent

NOW_MS = 1767225600000  # 2026-01-01T00:00:00Z
LABEL_PREFIX = "hotline test vectors v1"
RNG_DESCRIPTION = (
    "DeterministicRng (tests/vectors/detrng.py): block i of the stream is SHA-256(label || i), i as 8 bytes "
    "big-endian; rng(n) returns the next n bytes of the stream"
)

SENDER = DeviceAddress("delhi", "laptop")
ISLAMABAD_DESK = DeviceAddress("islamabad", "desk")
ISLAMABAD_PHONE = DeviceAddress("islamabad", "phone")
WASHINGTON_DESK = DeviceAddress("washington", "desk")
# islamabad/phone is a second device of islamabad: it changes islamabad's safety number, and it is the
# enrolled device that is *not* a recipient of the vector envelope.
DEVICES = (SENDER, ISLAMABAD_DESK, ISLAMABAD_PHONE, WASHINGTON_DESK)
RECIPIENTS = (ISLAMABAD_DESK, WASHINGTON_DESK)
RELAY = "relay"

ENVELOPE_INPUTS: dict[str, Any] = {
    "channel": "delhi-islamabad-washington",
    "seq": {"islamabad": 1, "washington": 2},
    "precedence": Precedence.FLASH.value,
    "intent": Intent.CLARIFICATION_REQUEST.value,
    "text": (
        "FLASH. Your radar reports unusual air activity near the border at 0340Z. "
        "Please clarify its nature and intent. We request a reply within one hour. — दिल्ली"
    ),
    "lang": "en",
    "in_reply_to": None,
    "fields": {},
    "exercise": False,
}

KEYFILE_PASSPHRASE = "correct horse battery staple / दिल्ली"
KEYFILE_SCRYPT_N = 2**10  # small so tests are fast; real key files use keys.SCRYPT_N
RELAY_ID = "relay.hotline.test"
TREE_SIZE = 42


def label(*parts: str) -> str:
    return "/".join((LABEL_PREFIX, *parts))


def render(doc: dict[str, Any]) -> str:
    """The exact text of a vector file."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def header(description: str) -> dict[str, Any]:
    return {"description": description, "generator": GENERATOR}


# --- fixed keys ---------------------------------------------------------------------------------------


def device_keys(address: DeviceAddress) -> DeviceKeys:
    """The fixed keys of one vector device: seed then prekey secret from its own label, valid from NOW_MS."""
    return DeviceKeys.generate(address, DeterministicRng(label("device", str(address))), NOW_MS)


def relay_key() -> crypto.SigningKey:
    return crypto.SigningKey(DeterministicRng(label("relay"))(crypto.ED25519_SEED_LEN))


def directory() -> dict[str, bytes]:
    """Signing public keys by address, plus ``relay``: what a client's key directory would hold."""
    keys = {str(a): device_keys(a).signing_public_key for a in DEVICES}
    keys[RELAY] = relay_key().public_bytes
    return keys


def only_prekey(keys: DeviceKeys) -> SignedPrekey:
    (secret,) = keys.prekeys.values()
    return secret.signed


def keys_document() -> dict[str, Any]:
    devices = []
    for address in DEVICES:
        keys = device_keys(address)
        (secret,) = keys.prekeys.values()
        prekey = secret.signed
        devices.append(
            {
                "address": str(address),
                "rng_label": label("device", str(address)),
                "signing_seed_hex": keys.signing.seed().hex(),
                "signing_public_key_hex": keys.signing_public_key.hex(),
                "prekey_secret_hex": secret.secret.secret().hex(),
                "prekey_public_key_hex": prekey.public_key.hex(),
                "prekey_id": prekey.id,
                "prekey_not_before_ms": prekey.not_before_ms,
                "prekey_expires_ms": prekey.expires_ms,
                "signed_prekey": prekey.to_json(),
                "signed_prekey_body_text": prekey.body.decode("utf-8"),
                "fingerprint": fingerprint(keys.signing_public_key),
            }
        )
    relay = relay_key()
    return {
        **header(
            "Fixed device and relay keys. Each device draws its Ed25519 signing seed (32 bytes) and then its "
            "X25519 prekey secret (32 bytes) from its rng_label; the prekey is signed at now_ms and valid "
            "for 7 days. signed_prekey is SignedPrekey.to_json() (base64url as on the wire)."
        ),
        "rng": RNG_DESCRIPTION,
        "now_ms": NOW_MS,
        "devices": devices,
        "relay": {
            "rng_label": label("relay"),
            "signing_seed_hex": relay.seed().hex(),
            "signing_public_key_hex": relay.public_bytes.hex(),
            "fingerprint": fingerprint(relay.public_bytes),
        },
    }


# --- the envelope ---------------------------------------------------------------------------------------


def envelope_rng() -> DeterministicRng:
    return DeterministicRng(label("envelope"))


def seal_vector_envelope() -> Envelope:
    """Seal the vector message. Header and body are reproducible; the wrapped keys are not (HPKE)."""
    return seal_envelope(
        device_keys(SENDER),
        channel=ENVELOPE_INPUTS["channel"],
        seq=ENVELOPE_INPUTS["seq"],
        recipients=[only_prekey(device_keys(a)) for a in RECIPIENTS],
        precedence=Precedence(ENVELOPE_INPUTS["precedence"]),
        intent=Intent(ENVELOPE_INPUTS["intent"]),
        text=ENVELOPE_INPUTS["text"],
        lang=ENVELOPE_INPUTS["lang"],
        in_reply_to=ENVELOPE_INPUTS["in_reply_to"],
        fields=ENVELOPE_INPUTS["fields"],
        exercise=ENVELOPE_INPUTS["exercise"],
        now_ms=NOW_MS,
        rng=envelope_rng(),
    )


def expected_message_id() -> str:
    """seal_envelope draws the message id first: uuid7(now_ms, 10 bytes of the envelope rng)."""
    return uuid7(NOW_MS, envelope_rng())


def expected_header_fields() -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "suite": "hotline-c1",
        "channel": ENVELOPE_INPUTS["channel"],
        "id": expected_message_id(),
        "sender": str(SENDER),
        "seq": ENVELOPE_INPUTS["seq"],
        "recipients": [{"address": str(a), "prekey_id": only_prekey(device_keys(a)).id} for a in RECIPIENTS],
        "precedence": ENVELOPE_INPUTS["precedence"],
        "created_at_ms": NOW_MS,
        "content_type": "hotline.message.v1",
        "exercise": ENVELOPE_INPUTS["exercise"],
    }


def expected_content_fields() -> dict[str, Any]:
    return {
        "channel": ENVELOPE_INPUTS["channel"],
        "id": expected_message_id(),
        "sender": str(SENDER),
        "recipients": [str(a) for a in RECIPIENTS],
        "intent": ENVELOPE_INPUTS["intent"],
        "text": ENVELOPE_INPUTS["text"],
        "lang": ENVELOPE_INPUTS["lang"],
        "in_reply_to": ENVELOPE_INPUTS["in_reply_to"],
        "fields": ENVELOPE_INPUTS["fields"],
    }


def expected_content_bytes() -> bytes:
    return Content(
        channel=ENVELOPE_INPUTS["channel"],
        message_id=expected_message_id(),
        sender=SENDER,
        recipients=RECIPIENTS,
        intent=Intent(ENVELOPE_INPUTS["intent"]),
        text=ENVELOPE_INPUTS["text"],
        lang=ENVELOPE_INPUTS["lang"],
        in_reply_to=ENVELOPE_INPUTS["in_reply_to"],
        fields=ENVELOPE_INPUTS["fields"],
    ).to_bytes()


def envelope_document(envelope: Envelope) -> dict[str, Any]:
    """Everything envelope.json says, derived from the (committed) envelope and the fixed inputs."""
    return {
        **header(
            "A valid FLASH clarification_request from delhi/laptop to islamabad/desk and washington/desk. "
            "The HPKE-wrapped keys use an ephemeral key drawn by pyca/cryptography, so this file is "
            "generated once and kept (generate.py --force replaces it); header and body are reproducible "
            "from the inputs and the envelope rng (message id, then content key, then body nonce)."
        ),
        "rng": RNG_DESCRIPTION,
        "rng_label": label("envelope"),
        "now_ms": NOW_MS,
        "sender": str(SENDER),
        "recipients": [str(a) for a in RECIPIENTS],
        "inputs": ENVELOPE_INPUTS,
        "wire": envelope.to_json(),
        "wire_text": envelope.to_bytes().decode("utf-8"),
        "header_text": envelope.header_bytes.decode("utf-8"),
        "header_hash_hex": crypto.sha256(envelope.header_bytes).hex(),
        "body_hash_hex": envelope.body_hash.hex(),
        "keys_hash_hex": envelope.keys_hash.hex(),
        "signed_bytes_hex": envelope.signed_bytes().hex(),
        "envelope_hash_hex": envelope.hash.hex(),
        "expected_header": expected_header_fields(),
        "expected_content_plaintext_hex": expected_content_bytes().hex(),
        "expected_content": {str(a): expected_content_fields() for a in RECIPIENTS},
    }


def load_committed_envelope(vector_dir: Path = VECTOR_DIR) -> Envelope:
    doc = json.loads((vector_dir / "envelope.json").read_text(encoding="utf-8"))
    return Envelope.from_json(doc["wire"])


# --- receipts, tree head, auth ---------------------------------------------------------------------------


def vector_receipts(envelope: Envelope) -> list[tuple[str, Receipt, str]]:
    """(name, receipt, issuer) for one receipt of each kind about the vector envelope."""
    common: dict[str, Any] = {
        "channel": envelope.header.channel,
        "message_id": envelope.header.message_id,
        "envelope_hash": envelope.hash,
    }
    reply_id = uuid7(NOW_MS + 60_000, DeterministicRng(label("reply")))
    return [
        (
            "relay-accepted",
            issue_relay_accepted(relay_key(), log_index=41, at_ms=NOW_MS + 150, **common),
            RELAY,
        ),
        (
            "delivered",
            issue_device_receipt(
                device_keys(ISLAMABAD_DESK).signing,
                ISLAMABAD_DESK,
                ReceiptKind.DELIVERED,
                at_ms=NOW_MS + 2_000,
                **common,
            ),
            str(ISLAMABAD_DESK),
        ),
        (
            "acknowledged",
            issue_device_receipt(
                device_keys(ISLAMABAD_DESK).signing,
                ISLAMABAD_DESK,
                ReceiptKind.ACKNOWLEDGED,
                at_ms=NOW_MS + 60_000,
                reply_id=reply_id,
                **common,
            ),
            str(ISLAMABAD_DESK),
        ),
        (
            "rejected",
            issue_device_receipt(
                device_keys(WASHINGTON_DESK).signing,
                WASHINGTON_DESK,
                ReceiptKind.REJECTED,
                at_ms=NOW_MS + 2_500,
                reason=ErrorCode.DECRYPTION_FAILED,
                **common,
            ),
            str(WASHINGTON_DESK),
        ),
    ]


def receipts_document(envelope: Envelope) -> dict[str, Any]:
    keys = directory()
    items = []
    for name, receipt, issuer in vector_receipts(envelope):
        items.append(
            {
                "name": name,
                "issuer": issuer,
                "issuer_public_key_hex": keys[issuer].hex(),
                "wire": receipt.to_json(),
                "body_text": receipt.body.decode("utf-8"),
                "signed_bytes_hex": receipt.signed_bytes().hex(),
                "signature_hex": receipt.signature.hex(),
                "hash_hex": receipt.hash.hex(),
                "expected": {
                    "kind": receipt.kind.value,
                    "channel": receipt.channel,
                    "message_id": receipt.message_id,
                    "envelope_hash_hex": receipt.envelope_hash.hex(),
                    "at_ms": receipt.at_ms,
                    "issuer": None if receipt.issuer is None else str(receipt.issuer),
                    "log_index": receipt.log_index,
                    "reply_id": receipt.reply_id,
                    "reason": None if receipt.reason is None else receipt.reason.value,
                },
            }
        )
    return {
        **header(
            "One receipt of each kind about the envelope in envelope.json: relay-accepted (signed by the "
            "relay), delivered and acknowledged (by islamabad/desk, with a reply id) and rejected (by "
            "washington/desk, reason decryption_failed). signed_bytes is frame('hotline/v1/receipt', body); "
            "hash is SHA-256(frame('hotline/v1/receipt', body, sig)). Derived from the committed envelope."
        ),
        "envelope_hash_hex": envelope.hash.hex(),
        "receipts": items,
    }


def tree_root() -> bytes:
    """An arbitrary 32-byte root: the vector pins the tree-head format, not the Merkle computation."""
    return crypto.sha256(label("tree root").encode("utf-8"))


def tree_head_document() -> dict[str, Any]:
    head = sign_tree_head(relay_key(), size=TREE_SIZE, root=tree_root(), at_ms=NOW_MS + 1_000)
    return {
        **header(
            "A relay-signed tree head. The root is SHA-256 of a fixed label, not a real log. signed_bytes "
            "is frame('hotline/v1/tree-head', body)."
        ),
        "relay_public_key_hex": relay_key().public_bytes.hex(),
        "wire": head.to_json(),
        "body_text": head.body.decode("utf-8"),
        "signed_bytes_hex": frame(DS_TREE_HEAD, head.body).hex(),
        "signature_hex": head.signature.hex(),
        "expected": {"size": head.size, "root_hex": head.root.hex(), "at_ms": head.at_ms},
    }


def auth_challenge() -> bytes:
    return DeterministicRng(label("auth challenge"))(32)


def auth_document() -> dict[str, Any]:
    keys = device_keys(SENDER)
    challenge = auth_challenge()
    signature = sign_auth_challenge(keys.signing, RELAY_ID, challenge, SENDER)
    return {
        **header(
            "A device's proof for a relay login challenge: an Ed25519 signature over "
            "frame('hotline/v1/auth', relay_id, challenge, member, device)."
        ),
        "relay_id": RELAY_ID,
        "challenge_hex": challenge.hex(),
        "device": str(SENDER),
        "device_public_key_hex": keys.signing_public_key.hex(),
        "message_hex": auth_message(RELAY_ID, challenge, SENDER).hex(),
        "signature": b64e(signature),
        "signature_hex": signature.hex(),
    }


# --- fingerprints -------------------------------------------------------------------------------------


def fingerprints_document() -> dict[str, Any]:
    keys = directory()
    islamabad_one = [keys[str(ISLAMABAD_DESK)]]
    islamabad_two = [keys[str(ISLAMABAD_DESK)], keys[str(ISLAMABAD_PHONE)]]
    delhi = [keys[str(SENDER)]]
    washington = [keys[str(WASHINGTON_DESK)]]

    def pair(name: str, a: str, keys_a: list[bytes], b: str, keys_b: list[bytes]) -> dict[str, Any]:
        return {
            "name": name,
            "member_a": a,
            "keys_a_hex": [k.hex() for k in keys_a],
            "member_b": b,
            "keys_b_hex": [k.hex() for k in keys_b],
            "safety_number": safety_number(a, keys_a, b, keys_b),
        }

    number = safety_number("delhi", delhi, "islamabad", islamabad_one)
    typed = number.replace(" ", "-")
    return {
        **header(
            "Fingerprints of the fixed signing keys, member codes and safety numbers. The two orders of "
            "a pair give the same safety number, as does any order of a member's device keys; adding "
            "islamabad/phone changes islamabad's code and so the number."
        ),
        "fingerprints": [
            {"address": address, "signing_public_key_hex": key.hex(), "fingerprint": fingerprint(key)}
            for address, key in keys.items()
        ],
        "member_codes": [
            {"member": "delhi", "keys_hex": [k.hex() for k in delhi], "code": member_code("delhi", delhi)},
            {
                "member": "islamabad",
                "keys_hex": [k.hex() for k in islamabad_one],
                "code": member_code("islamabad", islamabad_one),
            },
            {
                "member": "islamabad",
                "keys_hex": [k.hex() for k in islamabad_two],
                "code": member_code("islamabad", islamabad_two),
            },
            {
                "member": "washington",
                "keys_hex": [k.hex() for k in washington],
                "code": member_code("washington", washington),
            },
        ],
        "safety_numbers": [
            pair("delhi-islamabad", "delhi", delhi, "islamabad", islamabad_one),
            pair("islamabad-delhi", "islamabad", islamabad_one, "delhi", delhi),
            pair("delhi-islamabad-two-devices", "delhi", delhi, "islamabad", islamabad_two),
            pair("islamabad-delhi-two-devices-reversed", "islamabad", islamabad_two[::-1], "delhi", delhi),
            pair("delhi-washington", "delhi", delhi, "washington", washington),
        ],
        "normalization": [
            {"input": typed, "expected": normalize_safety_number(typed)},
            {"input": "  " + number.replace(" ", "") + "  ", "expected": number},
        ],
    }


# --- key file ---------------------------------------------------------------------------------------


def keyfile_bytes() -> bytes:
    return device_keys(SENDER).to_file(
        KEYFILE_PASSPHRASE, DeterministicRng(label("keyfile")), scrypt_n=KEYFILE_SCRYPT_N
    )


def keyfile_document() -> dict[str, Any]:
    keys = device_keys(SENDER)
    return {
        **header(
            "delhi/laptop's keys in a passphrase-sealed key file: scrypt (n, r, p as recorded; n is small "
            "for test speed) then AES-256-GCM with AAD 'hotline/v1/keyfile'. Salt (16 bytes) and nonce "
            "(12 bytes) are drawn from rng_label. The passphrase is UTF-8 and not ASCII on purpose."
        ),
        "rng_label": label("keyfile"),
        "passphrase": KEYFILE_PASSPHRASE,
        "scrypt": {"n": KEYFILE_SCRYPT_N, "r": 8, "p": 1},
        "file_text": keyfile_bytes().decode("utf-8"),
        "plain_file_text": keys.to_file(None, DeterministicRng(label("unused"))).decode("utf-8"),
        "expected_address": str(SENDER),
        "expected_signing_public_key_hex": keys.signing_public_key.hex(),
        "expected_prekey_ids": sorted(keys.prekeys),
    }


# --- negative vectors ---------------------------------------------------------------------------------


def flip_bit(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    if data.count(old) != 1:
        raise ValueError(f"expected exactly one {old!r}")
    return data.replace(old, new)


def wire_text(wire: dict[str, Any]) -> str:
    """The envelope's wire JSON as the library writes it (compact, sorted keys)."""
    return dump_json(wire).decode("utf-8")


def with_parts(
    good: Envelope,
    *,
    header_bytes: bytes | None = None,
    body: bytes | None = None,
    keys: tuple[bytes, ...] | None = None,
    signature: bytes | None = None,
    resign: bool = False,
) -> dict[str, Any]:
    """The wire form of ``good`` with some parts replaced, optionally re-signed by the real sender."""
    h = good.header_bytes if header_bytes is None else header_bytes
    b = good.body if body is None else body
    k = good.wrapped_keys if keys is None else keys
    s = good.signature if signature is None else signature
    if resign:
        # signed_bytes() reads only the byte fields, so the good parsed header can stand in for h's.
        unsigned = Envelope(h, b, k, b"", good.header)
        s = device_keys(SENDER).signing.sign(unsigned.signed_bytes())
    return {"header": b64e(h), "body": b64e(b), "keys": [b64e(x) for x in k], "sig": b64e(s)}


def _open(name: str, description: str, error: ErrorCode, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "operation": "open_envelope",
        "recipient": extra.pop("recipient", str(ISLAMABAD_DESK)),
        **extra,
        "wire_text": text,
        "error": error.value,
    }


def envelope_negatives(good: Envelope) -> list[dict[str, Any]]:
    h, body, keys, sig = good.header_bytes, good.body, good.wrapped_keys, good.signature
    vectors: list[dict[str, Any]] = []

    def add(name: str, description: str, error: ErrorCode, wire: dict[str, Any] | str, **extra: Any) -> None:
        text = wire if isinstance(wire, str) else wire_text(wire)
        vectors.append(_open(name, description, error, text, **extra))

    # Bit flips. The signature covers the header and the hashes of body and keys, so any change to signed
    # material is bad_signature -- unless the header no longer parses: sizes and structure are checked
    # before the signature (cheapest first), so a flip that breaks the header's JSON or its version is
    # refused as malformed / unsupported_version without any cryptography.
    at = h.index(b'"channel":"') + len(b'"channel":"')
    add(
        "header-bit-flip-still-valid",
        f"Header byte {at} (first letter of the channel, 0x{h[at]:02x}) with bit 0 flipped: the header is "
        f"still valid JSON with channel {chr(h[at] ^ 1)!r}..., so only the signature catches it.",
        ErrorCode.BAD_SIGNATURE,
        with_parts(good, header_bytes=flip_bit(h, at)),
    )
    add(
        "header-bit-flip-breaks-json",
        "Header byte 0 ('{') with bit 0 flipped to 'z': not JSON, refused while parsing, before the "
        "signature is checked.",
        ErrorCode.MALFORMED,
        with_parts(good, header_bytes=flip_bit(h, 0)),
    )
    at = h.index(b'"v":1') + len(b'"v":')
    add(
        "header-bit-flip-version",
        f"Header byte {at} (the version digit '1') with bit 0 flipped to '0': the version is checked "
        "first, before structure and signature.",
        ErrorCode.UNSUPPORTED_VERSION,
        with_parts(good, header_bytes=flip_bit(h, at)),
    )
    add(
        "body-bit-flip",
        "Body byte 12 (first ciphertext byte after the 12-byte nonce) with bit 0 flipped: the body hash "
        "changes, so the signature fails.",
        ErrorCode.BAD_SIGNATURE,
        with_parts(good, body=flip_bit(body, 12)),
    )
    add(
        "body-bit-flip-resigned",
        "Body byte 12 with bit 0 flipped and the envelope re-signed by the sender: the signature holds, "
        "AES-GCM refuses the body.",
        ErrorCode.DECRYPTION_FAILED,
        with_parts(good, body=flip_bit(body, 12), resign=True),
    )
    add(
        "signature-bit-flip",
        "Signature byte 0 (in R) with bit 0 flipped.",
        ErrorCode.BAD_SIGNATURE,
        with_parts(good, signature=flip_bit(sig, 0)),
    )
    add(
        "signature-bit-flip-in-s",
        "Signature byte 40 (in S) with bit 3 flipped.",
        ErrorCode.BAD_SIGNATURE,
        with_parts(good, signature=flip_bit(sig, 40, 3)),
    )
    add(
        "wrapped-key-bit-flip",
        "Wrapped key 0 (islamabad/desk's) byte 0 (in the HPKE enc) with bit 0 flipped: the keys hash "
        "changes, so the signature fails.",
        ErrorCode.BAD_SIGNATURE,
        with_parts(good, keys=(flip_bit(keys[0], 0), *keys[1:])),
    )
    add(
        "wrapped-key-bit-flip-resigned",
        "Wrapped key 0 byte 40 (in the HPKE ciphertext) with bit 0 flipped, re-signed by the sender: "
        "HPKE refuses it (washington/desk could still open its own key).",
        ErrorCode.DECRYPTION_FAILED,
        with_parts(good, keys=(flip_bit(keys[0], 40), *keys[1:]), resign=True),
    )
    add(
        "wrapped-keys-swapped-resigned",
        "The two wrapped keys swapped and the envelope re-signed: islamabad/desk gets washington/desk's "
        "key, sealed to another prekey and bound to another recipient.",
        ErrorCode.DECRYPTION_FAILED,
        with_parts(good, keys=(keys[1], keys[0]), resign=True),
    )

    # Who opens.
    add(
        "not-a-recipient",
        "The good envelope opened by islamabad/phone, an enrolled device of a recipient member that is "
        "not listed in the header.",
        ErrorCode.NOT_A_RECIPIENT,
        wire_text(good.to_json()),
        recipient=str(ISLAMABAD_PHONE),
    )
    prekey_id = good.header.recipient(ISLAMABAD_DESK).prekey_id
    add(
        "erased-prekey",
        f"The good envelope opened by islamabad/desk after it erased prekey {prekey_id}.",
        ErrorCode.UNKNOWN_KEY,
        wire_text(good.to_json()),
        erase_prekeys=[prekey_id],
    )
    forged = replace_once(
        h,
        b'"sender":{"device":"laptop","member":"delhi"}',
        b'"sender":{"device":"desk","member":"washington"}',
    )
    add(
        "forged-sender-resigned",
        "Header sender changed to washington/desk and signed by delhi/laptop: the signature is checked "
        "against the key of the sender the header names.",
        ErrorCode.BAD_SIGNATURE,
        with_parts(good, header_bytes=forged, resign=True),
    )

    # Header contents, each re-signed by the real sender so the signature is not what refuses them.
    def resigned_header(name: str, description: str, error: ErrorCode, new_header: bytes) -> None:
        add(
            name,
            description + " Re-signed by the sender.",
            error,
            with_parts(good, header_bytes=new_header, resign=True),
        )

    resigned_header(
        "unsupported-version",
        'Header "v":1 replaced by "v":2.',
        ErrorCode.UNSUPPORTED_VERSION,
        replace_once(h, b'"v":1', b'"v":2'),
    )
    resigned_header(
        "version-true",
        'Header "v":1 replaced by "v":true, which Python (not JSON) considers equal to 1.',
        ErrorCode.UNSUPPORTED_VERSION,
        replace_once(h, b'"v":1', b'"v":true'),
    )
    resigned_header(
        "unsupported-suite",
        'Header suite "hotline-c1" replaced by "hotline-x9".',
        ErrorCode.UNSUPPORTED_SUITE,
        replace_once(h, b'"suite":"hotline-c1"', b'"suite":"hotline-x9"'),
    )
    resigned_header(
        "unsupported-content-type",
        'Header content_type "hotline.message.v1" replaced by "hotline.message.v2".',
        ErrorCode.UNSUPPORTED_VERSION,
        replace_once(h, b'"hotline.message.v1"', b'"hotline.message.v2"'),
    )
    resigned_header(
        "unknown-header-field",
        'Header with an extra field "ttl_ms":60000 inserted first.',
        ErrorCode.MALFORMED,
        b'{"ttl_ms":60000,' + h[1:],
    )
    resigned_header(
        "duplicate-header-key",
        'Header with "precedence":"ROUTINE" inserted first, so "precedence" appears twice (a parser '
        "keeping the last value would see FLASH, one keeping the first ROUTINE).",
        ErrorCode.MALFORMED,
        b'{"precedence":"ROUTINE",' + h[1:],
    )
    resigned_header(
        "seq-missing-member",
        'Header seq without washington, a recipient member: {"islamabad":1}.',
        ErrorCode.MALFORMED,
        replace_once(h, b'"seq":{"islamabad":1,"washington":2}', b'"seq":{"islamabad":1}'),
    )
    padding = b'"padding":"' + b"x" * DEFAULT_LIMITS.max_header_bytes + b'",'
    resigned_header(
        "oversized-header",
        f'Header with a field "padding" of {DEFAULT_LIMITS.max_header_bytes} characters inserted, over '
        f"the {DEFAULT_LIMITS.max_header_bytes}-byte header limit: refused on size before parsing.",
        ErrorCode.TOO_LARGE,
        b"{" + padding + h[1:],
    )
    many = DEFAULT_LIMITS.max_recipients + 1
    recipients = b",".join(
        b'{"device":"d%02d","member":"islamabad","prekey":"%s"}' % (i, prekey_id.encode())
        for i in range(many)
    )
    start = h.index(b'"recipients":[') + len(b'"recipients":[')
    end = h.index(b"]", start)
    crowded = h[:start] + recipients + h[end:]
    crowded = replace_once(crowded, b'"seq":{"islamabad":1,"washington":2}', b'"seq":{"islamabad":1}')
    add(
        "too-many-recipients",
        f"Header listing {many} devices (islamabad/d00 to d{many - 1:02d}), one over the limit of "
        f"{DEFAULT_LIMITS.max_recipients}, with {many} copies of wrapped key 0; re-signed by the sender.",
        ErrorCode.TOO_LARGE,
        with_parts(good, header_bytes=crowded, keys=(keys[0],) * many, resign=True),
    )

    add(
        "too-many-header-recipients",
        f"The same {many}-device header with only the two real wrapped keys: the header's recipient count "
        "is over the limit before the key count is compared with it; re-signed by the sender.",
        ErrorCode.TOO_LARGE,
        with_parts(good, header_bytes=crowded, resign=True),
    )

    # Sizes and truncation.
    max_body = DEFAULT_LIMITS.max_body_plaintext_bytes + crypto.AES_NONCE_LEN + crypto.AES_TAG_LEN
    add(
        "oversized-body",
        f"Body of {max_body + 1} zero bytes, one over the limit ({DEFAULT_LIMITS.max_body_plaintext_bytes} "
        "bytes of content + 12 nonce + 16 tag): refused on the base64 length, before decoding.",
        ErrorCode.TOO_LARGE,
        with_parts(good, body=bytes(max_body + 1)),
    )
    add(
        "body-shorter-than-nonce-and-tag",
        "Body truncated to 27 bytes, too short to hold a 12-byte nonce and a 16-byte tag.",
        ErrorCode.MALFORMED,
        with_parts(good, body=body[:27]),
    )
    add(
        "body-truncated-by-one-byte",
        "Body without its last byte.",
        ErrorCode.BAD_SIGNATURE,
        with_parts(good, body=body[:-1]),
    )
    add(
        "signature-truncated",
        "Signature without its last byte (63 bytes).",
        ErrorCode.BAD_SIGNATURE,
        with_parts(good, signature=sig[:-1]),
    )
    good_text = wire_text(good.to_json())
    add(
        "truncated-wire",
        f"The envelope's wire JSON cut after {len(good_text) // 2} of its {len(good_text)} characters.",
        ErrorCode.MALFORMED,
        good_text[: len(good_text) // 2],
    )
    add(
        "missing-wrapped-key",
        "Only wrapped key 0 present: one wrapped key per header recipient is required.",
        ErrorCode.MALFORMED,
        with_parts(good, keys=keys[:1]),
    )
    other_sig = b64e(flip_bit(sig, 0))
    add(
        "duplicate-envelope-key",
        'Wire JSON with a second "sig" member (the signature with bit 0 flipped) after the first.',
        ErrorCode.MALFORMED,
        good_text[:-1] + f',"sig":"{other_sig}"' + "}",
    )

    # Strict base64url.
    wire = good.to_json()
    padded = b64e(h) + "=" * (-len(b64e(h)) % 4)
    if padded == wire["header"]:
        raise ValueError("the header's length is a multiple of 3, so it has no padding to add")
    add(
        "base64-padding",
        f"Header in padded base64url ({len(h)} bytes, so {padded.count('=')} '=' appended).",
        ErrorCode.MALFORMED,
        {**wire, "header": padded},
    )
    add(
        "base64-padding-on-signature",
        'Signature in padded base64url ("==" appended to its 86 characters). The length bound of a '
        "64-byte field (86 characters) is checked before the alphabet, so this is refused as too large.",
        ErrorCode.TOO_LARGE,
        {**wire, "sig": wire["sig"] + "=="},
    )
    standard = wire["body"].replace("-", "+").replace("_", "/")
    if standard == wire["body"]:
        raise ValueError("the body's base64url has no '-' or '_' to turn into the standard alphabet")
    add(
        "base64-standard-alphabet",
        "Body in the standard base64 alphabet ('+' and '/' instead of '-' and '_').",
        ErrorCode.MALFORMED,
        {**wire, "body": standard},
    )
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = wire["sig"][-1]
    noncanonical = wire["sig"][:-1] + alphabet[alphabet.index(last) | 1]
    if b64d(wire["sig"], field="sig") != sig or noncanonical == wire["sig"]:
        raise ValueError("unexpected signature encoding")
    add(
        "base64-non-canonical",
        f"Signature's last character {last!r} replaced by {noncanonical[-1]!r}: the same 64 bytes, but "
        "with a non-zero unused trailing bit, so not the one canonical encoding.",
        ErrorCode.MALFORMED,
        {**wire, "sig": noncanonical},
    )
    add(
        "base64-trailing-newline",
        "Header with a newline appended (a regular expression ending in '$' would let it through).",
        ErrorCode.MALFORMED,
        {**wire, "header": wire["header"] + "\n"},
    )
    return vectors


def other_negatives(good: Envelope) -> list[dict[str, Any]]:
    receipts = {name: receipt for name, receipt, _ in vector_receipts(good)}
    delivered = receipts["delivered"]
    rejected = receipts["rejected"]
    islamabad = device_keys(ISLAMABAD_DESK).signing
    washington = device_keys(WASHINGTON_DESK).signing

    def receipt_wire(body: bytes, signer: crypto.SigningKey) -> dict[str, str]:
        return {"body": b64e(body), "sig": b64e(signer.sign(frame(DS_RECEIPT, body)))}

    def receipt_vector(name: str, description: str, error: ErrorCode, wire: dict[str, str]) -> dict[str, Any]:
        return {
            "name": name,
            "description": description,
            "operation": "verify_receipt",
            "receipt": wire,
            "error": error.value,
        }

    at = delivered.body.index(b'"channel":"') + len(b'"channel":"')
    head = sign_tree_head(relay_key(), size=TREE_SIZE, root=tree_root(), at_ms=NOW_MS + 1_000)
    size_at = head.body.index(b'"size":') + len(b'"size":')
    seq = good.header.seq_for("islamabad")
    sender = str(good.header.sender)
    message_id = good.header.message_id
    auth_signature = sign_auth_challenge(device_keys(SENDER).signing, RELAY_ID, auth_challenge(), SENDER)
    plain_keyfile = json.loads(keyfile_bytes())
    ciphertext = b64d(plain_keyfile["ciphertext"], field="ciphertext")
    tampered_keyfile = dump_json({**plain_keyfile, "ciphertext": b64e(flip_bit(ciphertext, 0))})
    return [
        {
            "name": "expired-prekey-at-seal",
            "description": "delhi/laptop seals to islamabad/desk's prekey at exactly its expires_ms (a "
            "prekey is valid for not_before_ms <= now < expires_ms).",
            "operation": "seal_envelope",
            "sender": str(SENDER),
            "recipients": [str(ISLAMABAD_DESK)],
            "now_ms": only_prekey(device_keys(ISLAMABAD_DESK)).expires_ms,
            "error": ErrorCode.EXPIRED_PREKEY.value,
        },
        {
            "name": "prekey-not-yet-valid-at-seal",
            "description": "delhi/laptop seals to islamabad/desk's prekey 1 ms before its not_before_ms.",
            "operation": "seal_envelope",
            "sender": str(SENDER),
            "recipients": [str(ISLAMABAD_DESK)],
            "now_ms": only_prekey(device_keys(ISLAMABAD_DESK)).not_before_ms - 1,
            "error": ErrorCode.EXPIRED_PREKEY.value,
        },
        {
            "name": "duplicate-message",
            "description": "The good envelope's (sender, seq, id) fed twice to islamabad/desk's "
            "ReceiverState (strict start): the second time is a Duplicate, not accepted again.",
            "operation": "receive",
            "strict_start": True,
            "messages": [
                {"sender": sender, "seq": seq, "id": message_id},
                {"sender": sender, "seq": seq, "id": message_id},
            ],
            "expected_events": [["Accepted"], ["Duplicate"]],
            "error": ErrorCode.REPLAY.value,
        },
        {
            "name": "replayed-seq-new-id",
            "description": "The good envelope, then a message with the same sender and seq but a new id: a "
            "Replay, refused.",
            "operation": "receive",
            "strict_start": True,
            "messages": [
                {"sender": sender, "seq": seq, "id": message_id},
                {
                    "sender": sender,
                    "seq": seq,
                    "id": uuid7(NOW_MS + 1, DeterministicRng(label("replay id"))),
                },
            ],
            "expected_events": [["Accepted"], ["Replay"]],
            "error": ErrorCode.REPLAY.value,
        },
        receipt_vector(
            "receipt-bit-flip",
            f"The delivered receipt with body byte {at} (first letter of the channel) bit 0 flipped; still "
            "valid JSON, so the signature catches it.",
            ErrorCode.BAD_SIGNATURE,
            {"body": b64e(flip_bit(delivered.body, at)), "sig": b64e(delivered.signature)},
        ),
        receipt_vector(
            "receipt-claims-other-issuer",
            "The delivered receipt's issuer changed to washington/desk, signed by islamabad/desk: verified "
            "against the key of the issuer it names.",
            ErrorCode.BAD_SIGNATURE,
            receipt_wire(
                replace_once(
                    delivered.body,
                    b'"issuer":{"device":"desk","member":"islamabad"}',
                    b'"issuer":{"device":"desk","member":"washington"}',
                ),
                islamabad,
            ),
        ),
        receipt_vector(
            "relay-accepted-signed-by-device",
            "The relay-accepted receipt re-signed by islamabad/desk: only the relay key verifies it.",
            ErrorCode.BAD_SIGNATURE,
            receipt_wire(receipts["relay-accepted"].body, islamabad),
        ),
        receipt_vector(
            "receipt-reason-not-a-rejection-reason",
            'The rejected receipt with reason "replay", not one a recipient may give; re-signed.',
            ErrorCode.MALFORMED,
            receipt_wire(replace_once(rejected.body, b'"decryption_failed"', b'"replay"'), washington),
        ),
        receipt_vector(
            "rejected-receipt-without-reason",
            "The rejected receipt without its reason field; re-signed.",
            ErrorCode.MALFORMED,
            receipt_wire(replace_once(rejected.body, b'"reason":"decryption_failed",', b""), washington),
        ),
        receipt_vector(
            "receipt-unsupported-version",
            'The delivered receipt with "v":2; re-signed.',
            ErrorCode.UNSUPPORTED_VERSION,
            receipt_wire(replace_once(delivered.body, b'"v":1', b'"v":2'), islamabad),
        ),
        receipt_vector(
            "receipt-too-large",
            f"A delivered receipt body padded to {DEFAULT_LIMITS.max_receipt_bytes + 1} bytes, one over the "
            "receipt limit: refused on size before parsing.",
            ErrorCode.TOO_LARGE,
            {
                "body": b64e(
                    delivered.body + b" " * (DEFAULT_LIMITS.max_receipt_bytes + 1 - len(delivered.body))
                ),
                "sig": b64e(delivered.signature),
            },
        ),
        {
            "name": "tree-head-bit-flip",
            "description": f"The tree head with body byte {size_at} (first digit of the size) bit 0 flipped.",
            "operation": "verify_tree_head",
            "tree_head": {"body": b64e(flip_bit(head.body, size_at)), "sig": b64e(head.signature)},
            "error": ErrorCode.BAD_SIGNATURE.value,
        },
        {
            "name": "tree-head-signed-by-device",
            "description": "The tree head re-signed by delhi/laptop instead of the relay.",
            "operation": "verify_tree_head",
            "tree_head": {
                "body": b64e(head.body),
                "sig": b64e(device_keys(SENDER).signing.sign(frame(DS_TREE_HEAD, head.body))),
            },
            "error": ErrorCode.BAD_SIGNATURE.value,
        },
        {
            "name": "auth-proof-for-another-relay",
            "description": "delhi/laptop's proof from auth.json presented to a relay with another relay_id.",
            "operation": "verify_auth",
            "device": str(SENDER),
            "relay_id": "evil.example",
            "challenge_hex": auth_challenge().hex(),
            "signature": b64e(auth_signature),
            "error": ErrorCode.BAD_SIGNATURE.value,
        },
        {
            "name": "auth-proof-for-another-device",
            "description": "delhi/laptop's proof from auth.json claimed for islamabad/desk.",
            "operation": "verify_auth",
            "device": str(ISLAMABAD_DESK),
            "relay_id": RELAY_ID,
            "challenge_hex": auth_challenge().hex(),
            "signature": b64e(auth_signature),
            "error": ErrorCode.BAD_SIGNATURE.value,
        },
        {
            "name": "keyfile-wrong-passphrase",
            "description": "The key file from keyfile.json opened with the passphrase in upper case.",
            "operation": "open_key_file",
            "file_text": keyfile_bytes().decode("utf-8"),
            "passphrase": KEYFILE_PASSPHRASE.upper(),
            "error": ErrorCode.BAD_PASSPHRASE.value,
        },
        {
            "name": "keyfile-without-passphrase",
            "description": "The sealed key file from keyfile.json opened without a passphrase.",
            "operation": "open_key_file",
            "file_text": keyfile_bytes().decode("utf-8"),
            "passphrase": None,
            "error": ErrorCode.BAD_PASSPHRASE.value,
        },
        {
            "name": "keyfile-tampered-ciphertext",
            "description": "The key file from keyfile.json with ciphertext byte 0 bit 0 flipped.",
            "operation": "open_key_file",
            "file_text": tampered_keyfile.decode("utf-8"),
            "passphrase": KEYFILE_PASSPHRASE,
            "error": ErrorCode.BAD_PASSPHRASE.value,
        },
    ]


def negative_document(good: Envelope) -> dict[str, Any]:
    return {
        **header(
            "Inputs that must be refused, each with the error code it must raise, made by mutating the exact "
            "bytes of the good envelope, receipts, tree head, auth proof and key file (decode, change, "
            "re-encode). Operations: open_envelope = Envelope.from_bytes(wire_text), look up the signing "
            "key of header.sender in keys.json, open_envelope() with the recipient's keys (after erasing "
            "erase_prekeys); seal_envelope = seal from sender to the recipients' prekeys at now_ms; receive "
            "= feed messages to a fresh ReceiverState (a Duplicate or Replay event is the replay code); "
            "verify_receipt = Receipt.from_json then verify with the key of its issuer (the relay for "
            "relay-accepted); verify_tree_head = TreeHead.from_json then verify with the relay key; "
            "verify_auth = verify_auth_proof with the key of device; open_key_file = DeviceKeys.from_file. "
            "Derived from the committed envelope.json."
        ),
        "vectors": [_lead_with_summary(v) for v in envelope_negatives(good) + other_negatives(good)],
    }


def _lead_with_summary(vector: dict[str, Any]) -> dict[str, Any]:
    """Name, description, error and operation first, so a reader sees them before any long input."""
    first = ("name", "description", "error", "operation")
    return {**{k: vector[k] for k in first}, **{k: v for k, v in vector.items() if k not in first}}


# --- driver -------------------------------------------------------------------------------------------


def deterministic_documents(envelope: Envelope) -> dict[str, dict[str, Any]]:
    """Every vector file except envelope.json, given the committed envelope."""
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "keys.json": keys_document,
        "receipts.json": lambda: receipts_document(envelope),
        "fingerprints.json": fingerprints_document,
        "tree_head.json": tree_head_document,
        "auth.json": auth_document,
        "keyfile.json": keyfile_document,
        "negative.json": lambda: negative_document(envelope),
    }
    return {name: build() for name, build in builders.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.vectors.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--force", action="store_true", help="reseal and overwrite envelope.json")
    parser.add_argument("--force-pq", action="store_true", help="reseal and overwrite pq_envelope.json")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    parser.add_argument("--out", type=Path, default=VECTOR_DIR, help="directory of the vector files")
    args = parser.parse_args(argv)
    out: Path = args.out
    envelope_path = out / "envelope.json"

    files: dict[str, dict[str, Any]] = {}
    if args.force or not envelope_path.exists():
        if args.check:
            print("--check cannot reseal envelope.json (missing, or --force given)", file=sys.stderr)
            return 1
        envelope = seal_vector_envelope()
        files["envelope.json"] = envelope_document(envelope)
    else:
        # Never rewritten without --force: a reseal always differs. Still check the file is consistent.
        try:
            envelope = load_committed_envelope(out)
            consistent = envelope_path.read_text(encoding="utf-8") == render(envelope_document(envelope))
        except ProtocolError as exc:
            print(f"envelope.json no longer parses ({exc!r})", file=sys.stderr)
            consistent = False
        if not consistent:
            print("envelope.json is out of date with the protocol; rerun with --force", file=sys.stderr)
            return 1
    files.update(deterministic_documents(envelope))

    from tests.vectors import generate_pq  # imports this module

    if args.check and (args.force_pq or not (out / generate_pq.ENVELOPE_FILE).exists()):
        print(
            f"--check cannot reseal {generate_pq.ENVELOPE_FILE} (missing, or --force-pq given)",
            file=sys.stderr,
        )
        return 1
    pq_files = generate_pq.documents(out, reseal=args.force_pq)
    if isinstance(pq_files, str):
        print(pq_files, file=sys.stderr)
        return 1
    files.update(pq_files)

    changed = []
    for name, doc in files.items():
        path = out / name
        text = render(doc)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        changed.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    verb = "differ" if args.check else "written"
    print(f"{len(changed)} vector file(s) {verb}: {', '.join(changed) or 'none'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
