"""Focused unit tests of the protocol core, table-driven where the behaviour is a table."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from hotline.protocol import crypto
from hotline.protocol.content import Content, missile_test_notice_ok, validate_template, word_count
from hotline.protocol.encoding import b64d, b64e, dump_json, frame, load_json_object
from hotline.protocol.envelope import Envelope, Header, open_envelope, seal_envelope
from hotline.protocol.errors import (
    ERROR_CLASSES,
    BadPassphraseError,
    BadSignatureError,
    DecryptionFailedError,
    ErrorCode,
    ExpiredPrekeyError,
    MalformedError,
    NotARecipientError,
    ProtocolError,
    TooLargeError,
    UnsupportedSuiteError,
    UnsupportedVersionError,
)
from hotline.protocol.fingerprints import fingerprint, member_code, normalize_safety_number, safety_number
from hotline.protocol.keys import DAY_MS, DS_PREKEY, DeviceKeys, SignedPrekey, prekey_id_for
from hotline.protocol.model import DEFAULT_LIMITS, DeviceAddress, Intent, Limits, Precedence
from hotline.protocol.receipts import (
    DS_RECEIPT,
    Receipt,
    ReceiptKind,
    issue_device_receipt,
    issue_relay_accepted,
)
from hotline.protocol.receiver import Accepted, Duplicate, GapDetected, ReceiverState, Replay
from hotline.protocol.statements import TreeHead, sign_tree_head
from tests.vectors.detrng import DeterministicRng

NOW = 1767225600000
DELHI = DeviceAddress("delhi", "laptop")
ISLAMABAD = DeviceAddress("islamabad", "desk")
ISLAMABAD_PHONE = DeviceAddress("islamabad", "phone")
WASHINGTON = DeviceAddress("washington", "desk")
MESSAGE_ID = "019b76da-a800-75bb-b83d-2ec6d56e566a"
ENVELOPE_HASH = bytes(range(32))


@cache
def keys_of(address: DeviceAddress) -> DeviceKeys:
    return DeviceKeys.generate(address, DeterministicRng(f"core/{address}"), NOW)


def fresh_keys(address: DeviceAddress, label: str = "fresh") -> DeviceKeys:
    """Keys that a test may change (erase, rotate) without affecting other tests."""
    return DeviceKeys.generate(address, DeterministicRng(f"core/{label}/{address}"), NOW)


def prekey_of(address: DeviceAddress) -> SignedPrekey:
    return next(iter(keys_of(address).prekeys.values())).signed


def seal(
    recipients: tuple[DeviceAddress, ...] = (ISLAMABAD,),
    *,
    intent: Intent = Intent.FREE_TEXT,
    text: str = "test message",
    fields: dict[str, Any] | None = None,
    now_ms: int = NOW,
    seq: dict[str, int] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    return seal_envelope(
        keys_of(DELHI),
        channel="delhi-islamabad",
        seq=seq if seq is not None else {r.member: 1 for r in recipients},
        recipients=[prekey_of(r) for r in recipients],
        precedence=Precedence.PRIORITY,
        intent=intent,
        text=text,
        fields=fields,
        now_ms=now_ms,
        rng=DeterministicRng("core/seal"),
        limits=limits,
    )


# --- errors -------------------------------------------------------------------------------------------


def test_every_error_code_has_exactly_one_error_class() -> None:
    assert set(ERROR_CLASSES) == set(ErrorCode)
    for code, cls in ERROR_CLASSES.items():
        assert cls.code is code
        assert issubclass(cls, ProtocolError)
        assert repr(cls("why")) == f"{cls.__name__}({code.value!r}, 'why')"


# --- encoding -----------------------------------------------------------------------------------------

B64_CASES = [
    # (text, max_bytes, expected bytes or error class)
    ("", None, b""),
    ("AA", None, b"\x00"),
    ("AAA", None, b"\x00\x00"),
    ("AAAA", None, b"\x00\x00\x00"),
    ("_-8", None, b"\xff\xef"),
    ("AB", None, MalformedError),  # non-zero unused bits
    ("AAB", None, MalformedError),
    ("A", None, MalformedError),  # impossible length
    ("AA==", None, MalformedError),  # padding
    ("+/8", None, MalformedError),  # standard alphabet
    ("AA AA", None, MalformedError),
    ("AAAA\n", None, MalformedError),
    ("AAA\n", None, MalformedError),
    ("AAAA", 3, b"\x00\x00\x00"),
    ("AAAAAA", 3, TooLargeError),  # 4 bytes > 3, refused on length alone
    ("!!!!!!!!!!", 3, TooLargeError),  # length is checked before the alphabet
]


@pytest.mark.parametrize(("text", "max_bytes", "expected"), B64_CASES)
def test_b64d(text: str, max_bytes: int | None, expected: bytes | type[ProtocolError]) -> None:
    if isinstance(expected, bytes):
        assert b64d(text, field="x", max_bytes=max_bytes) == expected
    else:
        with pytest.raises(expected):
            b64d(text, field="x", max_bytes=max_bytes)


@pytest.mark.parametrize("value", [None, 12, b"AA", ["AA"]])
def test_b64d_refuses_non_strings(value: object) -> None:
    with pytest.raises(MalformedError):
        b64d(value, field="x")


JSON_CASES = [
    (b'{"a":1}', {"a": 1}),
    (b'{"a":1,"a":2}', MalformedError),
    (b'{"a":{"b":1,"b":1}}', MalformedError),
    (b'{"a":NaN}', MalformedError),
    (b'{"a":Infinity}', MalformedError),
    (b'{"a":-Infinity}', MalformedError),
    (b"[1]", MalformedError),
    (b'"a"', MalformedError),
    (b'{"a":1', MalformedError),
    (b'{"a":"\xff"}', MalformedError),
    (b'\xef\xbb\xbf{"a":1}', MalformedError),  # a UTF-8 byte-order mark
    (b'{"a":"\\ud83d\\ude00"}', {"a": "\U0001f600"}),  # an escaped surrogate pair is one character
    (b'{"a":"\\ud800"}', MalformedError),  # an escaped lone surrogate is not Unicode
    (b'{"\\udfff":1}', MalformedError),
    (b'{"a":[1,{"b":["\\udc00x"]}]}', MalformedError),
    (b"[" * 100_000 + b"]" * 100_000, TooLargeError),
    (b"[" * 50_000 + b"]" * 50_000, MalformedError),  # within the size limit, too deep to parse
]


@pytest.mark.parametrize(
    ("data", "expected"), JSON_CASES, ids=lambda v: repr(v)[:24] if isinstance(v, bytes) else None
)
def test_load_json_object(data: bytes, expected: Any) -> None:
    if isinstance(expected, dict):
        assert load_json_object(data, what="x", max_bytes=150_000) == expected
    else:
        with pytest.raises(expected):
            load_json_object(data, what="x", max_bytes=150_000)


def test_dump_json_refuses_text_that_is_not_unicode() -> None:
    # Python decodes undecodable argv/stdin bytes to lone surrogates (surrogateescape).
    with pytest.raises(MalformedError):
        dump_json({"text": "caf\udce9"})


def test_dump_json_is_compact_sorted_utf8() -> None:
    assert dump_json({"b": 1, "a": ["é", None, True]}) == '{"a":["é",null,true],"b":1}'.encode()


def test_frame_is_unambiguous() -> None:
    assert frame(b"ab", b"c") != frame(b"a", b"bc")
    assert frame(b"ab", b"c") == b"\x00\x00\x00\x02ab\x00\x00\x00\x01c"
    assert frame() == b""


# --- keys and prekeys ---------------------------------------------------------------------------------


def prekey_body(**overrides: Any) -> bytes:
    prekey = prekey_of(ISLAMABAD)
    fields = json.loads(prekey.body)
    fields.update(overrides)
    return dump_json({k: v for k, v in fields.items() if v is not ...})


def signed_prekey(body: bytes, signer: DeviceKeys | None = None) -> tuple[bytes, bytes]:
    signer = signer or keys_of(ISLAMABAD)
    return body, signer.signing.sign(frame(DS_PREKEY, body))


def test_generated_prekey_is_signed_by_its_device_and_named_by_its_key() -> None:
    keys = keys_of(ISLAMABAD)
    prekey = prekey_of(ISLAMABAD)
    prekey.verify(keys.signing_public_key)
    assert prekey.owner == ISLAMABAD
    assert prekey.id == prekey_id_for(prekey.public_key) and len(prekey.id) == 12
    assert (prekey.not_before_ms, prekey.expires_ms) == (NOW, NOW + 7 * DAY_MS)
    assert SignedPrekey.from_json(prekey.to_json()) == prekey


@pytest.mark.parametrize(
    "signer",
    [
        pytest.param(lambda: keys_of(WASHINGTON).signing_public_key, id="another-device"),
        pytest.param(lambda: keys_of(ISLAMABAD_PHONE).signing_public_key, id="same-member-other-device"),
    ],
)
def test_prekey_does_not_verify_with_another_key(signer: Callable[[], bytes]) -> None:
    with pytest.raises(BadSignatureError):
        prekey_of(ISLAMABAD).verify(signer())


def test_tampered_prekey_body_does_not_verify() -> None:
    prekey = prekey_of(ISLAMABAD)
    tampered = prekey_body(expires_ms=prekey.expires_ms + 365 * DAY_MS)
    with pytest.raises(BadSignatureError):
        SignedPrekey.parse(tampered, prekey.signature).verify(keys_of(ISLAMABAD).signing_public_key)


PREKEY_PARSE_CASES = [
    ("version-2", {"v": 2}, UnsupportedVersionError),
    ("version-true", {"v": True}, UnsupportedVersionError),
    ("version-float", {"v": 1.0}, UnsupportedVersionError),
    ("unknown-suite", {"suite": "hotline-x9"}, UnsupportedSuiteError),
    ("pq-suite-with-a-classic-key", {"suite": "hotline-pq1"}, MalformedError),
    ("wrong-type", {"type": "identity"}, MalformedError),
    ("id-of-another-key", {"id": "AAAAAAAAAAAA"}, MalformedError),
    ("short-public-key", {"public_key": b64e(bytes(31))}, MalformedError),
    ("expires-before-start", {"expires_ms": NOW}, MalformedError),
    ("missing-field", {"expires_ms": ...}, MalformedError),
    ("extra-field", {"comment": "x"}, MalformedError),
    ("bad-member", {"member": "Delhi"}, MalformedError),
]


@pytest.mark.parametrize(
    ("overrides", "error"), [c[1:] for c in PREKEY_PARSE_CASES], ids=[c[0] for c in PREKEY_PARSE_CASES]
)
def test_prekey_parse_refuses(overrides: dict[str, Any], error: type[ProtocolError]) -> None:
    body, sig = signed_prekey(prekey_body(**overrides))
    with pytest.raises(error):
        SignedPrekey.parse(body, sig)


def test_oversized_prekey_is_refused_before_parsing() -> None:
    body = b" " * (DEFAULT_LIMITS.max_prekey_bytes + 1)
    with pytest.raises(TooLargeError):
        SignedPrekey.from_json({"body": b64e(body), "sig": b64e(bytes(64))})


@pytest.mark.parametrize(
    ("offset", "valid"),
    [(-1, False), (0, True), (7 * DAY_MS - 1, True), (7 * DAY_MS, False)],
)
def test_prekey_validity_window_is_half_open(offset: int, valid: bool) -> None:
    prekey = prekey_of(ISLAMABAD)
    assert prekey.is_valid_at(NOW + offset) is valid
    if valid:
        prekey.require_valid_at(NOW + offset)
    else:
        with pytest.raises(ExpiredPrekeyError):
            prekey.require_valid_at(NOW + offset)


def test_current_prekey_is_the_valid_one_that_expires_last_and_erasure_forgets_it() -> None:
    keys = fresh_keys(ISLAMABAD, "rotation")
    first = keys.current_prekey(NOW)
    assert first is not None
    rng = DeterministicRng("core/rotation")
    second = keys.new_prekey(rng, NOW + 5 * DAY_MS)
    assert keys.current_prekey(NOW + DAY_MS) == first  # the second is not valid yet
    assert keys.current_prekey(NOW + 6 * DAY_MS) == second
    assert keys.current_prekey(NOW + 20 * DAY_MS) is None
    assert keys.erase_prekeys_expired_before(NOW + 8 * DAY_MS) == [first.id]
    assert list(keys.prekeys) == [second.id]


# --- key files ----------------------------------------------------------------------------------------

PASSPHRASE = "correct horse battery staple"


@cache
def sealed_key_file() -> bytes:
    return keys_of(DELHI).to_file(PASSPHRASE, DeterministicRng("core/keyfile"), scrypt_n=2**10)


def test_plain_key_file_round_trips() -> None:
    keys = keys_of(DELHI)
    data = keys.to_file(None, DeterministicRng("unused"))
    loaded = DeviceKeys.from_file(data, None)
    assert loaded.to_plain_json() == keys.to_plain_json()
    assert json.loads(data)["signing_seed"] == b64e(keys.signing.seed())


def test_sealed_key_file_round_trips_and_hides_the_seed() -> None:
    keys = keys_of(DELHI)
    data = sealed_key_file()
    assert b64e(keys.signing.seed()).encode() not in data
    kdf = json.loads(data)["kdf"]
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"], len(b64d(kdf["salt"], field="salt"))) == (
        "scrypt",
        2**10,
        8,
        1,
        16,
    )
    loaded = DeviceKeys.from_file(data, PASSPHRASE)
    assert loaded.to_plain_json() == keys.to_plain_json()


@pytest.mark.parametrize("passphrase", ["wrong", "", PASSPHRASE + " ", PASSPHRASE.upper(), None])
def test_sealed_key_file_refuses_a_wrong_or_missing_passphrase(passphrase: str | None) -> None:
    with pytest.raises(BadPassphraseError):
        DeviceKeys.from_file(sealed_key_file(), passphrase)


def tamper_sealed(change: Callable[[dict[str, Any]], None]) -> bytes:
    obj = json.loads(sealed_key_file())
    change(obj)
    return dump_json(obj)


def flip_first_byte(value: str) -> str:
    data = bytearray(b64d(value, field="x"))
    data[0] ^= 1
    return b64e(bytes(data))


SEALED_TAMPER_CASES = [
    ("ciphertext", lambda o: o.update(ciphertext=flip_first_byte(o["ciphertext"])), BadPassphraseError),
    ("nonce", lambda o: o.update(nonce=flip_first_byte(o["nonce"])), BadPassphraseError),
    ("salt", lambda o: o["kdf"].update(salt=flip_first_byte(o["kdf"]["salt"])), BadPassphraseError),
    ("scrypt-n", lambda o: o["kdf"].update(n=2**11), BadPassphraseError),
    ("n-not-power-of-two", lambda o: o["kdf"].update(n=1000), MalformedError),
    ("n-too-large", lambda o: o["kdf"].update(n=2**21), MalformedError),
    ("other-kdf", lambda o: o["kdf"].update(name="argon2id"), UnsupportedSuiteError),
    ("version", lambda o: o.update(v=2), UnsupportedVersionError),
]


@pytest.mark.parametrize(
    ("change", "error"), [c[1:] for c in SEALED_TAMPER_CASES], ids=[c[0] for c in SEALED_TAMPER_CASES]
)
def test_tampered_sealed_key_file_is_refused(change: Callable[[dict[str, Any]], None], error: type) -> None:
    with pytest.raises(error):
        DeviceKeys.from_file(tamper_sealed(change), PASSPHRASE)


def test_tampered_plain_key_file_is_refused() -> None:
    plain = keys_of(DELHI).to_plain_json()
    # Another signing seed: the stored prekeys no longer carry this key's signature.
    swapped = {**plain, "signing_seed": b64e(bytes(32))}
    with pytest.raises(BadSignatureError):
        DeviceKeys.from_file(dump_json(swapped), None)
    # A prekey secret that does not match its signed public key.
    prekeys = [{**plain["prekeys"][0], "secret": b64e(bytes(32))}]
    with pytest.raises(MalformedError):
        DeviceKeys.from_file(dump_json({**plain, "prekeys": prekeys}), None)
    # Another device's (validly signed) prekey.
    other = keys_of(WASHINGTON).to_plain_json()
    with pytest.raises(BadSignatureError):
        DeviceKeys.from_file(dump_json({**plain, "prekeys": other["prekeys"]}), None)


# --- content templates --------------------------------------------------------------------------------


def missile_test(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "template": "missile_test",
        "launch_window_start": "2026-01-10T00:00:00Z",
        "launch_window_end": "2026-01-15T00:00:00Z",
        "launch_area": "Chandipur",
        "impact_area": "Bay of Bengal",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not ...}


TEMPLATE_CASES = [
    ("no-fields", Intent.FREE_TEXT, {}, None),
    (
        "missile-test-1-day",
        Intent.PRE_NOTIFICATION,
        missile_test(launch_window_end="2026-01-11T00:00:00Z"),
        None,
    ),
    ("window-exactly-5-days", Intent.PRE_NOTIFICATION, missile_test(), None),
    (
        "window-5-days-plus-1-ms",
        Intent.PRE_NOTIFICATION,
        missile_test(launch_window_end="2026-01-15T00:00:00.001Z"),
        MalformedError,
    ),
    (
        "window-with-offset",
        Intent.PRE_NOTIFICATION,
        missile_test(
            launch_window_start="2026-01-10T05:30:00+05:30", launch_window_end="2026-01-15T05:30:00+05:30"
        ),
        None,
    ),
    (
        "window-ends-at-start",
        Intent.PRE_NOTIFICATION,
        missile_test(launch_window_end="2026-01-10T00:00:00Z"),
        MalformedError,
    ),
    (
        "window-ends-before-start",
        Intent.PRE_NOTIFICATION,
        missile_test(launch_window_end="2026-01-09T00:00:00Z"),
        MalformedError,
    ),
    (
        "no-time-zone",
        Intent.PRE_NOTIFICATION,
        missile_test(launch_window_start="2026-01-10T00:00:00"),
        MalformedError,
    ),
    ("not-a-date", Intent.PRE_NOTIFICATION, missile_test(launch_window_start="soon"), MalformedError),
    (
        "optional-fields",
        Intent.PRE_NOTIFICATION,
        missile_test(missile_type="Agni", notice="routine test"),
        None,
    ),
    ("unknown-field", Intent.PRE_NOTIFICATION, missile_test(warheads=0), MalformedError),
    ("missing-field", Intent.PRE_NOTIFICATION, missile_test(impact_area=...), MalformedError),
    ("long-area", Intent.PRE_NOTIFICATION, missile_test(launch_area="x" * 513), MalformedError),
    ("wrong-intent", Intent.FREE_TEXT, missile_test(), MalformedError),
    ("unknown-template", Intent.PRE_NOTIFICATION, {"template": "troop_movement"}, MalformedError),
    ("no-template-name", Intent.PRE_NOTIFICATION, {"launch_area": "x"}, MalformedError),
    (
        "nuclear-installations",
        Intent.PRE_NOTIFICATION,
        {"template": "nuclear_installations", "year": 2026, "entries": ["site A", "site B"]},
        None,
    ),
    (
        "installations-year-bool",
        Intent.PRE_NOTIFICATION,
        {"template": "nuclear_installations", "year": True, "entries": []},
        MalformedError,
    ),
    (
        "installations-too-many",
        Intent.PRE_NOTIFICATION,
        {"template": "nuclear_installations", "year": 2026, "entries": ["x"] * 1001},
        MalformedError,
    ),
]


@pytest.mark.parametrize(
    ("intent", "fields", "error"), [c[1:] for c in TEMPLATE_CASES], ids=[c[0] for c in TEMPLATE_CASES]
)
def test_template_validation(
    intent: Intent, fields: dict[str, Any], error: type[ProtocolError] | None
) -> None:
    if error is None:
        validate_template(intent, fields)
    else:
        with pytest.raises(error):
            validate_template(intent, fields)


def test_templates_are_checked_when_sealing_and_when_opening() -> None:
    with pytest.raises(MalformedError):
        seal(intent=Intent.PRE_NOTIFICATION, fields=missile_test(launch_window_end="2026-01-20T00:00:00Z"))
    envelope = seal(intent=Intent.PRE_NOTIFICATION, fields=missile_test())
    opened = open_envelope(envelope, keys_of(ISLAMABAD), keys_of(DELHI).signing_public_key)
    assert opened.content.fields == missile_test()


@pytest.mark.parametrize(
    ("start", "ok"),
    [("2026-01-04T00:00:00Z", True), ("2026-01-03T23:59:59.999Z", False), ("2026-01-10T00:00:00Z", True)],
)
def test_missile_test_notice_must_come_3_days_ahead(start: str, ok: bool) -> None:
    fields = missile_test(launch_window_start=start, launch_window_end="2026-01-05T00:00:00Z")
    assert missile_test_notice_ok(fields, created_at_ms=NOW) is ok


def test_content_parse_refuses_unknown_intent_and_bad_language() -> None:
    good = json.loads(Content("c", MESSAGE_ID, DELHI, (ISLAMABAD,), Intent.FREE_TEXT, "hi").to_bytes())
    assert Content.parse(dump_json(good)).text == "hi"
    changes: list[dict[str, Any]] = [
        {"intent": "threat"},
        {"lang": "en_US"},
        {"v": 2},
        {"v": True},
        {"in_reply_to": "x"},
        {"fields": []},
    ]
    for change in changes:
        with pytest.raises(ProtocolError):
            Content.parse(dump_json({**good, **change}))


def test_word_count() -> None:
    assert word_count("  Please   clarify\nnow ") == 3
    assert word_count("") == 0


# --- envelopes ----------------------------------------------------------------------------------------


def test_sealed_envelope_round_trips_and_both_recipients_read_the_same_content() -> None:
    envelope = seal((ISLAMABAD, WASHINGTON), seq={"islamabad": 4, "washington": 9})
    reparsed = Envelope.from_bytes(envelope.to_bytes())
    assert reparsed == envelope
    assert reparsed.header.seq_for("islamabad") == 4 and reparsed.header.seq_for("washington") == 9
    assert reparsed.header.recipient_members == ("islamabad", "washington")
    contents = [
        open_envelope(reparsed, keys_of(r), keys_of(DELHI).signing_public_key).content
        for r in (ISLAMABAD, WASHINGTON)
    ]
    assert contents[0] == contents[1]
    assert contents[0].recipients == (ISLAMABAD, WASHINGTON)
    with pytest.raises(NotARecipientError):
        reparsed.header.seq_for("delhi")


@pytest.mark.parametrize(
    ("recipients", "seq"),
    [
        ((ISLAMABAD,), {"islamabad": 1, "washington": 1}),  # a seq for a member that is not a recipient
        ((ISLAMABAD, WASHINGTON), {"islamabad": 1}),  # a recipient member without a seq
        ((ISLAMABAD,), {"islamabad": 0}),  # sequence numbers start at 1
        ((ISLAMABAD, ISLAMABAD), {"islamabad": 1}),  # a device twice
    ],
)
def test_sender_cannot_seal_what_a_receiver_would_refuse(
    recipients: tuple[DeviceAddress, ...], seq: dict[str, int]
) -> None:
    with pytest.raises(MalformedError):
        seal(recipients, seq=seq)


def test_seal_needs_a_recipient() -> None:
    with pytest.raises(MalformedError):
        seal(())


def test_seal_refuses_a_prekey_outside_its_validity() -> None:
    expires = prekey_of(ISLAMABAD).expires_ms
    seal(now_ms=expires - 1)
    with pytest.raises(ExpiredPrekeyError):
        seal(now_ms=expires)


def test_a_second_device_of_a_recipient_member_must_be_listed_to_read() -> None:
    envelope = seal((ISLAMABAD,))
    with pytest.raises(NotARecipientError):
        open_envelope(envelope, keys_of(ISLAMABAD_PHONE), keys_of(DELHI).signing_public_key)


def test_erased_prekey_can_no_longer_open() -> None:
    keys = fresh_keys(ISLAMABAD, "erase")
    envelope = seal_envelope(
        keys_of(DELHI),
        channel="c",
        seq={"islamabad": 1},
        recipients=[keys.current_prekey(NOW)],  # type: ignore[list-item]
        precedence=Precedence.ROUTINE,
        intent=Intent.LINK_TEST,
        text="",
        now_ms=NOW,
        rng=DeterministicRng("core/erase"),
    )
    open_envelope(envelope, keys, keys_of(DELHI).signing_public_key)
    keys.erase_prekeys_expired_before(NOW + 30 * DAY_MS)
    with pytest.raises(ProtocolError) as caught:
        open_envelope(envelope, keys, keys_of(DELHI).signing_public_key)
    assert caught.value.code is ErrorCode.UNKNOWN_KEY


# --- limits are checked before any cryptography ---------------------------------------------------------


@pytest.fixture
def no_crypto(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every signature check, HPKE open and AEAD open fail the test if it is reached."""
    called: list[str] = []

    def forbidden(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            called.append(name)
            raise AssertionError(f"{name} was called before the limits were checked")

        return call

    monkeypatch.setattr(crypto, "verify_signature", forbidden("verify_signature"))
    monkeypatch.setattr(crypto, "aead_open", forbidden("aead_open"))
    monkeypatch.setattr(crypto.KemKey, "open", forbidden("KemKey.open"))
    return called


def good_wire() -> dict[str, Any]:
    return seal((ISLAMABAD, WASHINGTON)).to_json()


def big_header_wire() -> dict[str, Any]:
    return {**good_wire(), "header": b64e(b"{" + b" " * 10_000_000 + b"}")}


LIMIT_CASES: list[tuple[str, Callable[[], Any]]] = [
    ("10-MB-header", lambda: Envelope.from_json(big_header_wire())),
    ("10-MB-wire", lambda: Envelope.from_bytes(dump_json(big_header_wire()))),
    (
        "header-over-limit-by-one-byte",
        lambda: Header.parse(b" " * (DEFAULT_LIMITS.max_header_bytes + 1)),
    ),
    (
        "body-over-limit-by-one-byte",
        lambda: Envelope.from_json(
            {**good_wire(), "body": b64e(bytes(DEFAULT_LIMITS.max_body_plaintext_bytes + 29))}
        ),
    ),
    ("65-wrapped-keys", lambda: Envelope.from_json({**good_wire(), "keys": good_wire()["keys"][:1] * 65})),
    ("oversized-wrapped-key", lambda: Envelope.from_json({**good_wire(), "keys": [b64e(bytes(2049))] * 2})),
    (
        "receipt-over-limit",
        lambda: Receipt.from_json({"body": b64e(b" " * (DEFAULT_LIMITS.max_receipt_bytes + 1)), "sig": ""}),
    ),
    ("tree-head-over-limit", lambda: TreeHead.from_json({"body": b64e(b" " * 1025), "sig": ""})),
    ("key-file-over-limit", lambda: DeviceKeys.from_file(b" " * (4 * 1024 * 1024 + 1), "x")),
]


@pytest.mark.parametrize("parse", [c[1] for c in LIMIT_CASES], ids=[c[0] for c in LIMIT_CASES])
def test_limits_are_checked_before_any_cryptography(parse: Callable[[], Any], no_crypto: list[str]) -> None:
    with pytest.raises(TooLargeError):
        parse()
    assert no_crypto == []


def test_structure_is_checked_before_the_signature(no_crypto: list[str]) -> None:
    wire = good_wire()
    header = json.loads(b64d(wire["header"], field="h"))
    header["recipients"] = header["recipients"][:1]
    header["seq"] = {"islamabad": 1}
    with pytest.raises(MalformedError):  # two wrapped keys for one recipient
        Envelope.from_json({**wire, "header": b64e(dump_json(header))})
    assert no_crypto == []


def test_the_no_crypto_fixture_does_catch_a_signature_check(no_crypto: list[str]) -> None:
    envelope = Envelope.from_json(good_wire())
    with pytest.raises(AssertionError):
        open_envelope(envelope, keys_of(ISLAMABAD), keys_of(DELHI).signing_public_key)
    assert no_crypto == ["verify_signature"]


def test_sealing_text_with_a_lone_surrogate_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedError):
        seal(text=b"caf\xe9".decode("utf-8", "surrogateescape"))


