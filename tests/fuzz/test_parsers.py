"""Fuzz targets for every parser a peer's bytes reach: any input parses or raises ProtocolError.

A parser that raises anything else (KeyError, TypeError, RecursionError, UnicodeError, …) on hostile
input is a crash waiting in the relay or a client. Each target gets arbitrary bytes, arbitrary JSON
values, and valid objects with one field replaced by an arbitrary value (type confusion), within a
bounded hypothesis budget.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.protocol import DeviceKeys, Envelope, Intent, Precedence, Receipt, ReceiptKind, SignedPrekey
from hotline.protocol.audit import parse_entry
from hotline.protocol.content import Content
from hotline.protocol.encoding import b64d, b64e, load_json_object
from hotline.protocol.envelope import Header, seal_envelope
from hotline.protocol.errors import ProtocolError
from hotline.protocol.model import DeviceAddress
from hotline.protocol.receipts import issue_device_receipt
from hotline.protocol.statements import TreeHead

NOW = 1_750_000_000_000
BUDGET = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _world() -> tuple[Envelope, Receipt, SignedPrekey]:
    rng = os.urandom
    alice = DeviceKeys.generate(DeviceAddress("delhi", "laptop"), rng, NOW)
    bob = DeviceKeys.generate(DeviceAddress("islamabad", "laptop"), rng, NOW)
    prekey = bob.current_prekey(NOW)
    assert prekey is not None
    envelope = seal_envelope(
        alice,
        channel="fuzz",
        seq={"islamabad": 1},
        recipients=[prekey],
        precedence=Precedence.FLASH,
        intent=Intent.CLARIFICATION_REQUEST,
        text="fuzz",
        now_ms=NOW,
        rng=rng,
    )
    receipt = issue_device_receipt(
        bob.signing,
        bob.address,
        ReceiptKind.ACKNOWLEDGED,
        channel="fuzz",
        message_id=envelope.header.message_id,
        envelope_hash=envelope.hash,
        at_ms=NOW,
        reply_id=None,
    )
    return envelope, receipt, prekey


ENVELOPE, RECEIPT, PREKEY = _world()


def only_protocol_errors(parse: Callable[[], Any]) -> None:
    with contextlib.suppress(ProtocolError):
        parse()


def _wire_parsers() -> dict[str, Callable[[Any], Any]]:
    return {
        "envelope": Envelope.from_json,
        "receipt": Receipt.from_json,
        "tree_head": TreeHead.from_json,
        "prekey": SignedPrekey.from_json,
    }


BYTE_PARSERS: dict[str, Callable[[bytes], Any]] = {
    "envelope": Envelope.from_bytes,
    "header": Header.parse,
    "content": Content.parse,
    "audit_entry": parse_entry,
    "receipt_body": lambda b: Receipt.parse(b, bytes(64)),
    "tree_head_body": lambda b: TreeHead.parse(b, bytes(64)),
    "prekey_body": lambda b: SignedPrekey.parse(b, bytes(64)),
    "json_object": lambda b: load_json_object(b, what="fuzz", max_bytes=1 << 20),
}

VALID_BODIES: dict[str, bytes] = {
    "envelope": ENVELOPE.to_bytes(),
    "header": ENVELOPE.header_bytes,
    "receipt_body": RECEIPT.body,
    "prekey_body": PREKEY.body,
}


@pytest.mark.parametrize("target", list(BYTE_PARSERS))
@BUDGET
@given(data=st.binary(max_size=600))
def test_any_bytes_parse_or_raise_a_protocol_error(target: str, data: bytes) -> None:
    only_protocol_errors(lambda: BYTE_PARSERS[target](data))


@pytest.mark.parametrize("target", list(BYTE_PARSERS))
@BUDGET
@given(value=json_values)
def test_any_json_document_parses_or_raises_a_protocol_error(target: str, value: Any) -> None:
    only_protocol_errors(lambda: BYTE_PARSERS[target](json.dumps(value).encode()))


@pytest.mark.parametrize("target", list(VALID_BODIES))
@BUDGET
@given(data=st.data())
def test_a_valid_body_with_one_field_replaced_parses_or_raises_a_protocol_error(target: str, data) -> None:
    obj = json.loads(VALID_BODIES[target])
    key = data.draw(st.sampled_from(sorted(obj)))
    obj[key] = data.draw(json_values)
    only_protocol_errors(lambda: BYTE_PARSERS[target](json.dumps(obj).encode()))


@pytest.mark.parametrize("target", list(_wire_parsers()))
@BUDGET
@given(value=json_values)
def test_any_wire_value_parses_or_raises_a_protocol_error(target: str, value: Any) -> None:
    only_protocol_errors(lambda: _wire_parsers()[target](value))


@BUDGET
@given(data=st.data())
def test_an_envelope_with_a_header_field_replaced_is_refused_cleanly(data) -> None:
    """Header fields reach the parser through base64: replace one and re-encode (the signature then
    cannot hold, but parsing must fail or succeed cleanly before that)."""
    header = json.loads(ENVELOPE.header_bytes)
    key = data.draw(st.sampled_from(sorted(header)))
    header[key] = data.draw(json_values)
    wire = {**ENVELOPE.to_json(), "header": b64e(json.dumps(header).encode())}

    def parse_and_verify() -> None:
        envelope = Envelope.from_json(wire)
        envelope.verify_signature(b64d(b64e(bytes(32)), field="k"))

    only_protocol_errors(parse_and_verify)


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(100, 5000))
def test_deeply_nested_json_is_refused_without_recursion_errors(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    for target in ("envelope", "receipt_body", "json_object"):
        only_protocol_errors(lambda t=target: BYTE_PARSERS[t](b'{"a":' + nested + b"}"))
