"""The store: migrations, sync application, history, and both supported databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.domain import Account, Activity, ActivityKind, MetricPoint, SyncBatch
from core.errors import ConnectorError
from core.schema import metadata
from core.store import Store

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def _account(crm_id: str, name: str = "株式会社テスト", **kw: object) -> Account:
    return Account(source="demo", crm_id=crm_id, name=name, owner_email="a@x.test",
                   modified_at=T0, **kw)


def test_migrations_create_exactly_the_declared_schema(any_store: Store) -> None:
    """Alembic's head matches core/schema.py on SQLite and PostgreSQL (no autogenerate diff)."""
    with any_store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sync_upserts_and_keeps_cursors(any_store: Store) -> None:
    """Records are upserted by CRM id and the stream cursor is stored with the batch."""
    batches = [SyncBatch("Account", (_account("A1"), _account("A2", "Acme")), cursor="c1")]
    counts = any_store.apply_sync("demo", batches)
    assert counts.upserted["accounts"] == 2
    any_store.apply_sync("demo", [SyncBatch("Account", (_account("A1", "株式会社テスト改"),),
                                            cursor="c2")])
    assert any_store.account("demo", "A1").name == "株式会社テスト改"
    assert any_store.account_count("demo") == 2
    assert any_store.cursors("demo") == {"Account": "c2"}


def test_failed_sync_leaves_previous_mirror_intact(any_store: Store) -> None:
    """An exception mid-pull rolls back every batch and cursor of that pull."""
    any_store.apply_sync("demo", [SyncBatch("Account", (_account("A1", "Old"),), cursor="c1")])

    def broken():
        yield SyncBatch("Account", (_account("A1", "New"), _account("A9")), cursor="c2")
        raise ConnectorError("page 2 failed")

    with pytest.raises(ConnectorError):
        any_store.apply_sync("demo", broken())
    assert any_store.account("demo", "A1").name == "Old"
    assert any_store.account("demo", "A9") is None
    assert any_store.cursors("demo") == {"Account": "c1"}


def test_deleted_accounts_are_no_longer_live(any_store: Store) -> None:
    """A deletion from the CRM hides the account from evaluation and search."""
    any_store.apply_sync("demo", [SyncBatch("Account", (_account("A1"), _account("A2")))])
    any_store.apply_sync("demo", [SyncBatch("Account", deleted={"accounts": ("A2",)})])
    assert any_store.account_count("demo") == 1
    live = [s.account.crm_id for s in any_store.signals(
        "demo", today=date(2026, 11, 23), until=T0 + timedelta(days=30),
        usage_metric="form_impressions", usage_days=90)]
    assert live == ["A1"]


def test_metric_history_keeps_one_value_per_day_and_times_stay_aware(any_store: Store) -> None:
    """Re-syncing the same day overwrites that day's value; stored times come back aware UTC."""
    day = date(2026, 11, 20)
    any_store.apply_sync("demo", [SyncBatch("m", (
        _account("A1"), MetricPoint("A1", "form_impressions", day, 100),
        Activity("demo", "T1", "A1", ActivityKind.CALL, T0, "a@x.test", "call"),))])
    any_store.apply_sync("demo", [SyncBatch("m", (MetricPoint("A1", "form_impressions", day, 90),
                                                  MetricPoint("A1", "form_impressions",
                                                              day - timedelta(days=30), 300)))])
    (sig,) = any_store.signals("demo", today=date(2026, 11, 23), until=T0 + timedelta(days=30),
                               usage_metric="form_impressions", usage_days=90)
    assert sig.usage == ((day - timedelta(days=30), 300.0), (day, 90.0))
    assert sig.last_contact_at == T0 and sig.last_contact_at.tzinfo is not None


def test_signals_respect_the_day_they_are_asked_for(any_store: Store) -> None:
    """Evaluating a past day ignores activities and metric periods that came after it."""
    any_store.apply_sync("demo", [SyncBatch("m", (
        _account("A1"),
        MetricPoint("A1", "form_impressions", date(2026, 11, 1), 100),
        MetricPoint("A1", "form_impressions", date(2026, 11, 20), 5),
        Activity("demo", "T1", "A1", ActivityKind.MEETING, T0 + timedelta(days=10)),))])
    (sig,) = any_store.signals("demo", today=date(2026, 11, 5), until=T0 + timedelta(days=4),
                               usage_metric="form_impressions", usage_days=90)
    assert sig.usage == ((date(2026, 11, 1), 100.0),)
    assert sig.last_contact_at is None


def test_naive_datetimes_are_refused(any_store: Store) -> None:
    """A connector bug that drops the time zone fails loudly instead of shifting times."""
    naive = Activity("demo", "T1", "A1", ActivityKind.CALL, datetime(2026, 11, 1, 3, 0))
    with pytest.raises(Exception, match="naive"):
        any_store.apply_sync("demo", [SyncBatch("m", (naive,))])


def test_search_ignores_case_width_and_kana(store: Store) -> None:
    """Names match across full/half width, case, and katakana/hiragana, without legal forms."""
    store.apply_sync("demo", [SyncBatch("a", (_account("A1", "株式会社サクラウェブ"),
                                              _account("A2", "Northwind Digital Inc."),
                                              _account("A3", "50% Off & <Co>")))])
    assert [a.crm_id for a in store.search_accounts("demo", "さくら")] == ["A1"]
    assert [a.crm_id for a in store.search_accounts("demo", "ｻｸﾗ")] == ["A1"]
    assert [a.crm_id for a in store.search_accounts("demo", "ＮＯＲＴＨＷＩＮＤ")] == ["A2"]
    assert [a.crm_id for a in store.search_accounts("demo", "50%")] == ["A3"]
    assert store.search_accounts("demo", "株式会社") == []


def test_unreachable_database_is_a_clear_error(tmp_path) -> None:
    """A wrong database URL fails with StoreError, not a stack trace from the driver."""
    from core.errors import StoreError
    with pytest.raises(StoreError):
        Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none")
