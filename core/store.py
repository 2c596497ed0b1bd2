"""The local store: CRM mirror, metric history, health history, sync cursors.

SQLite by default (a file under ``.kizuna/``), PostgreSQL in production; the schema is managed by
Alembic. A sync is applied in one transaction, so a failed pull leaves the previous mirror intact.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from core import schema as t
from core.domain import (
    CONTACT_KINDS,
    Account,
    AccountSignals,
    Activity,
    ActivityKind,
    Contact,
    MetricPoint,
    SyncBatch,
)
from core.errors import StoreError
from core.text import search_key

log = logging.getLogger(__name__)

_CHUNK = 1000
_DELETABLE = {"accounts": t.accounts, "contacts": t.contacts, "activities": t.activities}


@dataclass
class SyncCounts:
    """What one sync changed, per stream and kind, for the CLI and the admin."""

    upserted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    deleted: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"upserted": dict(self.upserted), "deleted": dict(self.deleted)}


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Access to the local database. One instance per process; safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect (creating the SQLite file's folder) and bring the schema up to date."""
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(url, future=True, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot use database URL: {exc}") from exc
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        if migrate:
            store.migrate()
        return store

    def migrate(self) -> None:
        from core.migrations import upgrade

        try:
            upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(f"database unreachable: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def tables(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    # -- sync ----------------------------------------------------------------------------------

    def cursors(self, source: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.sync_cursors.c.stream, t.sync_cursors.c.cursor)
                                .where(t.sync_cursors.c.source == source))
            return {r.stream: r.cursor for r in rows}

    def start_sync(self, source: str, *, full: bool) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(t.sync_runs.insert().values(
                source=source, started_at=_now(), status="running", full=full, counts={}))
            return int(result.inserted_primary_key[0])

    def finish_sync(self, run_id: int, *, status: str, counts: Mapping[str, Any] | None = None,
                    api_calls: int | None = None, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.sync_runs).where(t.sync_runs.c.id == run_id).values(
                finished_at=_now(), status=status, counts=dict(counts or {}),
                api_calls=api_calls, error=error))

    def apply_sync(self, source: str, batches: Iterable[SyncBatch]) -> SyncCounts:
        """Apply a whole pull in one transaction; any exception rolls everything back."""
        counts = SyncCounts()
        cursors: dict[str, str] = {}
        now = _now()
        with self.engine.begin() as conn:
            for batch in batches:
                self._apply_batch(conn, source, batch, now, counts)
                if batch.cursor is not None:
                    cursors[batch.stream] = batch.cursor
            if cursors:
                _upsert(conn, t.sync_cursors,
                        [{"source": source, "stream": s, "cursor": c, "updated_at": now}
                         for s, c in cursors.items()],
                        keys=("source", "stream"))
        return counts

    def _apply_batch(self, conn: Connection, source: str, batch: SyncBatch, now: datetime,
                     counts: SyncCounts) -> None:
        by_kind: dict[type, list[dict[str, Any]]] = defaultdict(list)
        for record in batch.records:
            by_kind[type(record)].append(_row(record, source, now))
        for kind, rows in by_kind.items():
            table, keys = _TABLE_OF[kind]
            for chunk in _chunks(rows):
                _upsert(conn, table, chunk, keys=keys)
            counts.upserted[table.name] += len(rows)
        for kind_name, ids in batch.deleted.items():
            table = _DELETABLE[kind_name]
            for chunk in _chunks(list(ids)):
                conn.execute(update(table).where(table.c.source == source,
                                                 table.c.crm_id.in_(chunk)).values(deleted=True))
            counts.deleted[kind_name] += len(ids)

    def last_sync(self, source: str) -> Mapping[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.sync_runs).where(t.sync_runs.c.source == source)
                               .order_by(t.sync_runs.c.id.desc()).limit(1)).mappings().first()
            return dict(row) if row else None

    # -- reads for evaluation ------------------------------------------------------------------

    def account_count(self, source: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(t.accounts).where(
                t.accounts.c.source == source, t.accounts.c.deleted.is_(False))).scalar_one()

    def signals(self, source: str, *, today: date, until: datetime, usage_metric: str,
                usage_days: int, account_id: str | None = None) -> Iterator[AccountSignals]:
        """Everything evaluation needs about every live account, in a handful of queries.

        Only what was known by ``today`` (periods) and ``until`` (activity times) is used, so
        past days can be evaluated again, e.g. to fill health history for the demo.
        """
        one = account_id
        with self.engine.connect() as conn:
            kinds = [k.value for k in CONTACT_KINDS]
            last_contact = _max_by_account(conn, source, kinds, until, one)
            last_qbr = _max_by_account(conn, source, [ActivityKind.QBR.value], until, one)
            usage = self._usage(conn, source, usage_metric, today - timedelta(days=usage_days),
                                today, one)
            metrics = self._latest_metrics(conn, source, usage_metric, today, one)
            previous, peak = self._health_history(conn, source, today, one)
            query = select(t.accounts).where(t.accounts.c.source == source,
                                             t.accounts.c.deleted.is_(False))
            if one is not None:
                query = query.where(t.accounts.c.crm_id == one)
            rows = conn.execute(query.order_by(t.accounts.c.crm_id))
            for row in rows.mappings():
                crm_id = row["crm_id"]
                yield AccountSignals(
                    account=_account(row),
                    last_contact_at=last_contact.get(crm_id),
                    last_qbr_at=last_qbr.get(crm_id),
                    usage=tuple(usage.get(crm_id, ())),
                    metrics=metrics.get(crm_id, {}),
                    previous_health=previous.get(crm_id),
                    peak_health_14d=peak.get(crm_id),
                )

    def _usage(self, conn: Connection, source: str, metric: str, since: date,
               today: date, one: str | None) -> dict[str, list[tuple[date, float]]]:
        mp = t.metric_points
        out: dict[str, list[tuple[date, float]]] = defaultdict(list)
        query = select(mp.c.account_id, mp.c.period, mp.c.value).where(
            mp.c.source == source, mp.c.metric == metric, mp.c.period >= since,
            mp.c.period <= today)
        rows = conn.execute(_only(query, mp, one).order_by(mp.c.account_id, mp.c.period))
        for account_id, period, value in rows:
            out[account_id].append((period, value))
        return out

    def _latest_metrics(self, conn: Connection, source: str, exclude: str,
                        today: date, one: str | None) -> dict[str, dict[str, float]]:
        mp = t.metric_points
        latest = _only(select(mp.c.account_id, mp.c.metric, func.max(mp.c.period).label("period"))
                       .where(mp.c.source == source, mp.c.metric != exclude,
                              mp.c.period <= today), mp, one)
        latest = latest.group_by(mp.c.account_id, mp.c.metric).subquery()
        rows = conn.execute(select(mp.c.account_id, mp.c.metric, mp.c.value).join(latest, and_(
            mp.c.account_id == latest.c.account_id, mp.c.metric == latest.c.metric,
            mp.c.period == latest.c.period)).where(mp.c.source == source))
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for account_id, metric, value in rows:
            out[account_id][metric] = value
        return out

    def _health_history(self, conn: Connection, source: str, today: date,
                        one: str | None) -> tuple[dict[str, float], dict[str, float]]:
        """The latest score before today, and the highest score of the 14 days before today."""
        hs = t.health_scores
        before = (_only(select(hs.c.account_id, func.max(hs.c.day).label("day"))
                        .where(hs.c.source == source, hs.c.day < today), hs, one)
                  .group_by(hs.c.account_id).subquery())
        previous = dict(conn.execute(select(hs.c.account_id, hs.c.score).join(before, and_(
            hs.c.account_id == before.c.account_id, hs.c.day == before.c.day))
            .where(hs.c.source == source)).all())
        peak = dict(conn.execute(_only(select(hs.c.account_id, func.max(hs.c.score)).where(
            hs.c.source == source, hs.c.day < today, hs.c.day >= today - timedelta(days=14)),
            hs, one).group_by(hs.c.account_id)).all())
        return previous, peak

    def record_health(self, source: str, day: date,
                      scores: Iterable[tuple[str, float, str]]) -> None:
        """Keep today's score per account (the last evaluation of the day wins)."""
        rows = [{"source": source, "account_id": a, "day": day, "score": s, "band": b}
                for a, s, b in scores]
        with self.engine.begin() as conn:
            for chunk in _chunks(rows):
                _upsert(conn, t.health_scores, chunk, keys=("source", "account_id", "day"))

    # -- reads for people ----------------------------------------------------------------------

    def account(self, source: str, crm_id: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.accounts).where(
                t.accounts.c.source == source, t.accounts.c.crm_id == crm_id)).mappings().first()
            return _account(row) if row else None

    def accounts_by_ids(self, source: str, crm_ids: Sequence[str]) -> dict[str, Account]:
        out: dict[str, Account] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(crm_ids)):
                rows = conn.execute(select(t.accounts).where(
                    t.accounts.c.source == source, t.accounts.c.crm_id.in_(chunk))).mappings()
                out.update((r["crm_id"], _account(r)) for r in rows)
        return out

    def search_accounts(self, source: str, query: str, *, limit: int = 10) -> list[Account]:
        """Accounts whose folded name contains every word of the folded query."""
        words = search_key(query).split()
        if not words:
            return []
        a = t.accounts
        cond = [a.c.name_key.contains(w, autoescape=True) for w in words]
        with self.engine.connect() as conn:
            rows = conn.execute(select(a).where(a.c.source == source, a.c.deleted.is_(False),
                                                *cond)
                                .order_by(func.length(a.c.name_key), a.c.name).limit(limit))
            return [_account(r) for r in rows.mappings()]

    def account_names(self, source: str) -> list[tuple[str, str]]:
        """(crm_id, name_key) of every live account, for fuzzy matching."""
        a = t.accounts
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(a.c.crm_id, a.c.name_key).where(
                a.c.source == source, a.c.deleted.is_(False)))]

    def contacts_of(self, source: str, account_id: str) -> list[Contact]:
        c = t.contacts
        with self.engine.connect() as conn:
            rows = conn.execute(select(c).where(c.c.source == source,
                                                c.c.account_id == account_id,
                                                c.c.deleted.is_(False))
                                .order_by(c.c.is_primary.desc(), c.c.name)).mappings()
            return [Contact(source=r["source"], crm_id=r["crm_id"], account_id=r["account_id"],
                            name=r["name"], email=r["email"], title=r["title"],
                            is_primary=r["is_primary"], modified_at=r["modified_at"])
                    for r in rows]

    def recent_activities(self, source: str, account_id: str, *, limit: int = 5) -> list[Activity]:
        ac = t.activities
        with self.engine.connect() as conn:
            rows = conn.execute(select(ac).where(ac.c.source == source,
                                                 ac.c.account_id == account_id,
                                                 ac.c.deleted.is_(False))
                                .order_by(ac.c.occurred_at.desc()).limit(limit)).mappings()
            return [Activity(source=r["source"], crm_id=r["crm_id"], account_id=r["account_id"],
                             kind=ActivityKind(r["kind"]), occurred_at=r["occurred_at"],
                             owner_email=r["owner_email"], subject=r["subject"],
                             modified_at=r["modified_at"]) for r in rows]

    def has_health_history(self, source: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(t.health_scores.c.day).where(
                t.health_scores.c.source == source).limit(1)).first() is not None

    def health_on(self, source: str, account_id: str) -> list[tuple[date, float, str]]:
        hs = t.health_scores
        with self.engine.connect() as conn:
            rows = conn.execute(select(hs.c.day, hs.c.score, hs.c.band).where(
                hs.c.source == source, hs.c.account_id == account_id).order_by(hs.c.day))
            return [tuple(r) for r in rows]


