"""Properties of the protocol core: tampering, addressing, sizes, the receiver state machine, ids, base64url.

Bit flips of the decoded envelope parts are checked exhaustively (every bit of a real envelope); the rest
uses hypothesis with modest example counts so the whole file runs in a few seconds.
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections import Counter
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hotline.protocol import crypto
from hotline.protocol.content import Content
from hotline.protocol.encoding import b64d, b64e
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
)
from hotline.protocol.ids import uuid7, uuid7_time_ms
from hotline.protocol.keys import DeviceKeys, PrekeySecret
from hotline.protocol.model import DEFAULT_LIMITS, DeviceAddress, Intent, Precedence
from hotline.protocol.receiver import Accepted, Duplicate, Event, GapDetected, ReceiverState, Replay
from tests.vectors.detrng import DeterministicRng
from tests.vectors.generate import NOW_MS, with_parts

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SENDER = DeviceAddress("delhi", "laptop")
POOL = (
    DeviceAddress("islamabad", "desk"),
    DeviceAddress("islamabad", "phone"),
    DeviceAddress("washington", "desk"),
    DeviceAddress("beijing", "desk"),
    DeviceAddress("moscow", "desk"),
)


@cache
def keys_of(address: DeviceAddress) -> DeviceKeys:
    return DeviceKeys.generate(address, DeterministicRng(f"properties/{address}"), NOW_MS)


def prekey_of(address: DeviceAddress) -> Any:
    return next(iter(keys_of(address).prekeys.values())).signed


def seal(recipients: tuple[DeviceAddress, ...], text: str = "hello", label: str = "seal") -> Envelope:
    return seal_envelope(
        keys_of(SENDER),
        channel="properties",
        seq={r.member: 1 for r in recipients},
        recipients=[prekey_of(r) for r in recipients],
        precedence=Precedence.IMMEDIATE,
        intent=Intent.FREE_TEXT,
        text=text,
        now_ms=NOW_MS,
        rng=DeterministicRng(label),
    )


@cache
def two_recipient_envelope() -> Envelope:
    return seal((POOL[0], POOL[2]), text="Please confirm receipt of this message.")


def open_as(wire: dict[str, Any] | bytes, recipient: DeviceAddress) -> None:
    envelope = Envelope.from_bytes(wire) if isinstance(wire, bytes) else Envelope.from_json(wire)
    open_envelope(envelope, keys_of(recipient), keys_of(SENDER).signing_public_key)


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- tampering ----------------------------------------------------------------------------------------


def test_the_unmodified_envelope_opens_for_both_recipients() -> None:
    # The control for the flip tests below: they fail only because of the flip.
    wire = two_recipient_envelope().to_json()
    for recipient in (POOL[0], POOL[2]):
        open_as(wire, recipient)


@pytest.mark.parametrize("part", ["header", "body", "key0", "key1", "sig"])
def test_flipping_any_single_bit_of_any_part_is_refused_with_a_protocol_error(part: str) -> None:
    good = two_recipient_envelope()
    original = {
        "header": good.header_bytes,
        "body": good.body,
        "key0": good.wrapped_keys[0],
        "key1": good.wrapped_keys[1],
        "sig": good.signature,
    }[part]
    codes: Counter[ErrorCode] = Counter()
    for bit in range(len(original) * 8):
        mutated = flip(original, bit)
        if part == "header":
            wire = with_parts(good, header_bytes=mutated)
        elif part == "body":
            wire = with_parts(good, body=mutated)
        elif part == "sig":
            wire = with_parts(good, signature=mutated)
        else:
            index = int(part[-1])
            keys = list(good.wrapped_keys)
            keys[index] = mutated
            wire = with_parts(good, keys=tuple(keys))
        for recipient in (POOL[0], POOL[2]):
            with pytest.raises(ProtocolError) as caught:
                open_as(wire, recipient)
            codes[caught.value.code] += 1
    if part == "header":
        # Both outcomes occur: a broken header is refused while parsing, a valid one by the signature.
        assert codes[ErrorCode.MALFORMED] > 0
        assert codes[ErrorCode.BAD_SIGNATURE] > 0
        assert set(codes) <= {
            ErrorCode.MALFORMED,
            ErrorCode.BAD_SIGNATURE,
            ErrorCode.UNSUPPORTED_VERSION,
            ErrorCode.UNSUPPORTED_SUITE,
        }
    else:
        # Body, wrapped keys and signature are all covered by the signature.
        assert set(codes) == {ErrorCode.BAD_SIGNATURE}


@SETTINGS
@given(data=st.data())
def test_flipping_any_bit_of_the_wire_json_is_refused_with_a_protocol_error(data: st.DataObject) -> None:
    wire = two_recipient_envelope().to_bytes()
    bit = data.draw(st.integers(0, len(wire) * 8 - 1), label="bit")
    recipient = data.draw(st.sampled_from((POOL[0], POOL[2])), label="recipient")
    with pytest.raises(ProtocolError):
        open_as(flip(wire, bit), recipient)


# --- who can open -------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    recipients=st.lists(st.sampled_from(POOL), min_size=1, max_size=len(POOL) - 1, unique=True),
    data=st.data(),
)
def test_a_non_recipient_never_decrypts(recipients: list[DeviceAddress], data: st.DataObject) -> None:
    outsider = data.draw(st.sampled_from([d for d in POOL if d not in recipients]), label="outsider")
    envelope = seal(tuple(recipients))
    for recipient in recipients:
        assert (
            open_envelope(envelope, keys_of(recipient), keys_of(SENDER).signing_public_key).content.text
            == "hello"
        )
    with pytest.raises(NotARecipientError):
        open_envelope(envelope, keys_of(outsider), keys_of(SENDER).signing_public_key)
    with pytest.raises(NotARecipientError):
        open_envelope(envelope, keys_of(SENDER), keys_of(SENDER).signing_public_key)


@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=64, max_size=64))
def test_a_device_with_the_wrong_keys_fails_with_a_typed_error(seed: bytes) -> None:
    envelope = two_recipient_envelope()
    target = POOL[0]
    sender_key = keys_of(SENDER).signing_public_key
    # Another device's keys under the recipient's address: its prekey is not the one named.
    impostor = DeviceKeys.generate(target, DeterministicRng(seed.hex()), NOW_MS)
    with pytest.raises(UnknownKeyError):
        open_envelope(envelope, impostor, sender_key)
    # The named prekey id, but the wrong secret behind it (a corrupted key store).
    real = prekey_of(target)
    corrupted = DeviceKeys(target, keys_of(target).signing)
    corrupted.prekeys[real.id] = PrekeySecret(crypto.KemKey(seed[:32]), real)
    with pytest.raises(DecryptionFailedError):
        open_envelope(envelope, corrupted, sender_key)
    # The right recipient keys but the wrong sender key.
    with pytest.raises(BadSignatureError):
        open_envelope(envelope, keys_of(target), crypto.SigningKey(seed[32:]).public_bytes)


# --- body size ----------------------------------------------------------------------------------------


def content_overhead(recipients: tuple[DeviceAddress, ...]) -> int:
    """Bytes of content JSON around an empty text: fixed, since a message id is always 36 characters."""
    return len(
        Content(
            channel="properties",
            message_id=str(uuid.UUID(int=0)),
            sender=SENDER,
            recipients=recipients,
            intent=Intent.FREE_TEXT,
            text="",
        ).to_bytes()
    )


def text_of_utf8_size(data: st.DataObject, size: int) -> str:
    """A text of exactly ``size`` UTF-8 bytes within the character limit: 3-byte 'द's and 1-byte 'a's."""
    max_chars = DEFAULT_LIMITS.max_text_chars
    wide = data.draw(st.integers(max(0, -(-(size - max_chars) // 2)), size // 3), label="3-byte characters")
    chars = ["द"] * wide + ["a"] * (size - 3 * wide)
    text = "".join(data.draw(st.permutations(chars), label="order")) if len(chars) < 64 else "".join(chars)
    assert len(text.encode("utf-8")) == size and len(text) <= max_chars
    return text


def fixed_text_of_utf8_size(size: int) -> str:
    text = "द" * (size // 3) + "a" * (size % 3)
    assert len(text.encode("utf-8")) == size and len(text) <= DEFAULT_LIMITS.max_text_chars
    return text


RECIPIENTS = (POOL[0],)
LIMIT = DEFAULT_LIMITS.max_body_plaintext_bytes


@settings(max_examples=30, deadline=None)
@given(size=st.integers(content_overhead(RECIPIENTS), LIMIT), data=st.data())
@example(size=LIMIT, data=None).via("the limit itself")
@example(size=content_overhead(RECIPIENTS), data=None).via("an empty text")
def test_content_of_any_size_up_to_the_limit_round_trips(size: int, data: st.DataObject | None) -> None:
    text_size = size - content_overhead(RECIPIENTS)
    text = fixed_text_of_utf8_size(text_size) if data is None else text_of_utf8_size(data, text_size)
    envelope = seal(RECIPIENTS, text=text)
    assert len(envelope.body) == size + crypto.AES_NONCE_LEN + crypto.AES_TAG_LEN
    reparsed = Envelope.from_bytes(envelope.to_bytes())
    opened = open_envelope(reparsed, keys_of(RECIPIENTS[0]), keys_of(SENDER).signing_public_key)
    assert opened.content.text == text
    assert len(opened.content.to_bytes()) == size


@settings(max_examples=20, deadline=None)
@given(over=st.integers(1, 2000), data=st.data())
@example(over=1, data=None).via("one byte over")
def test_content_over_the_limit_is_too_large(over: int, data: st.DataObject | None) -> None:
    text_size = LIMIT + over - content_overhead(RECIPIENTS)
    text = fixed_text_of_utf8_size(text_size) if data is None else text_of_utf8_size(data, text_size)
    with pytest.raises(TooLargeError):
        seal(RECIPIENTS, text=text)


# --- the receiver state machine ----------------------------------------------------------------------

SENDERS = tuple(DeviceAddress(f"sender{i}", "desk") for i in range(3))


def genuine_id(sender: int, seq: int) -> str:
    return f"{sender}:{seq}"


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[int], list[tuple[str, int, int]]]:
    """How many messages each sender sends, and a delivery order with duplicates, reorderings and gaps.

    Steps are ("deliver", sender, seq), ("forge", sender, seq) — the same seq under a new id — and
    ("roundtrip", 0, 0), which persists and reloads the receiver's state.
    """
    counts = draw(st.lists(st.integers(1, 12), min_size=1, max_size=len(SENDERS)))
    message = st.integers(0, len(counts) - 1).flatmap(
        lambda s: st.tuples(st.just(s), st.integers(1, counts[s]))
    )
    step = st.one_of(
        message.map(lambda m: ("deliver", *m)),
        message.map(lambda m: ("forge", *m)),
        st.just(("roundtrip", 0, 0)),
    )
    early = draw(st.lists(step, max_size=40))
    everything = [("deliver", s, q) for s, n in enumerate(counts) for q in range(1, n + 1)]
    return counts, early + draw(st.permutations(everything))


@settings(max_examples=150, deadline=None)
@given(schedule=schedules())
def test_receiver_accepts_each_message_once_and_reports_every_gap_exactly(
    schedule: tuple[list[int], list[tuple[str, int, int]]],
) -> None:
    counts, steps = schedule
    state = ReceiverState()
    twin = ReceiverState()  # never persisted: the round trips must not change behaviour
    accepted_ids: set[str] = set()
    id_sender: dict[str, DeviceAddress] = {}
    accepted: set[tuple[DeviceAddress, int]] = set()
    high = dict.fromkeys(SENDERS, 0)
    forgeries = 0
    for kind, s, seq in steps:
        if kind == "roundtrip":
            state = ReceiverState.from_json(json.loads(json.dumps(state.to_json())))
            continue
        sender = SENDERS[s]
        if kind == "forge":
            if (sender, seq) not in accepted:
                continue  # only a seq already used can be replayed
            forgeries += 1
            message_id = f"forged:{forgeries}"
        else:
            message_id = genuine_id(s, seq)
        events: list[Event] = state.receive(sender, seq, message_id)
        assert twin.receive(sender, seq, message_id) == events

        if kind == "forge":
            assert events == [Replay(sender, seq, message_id)]
            continue
        if message_id in accepted_ids:
            assert events == [Duplicate(sender, seq, message_id)]
            continue
        # A genuine message not seen before is always accepted, after a gap report if it skips ahead.
        expected: list[Event] = []
        if seq > high[sender] + 1:
            expected.append(GapDetected(sender, high[sender] + 1, seq - 1))
        expected.append(Accepted(sender, seq, message_id, filled_gap=seq < high[sender]))
        assert events == expected
        assert (sender, seq) not in accepted and seq <= counts[s]
        accepted.add((sender, seq))
        accepted_ids.add(message_id)
        id_sender[message_id] = sender
        high[sender] = max(high[sender], seq)

    # Everything was delivered at least once: nothing is missing and every message was accepted.
    assert state.all_missing() == {}
    assert accepted_ids == {genuine_id(s, q) for s, n in enumerate(counts) for q in range(1, n + 1)}
    assert all(state.has_accepted(id_sender[i], i) for i in accepted_ids)
    assert state.to_json() == twin.to_json()


@settings(max_examples=60, deadline=None)
@given(schedule=schedules(), cut=st.integers(0, 60))
def test_missing_ranges_are_exactly_the_skipped_unreceived_numbers(
    schedule: tuple[list[int], list[tuple[str, int, int]]], cut: int
) -> None:
    _, steps = schedule
    state = ReceiverState()
    received: dict[DeviceAddress, set[int]] = {s: set() for s in SENDERS}
    for kind, s, seq in steps[:cut]:
        if kind == "deliver":
            state.receive(SENDERS[s], seq, genuine_id(s, seq))
            received[SENDERS[s]].add(seq)
    for sender in SENDERS:
        top = max(received[sender], default=0)
        missing = {n for lo, hi in state.missing(sender) for n in range(lo, hi + 1)}
        assert missing == set(range(1, top + 1)) - received[sender]
        ranges = state.missing(sender)
        assert ranges == sorted(ranges)
        assert all(a_hi + 1 < b_lo for (_, a_hi), (b_lo, _) in itertools.pairwise(ranges))


# --- message ids --------------------------------------------------------------------------------------


@SETTINGS
@given(now_ms=st.integers(0, 2**48 - 1), random=st.binary(min_size=10, max_size=10))
def test_uuid7_has_version_7_the_rfc_variant_and_its_time(now_ms: int, random: bytes) -> None:
    value = uuid7(now_ms, lambda n: random[:n])
    parsed = uuid.UUID(value)
    assert str(parsed) == value
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert uuid7_time_ms(value) == now_ms
    # All 74 random bits come from the random source: 12 after the version, 62 after the variant.
    rand = int.from_bytes(random, "big")
    assert parsed.int >> 64 & 0xFFF == rand >> 68 & 0xFFF
    assert parsed.int & (2**62 - 1) == rand & (2**62 - 1)


@SETTINGS
@given(
    times=st.tuples(st.integers(0, 2**48 - 1), st.integers(0, 2**48 - 1)).filter(lambda t: t[0] != t[1]),
    randoms=st.tuples(st.binary(min_size=10, max_size=10), st.binary(min_size=10, max_size=10)),
)
def test_uuid7_sorts_in_time_order_whatever_the_random_bits(
    times: tuple[int, int], randoms: tuple[bytes, bytes]
) -> None:
    a = uuid7(times[0], lambda n: randoms[0][:n])
    b = uuid7(times[1], lambda n: randoms[1][:n])
    assert (a < b) == (times[0] < times[1])


def test_uuid7_refuses_times_outside_48_bits() -> None:
    for bad in (-1, 2**48):
        with pytest.raises(ValueError):
            uuid7(bad, DeterministicRng("uuid"))


# --- strict base64url ---------------------------------------------------------------------------------

URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def is_canonical_unpadded_base64url(text: str) -> bool:
    """An independent statement of the accepted set: the one encoding of some byte string."""
    if any(ch not in URLSAFE for ch in text):
        return False
    tail = len(text) % 4
    if tail == 1:
        return False
    # The last character of a 2- or 3-character tail carries 4 or 2 unused bits, which must be zero.
    if tail == 2:
        return URLSAFE.index(text[-1]) & 0b1111 == 0
    if tail == 3:
        return URLSAFE.index(text[-1]) & 0b11 == 0
    return True


@SETTINGS
@given(data=st.binary(max_size=200))
def test_b64_round_trips_every_byte_string(data: bytes) -> None:
    text = b64e(data)
    assert is_canonical_unpadded_base64url(text)
    assert b64d(text, field="x") == data
    assert text == base64.urlsafe_b64encode(data).decode().rstrip("=")


def near_canonical() -> st.SearchStrategy[str]:
    """Canonical encodings, and the same with one character changed, inserted or appended."""
    noise: st.SearchStrategy[str] = st.sampled_from([*URLSAFE, "=", "+", "/", "\n", " ", ".", "é"])

    @st.composite
    def mutated(draw: st.DrawFn) -> str:
        text = b64e(draw(st.binary(max_size=20)))
        action = draw(st.sampled_from(["keep", "replace", "insert", "append", "drop"]))
        if action == "keep" or (not text and action in ("replace", "drop")):
            return text
        i = draw(st.integers(0, max(0, len(text) - 1)))
        if action == "replace":
            return text[:i] + draw(noise) + text[i + 1 :]
        if action == "insert":
            return text[:i] + draw(noise) + text[i:]
        if action == "drop":
            return text[:i] + text[i + 1 :]
        return text + draw(noise)

    return mutated()


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(alphabet=URLSAFE + "=+/\n ", max_size=9), near_canonical()))
def test_b64_decoder_accepts_exactly_the_canonical_encodings(text: str) -> None:
    if is_canonical_unpadded_base64url(text):
        data = b64d(text, field="x")
        assert b64e(data) == text
    else:
        with pytest.raises(MalformedError):
            b64d(text, field="x")


@SETTINGS
@given(data=st.binary(max_size=64), limit=st.integers(0, 64))
def test_b64_length_limit_is_exact(data: bytes, limit: int) -> None:
    if len(data) <= limit:
        assert b64d(b64e(data), field="x", max_bytes=limit) == data
    else:
        with pytest.raises(TooLargeError):
            b64d(b64e(data), field="x", max_bytes=limit)
