"""Helpers for the Salesforce connector tests: settings pointed at a FakeSalesforce, seed data,
a recording sleep, and a pull that collects batches and cursors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.retry import RetryPolicy
from connectors.salesforce import SalesforceConnector, from_settings
from core.config import Environment, KizunaConfig, Settings
from core.domain import Account, Activity, Contact, MetricPoint, SyncBatch
from tests.fakes.salesforce import FakeSalesforce, RecordedCall

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
USERNAME = "kizuna-bot@example.com"
PASSWORD = "hunter2"
TOKEN = "TOKEN123"

_SF_ENV = ("salesforce_instance_url", "salesforce_session_id", "salesforce_username",
           "salesforce_password", "salesforce_security_token", "salesforce_domain")


def sf_settings(tmp_path: Path, fake: FakeSalesforce | None, *, session: bool = True,
                login: bool = False, salesforce: Mapping[str, Any] | None = None,
                **config: Any) -> Settings:
    """Settings for ``crm: salesforce`` at the fake; secrets set only as asked."""
    env: dict[str, Any] = dict.fromkeys(_SF_ENV)
    if fake is not None:
        env["salesforce_instance_url"] = fake.url
        if session:
            env["salesforce_session_id"] = fake.session_id
        if login:
            env.update(salesforce_username=USERNAME, salesforce_password=PASSWORD,
                       salesforce_security_token=TOKEN)
    cfg = KizunaConfig(data_dir=tmp_path / ".kizuna", crm="salesforce",
                       salesforce=dict(salesforce or {}), **config)
    environment = Environment(kizuna_database_url=f"sqlite:///{tmp_path}/kizuna.db",
                              kizuna_crm="salesforce", **env)
    return Settings(cfg, environment, None)


@dataclass
class Sleeps:
    """A ``sleep`` for RetryPolicy that records the waits instead of sleeping."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    def policy(self, attempts: int = 4, max_total_wait: float = 60.0) -> RetryPolicy:
        return RetryPolicy(attempts=attempts, max_total_wait=max_total_wait,
                           max_single_wait=30.0, initial_wait=0.5, sleep=self)


def connector(settings: Settings, fake: FakeSalesforce, sleeps: Sleeps | None = None, *,
              attempts: int = 4, ahead: timedelta = timedelta(minutes=10),
              clock: Callable[[], datetime] | None = None) -> SalesforceConnector:
    """The connector from settings, with a recording sleep and a clock ``ahead`` of the fake's
    (a read that starts well after the last write needs no overlap)."""
    sleeps = sleeps or Sleeps()
    return from_settings(settings, retry=sleeps.policy(attempts),
                         clock=clock or (lambda: fake.now + ahead))


@dataclass
class Pulled:
    batches: list[SyncBatch]
    cursors: dict[str, str]

    def records(self, kind: type) -> list[Any]:
        return [r for b in self.batches for r in b.records if isinstance(r, kind)]

    @property
    def accounts(self) -> dict[str, Account]:
        return {a.crm_id: a for a in self.records(Account)}

    @property
    def contacts(self) -> dict[str, Contact]:
        return {c.crm_id: c for c in self.records(Contact)}

    @property
    def activities(self) -> dict[str, Activity]:
        return {a.crm_id: a for a in self.records(Activity)}

    @property
    def points(self) -> list[MetricPoint]:
        return self.records(MetricPoint)

    def deleted(self, kind: str) -> list[str]:
        return [i for b in self.batches for i in b.deleted.get(kind, ())]


def pull(sf: SalesforceConnector, cursors: Mapping[str, str] | None = None) -> Pulled:
    batches = list(sf.pull(dict(cursors or {})))
    merged = dict(cursors or {})
    merged.update({b.stream: b.cursor for b in batches if b.cursor is not None})
    return Pulled(batches, merged)


def soql_calls(fake: FakeSalesforce) -> list[RecordedCall]:
    """Query and query-more requests, injected faults excluded."""
    return [c for c in fake.calls if "/query" in c.path and not c.injected]


def queries_of(fake: FakeSalesforce, sobject: str) -> list[str]:
    """The SOQL texts of first-page queries on one object."""
    return [c.params["q"] for c in soql_calls(fake)
            if "q" in c.params and f" FROM {sobject} " in f"{c.params['q']} "]


def calls_per_object(fake: FakeSalesforce) -> dict[str, int]:
    """API requests (describe, query and every next page) attributed to their sObject."""
    out: dict[str, int] = {}
    locators: dict[str, str] = {}
    for call in fake.calls:
        if call.injected or "/services/data/" not in call.path:
            continue
        name = None
        if "/sobjects/" in call.path:
            name = call.path.split("/sobjects/")[1].split("/")[0]
        elif "q" in call.params:
            name = call.params["q"].split(" FROM ")[1].split()[0]
        elif "/01g" in call.path:
            name = locators.get("last")
        if "q" in call.params:
            locators["last"] = name or ""
        if name:
            out[name] = out.get(name, 0) + 1
    return out


def seed_accounts(fake: FakeSalesforce, n: int, *, owner: str | None = None,
                  prefix: str = "株式会社テスト", **fields: Any) -> list[str]:
    return [fake.add("Account", Name=f"{prefix}{i:05d}", **({"OwnerId": owner} if owner else {}),
                     **fields) for i in range(n)]


def add_user(fake: FakeSalesforce, email: str, last_name: str) -> str:
    return fake.add("User", Username=email, Email=email, LastName=last_name)


def ids(items: Iterable[Any]) -> set[str]:
    return {getattr(i, "crm_id", i) for i in items}