def test_content_limits() -> None:
    small = Limits(max_body_plaintext_bytes=400, max_text_chars=100)
    seal(text="x" * 100, limits=small)
    with pytest.raises(TooLargeError):
        seal(text="é" * 100 + "x" * 200, limits=Limits(max_body_plaintext_bytes=400, max_text_chars=1000))
    with pytest.raises(MalformedError):  # within the byte limit, over the character limit
        seal(text="x" * 101, limits=small)


# --- receipts -----------------------------------------------------------------------------------------

COMMON: dict[str, Any] = {
    "channel": "delhi-islamabad",
    "message_id": MESSAGE_ID,
    "envelope_hash": ENVELOPE_HASH,
}
RELAY_KEY = crypto.SigningKey(DeterministicRng("core/relay")(32))

RECEIPT_CASES: list[tuple[str, Callable[[], Receipt], Callable[[], bytes], dict[str, Any]]] = [
    (
        "relay-accepted",
        lambda: issue_relay_accepted(RELAY_KEY, log_index=7, at_ms=NOW, **COMMON),
        lambda: RELAY_KEY.public_bytes,
        {"kind": ReceiptKind.RELAY_ACCEPTED, "issuer": None, "log_index": 7},
    ),
    (
        "delivered",
        lambda: issue_device_receipt(
            keys_of(ISLAMABAD).signing, ISLAMABAD, ReceiptKind.DELIVERED, at_ms=NOW, **COMMON
        ),
        lambda: keys_of(ISLAMABAD).signing_public_key,
        {"kind": ReceiptKind.DELIVERED, "issuer": ISLAMABAD, "log_index": None},
    ),
    (
        "acknowledged-with-reply",
        lambda: issue_device_receipt(
            keys_of(ISLAMABAD).signing,
            ISLAMABAD,
            ReceiptKind.ACKNOWLEDGED,
            at_ms=NOW,
            reply_id="019b76da-a801-7000-8000-000000000001",
            **COMMON,
        ),
        lambda: keys_of(ISLAMABAD).signing_public_key,
        {"kind": ReceiptKind.ACKNOWLEDGED, "reply_id": "019b76da-a801-7000-8000-000000000001"},
    ),
    (
        "acknowledged-without-reply",
        lambda: issue_device_receipt(
            keys_of(ISLAMABAD).signing, ISLAMABAD, ReceiptKind.ACKNOWLEDGED, at_ms=NOW, **COMMON
        ),
        lambda: keys_of(ISLAMABAD).signing_public_key,
        {"kind": ReceiptKind.ACKNOWLEDGED, "reply_id": None},
    ),
    (
        "rejected",
        lambda: issue_device_receipt(
            keys_of(WASHINGTON).signing,
            WASHINGTON,
            ReceiptKind.REJECTED,
            at_ms=NOW,
            reason=ErrorCode.UNKNOWN_KEY,
            **COMMON,
        ),
        lambda: keys_of(WASHINGTON).signing_public_key,
        {"kind": ReceiptKind.REJECTED, "issuer": WASHINGTON, "reason": ErrorCode.UNKNOWN_KEY},
    ),
]


