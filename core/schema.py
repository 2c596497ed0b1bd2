"""Tables of the local store. Alembic migrations in ``core/migrations`` create exactly these.

Child records point at their account by ``(source, account_id)`` — the CRM's own id — so a
stream can be applied before or after the accounts stream without look-ups.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
})


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on every backend: stored as UTC, read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; times must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _source() -> Column:
    return Column("source", String(32), nullable=False)


accounts = Table(
    "accounts", metadata,
    _source(),
    Column("crm_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("name_key", String(255), nullable=False),
    Column("owner_email", String(255)),
    Column("potential", Float),
    Column("arr", Float),
    Column("mrr", Float),
    Column("contract_start", Date),
    Column("renewal_date", Date),
    Column("lifecycle_stage", String(64)),
    Column("language", String(8), nullable=False, default="ja"),
    Column("plan_limit", Float),
    Column("industry", String(128)),
    Column("custom", JSON, nullable=False, default=dict),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("modified_at", UTCDateTime),
    Column("synced_at", UTCDateTime, nullable=False),
    Column("id", Integer, primary_key=True, autoincrement=True),
    UniqueConstraint("source", "crm_id", name="uq_accounts_source_crm_id"),
    Index("ix_accounts_owner", "source", "owner_email"),
)

contacts = Table(
    "contacts", metadata,
    _source(),
    Column("crm_id", String(64), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("email", String(255)),
    Column("title", String(255)),
    Column("is_primary", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("modified_at", UTCDateTime),
    Column("id", Integer, primary_key=True, autoincrement=True),
    UniqueConstraint("source", "crm_id", name="uq_contacts_source_crm_id"),
    Index("ix_contacts_account", "source", "account_id"),
)

activities = Table(
    "activities", metadata,
    _source(),
    Column("crm_id", String(64), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("owner_email", String(255)),
    Column("subject", String(500)),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("modified_at", UTCDateTime),
    Column("id", Integer, primary_key=True, autoincrement=True),
    UniqueConstraint("source", "crm_id", name="uq_activities_source_crm_id"),
    Index("ix_activities_account", "source", "account_id", "kind", "occurred_at"),
)

metric_points = Table(
    "metric_points", metadata,
    Column("source", String(32), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("period", Date, primary_key=True),
    Column("value", Float, nullable=False),
    Column("observed_at", UTCDateTime, nullable=False),
    Index("ix_metric_points_metric_period", "source", "metric", "period"),
)

health_scores = Table(
    "health_scores", metadata,
    Column("source", String(32), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("score", Float, nullable=False),
    Column("band", String(8), nullable=False),
    Index("ix_health_scores_day", "source", "day"),
)

sync_cursors = Table(
    "sync_cursors", metadata,
    Column("source", String(32), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("cursor", String(64), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

sync_runs = Table(
    "sync_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),  # running / ok / failed
    Column("full", Boolean, nullable=False, default=False),
    Column("counts", JSON, nullable=False, default=dict),
    Column("api_calls", Integer),
    Column("error", Text),
)

plays = Table(
    "plays", metadata,
    Column("key", String(255), primary_key=True),
    Column("ref", String(32), nullable=False, unique=True),
    Column("playbook_id", String(64), nullable=False),
    Column("variant", String(64)),
    Column("source", String(32), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("episode", Integer, nullable=False),
    Column("severity", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("opened_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("closed_on", Date),
    Column("snoozed_until", Date),
    Column("title", JSON, nullable=False),
    Column("reason", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("task_state", String(16), nullable=False),
    Column("task_id", String(64)),
    Column("nudge_state", String(16), nullable=False),
    Column("nudge_channel", String(64)),
    Column("nudge_ts", String(64)),
    Column("acted_by", String(255)),
    Column("feedback", String(32)),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_plays_account", "source", "account_id", "playbook_id"),
    Index("ix_plays_state", "state"),
)

email_drafts = Table(
    "email_drafts", metadata,
    Column("play_key", String(255), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("to_name", String(255)),
    Column("to_email", String(255)),
    Column("subject", String(500), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# -- Slack bot (migration 0002) ------------------------------------------------------------------

play_events = Table(
    "play_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("play_key", String(255), nullable=False),
    Column("playbook_id", String(64), nullable=False),
    Column("action", String(32), nullable=False),  # done / not_useful / snoozed / woke / ...
    Column("actor", String(255)),
    Column("at", UTCDateTime, nullable=False),
    Column("detail", JSON, nullable=False, default=dict),
    Index("ix_play_events_play", "play_key"),
    Index("ix_play_events_playbook", "playbook_id", "action"),
)

slack_users = Table(
    "slack_users", metadata,
    Column("email", String(255), primary_key=True),  # lower-cased
    Column("user_id", String(32)),                   # None: no Slack member has this email
    Column("looked_up_at", UTCDateTime, nullable=False),
    Index("ix_slack_users_user", "user_id"),
)

slack_deliveries = Table(
    "slack_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("marker", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),      # nudge / daily / weekly
    Column("play_key", String(255)),
    Column("owner_email", String(255)),
    Column("route", String(16), nullable=False),     # dm / channel / fallback / digest / manager
    Column("target", String(64)),
    Column("state", String(16), nullable=False),     # sending/sent/queued/digested/failed/...
    Column("local_day", Date, nullable=False),
    Column("channel", String(64)),
    Column("ts", String(64)),
    Column("digest_marker", String(255)),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_slack_deliveries_play", "play_key"),
    Index("ix_slack_deliveries_owner_day", "owner_email", "local_day"),
    Index("ix_slack_deliveries_state", "state"),
)

slack_notices = Table(
    "slack_notices", metadata,
    Column("key", String(255), primary_key=True),
    Column("text", Text, nullable=False),
    Column("channel", String(64)),
    Column("posted_at", UTCDateTime, nullable=False),
)

leases = Table(
    "leases", metadata,
    Column("name", String(64), primary_key=True),   # e.g. "scheduler"
    Column("holder", String(255), nullable=False),  # host:pid:random of the process holding it
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

job_runs = Table(
    "job_runs", metadata,
    Column("name", String(64), primary_key=True),   # scheduled job id, e.g. "sync"
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),   # running / ok / failed
    Column("holder", String(255)),
    Column("error", Text),
)

data_guard = Table(
    "data_guard", metadata,
    Column("source", String(32), primary_key=True),
    Column("accounts", Integer, nullable=False),        # live accounts at the last good tick
    Column("usage_coverage", Float, nullable=False),    # share of them with fresh usage data
    Column("held", Boolean, nullable=False),
    Column("reason", Text),
    Column("since", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)
