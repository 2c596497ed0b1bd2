"""Scheduler wiring: time zones, catch-up after downtime, leader-only runs, recorded outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.errors import ConnectorError
from core.leader import Lease
from core.store import Store
from scheduler import Job, JobRunner, ScheduleSettings, build_scheduler, default_jobs, missed_run

TOKYO = ZoneInfo("Asia/Tokyo")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_triggers_use_the_team_time_zone() -> None:
    """'9–18 on weekdays' means Tokyo office hours whatever the server's zone."""
    job = Job("evaluate", ScheduleSettings().evaluate, lambda: None)
    sunday_night = datetime(2026, 11, 22, 23, 0, tzinfo=TOKYO)
    nxt = job.trigger(TOKYO).get_next_fire_time(None, sunday_night)
    assert nxt == datetime(2026, 11, 23, 9, 5, tzinfo=TOKYO)
    assert nxt.utcoffset() == timedelta(hours=9)


def test_bad_cron_is_a_config_error() -> None:
    """A malformed cron expression is rejected when the settings are read."""
    with pytest.raises(ValueError, match="cron"):
        ScheduleSettings(sync="every 15 minutes")


def test_catch_up_runs_once_after_downtime(any_store: Store) -> None:
    """Three hours down with a 15-minute sync: one catch-up run, not twelve."""
    clock = Clock(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    runner = JobRunner(any_store, Lease(any_store, holder="a", clock=clock), clock)
    calls: list[str] = []
    jobs = default_jobs(ScheduleSettings(), sync=lambda: calls.append("sync"),
                        evaluate=lambda: calls.append("evaluate"))
    clock.now -= timedelta(hours=3)
    runner.run(jobs[0])
    clock.now += timedelta(hours=3)
    assert runner.catch_up(jobs[:1], TOKYO) == ["sync"]
    assert runner.catch_up(jobs[:1], TOKYO) == []
    assert calls == ["sync", "sync"]


def test_late_digest_is_skipped_not_sent_hours_late(any_store: Store) -> None:
    """A digest whose time passed more than the grace ago is not sent on restart."""
    job = Job("daily_digest", "30 8 * * mon-fri", lambda: None, timedelta(hours=2))
    monday_noon = datetime(2026, 11, 23, 12, 0, tzinfo=TOKYO)
    assert not missed_run(job, TOKYO, None, monday_noon)
    assert missed_run(job, TOKYO, None, monday_noon - timedelta(hours=3))


def test_only_the_leader_runs_jobs(any_store: Store) -> None:
    """Two replicas: the follower skips the job while the leader runs it."""
    clock = Clock(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    leader = JobRunner(any_store, Lease(any_store, holder="a", clock=clock), clock)
    follower = JobRunner(any_store, Lease(any_store, holder="b", clock=clock), clock)
    calls: list[str] = []
    job = Job("sync", "*/15 * * * *", lambda: calls.append("run"))
    assert leader.run(job) and not follower.run(job)
    assert calls == ["run"]
    clock.now += timedelta(minutes=5)  # the leader died: its lease runs out
    assert follower.run(job)
    assert calls == ["run", "run"]
    assert follower.runs()["sync"]["holder"] == "b"


def test_failed_job_is_recorded_and_caught_up_later(any_store: Store) -> None:
    """A CRM outage marks the run failed; the next catch-up tries again."""
    clock = Clock(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    runner = JobRunner(any_store, Lease(any_store, holder="a", clock=clock), clock)

    def outage() -> None:
        raise ConnectorError("CRM down", connector="demo")

    job = Job("sync", "*/15 * * * *", outage)
    runner.run(job)
    assert runner.runs()["sync"]["status"] == "failed"
    assert "CRM down" in runner.runs()["sync"]["error"]
    assert runner.last_finished("sync") is None
    assert runner.catch_up([job], TOKYO) == ["sync"]


def test_scheduler_jobs_are_single_instance_and_coalesced(any_store: Store) -> None:
    """Every job gets the team zone, max_instances=1 and coalescing."""
    runner = JobRunner(any_store, Lease(any_store, holder="a"))
    jobs = default_jobs(ScheduleSettings(), sync=lambda: None, evaluate=lambda: None,
                        daily_digest=lambda: None, weekly_digest=lambda: None)
    scheduler = build_scheduler(jobs, runner, TOKYO)
    scheduler.start(paused=True)
    try:
        scheduled = {j.id: j for j in scheduler.get_jobs()}
        assert set(scheduled) == {"sync", "evaluate", "daily_digest", "weekly_digest"}
        for job in scheduled.values():
            assert job.trigger.timezone == TOKYO
            assert job.max_instances == 1 and job.coalesce
    finally:
        scheduler.shutdown(wait=False)


def test_failed_job_is_reported(any_store: Store) -> None:
    """A failing job calls the failure hook (the admin channel in `kizuna serve`)."""
    seen: list[tuple[str, str]] = []
    runner = JobRunner(any_store, Lease(any_store, holder="a"),
                       on_failure=lambda job, exc: seen.append((job.name, str(exc))))

    def outage() -> None:
        raise ConnectorError("REQUEST_LIMIT_EXCEEDED", connector="salesforce")

    runner.run(Job("sync", "*/15 * * * *", outage))
    assert seen == [("sync", "salesforce: REQUEST_LIMIT_EXCEEDED")]