@pytest.mark.parametrize(
    ("issue", "issuer_key", "expected"), [c[1:] for c in RECEIPT_CASES], ids=[c[0] for c in RECEIPT_CASES]
)
def test_each_receipt_kind_round_trips_and_verifies_with_its_issuer_only(
    issue: Callable[[], Receipt], issuer_key: Callable[[], bytes], expected: dict[str, Any]
) -> None:
    receipt = issue()
    parsed = Receipt.from_json(receipt.to_json())
    assert parsed == receipt
    parsed.verify(issuer_key())
    for name, value in expected.items():
        assert getattr(parsed, name) == value
    assert (parsed.channel, parsed.message_id, parsed.envelope_hash) == tuple(COMMON.values())
    with pytest.raises(BadSignatureError):
        parsed.verify(keys_of(DELHI).signing_public_key)


def test_a_device_cannot_issue_a_relay_accepted_receipt() -> None:
    with pytest.raises(MalformedError):
        issue_device_receipt(
            keys_of(ISLAMABAD).signing, ISLAMABAD, ReceiptKind.RELAY_ACCEPTED, at_ms=NOW, **COMMON
        )


@pytest.mark.parametrize("reason", [None, ErrorCode.REPLAY, ErrorCode.TOO_LARGE, ErrorCode.BAD_PASSPHRASE])
def test_rejected_receipt_needs_a_rejection_reason(reason: ErrorCode | None) -> None:
    with pytest.raises(MalformedError):
        issue_device_receipt(
            keys_of(ISLAMABAD).signing, ISLAMABAD, ReceiptKind.REJECTED, at_ms=NOW, reason=reason, **COMMON
        )


