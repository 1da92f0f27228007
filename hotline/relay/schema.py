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

# --- hotline semantics (docs/adr/0007; migration 0002) ------------------------------------------------
# Deadlines, schedules and crisis state live here so that they survive restarts and are shared by every
# relay process on one database. ``timers`` is the durable timer queue: a timer fires once, claimed by
# setting ``fired_at_ms`` in the same transaction as its effects.

channel_semantics = Table(
    "channel_semantics",
    metadata,
    Column("channel_id", Id, ForeignKey("channels.id"), primary_key=True, autoincrement=False),
    Column("policy", LargeBinary),  # canonical JSON of the channel's policy; NULL: the default policy
    Column("policy_version", BigInteger, nullable=False),
    Column("crisis_on", Boolean, nullable=False),
    Column("crisis_epoch", BigInteger, nullable=False),
    Column("crisis_since_ms", BigInteger),
    Column("crisis_trigger", String(32)),
    Column("crisis_by", String(65)),
    Column("updated_at_ms", BigInteger, nullable=False),
)

acts = Table(
    "acts",
    metadata,
    Column("act_id", String(36), primary_key=True),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("issuer_device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("act_hash", LargeBinary, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("sig", LargeBinary, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("log_index", BigInteger, nullable=False),
)

crisis_changes = Table(
    "crisis_changes",
    metadata,
    _id(),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("crisis_on", Boolean, nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("by", String(65), nullable=False),
    Column("reason", Text, nullable=False),
    Column("act_id", String(36), ForeignKey("acts.act_id")),
    Column("at_ms", BigInteger, nullable=False),
    Column("notice_body", LargeBinary, nullable=False),
    Column("notice_sig", LargeBinary, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    UniqueConstraint("channel_id", "epoch"),
)

tracked_messages = Table(
    "tracked_messages",
    metadata,
    Column("envelope_id", Id, ForeignKey("envelopes.id"), primary_key=True, autoincrement=False),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("purpose", String(16), nullable=False),  # message | link_test | resend
    Column("mode", String(16), nullable=False),  # normal | crisis, when the relay accepted it
    Column("resend_of", Id, ForeignKey("envelopes.id")),
    Column("withdrawn_at_ms", BigInteger),
    Column("withdraw_act_id", String(36), ForeignKey("acts.act_id")),
    Index("ix_tracked_messages_resend_of", "resend_of"),
)

tracked_desks = Table(
    "tracked_desks",
    metadata,
    Column("envelope_id", Id, ForeignKey("envelopes.id"), primary_key=True, autoincrement=False),
    Column("member_id", Id, ForeignKey("members.id"), primary_key=True, autoincrement=False),
    Column("deliver_by_ms", BigInteger, nullable=False),
    Column("ack_by_ms", BigInteger),
    Column("delivered_at_ms", BigInteger),
    Column("acknowledged_at_ms", BigInteger),
    Column("declined", Boolean, nullable=False),
    Column("rejected_at_ms", BigInteger),
)

link_tests = Table(
    "link_tests",
    metadata,
    Column("envelope_id", Id, ForeignKey("envelopes.id"), primary_key=True, autoincrement=False),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("from_member_id", Id, ForeignKey("members.id"), nullable=False),
    Column("to_member_id", Id, ForeignKey("members.id"), nullable=False),
    Column("sent_at_ms", BigInteger, nullable=False),
    Column("timeout_at_ms", BigInteger, nullable=False),
    Column("answered_at_ms", BigInteger),
    Column("missed_at_ms", BigInteger),
    Index("ix_link_tests_direction", "channel_id", "from_member_id", "to_member_id", "sent_at_ms"),
)

timers = Table(
    "timers",
    metadata,
    _id(),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("key", String(160), nullable=False, unique=True),  # names the occurrence: scheduled once
    Column("due_ms", BigInteger, nullable=False),
    Column("envelope_id", Id, ForeignKey("envelopes.id")),
    Column("member_id", Id, ForeignKey("members.id")),
    Column("subject", String(64)),  # a check-in (<schedule>@<due_ms>) or a schedule id
    Column("attempt", Integer, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("fired_at_ms", BigInteger),
    Column("fired_by", String(64)),
    Column("outcome", String(32)),
    Index("ix_timers_due", "fired_at_ms", "due_ms"),
)

escalations = Table(
    "escalations",
    metadata,
    _id(),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("timer_id", Id, ForeignKey("timers.id"), nullable=False, unique=True),  # fires once
    Column("reason", String(32), nullable=False),
    Column("envelope_id", Id, ForeignKey("envelopes.id")),
    Column("member_id", Id, ForeignKey("members.id"), nullable=False),  # the overdue desk
    Column("checkin", String(64)),
    Column("attempt", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("deadline_ms", BigInteger, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("notice_body", LargeBinary, nullable=False),
    Column("notice_sig", LargeBinary, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Index("ix_escalations_channel_id", "channel_id", "id"),
    Index("ix_escalations_envelope_id", "envelope_id"),
)

checkins = Table(
    "checkins",
    metadata,
    _id(),
    Column("channel_id", Id, ForeignKey("channels.id"), nullable=False),
    Column("checkin", String(64), nullable=False),  # <schedule>@<due_ms>
    Column("schedule", String(32), nullable=False),
    Column("due_ms", BigInteger, nullable=False),
    Column("answer_by_ms", BigInteger, nullable=False),
    Column("desks", Text, nullable=False),  # JSON list of the members expected to answer
    Column("notice_body", LargeBinary, nullable=False),
    Column("notice_sig", LargeBinary, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    UniqueConstraint("channel_id", "checkin"),
)

checkin_answers = Table(
    "checkin_answers",
    metadata,
    Column("checkin_id", Id, ForeignKey("checkins.id"), primary_key=True, autoincrement=False),
    Column("member_id", Id, ForeignKey("members.id"), primary_key=True, autoincrement=False),
    Column("act_id", String(36), ForeignKey("acts.act_id"), nullable=False, unique=True),
    Column("at_ms", BigInteger, nullable=False),
)
