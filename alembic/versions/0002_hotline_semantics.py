"""Hotline semantics: channel policy and crisis state, deadlines, link tests, check-ins, durable timers.

Every table is new; nothing existing changes, so a relay database at 0001 upgrades with its data intact.
A channel without a ``channel_semantics`` row uses the default policy and is not in crisis (docs/adr/0007).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('channel_semantics',
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('policy', sa.LargeBinary(), nullable=True),
    sa.Column('policy_version', sa.BigInteger(), nullable=False),
    sa.Column('crisis_on', sa.Boolean(), nullable=False),
    sa.Column('crisis_epoch', sa.BigInteger(), nullable=False),
    sa.Column('crisis_since_ms', sa.BigInteger(), nullable=True),
    sa.Column('crisis_trigger', sa.String(length=32), nullable=True),
    sa.Column('crisis_by', sa.String(length=65), nullable=True),
    sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_semantics_channel_id_channels')),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_channel_semantics'))
    )
    op.create_table('checkins',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('checkin', sa.String(length=64), nullable=False),
    sa.Column('schedule', sa.String(length=32), nullable=False),
    sa.Column('due_ms', sa.BigInteger(), nullable=False),
    sa.Column('answer_by_ms', sa.BigInteger(), nullable=False),
    sa.Column('desks', sa.Text(), nullable=False),
    sa.Column('notice_body', sa.LargeBinary(), nullable=False),
    sa.Column('notice_sig', sa.LargeBinary(), nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_checkins_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkins')),
    sa.UniqueConstraint('channel_id', 'checkin', name=op.f('uq_checkins_channel_id_checkin'))
    )
    op.create_table('acts',
    sa.Column('act_id', sa.String(length=36), nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('issuer_device_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('act_hash', sa.LargeBinary(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('sig', sa.LargeBinary(), nullable=False),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_acts_channel_id_channels')),
    sa.ForeignKeyConstraint(['issuer_device_id'], ['devices.id'], name=op.f('fk_acts_issuer_device_id_devices')),
    sa.PrimaryKeyConstraint('act_id', name=op.f('pk_acts'))
    )
    op.create_table('checkin_answers',
    sa.Column('checkin_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('act_id', sa.String(length=36), nullable=False),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['act_id'], ['acts.act_id'], name=op.f('fk_checkin_answers_act_id_acts')),
    sa.ForeignKeyConstraint(['checkin_id'], ['checkins.id'], name=op.f('fk_checkin_answers_checkin_id_checkins')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_checkin_answers_member_id_members')),
    sa.PrimaryKeyConstraint('checkin_id', 'member_id', name=op.f('pk_checkin_answers')),
    sa.UniqueConstraint('act_id', name=op.f('uq_checkin_answers_act_id'))
    )
    op.create_table('crisis_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('crisis_on', sa.Boolean(), nullable=False),
    sa.Column('trigger', sa.String(length=32), nullable=False),
    sa.Column('by', sa.String(length=65), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('act_id', sa.String(length=36), nullable=True),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.Column('notice_body', sa.LargeBinary(), nullable=False),
    sa.Column('notice_sig', sa.LargeBinary(), nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['act_id'], ['acts.act_id'], name=op.f('fk_crisis_changes_act_id_acts')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_crisis_changes_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crisis_changes')),
    sa.UniqueConstraint('channel_id', 'epoch', name=op.f('uq_crisis_changes_channel_id_epoch'))
    )
    op.create_table('link_tests',
    sa.Column('envelope_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('to_member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sent_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('timeout_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('answered_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('missed_at_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_link_tests_channel_id_channels')),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], name=op.f('fk_link_tests_envelope_id_envelopes')),
    sa.ForeignKeyConstraint(['from_member_id'], ['members.id'], name=op.f('fk_link_tests_from_member_id_members')),
    sa.ForeignKeyConstraint(['to_member_id'], ['members.id'], name=op.f('fk_link_tests_to_member_id_members')),
    sa.PrimaryKeyConstraint('envelope_id', name=op.f('pk_link_tests'))
    )
    with op.batch_alter_table('link_tests', schema=None) as batch_op:
        batch_op.create_index('ix_link_tests_direction', ['channel_id', 'from_member_id', 'to_member_id', 'sent_at_ms'], unique=False)

    op.create_table('timers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('due_ms', sa.BigInteger(), nullable=False),
    sa.Column('envelope_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('subject', sa.String(length=64), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('fired_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('fired_by', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_timers_channel_id_channels')),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], name=op.f('fk_timers_envelope_id_envelopes')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_timers_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_timers')),
    sa.UniqueConstraint('key', name=op.f('uq_timers_key'))
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index('ix_timers_due', ['fired_at_ms', 'due_ms'], unique=False)

    op.create_table('tracked_desks',
    sa.Column('envelope_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('deliver_by_ms', sa.BigInteger(), nullable=False),
    sa.Column('ack_by_ms', sa.BigInteger(), nullable=True),
    sa.Column('delivered_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('acknowledged_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('declined', sa.Boolean(), nullable=False),
    sa.Column('rejected_at_ms', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], name=op.f('fk_tracked_desks_envelope_id_envelopes')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_tracked_desks_member_id_members')),
    sa.PrimaryKeyConstraint('envelope_id', 'member_id', name=op.f('pk_tracked_desks'))
    )
    op.create_table('tracked_messages',
    sa.Column('envelope_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('resend_of', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('withdrawn_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('withdraw_act_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_tracked_messages_channel_id_channels')),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], name=op.f('fk_tracked_messages_envelope_id_envelopes')),
    sa.ForeignKeyConstraint(['resend_of'], ['envelopes.id'], name=op.f('fk_tracked_messages_resend_of_envelopes')),
    sa.ForeignKeyConstraint(['withdraw_act_id'], ['acts.act_id'], name=op.f('fk_tracked_messages_withdraw_act_id_acts')),
    sa.PrimaryKeyConstraint('envelope_id', name=op.f('pk_tracked_messages'))
    )
    with op.batch_alter_table('tracked_messages', schema=None) as batch_op:
        batch_op.create_index('ix_tracked_messages_resend_of', ['resend_of'], unique=False)

    op.create_table('escalations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('timer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('envelope_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('checkin', sa.String(length=64), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('deadline_ms', sa.BigInteger(), nullable=False),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.Column('notice_body', sa.LargeBinary(), nullable=False),
    sa.Column('notice_sig', sa.LargeBinary(), nullable=False),
    sa.Column('log_index', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_escalations_channel_id_channels')),
    sa.ForeignKeyConstraint(['envelope_id'], ['envelopes.id'], name=op.f('fk_escalations_envelope_id_envelopes')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_escalations_member_id_members')),
    sa.ForeignKeyConstraint(['timer_id'], ['timers.id'], name=op.f('fk_escalations_timer_id_timers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalations')),
    sa.UniqueConstraint('timer_id', name=op.f('uq_escalations_timer_id'))
    )
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.create_index('ix_escalations_channel_id', ['channel_id', 'id'], unique=False)
        batch_op.create_index('ix_escalations_envelope_id', ['envelope_id'], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ("escalations", ("ix_escalations_envelope_id", "ix_escalations_channel_id")),
        ("tracked_messages", ("ix_tracked_messages_resend_of",)),
        ("tracked_desks", ()),
        ("timers", ("ix_timers_due",)),
        ("link_tests", ("ix_link_tests_direction",)),
        ("crisis_changes", ()),
        ("checkin_answers", ()),
        ("acts", ()),
        ("checkins", ()),
        ("channel_semantics", ()),
    ):
        if indexes:
            with op.batch_alter_table(table, schema=None) as batch_op:
                for index in indexes:
                    batch_op.drop_index(index)
        op.drop_table(table)