def receipt_body(**fields: Any) -> bytes:
    base = json.loads(
        issue_device_receipt(
            keys_of(ISLAMABAD).signing, ISLAMABAD, ReceiptKind.DELIVERED, at_ms=NOW, **COMMON
        ).body
    )
    base.update(fields)
    return dump_json({k: v for k, v in base.items() if v is not ...})


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "read"},
        {"kind": ...},
        {"reply_id": None},  # a field a delivered receipt does not have
        {"issuer": ...},
        {"log_index": 3},
        {"envelope_hash": b64e(bytes(31))},
        {"type": "envelope"},
        {"at_ms": -1},
        {"at_ms": 1.5},
    ],
    ids=repr,
)
def test_receipt_parse_refuses_malformed_bodies(fields: dict[str, Any]) -> None:
    body = receipt_body(**fields)
    with pytest.raises(MalformedError):
        Receipt.parse(body, keys_of(ISLAMABAD).signing.sign(frame(DS_RECEIPT, body)))


def test_tree_head_round_trips_and_verifies_with_the_relay_key_only() -> None:
    head = sign_tree_head(RELAY_KEY, size=3, root=ENVELOPE_HASH, at_ms=NOW)
    parsed = TreeHead.from_json(head.to_json())
    parsed.verify(RELAY_KEY.public_bytes)
    assert (parsed.size, parsed.root, parsed.at_ms) == (3, ENVELOPE_HASH, NOW)
    with pytest.raises(BadSignatureError):
        parsed.verify(keys_of(DELHI).signing_public_key)


