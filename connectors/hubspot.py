"""The HubSpot connector: bulk and incremental reads of a portal, idempotent task writes.

Reads, in the fewest calls HubSpot allows:

- **First sync** (no cursor): list endpoints, 100 records a page, asking only for the mapped
  properties and — for contacts, deals and engagements — their company associations in the same
  call (``associations=companies``). A portal of N companies costs about ⌈N/100⌉ calls per object.
- **Later syncs**: the search API on ``hs_lastmodifieddate`` (``lastmodifieddate`` for contacts),
  sorted ascending, 200 a page. Every page restarts the search from the last timestamp it saw
  (keyset paging) instead of paging with ``after``, so no query ever reaches the search API's
  10,000-result cap and a record edited mid-sync is not skipped. More than a page of records
  modified in the very same millisecond is walked by ``hs_object_id``. Search results carry no
  associations, so changed records get theirs from one v4 batch read per page.
- Owners are read once (cached) to turn ``hubspot_owner_id`` into the CSM's email.
- Archived companies are listed with ``archived=true`` (at most every ``archived_check_minutes``,
  default 15, since that list cannot be filtered by date) and become deletions, so they stop
  getting nudges.
- Usage metrics are company properties holding a current value; once a day every company's
  values are read again so the store gets one point per day even when a value did not change.

Writes: ``create_task`` writes the play's ref into the task subject (and into a task property
when one is configured) and searches for it before creating, so a crash after HubSpot accepted a
task and before the ledger recorded it does not create a second one on the next run.

Rate limits: a client-side limiter keeps requests under the burst window (100 per 10 s by
default) and searches under the search API's per-second limit; urllib3's own silent retries are
switched off so that only ``RetryPolicy`` retries (429 honouring ``Retry-After``, 5xx, dropped
connections), within a bounded total wait. 401 fails at once with ``AuthError``.

See docs/hubspot.md for set-up and every kizuna.yaml key.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import ApiException as AssociationsApiException
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.objects import ApiException as ObjectsApiException
from hubspot.crm.objects import (
    AssociationSpec,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicAssociationsForObject,
    PublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.owners import ApiException as OwnersApiException
from hubspot.crm.properties import ApiException as PropertiesApiException
from pydantic import Field, field_validator, model_validator
from urllib3.util.retry import Retry

from connectors.retry import RetryPolicy
from core.config import Settings, Strict
from core.domain import (
    Account,
    Activity,
    ActivityKind,
    Contact,
    CrmTask,
    MetricPoint,
    Record,
    Severity,
    SyncBatch,
)
from core.errors import (
    AuthError,
    ConfigError,
    ConfigErrors,
    FatalAPIError,
    RetriableAPIError,
)
from core.yamlfile import YamlDocument

log = logging.getLogger(__name__)

SOURCE = "hubspot"
DEFAULT_BASE_URL = "https://api.hubapi.com"
LIST_PAGE = 100           # list endpoints return at most 100 records a page
SEARCH_PAGE = 200         # search pages hold at most 200
BATCH_READ = 100          # batch read takes 100 ids
ASSOCIATION_BATCH = 1000  # v4 association batch read takes 1,000 ids
OWNERS_PAGE = 500
TASK_TO_COMPANY = 192     # HUBSPOT_DEFINED association type: task → company
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_API_ERRORS = (ObjectsApiException, OwnersApiException, PropertiesApiException,
               AssociationsApiException)
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_TAGS = re.compile(r"<[^>]+>")


# -- kizuna.yaml `hubspot:` -----------------------------------------------------------------------

class CompanyProperties(Strict):
    """Kizuna account field → the HubSpot company property (internal name) it is read from.

    Defaults are standard HubSpot properties; ``None`` leaves the field empty. A property written
    here explicitly must exist in the portal (checked at start-up); a default the portal lacks is
    skipped with a warning.
    """

    name: str = "name"
    owner: str = "hubspot_owner_id"
    lifecycle_stage: str | None = "lifecyclestage"
    industry: str | None = "industry"
    language: str | None = None        # values starting "ja"/"en"; else guessed from the name
    potential: str | None = None       # e.g. a custom "annual web budget" number property
    arr: str | None = None
    mrr: str | None = None
    plan_limit: str | None = None
    contract_start: str | None = None  # a date property
    #: Account.custom key → property; default {goal.target_field: same name} when it exists.
    custom: dict[str, str] | None = None


class Renewals(Strict):
    """Where an account's renewal date comes from.

    ``deals``: the earliest close date among the company's open deals that match ``pipeline``,
    ``stages`` and ``deal_type`` (each ``None``/empty = any). A deal is closed when HubSpot says
    so (``hs_is_closed``) or its stage is in ``closed_stages``. ``company_property``: a date
    property of the company. ``none``: no renewal dates.
    """

    source: Literal["deals", "company_property", "none"] = "deals"
    company_property: str | None = None
    pipeline: str | None = None
    stages: list[str] = Field(default_factory=list)
    closed_stages: list[str] = Field(default_factory=lambda: ["closedwon", "closedlost"])
    deal_type: str | None = None

    @model_validator(mode="after")
    def _property_named(self) -> Renewals:
        if self.source == "company_property" and not self.company_property:
            raise ValueError("company_property is required when source is company_property")
        return self


class TaskSettings(Strict):
    """How Kizuna writes tasks."""

    ref_property: str | None = None   # a text task property that holds the play ref (optional)
    due_hour: int = Field(9, ge=0, le=23)  # due time on the due date, in the team's time zone
    #: after a create whose outcome is unknown (timeout, 5xx), wait this long for HubSpot's
    #: search index before looking for the task again
    search_delay_seconds: float = Field(10.0, ge=0)


class Limits(Strict):
    """Client-side pacing and retry bounds (HubSpot's limits for private apps by default)."""

    requests_per_10s: int = Field(100, gt=0)
    searches_per_second: int = Field(4, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    retry_attempts: int = Field(5, ge=1)
    max_retry_wait_seconds: float = Field(120.0, ge=0)


class HubSpotSettings(Strict):
    """The ``hubspot:`` section of kizuna.yaml. Every field has a documented default."""

    companies: CompanyProperties = CompanyProperties()
    #: metric name → company property with its current value; default
    #: {usage.metric: same name} when the portal has such a property
    metrics: dict[str, str] | None = None
    renewals: Renewals = Renewals()
    qbr_pattern: str | None = None     # default: activities.qbr_pattern
    tasks: TaskSettings = TaskSettings()
    limits: Limits = Limits()
    #: re-read changes this many seconds before the stored cursor (search index lag insurance)
    overlap_seconds: float = Field(0.0, ge=0)
    #: archived companies have no modified-date filter: list them at most this often
    archived_check_minutes: float = Field(15.0, ge=0)

    @field_validator("qbr_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


# -- rate limiting ------------------------------------------------------------------------------

class RateWindow:
    """At most ``limit`` requests in any rolling ``window`` seconds; ``acquire`` waits for a slot.

    A small pad is kept on the window because the server counts arrival, not departure.
    """

    PAD = 0.1

    def __init__(self, limit: int, window: float, timer: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self.limit = limit
        self.window = window
        self.timer = timer
        self.sleep = sleep
        self.sent: deque[float] = deque()
        self.waited = 0.0

    def acquire(self) -> None:
        while True:
            now = self.timer()
            while self.sent and self._frees_at(self.sent[0]) <= now:
                self.sent.popleft()
            if len(self.sent) < self.limit:
                self.sent.append(now)
                return
            # Never a zero pause: rounding must not turn this into a busy loop.
            pause = max(self._frees_at(self.sent[0]) - now, 0.001)
            self.waited += pause
            self.sleep(pause)

    def _frees_at(self, sent: float) -> float:
        return sent + self.window + self.PAD


# -- the API client -------------------------------------------------------------------------------

class _Retriable(RetriableAPIError):
    """A retriable failure that remembers the HTTP status (None for a dropped connection)."""

    def __init__(self, message: str, *, status: int | None, retry_after: float | None = None,
                 detail: str | None = None) -> None:
        self.status = status
        super().__init__(message, connector=SOURCE, retry_after=retry_after, detail=detail)


class _Fatal(FatalAPIError):
    """A failure retrying will not fix, with its HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(message, connector=SOURCE)


@dataclass
class _Row:
    """One HubSpot record, reduced to what the connector reads."""

    id: str
    props: dict[str, Any]
    companies: list[str] = field(default_factory=list)  # associated company ids, primary first
    archived_at: datetime | None = None
    listed_associations: bool = False  # the record came with an ``associations`` block


class HubSpotAPI:
    """hubspot-api-client with our pacing, counting, error mapping and retry policy.

    The API objects are built once: each owns a urllib3 pool. urllib3 is told not to retry
    (``Retry(0)``): with the library's default it silently re-sends GETs on 429/503 and sleeps.
    """

    def __init__(self, access_token: str, base_url: str, limits: Limits, *,
                 timer: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        client = HubSpot(access_token=access_token, host=base_url.rstrip("/"),
                         retry=Retry(0, respect_retry_after_header=False, raise_on_status=False))
        crm = client.crm
        self.objects = crm.objects.basic_api
        self.batch = crm.objects.batch_api
        self.searches = crm.objects.search_api
        self.owners = crm.owners.owners_api
        self.properties = crm.properties.core_api
        self.associations = crm.associations.v4.batch_api
        self.timeout = (min(10.0, limits.timeout_seconds), limits.timeout_seconds)
        self.retry = RetryPolicy(attempts=limits.retry_attempts,
                                 max_total_wait=limits.max_retry_wait_seconds, sleep=sleep)
        self.burst = RateWindow(limits.requests_per_10s, 10.0, timer, sleep)
        self.search_window = RateWindow(limits.searches_per_second, 1.0, timer, sleep)
        #: a per-second window, only once HubSpot reports one (X-HubSpot-RateLimit-Secondly)
        self.secondly: RateWindow | None = None
        self._timer, self._sleep = timer, sleep
        self._lock = threading.Lock()
        self.calls = 0
        self.search_calls = 0
        self.rate_limited = 0
        self.headroom: dict[str, int] = {}

    # one request ---------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[..., Any], *args: Any, search: bool = False,
             retry: bool = True, **kwargs: Any) -> dict[str, Any]:
        """Send one request through the client library and return the JSON body.

        Bodies are read as JSON rather than as the library's models: its model layer parses
        every timestamp with dateutil, which costs more than the request itself on big pulls.
        """
        def once() -> dict[str, Any]:
            with self._lock:
                if search:
                    self.search_window.acquire()
                self.burst.acquire()
                if self.secondly is not None:
                    self.secondly.acquire()
                self.calls += 1
                self.search_calls += search
            try:
                response = fn(*args, _request_timeout=self.timeout, _preload_content=False,
                              **kwargs)
                try:
                    raw = response.data
                finally:
                    response.release_conn()
            except _API_ERRORS as exc:
                self._note(getattr(exc, "headers", None))
                raise self._error(what, exc) from None
            except urllib3.exceptions.HTTPError as exc:
                reason = getattr(exc, "reason", None) or exc
                raise _Retriable(f"{what}: no answer from HubSpot ({reason})",
                                 status=None) from None
            self._note(response.headers)
            return _parse_json(raw, what)
        return self.retry.run(once) if retry else once()

    def _note(self, headers: Mapping[str, str] | None) -> None:
        """Keep the rate-limit headroom HubSpot reports, and adopt a lower burst limit."""
        if not headers:
            return
        for key, header in (("ratelimit_remaining", "X-HubSpot-RateLimit-Remaining"),
                            ("ratelimit_max", "X-HubSpot-RateLimit-Max"),
                            ("daily_remaining", "X-HubSpot-RateLimit-Daily-Remaining"),
                            ("interval_ms", "X-HubSpot-RateLimit-Interval-Milliseconds"),
                            ("secondly", "X-HubSpot-RateLimit-Secondly")):
            value = _int(headers.get(header))
            if value is not None:
                self.headroom[key] = value
        limit, interval = self.headroom.get("ratelimit_max"), self.headroom.get("interval_ms")
        with self._lock:
            if limit and 0 < limit < self.burst.limit:
                self.burst.limit = limit
            if interval and interval / 1000 > self.burst.window:
                self.burst.window = interval / 1000
            secondly = self.headroom.pop("secondly", None)
            if secondly and secondly > 0:
                if self.secondly is None:
                    self.secondly = RateWindow(secondly, 1.0, self._timer, self._sleep)
                self.secondly.limit = min(self.secondly.limit, secondly)

    def _error(self, what: str, exc: Any) -> Exception:
        status = exc.status or 0
        body = _json_body(exc)
        message = str(body.get("message") or exc.reason or "no message")[:500]
        category = body.get("category") or body.get("errorType") or ""
        ref = body.get("correlationId")
        detail = f"{status} {category}".strip() + (f", correlation id {ref}" if ref else "")
        if status == 401:
            return AuthError(
                f"HubSpot rejected the access token ({detail}) on {what}. Set "
                "HUBSPOT_ACCESS_TOKEN to a valid private app access token for this portal.",
                connector=SOURCE)
        if status == 403:
            return FatalAPIError(
                f"{what} is not allowed for this token ({detail}): {message} — give the "
                "private app the CRM read scopes and crm.objects.*.write for tasks.",
                connector=SOURCE)
        if status == 429:
            self.rate_limited += 1
            if body.get("policyName") == "DAILY":
                return FatalAPIError(f"HubSpot's daily API limit is used up ({detail}); "
                                     f"{what} can run again after midnight (portal time).",
                                     connector=SOURCE)
            headers = getattr(exc, "headers", None) or {}
            return _Retriable(f"{what}: rate limited ({detail}): {message}", status=429,
                              retry_after=_retry_after(headers.get("Retry-After")))
        if status >= 500 or status == 0:
            return _Retriable(f"{what}: HubSpot error ({detail}): {message}", status=status)
        return _Fatal(f"{what} failed ({detail}): {message}", status=status)

    # reads -----------------------------------------------------------------------------------

    def list_all(self, object_type: str, properties: Sequence[str], *,
                 associations: Sequence[str] = (), archived: bool = False
                 ) -> Iterator[list[_Row]]:
        """Every record of a type, a page (100) at a time, with ``after`` paging."""
        after: str | None = None
        what = (f"GET /crm/v3/objects/{object_type}{'?archived=true' if archived else ''} "
                f"(properties: {', '.join(properties) or '-'})")
        while True:
            kwargs: dict[str, Any] = {"limit": LIST_PAGE, "properties": list(properties)}
            if archived:  # the documented form; the client would send "True"
                kwargs["archived"] = "true"
            if associations:
                kwargs["associations"] = list(associations)
            if after:
                kwargs["after"] = after
            page = self.call(what, self.objects.get_page, object_type, **kwargs)
            yield [_row(r) for r in _results(page)]
            after = _next_after(page)
            if not after:
                return

    def search(self, object_type: str, filters: Sequence[Filter], sort: str,
               properties: Sequence[str], limit: int = SEARCH_PAGE,
               groups: Sequence[Sequence[Filter]] | None = None) -> tuple[list[_Row], bool]:
        """One search page, and whether more results match (no ``after``: callers page by
        narrowing the filter)."""
        groups = groups if groups is not None else [filters]
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=list(g)) for g in groups],
            sorts=[{"propertyName": sort, "direction": "ASCENDING"}],
            properties=list(properties), limit=limit)
        what = (f"POST /crm/v3/objects/{object_type}/search (filters: "
                + " OR ".join(" AND ".join(f"{f.property_name} {f.operator} {f.value or ''}"
                                           .strip() for f in g) for g in groups) + ")")
        page = self.call(what, self.searches.do_search, object_type, request, search=True)
        rows = [_row(r) for r in _results(page)]
        total = _int(page.get("total"))
        more = bool(rows) and (_next_after(page) is not None
                               or (total is not None and total > len(rows)))
        return rows, more

    def read(self, object_type: str, ids: Sequence[str], properties: Sequence[str]
             ) -> list[_Row]:
        """Records by id, 100 per call; ids HubSpot no longer has are left out."""
        rows: list[_Row] = []
        what = f"POST /crm/v3/objects/{object_type}/batch/read"
        for chunk in _chunks(list(ids), BATCH_READ):
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in chunk],
                properties=list(properties), properties_with_history=[])
            page = self.call(what, self.batch.read, object_type, body)
            rows += [_row(r) for r in _results(page)]
        return rows

    def associated(self, from_type: str, to_type: str, ids: Sequence[str]
                   ) -> dict[str, list[str]]:
        """``{id: [associated ids, primary first]}`` by v4 batch reads (1,000 ids a call)."""
        out: dict[str, list[str]] = {}
        what = f"POST /crm/v4/associations/{from_type}/{to_type}/batch/read"
        pending = [(i, None) for i in dict.fromkeys(ids)]
        while pending:
            chunk, pending = pending[:ASSOCIATION_BATCH], pending[ASSOCIATION_BATCH:]
            body = BatchInputPublicFetchAssociationsBatchRequest(inputs=[
                PublicFetchAssociationsBatchRequest(id=i, after=a) for i, a in chunk])
            page = self.call(what, self.associations.get_page, from_type, to_type, body)
            for result in _results(page):
                source = str((result.get("from") or {}).get("id"))
                found = out.setdefault(source, [])
                for target in result.get("to") or []:
                    labels = [t.get("label") for t in target.get("associationTypes") or []]
                    entry = str(target.get("toObjectId"))
                    if entry in found:
                        continue
                    if "Primary" in labels:
                        found.insert(0, entry)
                    else:
                        found.append(entry)
                after = _next_after(result)
                if after:
                    pending.append((source, after))
        return out

    def owners_page(self, archived: bool) -> Iterator[dict[str, Any]]:
        after: str | None = None
        what = f"GET /crm/v3/owners{'?archived=true' if archived else ''}"
        while True:
            kwargs: dict[str, Any] = {"limit": OWNERS_PAGE}
            if archived:
                kwargs["archived"] = "true"
            if after:
                kwargs["after"] = after
            page = self.call(what, self.owners.get_page, **kwargs)
            yield from _results(page)
            after = _next_after(page)
            if not after:
                return

    def property_types(self, object_type: str) -> dict[str, str]:
        """``{property name: type}`` of one object type (one call)."""
        page = self.call(f"GET /crm/v3/properties/{object_type}", self.properties.get_all,
                         object_type)
        return {str(p.get("name")): str(p.get("type") or "string") for p in _results(page)}

    # writes ----------------------------------------------------------------------------------

    def create(self, object_type: str, properties: Mapping[str, str],
               associations: Sequence[PublicAssociationsForObject]) -> str:
        """One create; not retried here — the caller decides how to retry a write."""
        body = SimplePublicObjectInputForCreate(properties=dict(properties),
                                                associations=list(associations))
        created = self.call(f"POST /crm/v3/objects/{object_type}", self.objects.create,
                            object_type, body, retry=False)
        return str(created.get("id"))

    def update(self, object_type: str, object_id: str, properties: Mapping[str, str]) -> None:
        body = SimplePublicObjectInput(properties=dict(properties))
        self.call(f"PATCH /crm/v3/objects/{object_type}/{object_id}", self.objects.update,
                  object_type, object_id, body)


# -- what is read from each object ----------------------------------------------------------------

@dataclass(frozen=True)
class _Engagement:
    object_type: str
    singular: str
    kind: ActivityKind
    title: str                    # the property used as the activity's subject
    status: str | None = None     # outcome property; some values mean "did not happen"
    missed: frozenset[str] = frozenset()
    extra: tuple[str, ...] = ()


ENGAGEMENTS: tuple[_Engagement, ...] = (
    _Engagement("calls", "call", ActivityKind.CALL, "hs_call_title", "hs_call_status",
                frozenset({"BUSY", "CANCELED", "FAILED", "NO_ANSWER"})),
    _Engagement("meetings", "meeting", ActivityKind.MEETING, "hs_meeting_title",
                "hs_meeting_outcome", frozenset({"CANCELED", "NO_SHOW"}),
                ("hs_meeting_start_time",)),
    _Engagement("emails", "email", ActivityKind.EMAIL, "hs_email_subject", "hs_email_status",
                frozenset({"BOUNCED", "FAILED"})),
    _Engagement("notes", "note", ActivityKind.NOTE, "hs_note_body"),
    _Engagement("tasks", "task", ActivityKind.TASK, "hs_task_subject", "hs_task_status"),
)
CONTACT_PROPERTIES = ("firstname", "lastname", "email", "jobtitle", "associatedcompanyid")
MODIFIED = {"contacts": "lastmodifieddate"}   # every other object: hs_lastmodifieddate
_PRIORITY = {Severity.HIGH: "HIGH", Severity.MEDIUM: "MEDIUM", Severity.LOW: "LOW"}


def _modified_property(object_type: str) -> str:
    return MODIFIED.get(object_type, "hs_lastmodifieddate")


@dataclass
class _Schema:
    """The mapping as resolved against the portal's properties (``check``)."""

    companies: dict[str, str]          # Account field → property
    custom: dict[str, str]             # Account.custom key → property
    metrics: dict[str, str]            # metric → property
    types: dict[str, str]              # company property → HubSpot type
    renewal_deals: bool
    renewal_property: str | None
    deal_properties: tuple[str, ...] = ()

    def company_properties(self) -> list[str]:
        names = [*self.companies.values(), *self.custom.values(), *self.metrics.values()]
        if self.renewal_property:
            names.append(self.renewal_property)
        return list(dict.fromkeys([*names, "hs_lastmodifieddate"]))


# -- the connector --------------------------------------------------------------------------------

class HubSpotConnector:
    """Kizuna's connector for a HubSpot portal (see the module docstring)."""

    name = SOURCE

    def __init__(
        self, access_token: str, *, base_url: str = DEFAULT_BASE_URL,
        config: HubSpotSettings | None = None, timezone: str | ZoneInfo = "Asia/Tokyo",
        language: str = "ja", qbr_pattern: str = r"QBR|Quarterly|四半期|定例",
        default_metrics: Mapping[str, str] | None = None,
        default_custom: Mapping[str, str] | None = None,
        document: YamlDocument | None = None,
        clock: Callable[[], datetime] | None = None,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config or HubSpotSettings()
        self.api = HubSpotAPI(access_token, base_url, self.config.limits, timer=timer,
                              sleep=sleep)
        self.tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.language = language
        self.qbr = re.compile(self.config.qbr_pattern or qbr_pattern, re.IGNORECASE)
        self.default_metrics = dict(default_metrics or {})
        self.default_custom = dict(default_custom or {})
        self.document = document
        self.clock = clock or (lambda: datetime.now(UTC))
        self.schema: _Schema | None = None
        self._owner_email: dict[str, str] = {}
        self._owner_id: dict[str, str] = {}
        self._owners_loaded: set[bool] = set()   # which lists (active/archived) were read
        self._task_ids: dict[str, str] = {}      # ref → task id, created by this instance
        self._pull_start = (0, 0)                 # (calls, searches) when the last pull began
        self._pulled: dict[str, int] = {}

    # protocol --------------------------------------------------------------------------------

    def check(self) -> None:
        """Verify the token and that every mapped property exists (one call per object type)."""
        if self.schema is not None:
            return
        cfg = self.config
        errors: list[ConfigError] = []
        company_types = self._property_types("companies")
        fields = cfg.companies
        explicit = fields.model_fields_set
        companies: dict[str, str] = {}
        for name in CompanyProperties.model_fields:
            if name == "custom":
                continue
            prop = getattr(fields, name)
            if prop is None:
                continue
            if _has(company_types, prop):
                companies[name] = prop
            elif name in explicit:
                errors.append(self._missing("company", prop, ("companies", name)))
            else:
                log.warning("HubSpot company property %r (default for hubspot.companies.%s) "
                            "does not exist in this portal; leaving %s empty", prop, name, name)
        custom = self._resolve_map(fields.custom, self.default_custom, company_types,
                                   ("companies", "custom"), errors)
        metrics = self._resolve_map(cfg.metrics, self.default_metrics, company_types,
                                    ("metrics",), errors)
        renewals = cfg.renewals
        renewal_property = None
        if renewals.source == "company_property" and renewals.company_property:
            if _has(company_types, renewals.company_property):
                renewal_property = renewals.company_property
            else:
                errors.append(self._missing("company", renewals.company_property,
                                            ("renewals", "company_property")))
        deal_properties: tuple[str, ...] = ()
        renewal_deals = renewals.source == "deals"
        if renewal_deals:
            deal_types = self._property_types("deals")
            wanted = {"closedate": ("renewals", "source"), "dealstage": ("renewals", "source")}
            if renewals.pipeline:
                wanted["pipeline"] = ("renewals", "pipeline")
            if renewals.deal_type:
                wanted["dealtype"] = ("renewals", "deal_type")
            lacking = [prop for prop in wanted if not _has(deal_types, prop)]
            if lacking and not renewals.model_fields_set:
                log.warning("HubSpot deals lack %s here; renewal dates are left empty",
                            ", ".join(lacking))
                renewal_deals = False
            for prop in lacking if renewal_deals else ():
                errors.append(self._missing("deal", prop, wanted[prop]))
            deal_properties = (*wanted, *(["hs_is_closed"] if _has(deal_types, "hs_is_closed")
                                         else []))
        if cfg.tasks.ref_property:
            task_types = self._property_types("tasks")
            if not _has(task_types, cfg.tasks.ref_property):
                errors.append(self._missing("task", cfg.tasks.ref_property,
                                            ("tasks", "ref_property")))
        if errors:
            raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
        self.schema = _Schema(companies=companies, custom=custom, metrics=metrics,
                              types=company_types or {}, renewal_deals=renewal_deals,
                              renewal_property=renewal_property,
                              deal_properties=deal_properties)

    def pull(self, cursors: Mapping[str, str]) -> Iterator[SyncBatch]:
        """Yield everything changed since ``cursors``; every list/search call is counted."""
        self._pull_start = (self.api.calls, self.api.search_calls)
        self._pulled = {}
        self._forget_owners()   # read again (once) if this pull needs them: CSMs come and go
        self.check()
        schema = self.schema
        assert schema is not None
        self._pulled = dict.fromkeys(
            ["companies", "companies_archived", *(["deals"] if schema.renewal_deals else []),
             "contacts", *(e.object_type for e in ENGAGEMENTS)], 0)
        today = self.clock().astimezone(self.tz).date()
        since = {k: _cursor_ms(v) for k, v in cursors.items()}
        full = since.get("companies") is None or (
            schema.renewal_deals and since.get("deals") is None)
        if full:
            yield from self._all_companies(schema, today)
        else:
            yield from self._changed_companies(schema, since, today)
            snapshot = _cursor_day(cursors.get("usage"))
            if schema.metrics and (snapshot is None or snapshot < today):
                yield from self._usage_snapshot(schema, today)
        checked = since.get("companies_archived_checked")
        now_ms = int(self.clock().timestamp() * 1000)
        if full or checked is None or \
                now_ms - checked >= self.config.archived_check_minutes * 60_000:
            yield from self._archived_companies(since.get("companies_archived"))
            yield SyncBatch("companies_archived_checked", cursor=_cursor(now_ms))
        yield from self._contacts(since.get("contacts"))
        for engagement in ENGAGEMENTS:
            yield from self._engagements(engagement, since.get(engagement.object_type))

    def create_task(self, task: CrmTask) -> str:
        """Create the task once per ``task.ref``: look for it first, then create it.

        Retries go round both steps, and after a create whose outcome is unknown (a timeout or
        a 5xx: HubSpot may have saved it) the next look waits for the search index to catch up.
        """
        known = self._task_ids.get(task.ref)
        if known:
            return known
        self.check()
        properties = self._task_properties(task, self._owner_for(task.owner_email))

        def attempt() -> str:
            existing = self._find_task(task.ref, properties["hs_task_subject"])
            if existing is not None:
                log.info("task for %s already exists in HubSpot (%s)", task.ref, existing)
                return existing
            try:
                return self.api.create("tasks", properties, [
                    PublicAssociationsForObject(
                        to=PublicObjectId(id=task.account_id),
                        types=[AssociationSpec(association_category="HUBSPOT_DEFINED",
                                               association_type_id=TASK_TO_COMPANY)])])
            except _Retriable as exc:
                if exc.status == 429:
                    raise   # refused before it was processed: nothing was created
                raise _Retriable(str(exc), status=exc.status, retry_after=max(
                    exc.retry_after or 0.0, self.config.tasks.search_delay_seconds)) from None

        task_id = self.api.retry.run(attempt)
        self._task_ids[task.ref] = task_id
        return task_id

    def complete_task(self, task_id: str) -> None:
        """Mark a task completed; a task someone already deleted is left alone."""
        try:
            self.api.update("tasks", task_id, {"hs_task_status": "COMPLETED"})
        except _Fatal as exc:
            if exc.status != 404:
                raise
            log.info("task %s no longer exists in HubSpot; nothing to complete", task_id)

    def stats(self) -> Mapping[str, Any]:
        """Calls (and searches) of the last pull, calls in all, and HubSpot's last headroom."""
        calls, searches = self._pull_start
        out: dict[str, Any] = {
            "api_calls": self.api.calls - calls,
            "api_calls_total": self.api.calls,
            "search_calls": self.api.search_calls - searches,
        }
        if self._pulled:
            out["records"] = dict(self._pulled)
        if self.api.rate_limited:
            out["rate_limited"] = self.api.rate_limited
        headroom = self.api.headroom
        if "ratelimit_remaining" in headroom:
            out["ratelimit_remaining"] = headroom["ratelimit_remaining"]
        if "ratelimit_max" in headroom:
            out["ratelimit_max"] = headroom["ratelimit_max"]
        if "daily_remaining" in headroom:
            out["daily_remaining"] = headroom["daily_remaining"]
        return out

    # configuration helpers -------------------------------------------------------------------

    def _missing(self, object_name: str, prop: str, loc: tuple[str, ...]) -> ConfigError:
        key = ".".join(("hubspot", *loc))
        message = (f"the HubSpot {object_name} property {prop!r} does not exist in this portal; "
                   f"create it in HubSpot or change {key} in kizuna.yaml")
        if self.document is not None:
            return self.document.error(message, ("hubspot", *loc))
        return ConfigError(message, file="kizuna.yaml", field=key)

    def _property_types(self, object_type: str) -> dict[str, str] | None:
        """The portal's properties of one type, or None when it will not list them (a token
        without the schema scope, a server without the properties API): then the mapping is
        used unverified rather than refusing to start."""
        try:
            return self.api.property_types(object_type)
        except _Fatal as exc:
            if exc.status not in (403, 404, 405):
                raise
            log.warning("cannot list HubSpot %s properties (%s); the kizuna.yaml mapping is "
                        "used without checking it", object_type, exc)
            return None

    def _resolve_map(self, configured: Mapping[str, str] | None, default: Mapping[str, str],
                     types: Mapping[str, str] | None, loc: tuple[str, ...],
                     errors: list[ConfigError]) -> dict[str, str]:
        if configured is None:   # defaults are used only where the portal has them
            return {k: v for k, v in default.items() if _has(types, v)}
        out = {}
        for key, prop in configured.items():
            if _has(types, prop):
                out[key] = prop
            else:
                errors.append(self._missing("company", prop, (*loc, key)))
        return out

    # companies -------------------------------------------------------------------------------

    def _all_companies(self, schema: _Schema, today: date) -> Iterator[SyncBatch]:
        renewals: dict[str, date] = {}
        if schema.renewal_deals:
            newest = None
            deals: dict[str, list[_Row]] = {}
            for page in self.api.list_all("deals", [*schema.deal_properties,
                                                    "hs_lastmodifieddate"],
                                          associations=["companies"]):
                page = self._with_companies("deals", page)
                for deal in page:
                    newest = _later_ms(newest, deal, "deals")
                    for company in deal.companies:
                        deals.setdefault(company, []).append(deal)
                self._count("deals", len(page))
            renewals = {c: d for c, rows in deals.items()
                        if (d := self._renewal_date(rows)) is not None}
            yield SyncBatch("deals", cursor=_cursor(newest))
        newest = None
        for page in self.api.list_all("companies", schema.company_properties()):
            records: list[Record] = []
            for row in page:
                newest = _later_ms(newest, row, "companies")
                records += self._account_records(schema, row, renewals, today)
            self._count("companies", len(page))
            yield SyncBatch("companies", tuple(records))
        yield SyncBatch("companies", cursor=_cursor(newest))
        if schema.metrics:
            yield SyncBatch("usage", cursor=today.isoformat())

    def _changed_companies(self, schema: _Schema, since: Mapping[str, int | None],
                           today: date) -> Iterator[SyncBatch]:
        """Companies changed since the cursor, plus those whose renewal deals changed."""
        changed: dict[str, _Row] = {}
        newest_company = since["companies"]
        for page in self._changes("companies", schema.company_properties(),
                                  since["companies"]):
            for row in page:
                changed[row.id] = row
                newest_company = max(newest_company or 0, _modified(row, "companies") or 0)
        renewals: dict[str, date] = {}
        deal_cursor = since.get("deals")
        if schema.renewal_deals:
            touched: list[str] = []
            for page in self._changes("deals", ("hs_lastmodifieddate",), since["deals"]):
                touched += [d.id for d in page]
                deal_cursor = max(deal_cursor or 0, *(_modified(d, "deals") or 0 for d in page))
                self._count("deals", len(page))
            linked = self.api.associated("deals", "companies", touched) if touched else {}
            affected = {c for companies in linked.values() for c in companies}
            stale = sorted(affected - changed.keys())
            for row in self.api.read("companies", stale, schema.company_properties()):
                changed[row.id] = row
            if changed:
                renewals = self._renewals_of(schema, list(changed))
        records: list[Record] = []
        for row in changed.values():
            records += self._account_records(schema, row, renewals, today)
            if len(records) >= 500:
                yield SyncBatch("companies", tuple(records))
                records = []
        self._count("companies", len(changed))
        yield SyncBatch("companies", tuple(records), cursor=_cursor(newest_company))
        if schema.renewal_deals:
            yield SyncBatch("deals", cursor=_cursor(deal_cursor))

    def _renewals_of(self, schema: _Schema, company_ids: list[str]) -> dict[str, date]:
        """Renewal dates of some companies, from all their deals (v4 batch + batch read)."""
        linked = self.api.associated("companies", "deals", company_ids)
        deal_ids = sorted({d for ids in linked.values() for d in ids})
        deals = {d.id: d for d in self.api.read("deals", deal_ids, schema.deal_properties)}
        out = {}
        for company, ids in linked.items():
            renewal = self._renewal_date([deals[i] for i in ids if i in deals])
            if renewal is not None:
                out[company] = renewal
        return out

    def _renewal_date(self, deals: Iterable[_Row]) -> date | None:
        rule = self.config.renewals
        dates = []
        for deal in deals:
            p = deal.props
            stage = p.get("dealstage")
            if str(p.get("hs_is_closed") or "").lower() == "true" or stage in rule.closed_stages:
                continue
            if rule.pipeline and p.get("pipeline") != rule.pipeline:
                continue
            if rule.stages and stage not in rule.stages:
                continue
            if rule.deal_type and p.get("dealtype") != rule.deal_type:
                continue
            close = self._date(p.get("closedate"), "datetime")
            if close is not None:
                dates.append(close)
        return min(dates) if dates else None

    def _usage_snapshot(self, schema: _Schema, today: date) -> Iterator[SyncBatch]:
        """Today's value of every usage metric for every company (once a day)."""
        for page in self.api.list_all("companies", list(schema.metrics.values())):
            points = [p for row in page for p in self._metric_points(schema, row, today)]
            yield SyncBatch("usage", tuple(points))
        yield SyncBatch("usage", cursor=today.isoformat())

    def _archived_companies(self, since: int | None) -> Iterator[SyncBatch]:
        """Companies archived (deleted) in HubSpot since the last sync become deletions."""
        newest = since
        for page in self.api.list_all("companies", ["hs_object_id"], archived=True):
            gone = []
            for row in page:
                at = _ms(row.archived_at)
                if since is None or at is None or at > since:
                    gone.append(row.id)
                if at is not None:
                    newest = max(newest or 0, at)
            if gone:
                self._count("companies_archived", len(gone))
                yield SyncBatch("companies_archived", deleted={"accounts": tuple(gone)})
        yield SyncBatch("companies_archived", cursor=_cursor(newest))

    def _account_records(self, schema: _Schema, row: _Row, renewals: Mapping[str, date],
                         today: date) -> list[Record]:
        m, p = schema.companies, row.props

        def text(field_name: str, limit: int) -> str | None:
            prop = m.get(field_name)
            value = p.get(prop) if prop else None
            return str(value)[:limit] if value not in (None, "") else None

        def number(field_name: str) -> float | None:
            prop = m.get(field_name)
            return _float(p.get(prop)) if prop else None

        name = text("name", 255) or p.get("domain") or f"HubSpot company {row.id}"
        renewal = renewals.get(row.id)
        if schema.renewal_property:
            renewal = self._date(p.get(schema.renewal_property),
                                 schema.types.get(schema.renewal_property, "date"))
        contract = m.get("contract_start")
        account = Account(
            source=SOURCE, crm_id=row.id, name=name,
            owner_email=self._owner(p.get(m["owner"])) if "owner" in m else None,
            potential=number("potential"), arr=number("arr"), mrr=number("mrr"),
            contract_start=self._date(p.get(contract), schema.types.get(contract or "", "date"))
            if contract else None,
            renewal_date=renewal, lifecycle_stage=text("lifecycle_stage", 64),
            language=self._language(text("language", 32), name),
            plan_limit=number("plan_limit"), industry=text("industry", 128),
            custom={k: self._custom(p.get(prop), schema.types.get(prop, "unknown"))
                    for k, prop in schema.custom.items() if p.get(prop) not in (None, "")},
            modified_at=_datetime(_modified(row, "companies")))
        return [account, *self._metric_points(schema, row, today)]

    def _metric_points(self, schema: _Schema, row: _Row, today: date) -> list[MetricPoint]:
        points = []
        for metric, prop in schema.metrics.items():
            value = _float(row.props.get(prop))
            if value is not None:
                points.append(MetricPoint(row.id, metric, today, value))
        return points

    def _language(self, value: str | None, name: str) -> str:
        if value:
            lowered = value.lower()
            if lowered.startswith(("ja", "日本")):
                return "ja"
            if lowered.startswith("en"):
                return "en"
        return "ja" if _JAPANESE.search(name) else self.language

    def _date(self, value: Any, kind: str) -> date | None:
        """A HubSpot date (midnight UTC) or datetime (read in the team's time zone)."""
        if value in (None, ""):
            return None
        text = str(value).strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        ms = _ms(text)
        if ms is None:
            return None
        moment = _datetime(ms)
        assert moment is not None
        return moment.date() if kind == "date" else moment.astimezone(self.tz).date()

    def _custom(self, value: Any, kind: str) -> Any:
        if kind == "number":
            return _float(value)
        if kind == "bool":
            return str(value).lower() == "true"
        if kind in ("date", "datetime"):
            day = self._date(value, kind)
            return day.isoformat() if day else None
        if kind == "unknown" and _float(value) is not None:
            return _float(value)
        return str(value)

    # contacts and engagements ----------------------------------------------------------------

    def _contacts(self, since: int | None) -> Iterator[SyncBatch]:
        newest = since
        for page in self._pages("contacts", CONTACT_PROPERTIES, since):
            records = []
            for row in page:
                newest = _later_ms(newest, row, "contacts")
                company = row.props.get("associatedcompanyid") or next(iter(row.companies), None)
                if not company:
                    continue
                records.append(Contact(
                    source=SOURCE, crm_id=row.id, account_id=str(company),
                    name=_person(row.props)[:255],
                    email=(row.props.get("email") or None) and str(row.props["email"])[:255],
                    title=(row.props.get("jobtitle") or None) and str(row.props["jobtitle"])[:255],
                    modified_at=_datetime(_modified(row, "contacts"))))
            self._count("contacts", len(page))
            yield SyncBatch("contacts", tuple(records))
        yield SyncBatch("contacts", cursor=_cursor(newest))

    def _engagements(self, kind: _Engagement, since: int | None) -> Iterator[SyncBatch]:
        newest = since
        props = ("hs_timestamp", "hubspot_owner_id", kind.title, *kind.extra,
                 *([kind.status] if kind.status else []))
        for page in self._pages(kind.object_type, props, since):
            records = []
            for row in page:
                newest = _later_ms(newest, row, kind.object_type)
                activity = self._activity(kind, row)
                if activity is not None:
                    records.append(activity)
            self._count(kind.object_type, len(page))
            yield SyncBatch(kind.object_type, tuple(records))
        yield SyncBatch(kind.object_type, cursor=_cursor(newest))

    def _activity(self, kind: _Engagement, row: _Row) -> Activity | None:
        if not row.companies:
            return None
        p = row.props
        at = _datetime(_ms(p.get("hs_meeting_start_time")) or _ms(p.get("hs_timestamp"))
                       or _ms(p.get("hs_createdate")) or _modified(row, kind.object_type))
        if at is None:
            return None
        subject = p.get(kind.title) or None
        if kind.kind is ActivityKind.NOTE and subject:
            subject = " ".join(html.unescape(_TAGS.sub(" ", str(subject))).split())[:200]
        activity_kind = kind.kind
        if kind.status and str(p.get(kind.status) or "").upper() in kind.missed:
            activity_kind = ActivityKind.NOTE   # an attempt that did not reach the customer
        elif kind.kind in (ActivityKind.MEETING, ActivityKind.CALL) and subject and \
                self.qbr.search(str(subject)):
            activity_kind = ActivityKind.QBR
        return Activity(source=SOURCE, crm_id=f"{kind.singular}:{row.id}",
                        account_id=row.companies[0], kind=activity_kind, occurred_at=at,
                        owner_email=self._owner(p.get("hubspot_owner_id")),
                        subject=str(subject)[:500] if subject else None,
                        modified_at=_datetime(_modified(row, kind.object_type)))

    def _pages(self, object_type: str, properties: Sequence[str], since: int | None
               ) -> Iterator[list[_Row]]:
        """Full list (with company associations) or changed records (associations via v4)."""
        if since is None:
            for page in self.api.list_all(object_type,
                                          [*properties, _modified_property(object_type)],
                                          associations=["companies"]):
                yield self._with_companies(object_type, page)
            return
        for page in self._changes(object_type, properties, since):
            missing = [r.id for r in page if not r.props.get("associatedcompanyid")]
            linked = self.api.associated(object_type, "companies", missing) if missing else {}
            for row in page:
                row.companies = linked.get(row.id, [])
            yield page

    def _with_companies(self, object_type: str, page: list[_Row]) -> list[_Row]:
        """A listed page whose records came back with no ``associations`` at all (a server that
        ignores the parameter, or a page of unassociated records) gets one v4 batch read."""
        if page and not any(r.listed_associations for r in page):
            linked = self.api.associated(object_type, "companies", [r.id for r in page])
            for row in page:
                row.companies = linked.get(row.id, [])
        return page

    # incremental search ----------------------------------------------------------------------

    def _changes(self, object_type: str, properties: Sequence[str], since: int | None
                 ) -> Iterator[list[_Row]]:
        """Records modified after ``since`` (ms), oldest first, 200 a call, keyset-paged.

        Each call restarts the search at the last modification time seen, so no query pages
        with ``after`` and none reaches the 10,000-result cap. Records seen at that exact time
        are dropped from the next page; a full page sharing one time is walked by id.
        """
        prop = _modified_property(object_type)
        wanted = list(dict.fromkeys([*properties, prop]))
        lower = (since or 0) + 1 - round(self.config.overlap_seconds * 1000)
        seen: set[str] = set()
        while True:
            rows, more = self.api.search(object_type, [
                Filter(property_name=prop, operator="GTE", value=str(lower))], prop, wanted)
            fresh = [r for r in rows if r.id not in seen]
            if fresh:
                yield fresh
            if not more:
                return
            times = [_modified(r, object_type) for r in rows]
            last = times[-1]
            if last is None or last < lower or any(t is None or t > last for t in times):
                # Keyset paging needs the filter and the sort honoured; never guess.
                raise FatalAPIError(
                    f"POST /crm/v3/objects/{object_type}/search returned records outside the "
                    f"{prop} filter or out of order; cannot page through changes safely",
                    connector=SOURCE)
            if last == lower:   # a whole page modified in the same millisecond
                yield from self._same_instant(object_type, wanted, lower, seen)
                lower, seen = lower + 1, set()
                continue
            lower = last
            seen = {r.id for r in rows if _modified(r, object_type) == last}

    def _same_instant(self, object_type: str, properties: list[str], instant: int,
                      seen: set[str]) -> Iterator[list[_Row]]:
        prop = _modified_property(object_type)
        after_id = 0
        while True:
            rows, more = self.api.search(object_type, [
                Filter(property_name=prop, operator="EQ", value=str(instant)),
                Filter(property_name="hs_object_id", operator="GT", value=str(after_id)),
            ], "hs_object_id", properties)
            fresh = [r for r in rows if r.id not in seen]
            if fresh:
                yield fresh
            ids = [int(r.id) for r in rows if r.id.isdigit()]
            if not more or not ids or max(ids) <= after_id:
                return
            after_id = max(ids)

    # owners ----------------------------------------------------------------------------------

    def _forget_owners(self) -> None:
        self._owner_email.clear()
        self._owner_id.clear()
        self._owners_loaded.clear()

    def _load_owners(self, archived: bool) -> None:
        if archived in self._owners_loaded:
            return
        self._owners_loaded.add(archived)
        for owner in self.api.owners_page(archived):
            email, owner_id = owner.get("email"), str(owner.get("id"))
            if email:
                self._owner_email[owner_id] = str(email)
                if not archived:
                    self._owner_id.setdefault(str(email).lower(), owner_id)

    def _owner(self, owner_id: Any) -> str | None:
        """The email of a HubSpot owner id (owners are read once, archived ones if needed)."""
        if owner_id in (None, ""):
            return None
        key = str(owner_id)
        if key not in self._owner_email:
            self._load_owners(False)
        if key not in self._owner_email:
            self._load_owners(True)
        email = self._owner_email.get(key)
        return email[:255] if email else None

    def _owner_for(self, email: str | None) -> str | None:
        if not email:
            return None
        self._load_owners(False)
        owner_id = self._owner_id.get(email.lower())
        if owner_id is None:
            log.warning("no active HubSpot owner has the email %s; the task is left unassigned",
                        email)
        return owner_id

    # tasks -----------------------------------------------------------------------------------

    def _task_properties(self, task: CrmTask, owner_id: str | None) -> dict[str, str]:
        marker = f" [{task.ref}]"
        due = datetime.combine(task.due_on, day_time(self.config.tasks.due_hour), self.tz)
        body = html.escape(task.body).replace("\n", "<br>")
        props = {
            "hs_task_subject": task.subject[:255 - len(marker)] + marker,
            "hs_task_body": f"{body}<br><br>Kizuna: {task.ref}",
            "hs_timestamp": _iso(due),
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": _PRIORITY.get(task.priority, "MEDIUM"),
        }
        if owner_id:
            props["hubspot_owner_id"] = owner_id
        if self.config.tasks.ref_property:
            props[self.config.tasks.ref_property] = task.ref
        return props

    def _find_task(self, ref: str, subject: str) -> str | None:
        """The id of a task already carrying ``ref`` (lowest id if several), by one search:
        the exact subject Kizuna writes, or the ref as a word of the subject (edited subjects),
        or the ref property when there is one."""
        groups = [[Filter(property_name="hs_task_subject", operator="EQ", value=subject)],
                  [Filter(property_name="hs_task_subject", operator="CONTAINS_TOKEN",
                          value=ref)]]
        ref_property = self.config.tasks.ref_property
        if ref_property:
            groups.append([Filter(property_name=ref_property, operator="EQ", value=ref)])
        properties = ["hs_task_subject", *([ref_property] if ref_property else [])]
        rows, _more = self.api.search("tasks", [], "hs_object_id", properties, limit=100,
                                      groups=groups)
        found = [r.id for r in rows
                 if ref in str(r.props.get("hs_task_subject") or "")
                 or (ref_property and r.props.get(ref_property) == ref)]
        return min(found, key=int) if found else None

    def _count(self, stream: str, n: int) -> None:
        self._pulled[stream] = self._pulled.get(stream, 0) + n


# -- small helpers --------------------------------------------------------------------------------

def _has(types: Mapping[str, str] | None, prop: str) -> bool:
    """Whether the portal has a property (assumed so when its properties are unknown)."""
    return types is None or prop in types


def _parse_json(raw: bytes | None, what: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _Retriable(f"{what}: HubSpot answered with something that is not JSON",
                         status=None) from None
    return body if isinstance(body, dict) else {}


def _results(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    results = page.get("results")
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def _row(record: Mapping[str, Any]) -> _Row:
    props = record.get("properties")
    props = dict(props) if isinstance(props, dict) else {}
    companies: list[str] = []
    associations = record.get("associations") or {}
    for key in ("companies", "company", "0-2"):
        block = associations.get(key) if isinstance(associations, dict) else None
        if not isinstance(block, dict):
            continue
        primary: list[str] = []
        for item in block.get("results") or []:
            entry = str(item.get("id"))
            if entry in companies or entry in primary:
                continue
            kind = str(item.get("type") or "")
            (primary if kind.endswith("_to_company") else companies).append(entry)
        companies = primary + [c for c in companies if c not in primary]
        break
    return _Row(id=str(record.get("id")), props=props, companies=companies,
                archived_at=_datetime(_ms(record.get("archivedAt"))),
                listed_associations=bool(associations))


def _next_after(page: Mapping[str, Any]) -> str | None:
    following = (page.get("paging") or {}).get("next") or {}
    after = following.get("after") if isinstance(following, dict) else None
    return str(after) if after else None


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _json_body(exc: Any) -> dict[str, Any]:
    raw = getattr(exc, "body", None)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _retry_after(value: Any) -> float | None:
    """Seconds from a ``Retry-After`` header: a number, or an HTTP date."""
    if value in (None, ""):
        return None
    number = _float(value)
    if number is not None:
        return max(number, 0.0)
    try:
        moment = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _ms(value: Any) -> int | None:
    """Epoch milliseconds from what HubSpot sends: ISO-8601, epoch ms, or a datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (moment - _EPOCH) // timedelta(milliseconds=1)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _datetime(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _modified(row: _Row, object_type: str) -> int | None:
    props = row.props
    return _ms(props.get(_modified_property(object_type)) or props.get("hs_lastmodifieddate"))


def _later_ms(current: int | None, row: _Row, object_type: str) -> int | None:
    modified = _modified(row, object_type)
    if modified is None:
        return current
    return modified if current is None else max(current, modified)


def _cursor(ms: int | None) -> str:
    """A stream's bookmark: the newest modification seen, as ISO-8601 UTC with milliseconds."""
    return _iso(_datetime(ms or 0) or _EPOCH)


def _cursor_ms(value: str | None) -> int | None:
    return _ms(value) if value else None


def _cursor_day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _person(props: Mapping[str, Any]) -> str:
    first = str(props.get("firstname") or "").strip()
    last = str(props.get("lastname") or "").strip()
    if first and last:
        # Japanese names read family name first.
        return f"{last} {first}" if _JAPANESE.search(first + last) else f"{first} {last}"
    return first or last or str(props.get("email") or "") or "(no name)"


# -- factory --------------------------------------------------------------------------------------

def from_settings(settings: Settings) -> HubSpotConnector:
    """Build the connector from kizuna.yaml ``hubspot:`` and the environment."""
    section = settings.section("hubspot", HubSpotSettings)
    env = settings.env
    token = env.hubspot_access_token.get_secret_value().strip() \
        if env.hubspot_access_token else ""
    if not token:
        raise ConfigError("HUBSPOT_ACCESS_TOKEN is not set: create a private app in HubSpot "
                          "(Settings → Integrations → Private apps) and export its access token",
                          field="HUBSPOT_ACCESS_TOKEN")
    base_url = (env.hubspot_base_url or DEFAULT_BASE_URL).strip().rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"not an http(s) URL: {base_url!r}", field="HUBSPOT_BASE_URL")
    cfg = settings.config
    return HubSpotConnector(
        token, base_url=base_url, config=section, timezone=settings.tz, language=cfg.language,
        qbr_pattern=cfg.activities.qbr_pattern,
        default_metrics={cfg.usage.metric: cfg.usage.metric},
        default_custom={cfg.goal.target_field: cfg.goal.target_field},
        document=settings.document)
