"""Envelopes: sealing a message for its recipients, and checking and opening one.

Layout (docs/PROTOCOL.md, "Envelope"): a JSON *header* travels as its exact bytes; a fresh 32-byte
content key encrypts the content with AES-256-GCM (the AAD binds the header hash); the content key is
wrapped for every recipient device with HPKE, whose ``info`` binds the header hash and the recipient;
one signature by the sender device (Ed25519, or the Ed25519 + ML-DSA-65 hybrid in ``hotline-pq1``)
covers the domain-separated header and the SHA-256 hashes of the body and of the wrapped keys. The
header names the suite; the sender's key, every recipient's prekey and the receiving device must all be
of that suite, or the envelope is refused as ``unsupported_suite``.
Anyone holding the sender's public key — the relay, an auditor — can check who sent what without being
able to read it. Nothing is re-serialized before verification: what is signed is what travels.

Checks run cheapest first: sizes, then structure, then signature, then decryption.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hotline.protocol import crypto
from hotline.protocol.content import Content
from hotline.protocol.encoding import b64d, b64e, dump_json, frame, load_json_object
from hotline.protocol.errors import (
    DecryptionFailedError,
    MalformedError,
    NotARecipientError,
    TooLargeError,
    UnknownKeyError,
    UnsupportedSuiteError,
    UnsupportedVersionError,
)
from hotline.protocol.ids import RandomSource, uuid7
from hotline.protocol.keys import DeviceKeys, SignedPrekey
from hotline.protocol.model import (
    DEFAULT_LIMITS,
    MAX_WRAPPED_KEY_BYTES,
    PREKEY_ID_RE,
    PROTOCOL_VERSION,
    ContentType,
    DeviceAddress,
    Intent,
    Limits,
    Precedence,
    Suite,
    is_protocol_version,
    require_bool,
    require_channel,
    require_enum,
    require_int,
    require_object,
    require_str,
    require_uuid,
)

DS_ENVELOPE = b"hotline/v1/envelope"
DS_ENVELOPE_HASH = b"hotline/v1/envelope-hash"
DS_BODY = b"hotline/v1/body"
DS_WRAP = b"hotline/v1/wrap"
DS_KEY_COMMITMENT = b"hotline/v1/key-commitment"

# Checked before the header says which suite applies: the largest suite's (hotline-c1: 80, hotline-pq1:
# 1,168). A wrapped key of the wrong length for the suite is covered by the signature and fails to open.
_MAX_WRAPPED_KEY = MAX_WRAPPED_KEY_BYTES

HEADER_FIELDS = frozenset(
    {
        "v",
        "suite",
        "channel",
        "id",
        "sender",
        "seq",
        "recipients",
        "precedence",
        "key_commitment",
        "created_at_ms",
        "content_type",
        "exercise",
    }
)


@dataclass(frozen=True)
class Recipient:
    address: DeviceAddress
    prekey_id: str

    def to_json(self) -> dict[str, str]:
        return {**self.address.to_json(), "prekey": self.prekey_id}


@dataclass(frozen=True)
class Header:
    suite: Suite
    channel: str
    message_id: str
    sender: DeviceAddress
    seq: tuple[tuple[str, int], ...]  # (recipient member, sequence number), sorted by member
    recipients: tuple[Recipient, ...]
    precedence: Precedence
    created_at_ms: int
    content_type: ContentType
    exercise: bool
    # SHA-256 of the content key (domain-separated). AES-GCM and HPKE do not commit to their keys, so
    # without this one signed envelope could carry different content keys — and so different texts —
    # to different recipients. With it, every recipient that opens the envelope reads the same text.
    key_commitment: bytes

    def to_bytes(self) -> bytes:
        return dump_json(
            {
                "v": PROTOCOL_VERSION,
                "suite": self.suite.value,
                "channel": self.channel,
                "id": self.message_id,
                "sender": self.sender.to_json(),
                "seq": dict(self.seq),
                "recipients": [r.to_json() for r in self.recipients],
                "precedence": self.precedence.value,
                "created_at_ms": self.created_at_ms,
                "content_type": self.content_type.value,
                "exercise": self.exercise,
                "key_commitment": b64e(self.key_commitment),
            }
        )

    @classmethod
    def parse(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Header:
        obj = load_json_object(data, what="header", max_bytes=limits.max_header_bytes)
        if "v" in obj and not is_protocol_version(obj["v"]):
            raise UnsupportedVersionError(f"protocol version {obj['v']!r} is not supported")
        f = require_object(obj, field="header", keys=HEADER_FIELDS)
        suite_value = require_str(f["suite"], field="header.suite", max_len=64)
        try:
            suite = Suite(suite_value)
        except ValueError as exc:
            raise UnsupportedSuiteError(f"suite {suite_value!r} is not supported") from exc
        raw_recipients = f["recipients"]
        if not isinstance(raw_recipients, list) or not raw_recipients:
            raise MalformedError("header.recipients: expected a non-empty list")
        if len(raw_recipients) > limits.max_recipients:
            raise TooLargeError(f"header.recipients: more than {limits.max_recipients} recipients")
        recipients = []
        for i, item in enumerate(raw_recipients):
            name = f"header.recipients[{i}]"
            rf = require_object(item, field=name, keys={"member", "device", "prekey"})
            prekey = require_str(rf["prekey"], field=f"{name}.prekey", max_len=32)
            if not PREKEY_ID_RE.fullmatch(prekey):
                raise MalformedError(f"{name}.prekey: not a prekey id")
            address = DeviceAddress.from_json({"member": rf["member"], "device": rf["device"]}, field=name)
            recipients.append(Recipient(address, prekey))
        if len({r.address for r in recipients}) != len(recipients):
            raise MalformedError("header.recipients: a device is listed twice")
        seq = _parse_seq(f["seq"], {r.address.member for r in recipients})
        content_type = require_str(f["content_type"], field="header.content_type", max_len=64)
        try:
            ctype = ContentType(content_type)
        except ValueError as exc:
            raise UnsupportedVersionError(f"content type {content_type!r} is not supported") from exc
        return cls(
            suite=suite,
            channel=require_channel(f["channel"], field="header.channel"),
            message_id=require_uuid(f["id"], field="header.id"),
            sender=DeviceAddress.from_json(f["sender"], field="header.sender"),
            seq=seq,
            recipients=tuple(recipients),
            precedence=require_enum(f["precedence"], Precedence, field="header.precedence"),
            created_at_ms=require_int(f["created_at_ms"], field="header.created_at_ms"),
            content_type=ctype,
            exercise=require_bool(f["exercise"], field="header.exercise"),
            key_commitment=_require_hash(f["key_commitment"], field="header.key_commitment"),
        )

    def recipient(self, address: DeviceAddress) -> Recipient:
        for r in self.recipients:
            if r.address == address:
                return r
        raise NotARecipientError(f"{address} is not a recipient of message {self.message_id}")

    @property
    def recipient_members(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.address.member for r in self.recipients))

    def seq_for(self, member: str) -> int:
        """The sender device's sequence number in its stream to ``member``."""
        for name, number in self.seq:
            if name == member:
                return number
        raise NotARecipientError(f"{member} is not a recipient of message {self.message_id}")