# --- fingerprints and safety numbers ------------------------------------------------------------------

KEY_A, KEY_B, KEY_C = (crypto.SigningKey(bytes([i]) * 32).public_bytes for i in (1, 2, 3))


def test_fingerprint_is_32_hex_digits_in_groups_of_four() -> None:
    text = fingerprint(KEY_A)
    groups = text.split(" ")
    assert len(groups) == 8 and all(len(g) == 4 for g in groups)
    int(text.replace(" ", ""), 16)
    assert fingerprint(KEY_A) != fingerprint(KEY_B)


def test_safety_number_is_60_digits_and_the_same_from_both_sides() -> None:
    number = safety_number("delhi", [KEY_A], "islamabad", [KEY_B, KEY_C])
    groups = number.split(" ")
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)
    assert safety_number("islamabad", [KEY_C, KEY_B], "delhi", [KEY_A]) == number
    assert safety_number("islamabad", [KEY_B, KEY_C, KEY_B], "delhi", [KEY_A]) == number


@pytest.mark.parametrize(
    "other",
    [
        ("delhi", [KEY_A], "islamabad", [KEY_B]),  # a device fewer
        ("delhi", [KEY_A, KEY_C], "islamabad", [KEY_B]),  # a device moved to the other member
        ("delhi", [KEY_B, KEY_C], "islamabad", [KEY_A]),  # keys swapped between members
        ("delhi", [KEY_A], "rawalpindi", [KEY_B, KEY_C]),  # another member name
    ],
)
def test_safety_number_changes_with_any_change_of_devices_or_names(other: tuple[Any, ...]) -> None:
    assert safety_number(*other) != safety_number("delhi", [KEY_A], "islamabad", [KEY_B, KEY_C])


