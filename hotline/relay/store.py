"""The relay's storage interface: records, and the transactions the service layer runs on them.

One implementation exists (:class:`hotline.relay.sql_store.SqlStore`, SQLAlchemy Core on SQLite or
PostgreSQL); the service layer only sees these protocols, so tests or another backend can stand in.

Two kinds of transaction: ``read()`` for queries, ``write()`` for changes. A write transaction that
appends to the audit log first calls :meth:`Tx.lock_log`, which serializes appenders (PostgreSQL:
``SELECT … FOR UPDATE`` on the one log-state row; SQLite: its single writer) so that log indexes are
assigned, and committed, in order — index *k* committed implies every index below *k* is committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hotline.relay.semantics_store import SemanticsTx


class Role(StrEnum):
    PRINCIPAL = "principal"
    FACILITATOR = "facilitator"
    OPERATOR = "operator"
    CONTROLLER = "controller"


class Status(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class ItemKind(StrEnum):
    ENVELOPE = "envelope"
    RECEIPT = "receipt"
    DIRECTORY = "directory"
    NOTICE = "notice"  # a relay-signed notice: escalation, crisis change, check-in due (docs/adr/0007)


@dataclass(frozen=True)
class ChannelRow:
    id: int
    name: str
    title: str
    suite: str
    created_at_ms: int
    directory_version: int


@dataclass(frozen=True)
class MemberRow:
    id: int
    channel_id: int
    name: str
    role: Role
    status: Status
    created_at_ms: int
    revoked_at_ms: int | None


@dataclass(frozen=True)
class DeviceRow:
    """A device with its member's name, role and status joined in."""

    id: int
    channel_id: int
    member_id: int
    member: str
    role: Role
    member_status: Status
    name: str
    signing_key: bytes
    status: Status
    enrolled_at_ms: int
    revoked_at_ms: int | None

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIVE and self.member_status is Status.ACTIVE


@dataclass(frozen=True)
class InviteRow:
    id: int
    channel_id: int
    member_id: int
    created_at_ms: int
    expires_ms: int
    used_at_ms: int | None


@dataclass(frozen=True)
class PrekeyRow:
    device_id: int
    prekey_id: str
    body: bytes
    sig: bytes
    not_before_ms: int
    expires_ms: int


@dataclass(frozen=True)
class TokenRow:
    device: DeviceRow
    channel: str
    expires_ms: int


@dataclass(frozen=True)
class EnvelopeRow:
    id: int
    channel_id: int
    message_id: str
    sender_device_id: int
    precedence: str
    envelope_hash: bytes
    wire: bytes
    log_index: int
    accepted_at_ms: int
    receipt_body: bytes
    receipt_sig: bytes


@dataclass(frozen=True)
class ReceiptRow:
    id: int
    envelope_id: int
    kind: str
    issuer_device_id: int
    receipt_hash: bytes
    body: bytes
    sig: bytes
    log_index: int
    received_at_ms: int = 0  # relay clock, when the receipt was stored


@dataclass(frozen=True)
class NewItem:
    device_id: int
    kind: ItemKind
    rank: int
    at_ms: int
    envelope_id: int | None = None
    receipt_id: int | None = None
    payload: bytes | None = None


@dataclass(frozen=True)
class ItemRow:
    """A pending inbox item with what it carries joined in."""

    id: int
    kind: ItemKind
    at_ms: int
    rank: int
    payload: bytes | None
    envelope_wire: bytes | None
    accepted_body: bytes | None
    accepted_sig: bytes | None
    receipt_body: bytes | None
    receipt_sig: bytes | None


@dataclass(frozen=True)
class AuditRow:
    index: int
    at_ms: int
    entry: bytes
    leaf_hash: bytes


@dataclass(frozen=True)
class TreeHeadRow:
    size: int
    root: bytes
    at_ms: int
    body: bytes
    sig: bytes


