"""The domain model: small frozen records that connectors produce and everything else consumes.

Connectors convert vendor records into these; playbooks, the store and the bot see nothing else.
Times are timezone-aware (UTC when they come from a CRM); dates are calendar dates.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

LANGUAGES = ("ja", "en")


class ActivityKind(enum.StrEnum):
    """What kind of touch an activity was. QBR is a meeting recognised as a quarterly review."""

    EMAIL = "email"
    CALL = "call"
    MEETING = "meeting"
    QBR = "qbr"
    NOTE = "note"
    TASK = "task"


#: Activities that count as meaningful contact with the customer (notes and tasks do not).
CONTACT_KINDS = frozenset({ActivityKind.EMAIL, ActivityKind.CALL, ActivityKind.MEETING,
                           ActivityKind.QBR})


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class PlayState(enum.StrEnum):
    """Where a play stands. ``open`` and ``snoozed`` are active; the rest are ended."""

    OPEN = "open"
    SNOOZED = "snoozed"
    DONE = "done"          # the CSM handled it
    DISMISSED = "dismissed"  # the CSM marked it "not useful"
    CLOSED = "closed"      # its condition cleared by itself

    @property
    def active(self) -> bool:
        return self in (PlayState.OPEN, PlayState.SNOOZED)


class StepState(enum.StrEnum):
    """Delivery state of one side effect of a play (CRM task, Slack nudge)."""

    PENDING = "pending"
    DONE = "done"
    COMPLETED = "completed"  # a CRM task Kizuna also completed when its play closed itself
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Account:
    """A customer company as the CRM knows it."""

    source: str
    crm_id: str
    name: str
    owner_email: str | None = None
    potential: float | None = None          # e.g. annual web/marketing budget
    arr: float | None = None
    mrr: float | None = None
    contract_start: date | None = None
    renewal_date: date | None = None
    lifecycle_stage: str | None = None
    language: str = "ja"
    plan_limit: float | None = None          # usage allowance of the account's plan
    industry: str | None = None
    custom: Mapping[str, Any] = field(default_factory=dict)
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    source: str
    crm_id: str
    account_id: str
    name: str
    email: str | None = None
    title: str | None = None
    is_primary: bool = False
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    """A touch on an account: email, call, meeting, QBR, note or task."""

    source: str
    crm_id: str
    account_id: str
    kind: ActivityKind
    occurred_at: datetime
    owner_email: str | None = None
    subject: str | None = None
    modified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """The value of a metric for the window that ends on ``period`` (e.g. the month's last day).

    A CRM that keeps only the current value yields one point per sync day, so history builds up
    in the store and drops can be measured anyway.
    """

    account_id: str
    metric: str
    period: date
    value: float


@dataclass(frozen=True, slots=True)
class Play:
    """One firing of a playbook for one account, with why it fired."""

    key: str
    ref: str
    playbook_id: str
    variant: str | None
    source: str
    account_id: str
    episode: int
    severity: Severity
    state: PlayState
    opened_on: date
    due_on: date
    title: Mapping[str, str]
    reason: Mapping[str, str]
    evidence: Mapping[str, Any]
    closed_on: date | None = None
    snoozed_until: date | None = None
    task_state: StepState = StepState.PENDING
    task_id: str | None = None
    nudge_state: StepState = StepState.PENDING


@dataclass(frozen=True, slots=True)
class CrmTask:
    """A task Kizuna asks the CRM to create for the owning CSM.

    ``ref`` is the play's short deterministic reference; connectors write it into the task so a
    retried creation finds the first one instead of making a second.
    """

    ref: str
    account_id: str
    owner_email: str | None
    subject: str
    body: str
    due_on: date
    priority: Severity
    language: str


@dataclass(frozen=True, slots=True)
class EmailDraft:
    play_key: str
    account_id: str
    language: str
    to_name: str | None
    to_email: str | None
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class AccountSignals:
    """What the store knows about one account at evaluation time: the input to scoring.

    ``usage`` holds the recent points of the usage metric, oldest first; ``metrics`` the latest
    value of every other metric; the health fields come from earlier evaluations.
    """

    account: Account
    last_contact_at: datetime | None
    last_qbr_at: datetime | None
    usage: tuple[tuple[date, float], ...]
    metrics: Mapping[str, float]
    previous_health: float | None
    peak_health_14d: float | None


Record = Account | Contact | Activity | MetricPoint


@dataclass(frozen=True, slots=True)
class SyncBatch:
    """A slice of one CRM stream, as a connector yields it during a pull.

    ``stream`` names the cursor (e.g. ``Account``, ``Task``); ``deleted`` lists CRM ids that were
    deleted or archived, by kind (``accounts``, ``contacts``, ``activities``); ``cursor`` is the
    stream's new bookmark once this batch is applied.
    """

    stream: str
    records: tuple[Record, ...] = ()
    deleted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cursor: str | None = None
