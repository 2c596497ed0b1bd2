"""Slack bot: play events (who did what, feedback per playbook), Slack user cache, nudge and
digest deliveries (attempt markers for exactly-once posting), admin notices sent once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('play_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('play_key', sa.String(length=255), nullable=False),
    sa.Column('playbook_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_play_events'))
    )
    with op.batch_alter_table('play_events', schema=None) as batch_op:
        batch_op.create_index('ix_play_events_play', ['play_key'], unique=False)
        batch_op.create_index('ix_play_events_playbook', ['playbook_id', 'action'], unique=False)

    op.create_table('slack_users',
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=True),
    sa.Column('looked_up_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('email', name=op.f('pk_slack_users'))
    )
    with op.batch_alter_table('slack_users', schema=None) as batch_op:
        batch_op.create_index('ix_slack_users_user', ['user_id'], unique=False)

    op.create_table('slack_deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('marker', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('play_key', sa.String(length=255), nullable=True),
    sa.Column('owner_email', sa.String(length=255), nullable=True),
    sa.Column('route', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('local_day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=True),
    sa.Column('ts', sa.String(length=64), nullable=True),
    sa.Column('digest_marker', sa.String(length=255), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slack_deliveries')),
    sa.UniqueConstraint('marker', name=op.f('uq_slack_deliveries_marker'))
    )
    with op.batch_alter_table('slack_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_slack_deliveries_owner_day', ['owner_email', 'local_day'], unique=False)
        batch_op.create_index('ix_slack_deliveries_play', ['play_key'], unique=False)
        batch_op.create_index('ix_slack_deliveries_state', ['state'], unique=False)

    op.create_table('slack_notices',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=True),
    sa.Column('posted_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_slack_notices'))
    )


def downgrade() -> None:
    op.drop_table('slack_notices')
    with op.batch_alter_table('slack_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_slack_deliveries_state')
        batch_op.drop_index('ix_slack_deliveries_play')
        batch_op.drop_index('ix_slack_deliveries_owner_day')

    op.drop_table('slack_deliveries')
    with op.batch_alter_table('slack_users', schema=None) as batch_op:
        batch_op.drop_index('ix_slack_users_user')

    op.drop_table('slack_users')
    with op.batch_alter_table('play_events', schema=None) as batch_op:
        batch_op.drop_index('ix_play_events_playbook')
        batch_op.drop_index('ix_play_events_play')

    op.drop_table('play_events')
