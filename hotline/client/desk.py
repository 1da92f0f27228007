"""DeskClient: one enrolled device talking to a relay — send, receive, receipts, keys.

It is the only place where the protocol core meets the network on the client side. Its rules:

* **Nothing lost.** An envelope is written to the profile's outbox before it is posted and leaves it
  only when the relay's signed ``relay-accepted`` receipt has been checked; receipts too. A crash or a
  dead relay leaves them to be flushed on the next call.
* **Nothing twice.** An inbox item is acknowledged to the relay only after its effect is saved in the
  profile, and the receiver state machine drops anything already accepted; so a redelivered item never
  reaches the application twice.
* **Sender identity from keys.** Every envelope and receipt is verified against the pinned key of its
  sender device (trust on first use); a key or device change after pinning blocks sending to that
  member until a person accepts it or compares safety numbers.
* **Failures are loud.** A message this device cannot verify or open is answered with a signed
  ``rejected`` receipt and surfaced as an event; gaps in a sender's numbering are raised as alarms.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from hotline.client.api import RelayAPI
from hotline.client.errors import (
    ClientError,
    KeyChangeError,
    ProfileError,
    RelayError,
    RelayUnreachableError,
)
from hotline.client.notices import NoticeReceived
from hotline.client.state import Pin, PinnedDevice, ProfileState, ProfileStore
from hotline.client.watch import Watch, flag_over_cap
from hotline.client.watch import sent_extras as watch_sent_extras
from hotline.protocol import (
    DeviceAddress,
    DeviceKeys,
    Envelope,
    Intent,
    Precedence,
    Receipt,
    ReceiptKind,
    SignedPrekey,
    fingerprint,
    issue_device_receipt,
    open_envelope,
    safety_number,
    seal_envelope,
)
from hotline.protocol import receiver as rx
from hotline.protocol.encoding import b64d, b64e
from hotline.protocol.errors import ErrorCode, ProtocolError
from hotline.protocol.fingerprints import normalize_safety_number
from hotline.protocol.ids import RandomSource
from hotline.protocol.receipts import REJECT_REASONS
from hotline.protocol.statements import sign_auth_challenge

Clock = Callable[[], int]


def system_clock() -> int:
    return time.time_ns() // 1_000_000


TOKEN_REFRESH_MARGIN_MS = 30_000
INBOX_PAGE = 100

# Set by listen() while it processes one socket item: a receipt then goes out as a frame on that socket
# (one frame instead of an HTTP request and its token lookup); the relay answers with a
# ``receipt-result`` frame, handled by :meth:`DeskClient._on_receipt_result`.
ReceiptSink = Callable[[str, dict[str, str]], Awaitable[None]]
_SOCKET_RECEIPTS: contextvars.ContextVar[ReceiptSink | None] = contextvars.ContextVar(
    "hotline_socket_receipts", default=None
)
MAX_ITEM_RETRIES = 3


# --- events handed to the application ------------------------------------------------------------


@dataclass(frozen=True)
class MessageReceived:
    message_id: str
    sender: DeviceAddress
    precedence: Precedence
    intent: Intent
    text: str
    lang: str
    in_reply_to: str | None
    fields: dict[str, Any]
    created_at_ms: int
    accepted_at_ms: int
    delivered_at_ms: int
    exercise: bool


@dataclass(frozen=True)
class ReceiptReceived:
    message_id: str
    kind: ReceiptKind
    issuer: DeviceAddress
    at_ms: int
    reason: str | None = None
    reply_id: str | None = None
    declined: bool = False  # an acknowledgement that is a signed refusal


@dataclass(frozen=True)
class GapAlarm:
    sender: DeviceAddress
    first: int
    last: int

    @property
    def text(self) -> str:
        return str(rx.GapDetected(self.sender, self.first, self.last))


@dataclass(frozen=True)
class MessageRefused:
    """A message this device could not accept; a signed ``rejected`` receipt went back to the sender."""

    message_id: str
    sender: DeviceAddress
    reason: str


@dataclass(frozen=True)
class KeyChanged:
    member: str
    device: str
    change: str  # device_added | key_changed | device_revoked


@dataclass(frozen=True)
class RelayAlarm:
    """The relay handed over something that does not check out (e.g. a receipt for another envelope).

    ``resend`` is true when the inbox item was left unacknowledged so that the relay sends it again:
    what arrived may have been damaged on the way (up to ``MAX_ITEM_RETRIES`` times per item).
    """

    reason: str
    resend: bool = False


ClientEvent = (
    MessageReceived | ReceiptReceived | GapAlarm | MessageRefused | KeyChanged | RelayAlarm | NoticeReceived
)


@dataclass(frozen=True)
class SentMessage:
    message_id: str
    receipt: Receipt
    log_index: int
    duplicate: bool
    recipients: tuple[DeviceAddress, ...]


@dataclass
class DeviceInfo:
    address: DeviceAddress
    signing_key: bytes
    status: str
    prekeys: list[SignedPrekey] = field(default_factory=list)


@dataclass
class MemberInfo:
    member: str
    role: str
    status: str
    devices: dict[str, DeviceInfo] = field(default_factory=dict)

    def active_devices(self) -> list[DeviceInfo]:
        return [d for d in self.devices.values() if d.status == "active"]


@dataclass(frozen=True)
class Contact:
    member: str
    role: str
    status: str
    devices: tuple[tuple[str, str, str], ...]  # (device, fingerprint, status)
    verified: bool
    unaccepted_change: bool
    safety_number: str | None


class DeskClient:
    """An enrolled device. Build with :meth:`enroll` (new) or :meth:`open` (existing profile)."""

    def __init__(
        self,
        store: ProfileStore,
        keys: DeviceKeys,
        api: RelayAPI,
        *,
        clock: Clock = system_clock,
        rng: RandomSource = os.urandom,
    ) -> None:
        self.store = store
        self.keys = keys
        self.api = api
        self.clock = clock
        self.rng = rng
        self._token_expires_ms = 0
        self._directory: dict[str, MemberInfo] | None = None
        from hotline.client.audit import AuditMonitor  # it builds on this module's events

        self.audit = AuditMonitor(self)  # the relay's audit log: heads, proofs, split views
        self.watch = Watch(self)  # link tests, crisis acts, check-ins, escalations, ladders (ADR 0007)
        self._item_retries: dict[int, int] = {}  # inbox item id -> times it arrived unreadable

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    async def enroll(
        cls,
        relay_url: str,
        code: str,
        device: str,
        store: ProfileStore,
        *,
        clock: Clock = system_clock,
        rng: RandomSource = os.urandom,
        http: httpx.AsyncClient | None = None,
        verify_tls: bool | str = True,
    ) -> DeskClient:
        """Generate this device's keys locally and redeem an enrollment invite with the public halves."""
        if store.exists():
            raise ProfileError("this profile is already enrolled; choose another profile name")
        api = RelayAPI(relay_url, http=http, verify=verify_tls)
        preview = await api.request("GET", f"/v1/invites/{code}", auth=None)
        relay = await api.request("GET", "/v1/relay", auth=None)
        if relay["public_key"] != preview["relay_public_key"]:
            raise ClientError("the relay's key differs between two answers; refusing to enroll")
        address = DeviceAddress(preview["member"], device)
        keys = DeviceKeys.generate(address, rng, clock())
        if keys.suite.value != preview["suite"]:
            raise ClientError(
                f"the channel uses suite {preview['suite']}, which this client does not support",
                code=ErrorCode.UNSUPPORTED_SUITE.value,
            )
        prekeys = [p.signed.to_json() for p in keys.prekeys.values()]
        answer = await api.request(
            "POST",
            "/v1/enroll",
            auth=None,
            json_body={
                "code": code,
                "device": device,
                "signing_key": b64e(keys.signing_public_key),
                "prekeys": prekeys,
            },
        )
        state = ProfileState(
            relay_url=relay_url,
            relay_id=relay["relay_id"],
            relay_public_key=relay["public_key"],
            channel=answer["channel"],
            member=answer["member"],
            device=answer["device"],
            role=answer["role"],
            suite=preview["suite"],
        )
        with store.lock():
            store.save_keys(keys, rng)
            store.save_state(state)
        client = cls(store, keys, api, clock=clock, rng=rng)
        await client.refresh_directory()
        # A later device of a member starts mid-stream: earlier messages went to its older devices.
        me = client.directory[state.member]
        older = [d for d in me.active_devices() if d.address.device != device]
        if older:
            with client._edit() as st:
                st.strict_start = False
                st.receiver = rx.ReceiverState(strict_start=False)
        return client

    @classmethod
    def open(
        cls,
        store: ProfileStore,
        *,
        clock: Clock = system_clock,
        rng: RandomSource = os.urandom,
        http: httpx.AsyncClient | None = None,
        verify_tls: bool | str = True,
    ) -> DeskClient:
        keys = store.load_keys()
        state = store.load_state()
        return cls(store, keys, RelayAPI(state.relay_url, http=http, verify=verify_tls), clock=clock, rng=rng)

    async def aclose(self) -> None:
        await self.api.aclose()

    async def __aenter__(self) -> DeskClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> ProfileState:
        return self.store.load_state()

    @property
    def address(self) -> DeviceAddress:
        return self.keys.address

    @property
    def channel(self) -> str:
        return self.state.channel

    @contextlib.contextmanager
    def _edit(self) -> Iterator[ProfileState]:
        """Load, let the caller change, and durably save the profile state, under the profile lock."""
        with self.store.lock():
            state = self.store.load_state()
            yield state
            self.store.save_state(state)

    def _path(self, suffix: str) -> str:
        return f"/v1/channels/{self.state.channel}{suffix}"

    # --- authentication -------------------------------------------------------------------------

    async def login(self) -> None:
        """Prove possession of the signing key to the relay and get a short-lived token."""
        st = self.state
        who = {"channel": st.channel, "member": st.member, "device": st.device}
        challenge = await self.api.request("POST", "/v1/auth/challenge", json_body=who, auth=None)
        raw = b64d(challenge["challenge"], field="challenge", max_bytes=64)
        signature = sign_auth_challenge(self.keys.signing, st.relay_id, raw, self.address)
        token = await self.api.request(
            "POST",
            "/v1/auth/token",
            auth=None,
            json_body={**who, "challenge": challenge["challenge"], "signature": b64e(signature)},
        )
        self.api.token = token["token"]
        self._token_expires_ms = int(token["expires_ms"])

    async def _call(self, method: str, suffix: str, **kwargs: Any) -> Any:
        """A device-authenticated request on this channel, logging in again when the token lapses."""
        if self.api.token is None or self.clock() > self._token_expires_ms - TOKEN_REFRESH_MARGIN_MS:
            await self.login()
        try:
            return await self.api.request(method, self._path(suffix), **kwargs)
        except RelayError as exc:
            if exc.code not in {"token_expired", "unauthorized"}:
                raise
            await self.login()
            return await self.api.request(method, self._path(suffix), **kwargs)

    # --- key directory --------------------------------------------------------------------------

    @property
    def directory(self) -> dict[str, MemberInfo]:
        if self._directory is None:
            raise ClientError("the key directory has not been fetched yet")
        return self._directory

    async def refresh_directory(self) -> list[ClientEvent]:
        """Fetch the roster, check every prekey signature, and compare keys with the pins."""
        raw = await self._call("GET", "/directory")
        members: dict[str, MemberInfo] = {}
        events: list[ClientEvent] = []
        for m in raw["members"]:
            info = MemberInfo(m["member"], m["role"], m["status"])
            for d in m["devices"]:
                address = DeviceAddress(m["member"], d["device"])
                signing_key = b64d(d["signing_key"], field="signing_key", max_bytes=64)
                device = DeviceInfo(address, signing_key, d["status"])
                for p in d.get("prekeys", []):
                    try:
                        prekey = SignedPrekey.from_json(p)
                        prekey.verify(signing_key)
                        if prekey.owner != address:
                            raise ProtocolError("prekey owner mismatch")
                    except ProtocolError:
                        events.append(
                            RelayAlarm(f"the relay served a prekey for {address} that is not signed by it")
                        )
                        continue
                    device.prekeys.append(prekey)
                info.devices[d["device"]] = device
            members[info.member] = info
        self._directory = members
        with self._edit() as st:
            events.extend(self._update_pins(st, members))
            st.directory_version = int(raw.get("version", st.directory_version))
            for ev in events:
                if isinstance(ev, KeyChanged):
                    st.key_events.append(
                        {"member": ev.member, "device": ev.device, "change": ev.change, "at_ms": self.clock()}
                    )
        return events

    def _update_pins(self, st: ProfileState, members: dict[str, MemberInfo]) -> list[ClientEvent]:
        events: list[ClientEvent] = []
        now = self.clock()
        for name, info in members.items():
            pin = st.pins.get(name)
            if pin is None or not pin.devices:
                # First use (no device of this member seen before): pin what the relay shows now.
                st.pins[name] = Pin(
                    devices={
                        d.address.device: PinnedDevice(b64e(d.signing_key), now, d.status)
                        for d in info.devices.values()
                    }
                )
                continue
            for dev in info.devices.values():
                pinned = pin.devices.get(dev.address.device)
                key = b64e(dev.signing_key)
                if pinned is None:
                    pin.devices[dev.address.device] = PinnedDevice(key, now, dev.status)
                    if dev.status == "active" and dev.address != self.address:
                        events.append(KeyChanged(name, dev.address.device, "device_added"))
                        pin.unaccepted_change = True
                elif pinned.signing_key != key:
                    # A device's key never changes (a new key is a new device), so this is the relay
                    # lying. The pin keeps the old key until a person verifies or accepts the new one:
                    # until then messages signed by the new key fail verification here.
                    pinned.status = dev.status
                    events.append(KeyChanged(name, dev.address.device, "key_changed"))
                    pin.unaccepted_change = True
                elif pinned.status != dev.status:
                    pinned.status = dev.status
                    if dev.status != "active":
                        events.append(KeyChanged(name, dev.address.device, "device_revoked"))
            if pin.unaccepted_change:
                pin.verified = False
        return events

    def _signing_key_of(self, address: DeviceAddress) -> bytes | None:
        """The pinned signing key of a device, if the directory and the pin agree on it."""
        pin = self.state.pins.get(address.member)
        if pin is None or address.device not in pin.devices:
            return None
        return b64d(pin.devices[address.device].signing_key, field="pin", max_bytes=64)

    def contacts(self) -> list[Contact]:
        st = self.state
        mine = self._member_keys(st.member)
        out = []
        for name, info in sorted(self.directory.items()):
            pin = st.pins.get(name, Pin())
            keys = self._member_keys(name)
            number = (
                safety_number(st.member, mine, name, keys) if keys and mine and name != st.member else None
            )
            out.append(
                Contact(
                    member=name,
                    role=info.role,
                    status=info.status,
                    devices=tuple(
                        (d.address.device, fingerprint(d.signing_key), d.status)
                        for d in sorted(info.devices.values(), key=lambda d: d.address.device)
                    ),
                    verified=pin.verified,
                    unaccepted_change=pin.unaccepted_change,
                    safety_number=number,
                )
            )
        return out

    def _member_keys(self, member: str) -> list[bytes]:
        info = self.directory.get(member)
        if info is None:
            return []
        return [d.signing_key for d in info.active_devices()]

    def safety_number_with(self, member: str) -> str:
        mine, theirs = self._member_keys(self.state.member), self._member_keys(member)
        if not theirs:
            raise ClientError(f"{member} has no active devices", code="not_found")
        return safety_number(self.state.member, mine, member, theirs)

    def verify_contact(self, member: str, spoken: str) -> bool:
        """Mark ``member`` verified if ``spoken`` equals the safety number computed here."""
        expected = self.safety_number_with(member)
        if normalize_safety_number(spoken) != expected:
            return False
        with self._edit() as st:
            pin = st.pins.setdefault(member, Pin())
            pin.verified = True
            pin.unaccepted_change = False
            self._adopt_directory_keys(pin, member)
        return True

    def _adopt_directory_keys(self, pin: Pin, member: str) -> None:
        """Pin the keys the directory shows now for ``member`` (a person has vouched for them)."""
        info = self.directory.get(member)
        for dev in info.devices.values() if info is not None else ():
            pinned = pin.devices.get(dev.address.device)
            if pinned is None or pinned.signing_key != b64e(dev.signing_key):
                pin.devices[dev.address.device] = PinnedDevice(
                    b64e(dev.signing_key), self.clock(), dev.status
                )

    def accept_key_change(self, member: str) -> None:
        """Accept a member's changed keys without verifying them (they stay unverified)."""
        with self._edit() as st:
            if member in st.pins:
                st.pins[member].unaccepted_change = False
                if self._directory is not None:
                    self._adopt_directory_keys(st.pins[member], member)

    # --- sending --------------------------------------------------------------------------------

    def _recipient_prekeys(self, to: Sequence[str], now: int) -> list[SignedPrekey]:
        st = self.state
        blocked = sorted(m for m in {*to, st.member} if st.pins.get(m, Pin()).unaccepted_change)
        if blocked:
            raise KeyChangeError(blocked)
        prekeys: list[SignedPrekey] = []
        for member in dict.fromkeys([*to, st.member]):
            info = self.directory.get(member)
            if info is None or info.status != "active":
                raise ClientError(f"{member} is not an active member of {st.channel}", code="not_found")
            if info.role == "operator":
                raise ClientError(f"{member} is an operator and never receives messages", code="forbidden")
            for dev in info.active_devices():
                if dev.address == self.address:
                    continue
                valid = [p for p in dev.prekeys if p.is_valid_at(now)]
                if not valid:
                    raise ClientError(
                        f"{dev.address} has no valid prekey; it must come online", code="expired_prekey"
                    )
                prekeys.append(max(valid, key=lambda p: (p.expires_ms, p.id)))
        if not any(p.owner.member != st.member for p in prekeys) and set(to) != {st.member}:
            raise ClientError("no recipient device to send to", code="not_found")
        return prekeys

    async def send(
        self,
        to: Sequence[str],
        text: str,
        *,
        precedence: Precedence = Precedence.ROUTINE,
        intent: Intent = Intent.FREE_TEXT,
        in_reply_to: str | None = None,
        fields: dict[str, Any] | None = None,
        lang: str = "en",
        exercise: bool = False,
    ) -> SentMessage:
        """Seal and send a message to every device of the ``to`` members (and this member's others)."""
        if not to:
            raise ClientError("name at least one recipient", code="malformed")
        await self.watch.check_word_cap(precedence, text)
        await self.flush_outbox()
        if self._directory is None:
            await self.refresh_directory()
        for attempt in range(2):
            now = self.clock()
            prekeys = self._recipient_prekeys(to, now)
            members = sorted({p.owner.member for p in prekeys})
            with self._edit() as st:
                seq = {m: st.next_seq.get(m, 1) for m in members}
                envelope = seal_envelope(
                    self.keys,
                    channel=st.channel,
                    seq=seq,
                    recipients=prekeys,
                    precedence=precedence,
                    intent=intent,
                    text=text,
                    now_ms=now,
                    rng=self.rng,
                    lang=lang,
                    in_reply_to=in_reply_to,
                    fields=fields,
                    exercise=exercise,
                )
                for m in members:
                    st.next_seq[m] = seq[m] + 1
                message_id = envelope.header.message_id
                st.outbox[message_id] = {
                    "envelope": envelope.to_json(),
                    "to": list(to),
                    "text": text,
                    "intent": intent.value,
                    "in_reply_to": in_reply_to,
                }
            try:
                return await self._post_envelope(message_id, envelope)
            except RelayError as exc:
                if exc.code in {"unknown_recipient", "expired_prekey"} and attempt == 0:
                    # The directory was stale: the envelope was refused, so its numbers are reused.
                    with self._edit() as st:
                        st.outbox.pop(message_id, None)
                        for m in members:
                            st.next_seq[m] = seq[m]
                    await self.refresh_directory()
                    continue
                if exc.status < 500:
                    with self._edit() as st:
                        st.outbox.pop(message_id, None)
                        for m in members:
                            if st.next_seq.get(m) == seq[m] + 1:
                                st.next_seq[m] = seq[m]
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_envelope(self, message_id: str, envelope: Envelope | None = None) -> SentMessage:
        """Post an outbox entry; ``envelope`` is its parsed form when the caller just sealed it."""
        entry = self.state.outbox[message_id]
        if envelope is None:
            envelope = Envelope.from_json(entry["envelope"])
        answer = await self._call("POST", entry.get("path", "/envelopes"), json_body=entry["envelope"])
        if not isinstance(answer, dict) or "receipt" not in answer:  # an answer to some other request
            raise ClientError("the relay's answer holds no receipt", code="bad_receipt")
        receipt = Receipt.from_json(answer["receipt"])
        receipt.verify(b64d(self.state.relay_public_key, field="relay_public_key"))
        if (
            receipt.kind is not ReceiptKind.RELAY_ACCEPTED
            or receipt.message_id != message_id
            or receipt.envelope_hash != envelope.hash
        ):
            raise ClientError("the relay's receipt is not about this envelope", code="bad_receipt")
        header = envelope.header
        with self._edit() as st:
            st.outbox.pop(message_id, None)
            st.sent[message_id] = {
                "to": entry["to"],
                "text": entry["text"],
                "intent": entry["intent"],
                "in_reply_to": entry["in_reply_to"],
                "precedence": header.precedence.value,
                "exercise": header.exercise,
                "created_at_ms": header.created_at_ms,
                "envelope_hash": b64e(envelope.hash),
                "accepted_at_ms": receipt.at_ms,
                "log_index": receipt.log_index,
                "relay_receipt": receipt.to_json(),
                "recipients": {
                    str(r.address): {} for r in header.recipients if r.address.member != st.member
                },
                "own_devices": [str(r.address) for r in header.recipients if r.address.member == st.member],
                "seq": dict(header.seq),  # a resend to a device that rejected it reuses its number
                **watch_sent_extras(st),
            }
        assert receipt.log_index is not None
        return SentMessage(
            message_id=message_id,
            receipt=receipt,
            log_index=receipt.log_index,
            duplicate=bool(answer.get("duplicate")),
            recipients=tuple(r.address for r in header.recipients),
        )

    async def flush_outbox(self) -> None:
        """Post anything a crash or an unreachable relay left unsent (idempotent on the relay)."""
        st = self.state
        for message_id in list(st.outbox):
            await self._post_envelope(message_id)
        for key, body in list(st.receipt_outbox.items()):
            await self._post_receipt_json(key, body)

    # --- receipts -------------------------------------------------------------------------------

    async def _send_receipt(self, receipt: Receipt) -> None:
        key = b64e(receipt.hash)
        with self._edit() as st:
            st.receipt_outbox[key] = receipt.to_json()
        await self._post_receipt_json(key, receipt.to_json())

    def _on_receipt_result(self, frame: dict[str, Any]) -> None:
        """The relay's answer to a receipt sent on the socket: as for ``POST /receipts``."""
        key = frame.get("id")
        if not isinstance(key, str):
            return
        error = frame.get("error")
        with self._edit() as st:
            st.receipt_outbox.pop(key, None)
            if isinstance(error, dict):
                code = str(error.get("code"))
                st.alarms.append({"kind": "receipt_refused", "code": code, "at_ms": self.clock()})
            else:
                self.audit.note_receipt(
                    st, key, {"log_index": frame.get("log_index"), "duplicate": frame.get("duplicate")}
                )

    async def _post_receipt_json(self, key: str, body: dict[str, str]) -> None:
        try:
            answer = await self._call("POST", "/receipts", json_body={"receipt": body})
        except RelayError as exc:
            # A refusal will not change on retry; keep it out of the outbox but remember why.
            with self._edit() as st:
                st.receipt_outbox.pop(key, None)
                st.alarms.append({"kind": "receipt_refused", "code": exc.code, "at_ms": self.clock()})
            return
        with self._edit() as st:
            st.receipt_outbox.pop(key, None)
            self.audit.note_receipt(st, key, answer)

    async def acknowledge(
        self, message_id: str, reply: str | None = None, *, declined: bool = False
    ) -> Receipt:
        """A person at this desk confirms a message, optionally with a reply sent first.

        ``declined``: the acknowledgement is a signed refusal (the person read it and declines).
        """
        st = self.state
        msg = st.received.get(message_id)
        if msg is None:
            raise ClientError(f"no received message {message_id}", code="not_found")
        reply_id = None
        if reply:
            sent = await self.send(
                [msg["sender"]["member"]],
                reply,
                precedence=Precedence(msg["precedence"]),
                intent=Intent.ACK_REPLY,
                in_reply_to=message_id,
                exercise=bool(msg["exercise"]),
            )
            reply_id = sent.message_id
        receipt = issue_device_receipt(
            self.keys.signing,
            self.address,
            ReceiptKind.ACKNOWLEDGED,
            channel=st.channel,
            message_id=message_id,
            envelope_hash=b64d(msg["envelope_hash"], field="envelope_hash"),
            at_ms=self.clock(),
            reply_id=reply_id,
            declined=declined,
        )
        await self._send_receipt(receipt)
        with self._edit() as st2:
            st2.received[message_id]["acknowledged_at_ms"] = receipt.at_ms
            st2.received[message_id]["reply_id"] = reply_id
            st2.received[message_id]["declined"] = declined
        return receipt

    # --- receiving ------------------------------------------------------------------------------

    async def sync(self) -> list[ClientEvent]:
        """Pull and process every pending inbox item (for clients without a socket)."""
        await self.flush_outbox()
        events: list[ClientEvent] = []
        while True:
            page = await self._call("GET", "/inbox", params={"limit": INBOX_PAGE})
            items = page["items"]
            done = []
            for item in items:
                item_events = await self.process_item(item)
                events.extend(item_events)
                if not self._retry_item(item, item_events):
                    done.append(item["id"])
            if done:
                await self._call("POST", "/inbox/ack", json_body={"ids": done})
            if len(items) < INBOX_PAGE or len(done) < len(items):
                return events + await self.audit.maybe_check()

    def _retry_item(self, item: dict[str, Any], events: list[ClientEvent]) -> bool:
        """Whether to leave an item unacknowledged so that it comes again (it arrived damaged)."""
        if not any(isinstance(e, RelayAlarm) and e.resend for e in events):
            return False
        key = item.get("id")
        if not isinstance(key, int):
            return False
        self._item_retries[key] = self._item_retries.get(key, 0) + 1
        return self._item_retries[key] <= MAX_ITEM_RETRIES

    async def listen(self, *, stop: asyncio.Event | None = None) -> AsyncIterator[ClientEvent]:
        """Stream events over the relay's socket, reconnecting and resuming after any drop."""
        backoff = 0.2
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                async for event in self._listen_once(stop):
                    backoff = 0.2
                    yield event
            except (
                OSError,
                websockets.ConnectionClosed,
                websockets.InvalidHandshake,
                TimeoutError,
                ValueError,
            ):
                pass  # ValueError: a frame that is not JSON (damaged on the way); reconnect and resume
            except RelayUnreachableError:
                pass  # the relay is down or the link damaged: back off and try again
            except RelayError as exc:
                if exc.code in {"device_revoked", "forbidden", "not_a_member"}:
                    raise
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 5.0)

    async def _listen_once(self, stop: asyncio.Event) -> AsyncIterator[ClientEvent]:
        await self.flush_outbox()
        if self.api.token is None or self.clock() > self._token_expires_ms - TOKEN_REFRESH_MARGIN_MS:
            await self.login()
        url = self.state.relay_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        async with websockets.connect(url + self._path("/socket"), max_size=4 * 1024 * 1024) as ws:
            await ws.send(json.dumps({"type": "auth", "token": self.api.token}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if first.get("type") == "error":
                err = first.get("error", {})
                raise RelayError(str(err.get("code")), str(err.get("message")), status=0)
            stopper = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    receiver = asyncio.ensure_future(ws.recv())
                    done, _ = await asyncio.wait({receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if stopper in done:
                        receiver.cancel()
                        return
                    frame = json.loads(receiver.result())
                    if not isinstance(frame, dict):
                        raise ValueError("a socket frame that is not a JSON object")
                    kind = frame.get("type")
                    if kind == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                    elif kind == "error":
                        err = frame.get("error", {})
                        raise RelayError(str(err.get("code")), str(err.get("message")), status=0)
                    elif kind == "receipt-result":
                        self._on_receipt_result(frame)
                    elif kind == "item":
                        item = frame["item"]

                        async def over_socket(key: str, body: dict[str, str]) -> None:
                            await ws.send(json.dumps({"type": "receipt", "id": key, "receipt": body}))

                        sink = _SOCKET_RECEIPTS.set(over_socket)
                        try:
                            item_events = await self.process_item(item)
                        finally:
                            _SOCKET_RECEIPTS.reset(sink)
                        for event in item_events:
                            yield event
                        if self._retry_item(item, item_events):
                            return  # reconnect: the relay sends every unacknowledged item again
                        await ws.send(json.dumps({"type": "ack", "ids": [item["id"]]}))
            finally:
                stopper.cancel()

    async def process_item(self, item: dict[str, Any]) -> list[ClientEvent]:
        """Apply one inbox item; its effects are saved before the caller acknowledges it."""
        kind = item.get("kind")
        if kind == "envelope":
            return await self._on_envelope(item)
        if kind == "receipt":
            events = self._on_receipt(item)
            return events + await self.watch.after_receipts(events)
        if kind == "directory":
            return await self.refresh_directory()
        if kind == "notice":
            return await self.watch.on_notice(item)
        return [RelayAlarm(f"unknown inbox item kind {kind!r}")]

    async def _on_envelope(self, item: dict[str, Any]) -> list[ClientEvent]:
        try:
            envelope = Envelope.from_json(item["envelope"])
            accepted = Receipt.from_json(item["accepted"])
            accepted.verify(b64d(self.state.relay_public_key, field="relay_public_key"))
        except (ProtocolError, KeyError) as exc:
            return [RelayAlarm(f"unreadable envelope item {item.get('id')}: {exc}", resend=True)]
        header = envelope.header
        if accepted.message_id != header.message_id or accepted.envelope_hash != envelope.hash:
            return [
                RelayAlarm(
                    f"the relay's receipt for item {item.get('id')} is about another envelope", resend=True
                )
            ]
        st = self.state
        message_id = header.message_id
        if st.receiver.has_accepted(header.sender, message_id):
            # Already ours: make sure our delivered receipt reached the relay, then drop it.
            previous = st.received.get(message_id, {}).get("delivered_receipt")
            if previous:
                await self._post_receipt_json(b64e(Receipt.from_json(previous).hash), previous)
            return []
        sender_key = self._signing_key_of(header.sender)
        if sender_key is None:
            await self.refresh_directory()
            sender_key = self._signing_key_of(header.sender)
        try:
            if sender_key is None:
                raise ProtocolError(f"{header.sender} is not a known device")
            opened = open_envelope(envelope, self.keys, sender_key)
            seq = header.seq_for(self.address.member)
        except ProtocolError as exc:
            reason = exc.code if exc.code in REJECT_REASONS else ErrorCode.MALFORMED
            if sender_key is None:
                reason = ErrorCode.UNKNOWN_KEY
            return await self._reject(envelope, reason)
        events: list[ClientEvent] = []
        now = self.clock()
        with self._edit() as st:
            outcome = st.receiver.receive(header.sender, seq, message_id)
            accepted_now = False
            for ev in outcome:
                if isinstance(ev, rx.GapDetected):
                    events.append(GapAlarm(ev.sender, ev.first, ev.last))
                    st.alarms.append({"kind": "gap", "text": str(ev), "at_ms": now})
                elif isinstance(ev, rx.Replay):
                    st.alarms.append({"kind": "replay", "message_id": message_id, "at_ms": now})
                elif isinstance(ev, rx.Accepted):
                    accepted_now = True
            if not accepted_now:
                if any(isinstance(ev, rx.Replay) for ev in outcome):
                    events.append(MessageRefused(message_id, header.sender, ErrorCode.REPLAY.value))
                return events
            content = opened.content
            receipt = issue_device_receipt(
                self.keys.signing,
                self.address,
                ReceiptKind.DELIVERED,
                channel=header.channel,
                message_id=message_id,
                envelope_hash=envelope.hash,
                at_ms=now,
            )
            st.received[message_id] = {
                "sender": header.sender.to_json(),
                "seq": seq,
                "precedence": header.precedence.value,
                "intent": content.intent.value,
                "text": content.text,
                "lang": content.lang,
                "in_reply_to": content.in_reply_to,
                "fields": content.fields,
                "exercise": header.exercise,
                "created_at_ms": header.created_at_ms,
                "accepted_at_ms": accepted.at_ms,
                "log_index": accepted.log_index,
                "delivered_at_ms": now,
                "envelope_hash": b64e(envelope.hash),
                "delivered_receipt": receipt.to_json(),
                "acknowledged_at_ms": None,
                "reply_id": None,
            }
            st.receipt_outbox[b64e(receipt.hash)] = receipt.to_json()
            flag_over_cap(st, header.precedence, content.text, message_id, str(header.sender), now)
        sink = _SOCKET_RECEIPTS.get()
        # The message is saved and accepted: whatever happens to its receipt now, the application
        # must hear of it (a redelivery is a Duplicate). A receipt that cannot go out stays in the
        # receipt outbox and is flushed later.
        with contextlib.suppress(ClientError, OSError, websockets.ConnectionClosed):
            if sink is None:
                await self._post_receipt_json(b64e(receipt.hash), receipt.to_json())
            else:  # listen(): a frame on the socket, sent before the item's ack; it stays in the outbox
                await sink(b64e(receipt.hash), receipt.to_json())  # until the relay's receipt-result
        events.append(
            MessageReceived(
                message_id=message_id,
                sender=header.sender,
                precedence=header.precedence,
                intent=content.intent,
                text=content.text,
                lang=content.lang,
                in_reply_to=content.in_reply_to,
                fields=content.fields,
                created_at_ms=header.created_at_ms,
                accepted_at_ms=accepted.at_ms,
                delivered_at_ms=now,
                exercise=header.exercise,
            )
        )
        events.extend(
            await self.audit.on_message(
                header.sender, content.intent, content.fields, message_id, content.in_reply_to
            )
        )
        return events

    async def _reject(self, envelope: Envelope, reason: ErrorCode) -> list[ClientEvent]:
        header = envelope.header
        receipt = issue_device_receipt(
            self.keys.signing,
            self.address,
            ReceiptKind.REJECTED,
            channel=header.channel,
            message_id=header.message_id,
            envelope_hash=envelope.hash,
            at_ms=self.clock(),
            reason=reason,
        )
        with self._edit() as st:
            st.alarms.append(
                {
                    "kind": "rejected",
                    "message_id": header.message_id,
                    "sender": str(header.sender),
                    "reason": reason.value,
                    "at_ms": receipt.at_ms,
                }
            )
        await self._send_receipt(receipt)
        return [MessageRefused(header.message_id, header.sender, reason.value)]

    def _on_receipt(self, item: dict[str, Any]) -> list[ClientEvent]:
        try:
            receipt = Receipt.from_json(item["receipt"])
        except (ProtocolError, KeyError) as exc:
            return [RelayAlarm(f"unreadable receipt item {item.get('id')}: {exc}", resend=True)]
        if receipt.issuer is None:
            return [RelayAlarm("the relay forwarded a receipt without an issuer")]
        key = self._signing_key_of(receipt.issuer)
        try:
            if key is None:
                raise ProtocolError(f"{receipt.issuer} is not a known device")
            receipt.verify(key)
        except ProtocolError:
            return [
                RelayAlarm(f"a receipt claiming to be from {receipt.issuer} does not verify", resend=True)
            ]
        with self._edit() as st:
            sent = st.sent.get(receipt.message_id)
            if sent is not None:
                if b64e(receipt.envelope_hash) != sent["envelope_hash"]:
                    return [RelayAlarm(f"a receipt from {receipt.issuer} names another envelope")]
                step = sent["recipients"].setdefault(str(receipt.issuer), {})
                step[receipt.kind.value] = receipt.at_ms
                if receipt.reason is not None:
                    step["reason"] = receipt.reason.value
                if receipt.reply_id is not None:
                    step["reply_id"] = receipt.reply_id
                if receipt.declined:
                    step["declined"] = True
        return [
            ReceiptReceived(
                message_id=receipt.message_id,
                kind=receipt.kind,
                issuer=receipt.issuer,
                at_ms=receipt.at_ms,
                reason=receipt.reason.value if receipt.reason else None,
                reply_id=receipt.reply_id,
                declined=receipt.declined,
            )
        ]

    # --- views ----------------------------------------------------------------------------------

    def ladder(self, message_id: str) -> dict[str, Any]:
        """Each step of a sent message per recipient device: accepted, delivered, acknowledged, rejected."""
        sent = self.state.sent.get(message_id)
        if sent is None:
            raise ClientError(f"no sent message {message_id}", code="not_found")
        return {
            "message_id": message_id,
            "precedence": sent["precedence"],
            "created_at_ms": sent["created_at_ms"],
            "accepted_at_ms": sent["accepted_at_ms"],
            "log_index": sent["log_index"],
            "recipients": sent["recipients"],
        }
