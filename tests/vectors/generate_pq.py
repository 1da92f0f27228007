"""The ``hotline-pq1`` vector set (``tests/vectors/pq_*.json``), made in the same run as the classic set.

The same fixed clock, device addresses and label scheme as the classic vectors, with labels under ``pq1/``.
Two things are random whatever the caller passes in, because pyca/cryptography draws them itself:

* HPKE's ephemeral key, as in the classic suite: ``pq_envelope.json`` is sealed once and kept
  (``--force-pq`` reseals it, which changes every file derived from it);
* the ML-DSA-65 half of every hybrid signature (FIPS 204 hedged signing has per-signature randomness, and
  pyca/cryptography offers no deterministic variant).

So that the other files can still be regenerated and compared byte for byte, signatures are *pinned*: the
Ed25519 half of a hybrid signature is deterministic and names the (key, message) it signs, so when the
generator signs a message whose Ed25519 half already appears in a committed ``pq_*.json`` file, and the
committed signature verifies for that message, it reuses the committed signature. Anything that changes
what is signed changes the Ed25519 half, misses the pin and shows up as a differing file. A missing or
corrupted pin makes a fresh signature, which also differs: ``--check`` never passes by accident.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotline.protocol import crypto
from hotline.protocol.content import Content
from hotline.protocol.encoding import b64d, b64e, dump_json, frame
from hotline.protocol.envelope import Envelope, seal_envelope
from hotline.protocol.errors import BadSignatureError, ErrorCode
from hotline.protocol.fingerprints import fingerprint, member_code, safety_number
from hotline.protocol.ids import uuid7
from hotline.protocol.keys import DS_PREKEY, DeviceKeys, SignedPrekey
from hotline.protocol.model import DeviceAddress, Intent, Precedence, Suite
from hotline.protocol.receipts import (
    DS_RECEIPT,
    Receipt,
    ReceiptKind,
    issue_device_receipt,
    issue_relay_accepted,
)
from hotline.protocol.statements import DS_TREE_HEAD, auth_message, sign_auth_challenge, sign_tree_head
from tests.vectors import generate as classic
from tests.vectors.detrng import DeterministicRng
from tests.vectors.generate import (
    DEVICES,
    ISLAMABAD_DESK,
    ISLAMABAD_PHONE,
    KEYFILE_PASSPHRASE,
    KEYFILE_SCRYPT_N,
    NOW_MS,
    RECIPIENTS,
    RELAY,
    RELAY_ID,
    RNG_DESCRIPTION,
    SENDER,
    TREE_SIZE,
    WASHINGTON_DESK,
    flip_bit,
    header,
    replace_once,
    wire_text,
)

SUITE = Suite.PQ_HYBRID
FILES = (
    "pq_keys.json",
    "pq_fingerprints.json",
    "pq_envelope.json",
    "pq_receipts.json",
    "pq_tree_head.json",
    "pq_auth.json",
    "pq_keyfile.json",
    "pq_negative.json",
)
ENVELOPE_FILE = "pq_envelope.json"
ED_LEN = crypto.ED25519_SIGNATURE_LEN
SIG_LEN = crypto.HYBRID_SIGNATURE_LEN

ENVELOPE_INPUTS: dict[str, Any] = {**classic.ENVELOPE_INPUTS, "channel": "delhi-islamabad-washington-pq1"}

HYBRID_DESCRIPTION = (
    "hotline-pq1 (docs/PROTOCOL.md §2.2, ADR 0006). A signing seed is 64 bytes: Ed25519 seed (32) ‖ "
    "ML-DSA-65 seed xi (32). A signing public key is 1984 bytes: Ed25519 (32) ‖ ML-DSA-65 (1952). A "
    "signature is 3373 bytes: Ed25519 (64) ‖ ML-DSA-65 (3309), both over "
    "frame('hotline/v1/hotline-pq1/signature', M) where M is what a hotline-c1 key would sign; ML-DSA uses "
    "an empty context and is hedged (randomized), so its half differs on every signing and is verified, "
    "while the Ed25519 half is reproducible. A prekey secret is a 32-byte MLKEM768-X25519 seed: "
    "SHAKE256(seed, 96) = ML-KEM-768 seed d‖z (64) ‖ X25519 private key (32); its public key is ML-KEM-768 "
    "(1184) ‖ X25519 (32)."
)


def label(*parts: str) -> str:
    return classic.label("pq1", *parts)


# --- pinned signatures ------------------------------------------------------------------------------------

_B64_SIGNATURE = re.compile(rf"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{{{(SIG_LEN * 4 + 2) // 3}}}(?![A-Za-z0-9_-])")
_HEX_SIGNATURE = re.compile(rf"(?<![0-9a-f])[0-9a-f]{{{SIG_LEN * 2}}}(?![0-9a-f])")


class Pins:
    """Committed hybrid signatures, found by their Ed25519 half (several may share one: the negative
    vectors flip bits in the ML-DSA half of good signatures)."""

    def __init__(self, signatures: Iterable[bytes] = ()) -> None:
        self._by_ed25519: dict[bytes, list[bytes]] = {}
        for signature in signatures:
            self.add(signature)

    def add(self, signature: bytes) -> None:
        if len(signature) == SIG_LEN:
            candidates = self._by_ed25519.setdefault(signature[:ED_LEN], [])
            if signature not in candidates:
                candidates.append(signature)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Pins:
        """Every 3373-byte value written as base64url or hex anywhere in the texts (nested JSON too)."""
        found: list[bytes] = []
        for text in texts:
            found.extend(b64d(m, field="pin") for m in _B64_SIGNATURE.findall(text))
            found.extend(bytes.fromhex(m) for m in _HEX_SIGNATURE.findall(text))
        return cls(found)

    @classmethod
    def from_dir(cls, directory: Path) -> Pins:
        return cls.from_texts(
            (directory / name).read_text(encoding="utf-8") for name in FILES if (directory / name).exists()
        )

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_ed25519.values())

    def find(self, public_key: bytes, ed25519_half: bytes, message: bytes) -> bytes | None:
        """The committed signature for ``message``; if several verify (not in a consistent set), the least."""
        valid = []
        for candidate in self._by_ed25519.get(ed25519_half, []):
            try:
                crypto.verify_signature(public_key, candidate, message)
            except BadSignatureError:
                continue
            valid.append(candidate)
        return min(valid, default=None)


class PinnedSigner:
    """A ``hotline-pq1`` signing key that returns the committed signature for a message when there is one."""

    suite = Suite.PQ_HYBRID

    def __init__(self, seed: bytes, pins: Pins) -> None:
        self._key = crypto.HybridSigningKey(seed)
        # The Ed25519 half is computed here straight from pyca, independently of the library's recipe.
        self._ed25519 = Ed25519PrivateKey.from_private_bytes(seed[:32])
        self._pins = pins

    @property
    def public_bytes(self) -> bytes:
        return self._key.public_bytes

    def seed(self) -> bytes:
        return self._key.seed()

    def sign(self, message: bytes) -> bytes:
        ed25519_half = self._ed25519.sign(frame(crypto.DS_HYBRID_SIGNATURE, message))
        pinned = self._pins.find(self.public_bytes, ed25519_half, message)
        if pinned is not None:
            return pinned
        fresh = self._key.sign(message)
        assert fresh[:ED_LEN] == ed25519_half, "the library's Ed25519 half is not the documented one"
        self._pins.add(fresh)  # the same message signed twice in one run gets the same signature
        return fresh


# --- the vector set ---------------------------------------------------------------------------------------


class PqVectors:
    """Every ``hotline-pq1`` document, given the pins and (once sealed or loaded) the envelope."""

    def __init__(self, pins: Pins) -> None:
        self.pins = pins
        self._keys: dict[DeviceAddress, DeviceKeys] = {}

    # keys

    def device_keys(self, address: DeviceAddress) -> DeviceKeys:
        """As ``DeviceKeys.generate(address, rng, NOW_MS, suite=PQ_HYBRID)``: seed (64), then prekey (32)."""
        if address not in self._keys:
            rng = DeterministicRng(label("device", str(address)))
            keys = DeviceKeys(address, PinnedSigner(rng(SUITE.sizes.signing_seed), self.pins), suite=SUITE)
            keys.new_prekey(rng, NOW_MS)
            self._keys[address] = keys
        return self._keys[address]

    def prekey(self, address: DeviceAddress) -> SignedPrekey:
        (secret,) = self.device_keys(address).prekeys.values()
        return secret.signed

    @cached_property
    def relay_key(self) -> PinnedSigner:
        return PinnedSigner(DeterministicRng(label("relay"))(SUITE.sizes.signing_seed), self.pins)

    def directory(self) -> dict[str, bytes]:
        keys = {str(a): self.device_keys(a).signing_public_key for a in DEVICES}
        keys[RELAY] = self.relay_key.public_bytes
        return keys

    def keys_document(self) -> dict[str, Any]:
        devices = []
        for address in DEVICES:
            keys = self.device_keys(address)
            (secret,) = keys.prekeys.values()
            prekey = secret.signed
            expanded = _shake256(secret.secret.secret(), 96)
            devices.append(
                {
                    "address": str(address),
                    "rng_label": label("device", str(address)),
                    "signing_seed_hex": keys.signing.seed().hex(),
                    "signing_public_key_hex": keys.signing_public_key.hex(),
                    "prekey_secret_hex": secret.secret.secret().hex(),
                    "prekey_mlkem768_seed_hex": expanded[:64].hex(),
                    "prekey_x25519_secret_hex": expanded[64:].hex(),
                    "prekey_public_key_hex": prekey.public_key.hex(),
                    "prekey_id": prekey.id,
                    "prekey_not_before_ms": prekey.not_before_ms,
                    "prekey_expires_ms": prekey.expires_ms,
                    "signed_prekey": prekey.to_json(),
                    "signed_prekey_body_text": prekey.body.decode("utf-8"),
                    "fingerprint": fingerprint(keys.signing_public_key),
                }
            )
        relay = self.relay_key
        return {
            **header(
                "Fixed hotline-pq1 device and relay keys. Each device draws its 64-byte signing seed and "
                "then its 32-byte prekey seed from its rng_label; the prekey is signed at now_ms and valid "
                "for 7 days. prekey_mlkem768_seed_hex and prekey_x25519_secret_hex are the SHAKE256 "
                "expansion of the prekey seed. signed_prekey is SignedPrekey.to_json(); its signature's "
                "ML-DSA half is random, so it is verified, not reproduced. " + HYBRID_DESCRIPTION
            ),
            "rng": RNG_DESCRIPTION,
            "suite": SUITE.value,
            "now_ms": NOW_MS,
            "devices": devices,
            "relay": {
                "rng_label": label("relay"),
                "signing_seed_hex": relay.seed().hex(),
                "signing_public_key_hex": relay.public_bytes.hex(),
                "fingerprint": fingerprint(relay.public_bytes),
            },
        }

    def fingerprints_document(self) -> dict[str, Any]:
        keys = self.directory()
        classic_keys = classic.directory()
        delhi = [keys[str(SENDER)]]
        islamabad_one = [keys[str(ISLAMABAD_DESK)]]
        islamabad_two = [keys[str(ISLAMABAD_DESK)], keys[str(ISLAMABAD_PHONE)]]
        # A member moving to the new suite: its classic desk key and its hotline-pq1 phone key at once.
        islamabad_mixed = [classic_keys[str(ISLAMABAD_DESK)], keys[str(ISLAMABAD_PHONE)]]

        def pair(name: str, a: str, keys_a: list[bytes], b: str, keys_b: list[bytes]) -> dict[str, Any]:
            return {
                "name": name,
                "member_a": a,
                "keys_a_hex": [k.hex() for k in keys_a],
                "member_b": b,
                "keys_b_hex": [k.hex() for k in keys_b],
                "safety_number": safety_number(a, keys_a, b, keys_b),
            }

        return {
            **header(
                "Fingerprints, member codes and safety numbers over hotline-pq1 signing public keys (1984 "
                "bytes each): the same formulas as fingerprints.json, over the whole hybrid key. The mixed "
                "case has one classic (32-byte) and one hotline-pq1 key for one member."
            ),
            "fingerprints": [
                {"address": address, "signing_public_key_hex": key.hex(), "fingerprint": fingerprint(key)}
                for address, key in keys.items()
            ],
            "member_codes": [
                {
                    "member": "delhi",
                    "keys_hex": [k.hex() for k in delhi],
                    "code": member_code("delhi", delhi),
                },
                {
                    "member": "islamabad",
                    "keys_hex": [k.hex() for k in islamabad_two],
                    "code": member_code("islamabad", islamabad_two),
                },
            ],
            "safety_numbers": [
                pair("delhi-islamabad", "delhi", delhi, "islamabad", islamabad_one),
                pair("islamabad-delhi", "islamabad", islamabad_one, "delhi", delhi),
                pair("delhi-islamabad-two-devices", "delhi", delhi, "islamabad", islamabad_two),
                pair("delhi-islamabad-mixed-suites", "delhi", delhi, "islamabad", islamabad_mixed),
            ],
        }

    # envelope

    def envelope_rng(self) -> DeterministicRng:
        return DeterministicRng(label("envelope"))

    def seal_envelope(self) -> Envelope:
        """Header and body are reproducible; wrapped keys and the signature's ML-DSA half are not."""
        return seal_envelope(
            self.device_keys(SENDER),
            channel=ENVELOPE_INPUTS["channel"],
            seq=ENVELOPE_INPUTS["seq"],
            recipients=[self.prekey(a) for a in RECIPIENTS],
            precedence=Precedence(ENVELOPE_INPUTS["precedence"]),
            intent=Intent(ENVELOPE_INPUTS["intent"]),
            text=ENVELOPE_INPUTS["text"],
            lang=ENVELOPE_INPUTS["lang"],
            in_reply_to=ENVELOPE_INPUTS["in_reply_to"],
            fields=ENVELOPE_INPUTS["fields"],
            exercise=ENVELOPE_INPUTS["exercise"],
            now_ms=NOW_MS,
            rng=self.envelope_rng(),
        )

    def expected_message_id(self) -> str:
        return uuid7(NOW_MS, self.envelope_rng())

    def expected_header_fields(self) -> dict[str, Any]:
        return {
            "v": 1,
            "suite": SUITE.value,
            "channel": ENVELOPE_INPUTS["channel"],
            "id": self.expected_message_id(),
            "sender": str(SENDER),
            "seq": ENVELOPE_INPUTS["seq"],
            "recipients": [{"address": str(a), "prekey_id": self.prekey(a).id} for a in RECIPIENTS],
            "precedence": ENVELOPE_INPUTS["precedence"],
            "created_at_ms": NOW_MS,
            "content_type": "hotline.message.v1",
            "exercise": ENVELOPE_INPUTS["exercise"],
        }

    def expected_content_bytes(self) -> bytes:
        return Content(
            channel=ENVELOPE_INPUTS["channel"],
            message_id=self.expected_message_id(),
            sender=SENDER,
            recipients=RECIPIENTS,
            intent=Intent(ENVELOPE_INPUTS["intent"]),
            text=ENVELOPE_INPUTS["text"],
            lang=ENVELOPE_INPUTS["lang"],
            in_reply_to=ENVELOPE_INPUTS["in_reply_to"],
            fields=ENVELOPE_INPUTS["fields"],
        ).to_bytes()

    def envelope_document(self, envelope: Envelope) -> dict[str, Any]:
        return {
            **header(
                "A valid hotline-pq1 FLASH clarification_request from delhi/laptop to islamabad/desk and "
                "washington/desk. Each wrapped key is HPKE Base mode with KEM MLKEM768-X25519 (0x647a), "
                "HKDF-SHA256 (0x0001), AES-256-GCM (0x0002): enc (1120: ML-KEM-768 ciphertext 1088 ‖ X25519 "
                "ephemeral 32) ‖ sealed content key (48). pyca/cryptography draws the HPKE ephemeral keys "
                "and the ML-DSA signing randomness, so this file is generated once and kept (generate.py "
                "--force-pq replaces it); header and body are reproducible from the inputs and the envelope "
                "rng (message id, then content key, then body nonce), and so is the signature's Ed25519 half."
            ),
            "rng": RNG_DESCRIPTION,
            "rng_label": label("envelope"),
            "suite": SUITE.value,
            "hpke": {"mode": "0x00", "kem_id": "0x647a", "kdf_id": "0x0001", "aead_id": "0x0002"},
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
            "hybrid_signed_bytes_hex": frame(crypto.DS_HYBRID_SIGNATURE, envelope.signed_bytes()).hex(),
            "envelope_hash_hex": envelope.hash.hex(),
            "expected_header": self.expected_header_fields(),
            "expected_content_plaintext_hex": self.expected_content_bytes().hex(),
        }

    # receipts, tree head, auth, key file

    def receipts(self, envelope: Envelope) -> list[tuple[str, Receipt, str]]:
        common: dict[str, Any] = {
            "channel": envelope.header.channel,
            "message_id": envelope.header.message_id,
            "envelope_hash": envelope.hash,
        }
        islamabad = self.device_keys(ISLAMABAD_DESK).signing
        washington = self.device_keys(WASHINGTON_DESK).signing
        reply_id = uuid7(NOW_MS + 60_000, DeterministicRng(label("reply")))
        return [
            (
                "relay-accepted",
                issue_relay_accepted(self.relay_key, log_index=41, at_ms=NOW_MS + 150, **common),
                RELAY,
            ),
            (
                "delivered",
                issue_device_receipt(
                    islamabad, ISLAMABAD_DESK, ReceiptKind.DELIVERED, at_ms=NOW_MS + 2_000, **common
                ),
                str(ISLAMABAD_DESK),
            ),
            (
                "acknowledged",
                issue_device_receipt(
                    islamabad,
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
                    washington,
                    WASHINGTON_DESK,
                    ReceiptKind.REJECTED,
                    at_ms=NOW_MS + 2_500,
                    reason=ErrorCode.DECRYPTION_FAILED,
                    **common,
                ),
                str(WASHINGTON_DESK),
            ),
        ]

    def receipts_document(self, envelope: Envelope) -> dict[str, Any]:
        keys = self.directory()
        items = []
        for name, receipt, issuer in self.receipts(envelope):
            items.append(
                {
                    "name": name,
                    "issuer": issuer,
                    "issuer_public_key_hex": keys[issuer].hex(),
                    "wire": receipt.to_json(),
                    "body_text": receipt.body.decode("utf-8"),
                    "signed_bytes_hex": receipt.signed_bytes().hex(),
                    "hybrid_signed_bytes_hex": frame(
                        crypto.DS_HYBRID_SIGNATURE, receipt.signed_bytes()
                    ).hex(),
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
                "One receipt of each kind about the envelope in pq_envelope.json, signed with hotline-pq1 "
                "keys (the relay's too). The body format is the classic one: a receipt names no suite, its "
                "issuer's key does. signed_bytes is frame('hotline/v1/receipt', body); both signature halves "
                "sign hybrid_signed_bytes = frame('hotline/v1/hotline-pq1/signature', signed_bytes)."
            ),
            "envelope_hash_hex": envelope.hash.hex(),
            "receipts": items,
        }

    def tree_head(self) -> Any:
        return sign_tree_head(self.relay_key, size=TREE_SIZE, root=classic.tree_root(), at_ms=NOW_MS + 1_000)

    def tree_head_document(self) -> dict[str, Any]:
        head = self.tree_head()
        signed = frame(DS_TREE_HEAD, head.body)
        return {
            **header(
                "A tree head signed by the relay's hotline-pq1 key; the body is the one of tree_head.json. "
                "Both halves sign frame('hotline/v1/hotline-pq1/signature', frame('hotline/v1/tree-head', "
                "body))."
            ),
            "relay_public_key_hex": self.relay_key.public_bytes.hex(),
            "wire": head.to_json(),
            "body_text": head.body.decode("utf-8"),
            "signed_bytes_hex": signed.hex(),
            "hybrid_signed_bytes_hex": frame(crypto.DS_HYBRID_SIGNATURE, signed).hex(),
            "signature_hex": head.signature.hex(),
            "expected": {"size": head.size, "root_hex": head.root.hex(), "at_ms": head.at_ms},
        }

    def auth_signature(self) -> bytes:
        return sign_auth_challenge(
            self.device_keys(SENDER).signing, RELAY_ID, classic.auth_challenge(), SENDER
        )

    def auth_document(self) -> dict[str, Any]:
        message = auth_message(RELAY_ID, classic.auth_challenge(), SENDER)
        signature = self.auth_signature()
        return {
            **header(
                "A hotline-pq1 device's proof for the relay login challenge of auth.json: a hybrid "
                "signature over frame('hotline/v1/hotline-pq1/signature', frame('hotline/v1/auth', "
                "relay_id, challenge, member, device))."
            ),
            "relay_id": RELAY_ID,
            "challenge_hex": classic.auth_challenge().hex(),
            "device": str(SENDER),
            "device_public_key_hex": self.device_keys(SENDER).signing_public_key.hex(),
            "message_hex": message.hex(),
            "hybrid_message_hex": frame(crypto.DS_HYBRID_SIGNATURE, message).hex(),
            "signature": b64e(signature),
            "signature_hex": signature.hex(),
        }

    def keyfile_bytes(self) -> bytes:
        return self.device_keys(SENDER).to_file(
            KEYFILE_PASSPHRASE, DeterministicRng(label("keyfile")), scrypt_n=KEYFILE_SCRYPT_N
        )

    def keyfile_document(self) -> dict[str, Any]:
        keys = self.device_keys(SENDER)
        return {
            **header(
                "delhi/laptop's hotline-pq1 keys in a passphrase-sealed key file, sealed as in keyfile.json. "
                "The plain file has suite 'hotline-pq1', a 64-byte signing_seed and 32-byte prekey secrets."
            ),
            "rng_label": label("keyfile"),
            "passphrase": KEYFILE_PASSPHRASE,
            "scrypt": {"n": KEYFILE_SCRYPT_N, "r": 8, "p": 1},
            "file_text": self.keyfile_bytes().decode("utf-8"),
            "plain_file_text": keys.to_file(None, DeterministicRng(label("unused"))).decode("utf-8"),
            "expected_address": str(SENDER),
            "expected_suite": SUITE.value,
            "expected_signing_public_key_hex": keys.signing_public_key.hex(),
            "expected_prekey_ids": sorted(keys.prekeys),
        }

    # negative vectors

    def with_parts(
        self,
        good: Envelope,
        *,
        header_bytes: bytes | None = None,
        body: bytes | None = None,
        keys: tuple[bytes, ...] | None = None,
        signature: bytes | None = None,
        resign: bool = False,
    ) -> dict[str, Any]:
        """The wire form of ``good`` with parts replaced, optionally re-signed by the real (hybrid) sender."""
        h = good.header_bytes if header_bytes is None else header_bytes
        b = good.body if body is None else body
        k = good.wrapped_keys if keys is None else keys
        s = good.signature if signature is None else signature
        if resign:
            unsigned = Envelope(h, b, k, b"", good.header)
            s = self.device_keys(SENDER).signing.sign(unsigned.signed_bytes())
        return {"header": b64e(h), "body": b64e(b), "keys": [b64e(x) for x in k], "sig": b64e(s)}

    def envelope_negatives(self, good: Envelope) -> list[dict[str, Any]]:
        h, body, keys, sig = good.header_bytes, good.body, good.wrapped_keys, good.signature
        vectors: list[dict[str, Any]] = []

        def add(
            name: str, description: str, error: ErrorCode, wire: dict[str, Any] | str, **extra: Any
        ) -> None:
            text = wire if isinstance(wire, str) else wire_text(wire)
            vectors.append(
                {
                    "name": name,
                    "description": description,
                    "operation": "open_envelope",
                    "recipient": extra.pop("recipient", str(ISLAMABAD_DESK)),
                    **extra,
                    "wire_text": text,
                    "error": error.value,
                }
            )

        at = h.index(b'"channel":"') + len(b'"channel":"')
        add(
            "header-bit-flip-still-valid",
            f"Header byte {at} (first letter of the channel) with bit 0 flipped: still valid JSON, so only "
            "the signature catches it.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, header_bytes=flip_bit(h, at)),
        )
        add(
            "header-bit-flip-breaks-json",
            "Header byte 0 ('{') with bit 0 flipped: not JSON, refused before the signature is checked.",
            ErrorCode.MALFORMED,
            self.with_parts(good, header_bytes=flip_bit(h, 0)),
        )
        at = h.index(b'"v":1') + len(b'"v":')
        add(
            "header-bit-flip-version",
            f"Header byte {at} (the version digit) with bit 0 flipped: the version is checked first.",
            ErrorCode.UNSUPPORTED_VERSION,
            self.with_parts(good, header_bytes=flip_bit(h, at)),
        )
        at = h.index(b'"hotline-pq1"') + len(b'"hotline-pq')
        add(
            "header-bit-flip-suite",
            f"Header byte {at} (the '1' of hotline-pq1) with bit 0 flipped to '0': an unknown suite, refused "
            "while parsing the header.",
            ErrorCode.UNSUPPORTED_SUITE,
            self.with_parts(good, header_bytes=flip_bit(h, at)),
        )
        add(
            "body-bit-flip",
            "Body byte 12 (first ciphertext byte) with bit 0 flipped: the body hash changes.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, body=flip_bit(body, 12)),
        )
        resigned_body = self.with_parts(good, body=flip_bit(body, 12), resign=True)
        add(
            "body-bit-flip-resigned",
            "Body byte 12 with bit 0 flipped, re-signed by the sender: AES-GCM refuses the body.",
            ErrorCode.DECRYPTION_FAILED,
            resigned_body,
        )

        # The hybrid signature: each half alone, each half broken, halves of two signatures.
        add(
            "signature-ed25519-half-bit-flip",
            "Signature byte 0 (in the Ed25519 R) with bit 0 flipped; the ML-DSA-65 half is intact.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, signature=flip_bit(sig, 0)),
        )
        add(
            "signature-ed25519-half-bit-flip-in-s",
            "Signature byte 40 (in the Ed25519 S) with bit 3 flipped; the ML-DSA-65 half is intact.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, signature=flip_bit(sig, 40, 3)),
        )
        add(
            "signature-mldsa-half-bit-flip",
            "Signature byte 64 (first byte of the ML-DSA-65 half) with bit 0 flipped; the Ed25519 half is "
            "intact and valid: both halves must verify.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, signature=flip_bit(sig, ED_LEN)),
        )
        add(
            "signature-mldsa-half-bit-flip-at-end",
            f"Signature byte {SIG_LEN - 1} (last byte of the ML-DSA-65 half) with bit 7 flipped.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, signature=flip_bit(sig, SIG_LEN - 1, 7)),
        )
        other = b64d(resigned_body["sig"], field="sig")
        add(
            "signature-halves-from-two-signatures",
            "The good signature's Ed25519 half with the ML-DSA-65 half of the sender's signature over "
            "another envelope (body-bit-flip-resigned): each half is a real signature by the sender, but "
            "not both over these bytes.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, signature=sig[:ED_LEN] + other[ED_LEN:]),
        )
        add(
            "signature-stripped-to-ed25519",
            "Only the 64-byte Ed25519 half of the signature, checked with the sender's hotline-pq1 key.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, signature=sig[:ED_LEN]),
        )
        add(
            "signature-stripped-to-mldsa",
            "Only the 3309-byte ML-DSA-65 half of the signature.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, signature=sig[ED_LEN:]),
        )
        add(
            "signature-stripped-sender-key-stripped",
            "Only the Ed25519 half of the signature, checked with only the Ed25519 half of the sender's key "
            "(signer_public_key_hex), as if delhi/laptop were a hotline-c1 device: the header says "
            "hotline-pq1, so a classic key is refused before any signature is checked.",
            ErrorCode.UNSUPPORTED_SUITE,
            self.with_parts(good, signature=sig[:ED_LEN]),
            signer_public_key_hex=self.device_keys(SENDER).signing_public_key[:32].hex(),
        )
        add(
            "signature-truncated",
            f"Signature without its last byte ({SIG_LEN - 1} bytes).",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, signature=sig[:-1]),
        )
        add(
            "signature-one-byte-too-long",
            f"Signature with a zero byte appended ({SIG_LEN + 1} bytes): over the hotline-pq1 signature "
            "length, refused on the base64 length before any cryptography.",
            ErrorCode.TOO_LARGE,
            self.with_parts(good, signature=sig + b"\0"),
        )

        # Wrapped keys: either KEM half, the AEAD part, the length.
        add(
            "wrapped-key-bit-flip",
            "Wrapped key 0 byte 0 (in the ML-KEM-768 ciphertext) with bit 0 flipped: the keys hash changes.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, keys=(flip_bit(keys[0], 0), *keys[1:])),
        )
        for name, index, where in (
            ("mlkem", 0, "byte 0, in the ML-KEM-768 ciphertext"),
            ("x25519", 1100, "byte 1100, in the X25519 ephemeral key"),
            ("aead", 1130, "byte 1130, in the AES-256-GCM ciphertext of the content key"),
        ):
            add(
                f"wrapped-key-bit-flip-in-{name}-resigned",
                f"Wrapped key 0 {where}, bit 0 flipped, re-signed by the sender: HPKE refuses it (the "
                "hybrid KEM's shared secret depends on both halves).",
                ErrorCode.DECRYPTION_FAILED,
                self.with_parts(good, keys=(flip_bit(keys[0], index), *keys[1:]), resign=True),
            )
        add(
            "wrapped-key-of-classic-length-resigned",
            "Wrapped key 0 cut to its last 80 bytes (a hotline-c1 wrapped key's length), re-signed.",
            ErrorCode.DECRYPTION_FAILED,
            self.with_parts(good, keys=(keys[0][-80:], *keys[1:]), resign=True),
        )
        add(
            "wrapped-key-one-byte-too-long",
            f"Wrapped key 0 with a zero byte appended ({len(keys[0]) + 1} bytes): over the largest wrapped "
            "key of any suite, refused on size.",
            ErrorCode.TOO_LARGE,
            self.with_parts(good, keys=(keys[0] + b"\0", *keys[1:])),
        )
        add(
            "wrapped-keys-swapped-resigned",
            "The two wrapped keys swapped and re-signed: islamabad/desk gets washington/desk's wrap.",
            ErrorCode.DECRYPTION_FAILED,
            self.with_parts(good, keys=(keys[1], keys[0]), resign=True),
        )
        add(
            "missing-wrapped-key",
            "Only wrapped key 0 present.",
            ErrorCode.MALFORMED,
            self.with_parts(good, keys=keys[:1]),
        )
        add(
            "body-truncated-by-one-byte",
            "Body without its last byte.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, body=body[:-1]),
        )
        good_text = wire_text(good.to_json())
        add(
            "truncated-wire",
            f"The envelope's wire JSON cut after {len(good_text) // 2} of its {len(good_text)} characters.",
            ErrorCode.MALFORMED,
            good_text[: len(good_text) // 2],
        )
        wire = good.to_json()
        add(
            "base64-padding-on-signature",
            "Signature in padded base64url ('=' appended twice to its 4498 characters): over the length "
            "bound of a 3373-byte field, so too large.",
            ErrorCode.TOO_LARGE,
            {**wire, "sig": wire["sig"] + "=="},
        )

        # Who opens.
        add(
            "not-a-recipient",
            "The good envelope opened by islamabad/phone, enrolled but not listed in the header.",
            ErrorCode.NOT_A_RECIPIENT,
            good_text,
            recipient=str(ISLAMABAD_PHONE),
        )
        prekey_id = good.header.recipient(ISLAMABAD_DESK).prekey_id
        add(
            "erased-prekey",
            f"The good envelope opened by islamabad/desk after it erased prekey {prekey_id}.",
            ErrorCode.UNKNOWN_KEY,
            good_text,
            erase_prekeys=[prekey_id],
        )
        forged = replace_once(
            h,
            b'"sender":{"device":"laptop","member":"delhi"}',
            b'"sender":{"device":"desk","member":"washington"}',
        )
        add(
            "forged-sender-resigned",
            "Header sender changed to washington/desk and signed by delhi/laptop.",
            ErrorCode.BAD_SIGNATURE,
            self.with_parts(good, header_bytes=forged, resign=True),
        )
        for name, description, error, new_header in (
            (
                "unsupported-version",
                'Header "v":1 replaced by "v":2.',
                ErrorCode.UNSUPPORTED_VERSION,
                replace_once(h, b'"v":1', b'"v":2'),
            ),
            (
                "unsupported-suite",
                'Header suite "hotline-pq1" replaced by "hotline-x9".',
                ErrorCode.UNSUPPORTED_SUITE,
                replace_once(h, b'"suite":"hotline-pq1"', b'"suite":"hotline-x9"'),
            ),
            (
                "unknown-header-field",
                'Header with an extra field "ttl_ms":60000 inserted first.',
                ErrorCode.MALFORMED,
                b'{"ttl_ms":60000,' + h[1:],
            ),
        ):
            add(
                name,
                description + " Re-signed by the sender.",
                error,
                self.with_parts(good, header_bytes=new_header, resign=True),
            )

        # Suite mismatches, both ways.
        add(
            "downgrade-header-to-classic-stripped-signature",
            'Header suite changed to "hotline-c1" and the signature stripped to its Ed25519 half, opened by '
            "islamabad/desk (a hotline-pq1 device): the header's suite is not the receiver's.",
            ErrorCode.UNSUPPORTED_SUITE,
            self.with_parts(
                good,
                header_bytes=replace_once(h, b'"suite":"hotline-pq1"', b'"suite":"hotline-c1"'),
                signature=sig[:ED_LEN],
            ),
        )
        add(
            "pq-envelope-opened-by-classic-device",
            "The good envelope opened by islamabad/desk's hotline-c1 keys from keys.json (recipient_keys).",
            ErrorCode.UNSUPPORTED_SUITE,
            good_text,
            recipient_keys="keys.json",
        )
        classic_envelope = classic.load_committed_envelope()
        add(
            "classic-envelope-opened-by-pq-device",
            "The classic envelope of envelope.json opened by islamabad/desk's hotline-pq1 keys.",
            ErrorCode.UNSUPPORTED_SUITE,
            wire_text(classic_envelope.to_json()),
        )
        add(
            "classic-envelope-with-pq-sender-key",
            "The classic envelope of envelope.json opened by islamabad/desk's hotline-c1 keys, but with "
            "delhi/laptop's hotline-pq1 key as the sender key (a directory that moved the sender to the new "
            "suite): the key is not of the header's suite.",
            ErrorCode.UNSUPPORTED_SUITE,
            wire_text(classic_envelope.to_json()),
            recipient_keys="keys.json",
            signer_public_key_hex=self.device_keys(SENDER).signing_public_key.hex(),
        )
        return vectors

    def other_negatives(self, good: Envelope) -> list[dict[str, Any]]:
        receipts = {name: receipt for name, receipt, _ in self.receipts(good)}
        delivered = receipts["delivered"]
        islamabad = self.device_keys(ISLAMABAD_DESK)
        classic_delivered = {
            name: r for name, r, _ in classic.vector_receipts(classic.load_committed_envelope())
        }["delivered"]

        def receipt_vector(
            name: str, description: str, error: ErrorCode, wire: dict[str, str], **extra: Any
        ) -> dict[str, Any]:
            return {
                "name": name,
                "description": description,
                "operation": "verify_receipt",
                **extra,
                "receipt": wire,
                "error": error.value,
            }

        def with_sig(signature: bytes) -> dict[str, str]:
            return {"body": b64e(delivered.body), "sig": b64e(signature)}

        sig = delivered.signature
        at = delivered.body.index(b'"channel":"') + len(b'"channel":"')
        head = self.tree_head()
        size_at = head.body.index(b'"size":') + len(b'"size":')
        auth_signature = self.auth_signature()
        prekey = self.prekey(ISLAMABAD_DESK)

        def auth_vector(name: str, description: str, error: ErrorCode, **fields: Any) -> dict[str, Any]:
            return {
                "name": name,
                "description": description,
                "operation": "verify_auth",
                "device": str(SENDER),
                "relay_id": RELAY_ID,
                "challenge_hex": classic.auth_challenge().hex(),
                "signature": b64e(auth_signature),
                **fields,
                "error": error.value,
            }

        def prekey_vector(name: str, description: str, error: ErrorCode, **fields: Any) -> dict[str, Any]:
            return {
                "name": name,
                "description": description,
                "operation": "verify_prekey",
                "prekey": prekey.to_json(),
                **fields,
                "error": error.value,
            }

        plain = json.loads(self.device_keys(SENDER).to_file(None, DeterministicRng(label("unused"))))
        short_seed = dump_json({**plain, "signing_seed": b64e(self.device_keys(SENDER).signing.seed()[:32])})
        classic_prekeys = dump_json(
            {
                **plain,
                "prekeys": json.loads(classic.device_keys(SENDER).to_file(None, DeterministicRng("x")))[
                    "prekeys"
                ],
            }
        )
        pq_body_classic_key = replace_once(
            prekey.body,
            b'"public_key":"' + b64e(prekey.public_key).encode(),
            b'"public_key":"' + b64e(bytes(32)).encode(),
        )
        return [
            {
                "name": "pq-sender-seals-to-classic-prekey",
                "description": "delhi/laptop (hotline-pq1) seals to islamabad/desk's hotline-c1 prekey from "
                "keys.json (recipient_keys).",
                "operation": "seal_envelope",
                "sender": str(SENDER),
                "recipients": [str(ISLAMABAD_DESK)],
                "recipient_keys": "keys.json",
                "now_ms": NOW_MS,
                "error": ErrorCode.UNSUPPORTED_SUITE.value,
            },
            {
                "name": "classic-sender-seals-to-pq-prekey",
                "description": "delhi/laptop's hotline-c1 keys from keys.json (sender_keys) seal to "
                "islamabad/desk's hotline-pq1 prekey.",
                "operation": "seal_envelope",
                "sender": str(SENDER),
                "sender_keys": "keys.json",
                "recipients": [str(ISLAMABAD_DESK)],
                "now_ms": NOW_MS,
                "error": ErrorCode.UNSUPPORTED_SUITE.value,
            },
            {
                "name": "expired-prekey-at-seal",
                "description": "delhi/laptop seals to islamabad/desk's hotline-pq1 prekey at its expires_ms.",
                "operation": "seal_envelope",
                "sender": str(SENDER),
                "recipients": [str(ISLAMABAD_DESK)],
                "now_ms": prekey.expires_ms,
                "error": ErrorCode.EXPIRED_PREKEY.value,
            },
            receipt_vector(
                "receipt-bit-flip",
                f"The delivered receipt with body byte {at} bit 0 flipped.",
                ErrorCode.BAD_SIGNATURE,
                {"body": b64e(flip_bit(delivered.body, at)), "sig": b64e(sig)},
            ),
            receipt_vector(
                "receipt-ed25519-half-bit-flip",
                "The delivered receipt with signature byte 0 (Ed25519 half) bit 0 flipped.",
                ErrorCode.BAD_SIGNATURE,
                with_sig(flip_bit(sig, 0)),
            ),
            receipt_vector(
                "receipt-mldsa-half-bit-flip",
                "The delivered receipt with signature byte 64 (ML-DSA-65 half) bit 0 flipped.",
                ErrorCode.BAD_SIGNATURE,
                with_sig(flip_bit(sig, ED_LEN)),
            ),
            receipt_vector(
                "receipt-stripped-to-ed25519",
                "The delivered receipt with only the Ed25519 half of its signature, checked with islamabad/"
                "desk's hotline-pq1 key.",
                ErrorCode.BAD_SIGNATURE,
                with_sig(sig[:ED_LEN]),
            ),
            receipt_vector(
                "receipt-stripped-verified-as-classic",
                "The delivered receipt with only the Ed25519 half of its signature, checked with only the "
                "Ed25519 half of islamabad/desk's key (signer_public_key_hex) as a hotline-c1 receipt: that "
                "half signed frame('hotline/v1/hotline-pq1/signature', ...), never the classic signature "
                "input, so stripping the ML-DSA-65 half does not make a valid classic receipt.",
                ErrorCode.BAD_SIGNATURE,
                with_sig(sig[:ED_LEN]),
                signer_public_key_hex=islamabad.signing_public_key[:32].hex(),
            ),
            receipt_vector(
                "receipt-signature-one-byte-too-long",
                f"The delivered receipt with a zero byte appended to its signature ({SIG_LEN + 1} bytes).",
                ErrorCode.TOO_LARGE,
                with_sig(sig + b"\0"),
            ),
            receipt_vector(
                "relay-accepted-signed-by-device",
                "The relay-accepted receipt re-signed by islamabad/desk: only the relay key verifies it.",
                ErrorCode.BAD_SIGNATURE,
                {
                    "body": b64e(receipts["relay-accepted"].body),
                    "sig": b64e(islamabad.signing.sign(frame(DS_RECEIPT, receipts["relay-accepted"].body))),
                },
            ),
            receipt_vector(
                "classic-receipt-in-pq-channel",
                "The hotline-c1 delivered receipt of receipts.json, verified with islamabad/desk's "
                "hotline-c1 key (directory keys.json) for a hotline-pq1 channel (suite): its signature is "
                "valid, its issuer's key is of the wrong suite.",
                ErrorCode.UNSUPPORTED_SUITE,
                classic_delivered.to_json(),
                directory="keys.json",
                suite=SUITE.value,
            ),
            receipt_vector(
                "pq-receipt-in-classic-channel",
                "The hotline-pq1 delivered receipt, valid, verified for a hotline-c1 channel (suite).",
                ErrorCode.UNSUPPORTED_SUITE,
                delivered.to_json(),
                suite=Suite.CLASSIC.value,
            ),
            {
                "name": "tree-head-bit-flip",
                "description": f"The tree head with body byte {size_at} bit 0 flipped.",
                "operation": "verify_tree_head",
                "tree_head": {"body": b64e(flip_bit(head.body, size_at)), "sig": b64e(head.signature)},
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
            {
                "name": "tree-head-mldsa-half-bit-flip",
                "description": "The tree head with signature byte 100 (ML-DSA-65 half) bit 0 flipped.",
                "operation": "verify_tree_head",
                "tree_head": {"body": b64e(head.body), "sig": b64e(flip_bit(head.signature, 100))},
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
            {
                "name": "tree-head-stripped-verified-as-classic",
                "description": "The tree head with only the Ed25519 half of its signature, checked with "
                "only the Ed25519 half of the relay's key (signer_public_key_hex).",
                "operation": "verify_tree_head",
                "signer_public_key_hex": self.relay_key.public_bytes[:32].hex(),
                "tree_head": {"body": b64e(head.body), "sig": b64e(head.signature[:ED_LEN])},
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
            {
                "name": "tree-head-signed-by-device",
                "description": "The tree head re-signed by delhi/laptop's hotline-pq1 key, not the relay's.",
                "operation": "verify_tree_head",
                "tree_head": {
                    "body": b64e(head.body),
                    "sig": b64e(self.device_keys(SENDER).signing.sign(frame(DS_TREE_HEAD, head.body))),
                },
                "error": ErrorCode.BAD_SIGNATURE.value,
            },
            auth_vector(
                "auth-proof-for-another-relay",
                "delhi/laptop's proof from pq_auth.json presented to a relay with another relay_id.",
                ErrorCode.BAD_SIGNATURE,
                relay_id="evil.example",
            ),
            auth_vector(
                "auth-proof-mldsa-half-bit-flip",
                "delhi/laptop's proof with signature byte 64 (ML-DSA-65 half) bit 0 flipped.",
                ErrorCode.BAD_SIGNATURE,
                signature=b64e(flip_bit(auth_signature, ED_LEN)),
            ),
            auth_vector(
                "auth-proof-stripped-verified-as-classic",
                "delhi/laptop's proof cut to its Ed25519 half, checked with the Ed25519 half of its key.",
                ErrorCode.BAD_SIGNATURE,
                signature=b64e(auth_signature[:ED_LEN]),
                signer_public_key_hex=self.device_keys(SENDER).signing_public_key[:32].hex(),
            ),
            prekey_vector(
                "prekey-mldsa-half-bit-flip",
                "islamabad/desk's signed prekey with signature byte 64 (ML-DSA-65 half) bit 0 flipped.",
                ErrorCode.BAD_SIGNATURE,
                prekey={"body": b64e(prekey.body), "sig": b64e(flip_bit(prekey.signature, ED_LEN))},
            ),
            prekey_vector(
                "pq-prekey-signed-by-classic-key",
                "islamabad/desk's hotline-pq1 prekey checked with its hotline-c1 key (directory keys.json).",
                ErrorCode.UNSUPPORTED_SUITE,
                directory="keys.json",
            ),
            prekey_vector(
                "classic-prekey-signed-by-pq-key",
                "islamabad/desk's hotline-c1 prekey from keys.json checked against its hotline-pq1 key.",
                ErrorCode.UNSUPPORTED_SUITE,
                prekey=classic.only_prekey(classic.device_keys(ISLAMABAD_DESK)).to_json(),
            ),
            prekey_vector(
                "pq-prekey-with-classic-public-key",
                "islamabad/desk's hotline-pq1 prekey body with a 32-byte public_key (the length of a "
                "hotline-c1 prekey), re-signed: refused while parsing.",
                ErrorCode.MALFORMED,
                prekey={
                    "body": b64e(pq_body_classic_key),
                    "sig": b64e(islamabad.signing.sign(frame(DS_PREKEY, pq_body_classic_key))),
                },
            ),
            prekey_vector(
                "prekey-signature-stripped-to-ed25519",
                "islamabad/desk's hotline-pq1 prekey with only the Ed25519 half of its signature.",
                ErrorCode.BAD_SIGNATURE,
                prekey={"body": b64e(prekey.body), "sig": b64e(prekey.signature[:ED_LEN])},
            ),
            {
                "name": "keyfile-wrong-passphrase",
                "description": "The key file from pq_keyfile.json opened with the passphrase in upper case.",
                "operation": "open_key_file",
                "file_text": self.keyfile_bytes().decode("utf-8"),
                "passphrase": KEYFILE_PASSPHRASE.upper(),
                "error": ErrorCode.BAD_PASSPHRASE.value,
            },
            {
                "name": "keyfile-classic-length-signing-seed",
                "description": "delhi/laptop's plain hotline-pq1 key file with signing_seed cut to 32 bytes "
                "(a hotline-c1 seed).",
                "operation": "open_key_file",
                "file_text": short_seed.decode("utf-8"),
                "passphrase": None,
                "error": ErrorCode.MALFORMED.value,
            },
            {
                "name": "keyfile-classic-prekeys",
                "description": "delhi/laptop's plain hotline-pq1 key file holding the hotline-c1 prekeys of "
                "keyfile.json (each signed by the classic key).",
                "operation": "open_key_file",
                "file_text": classic_prekeys.decode("utf-8"),
                "passphrase": None,
                "error": ErrorCode.UNSUPPORTED_SUITE.value,
            },
        ]

    def negative_document(self, good: Envelope) -> dict[str, Any]:
        return {
            **header(
                "hotline-pq1 inputs that must be refused, each with its error code, made from the good "
                "envelope, receipts, tree head, auth proof, prekeys and key file of the pq_*.json files. "
                "Operations as in negative.json, with keys from pq_keys.json unless a vector says otherwise: "
                "recipient_keys / sender_keys name the file (keys.json or pq_keys.json) of the device keys "
                "used; directory names the file whose key directory gives the signer's public key; "
                "signer_public_key_hex replaces that key; suite is the suite the verifier requires (the "
                "channel's), passed to verify(suite=...). verify_prekey = SignedPrekey.from_json then verify "
                "with the key of its owner. Cases that do not depend on the suite (oversized header and "
                "body, recipient counts, JSON and most base64 rules, the receiver) are in negative.json."
            ),
            "vectors": [
                classic._lead_with_summary(v)
                for v in self.envelope_negatives(good) + self.other_negatives(good)
            ],
        }

    # driver

    def load_envelope(self, directory: Path) -> Envelope:
        doc = json.loads((directory / ENVELOPE_FILE).read_text(encoding="utf-8"))
        return Envelope.from_json(doc["wire"])

    def deterministic_documents(self, envelope: Envelope) -> dict[str, dict[str, Any]]:
        builders: dict[str, Callable[[], dict[str, Any]]] = {
            "pq_keys.json": self.keys_document,
            "pq_fingerprints.json": self.fingerprints_document,
            "pq_receipts.json": lambda: self.receipts_document(envelope),
            "pq_tree_head.json": self.tree_head_document,
            "pq_auth.json": self.auth_document,
            "pq_keyfile.json": self.keyfile_document,
            "pq_negative.json": lambda: self.negative_document(envelope),
        }
        return {name: build() for name, build in builders.items()}


def _shake256(data: bytes, n: int) -> bytes:
    return hashlib.shake_256(data).digest(n)


def documents(out: Path, *, reseal: bool) -> dict[str, dict[str, Any]] | str:
    """Every pq_*.json document for directory ``out``, or the reason they cannot be made without resealing."""
    vectors = PqVectors(Pins.from_dir(out))
    envelope_path = out / ENVELOPE_FILE
    if reseal or not envelope_path.exists():
        envelope = vectors.seal_envelope()
    else:
        try:
            envelope = vectors.load_envelope(out)
        except Exception as exc:  # a vector file that no longer parses is reported, not raised
            return f"{ENVELOPE_FILE} no longer parses ({exc!r})"
        if envelope_path.read_text(encoding="utf-8") != classic.render(vectors.envelope_document(envelope)):
            return f"{ENVELOPE_FILE} is out of date with the protocol; rerun with --force-pq"
    return {ENVELOPE_FILE: vectors.envelope_document(envelope), **vectors.deterministic_documents(envelope)}
