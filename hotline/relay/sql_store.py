"""The relay store on SQLAlchemy 2 Core: SQLite (pysqlite inline, aiosqlite) and PostgreSQL (asyncpg).

SQLite has one writer: write transactions queue on an in-process lock and then ``BEGIN IMMEDIATE``,
so they never fail half-way with SQLITE_BUSY. Their statements run inline on the event loop's thread
(:class:`hotline.relay.db.InlineConnection`), and writers that queue up while one commits are *group
committed*: they share one SQLite transaction, each inside a savepoint of its own (a failing writer
rolls back only its savepoint), and one fsync'd ``COMMIT`` ends the group. Every writer still returns
only after the commit that made its work durable; a failed commit fails every writer of its group.

PostgreSQL runs writers concurrently; appenders to the audit log serialize on ``SELECT … FOR UPDATE``
of the log-state row, taken first in the transaction so that no writer waits on another while holding
it out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, RootTransaction, RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.protocol.merkle import leaf_hash
from hotline.relay import schema as t
from hotline.relay.db import WRITE_OPTION, Executor, InlineConnection, create_inline_sqlite_engine
from hotline.relay.sql_semantics import SqlSemanticsTx
from hotline.relay.store import (
    AuditRow,
    ChannelRow,
    DeviceRow,
    EnvelopeRow,
    InviteRow,
    ItemKind,
    ItemRow,
    MemberRow,
    NewItem,
    PrekeyRow,
    ReceiptRow,
    Role,
    Status,
    TokenRow,
    TreeHeadRow,
)


def _channel(r: RowMapping) -> ChannelRow:
    return ChannelRow(
        id=r["id"],
        name=r["name"],
        title=r["title"],
        suite=r["suite"],
        created_at_ms=r["created_at_ms"],
        directory_version=r["directory_version"],
    )


def _member(r: RowMapping) -> MemberRow:
    return MemberRow(
        id=r["id"],
        channel_id=r["channel_id"],
        name=r["name"],
        role=Role(r["role"]),
        status=Status(r["status"]),
        created_at_ms=r["created_at_ms"],
        revoked_at_ms=r["revoked_at_ms"],
    )


_DEVICE_COLUMNS = (
    t.devices.c.id,
    t.devices.c.channel_id,
    t.devices.c.member_id,
    t.members.c.name.label("member"),
    t.members.c.role,
    t.members.c.status.label("member_status"),
    t.devices.c.name,
    t.devices.c.signing_key,
    t.devices.c.status,
    t.devices.c.enrolled_at_ms,
    t.devices.c.revoked_at_ms,
)
_DEVICE_JOIN = t.devices.join(t.members, t.members.c.id == t.devices.c.member_id)


def _device(r: RowMapping) -> DeviceRow:
    return DeviceRow(
        id=r["id"],
        channel_id=r["channel_id"],
        member_id=r["member_id"],
        member=r["member"],
        role=Role(r["role"]),
        member_status=Status(r["member_status"]),
        name=r["name"],
        signing_key=bytes(r["signing_key"]),
        status=Status(r["status"]),
        enrolled_at_ms=r["enrolled_at_ms"],
        revoked_at_ms=r["revoked_at_ms"],
    )


def _prekey(r: RowMapping) -> PrekeyRow:
    return PrekeyRow(
        device_id=r["device_id"],
        prekey_id=r["prekey_id"],
        body=bytes(r["body"]),
        sig=bytes(r["sig"]),
        not_before_ms=r["not_before_ms"],
        expires_ms=r["expires_ms"],
    )


def _envelope(r: RowMapping) -> EnvelopeRow:
    return EnvelopeRow(
        id=r["id"],
        channel_id=r["channel_id"],
        message_id=r["message_id"],
        sender_device_id=r["sender_device_id"],
        precedence=r["precedence"],
        envelope_hash=bytes(r["envelope_hash"]),
        wire=bytes(r["wire"]),
        log_index=r["log_index"],
        accepted_at_ms=r["accepted_at_ms"],
        receipt_body=bytes(r["receipt_body"]),
        receipt_sig=bytes(r["receipt_sig"]),
    )


def _receipt(r: RowMapping) -> ReceiptRow:
    return ReceiptRow(
        id=r["id"],
        envelope_id=r["envelope_id"],
        kind=r["kind"],
        issuer_device_id=r["issuer_device_id"],
        receipt_hash=bytes(r["receipt_hash"]),
        body=bytes(r["body"]),
        sig=bytes(r["sig"]),
        log_index=r["log_index"],
        received_at_ms=r["received_at_ms"],
    )


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


# The statements of the hot paths (authentication, sending, receipts, sockets), built once. Building a
# statement costs SQLAlchemy far more than SQLite takes to run it (about 150 µs against 20 for the
# token lookup; docs/PERFORMANCE.md); a built statement is compiled once per dialect and cached.
_P = bindparam
_I = t.inbox_items
_CHANNEL_BY_NAME = select(t.channels).where(t.channels.c.name == _P("name"))
_MEMBERS_OF = select(t.members).where(t.members.c.channel_id == _P("channel_id")).order_by(t.members.c.id)
_DEVICE_BY_ID = select(*_DEVICE_COLUMNS).select_from(_DEVICE_JOIN).where(t.devices.c.id == _P("device_id"))
_DEVICES_OF = (
    select(*_DEVICE_COLUMNS)
    .select_from(_DEVICE_JOIN)
    .where(t.devices.c.channel_id == _P("channel_id"))
    .order_by(t.devices.c.id)
)
_PREKEYS_BY_KEY = select(t.prekeys).where(
    tuple_(t.prekeys.c.device_id, t.prekeys.c.prekey_id).in_(_P("keys", expanding=True))
)
_TOKEN = (
    select(*_DEVICE_COLUMNS, t.channels.c.name.label("channel"), t.tokens.c.expires_ms)
    .select_from(
        _DEVICE_JOIN.join(t.tokens, t.tokens.c.device_id == t.devices.c.id).join(
            t.channels, t.channels.c.id == t.devices.c.channel_id
        )
    )
    .where(t.tokens.c.token_hash == _P("token_hash"))
)
_ENVELOPE_BY_MESSAGE = select(t.envelopes).where(
    t.envelopes.c.channel_id == _P("channel_id"), t.envelopes.c.message_id == _P("message_id")
)
_INSERT_ENVELOPE = insert(t.envelopes).returning(t.envelopes.c.id)
_IS_RECIPIENT = select(_I.c.id).where(
    _I.c.envelope_id == _P("envelope_id"),
    _I.c.device_id == _P("device_id"),
    _I.c.kind == ItemKind.ENVELOPE.value,
)
_RECEIPT_BY_HASH = select(t.receipts).where(t.receipts.c.receipt_hash == _P("receipt_hash"))
_RECEIPT_OF = select(t.receipts).where(
    t.receipts.c.envelope_id == _P("envelope_id"),
    t.receipts.c.issuer_device_id == _P("issuer_device_id"),
    t.receipts.c.kind == _P("kind"),
)
_INSERT_RECEIPT = insert(t.receipts).returning(t.receipts.c.id)
_INSERT_ITEMS = insert(_I)
_PENDING = (
    select(
        _I.c.id,
        _I.c.kind,
        _I.c.at_ms,
        _I.c.rank,
        _I.c.payload,
        t.envelopes.c.wire,
        t.envelopes.c.receipt_body,
        t.envelopes.c.receipt_sig,
        t.receipts.c.body,
        t.receipts.c.sig,
    )
    .select_from(
        _I.outerjoin(t.envelopes, t.envelopes.c.id == _I.c.envelope_id).outerjoin(
            t.receipts, t.receipts.c.id == _I.c.receipt_id
        )
    )
    .where(
        _I.c.device_id == _P("device_id"),
        _I.c.acked.is_(False),
        _I.c.id.not_in(_P("exclude", expanding=True)),
    )
    .order_by(_I.c.rank, _I.c.id)
    .limit(_P("limit"))
)
_STILL_PENDING = select(_I.c.id).where(
    _I.c.device_id == _P("device_id"), _I.c.acked.is_(False), _I.c.id.in_(_P("ids", expanding=True))
)
_ACK = (
    update(_I)
    .where(_I.c.device_id == _P("for_device"), _I.c.acked.is_(False), _I.c.id.in_(_P("ids", expanding=True)))
    .values(acked=True)
)
_LOG_SIZE = select(t.log_state.c.size).where(t.log_state.c.id == 1)
_LOG_SIZE_FOR_UPDATE = _LOG_SIZE.with_for_update()
_INSERT_AUDIT = insert(t.audit_log)
_SET_LOG_SIZE = update(t.log_state).where(t.log_state.c.id == 1).values(size=_P("new_size"))


class SqlTx:
    """One transaction on one connection; implements :class:`hotline.relay.store.Tx`."""

    def __init__(self, conn: Executor, *, postgres: bool, writable: bool) -> None:
        self._conn = conn
        self._postgres = postgres
        self._writable = writable
        self._log_size: int | None = None

    async def _one(self, stmt: Any, params: dict[str, Any] | None = None) -> RowMapping | None:
        return (await self._conn.execute(stmt, params)).mappings().first()

    async def _all(self, stmt: Any, params: dict[str, Any] | None = None) -> list[RowMapping]:
        return list((await self._conn.execute(stmt, params)).mappings().all())

    # --- channels and members ----------------------------------------------------------------------

    async def get_channel(self, name: str) -> ChannelRow | None:
        row = await self._one(_CHANNEL_BY_NAME, {"name": name})
        return _channel(row) if row else None

    async def get_channel_by_id(self, channel_id: int) -> ChannelRow | None:
        row = await self._one(select(t.channels).where(t.channels.c.id == channel_id))
        return _channel(row) if row else None

    async def list_channels(self) -> list[ChannelRow]:
        return [_channel(r) for r in await self._all(select(t.channels).order_by(t.channels.c.id))]

    async def insert_channel(self, name: str, title: str, suite: str, at_ms: int) -> ChannelRow:
        result = await self._conn.execute(
            insert(t.channels)
            .values(name=name, title=title, suite=suite, created_at_ms=at_ms, directory_version=0)
            .returning(t.channels.c.id)
        )
        return ChannelRow(
            id=int(result.scalar_one()),
            name=name,
            title=title,
            suite=suite,
            created_at_ms=at_ms,
            directory_version=0,
        )

    async def bump_directory_version(self, channel_id: int) -> None:
        await self._conn.execute(
            update(t.channels)
            .where(t.channels.c.id == channel_id)
            .values(directory_version=t.channels.c.directory_version + 1)
        )

    async def get_member(self, channel_id: int, name: str) -> MemberRow | None:
        row = await self._one(
            select(t.members).where(t.members.c.channel_id == channel_id, t.members.c.name == name)
        )
        return _member(row) if row else None

    async def get_member_by_id(self, member_id: int) -> MemberRow | None:
        row = await self._one(select(t.members).where(t.members.c.id == member_id))
        return _member(row) if row else None

    async def list_members(self, channel_id: int) -> list[MemberRow]:
        return [_member(r) for r in await self._all(_MEMBERS_OF, {"channel_id": channel_id})]

    async def insert_member(self, channel_id: int, name: str, role: Role, at_ms: int) -> MemberRow:
        values: dict[str, Any] = {
            "channel_id": channel_id,
            "name": name,
            "role": role.value,
            "status": Status.ACTIVE.value,
            "created_at_ms": at_ms,
            "revoked_at_ms": None,
        }
        result = await self._conn.execute(insert(t.members).values(**values).returning(t.members.c.id))
        return _member({**values, "id": result.scalar_one()})  # type: ignore[arg-type]

    async def revoke_member(self, member_id: int, at_ms: int) -> None:
        await self._conn.execute(
            update(t.members)
            .where(t.members.c.id == member_id)
            .values(status=Status.REVOKED.value, revoked_at_ms=at_ms)
        )
        await self._conn.execute(
            update(t.devices)
            .where(t.devices.c.member_id == member_id, t.devices.c.status == Status.ACTIVE.value)
            .values(status=Status.REVOKED.value, revoked_at_ms=at_ms)
        )

    # --- invites -----------------------------------------------------------------------------------

    async def insert_invite(
        self, code_hash: bytes, channel_id: int, member_id: int, at_ms: int, expires_ms: int
    ) -> None:
        await self._conn.execute(
            insert(t.invites).values(
                code_hash=code_hash,
                channel_id=channel_id,
                member_id=member_id,
                created_at_ms=at_ms,
                expires_ms=expires_ms,
            )
        )

    async def get_invite(self, code_hash: bytes) -> InviteRow | None:
        row = await self._one(select(t.invites).where(t.invites.c.code_hash == code_hash))
        if row is None:
            return None
        return InviteRow(
            id=row["id"],
            channel_id=row["channel_id"],
            member_id=row["member_id"],
            created_at_ms=row["created_at_ms"],
            expires_ms=row["expires_ms"],
            used_at_ms=row["used_at_ms"],
        )

    async def use_invite(self, invite_id: int, at_ms: int, device_id: int) -> bool:
        result = await self._conn.execute(
            update(t.invites)
            .where(t.invites.c.id == invite_id, t.invites.c.used_at_ms.is_(None))
            .values(used_at_ms=at_ms, device_id=device_id)
        )
        return result.rowcount == 1

    # --- devices and prekeys -----------------------------------------------------------------------

    async def get_device(self, channel_id: int, member: str, device: str) -> DeviceRow | None:
        row = await self._one(
            select(*_DEVICE_COLUMNS)
            .select_from(_DEVICE_JOIN)
            .where(
                t.devices.c.channel_id == channel_id,
                t.members.c.name == member,
                t.devices.c.name == device,
            )
        )
        return _device(row) if row else None

    async def get_device_by_id(self, device_id: int) -> DeviceRow | None:
        row = await self._one(_DEVICE_BY_ID, {"device_id": device_id})
        return _device(row) if row else None

    async def list_devices(self, channel_id: int) -> list[DeviceRow]:
        return [_device(r) for r in await self._all(_DEVICES_OF, {"channel_id": channel_id})]

    async def signing_key_in_use(self, channel_id: int, signing_key: bytes) -> bool:
        row = await self._one(
            select(t.devices.c.id).where(
                t.devices.c.channel_id == channel_id, t.devices.c.signing_key == signing_key
            )
        )
        return row is not None

    async def insert_device(
        self, channel_id: int, member_id: int, name: str, signing_key: bytes, at_ms: int
    ) -> int:
        result = await self._conn.execute(
            insert(t.devices)
            .values(
                channel_id=channel_id,
                member_id=member_id,
                name=name,
                signing_key=signing_key,
                status=Status.ACTIVE.value,
                enrolled_at_ms=at_ms,
            )
            .returning(t.devices.c.id)
        )
        return int(result.scalar_one())

    async def revoke_device(self, device_id: int, at_ms: int) -> None:
        await self._conn.execute(
            update(t.devices)
            .where(t.devices.c.id == device_id)
            .values(status=Status.REVOKED.value, revoked_at_ms=at_ms)
        )

    async def insert_prekeys(self, rows: Sequence[PrekeyRow], at_ms: int) -> int:
        """Insert prekeys not already stored for their device; return how many were new."""
        if not rows:
            return 0
        existing = {
            (r["device_id"], r["prekey_id"])
            for r in await self._all(
                select(t.prekeys.c.device_id, t.prekeys.c.prekey_id).where(
                    tuple_(t.prekeys.c.device_id, t.prekeys.c.prekey_id).in_(
                        [(r.device_id, r.prekey_id) for r in rows]
                    )
                )
            )
        }
        new = {(r.device_id, r.prekey_id): r for r in rows if (r.device_id, r.prekey_id) not in existing}
        if new:
            await self._conn.execute(
                insert(t.prekeys),
                [
                    {
                        "device_id": r.device_id,
                        "prekey_id": r.prekey_id,
                        "body": r.body,
                        "sig": r.sig,
                        "not_before_ms": r.not_before_ms,
                        "expires_ms": r.expires_ms,
                        "published_at_ms": at_ms,
                    }
                    for r in new.values()
                ],
            )
        return len(new)

    async def list_prekeys(
        self, device_ids: Sequence[int], valid_at_ms: int, skew_ms: int
    ) -> list[PrekeyRow]:
        if not device_ids:
            return []
        stmt = (
            select(t.prekeys)
            .where(
                t.prekeys.c.device_id.in_(list(device_ids)),
                t.prekeys.c.not_before_ms <= valid_at_ms + skew_ms,
                t.prekeys.c.expires_ms > valid_at_ms,
            )
            .order_by(t.prekeys.c.device_id, t.prekeys.c.not_before_ms, t.prekeys.c.id)
        )
        return [_prekey(r) for r in await self._all(stmt)]

    async def get_prekeys(self, keys: Sequence[tuple[int, str]]) -> list[PrekeyRow]:
        if not keys:
            return []
        return [_prekey(r) for r in await self._all(_PREKEYS_BY_KEY, {"keys": list(keys)})]

    # --- authentication ----------------------------------------------------------------------------

    async def insert_challenge(self, device_id: int, challenge: bytes, expires_ms: int) -> None:
        await self._conn.execute(
            insert(t.challenges).values(device_id=device_id, challenge=challenge, expires_ms=expires_ms)
        )

    async def consume_challenge(self, device_id: int, challenge: bytes) -> int | None:
        """Delete the challenge (single use) and return its expiry, or None if there was none."""
        result = await self._conn.execute(
            delete(t.challenges)
            .where(t.challenges.c.device_id == device_id, t.challenges.c.challenge == challenge)
            .returning(t.challenges.c.expires_ms)
        )
        value = result.scalar_one_or_none()
        return None if value is None else int(value)

    async def insert_token(self, token_hash: bytes, device_id: int, at_ms: int, expires_ms: int) -> None:
        await self._conn.execute(
            insert(t.tokens).values(
                token_hash=token_hash, device_id=device_id, created_at_ms=at_ms, expires_ms=expires_ms
            )
        )

    async def get_token(self, token_hash: bytes) -> TokenRow | None:
        row = await self._one(_TOKEN, {"token_hash": token_hash})
        if row is None:
            return None
        return TokenRow(device=_device(row), channel=row["channel"], expires_ms=row["expires_ms"])

    async def prune_auth(self, challenges_before_ms: int, tokens_before_ms: int) -> None:
        await self._conn.execute(delete(t.challenges).where(t.challenges.c.expires_ms < challenges_before_ms))
        await self._conn.execute(delete(t.tokens).where(t.tokens.c.expires_ms < tokens_before_ms))

    # --- envelopes and receipts --------------------------------------------------------------------

    async def get_envelope(self, channel_id: int, message_id: str) -> EnvelopeRow | None:
        row = await self._one(_ENVELOPE_BY_MESSAGE, {"channel_id": channel_id, "message_id": message_id})
        return _envelope(row) if row else None

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
    ) -> int:
        result = await self._conn.execute(
            _INSERT_ENVELOPE,
            {
                "channel_id": channel_id,
                "message_id": message_id,
                "sender_device_id": sender_device_id,
                "precedence": precedence,
                "exercise": exercise,
                "created_at_ms": created_at_ms,
                "accepted_at_ms": accepted_at_ms,
                "envelope_hash": envelope_hash,
                "wire": wire,
                "log_index": log_index,
                "receipt_body": receipt_body,
                "receipt_sig": receipt_sig,
            },
        )
        return int(result.scalar_one())

    async def is_recipient(self, envelope_id: int, device_id: int) -> bool:
        row = await self._one(_IS_RECIPIENT, {"envelope_id": envelope_id, "device_id": device_id})
        return row is not None

    async def get_receipt_by_hash(self, receipt_hash: bytes) -> ReceiptRow | None:
        row = await self._one(_RECEIPT_BY_HASH, {"receipt_hash": receipt_hash})
        return _receipt(row) if row else None

    async def get_receipt(self, envelope_id: int, issuer_device_id: int, kind: str) -> ReceiptRow | None:
        row = await self._one(
            _RECEIPT_OF, {"envelope_id": envelope_id, "issuer_device_id": issuer_device_id, "kind": kind}
        )
        return _receipt(row) if row else None

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
    ) -> int:
        result = await self._conn.execute(
            _INSERT_RECEIPT,
            {
                "channel_id": channel_id,
                "envelope_id": envelope_id,
                "kind": kind,
                "issuer_device_id": issuer_device_id,
                "receipt_hash": receipt_hash,
                "body": body,
                "sig": sig,
                "received_at_ms": at_ms,
                "log_index": log_index,
            },
        )
        return int(result.scalar_one())

    async def list_receipts(self, envelope_id: int) -> list[ReceiptRow]:
        stmt = select(t.receipts).where(t.receipts.c.envelope_id == envelope_id).order_by(t.receipts.c.id)
        return [_receipt(r) for r in await self._all(stmt)]

    # --- inbox -------------------------------------------------------------------------------------

    async def queue_items(self, items: Sequence[NewItem]) -> None:
        if not items:
            return
        await self._conn.execute(
            _INSERT_ITEMS,
            [
                {
                    "device_id": i.device_id,
                    "kind": i.kind.value,
                    "rank": i.rank,
                    "envelope_id": i.envelope_id,
                    "receipt_id": i.receipt_id,
                    "payload": i.payload,
                    "at_ms": i.at_ms,
                    "acked": False,
                }
                for i in items
            ],
        )

    async def pending_items(self, device_id: int, limit: int, exclude: Iterable[int] = ()) -> list[ItemRow]:
        params = {"device_id": device_id, "exclude": list(exclude), "limit": limit}
        return [
            ItemRow(
                id=row["id"],
                kind=ItemKind(row["kind"]),
                at_ms=row["at_ms"],
                rank=row["rank"],
                payload=_opt_bytes(row["payload"]),
                envelope_wire=_opt_bytes(row["wire"]),
                accepted_body=_opt_bytes(row["receipt_body"]),
                accepted_sig=_opt_bytes(row["receipt_sig"]),
                receipt_body=_opt_bytes(row["body"]),
                receipt_sig=_opt_bytes(row["sig"]),
            )
            for row in await self._all(_PENDING, params)
        ]

    async def still_pending(self, device_id: int, ids: Iterable[int]) -> set[int]:
        wanted = list(ids)
        if not wanted:
            return set()
        return {
            int(r["id"]) for r in await self._all(_STILL_PENDING, {"device_id": device_id, "ids": wanted})
        }

    async def ack_items(self, device_id: int, ids: Iterable[int]) -> int:
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        result = await self._conn.execute(_ACK, {"for_device": device_id, "ids": wanted})
        return int(result.rowcount)

    # --- audit log ---------------------------------------------------------------------------------

    async def lock_log(self) -> int:
        if not self._writable:
            raise RuntimeError("lock_log needs a write transaction")
        stmt = _LOG_SIZE_FOR_UPDATE if self._postgres else _LOG_SIZE
        self._log_size = int((await self._conn.execute(stmt)).scalar_one())
        return self._log_size

    async def append_audit(self, at_ms: int, entry: bytes) -> int:
        if self._log_size is None:
            raise RuntimeError("append_audit before lock_log")
        index = self._log_size
        await self._conn.execute(
            _INSERT_AUDIT, {"idx": index, "at_ms": at_ms, "entry": entry, "leaf_hash": leaf_hash(entry)}
        )
        self._log_size = index + 1
        await self._conn.execute(_SET_LOG_SIZE, {"new_size": self._log_size})
        return index

    async def audit_rows(self, start: int, limit: int) -> list[AuditRow]:
        stmt = select(t.audit_log).where(t.audit_log.c.idx >= start).order_by(t.audit_log.c.idx).limit(limit)
        return [
            AuditRow(
                index=r["idx"], at_ms=r["at_ms"], entry=bytes(r["entry"]), leaf_hash=bytes(r["leaf_hash"])
            )
            for r in await self._all(stmt)
        ]

    async def leaf_hashes(self, start: int, limit: int) -> list[tuple[int, bytes]]:
        stmt = (
            select(t.audit_log.c.idx, t.audit_log.c.leaf_hash)
            .where(t.audit_log.c.idx >= start)
            .order_by(t.audit_log.c.idx)
            .limit(limit)
        )
        return [(int(r["idx"]), bytes(r["leaf_hash"])) for r in await self._all(stmt)]

    async def log_size(self) -> int:
        return int((await self._conn.execute(select(t.log_state.c.size))).scalar_one())

    async def latest_tree_head(self) -> TreeHeadRow | None:
        row = await self._one(select(t.tree_heads).order_by(t.tree_heads.c.size.desc()).limit(1))
        if row is None:
            return None
        return TreeHeadRow(
            size=row["size"],
            root=bytes(row["root"]),
            at_ms=row["at_ms"],
            body=bytes(row["body"]),
            sig=bytes(row["sig"]),
        )

    def semantics(self) -> SqlSemanticsTx:
        return SqlSemanticsTx(self._conn, postgres=self._postgres)

    async def insert_tree_head(self, row: TreeHeadRow) -> None:
        # Replicas' signers often reach the same size together: the first head stored stays, and the
        # other's insert is a no-op rather than a unique violation (which would stop a replica's start).
        dialect_insert = pg_insert if self._postgres else sqlite_insert
        await self._conn.execute(
            dialect_insert(t.tree_heads)
            .values(size=row.size, root=row.root, at_ms=row.at_ms, body=row.body, sig=row.sig)
            .on_conflict_do_nothing(index_elements=[t.tree_heads.c.size])
        )

    async def tree_heads(self, start_size: int, limit: int) -> list[TreeHeadRow]:
        stmt = (
            select(t.tree_heads)
            .where(t.tree_heads.c.size >= start_size)
            .order_by(t.tree_heads.c.size)
            .limit(limit)
        )
        return [
            TreeHeadRow(
                size=r["size"],
                root=bytes(r["root"]),
                at_ms=r["at_ms"],
                body=bytes(r["body"]),
                sig=bytes(r["sig"]),
            )
            for r in await self._all(stmt)
        ]

    async def accepted_receipts(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        e = t.envelopes
        stmt = (
            select(e.c.log_index, e.c.receipt_body, e.c.receipt_sig)
            .where(e.c.log_index >= start, e.c.log_index < end)
            .order_by(e.c.log_index)
        )
        return [
            (int(r["log_index"]), bytes(r["receipt_body"]), bytes(r["receipt_sig"]))
            for r in await self._all(stmt)
        ]


class _Group:
    """Writers committed together: one SQLite transaction, a savepoint per writer."""

    def __init__(self, conn: Connection, tx: RootTransaction, done: asyncio.Future[None]) -> None:
        self.conn = conn
        self.tx = tx
        self.done = done  # the group's COMMIT: its result, or the error every member gets
        self.members = 0  # writers whose work is in the group (their savepoints were released)
        self.broken = False  # a savepoint could not be rolled back: commit nothing more into it


class SqlStore:
    """Implements :class:`hotline.relay.store.Store` on an async SQLAlchemy engine."""

    def __init__(
        self, engine: AsyncEngine, *, busy_timeout_ms: int = 10_000, group_commit_max: int = 32
    ) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # SQLite has one writer; queueing here keeps writers off SQLite's busy-wait loop.
        self._sqlite_writer = None if self._postgres else asyncio.Lock()
        self._inline = (
            None if self._postgres else create_inline_sqlite_engine(engine, busy_timeout_ms=busy_timeout_ms)
        )
        # BEGIN IMMEDIATE (may wait for the lock) and COMMIT (fsync) run here, one at a time, in order.
        self._db_thread = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit") if self._inline else None
        )
        self._group_commit_max = max(1, group_commit_max)
        self._group: _Group | None = None
        self._queued = 0  # writers waiting for the writer lock
        self._commits: set[asyncio.Task[None]] = set()

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        while self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)
        if self._inline is not None:
            self._inline.dispose()
        if self._db_thread is not None:
            self._db_thread.shutdown(wait=True)
        await self._engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqlTx]:
        if self._inline is not None:
            # A WAL reader never waits for the writer: the statements run inline.
            with self._inline.connect() as sync_conn, sync_conn.begin():
                yield SqlTx(InlineConnection(sync_conn), postgres=False, writable=False)
            return
        async with self._engine.connect() as conn, conn.begin():
            yield SqlTx(conn, postgres=self._postgres, writable=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SqlTx]:
        if self._sqlite_writer is None:
            async with self._engine.connect() as conn, conn.begin():
                yield SqlTx(conn, postgres=True, writable=True)
            return
        if self._inline is not None:
            async with self._group_write() as tx:
                yield tx
            return
        async with self._sqlite_writer, self._engine.connect() as conn:
            conn = await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                yield SqlTx(conn, postgres=False, writable=True)

    # --- SQLite group commit ----------------------------------------------------------------------

    @asynccontextmanager
    async def _group_write(self) -> AsyncIterator[SqlTx]:
        lock = self._sqlite_writer
        assert lock is not None
        self._queued += 1
        try:
            await lock.acquire()
        finally:
            self._queued -= 1
        try:
            group = self._group if self._group is not None else await self._begin_group()
        except BaseException:
            lock.release()
            raise
        joined = False
        started = False
        # Plain SQL for the savepoint: SQLAlchemy's own savepoint compiles two statements per writer.
        try:
            group.conn.exec_driver_sql("SAVEPOINT writer")
            started = True
            yield SqlTx(InlineConnection(group.conn), postgres=False, writable=True)
            group.conn.exec_driver_sql("RELEASE writer")
            group.members += 1
            joined = True
        except BaseException:
            if started and not joined:
                try:
                    group.conn.exec_driver_sql("ROLLBACK TO writer")
                    group.conn.exec_driver_sql("RELEASE writer")
                except Exception:
                    group.broken = True
            raise
        finally:
            self._end_turn(group)
        if joined:
            await asyncio.shield(group.done)

    async def _begin_group(self) -> _Group:
        inline, pool = self._inline, self._db_thread
        assert inline is not None and pool is not None

        def begin() -> tuple[Connection, RootTransaction]:
            conn = inline.connect().execution_options(**{WRITE_OPTION: True})
            try:
                return conn, conn.begin()  # BEGIN IMMEDIATE: waits here for SQLite's write lock
            except BaseException:
                conn.close()
                raise

        loop = asyncio.get_running_loop()
        started = loop.run_in_executor(pool, begin)
        try:
            conn, tx = await asyncio.shield(started)
        except asyncio.CancelledError:
            # The BEGIN goes on in its thread: give its connection (and the write lock) back after.
            def give_back(f: asyncio.Future[tuple[Connection, RootTransaction]]) -> None:
                if not f.cancelled() and f.exception() is None:
                    f.result()[0].close()

            started.add_done_callback(give_back)
            raise
        done: asyncio.Future[None] = loop.create_future()
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, whoever waits
        self._group = _Group(conn, tx, done)
        return self._group

    def _end_turn(self, group: _Group) -> None:
        """A writer is done with the group: let the next writer in, or end the group (lock held)."""
        lock = self._sqlite_writer
        assert lock is not None
        if self._queued and group.members < self._group_commit_max and not group.broken:
            lock.release()  # the next writer adds its work to the same transaction
            return
        self._group = None
        if group.members == 0:
            try:
                group.tx.rollback()
            finally:
                group.conn.close()
                group.done.set_result(None)
                lock.release()
            return
        task = asyncio.get_running_loop().create_task(self._commit(group))
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

    async def _commit(self, group: _Group) -> None:
        """COMMIT the group in the database thread, answer its writers, then let the next group begin."""
        lock, pool = self._sqlite_writer, self._db_thread
        assert lock is not None and pool is not None
        try:
            if group.broken:
                raise RuntimeError("a savepoint could not be rolled back; the group is abandoned")
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(pool, group.tx.commit))
        except BaseException as exc:
            with contextlib.suppress(Exception):
                group.tx.rollback()
            group.done.set_exception(exc)
        else:
            group.done.set_result(None)
        finally:
            group.conn.close()
            lock.release()
