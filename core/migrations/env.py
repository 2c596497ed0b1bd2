"""Alembic environment: uses the engine the store hands over (see core.migrations.upgrade).

On PostgreSQL the whole upgrade runs under a transaction-scoped advisory lock, so several
replicas starting at once migrate one after the other instead of racing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from core.schema import metadata

MIGRATION_LOCK = 0x6B697A75  # "kizu"

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK})
        context.run_migrations()
