"""The ``slack:`` section of kizuna.yaml: where nudges go, how many, and when.

Validated once at start-up with ``settings.section("slack", SlackSettings)`` so a mistake is
reported as ``kizuna.yaml:LINE: slack.field: message``. Secrets (tokens, signing secret) are not
here: they come from the environment (``SLACK_BOT_TOKEN``, ``SLACK_SIGNING_SECRET``,
``SLACK_APP_TOKEN``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, field_validator, model_validator

from core.config import Settings, Strict

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock_time(value: object) -> object:
    """Accept ``"19:00"`` and also the integer YAML 1.1 makes of an unquoted ``19:00``."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    return value


LocalTime = Annotated[time, BeforeValidator(_clock_time)]


class QuietHours(Strict):
    """No individual nudges from ``start`` to ``end`` (local time; may wrap past midnight)."""

    start: LocalTime = time(19, 0)
    end: LocalTime = time(9, 0)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same; leave quiet_hours out to disable")
        return self

    def covers(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


class Team(Strict):
    """CSMs whose nudges go to one shared channel instead of direct messages."""

    name: str
    channel: str
    members: list[str] = Field(min_length=1)


class SlackSettings(Strict):
    """See docs/slack.md for every field."""

    fallback_channel: str | None = None   # nudges of owners with no Slack user
    admin_channel: str | None = None      # unmapped owners, rejected messages, failures
    manager_channel: str | None = None    # the weekly manager digest
    teams: list[Team] = Field(default_factory=list)
    users: dict[str, str] = Field(default_factory=dict)  # owner email → Slack user id
    daily_cap: int | None = Field(5, ge=1)  # individual nudges per CSM per day; null = no cap
    low_severity_to_digest: bool = True
    quiet_hours: QuietHours | None = QuietHours()
    work_days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    holidays: list[date] = Field(default_factory=list)
    lookup_retry_hours: float = Field(24, gt=0)  # re-ask Slack about an unknown email after

    @field_validator("users")
    @classmethod
    def _user_ids(cls, users: dict[str, str]) -> dict[str, str]:
        for email, user in users.items():
            if user[:1] not in ("U", "W"):
                raise ValueError(f"{email}: {user!r} is not a Slack user id (U… or W…)")
        return {email.lower(): user for email, user in users.items()}


def slack_settings(settings: Settings) -> SlackSettings:
    return settings.section("slack", SlackSettings)


class WorkingHours:
    """When a person may be messaged, in the team's time zone."""

    def __init__(self, slack: SlackSettings, tz: ZoneInfo) -> None:
        self.slack = slack
        self.tz = tz
        self.days = {WEEKDAYS.index(d) for d in slack.work_days}

    def working_day(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.slack.holidays

    def quiet(self, now: datetime) -> bool:
        """True at night, on weekends and holidays: nudges wait for the next working morning."""
        local = now.astimezone(self.tz)
        if not self.working_day(local.date()):
            return True
        hours = self.slack.quiet_hours
        return hours is not None and hours.covers(local.time())

    def next_opening(self, now: datetime) -> datetime:
        """The first moment at or after ``now`` that is not quiet (to tell people when)."""
        local = now.astimezone(self.tz).replace(second=0, microsecond=0)
        hours = self.slack.quiet_hours
        for _ in range(60 * 24 * 15 // 30):
            if not self.quiet(local):
                return local
            if hours is not None and hours.covers(local.time()):
                local = datetime.combine(local.date(), hours.end, self.tz)
                if local.astimezone(self.tz) < now.astimezone(self.tz):
                    local += timedelta(days=1)
                continue
            local = datetime.combine(local.date() + timedelta(days=1),
                                     hours.end if hours else time(0), self.tz)
        return local
