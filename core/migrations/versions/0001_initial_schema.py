"""Initial schema: CRM mirror, metric and health history, sync cursors and runs, plays ledger.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23 10:24:23.133060
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('crm_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('name_key', sa.String(length=255), nullable=False),
    sa.Column('owner_email', sa.String(length=255), nullable=True),
    sa.Column('potential', sa.Float(), nullable=True),
    sa.Column('arr', sa.Float(), nullable=True),
    sa.Column('mrr', sa.Float(), nullable=True),
    sa.Column('contract_start', sa.Date(), nullable=True),
    sa.Column('renewal_date', sa.Date(), nullable=True),
    sa.Column('lifecycle_stage', sa.String(length=64), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('plan_limit', sa.Float(), nullable=True),
    sa.Column('industry', sa.String(length=128), nullable=True),
    sa.Column('custom', sa.JSON(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('modified_at', sa.DateTime(), nullable=True),
    sa.Column('synced_at', sa.DateTime(), nullable=False),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('source', 'crm_id', name='uq_accounts_source_crm_id')
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_owner', ['source', 'owner_email'], unique=False)

    op.create_table('activities',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('crm_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('owner_email', sa.String(length=255), nullable=True),
    sa.Column('subject', sa.String(length=500), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('modified_at', sa.DateTime(), nullable=True),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activities')),
    sa.UniqueConstraint('source', 'crm_id', name='uq_activities_source_crm_id')
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.create_index('ix_activities_account', ['source', 'account_id', 'kind', 'occurred_at'], unique=False)

    op.create_table('contacts',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('crm_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('title', sa.String(length=255), nullable=True),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('modified_at', sa.DateTime(), nullable=True),
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('source', 'crm_id', name='uq_contacts_source_crm_id')
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_account', ['source', 'account_id'], unique=False)

    op.create_table('email_drafts',
    sa.Column('play_key', sa.String(length=255), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('to_name', sa.String(length=255), nullable=True),
    sa.Column('to_email', sa.String(length=255), nullable=True),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('play_key', name=op.f('pk_email_drafts'))
    )
    op.create_table('health_scores',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('band', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('source', 'account_id', 'day', name=op.f('pk_health_scores'))
    )
    with op.batch_alter_table('health_scores', schema=None) as batch_op:
        batch_op.create_index('ix_health_scores_day', ['source', 'day'], unique=False)

    op.create_table('metric_points',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('observed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'account_id', 'metric', 'period', name=op.f('pk_metric_points'))
    )
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.create_index('ix_metric_points_metric_period', ['source', 'metric', 'period'], unique=False)

    op.create_table('plays',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('ref', sa.String(length=32), nullable=False),
    sa.Column('playbook_id', sa.String(length=64), nullable=False),
    sa.Column('variant', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('episode', sa.Integer(), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('snoozed_until', sa.Date(), nullable=True),
    sa.Column('title', sa.JSON(), nullable=False),
    sa.Column('reason', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('task_state', sa.String(length=16), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('nudge_state', sa.String(length=16), nullable=False),
    sa.Column('nudge_channel', sa.String(length=64), nullable=True),
    sa.Column('nudge_ts', sa.String(length=64), nullable=True),
    sa.Column('acted_by', sa.String(length=255), nullable=True),
    sa.Column('feedback', sa.String(length=32), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_plays')),
    sa.UniqueConstraint('ref', name=op.f('uq_plays_ref'))
    )
    with op.batch_alter_table('plays', schema=None) as batch_op:
        batch_op.create_index('ix_plays_account', ['source', 'account_id', 'playbook_id'], unique=False)
        batch_op.create_index('ix_plays_state', ['state'], unique=False)

    op.create_table('sync_cursors',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'stream', name=op.f('pk_sync_cursors'))
    )
    op.create_table('sync_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('api_calls', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )


def downgrade() -> None:
    op.drop_table('sync_runs')
    op.drop_table('sync_cursors')
    with op.batch_alter_table('plays', schema=None) as batch_op:
        batch_op.drop_index('ix_plays_state')
        batch_op.drop_index('ix_plays_account')

    op.drop_table('plays')
    with op.batch_alter_table('metric_points', schema=None) as batch_op:
        batch_op.drop_index('ix_metric_points_metric_period')

    op.drop_table('metric_points')
    with op.batch_alter_table('health_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_health_scores_day')

    op.drop_table('health_scores')
    op.drop_table('email_drafts')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_account')

    op.drop_table('contacts')
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_index('ix_activities_account')

    op.drop_table('activities')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_owner')

    op.drop_table('accounts')