def test_member_code_needs_a_key() -> None:
    with pytest.raises(MalformedError):
        member_code("delhi", [])


NUMBER = safety_number("delhi", [KEY_A], "islamabad", [KEY_B])


@pytest.mark.parametrize(
    ("typed", "ok"),
    [
        (NUMBER, True),
        (NUMBER.replace(" ", ""), True),
        (NUMBER.replace(" ", "-"), True),
        ("  " + NUMBER + "\n", True),
        (NUMBER[:-1], False),  # 59 digits
        (NUMBER + "1", False),  # 61 digits
        (NUMBER.replace(" ", "/"), False),
        (NUMBER[:-1] + "O", False),  # a letter O for a zero
        (NUMBER[:-1] + "٣", False),  # an Arabic-Indic digit
        (NUMBER[:-1] + "³", False),  # a superscript digit
    ],
)
def test_normalize_safety_number(typed: str, ok: bool) -> None:
    if ok:
        assert normalize_safety_number(typed) == NUMBER
    else:
        with pytest.raises(MalformedError):
            normalize_safety_number(typed)


# --- the receiver state machine -----------------------------------------------------------------------

S = DELHI
T = WASHINGTON

# (strict_start, [(sender, seq, id)], expected events of the last message, expected missing of S after)
RECEIVER_CASES = [
    ("in-order", True, [(S, 1, "a"), (S, 2, "b")], [Accepted(S, 2, "b")], []),
    ("duplicate", True, [(S, 1, "a"), (S, 1, "a")], [Duplicate(S, 1, "a")], []),
    ("duplicate-id-other-seq", True, [(S, 1, "a"), (S, 2, "a")], [Duplicate(S, 2, "a")], []),
    ("replay-new-id", True, [(S, 1, "a"), (S, 1, "b")], [Replay(S, 1, "b")], []),
    ("first-is-not-1", True, [(S, 3, "c")], [GapDetected(S, 1, 2), Accepted(S, 3, "c")], [(1, 2)]),
    (
        "gap",
        True,
        [(S, 1, "a"), (S, 4, "d")],
        [GapDetected(S, 2, 3), Accepted(S, 4, "d")],
        [(2, 3)],
    ),
    (
        "fill-gap-middle",
        True,
        [(S, 1, "a"), (S, 5, "e"), (S, 3, "c")],
        [Accepted(S, 3, "c", filled_gap=True)],
        [(2, 2), (4, 4)],
    ),
    ("fill-gap-twice", True, [(S, 4, "d"), (S, 2, "b"), (S, 2, "x")], [Replay(S, 2, "x")], [(1, 1), (3, 3)]),
    ("streams-are-per-sender", True, [(S, 1, "a"), (T, 1, "t")], [Accepted(T, 1, "t")], []),
    # A co-recipient reusing another sender's id cannot make the real message look like a duplicate.
    ("ids-are-per-sender", True, [(S, 1, "a"), (T, 1, "a")], [Accepted(T, 1, "a")], []),
    ("same-sender-same-id", True, [(S, 1, "a"), (S, 1, "a")], [Duplicate(S, 1, "a")], []),
    ("non-strict-baseline", False, [(S, 7, "g")], [Accepted(S, 7, "g")], []),
    (
        "non-strict-then-gap",
        False,
        [(S, 7, "g"), (S, 9, "i")],
        [GapDetected(S, 8, 8), Accepted(S, 9, "i")],
        [(8, 8)],
    ),
    ("non-strict-older-is-replay", False, [(S, 7, "g"), (S, 6, "f")], [Replay(S, 6, "f")], []),
]