def _parse_seq(obj: object, members: set[str]) -> tuple[tuple[str, int], ...]:
    if not isinstance(obj, dict):
        raise MalformedError("header.seq: expected an object of member -> sequence number")
    if set(obj) != members:
        raise MalformedError("header.seq: needs exactly one sequence number per recipient member")
    return tuple(sorted((m, require_int(n, field=f"header.seq.{m}", minimum=1)) for m, n in obj.items()))


def _require_hash(value: object, *, field: str) -> bytes:
    digest = b64d(value, field=field, max_bytes=32)
    if len(digest) != 32:
        raise MalformedError(f"{field}: a SHA-256 hash is 32 bytes")
    return digest


def key_commitment(content_key: bytes) -> bytes:
    return crypto.sha256(frame(DS_KEY_COMMITMENT, content_key))


def envelope_signed_bytes(header_bytes: bytes, body_hash: bytes, keys_hash: bytes) -> bytes:
    return frame(DS_ENVELOPE, header_bytes, body_hash, keys_hash)


def envelope_hash(header_bytes: bytes, body_hash: bytes, keys_hash: bytes, signature: bytes) -> bytes:
    return crypto.sha256(frame(DS_ENVELOPE_HASH, header_bytes, body_hash, keys_hash, signature))


@dataclass(frozen=True)
class Envelope:
    """A sealed message as it travels. ``header`` is parsed from ``header_bytes``, never the reverse."""

    header_bytes: bytes
    body: bytes
    wrapped_keys: tuple[bytes, ...]
    signature: bytes
    header: Header

    @property
    def body_hash(self) -> bytes:
        return crypto.sha256(self.body)

    @property
    def keys_hash(self) -> bytes:
        return crypto.sha256(frame(*self.wrapped_keys))

    def signed_bytes(self) -> bytes:
        """What the sender signs: the header itself and hashes of the body and the wrapped keys.

        Hashes rather than the bulk bytes let the audit log keep only the header, two hashes and the
        signature, and still let an auditor verify who sent what.
        """
        return envelope_signed_bytes(self.header_bytes, self.body_hash, self.keys_hash)

    @property
    def hash(self) -> bytes:
        """SHA-256 identifying these exact bytes; receipts and the audit log refer to it."""
        return envelope_hash(self.header_bytes, self.body_hash, self.keys_hash, self.signature)

    def to_json(self) -> dict[str, Any]:
        return {
            "header": b64e(self.header_bytes),
            "body": b64e(self.body),
            "keys": [b64e(k) for k in self.wrapped_keys],
            "sig": b64e(self.signature),
        }

    @classmethod
    def from_json(cls, obj: object, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
        """Parse the wire form: sizes first, then structure. Does not verify the signature."""
        f = require_object(obj, field="envelope", keys={"header", "body", "keys", "sig"})
        header_bytes = b64d(f["header"], field="envelope.header", max_bytes=limits.max_header_bytes)
        max_body = limits.max_body_plaintext_bytes + crypto.AES_NONCE_LEN + crypto.AES_TAG_LEN
        body = b64d(f["body"], field="envelope.body", max_bytes=max_body)
        if len(body) < crypto.AES_NONCE_LEN + crypto.AES_TAG_LEN:
            raise MalformedError("envelope.body: too short to be a ciphertext")
        raw_keys = f["keys"]
        if not isinstance(raw_keys, list):
            raise MalformedError("envelope.keys: expected a list")
        if len(raw_keys) > limits.max_recipients:
            raise TooLargeError(f"envelope.keys: more than {limits.max_recipients} keys")
        keys = tuple(
            b64d(k, field=f"envelope.keys[{i}]", max_bytes=_MAX_WRAPPED_KEY) for i, k in enumerate(raw_keys)
        )
        header = Header.parse(header_bytes, limits=limits)
        # The header's suite fixes the signature's length; still no cryptography has been done.
        signature = b64d(f["sig"], field="envelope.sig", max_bytes=header.suite.sizes.signature)
        if len(keys) != len(header.recipients):
            raise MalformedError("envelope.keys: one wrapped key per header recipient is required")
        return cls(header_bytes, body, keys, signature, header)

    @classmethod
    def from_bytes(cls, data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
        obj = load_json_object(data, what="envelope", max_bytes=limits.max_envelope_bytes)
        return cls.from_json(obj, limits=limits)

    def to_bytes(self) -> bytes:
        return dump_json(self.to_json())

    def verify_signature(self, sender_signing_key: bytes) -> None:
        """Raise :class:`BadSignatureError` unless the sender device signed exactly these bytes.

        Raises :class:`UnsupportedSuiteError` first if the sender's key is not of the header's suite.
        """
        crypto.require_signing_key_suite(sender_signing_key, self.header.suite, who=str(self.header.sender))
        crypto.verify_signature(sender_signing_key, self.signature, self.signed_bytes())


@dataclass(frozen=True)
class OpenedMessage:
    envelope: Envelope
    content: Content

    @property
    def header(self) -> Header:
        return self.envelope.header


def _body_aad(header_hash: bytes) -> bytes:
    return frame(DS_BODY, header_hash)


def _wrap_info(header_hash: bytes, recipient: Recipient) -> bytes:
    return frame(
        DS_WRAP,
        header_hash,
        recipient.address.member.encode(),
        recipient.address.device.encode(),
        recipient.prekey_id.encode(),
    )


def seal_envelope(
    keys: DeviceKeys,
    *,
    channel: str,
    seq: Mapping[str, int],
    recipients: Sequence[SignedPrekey],
    precedence: Precedence,
    intent: Intent,
    text: str,
    now_ms: int,
    rng: RandomSource,
    lang: str = "en",
    in_reply_to: str | None = None,
    fields: dict[str, Any] | None = None,
    exercise: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Seal ``text`` from ``keys``' device to every device whose prekey is in ``recipients``.

    ``seq`` gives, for each recipient member, the next number of this device's stream to that member.

    The caller has already checked each prekey's signature against the key directory; here each must
    be valid at ``now_ms`` and of the sender's suite.
    """
    if not recipients:
        raise MalformedError("an envelope needs at least one recipient")
    for prekey in recipients:
        prekey.require_valid_at(now_ms)
        if prekey.suite is not keys.suite:
            raise UnsupportedSuiteError(
                f"{prekey.owner} uses suite {prekey.suite.value}, this device {keys.suite.value}"
            )
    message_id = uuid7(now_ms, rng)
    content_key = rng(crypto.AES_KEY_LEN)
    header = Header(
        suite=keys.suite,
        channel=channel,
        message_id=message_id,
        sender=keys.address,
        seq=tuple(sorted(seq.items())),
        recipients=tuple(Recipient(p.owner, p.id) for p in recipients),
        precedence=precedence,
        created_at_ms=now_ms,
        content_type=ContentType.MESSAGE,
        exercise=exercise,
        key_commitment=key_commitment(content_key),
    )
    header_bytes = header.to_bytes()
    # Round-trip through the parser so a sender can never emit what a receiver would refuse.
    header = Header.parse(header_bytes, limits=limits)
    content = Content(
        channel=channel,
        message_id=message_id,
        sender=keys.address,
        recipients=tuple(r.address for r in header.recipients),
        intent=intent,
        text=text,
        lang=lang,
        in_reply_to=in_reply_to,
        fields=fields or {},
    )
    plaintext = content.to_bytes()
    if len(plaintext) > limits.max_body_plaintext_bytes:
        raise TooLargeError(
            f"message content is {len(plaintext)} bytes; the limit is {limits.max_body_plaintext_bytes}"
        )
    Content.parse(plaintext, limits=limits)
    header_hash = crypto.sha256(header_bytes)
    nonce = rng(crypto.AES_NONCE_LEN)
    body = nonce + crypto.aead_seal(content_key, nonce, plaintext, _body_aad(header_hash))
    wrapped = tuple(
        crypto.hpke_seal(p.public_key, content_key, _wrap_info(header_hash, r), suite=header.suite)
        for p, r in zip(recipients, header.recipients, strict=True)
    )
    unsigned = Envelope(header_bytes, body, wrapped, b"", header)
    signature = keys.signing.sign(unsigned.signed_bytes())
    return Envelope(header_bytes, body, wrapped, signature, header)


def open_envelope(
    envelope: Envelope,
    keys: DeviceKeys,
    sender_signing_key: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> OpenedMessage:
    """Verify and decrypt an envelope addressed to ``keys``' device.

    Raises, in order of the checks: :class:`BadSignatureError`, :class:`NotARecipientError`,
    :class:`UnknownKeyError` (the prekey is unknown or erased), :class:`DecryptionFailedError`,
    :class:`MalformedError` (the content does not match the header).
    """
    header = envelope.header
    if header.suite is not keys.suite:
        raise UnsupportedSuiteError(f"suite {header.suite.value} is not this device's suite")
    envelope.verify_signature(sender_signing_key)
    me = header.recipient(keys.address)
    index = header.recipients.index(me)
    secret = keys.prekeys.get(me.prekey_id)
    if secret is None:
        raise UnknownKeyError(f"prekey {me.prekey_id} is unknown here or has been erased")
    header_hash = crypto.sha256(envelope.header_bytes)
    content_key = secret.secret.open(envelope.wrapped_keys[index], _wrap_info(header_hash, me))
    if len(content_key) != crypto.AES_KEY_LEN or not crypto.constant_time_equal(
        key_commitment(content_key), header.key_commitment
    ):
        raise DecryptionFailedError("could not open")
    nonce, ciphertext = envelope.body[: crypto.AES_NONCE_LEN], envelope.body[crypto.AES_NONCE_LEN :]
    plaintext = crypto.aead_open(content_key, nonce, ciphertext, _body_aad(header_hash))
    content = Content.parse(plaintext, limits=limits)
    if (
        content.channel != header.channel
        or content.message_id != header.message_id
        or content.sender != header.sender
        or content.recipients != tuple(r.address for r in header.recipients)
    ):
        raise MalformedError("the content does not match the envelope header")
    return OpenedMessage(envelope, content)