# -- helpers -----------------------------------------------------------------------------------

def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _chunks(rows: list, size: int = _CHUNK) -> Iterator[list]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def _upsert(conn: Connection, table: Any, rows: list[dict[str, Any]], *,
            keys: Sequence[str]) -> None:
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        stmt = sqlite.insert(table)
    elif dialect == "postgresql":
        stmt = postgresql.insert(table)
    else:  # pragma: no cover - guarded by the supported URLs
        raise StoreError(f"unsupported database dialect {dialect!r}")
    columns = [c for c in rows[0] if c not in keys]
    stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={c: stmt.excluded[c] for c in columns})
    conn.execute(stmt, rows)


def _only(query: Any, table: Any, account_id: str | None) -> Any:
    """Narrow a per-account query to one account when one is asked for."""
    return query if account_id is None else query.where(table.c.account_id == account_id)


def _max_by_account(conn: Connection, source: str, kinds: list[str], until: datetime,
                    one: str | None) -> dict[str, datetime]:
    ac = t.activities
    rows = conn.execute(_only(select(ac.c.account_id, func.max(ac.c.occurred_at)).where(
        ac.c.source == source, ac.c.deleted.is_(False), ac.c.kind.in_(kinds),
        ac.c.occurred_at < until), ac, one).group_by(ac.c.account_id))
    # func.max bypasses the column type on some backends; make the result aware again.
    return {a: (m if m.tzinfo else m.replace(tzinfo=UTC)) if isinstance(m, datetime)
            else datetime.fromisoformat(m).replace(tzinfo=UTC)
            for a, m in rows if m is not None}