class Tx(Protocol):
    """Operations inside one database transaction."""

    # channels and members
    async def get_channel(self, name: str) -> ChannelRow | None: ...
    async def get_channel_by_id(self, channel_id: int) -> ChannelRow | None: ...
    async def list_channels(self) -> list[ChannelRow]: ...
    async def insert_channel(self, name: str, title: str, suite: str, at_ms: int) -> ChannelRow: ...
    async def bump_directory_version(self, channel_id: int) -> None: ...
    async def get_member(self, channel_id: int, name: str) -> MemberRow | None: ...
    async def get_member_by_id(self, member_id: int) -> MemberRow | None: ...
    async def list_members(self, channel_id: int) -> list[MemberRow]: ...
    async def insert_member(self, channel_id: int, name: str, role: Role, at_ms: int) -> MemberRow: ...
    async def revoke_member(self, member_id: int, at_ms: int) -> None: ...

    # invites
    async def insert_invite(
        self, code_hash: bytes, channel_id: int, member_id: int, at_ms: int, expires_ms: int
    ) -> None: ...
    async def get_invite(self, code_hash: bytes) -> InviteRow | None: ...
    async def use_invite(self, invite_id: int, at_ms: int, device_id: int) -> bool: ...

    # devices and prekeys
    async def get_device(self, channel_id: int, member: str, device: str) -> DeviceRow | None: ...
    async def get_device_by_id(self, device_id: int) -> DeviceRow | None: ...
    async def list_devices(self, channel_id: int) -> list[DeviceRow]: ...
    async def signing_key_in_use(self, channel_id: int, signing_key: bytes) -> bool: ...
    async def insert_device(
        self, channel_id: int, member_id: int, name: str, signing_key: bytes, at_ms: int
    ) -> int: ...
    async def revoke_device(self, device_id: int, at_ms: int) -> None: ...
    async def insert_prekeys(self, rows: Sequence[PrekeyRow], at_ms: int) -> int: ...
    async def list_prekeys(
        self, device_ids: Sequence[int], valid_at_ms: int, skew_ms: int
    ) -> list[PrekeyRow]: ...
    async def get_prekeys(self, keys: Sequence[tuple[int, str]]) -> list[PrekeyRow]: ...

    # authentication
    async def insert_challenge(self, device_id: int, challenge: bytes, expires_ms: int) -> None: ...
    async def consume_challenge(self, device_id: int, challenge: bytes) -> int | None: ...
    async def insert_token(self, token_hash: bytes, device_id: int, at_ms: int, expires_ms: int) -> None: ...
    async def get_token(self, token_hash: bytes) -> TokenRow | None: ...
    async def prune_auth(self, challenges_before_ms: int, tokens_before_ms: int) -> None: ...

    # envelopes and receipts
    async def get_envelope(self, channel_id: int, message_id: str) -> EnvelopeRow | None: ...
    async def insert_envelope(
        self,
        *,
        channel_id: int,
        message_id: str,
        sender_device_id: int,
        precedence: str,
        exercise: bool,
        created_at_ms: int,
        accepted_at_ms: int,
        envelope_hash: bytes,
        wire: bytes,
        log_index: int,
        receipt_body: bytes,
        receipt_sig: bytes,
    ) -> int: ...
    async def is_recipient(self, envelope_id: int, device_id: int) -> bool: ...
    async def get_receipt_by_hash(self, receipt_hash: bytes) -> ReceiptRow | None: ...
    async def get_receipt(self, envelope_id: int, issuer_device_id: int, kind: str) -> ReceiptRow | None: ...
    async def insert_receipt(
        self,
        *,
        channel_id: int,
        envelope_id: int,
        kind: str,
        issuer_device_id: int,
        receipt_hash: bytes,
        body: bytes,
        sig: bytes,
        at_ms: int,
        log_index: int,
    ) -> int: ...
    async def list_receipts(self, envelope_id: int) -> list[ReceiptRow]: ...

    # inbox
    async def queue_items(self, items: Sequence[NewItem]) -> None: ...
    async def pending_items(
        self, device_id: int, limit: int, exclude: Iterable[int] = ()
    ) -> list[ItemRow]: ...
    async def still_pending(self, device_id: int, ids: Iterable[int]) -> set[int]: ...
    async def ack_items(self, device_id: int, ids: Iterable[int]) -> int: ...

    # audit log
    async def lock_log(self) -> int: ...
    async def append_audit(self, at_ms: int, entry: bytes) -> int: ...
    async def audit_rows(self, start: int, limit: int) -> list[AuditRow]: ...
    async def leaf_hashes(self, start: int, limit: int) -> list[tuple[int, bytes]]: ...
    async def log_size(self) -> int: ...
    async def latest_tree_head(self) -> TreeHeadRow | None: ...
    async def insert_tree_head(self, row: TreeHeadRow) -> None: ...
    async def tree_heads(self, start_size: int, limit: int) -> list[TreeHeadRow]: ...
    async def accepted_receipts(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        """(log_index, body, sig) of the relay-accepted receipts of envelopes logged in [start, end)."""
        ...

    # hotline semantics: deadlines, timers, crisis state (hotline/relay/semantics_store.py)
    def semantics(self) -> SemanticsTx: ...


class Store(Protocol):
    async def ping(self) -> None: ...
    async def close(self) -> None: ...
    def read(self) -> AbstractAsyncContextManager[Tx]: ...
    def write(self) -> AbstractAsyncContextManager[Tx]: ...
