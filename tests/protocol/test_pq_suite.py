"""The post-quantum hybrid suite ``hotline-pq1``: keys, envelopes, receipts, statements and the refusals.

Everything the classic suite promises, with a second algorithm in each place: MLKEM768-X25519 HPKE wraps
the content key, and every signature is an Ed25519 and an ML-DSA-65 signature that must both verify.
Suite mismatches, in either direction, are refused by name (``unsupported_suite``), never half-accepted.
The vector files are checked in test_pq_vectors.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.protocol import audit, crypto
from hotline.protocol.content import Content
from hotline.protocol.encoding import b64d, b64e, dump_json, frame
from hotline.protocol.envelope import Envelope, open_envelope, seal_envelope
from hotline.protocol.errors import (
    BadSignatureError,
    DecryptionFailedError,
    ErrorCode,
    MalformedError,
    NotARecipientError,
    ProtocolError,
    TooLargeError,
    UnknownKeyError,
    UnsupportedSuiteError,
)
from hotline.protocol.fingerprints import fingerprint, safety_number
from hotline.protocol.keys import DS_PREKEY, DeviceKeys, PrekeySecret, SignedPrekey, prekey_id_for
from hotline.protocol.model import (
    DEFAULT_LIMITS,
    MAX_SIGNATURE_BYTES,
    MAX_WRAPPED_KEY_BYTES,
    DeviceAddress,
    Intent,
    Precedence,
    Suite,
)
from hotline.protocol.receipts import (
    DS_RECEIPT,
    Receipt,
    ReceiptKind,
    issue_device_receipt,
    issue_relay_accepted,
)
from hotline.protocol.statements import (
    DS_TREE_HEAD,
    TreeHead,
    auth_message,
    sign_auth_challenge,
    sign_tree_head,
    verify_auth_proof,
)
from tests.vectors.detrng import DeterministicRng

PQ = Suite.PQ_HYBRID
CLASSIC = Suite.CLASSIC
NOW = 1767225600000
DELHI = DeviceAddress("delhi", "laptop")
ISLAMABAD = DeviceAddress("islamabad", "desk")
ISLAMABAD_PHONE = DeviceAddress("islamabad", "phone")
WASHINGTON = DeviceAddress("washington", "desk")
OUTSIDER = DeviceAddress("beijing", "desk")
MESSAGE_ID = "019b76da-a800-75bb-b83d-2ec6d56e566a"
ED = crypto.ED25519_SIGNATURE_LEN
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def keys_of(address: DeviceAddress, suite: Suite = PQ) -> DeviceKeys:
    return DeviceKeys.generate(address, DeterministicRng(f"pq/{suite.value}/{address}"), NOW, suite=suite)


def prekey_of(address: DeviceAddress, suite: Suite = PQ) -> SignedPrekey:
    return next(iter(keys_of(address, suite).prekeys.values())).signed


def seal(
    recipients: tuple[DeviceAddress, ...] = (ISLAMABAD, WASHINGTON),
    *,
    sender: DeviceKeys | None = None,
    prekeys: list[SignedPrekey] | None = None,
    text: str = "Please confirm receipt of this message.",
    label: str = "pq/seal",
) -> Envelope:
    return seal_envelope(
        sender or keys_of(DELHI),
        channel="delhi-islamabad-pq1",
        seq={r.member: 1 for r in recipients},
        recipients=prekeys if prekeys is not None else [prekey_of(r) for r in recipients],
        precedence=Precedence.FLASH,
        intent=Intent.CLARIFICATION_REQUEST,
        text=text,
        now_ms=NOW,
        rng=DeterministicRng(label),
    )


@cache
def good_envelope() -> Envelope:
    return seal()


def open_as(
    wire: dict[str, Any] | bytes, recipient: DeviceAddress, sender_key: bytes | None = None
) -> Envelope:
    envelope = Envelope.from_bytes(wire) if isinstance(wire, bytes) else Envelope.from_json(wire)
    open_envelope(envelope, keys_of(recipient), sender_key or keys_of(DELHI).signing_public_key)
    return envelope


def wire_with(
    good: Envelope,
    *,
    header_bytes: bytes | None = None,
    body: bytes | None = None,
    keys: tuple[bytes, ...] | None = None,
    signature: bytes | None = None,
    resign: bool = False,
) -> dict[str, Any]:
    h = good.header_bytes if header_bytes is None else header_bytes
    b = good.body if body is None else body
    k = good.wrapped_keys if keys is None else keys
    s = good.signature if signature is None else signature
    if resign:
        s = keys_of(DELHI).signing.sign(Envelope(h, b, k, b"", good.header).signed_bytes())
    return {"header": b64e(h), "body": b64e(b), "keys": [b64e(x) for x in k], "sig": b64e(s)}


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- sizes and keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", list(Suite))
def test_what_each_suite_makes_has_the_sizes_the_parsers_check(suite: Suite) -> None:
    keys = keys_of(DELHI, suite)
    sizes = suite.sizes
    assert len(keys.signing_public_key) == sizes.signing_public_key
    assert len(keys.signing.seed()) == sizes.signing_seed
    assert len(keys.signing.sign(b"message")) == sizes.signature
    prekey = prekey_of(ISLAMABAD, suite)
    assert len(prekey.public_key) == sizes.prekey_public_key
    assert len(next(iter(keys_of(ISLAMABAD, suite).prekeys.values())).secret.secret()) == sizes.prekey_secret
    envelope = seal((ISLAMABAD,), sender=keys, prekeys=[prekey])
    assert [len(k) for k in envelope.wrapped_keys] == [sizes.wrapped_key]
    assert envelope.header.suite is suite
    assert crypto.suite_of_signing_key(keys.signing_public_key) is suite


def test_the_largest_sizes_are_the_hybrid_suites() -> None:
    assert MAX_SIGNATURE_BYTES == 64 + 3309 == crypto.HYBRID_SIGNATURE_LEN
    assert MAX_WRAPPED_KEY_BYTES == 1120 + 32 + 16 == crypto.XWING_ENC_LEN + 48
    assert PQ.sizes.signing_public_key == crypto.HYBRID_PUBLIC_LEN == 1984
    assert PQ.sizes.prekey_public_key == crypto.XWING_PUBLIC_LEN == 1216


def test_generate_draws_the_signing_seed_then_the_prekey_seed() -> None:
    rng = DeterministicRng("pq/draws")
    seed, prekey_seed = rng(64), rng(32)
    keys = DeviceKeys.generate(DELHI, DeterministicRng("pq/draws"), NOW, suite=PQ)
    assert keys.suite is PQ
    assert keys.signing.seed() == seed
    assert keys.signing_public_key == crypto.HybridSigningKey(seed).public_bytes
    (secret,) = keys.prekeys.values()
    assert secret.secret.secret() == prekey_seed
    assert secret.signed.public_key == crypto.HybridKemKey(prekey_seed).public_bytes
    # Same randomness, same keys: everything but the ML-DSA signing randomness is reproducible.
    again = DeviceKeys.generate(DELHI, DeterministicRng("pq/draws"), NOW, suite=PQ)
    assert again.signing_public_key == keys.signing_public_key
    assert again.prekeys.keys() == keys.prekeys.keys()


def test_a_device_has_one_suite() -> None:
    with pytest.raises(UnsupportedSuiteError):
        DeviceKeys(DELHI, keys_of(DELHI, CLASSIC).signing, suite=PQ)
    with pytest.raises(UnsupportedSuiteError):
        DeviceKeys(DELHI, keys_of(DELHI, PQ).signing)  # suite defaults to hotline-c1


@pytest.mark.parametrize(
    ("make", "length"),
    [
        (crypto.HybridSigningKey, 63),
        (crypto.HybridSigningKey, 32),
        (crypto.HybridKemKey, 31),
        (crypto.HybridKemKey, 64),
    ],
)
def test_hybrid_keys_refuse_seeds_of_the_wrong_length(make: Callable[[bytes], object], length: int) -> None:
    with pytest.raises(MalformedError):
        make(bytes(length))


def test_prekey_id_is_the_same_formula_over_the_hybrid_public_key() -> None:
    prekey = prekey_of(ISLAMABAD)
    assert prekey.suite is PQ
    assert prekey.id == prekey_id_for(prekey.public_key) == b64e(crypto.sha256(prekey.public_key)[:9])
    prekey.verify(keys_of(ISLAMABAD).signing_public_key)


def test_the_largest_hybrid_prekey_body_fits_the_prekey_limit() -> None:
    longest = DeviceAddress("m" * 32, "d" * 32)
    keys = DeviceKeys.generate(longest, DeterministicRng("pq/long"), 2**53 - 1 - 10**12, suite=PQ)
    (secret,) = keys.prekeys.values()
    assert len(secret.signed.body) <= DEFAULT_LIMITS.max_prekey_bytes
    assert SignedPrekey.from_json(secret.signed.to_json()) == secret.signed


def test_prekey_signature_is_bounded_by_its_suite_before_any_cryptography() -> None:
    prekey = prekey_of(ISLAMABAD)
    with pytest.raises(TooLargeError):
        SignedPrekey.from_json({"body": b64e(prekey.body), "sig": b64e(prekey.signature + b"\0")})
    classic = prekey_of(ISLAMABAD, CLASSIC)
    with pytest.raises(TooLargeError):  # a classic prekey cannot carry a hybrid-length signature
        SignedPrekey.from_json({"body": b64e(classic.body), "sig": b64e(prekey.signature)})


def test_prekey_and_signing_key_of_different_suites_are_refused() -> None:
    with pytest.raises(UnsupportedSuiteError):
        prekey_of(ISLAMABAD).verify(keys_of(ISLAMABAD, CLASSIC).signing_public_key)
    with pytest.raises(UnsupportedSuiteError):
        prekey_of(ISLAMABAD, CLASSIC).verify(keys_of(ISLAMABAD).signing_public_key)


def test_a_prekey_with_one_half_of_its_signature_broken_does_not_verify() -> None:
    prekey = prekey_of(ISLAMABAD)
    for bit in (0, ED * 8, (len(prekey.signature) - 1) * 8):
        broken = SignedPrekey.parse(prekey.body, flip(prekey.signature, bit))
        with pytest.raises(BadSignatureError):
            broken.verify(keys_of(ISLAMABAD).signing_public_key)


@pytest.mark.parametrize("passphrase", [None, "हॉटलाइन passphrase"])
def test_hybrid_key_file_round_trips(passphrase: str | None) -> None:
    keys = keys_of(DELHI)
    data = keys.to_file(passphrase, DeterministicRng("pq/keyfile"), scrypt_n=2**10)
    loaded = DeviceKeys.from_file(data, passphrase)
    assert loaded.suite is PQ
    assert loaded.to_plain_json() == keys.to_plain_json()
    assert loaded.signing_public_key == keys.signing_public_key
    plain = keys.to_plain_json()
    assert plain["suite"] == "hotline-pq1"
    assert len(b64d(plain["signing_seed"], field="seed")) == 64
    assert [len(b64d(p["secret"], field="secret")) for p in plain["prekeys"]] == [32]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda f: f.update(signing_seed=b64e(b64d(f["signing_seed"], field="s")[:32])), MalformedError),
        (lambda f: f.update(suite="hotline-c1"), MalformedError),  # a 64-byte seed is not an Ed25519 seed
        (
            lambda f: f.update(prekeys=keys_of(DELHI, CLASSIC).to_plain_json()["prekeys"]),
            UnsupportedSuiteError,  # hotline-c1 prekeys (signed by a classic key) in a hotline-pq1 file
        ),
    ],
)
def test_a_hybrid_key_file_of_mixed_suites_is_refused(
    change: Callable[[dict[str, Any]], None], error: type[ProtocolError]
) -> None:
    fields = keys_of(DELHI).to_plain_json()
    change(fields)
    with pytest.raises(error):
        DeviceKeys.from_file(dump_json(fields), None)


# --- the hybrid signature ---------------------------------------------------------------------------------

SIGNER = crypto.HybridSigningKey(DeterministicRng("pq/signer")(64))
MESSAGE = frame(b"hotline/v1/test", b"a message")


def test_both_halves_sign_the_prefixed_message() -> None:
    signature = SIGNER.sign(MESSAGE)
    crypto.verify_signature(SIGNER.public_bytes, signature, MESSAGE)
    prefixed = frame(b"hotline/v1/hotline-pq1/signature", MESSAGE)
    ed25519 = crypto.SigningKey(SIGNER.seed()[:32])
    assert signature[:ED] == ed25519.sign(prefixed)  # deterministic: the vectors compare it
    crypto.verify_signature(ed25519.public_bytes, signature[:ED], prefixed)


def test_the_mldsa_half_is_randomized_and_the_ed25519_half_is_not() -> None:
    first, second = SIGNER.sign(MESSAGE), SIGNER.sign(MESSAGE)
    assert first[:ED] == second[:ED]
    assert first[ED:] != second[ED:]
    for signature in (first, second):
        crypto.verify_signature(SIGNER.public_bytes, signature, MESSAGE)


HALF_BREAKS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("ed25519-half-flipped", lambda s: flip(s, 0)),
    ("ed25519-half-flipped-in-s", lambda s: flip(s, 40 * 8 + 3)),
    ("mldsa-half-flipped", lambda s: flip(s, ED * 8)),
    ("mldsa-half-flipped-at-end", lambda s: flip(s, len(s) * 8 - 1)),
    ("ed25519-half-zeroed", lambda s: bytes(ED) + s[ED:]),
    ("mldsa-half-zeroed", lambda s: s[:ED] + bytes(len(s) - ED)),
    ("ed25519-half-from-another-message", lambda s: SIGNER.sign(b"other")[:ED] + s[ED:]),
    ("mldsa-half-from-another-message", lambda s: s[:ED] + SIGNER.sign(b"other")[ED:]),
    ("stripped-to-ed25519", lambda s: s[:ED]),
    ("stripped-to-mldsa", lambda s: s[ED:]),
    ("truncated", lambda s: s[:-1]),
    ("extended", lambda s: s + b"\0"),
    ("empty", lambda s: b""),
]


@pytest.mark.parametrize("damage", [c[1] for c in HALF_BREAKS], ids=[c[0] for c in HALF_BREAKS])
def test_a_hybrid_signature_verifies_only_if_both_halves_do(damage: Callable[[bytes], bytes]) -> None:
    with pytest.raises(BadSignatureError):
        crypto.verify_signature(SIGNER.public_bytes, damage(SIGNER.sign(MESSAGE)), MESSAGE)


def test_a_stripped_hybrid_signature_is_not_a_classic_signature() -> None:
    """The Ed25519 half with the Ed25519 half of the key is a valid pair -- over the prefixed bytes only."""
    signature = SIGNER.sign(MESSAGE)
    with pytest.raises(BadSignatureError):
        crypto.verify_signature(SIGNER.public_bytes[:32], signature[:ED], MESSAGE)


def test_a_classic_signature_is_not_half_of_a_hybrid_one() -> None:
    classic = crypto.SigningKey(SIGNER.seed()[:32]).sign(MESSAGE)
    with pytest.raises(BadSignatureError):
        crypto.verify_signature(SIGNER.public_bytes, classic + SIGNER.sign(MESSAGE)[ED:], MESSAGE)


def test_a_signing_key_of_neither_suite_is_malformed() -> None:
    for length in (0, 31, 33, 1952, 1983, 1985):
        with pytest.raises(MalformedError):
            crypto.suite_of_signing_key(b"\x09" * length)


def test_a_hybrid_key_with_a_weak_ed25519_half_is_refused() -> None:
    weak = bytes.fromhex("01" + "00" * 31) + SIGNER.public_bytes[32:]
    with pytest.raises(MalformedError):
        crypto.suite_of_signing_key(weak)
    with pytest.raises(MalformedError):
        crypto.verify_signature(weak, weak[:32] + bytes(32) + SIGNER.sign(MESSAGE)[ED:], MESSAGE)


# --- envelopes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "recipients",
    [(ISLAMABAD,), (ISLAMABAD, WASHINGTON), (ISLAMABAD, ISLAMABAD_PHONE, WASHINGTON)],
    ids=["one", "two", "three-two-of-one-member"],
)
def test_a_hybrid_envelope_round_trips_and_every_recipient_reads_the_same(
    recipients: tuple[DeviceAddress, ...],
) -> None:
    envelope = seal(recipients, label=f"pq/round-trip/{len(recipients)}")
    assert envelope.header.suite is PQ
    assert json.loads(envelope.header_bytes)["suite"] == "hotline-pq1"
    assert len(envelope.signature) == 3373
    assert [len(k) for k in envelope.wrapped_keys] == [1168] * len(recipients)
    wire = envelope.to_bytes()
    assert len(wire) <= DEFAULT_LIMITS.max_envelope_bytes
    contents = []
    for recipient in recipients:
        parsed = Envelope.from_bytes(wire)
        opened = open_envelope(parsed, keys_of(recipient), keys_of(DELHI).signing_public_key)
        contents.append(opened.content.to_bytes())
        assert opened.content.text == "Please confirm receipt of this message."
        assert opened.header.sender == DELHI
        assert opened.envelope.hash == envelope.hash
    assert len(set(contents)) == 1


def test_the_largest_hybrid_envelope_fits_max_envelope_bytes() -> None:
    """64 recipients, the largest body: what the HTTP layer's bound must let through."""
    n = DEFAULT_LIMITS.max_recipients
    devices = [DeviceAddress("m", f"d{i:02d}") for i in range(n)]
    prekeys = [
        next(
            iter(DeviceKeys.generate(d, DeterministicRng(f"pq/many/{d}"), NOW, suite=PQ).prekeys.values())
        ).signed
        for d in devices
    ]
    overhead = len(
        Content(
            channel="delhi-islamabad-pq1",
            message_id=MESSAGE_ID,
            sender=DELHI,
            recipients=tuple(devices),
            intent=Intent.FREE_TEXT,
            text="",
        ).to_bytes()
    )
    room = DEFAULT_LIMITS.max_body_plaintext_bytes - overhead
    text = "द" * (room // 3) + "x" * (room % 3)  # the content is exactly at its limit
    envelope = seal_envelope(
        keys_of(DELHI),
        channel="delhi-islamabad-pq1",
        seq={"m": 1},
        recipients=prekeys,
        precedence=Precedence.ROUTINE,
        intent=Intent.FREE_TEXT,
        text=text,
        now_ms=NOW,
        rng=DeterministicRng("pq/many"),
    )
    wire = envelope.to_bytes()
    assert len(envelope.body) == DEFAULT_LIMITS.max_body_plaintext_bytes + 28
    assert len(envelope.wrapped_keys) == n
    assert len(wire) <= DEFAULT_LIMITS.max_envelope_bytes
    assert Envelope.from_bytes(wire).hash == envelope.hash


def test_a_non_recipient_cannot_open_and_an_erased_prekey_is_unknown() -> None:
    envelope = good_envelope()
    with pytest.raises(NotARecipientError):
        open_envelope(envelope, keys_of(ISLAMABAD_PHONE), keys_of(DELHI).signing_public_key)
    with pytest.raises(NotARecipientError):
        open_envelope(envelope, keys_of(OUTSIDER), keys_of(DELHI).signing_public_key)
    erased = DeviceKeys.generate(ISLAMABAD, DeterministicRng(f"pq/{PQ.value}/{ISLAMABAD}"), NOW, suite=PQ)
    erased.erase_prekey(prekey_of(ISLAMABAD).id)
    with pytest.raises(UnknownKeyError):
        open_envelope(envelope, erased, keys_of(DELHI).signing_public_key)


def test_the_wrong_secret_behind_the_prekey_id_fails_to_decrypt() -> None:
    real = prekey_of(ISLAMABAD)
    corrupted = DeviceKeys(ISLAMABAD, keys_of(ISLAMABAD).signing, suite=PQ)
    corrupted.prekeys[real.id] = PrekeySecret(crypto.HybridKemKey(bytes(32)), real)
    with pytest.raises(DecryptionFailedError):
        open_envelope(good_envelope(), corrupted, keys_of(DELHI).signing_public_key)


def test_a_wrong_sender_key_of_the_same_suite_is_a_bad_signature() -> None:
    with pytest.raises(BadSignatureError):
        open_envelope(good_envelope(), keys_of(ISLAMABAD), keys_of(WASHINGTON).signing_public_key)


MISMATCHES: list[tuple[str, Callable[[], object]]] = [
    (
        "pq-envelope-opened-by-classic-device",
        lambda: open_envelope(
            good_envelope(), keys_of(ISLAMABAD, CLASSIC), keys_of(DELHI).signing_public_key
        ),
    ),
    (
        "classic-envelope-opened-by-pq-device",
        lambda: open_envelope(
            seal((ISLAMABAD,), sender=keys_of(DELHI, CLASSIC), prekeys=[prekey_of(ISLAMABAD, CLASSIC)]),
            keys_of(ISLAMABAD),
            keys_of(DELHI, CLASSIC).signing_public_key,
        ),
    ),
    (
        "pq-envelope-with-classic-sender-key",
        lambda: open_envelope(
            good_envelope(), keys_of(ISLAMABAD), keys_of(DELHI, CLASSIC).signing_public_key
        ),
    ),
    (
        "classic-envelope-with-pq-sender-key",
        lambda: open_envelope(
            seal((ISLAMABAD,), sender=keys_of(DELHI, CLASSIC), prekeys=[prekey_of(ISLAMABAD, CLASSIC)]),
            keys_of(ISLAMABAD, CLASSIC),
            keys_of(DELHI).signing_public_key,
        ),
    ),
    (
        "pq-envelope-verified-with-stripped-sender-key",
        lambda: good_envelope().verify_signature(keys_of(DELHI).signing_public_key[:32]),
    ),
    (
        "pq-sender-seals-to-classic-prekey",
        lambda: seal((ISLAMABAD,), prekeys=[prekey_of(ISLAMABAD, CLASSIC)]),
    ),
    (
        "classic-sender-seals-to-pq-prekey",
        lambda: seal((ISLAMABAD,), sender=keys_of(DELHI, CLASSIC), prekeys=[prekey_of(ISLAMABAD)]),
    ),
    (
        "pq-sender-seals-to-a-mix",
        lambda: seal((ISLAMABAD, WASHINGTON), prekeys=[prekey_of(ISLAMABAD), prekey_of(WASHINGTON, CLASSIC)]),
    ),
    (
        "header-downgraded-to-classic",
        lambda: open_as(
            wire_with(
                good_envelope(),
                header_bytes=good_envelope().header_bytes.replace(b'"hotline-pq1"', b'"hotline-c1"'),
                signature=good_envelope().signature[:ED],
            ),
            ISLAMABAD,
        ),
    ),
    (
        "audit-entry-checked-with-classic-key",
        lambda: audit.verify_envelope_entry(
            audit.parse_entry(audit.envelope_accepted(at_ms=NOW, envelope=good_envelope())),
            keys_of(DELHI, CLASSIC).signing_public_key,
        ),
    ),
]


@pytest.mark.parametrize("attempt", [c[1] for c in MISMATCHES], ids=[c[0] for c in MISMATCHES])
def test_a_suite_mismatch_is_refused_by_name(attempt: Callable[[], object]) -> None:
    with pytest.raises(UnsupportedSuiteError):
        attempt()


def test_a_classic_channel_downgrade_cannot_reuse_the_ed25519_half() -> None:
    """A classic verifier given the Ed25519 half of delhi's hybrid key as "delhi's key" still refuses a
    stripped hotline-pq1 envelope relabelled hotline-c1: the half signed other bytes (and another header)."""
    good = good_envelope()
    downgraded = good.header_bytes.replace(b'"hotline-pq1"', b'"hotline-c1"')
    classic_recipient = keys_of(ISLAMABAD, CLASSIC)
    envelope = Envelope.from_json(wire_with(good, header_bytes=downgraded, signature=good.signature[:ED]))
    with pytest.raises(BadSignatureError):
        open_envelope(envelope, classic_recipient, keys_of(DELHI).signing_public_key[:32])
    envelope = Envelope.from_json(wire_with(good, header_bytes=downgraded, signature=good.signature[:ED]))
    with pytest.raises(BadSignatureError):
        envelope.verify_signature(keys_of(DELHI).signing_public_key[:32])


NEGATIVES: list[tuple[str, Callable[[Envelope], dict[str, Any] | bytes], ErrorCode]] = [
    ("body-bit-flip", lambda g: wire_with(g, body=flip(g.body, 12 * 8)), ErrorCode.BAD_SIGNATURE),
    (
        "body-bit-flip-resigned",
        lambda g: wire_with(g, body=flip(g.body, 12 * 8), resign=True),
        ErrorCode.DECRYPTION_FAILED,
    ),
    (
        "mlkem-ciphertext-bit-flip-resigned",
        lambda g: wire_with(g, keys=(flip(g.wrapped_keys[0], 0), g.wrapped_keys[1]), resign=True),
        ErrorCode.DECRYPTION_FAILED,
    ),
    (
        "x25519-ephemeral-bit-flip-resigned",
        lambda g: wire_with(g, keys=(flip(g.wrapped_keys[0], 1100 * 8), g.wrapped_keys[1]), resign=True),
        ErrorCode.DECRYPTION_FAILED,
    ),
    (
        "wrapped-key-truncated-resigned",
        lambda g: wire_with(g, keys=(g.wrapped_keys[0][:-1], g.wrapped_keys[1]), resign=True),
        ErrorCode.DECRYPTION_FAILED,
    ),
    (
        "wrapped-keys-swapped-resigned",
        lambda g: wire_with(g, keys=(g.wrapped_keys[1], g.wrapped_keys[0]), resign=True),
        ErrorCode.DECRYPTION_FAILED,
    ),
    ("signature-truncated", lambda g: wire_with(g, signature=g.signature[:-1]), ErrorCode.BAD_SIGNATURE),
    ("signature-stripped", lambda g: wire_with(g, signature=g.signature[:ED]), ErrorCode.BAD_SIGNATURE),
    ("signature-extended", lambda g: wire_with(g, signature=g.signature + b"\0"), ErrorCode.TOO_LARGE),
    (
        "wrapped-key-over-the-largest-suite",
        lambda g: wire_with(g, keys=(g.wrapped_keys[0] + b"\0", g.wrapped_keys[1])),
        ErrorCode.TOO_LARGE,
    ),
    ("wire-truncated", lambda g: g.to_bytes()[: len(g.to_bytes()) // 2], ErrorCode.MALFORMED),
    ("wire-missing-a-key", lambda g: wire_with(g, keys=g.wrapped_keys[:1]), ErrorCode.MALFORMED),
    (
        "unknown-suite-resigned",
        lambda g: wire_with(
            g, header_bytes=g.header_bytes.replace(b"hotline-pq1", b"hotline-pq2"), resign=True
        ),
        ErrorCode.UNSUPPORTED_SUITE,
    ),
]


@pytest.mark.parametrize(("make", "error"), [c[1:] for c in NEGATIVES], ids=[c[0] for c in NEGATIVES])
def test_a_damaged_hybrid_envelope_is_refused_with_its_code(
    make: Callable[[Envelope], dict[str, Any] | bytes], error: ErrorCode
) -> None:
    with pytest.raises(ProtocolError) as caught:
        open_as(make(good_envelope()), ISLAMABAD)
    assert caught.value.code is error


@pytest.fixture
def no_crypto(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    called: list[str] = []

    def forbidden(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            called.append(name)
            raise AssertionError(f"{name} was called before the limits were checked")

        return call

    monkeypatch.setattr(crypto, "verify_signature", forbidden("verify_signature"))
    monkeypatch.setattr(crypto, "aead_open", forbidden("aead_open"))
    monkeypatch.setattr(crypto.HybridKemKey, "open", forbidden("HybridKemKey.open"))
    return called


LIMIT_CASES: list[tuple[str, Callable[[], object]]] = [
    (
        "signature-one-byte-over-the-suite",
        lambda: Envelope.from_json({**good_envelope().to_json(), "sig": b64e(bytes(3374))}),
    ),
    (
        "wrapped-key-one-byte-over",
        lambda: Envelope.from_json({**good_envelope().to_json(), "keys": [b64e(bytes(1169))] * 2}),
    ),
    ("receipt-signature-over", lambda: Receipt.from_json({"body": "", "sig": b64e(bytes(3374))})),
    ("tree-head-signature-over", lambda: TreeHead.from_json({"body": "", "sig": b64e(bytes(3374))})),
    (
        "prekey-signature-over",
        lambda: SignedPrekey.from_json({"body": b64e(prekey_of(ISLAMABAD).body), "sig": b64e(bytes(3374))}),
    ),
]


@pytest.mark.parametrize("parse", [c[1] for c in LIMIT_CASES], ids=[c[0] for c in LIMIT_CASES])
def test_hybrid_sizes_are_checked_before_any_cryptography(
    parse: Callable[[], object], no_crypto: list[str]
) -> None:
    with pytest.raises(TooLargeError):
        parse()
    assert no_crypto == []


# --- single-bit flips -------------------------------------------------------------------------------------

PARTS = ("header", "body", "key0", "key1", "sig")


def flipped_wire(good: Envelope, part: str, bit: int) -> dict[str, Any]:
    if part == "header":
        return wire_with(good, header_bytes=flip(good.header_bytes, bit))
    if part == "body":
        return wire_with(good, body=flip(good.body, bit))
    if part == "sig":
        return wire_with(good, signature=flip(good.signature, bit))
    keys = list(good.wrapped_keys)
    keys[int(part[-1])] = flip(keys[int(part[-1])], bit)
    return wire_with(good, keys=tuple(keys))


def part_length(good: Envelope, part: str) -> int:
    return len(
        {
            "header": good.header_bytes,
            "body": good.body,
            "key0": good.wrapped_keys[0],
            "key1": good.wrapped_keys[1],
            "sig": good.signature,
        }[part]
    )


@SETTINGS
@given(data=st.data())
def test_any_single_bit_flip_of_any_part_is_refused_with_a_typed_error(data: st.DataObject) -> None:
    good = good_envelope()
    part = data.draw(st.sampled_from(PARTS), label="part")
    bit = data.draw(st.integers(0, part_length(good, part) * 8 - 1), label="bit")
    recipient = data.draw(st.sampled_from((ISLAMABAD, WASHINGTON)), label="recipient")
    with pytest.raises(ProtocolError) as caught:
        open_as(flipped_wire(good, part, bit), recipient)
    if part == "header":
        assert caught.value.code in {
            ErrorCode.MALFORMED,
            ErrorCode.BAD_SIGNATURE,
            ErrorCode.UNSUPPORTED_VERSION,
            ErrorCode.UNSUPPORTED_SUITE,
        }
    else:
        # Body, wrapped keys and both signature halves are all covered by the signature.
        assert caught.value.code is ErrorCode.BAD_SIGNATURE


def test_every_bit_of_the_ed25519_half_and_of_the_mldsa_half_head_is_checked() -> None:
    """Exhaustive over the Ed25519 half and the first 64 bytes of the ML-DSA half (the rest is sampled)."""
    good = good_envelope()
    codes: Counter[ErrorCode] = Counter()
    for bit in range(2 * ED * 8):
        with pytest.raises(ProtocolError) as caught:
            open_as(flipped_wire(good, "sig", bit), ISLAMABAD)
        codes[caught.value.code] += 1
    assert codes == Counter({ErrorCode.BAD_SIGNATURE: 2 * ED * 8})


@SETTINGS
@given(data=st.data())
def test_any_single_bit_flip_of_the_wire_json_is_refused(data: st.DataObject) -> None:
    wire = good_envelope().to_bytes()
    bit = data.draw(st.integers(0, len(wire) * 8 - 1), label="bit")
    with pytest.raises(ProtocolError):
        open_as(flip(wire, bit), ISLAMABAD)


@SETTINGS
@given(data=st.data())
def test_any_single_bit_flip_of_a_hybrid_receipt_is_a_bad_signature_or_malformed(data: st.DataObject) -> None:
    receipt = delivered()
    part = data.draw(st.sampled_from(("body", "sig")), label="part")
    original = receipt.body if part == "body" else receipt.signature
    bit = data.draw(st.integers(0, len(original) * 8 - 1), label="bit")
    wire = receipt.to_json()
    wire = {**wire, part: b64e(flip(original, bit))}
    with pytest.raises(ProtocolError) as caught:
        Receipt.from_json(wire).verify(keys_of(ISLAMABAD).signing_public_key, suite=PQ)
    if part == "sig":
        assert caught.value.code is ErrorCode.BAD_SIGNATURE


# --- receipts, tree heads, auth proofs, audit ------------------------------------------------------------

RELAY = crypto.HybridSigningKey(DeterministicRng("pq/relay")(64))
COMMON: dict[str, Any] = {
    "channel": "delhi-islamabad-pq1",
    "message_id": MESSAGE_ID,
    "envelope_hash": bytes(32),
}


def delivered() -> Receipt:
    return issue_device_receipt(
        keys_of(ISLAMABAD).signing, ISLAMABAD, ReceiptKind.DELIVERED, at_ms=NOW, **COMMON
    )


RECEIPT_CASES: list[tuple[str, Callable[[], Receipt], Callable[[], bytes]]] = [
    (
        "relay-accepted",
        lambda: issue_relay_accepted(RELAY, log_index=7, at_ms=NOW, **COMMON),
        lambda: RELAY.public_bytes,
    ),
    ("delivered", delivered, lambda: keys_of(ISLAMABAD).signing_public_key),
    (
        "acknowledged",
        lambda: issue_device_receipt(
            keys_of(ISLAMABAD).signing, ISLAMABAD, ReceiptKind.ACKNOWLEDGED, at_ms=NOW, **COMMON
        ),
        lambda: keys_of(ISLAMABAD).signing_public_key,
    ),
    (
        "rejected",
        lambda: issue_device_receipt(
            keys_of(WASHINGTON).signing,
            WASHINGTON,
            ReceiptKind.REJECTED,
            at_ms=NOW,
            reason=ErrorCode.UNSUPPORTED_SUITE,
            **COMMON,
        ),
        lambda: keys_of(WASHINGTON).signing_public_key,
    ),
]


@pytest.mark.parametrize(
    ("issue", "issuer_key"), [c[1:] for c in RECEIPT_CASES], ids=[c[0] for c in RECEIPT_CASES]
)
def test_each_hybrid_receipt_round_trips_and_verifies_with_its_issuer_only(
    issue: Callable[[], Receipt], issuer_key: Callable[[], bytes]
) -> None:
    receipt = issue()
    assert len(receipt.signature) == 3373
    assert b'"suite"' not in receipt.body  # the classic body format: the issuer's key names the suite
    parsed = Receipt.from_json(receipt.to_json())
    assert parsed == receipt
    parsed.verify(issuer_key())
    parsed.verify(issuer_key(), suite=PQ)
    with pytest.raises(UnsupportedSuiteError):
        parsed.verify(issuer_key(), suite=CLASSIC)
    with pytest.raises(BadSignatureError):
        parsed.verify(keys_of(DELHI).signing_public_key)
    with pytest.raises(BadSignatureError):
        parsed.verify(keys_of(DELHI, CLASSIC).signing_public_key)
    with pytest.raises(BadSignatureError):  # stripped, and checked as a classic receipt
        Receipt.parse(receipt.body, receipt.signature[:ED]).verify(issuer_key()[:32])


def test_a_classic_receipt_is_refused_in_a_hybrid_channel() -> None:
    classic = issue_device_receipt(
        keys_of(ISLAMABAD, CLASSIC).signing, ISLAMABAD, ReceiptKind.DELIVERED, at_ms=NOW, **COMMON
    )
    classic.verify(keys_of(ISLAMABAD, CLASSIC).signing_public_key, suite=CLASSIC)
    with pytest.raises(UnsupportedSuiteError):
        classic.verify(keys_of(ISLAMABAD, CLASSIC).signing_public_key, suite=PQ)


def test_a_hybrid_tree_head_verifies_with_the_relay_key_only() -> None:
    head = sign_tree_head(RELAY, size=42, root=bytes(range(32)), at_ms=NOW)
    parsed = TreeHead.from_json(head.to_json())
    parsed.verify(RELAY.public_bytes)
    parsed.verify(RELAY.public_bytes, suite=PQ)
    with pytest.raises(UnsupportedSuiteError):
        parsed.verify(RELAY.public_bytes, suite=CLASSIC)
    with pytest.raises(BadSignatureError):
        parsed.verify(keys_of(DELHI).signing_public_key)
    with pytest.raises(BadSignatureError):
        TreeHead.parse(head.body, flip(head.signature, ED * 8 + 5)).verify(RELAY.public_bytes)
    with pytest.raises(BadSignatureError):
        TreeHead.parse(head.body, head.signature[:ED]).verify(RELAY.public_bytes[:32])
    resigned = keys_of(DELHI).signing.sign(frame(DS_TREE_HEAD, head.body))
    with pytest.raises(BadSignatureError):
        TreeHead.parse(head.body, resigned).verify(RELAY.public_bytes)


def test_a_hybrid_auth_proof_is_bound_to_relay_challenge_and_device() -> None:
    challenge = bytes(range(32))
    proof = sign_auth_challenge(keys_of(DELHI).signing, "relay.test", challenge, DELHI)
    key = keys_of(DELHI).signing_public_key
    verify_auth_proof(key, proof, "relay.test", challenge, DELHI, suite=PQ)
    with pytest.raises(UnsupportedSuiteError):
        verify_auth_proof(key, proof, "relay.test", challenge, DELHI, suite=CLASSIC)
    for args in (
        ("other.test", challenge, DELHI),
        ("relay.test", bytes(32), DELHI),
        ("relay.test", challenge, ISLAMABAD),
    ):
        with pytest.raises(BadSignatureError):
            verify_auth_proof(key, proof, *args)
    with pytest.raises(BadSignatureError):
        verify_auth_proof(key[:32], proof[:ED], "relay.test", challenge, DELHI)
    expected = frame(b"hotline/v1/hotline-pq1/signature", auth_message("relay.test", challenge, DELHI))
    crypto.verify_signature(key[:32], proof[:ED], expected)


def test_a_hybrid_envelope_audit_entry_verifies_offline() -> None:
    raw = audit.envelope_accepted(at_ms=NOW, envelope=good_envelope())
    assert len(raw) <= audit.MAX_ENTRY_BYTES
    entry = audit.parse_entry(raw)
    audit.verify_envelope_entry(entry, keys_of(DELHI).signing_public_key)
    with pytest.raises(BadSignatureError):
        audit.verify_envelope_entry(entry, keys_of(WASHINGTON).signing_public_key)


def test_hybrid_device_keys_and_prekeys_fit_their_audit_entries() -> None:
    keys = keys_of(DELHI)
    enrolled = audit.device_enrolled(
        at_ms=NOW,
        channel="delhi-islamabad-pq1",
        address=DELHI,
        role="principal",
        signing_key=keys.signing_public_key,
    )
    assert audit.parse_entry(enrolled).fields["signing_key"] == b64e(keys.signing_public_key)
    many = [keys.new_prekey(DeterministicRng(f"pq/audit/{i}"), NOW + i) for i in range(30)]
    published = audit.prekeys_published(at_ms=NOW, channel="delhi-islamabad-pq1", address=DELHI, prekeys=many)
    assert len(published) <= audit.MAX_ENTRY_BYTES
    for wire in audit.parse_entry(published).fields["prekeys"]:
        SignedPrekey.from_json(wire).verify(keys.signing_public_key)


# --- fingerprints and safety numbers ---------------------------------------------------------------------


def test_fingerprints_and_safety_numbers_cover_hybrid_keys() -> None:
    delhi, islamabad = keys_of(DELHI).signing_public_key, keys_of(ISLAMABAD).signing_public_key
    text = fingerprint(delhi)
    assert len(text) == 39 and text.replace(" ", "").isalnum()
    assert text == fingerprint(delhi) != fingerprint(islamabad)
    assert text != fingerprint(delhi[:32])  # the ML-DSA half counts
    number = safety_number("delhi", [delhi], "islamabad", [islamabad])
    assert number == safety_number("islamabad", [islamabad], "delhi", [delhi])
    assert len(number.replace(" ", "")) == 60
    changed = delhi[:-1] + bytes([delhi[-1] ^ 1])
    assert safety_number("delhi", [changed], "islamabad", [islamabad]) != number
    migrating = [keys_of(ISLAMABAD, CLASSIC).signing_public_key, islamabad]
    assert safety_number("delhi", [delhi], "islamabad", migrating) != number


def test_a_receipt_with_a_hybrid_signature_is_recognized_only_by_its_issuer_key() -> None:
    """The receipt hash covers the whole hybrid signature, so a relabelled half changes it."""
    receipt = delivered()
    halved = Receipt.parse(receipt.body, receipt.signature[:ED])
    assert halved.hash != receipt.hash
    assert receipt.signed_bytes() == frame(DS_RECEIPT, receipt.body)


def test_a_prekey_body_signed_as_classic_by_the_ed25519_half_is_refused() -> None:
    prekey = prekey_of(ISLAMABAD)
    ed25519 = crypto.SigningKey(keys_of(ISLAMABAD).signing.seed()[:32])
    forged = SignedPrekey.parse(prekey.body, ed25519.sign(frame(DS_PREKEY, prekey.body)))
    with pytest.raises(BadSignatureError):
        forged.verify(keys_of(ISLAMABAD).signing_public_key)
    with pytest.raises(UnsupportedSuiteError):
        forged.verify(ed25519.public_bytes)
