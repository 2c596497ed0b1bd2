"""Shared fixtures: settings in a temporary folder, a real SQLite store, the demo CRM, a clock.

Tests fake services (CRM, Slack) with local HTTP servers; our own code is always the real thing.
PostgreSQL runs too when ``KIZUNA_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors.demo import DemoCRM
from core.app import Kizuna, Rules
from core.config import Environment, KizunaConfig, Settings
from core.store import Store

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo


def make_settings(tmp_path: Path, **config: object) -> Settings:
    cfg = KizunaConfig(data_dir=tmp_path / ".kizuna", **config)
    return Settings(cfg, Environment(kizuna_database_url=f"sqlite:///{tmp_path}/kizuna.db"), None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store.open(settings.database_url)
    yield s
    s.close()


@pytest.fixture
def demo_crm(tmp_path: Path) -> DemoCRM:
    return DemoCRM(tmp_path / "demo-crm.json", accounts=80, seed=7, today=TODAY)


@pytest.fixture
def kizuna(settings: Settings, store: Store, demo_crm: DemoCRM) -> Kizuna:
    return Kizuna(settings, Rules.load(settings), store, demo_crm, clock=lambda: NOW)


def _postgres_url() -> str | None:
    return os.environ.get("KIZUNA_TEST_POSTGRES_URL")


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (skips without one)."""
    base = _postgres_url()
    if not base:
        pytest.skip("KIZUNA_TEST_POSTGRES_URL not set (CI sets it)")
    name = f"kizuna_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on SQLite and, where configured, on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/kizuna-test.db"
        return
    with throwaway_postgres() as url:
        yield url


@pytest.fixture
def any_store(database_url: str) -> Iterator[Store]:
    """A fresh store on SQLite and, where configured, on a throw-away PostgreSQL database."""
    s = Store.open(database_url)
    yield s
    s.close()
