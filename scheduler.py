"""APScheduler wiring only: the jobs call the same service methods the CLI and the bot call.

Jobs (cron expressions in ``scheduler:`` of kizuna.yaml, all in the team's time zone):

- ``sync``: pull the CRM (default every 15 minutes);
- ``evaluate``: score, segment, evaluate and deliver (default hourly in working hours);
- ``daily_digest`` / ``weekly_digest``: the CSM digests and the manager digest (with Slack).

Several replicas may run; only the holder of the ``scheduler`` lease runs jobs (``core.leader``).
Every trigger gets the time zone explicitly (a ``CronTrigger`` without one uses the host's).
``max_instances=1`` and coalescing keep one run at a time; after downtime each job runs once to
catch up, not once per missed slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, field_validator
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from core import schema as t
from core.config import Strict
from core.errors import KizunaError
from core.leader import Lease
from core.store import Store

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def _cron(value: str) -> str:
    try:
        CronTrigger.from_crontab(value, timezone=UTC)
    except ValueError as exc:
        raise ValueError(f"not a cron expression ({exc})") from exc
    return value


class ScheduleSettings(Strict):
    """``scheduler:`` in kizuna.yaml (crontab syntax: minute hour day month day-of-week)."""

    sync: str = "*/15 * * * *"
    evaluate: str = "5 9-18 * * mon-fri"
    daily_digest: str = "30 8 * * mon-fri"
    weekly_digest: str = "0 9 * * mon"
    digest_grace_minutes: int = Field(120, gt=0)   # a digest later than this is skipped
    lease_ttl_seconds: int = Field(45, ge=10, le=300)

    @field_validator("sync", "evaluate", "daily_digest", "weekly_digest")
    @classmethod
    def _valid(cls, value: str) -> str:
        return _cron(value)


@dataclass(frozen=True)
class Job:
    name: str
    cron: str
    run: Callable[[], Any]
    grace: timedelta | None = None  # None: a missed run is always caught up (once)

    def trigger(self, tz: ZoneInfo) -> CronTrigger:
        return CronTrigger.from_crontab(self.cron, timezone=tz)


def missed_run(job: Job, tz: ZoneInfo, last: datetime | None, now: datetime) -> bool:
    """True when a scheduled time passed since ``last`` (within the job's grace, if any)."""
    trigger = job.trigger(tz)
    since = last or (now - (job.grace or timedelta(days=1)))
    due = trigger.get_next_fire_time(None, since + timedelta(seconds=1))
    if due is None or due > now:
        return False
    return job.grace is None or now - due <= job.grace


class JobRunner:
    """Runs a job only on the leader, and records every run in ``job_runs``."""

    def __init__(self, store: Store, lease: Lease, clock: Clock | None = None, *,
                 on_failure: Callable[[Job, KizunaError], None] | None = None) -> None:
        self.store = store
        self.lease = lease
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_failure = on_failure

    def last_finished(self, name: str) -> datetime | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.job_runs.c.finished_at, t.job_runs.c.status)
                               .where(t.job_runs.c.name == name)).first()
        return row.finished_at if row and row.status == "ok" else None

    def runs(self) -> dict[str, dict[str, Any]]:
        with self.store.engine.connect() as conn:
            return {r["name"]: dict(r) for r in conn.execute(select(t.job_runs)).mappings()}

    def _record(self, name: str, **values: Any) -> None:
        row = {"name": name, "holder": self.lease.holder, **values}
        with self.store.begin() as conn:
            insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
            stmt = insert(t.job_runs).values(**row)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["name"], set_={k: stmt.excluded[k] for k in row if k != "name"}))

    def run(self, job: Job) -> bool:
        """Run ``job`` if this process leads; False when it is a follower."""
        if not self.lease.acquire():
            log.debug("not the leader: skipping %s", job.name)
            return False
        self._record(job.name, started_at=self.clock(), finished_at=None, status="running",
                     error=None)
        try:
            job.run()
        except KizunaError as exc:
            log.error("job %s failed: %s", job.name, exc)
            self._record(job.name, started_at=self.clock(), finished_at=self.clock(),
                         status="failed", error=str(exc)[:2000])
            if self.on_failure is not None:
                self.on_failure(job, exc)
            return True
        self._record(job.name, started_at=self.clock(), finished_at=self.clock(), status="ok",
                     error=None)
        return True

    def catch_up(self, jobs: list[Job], tz: ZoneInfo) -> list[str]:
        """Run, once each, the jobs whose scheduled time passed while nobody was running them."""
        ran = []
        for job in jobs:
            if missed_run(job, tz, self.last_finished(job.name), self.clock()) and self.run(job):
                ran.append(job.name)
        return ran


def default_jobs(settings: ScheduleSettings, *, sync: Callable[[], Any],
                 evaluate: Callable[[], Any], daily_digest: Callable[[], Any] | None = None,
                 weekly_digest: Callable[[], Any] | None = None) -> list[Job]:
    grace = timedelta(minutes=settings.digest_grace_minutes)
    jobs = [Job("sync", settings.sync, sync), Job("evaluate", settings.evaluate, evaluate)]
    if daily_digest is not None:
        jobs.append(Job("daily_digest", settings.daily_digest, daily_digest, grace))
    if weekly_digest is not None:
        jobs.append(Job("weekly_digest", settings.weekly_digest, weekly_digest, grace))
    return jobs


def build_scheduler(jobs: list[Job], runner: JobRunner, tz: ZoneInfo) -> BackgroundScheduler:
    """A BackgroundScheduler with one cron job per ``Job``, each run through ``runner``."""
    scheduler = BackgroundScheduler(timezone=tz, job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 300})
    for job in jobs:
        scheduler.add_job(runner.run, job.trigger(tz), args=[job], id=job.name, name=job.name,
                          replace_existing=True)
    return scheduler