@pytest.mark.parametrize(
    ("strict", "messages", "last_events", "missing"),
    [c[1:] for c in RECEIVER_CASES],
    ids=[c[0] for c in RECEIVER_CASES],
)
def test_receiver(
    strict: bool,
    messages: list[tuple[DeviceAddress, int, str]],
    last_events: list[Any],
    missing: list[tuple[int, int]],
) -> None:
    state = ReceiverState(strict_start=strict)
    events: list[Any] = []
    for sender, seq, message_id in messages:
        events = state.receive(sender, seq, message_id)
    assert events == last_events
    assert state.missing(S) == missing
    restored = ReceiverState.from_json(json.loads(json.dumps(state.to_json())))
    assert restored.to_json() == state.to_json()


def test_receiver_refuses_sequence_number_zero() -> None:
    with pytest.raises(ValueError):
        ReceiverState().receive(S, 0, "a")


def test_gap_event_reads_well() -> None:
    assert str(GapDetected(S, 2, 2)) == "message 2 from delhi/laptop missing"
    assert str(GapDetected(S, 2, 5)) == "messages 2–5 from delhi/laptop missing"


# --- key commitment -----------------------------------------------------------------------------------


def test_a_sender_cannot_give_two_recipients_different_content_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malicious sender re-wraps another content key for one recipient and re-signs everything.

    Both wraps are valid HPKE ciphertexts and the signature verifies, but the header commits to one
    content key, so the recipient given the other key refuses before AES-GCM is tried: AES-GCM is not
    key-committing, so a crafted body could otherwise decrypt to a second text under the second key.
    """
    used_keys: list[bytes] = []
    real_aead_open = crypto.aead_open

    def recording_aead_open(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        used_keys.append(key)
        return real_aead_open(key, nonce, ciphertext, aad)

    monkeypatch.setattr(crypto, "aead_open", recording_aead_open)
    good = seal((ISLAMABAD, WASHINGTON))
    header = good.header
    other_key = bytes(32)
    index = [r.address for r in header.recipients].index(WASHINGTON)
    info = frame(
        b"hotline/v1/wrap",
        crypto.sha256(good.header_bytes),
        b"washington",
        b"desk",
        header.recipients[index].prekey_id.encode(),
    )
    wrapped = list(good.wrapped_keys)
    wrapped[index] = crypto.hpke_seal(prekey_of(WASHINGTON).public_key, other_key, info)
    forged = Envelope(good.header_bytes, good.body, tuple(wrapped), b"", header)
    forged = Envelope(
        good.header_bytes,
        good.body,
        tuple(wrapped),
        keys_of(DELHI).signing.sign(forged.signed_bytes()),
        header,
    )
    forged.verify_signature(keys_of(DELHI).signing_public_key)  # the sender really signed it
    assert open_envelope(forged, keys_of(ISLAMABAD), keys_of(DELHI).signing_public_key).content.text
    used_keys.clear()
    with pytest.raises(DecryptionFailedError):
        open_envelope(forged, keys_of(WASHINGTON), keys_of(DELHI).signing_public_key)
    assert other_key not in used_keys


# --- weak keys ----------------------------------------------------------------------------------------

SMALL_ORDER_ENCODINGS = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0100000000000000000000000000000000000000000000000000000000000080",  # identity, sign bit set
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p (non-canonical)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1 (non-canonical)
]


@pytest.mark.parametrize("hex_key", SMALL_ORDER_ENCODINGS)
def test_weak_ed25519_public_keys_are_refused(hex_key: str) -> None:
    with pytest.raises(MalformedError):
        crypto.load_verify_key(bytes.fromhex(hex_key))


def test_the_identity_key_forgery_does_not_verify() -> None:
    """With the identity point as public key, (R = identity, S = 0) verifies for any message in
    OpenSSL's Ed25519; refusing the key is what stops a device from signing deniably."""
    identity = bytes.fromhex(SMALL_ORDER_ENCODINGS[1])
    forged = identity + bytes(32)
    with pytest.raises(ProtocolError):
        crypto.verify_signature(identity, forged, b"any message at all")


def test_real_keys_are_not_weak() -> None:
    for address in (DELHI, ISLAMABAD, WASHINGTON):
        assert not crypto.is_weak_ed25519_public_key(keys_of(address).signing_public_key)