def _account(row: Mapping[str, Any]) -> Account:
    return Account(
        source=row["source"], crm_id=row["crm_id"], name=row["name"],
        owner_email=row["owner_email"], potential=row["potential"], arr=row["arr"],
        mrr=row["mrr"], contract_start=row["contract_start"], renewal_date=row["renewal_date"],
        lifecycle_stage=row["lifecycle_stage"], language=row["language"],
        plan_limit=row["plan_limit"], industry=row["industry"], custom=row["custom"] or {},
        modified_at=row["modified_at"])


def _row(record: Any, source: str, now: datetime) -> dict[str, Any]:
    if isinstance(record, Account):
        return {
            "source": source, "crm_id": record.crm_id, "name": record.name,
            "name_key": search_key(record.name)[:255], "owner_email": record.owner_email,
            "potential": record.potential, "arr": record.arr, "mrr": record.mrr,
            "contract_start": record.contract_start, "renewal_date": record.renewal_date,
            "lifecycle_stage": record.lifecycle_stage, "language": record.language,
            "plan_limit": record.plan_limit, "industry": record.industry,
            "custom": dict(record.custom), "deleted": False, "modified_at": record.modified_at,
            "synced_at": now,
        }
    if isinstance(record, Contact):
        return {
            "source": source, "crm_id": record.crm_id, "account_id": record.account_id,
            "name": record.name, "email": record.email, "title": record.title,
            "is_primary": record.is_primary, "deleted": False, "modified_at": record.modified_at,
        }
    if isinstance(record, Activity):
        return {
            "source": source, "crm_id": record.crm_id, "account_id": record.account_id,
            "kind": str(record.kind), "occurred_at": record.occurred_at,
            "owner_email": record.owner_email,
            "subject": (record.subject or "")[:500] or None, "deleted": False,
            "modified_at": record.modified_at,
        }
    if isinstance(record, MetricPoint):
        return {"source": source, "account_id": record.account_id, "metric": record.metric,
                "period": record.period, "value": float(record.value), "observed_at": now}
    raise TypeError(f"not a record: {type(record).__name__}")


_TABLE_OF: dict[type, tuple[Any, tuple[str, ...]]] = {
    Account: (t.accounts, ("source", "crm_id")),
    Contact: (t.contacts, ("source", "crm_id")),
    Activity: (t.activities, ("source", "crm_id")),
    MetricPoint: (t.metric_points, ("source", "account_id", "metric", "period")),
}

__all__ = ["Store", "SyncCounts"]
