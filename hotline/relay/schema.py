"""The relay's tables (SQLAlchemy Core), the single source the Alembic migrations are checked against.

Binary values (keys, hashes, signed bodies, wire envelopes) are stored as exact bytes. ``audit_log``
and ``tree_heads`` are append-only: database triggers (created by the migrations) refuse UPDATE and
DELETE on them. ``log_state`` is one row whose lock serializes appends to the audit log.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL wants BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


def _id() -> Column[int]:
    return Column("id", Id, primary_key=True, autoincrement=True)


channels = Table(
    "channels",
    metadata,
    _id(),
    Column("name", String(64), nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("suite", String(32), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("directory_version", BigInteger, nullable=False),
)

members = Table(
    "members",
    metadata,
    _id(),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("name", String(32), nullable=False),
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("revoked_at_ms", BigInteger),
    UniqueConstraint("channel_id", "name"),
)

devices = Table(
    "devices",
    metadata,
    _id(),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("member_id", Id, ForeignKey("members.id"), nullable=False),
    Column("name", String(32), nullable=False),
    Column("signing_key", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("enrolled_at_ms", BigInteger, nullable=False),
    Column("revoked_at_ms", BigInteger),
    UniqueConstraint("member_id", "name"),
    UniqueConstraint("channel_id", "signing_key"),
)

invites = Table(
    "invites",
    metadata,
    _id(),
    Column("code_hash", LargeBinary, nullable=False, unique=True),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("member_id", Id, ForeignKey("members.id"), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_at_ms", BigInteger),
    Column("device_id", Id, ForeignKey("devices.id")),
)

prekeys = Table(
    "prekeys",
    metadata,
    _id(),
    Column("device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("prekey_id", String(32), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("sig", LargeBinary, nullable=False),
    Column("not_before_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("published_at_ms", BigInteger, nullable=False),
    UniqueConstraint("device_id", "prekey_id"),
)

challenges = Table(
    "challenges",
    metadata,
    _id(),
    Column("device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("challenge", LargeBinary, nullable=False, unique=True),
    Column("expires_ms", BigInteger, nullable=False, index=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False, index=True),
)

envelopes = Table(
    "envelopes",
    metadata,
    _id(),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("sender_device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("precedence", String(16), nullable=False),
    Column("exercise", Boolean, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("accepted_at_ms", BigInteger, nullable=False),
    Column("envelope_hash", LargeBinary, nullable=False),
    Column("wire", LargeBinary, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Column("receipt_body", LargeBinary, nullable=False),
    Column("receipt_sig", LargeBinary, nullable=False),
    UniqueConstraint("channel_id", "message_id"),
)

receipts = Table(
    "receipts",
    metadata,
    _id(),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("envelope_id", Id, ForeignKey("envelopes.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("issuer_device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("receipt_hash", LargeBinary, nullable=False, unique=True),
    Column("body", LargeBinary, nullable=False),
    Column("sig", LargeBinary, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    UniqueConstraint("envelope_id", "issuer_device_id", "kind"),
)

inbox_items = Table(
    "inbox_items",
    metadata,
    _id(),
    Column("device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rank", SmallInteger, nullable=False),
    Column("envelope_id", Id, ForeignKey("envelopes.id")),
    Column("receipt_id", Id, ForeignKey("receipts.id")),
    Column("payload", LargeBinary),
    Column("at_ms", BigInteger, nullable=False),
    Column("acked", Boolean, nullable=False),
    Index("ix_inbox_items_pending", "device_id", "acked", "rank", "id"),
    Index("ix_inbox_items_envelope_id", "envelope_id", "device_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
)

tree_heads = Table(
    "tree_heads",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("sig", LargeBinary, nullable=False),
)

log_state = Table(
    "log_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
)
