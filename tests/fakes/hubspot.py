"""A fake HubSpot CRM API server for tests.

Why: the HubSpot connector is built on ``hubspot-api-client``; mocking that client would only
prove we call it the way we think we do.  This module runs a *real* HTTP server on
127.0.0.1 (ephemeral port) that follows HubSpot's documented CRM v3/v4 behaviour -- paging
cursors, default property sets, the search API's filter semantics, its 200-per-page and
10,000-result caps, its per-second rate limit, the ten-second rolling burst limit and
HubSpot-shaped error bodies -- so the connector can be exercised end to end, including the
retry paths, without the network and without real waiting.

Usage::

    with FakeHubSpot() as fake:
        cid = fake.add("companies", {"name": "株式会社テスト"})
        client = HubSpot(access_token=fake.access_token, host=fake.url)
        client.crm.companies.basic_api.get_by_id(cid)

Time is simulated: records are stamped from ``fake.clock`` (frozen until advanced, strictly
increasing per write) and the rate limiters count against the same clock unless
``limiter_clock`` is given, so tests control rate-limit windows with ``fake.advance(10)``.
Because the clock is frozen, more than ``burst_limit`` (100) requests without advancing it
get 429 TEN_SECONDLY_ROLLING -- as a real portal would for a fast burst.  Long syncs should
advance the clock, pass ``limiter_clock=time.monotonic``, or use ``burst_limit=None``.

Not implemented: propertiesWithHistory (ignored), merge/upsert/GDPR delete, batch upsert,
pipelines, custom-object schemas, v3 association endpoints, association labels beyond
HubSpot-defined types, association paging inside v3 ``associations=``, daily-limit reset at
midnight, and the search ``query`` only does prefix/token matching on a few default fields.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

__all__ = ["Call", "FakeClock", "FakeHubSpot", "Fault", "PropertyDef"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- time


def _iso(ms: int) -> str:
    """Epoch ms -> HubSpot's ISO-8601 form (always milliseconds and a ``Z``)."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass a timezone-aware datetime")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _parse_ms(value: Any) -> int | None:
    """Parse what HubSpot accepts for a datetime: epoch ms, ISO-8601 or a bare date."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return _to_ms(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC))
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _to_ms(moment)


class FakeClock:
    """A manual clock: frozen until ``advance``/``now=`` so timestamps are deterministic.

    ``stamp_ms`` hands out strictly increasing write stamps (``now``, or 1 ms after the
    previous stamp when the clock has not moved) so "modified since" logic is testable
    without sleeping.
    """

    def __init__(self, start: datetime | str | None = None) -> None:
        self._lock = threading.Lock()
        self._now_ms = self._coerce(start if start is not None else _DEFAULT_START)
        self._last_stamp = self._now_ms - 1

    @staticmethod
    def _coerce(value: datetime | str | int) -> int:
        if isinstance(value, datetime):
            return _to_ms(value)
        parsed = _parse_ms(value)
        if parsed is None:
            raise ValueError(f"cannot interpret {value!r} as a time")
        return parsed

    @property
    def now(self) -> datetime:
        """Current simulated time (UTC)."""
        with self._lock:
            return _EPOCH + timedelta(milliseconds=self._now_ms)

    @now.setter
    def now(self, value: datetime | str | int) -> None:
        with self._lock:
            self._now_ms = self._coerce(value)
            # An explicit set is honoured exactly by the next write stamp.
            self._last_stamp = self._now_ms - 1

    def advance(self, seconds: float = 0.0, *, ms: int = 0) -> datetime:
        """Move time forward (never backwards) and return the new time."""
        delta = round(seconds * 1000) + ms
        if delta < 0:
            raise ValueError("advance() only moves forward; assign .now to jump")
        with self._lock:
            self._now_ms += delta
            return _EPOCH + timedelta(milliseconds=self._now_ms)

    def now_ms(self) -> int:
        with self._lock:
            return self._now_ms

    def time(self) -> float:
        """Epoch seconds, the shape rate limiters expect from ``time.time``."""
        return self.now_ms() / 1000.0

    def stamp_ms(self) -> int:
        """A write timestamp: ``now``, bumped so that every stamp is strictly later."""
        with self._lock:
            stamp = max(self._now_ms, self._last_stamp + 1)
            self._last_stamp = stamp
            return stamp


# --------------------------------------------------------------------------- schema


@dataclass
class PropertyDef:
    """One CRM property definition, rendered by ``GET /crm/v3/properties/{type}``."""

    name: str
    type: str = "string"
    label: str | None = None
    field_type: str | None = None
    group_name: str | None = None
    options: list[str] | None = None
    read_only: bool = False
    description: str = ""

    _FIELD_TYPES: ClassVar[dict[str, str]] = {
        "string": "text",
        "number": "number",
        "datetime": "date",
        "date": "date",
        "enumeration": "select",
        "bool": "booleancheckbox",
    }

    def __post_init__(self) -> None:
        if self.type not in self._FIELD_TYPES:
            raise ValueError(f"unknown property type {self.type!r}")
        self.label = self.label or self.name.replace("_", " ").title()
        self.field_type = self.field_type or self._FIELD_TYPES[self.type]
        if self.type == "bool" and self.options is None:
            self.options = ["true", "false"]

    def render(self, object_type: str, created_at: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name or f"{_TYPES[object_type].singular}information",
            "options": [
                {"label": o, "value": o, "displayOrder": i, "hidden": False}
                for i, o in enumerate(self.options or [])
            ],
            "displayOrder": -1,
            "calculated": False,
            "externalOptions": self.name == "hubspot_owner_id",
            "hasUniqueValue": self.name == "hs_object_id",
            "hidden": False,
            "hubspotDefined": True,
            "formField": False,
            "archived": False,
            "createdAt": created_at,
            "updatedAt": created_at,
            "modificationMetadata": {
                "archivable": not self.read_only,
                "readOnlyDefinition": True,
                "readOnlyValue": self.read_only,
            },
        }


@dataclass(frozen=True)
class _TypeSpec:
    name: str
    singular: str
    type_id: str
    created_prop: str
    modified_props: tuple[str, ...]
    default_props: tuple[str, ...]
    query_props: tuple[str, ...]

    @property
    def modified_prop(self) -> str:
        return self.modified_props[0]

    @property
    def always_props(self) -> tuple[str, ...]:
        """Returned even when the caller asks for other properties (HubSpot does this)."""
        return ("hs_object_id", self.created_prop, self.modified_prop)


_ENGAGEMENT = ("hs_createdate", ("hs_lastmodifieddate",), ())
_TYPES: dict[str, _TypeSpec] = {
    spec.name: spec
    for spec in (
        _TypeSpec("contacts", "contact", "0-1", "createdate",
                  ("lastmodifieddate", "hs_lastmodifieddate"),
                  ("firstname", "lastname", "email"),
                  ("firstname", "lastname", "email", "phone", "company")),
        _TypeSpec("companies", "company", "0-2", "createdate", ("hs_lastmodifieddate",),
                  ("name", "domain"), ("name", "domain", "website", "phone")),
        _TypeSpec("deals", "deal", "0-3", "createdate", ("hs_lastmodifieddate",),
                  ("dealname", "amount", "closedate", "pipeline", "dealstage"), ("dealname",)),
        _TypeSpec("tasks", "task", "0-27", *_ENGAGEMENT, ("hs_task_subject", "hs_task_body")),
        _TypeSpec("notes", "note", "0-46", *_ENGAGEMENT, ("hs_note_body",)),
        _TypeSpec("meetings", "meeting", "0-47", *_ENGAGEMENT,
                  ("hs_meeting_title", "hs_meeting_body")),
        _TypeSpec("calls", "call", "0-48", *_ENGAGEMENT, ("hs_call_title", "hs_call_body")),
        _TypeSpec("emails", "email", "0-49", *_ENGAGEMENT, ("hs_email_subject", "hs_email_text")),
    )
}
_ALIASES: dict[str, str] = {}
for _spec in _TYPES.values():
    for _alias in (_spec.name, _spec.singular, _spec.type_id):
        _ALIASES[_alias] = _spec.name

_LIFECYCLE = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
              "opportunity", "customer", "evangelist", "other"]


def _default_schema(object_type: str) -> list[PropertyDef]:
    """Realistic default properties per type (a subset of a real portal's)."""
    spec = _TYPES[object_type]
    props = [
        PropertyDef("hs_object_id", "number", label="Record ID", read_only=True),
        PropertyDef(spec.created_prop, "datetime", label="Create Date"),
        PropertyDef("hs_lastmodifieddate", "datetime", label="Last Modified Date", read_only=True),
        PropertyDef("hubspot_owner_id", "enumeration", label="Owner"),
    ]
    if object_type == "contacts":
        props.append(PropertyDef("lastmodifieddate", "datetime", read_only=True))
    crm_activity = [
        PropertyDef("notes_last_contacted", "datetime", label="Last Contacted", read_only=True),
        PropertyDef("notes_last_updated", "datetime", label="Last Activity Date", read_only=True),
        PropertyDef("hs_last_sales_activity_timestamp", "datetime", read_only=True),
        PropertyDef("notes_next_activity_date", "datetime", read_only=True),
    ]
    engagement = [PropertyDef("hs_timestamp", "datetime", label="Activity date")]
    s, n, dt, en = "string", "number", "datetime", "enumeration"
    extra: dict[str, list[PropertyDef]] = {
        "companies": [
            PropertyDef("name", s), PropertyDef("domain", s), PropertyDef("website", s),
            PropertyDef("phone", s), PropertyDef("city", s), PropertyDef("country", s),
            PropertyDef("description", s), PropertyDef("industry", en),
            PropertyDef("annualrevenue", n), PropertyDef("numberofemployees", n),
            PropertyDef("lifecyclestage", en, options=_LIFECYCLE),
            PropertyDef("num_associated_contacts", n, read_only=True),
            PropertyDef("num_associated_deals", n, read_only=True),
            *crm_activity,
        ],
        "contacts": [
            PropertyDef("firstname", s), PropertyDef("lastname", s), PropertyDef("email", s),
            PropertyDef("phone", s), PropertyDef("company", s), PropertyDef("jobtitle", s),
            PropertyDef("lifecyclestage", en, options=_LIFECYCLE),
            PropertyDef("hs_lead_status", en), PropertyDef("associatedcompanyid", n),
            *crm_activity,
        ],
        "deals": [
            PropertyDef("dealname", s), PropertyDef("pipeline", en), PropertyDef("dealstage", en),
            PropertyDef("closedate", dt), PropertyDef("amount", n), PropertyDef("description", s),
            PropertyDef("dealtype", en, options=["newbusiness", "existingbusiness"]),
            PropertyDef("hs_is_closed", "bool", read_only=True),
            PropertyDef("hs_is_closed_won", "bool", read_only=True),
            *crm_activity,
        ],
        "tasks": [
            *engagement, PropertyDef("hs_task_subject", s), PropertyDef("hs_task_body", s),
            PropertyDef("hs_task_status", en,
                        options=["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED",
                                 "DEFERRED"]),
            PropertyDef("hs_task_priority", en, options=["NONE", "LOW", "MEDIUM", "HIGH"]),
            PropertyDef("hs_task_type", en), PropertyDef("hs_task_completion_date", dt),
        ],
        "calls": [
            *engagement, PropertyDef("hs_call_title", s), PropertyDef("hs_call_body", s),
            PropertyDef("hs_call_duration", n),
            PropertyDef("hs_call_direction", en, options=["INBOUND", "OUTBOUND"]),
            PropertyDef("hs_call_status", en), PropertyDef("hs_call_disposition", s),
        ],
        "meetings": [
            *engagement, PropertyDef("hs_meeting_title", s), PropertyDef("hs_meeting_body", s),
            PropertyDef("hs_internal_meeting_notes", s), PropertyDef("hs_meeting_location", s),
            PropertyDef("hs_meeting_start_time", dt), PropertyDef("hs_meeting_end_time", dt),
            PropertyDef("hs_meeting_outcome", en,
                        options=["SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"]),
        ],
        "emails": [
            *engagement, PropertyDef("hs_email_subject", s), PropertyDef("hs_email_text", s),
            PropertyDef("hs_email_html", s), PropertyDef("hs_email_headers", s),
            PropertyDef("hs_email_direction", en,
                        options=["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"]),
            PropertyDef("hs_email_status", en,
                        options=["BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT"]),
        ],
        "notes": [*engagement, PropertyDef("hs_note_body", s),
                  PropertyDef("hs_attachment_ids", s)],
    }
    return props + extra[object_type]


# ------------------------------------------------------------------ associations

# (typeId, from, to, inverse typeId, v3 name, v4 label) -- HUBSPOT_DEFINED types.
_ASSOC_ROWS: list[tuple[int, str, str, int, str, str | None]] = [
    (1, "contacts", "companies", 2, "contact_to_company", "Primary"),
    (2, "companies", "contacts", 1, "company_to_contact", "Primary"),
    (279, "contacts", "companies", 280, "contact_to_company_unlabeled", None),
    (280, "companies", "contacts", 279, "company_to_contact_unlabeled", None),
    (3, "deals", "contacts", 4, "deal_to_contact", None),
    (4, "contacts", "deals", 3, "contact_to_deal", None),
    (5, "deals", "companies", 6, "deal_to_company", "Primary"),
    (6, "companies", "deals", 5, "company_to_deal", "Primary"),
    (341, "deals", "companies", 342, "deal_to_company_unlabeled", None),
    (342, "companies", "deals", 341, "company_to_deal_unlabeled", None),
]
for _eng, (_co, _ct, _dl) in {
    "calls": (182, 194, 206), "emails": (186, 198, 210), "meetings": (188, 200, 212),
    "notes": (190, 202, 214), "tasks": (192, 204, 216),
}.items():
    for _target, _tid in (("companies", _co), ("contacts", _ct), ("deals", _dl)):
        _a, _b = _TYPES[_eng].singular, _TYPES[_target].singular
        _ASSOC_ROWS.append((_tid, _eng, _target, _tid - 1, f"{_a}_to_{_b}", None))
        _ASSOC_ROWS.append((_tid - 1, _target, _eng, _tid, f"{_b}_to_{_a}", None))

_ASSOC_BY_ID = {row[0]: row for row in _ASSOC_ROWS}
_PRIMARY_TO_UNLABELED = {1: 279, 2: 280, 5: 341, 6: 342}
_DEFAULT_ASSOC: dict[tuple[str, str], int] = {}
for _row in _ASSOC_ROWS:
    if _row[5] is None:  # the unlabeled type is the default for a pair
        _DEFAULT_ASSOC.setdefault((_row[1], _row[2]), _row[0])


# --------------------------------------------------------------------------- records


@dataclass
class _Record:
    id: str
    object_type: str
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None


@dataclass
class _Owner:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    created_ms: int
    updated_ms: int
    archived: bool = False
    teams: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.user_id,
            "userIdIncludingInactive": self.user_id,
            "createdAt": _iso(self.created_ms),
            "updatedAt": _iso(self.updated_ms),
            "archived": self.archived,
            "teams": list(self.teams),
        }


@dataclass
class Call:
    """One recorded HTTP request (and the status the fake answered with)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    status: int = 0
    injected: bool = False

    def header(self, name: str) -> str | None:
        """Case-insensitive request header lookup."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


@dataclass
class Fault:
    """A queued injected failure; ``remaining`` counts down as it fires."""

    status: int
    remaining: int
    retry_after: str | None
    body: Any
    match: Callable[[Call], bool] | str | None
    headers: dict[str, str]

    def matches(self, call: Call) -> bool:
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match in call.path
        return bool(self.match(call))


class _ApiError(Exception):
    """Raised inside handlers; turned into a HubSpot error response."""

    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.category, self.extra = status, message, category, extra


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class _Window:
    """Rolling-window counter; only accepted requests consume quota."""

    def __init__(self, limit: int | None, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self.hits: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self.hits and self.hits[0] <= now - self.window_s:
            self.hits.popleft()

    def full(self, now: float) -> bool:
        self._prune(now)
        return self.limit is not None and len(self.hits) >= self.limit

    def hit(self, now: float) -> None:
        self.hits.append(now)

    def remaining(self, now: float) -> int:
        self._prune(now)
        return max(0, (self.limit or 0) - len(self.hits))


# ------------------------------------------------------------------------ the server

_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
              "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like urllib3's pooled connections expect
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr logging; ``FakeHubSpot.calls`` is the log."""

    def _serve(self) -> None:
        self.server.fake._serve(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeHubSpot


class FakeHubSpot:
    """In-memory HubSpot CRM served over real HTTP; see the module docstring.

    Constructor knobs (all optional): ``access_token``; ``clock`` (a ``FakeClock``);
    ``limiter_clock`` (callable returning seconds; defaults to the fake clock);
    ``burst_limit``/``burst_window_seconds`` (HubSpot's TEN_SECONDLY_ROLLING policy, ``None``
    disables); ``daily_limit``; ``search_rate_limit`` (search requests per second, ``None``
    disables); ``search_cap`` (the 10,000-result window); ``search_rate_limit_headers``
    (HubSpot omits X-HubSpot-RateLimit-* on search responses; set True to send them).
    """

    LIST_MAX_LIMIT = 100
    SEARCH_MAX_LIMIT = 200
    BATCH_MAX_INPUTS = 100
    ASSOC_BATCH_MAX_INPUTS = 1000
    ASSOC_PAGE_MAX = 500
    OWNERS_MAX_LIMIT = 500
    MAX_FILTER_GROUPS = 5
    MAX_FILTERS_PER_GROUP = 10
    MAX_FILTERS_TOTAL = 25

    def __init__(
        self,
        access_token: str = "x",
        *,
        clock: FakeClock | None = None,
        limiter_clock: Callable[[], float] | None = None,
        burst_limit: int | None = 100,
        burst_window_seconds: float = 10.0,
        daily_limit: int = 250_000,
        search_rate_limit: int | None = 5,
        search_cap: int = 10_000,
        search_rate_limit_headers: bool = False,
    ) -> None:
        self.access_token = access_token
        self.clock = clock or FakeClock()
        self.search_cap = search_cap
        self.search_rate_limit_headers = search_rate_limit_headers
        self._limiter_clock = limiter_clock or self.clock.time
        self._burst = _Window(burst_limit, burst_window_seconds)
        self._secondly = _Window(
            None if burst_limit is None else max(1, math.ceil(burst_limit / 10)), 1.0)
        self._search = _Window(search_rate_limit, 1.0)
        self._daily_limit = daily_limit
        self._daily_used = 0

        self._lock = threading.RLock()
        self._ids = itertools.count(10_000_001)
        self._owner_ids = itertools.count(70_000_001)
        self._user_ids = itertools.count(5_000_001)
        self._correlation = itertools.count(1)
        self._records: dict[str, dict[str, _Record]] = {t: {} for t in _TYPES}
        self._schema: dict[str, dict[str, PropertyDef]] = {
            t: {p.name: p for p in _default_schema(t)} for t in _TYPES
        }
        self._schema_created = _iso(self.clock.now_ms())
        # (from_type, from_id) -> {(to_type, to_id): {typeId, ...}}
        self._assoc: dict[tuple[str, str], dict[tuple[str, str], set[int]]] = {}
        self._owners: dict[str, _Owner] = {}
        self._calls: list[Call] = []
        self._faults: list[Fault] = []
        self._connections: set[socket.socket] = set()

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="fake-hubspot", daemon=True)
        self._closed = False
        self._thread.start()

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeHubSpot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and drop idle keep-alive connections so no thread lingers."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    # ------------------------------------------------------------------- time

    @property
    def now(self) -> datetime:
        """The simulated current time (settable)."""
        return self.clock.now

    @now.setter
    def now(self, value: datetime | str | int) -> None:
        self.clock.now = value

    def advance(self, seconds: float = 0.0, *, ms: int = 0) -> datetime:
        """Advance the simulated clock (also slides the rate-limit windows by default)."""
        return self.clock.advance(seconds, ms=ms)

    # ------------------------------------------------------------- recorded calls

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._calls)

    def reset_calls(self) -> None:
        """Forget recorded calls (data, faults and rate-limit state are kept)."""
        with self._lock:
            self._calls.clear()

    def reset_rate_limits(self) -> None:
        """Empty every rate-limit window and the daily counter."""
        with self._lock:
            for window in (self._burst, self._secondly, self._search):
                window.hits.clear()
            self._daily_used = 0

    # ----------------------------------------------------------- fault injection

    def inject(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        body: Any = None,
        match: Callable[[Call], bool] | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Queue ``times`` failures of ``status`` for requests matching ``match``.

        ``match`` is a path substring or a predicate over :class:`Call`; ``None`` matches
        everything.  Faults fire before auth and rate limiting, consume no quota, and are
        recorded in ``calls`` with ``injected=True``.  ``body`` may be a JSON-able object or a
        raw string (sent as text/html, like a proxy error page).
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        fault = Fault(status, times, None if retry_after is None else _fmt_num(retry_after),
                      body, match, dict(headers or {}))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Drop faults that have not fired yet."""
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------- data helpers

    def define_property(
        self,
        object_type: str,
        name: str,
        type: str = "string",
        *,
        label: str | None = None,
        field_type: str | None = None,
        options: Iterable[str] | None = None,
        read_only: bool = False,
    ) -> PropertyDef:
        """Add (or replace) a property definition, e.g. a portal's custom property."""
        prop = PropertyDef(name, type, label=label, field_type=field_type,
                           options=list(options) if options is not None else None,
                           read_only=read_only)
        with self._lock:
            self._schema[self._type(object_type)][name] = prop
        return prop

    def add(
        self,
        object_type: str,
        properties: dict[str, Any] | None = None,
        *,
        associations: dict[str, list[str]] | None = None,
    ) -> str:
        """Create a record directly (no HTTP, no quota) and return its id.

        Read-only timestamps may be set here (e.g. ``hs_lastmodifieddate``) to seed history;
        otherwise they come from the clock.  ``associations`` maps a target type to ids and
        uses HubSpot's default (unlabeled) association type for the pair.
        """
        with self._lock:
            otype = self._type(object_type)
            values = self._validate(otype, properties or {}, allow_read_only=True)
            record = self._create(otype, values)
            for to_type, ids in (associations or {}).items():
                target = self._type(to_type)
                type_id = _DEFAULT_ASSOC.get((otype, target))
                if type_id is None:
                    raise ValueError(f"no default association from {otype} to {target}")
                for to_id in ids:
                    self._require(target, str(to_id))
                    self._associate(otype, record.id, target, str(to_id), type_id)
            return record.id

    def update(self, object_type: str, object_id: str, properties: dict[str, Any]) -> None:
        """Change properties as a HubSpot user would; bumps the last-modified date."""
        with self._lock:
            otype = self._type(object_type)
            record = self._require(otype, str(object_id))
            self._apply(record, self._validate(otype, properties, allow_read_only=True))

    def archive(self, object_type: str, object_id: str) -> None:
        """Archive (soft-delete) a record, as ``DELETE`` does."""
        with self._lock:
            record = self._require(self._type(object_type), str(object_id))
            self._archive(record)

    def associate(
        self,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        type_id: int | None = None,
    ) -> None:
        """Associate two existing records (both directions are stored, as in HubSpot)."""
        with self._lock:
            src, dst = self._type(from_type), self._type(to_type)
            self._require(src, str(from_id))
            self._require(dst, str(to_id))
            type_id = type_id if type_id is not None else _DEFAULT_ASSOC[(src, dst)]
            self._associate(src, str(from_id), dst, str(to_id), type_id)

    def get(self, object_type: str, object_id: str) -> dict[str, Any] | None:
        """The record as the API would show it with every set property, or ``None``."""
        with self._lock:
            record = self._records[self._type(object_type)].get(str(object_id))
            return None if record is None else self._render_full(record)

    def objects(self, object_type: str, *, archived: bool = False) -> list[dict[str, Any]]:
        """All live (or, with ``archived=True``, archived) records of a type, by id."""
        with self._lock:
            otype = self._type(object_type)
            return [self._render_full(r) for r in self._sorted(otype) if r.archived == archived]

    def add_owner(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        archived: bool = False,
        user_id: int | None = None,
    ) -> str:
        """Create a CRM owner (a HubSpot user) and return its owner id."""
        with self._lock:
            stamp = self.clock.stamp_ms()
            owner = _Owner(str(next(self._owner_ids)), email, first_name, last_name,
                           user_id if user_id is not None else next(self._user_ids),
                           stamp, stamp, archived)
            self._owners[owner.id] = owner
            return owner.id

    # ----------------------------------------------------------- data internals

    def _type(self, name: str) -> str:
        otype = _ALIASES.get(name.lower()) if isinstance(name, str) else None
        if otype is None:
            raise _ApiError(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR")
        return otype

    def _require(self, otype: str, object_id: str, *, archived: bool | None = None) -> _Record:
        record = self._records[otype].get(object_id)
        if record is None or (archived is not None and record.archived != archived):
            raise _ApiError(404, "resource not found", "OBJECT_NOT_FOUND")
        return record

    def _sorted(self, otype: str) -> list[_Record]:
        return sorted(self._records[otype].values(), key=lambda r: int(r.id))

    def _validate(
        self, otype: str, raw: dict[str, Any], *, allow_read_only: bool = False
    ) -> dict[str, str | None]:
        """Normalise values like HubSpot (strings, ISO datetimes); collect every error."""
        if not isinstance(raw, dict):
            raise _ApiError(400, "Invalid input JSON: properties must be an object",
                            "VALIDATION_ERROR")
        schema = self._schema[otype]
        clean: dict[str, str | None] = {}
        errors: list[dict[str, Any]] = []
        for name, value in raw.items():
            prop = schema.get(name)
            if prop is None:
                errors.append(_prop_error(name, f'Property "{name}" does not exist',
                                          "PROPERTY_DOESNT_EXIST"))
                continue
            if prop.read_only and not allow_read_only:
                errors.append(_prop_error(name, f'Property "{name}" is a read only property',
                                          "READ_ONLY_VALUE"))
                continue
            normalised, problem = _normalise(prop, value)
            if problem:
                errors.append(_prop_error(name, problem[1], problem[0]))
            else:
                clean[name] = normalised
        if errors:
            detail = json.dumps([{k: v for k, v in e.items() if k != "_detail"} for e in errors],
                                ensure_ascii=False)
            raise _ApiError(400, f"Property values were not valid: {detail}", "VALIDATION_ERROR",
                            errors=[e["_detail"] for e in errors])
        return clean

    def _create(self, otype: str, values: dict[str, str | None]) -> _Record:
        spec = _TYPES[otype]
        stamp = self.clock.stamp_ms()
        object_id = str(next(self._ids))
        created = _parse_ms(values.get(spec.created_prop)) or stamp
        explicit = next((values[p] for p in spec.modified_props if values.get(p)), None)
        modified = _parse_ms(explicit) if explicit else max(stamp, created)
        record = _Record(object_id, otype, {}, created, modified)
        record.properties = {k: v for k, v in values.items() if v is not None}
        record.properties["hs_object_id"] = object_id
        record.properties[spec.created_prop] = _iso(created)
        for prop in spec.modified_props:
            record.properties[prop] = _iso(modified)
        self._records[otype][object_id] = record
        return record

    def _apply(self, record: _Record, values: dict[str, str | None]) -> None:
        spec = _TYPES[record.object_type]
        explicit = next((values[p] for p in spec.modified_props if values.get(p)), None)
        for name, value in values.items():
            if value is None:
                record.properties.pop(name, None)
            else:
                record.properties[name] = value
        record.updated_ms = _parse_ms(explicit) if explicit else self.clock.stamp_ms()
        for prop in spec.modified_props:
            record.properties[prop] = _iso(record.updated_ms)
        if values.get(spec.created_prop):
            record.created_ms = _parse_ms(values[spec.created_prop]) or record.created_ms

    def _archive(self, record: _Record) -> None:
        if not record.archived:
            record.archived = True
            record.archived_ms = self.clock.stamp_ms()

    def _associate(self, src: str, src_id: str, dst: str, dst_id: str, type_id: int) -> None:
        row = _ASSOC_BY_ID.get(type_id)
        if row is None or (row[1], row[2]) != (src, dst):
            raise _ApiError(400, f"association type id {type_id} doesn't exist between "
                                 f"{src} and {dst}", "VALIDATION_ERROR")
        pairs = [(type_id, row[3])]
        if type_id in _PRIMARY_TO_UNLABELED:  # a labeled association implies the unlabeled one
            unlabeled = _PRIMARY_TO_UNLABELED[type_id]
            pairs.append((unlabeled, _ASSOC_BY_ID[unlabeled][3]))
        for forward, inverse in pairs:
            self._assoc.setdefault((src, src_id), {}).setdefault((dst, dst_id), set()).add(forward)
            self._assoc.setdefault((dst, dst_id), {}).setdefault((src, src_id), set()).add(inverse)

    def _associated(self, otype: str, object_id: str, to_type: str) -> list[tuple[str, set[int]]]:
        """Live associated ids of ``to_type`` (archived targets are hidden), sorted."""
        found = []
        for (t, tid), types in self._assoc.get((otype, object_id), {}).items():
            target = self._records[t].get(tid)
            if t == to_type and target is not None and not target.archived:
                found.append((tid, types))
        return sorted(found, key=lambda item: int(item[0]))

    # ----------------------------------------------------------------- rendering

    def _render(
        self,
        record: _Record,
        properties: list[str] | None,
        associations: list[str] | None = None,
    ) -> dict[str, Any]:
        spec = _TYPES[record.object_type]
        schema = self._schema[record.object_type]
        if properties:
            names = [p for p in properties if p in schema] + list(spec.always_props)
        else:
            names = list(spec.always_props) + list(spec.default_props)
        out: dict[str, Any] = {
            "id": record.id,
            "properties": {n: record.properties.get(n) for n in sorted(set(names))},
            "createdAt": _iso(record.created_ms),
            "updatedAt": _iso(record.updated_ms),
            "archived": record.archived,
        }
        if record.archived and record.archived_ms is not None:
            out["archivedAt"] = _iso(record.archived_ms)
        if associations:
            rendered: dict[str, Any] = {}
            for name in associations:
                target = _ALIASES.get(name.lower())
                if target is None:
                    continue  # documented: unknown association types are ignored
                linked = self._associated(record.object_type, record.id, target)
                entries = [{"id": tid, "type": _ASSOC_BY_ID[t][4]}
                           for tid, types in linked for t in sorted(types)]
                if entries:
                    rendered[target] = {"results": entries}
            if rendered:
                out["associations"] = rendered
        return out

    def _render_full(self, record: _Record) -> dict[str, Any]:
        out = self._render(record, sorted(record.properties))
        out["properties"] = {k: v for k, v in out["properties"].items() if v is not None}
        return out

    # ----------------------------------------------------------------- transport

    def _serve(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                body, bad_json = raw.decode("utf-8", "replace"), True
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(key, []).append(value)
        call = Call(handler.command, unquote(split.path), query, body, dict(handler.headers))
        with self._lock:
            self._calls.append(call)
            correlation = f"00000000-0000-4000-8000-{next(self._correlation):012d}"
            response = self._respond(call, correlation, bad_json)
            call.status = response.status
        self._write(handler, response, correlation)

    def _write(self, handler: _Handler, response: _Response, correlation: str) -> None:
        if response.body is None or response.status == 204:
            payload, ctype = b"", None
        elif isinstance(response.body, (bytes, str)):
            payload = response.body if isinstance(response.body, bytes) else \
                response.body.encode("utf-8")
            ctype = "text/html;charset=utf-8"
        else:
            payload = json.dumps(response.body, ensure_ascii=False).encode("utf-8")
            ctype = "application/json;charset=utf-8"
        try:
            handler.send_response(response.status)
            if ctype:
                handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("X-HubSpot-Correlation-Id", correlation)
            for key, value in response.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            if payload:
                handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _rate_headers(self, now: float) -> dict[str, str]:
        headers = {"X-HubSpot-RateLimit-Daily": str(self._daily_limit),
                   "X-HubSpot-RateLimit-Daily-Remaining":
                       str(max(0, self._daily_limit - self._daily_used))}
        if self._burst.limit is not None:
            headers.update({
                "X-HubSpot-RateLimit-Interval-Milliseconds":
                    str(int(self._burst.window_s * 1000)),
                "X-HubSpot-RateLimit-Max": str(self._burst.limit),
                "X-HubSpot-RateLimit-Remaining": str(self._burst.remaining(now)),
                "X-HubSpot-RateLimit-Secondly": str(self._secondly.limit),
                "X-HubSpot-RateLimit-Secondly-Remaining": str(self._secondly.remaining(now)),
            })
        return headers

    def _respond(self, call: Call, correlation: str, bad_json: bool) -> _Response:
        now = self._limiter_clock()
        is_search = call.method == "POST" and bool(
            re.fullmatch(r"/crm/v3/objects/[^/]+/search/?", call.path))
        with_rate_headers = not is_search or self.search_rate_limit_headers

        def finish(response: _Response) -> _Response:
            if with_rate_headers:
                response.headers = {**self._rate_headers(now), **response.headers}
            return response

        def error(status: int, message: str, category: str, **extra: Any) -> _Response:
            return finish(_Response(status, {"status": "error", "message": message,
                                             "correlationId": correlation,
                                             "category": category, **extra}))

        fault = next((f for f in self._faults if f.matches(call)), None)
        if fault is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            call.injected = True
            return finish(self._fault_response(fault, correlation))

        auth = call.header("Authorization") or ""
        if auth != f"Bearer {self.access_token}":
            return error(401, _AUTH_MESSAGE, "INVALID_AUTHENTICATION")

        if self._daily_used >= self._daily_limit:
            return finish(_Response(429, _rate_limit_body(
                "You have reached your daily limit.", "DAILY", correlation)))
        if self._burst.full(now):
            return finish(_Response(429, _rate_limit_body(
                "You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING",
                correlation)))
        if is_search and self._search.full(now):
            return finish(_Response(429, _rate_limit_body(
                "You have reached your secondly limit.", "SECONDLY", correlation)))
        self._burst.hit(now)
        self._secondly.hit(now)
        self._daily_used += 1
        if is_search:
            self._search.hit(now)

        if bad_json:
            return error(400, "Invalid input JSON on line 1", "VALIDATION_ERROR")
        try:
            return finish(self._route(call))
        except _ApiError as exc:
            return error(exc.status, exc.message, exc.category, **exc.extra)

    def _fault_response(self, fault: Fault, correlation: str) -> _Response:
        body = fault.body
        if body is None:
            if fault.status == 429:
                body = _rate_limit_body("You have reached your ten_secondly_rolling limit.",
                                        "TEN_SECONDLY_ROLLING", correlation)
            elif fault.status == 401:
                body = {"status": "error", "message": _AUTH_MESSAGE,
                        "correlationId": correlation, "category": "INVALID_AUTHENTICATION"}
            else:
                body = {"status": "error", "message": "internal error",
                        "correlationId": correlation, "category": "INTERNAL_ERROR"}
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        return _Response(fault.status, body, headers)

    # --------------------------------------------------------------------- routes

    _ROUTES: ClassVar[list[tuple[str, re.Pattern[str], str]]] = [
        (m, re.compile(p), h) for m, p, h in [
            ("POST", r"/crm/v3/objects/(?P<kind>[^/]+)/search/?", "_search_objects"),
            ("POST", r"/crm/v3/objects/(?P<kind>[^/]+)/batch/(?P<op>read|create|update|archive)",
             "_batch"),
            ("GET", r"/crm/v3/objects/(?P<kind>[^/]+)/?", "_list_objects"),
            ("POST", r"/crm/v3/objects/(?P<kind>[^/]+)/?", "_create_object"),
            ("GET", r"/crm/v3/objects/(?P<kind>[^/]+)/(?P<oid>[^/]+)", "_get_object"),
            ("PATCH", r"/crm/v3/objects/(?P<kind>[^/]+)/(?P<oid>[^/]+)", "_update_object"),
            ("DELETE", r"/crm/v3/objects/(?P<kind>[^/]+)/(?P<oid>[^/]+)", "_delete_object"),
            ("GET", r"/crm/v3/owners/?", "_list_owners"),
            ("GET", r"/crm/v3/owners/(?P<oid>[^/]+)", "_get_owner"),
            ("GET", r"/crm/v3/properties/(?P<kind>[^/]+)/?", "_list_properties"),
            ("GET", r"/crm/v3/properties/(?P<kind>[^/]+)/(?P<name>[^/]+)", "_get_property"),
            ("GET", r"/crm/v4/objects/(?P<kind>[^/]+)/(?P<oid>[^/]+)/associations/(?P<to>[^/]+)/?",
             "_v4_list"),
            ("PUT", r"/crm/v4/objects/(?P<kind>[^/]+)/(?P<oid>[^/]+)/associations/default/"
                    r"(?P<to>[^/]+)/(?P<to_id>[^/]+)", "_v4_put_default"),
            ("PUT", r"/crm/v4/objects/(?P<kind>[^/]+)/(?P<oid>[^/]+)/associations/(?P<to>[^/]+)/"
                    r"(?P<to_id>[^/]+)", "_v4_put"),
            ("POST", r"/crm/v4/associations/(?P<kind>[^/]+)/(?P<to>[^/]+)/batch/read",
             "_v4_batch_read"),
        ]
    ]

    def _route(self, call: Call) -> _Response:
        path_matched = False
        for method, pattern, handler in self._ROUTES:
            found = pattern.fullmatch(call.path)
            if found is None:
                continue
            path_matched = True
            if method == call.method:
                return getattr(self, handler)(call, **found.groupdict())
        if path_matched:
            raise _ApiError(405, f"HTTP method {call.method} is not supported by this URL",
                            "VALIDATION_ERROR")
        raise _ApiError(404, f"Unable to route {call.method} {call.path}", "OBJECT_NOT_FOUND")

    # objects ------------------------------------------------------------------

    def _list_objects(self, call: Call, kind: str) -> _Response:
        otype = self._type(kind)
        limit = min(_q_int(call.query, "limit", 10, minimum=1), self.LIST_MAX_LIMIT)
        after = _q_int(call.query, "after", None, minimum=0)
        archived = _q_bool(call.query, "archived")
        props = _q_list(call.query, "properties")
        assoc = _q_list(call.query, "associations")
        pool = [r for r in self._sorted(otype)
                if r.archived == archived and (after is None or int(r.id) >= after)]
        page = pool[:limit]
        body: dict[str, Any] = {"results": [self._render(r, props, assoc) for r in page]}
        if len(pool) > limit:
            cursor = str(int(page[-1].id) + 1)
            params = [(k, v) for k, vs in call.query.items() if k != "after" for v in vs]
            params.append(("after", cursor))
            body["paging"] = {"next": {"after": cursor,
                                       "link": f"{self.url}{call.path}?{urlencode(params)}"}}
        return _Response(200, body)

    def _get_object(self, call: Call, kind: str, oid: str) -> _Response:
        otype = self._type(kind)
        record = self._lookup(otype, oid, call.query)
        return _Response(200, self._render(record, _q_list(call.query, "properties"),
                                           _q_list(call.query, "associations")))

    def _lookup(self, otype: str, key: str, query: dict[str, list[str]]) -> _Record:
        archived = _q_bool(query, "archived")
        id_property = (query.get("idProperty") or [""])[0]
        if id_property and id_property != "hs_object_id":
            if id_property not in self._schema[otype]:
                raise _ApiError(400, f'Property "{id_property}" does not exist',
                                "VALIDATION_ERROR")
            for record in self._sorted(otype):
                value = record.properties.get(id_property)
                if record.archived == archived and value is not None and \
                        value.lower() == key.lower():
                    return record
            raise _ApiError(404, "resource not found", "OBJECT_NOT_FOUND")
        return self._require(otype, key, archived=archived)

    def _create_object(self, call: Call, kind: str) -> _Response:
        otype = self._type(kind)
        record = self._create_from_input(otype, _body_dict(call))
        return _Response(201, self._render_full(record))

    def _create_from_input(self, otype: str, item: dict[str, Any]) -> _Record:
        links = self._check_associations(otype, item.get("associations") or [])
        record = self._create(otype, self._validate(otype, item.get("properties") or {}))
        for dst, dst_id, type_id in links:
            self._associate(otype, record.id, dst, dst_id, type_id)
        return record

    def _check_associations(self, otype: str, raw: Any) -> list[tuple[str, str, int]]:
        """Validate create-time associations up front so a bad one creates nothing."""
        if not isinstance(raw, list):
            raise _ApiError(400, "associations must be a list", "VALIDATION_ERROR")
        links = []
        for entry in raw:
            to_id = str(((entry or {}).get("to") or {}).get("id", ""))
            for spec in (entry or {}).get("types") or []:
                type_id = spec.get("associationTypeId")
                row = _ASSOC_BY_ID.get(type_id) if isinstance(type_id, int) else None
                if row is None or row[1] != otype or \
                        spec.get("associationCategory") != "HUBSPOT_DEFINED":
                    raise _ApiError(
                        400, f"{spec.get('associationCategory')} {type_id} is not a valid "
                             f"association type from {otype}", "VALIDATION_ERROR")
                target = self._records[row[2]].get(to_id)
                if target is None or target.archived:
                    raise _ApiError(400, f"One or more associations are invalid: "
                                         f"{row[2]} {to_id} does not exist", "VALIDATION_ERROR",
                                    subCategory="crm.associations.INVALID_OBJECT_IDS")
                links.append((row[2], to_id, type_id))
        return links

    def _update_object(self, call: Call, kind: str, oid: str) -> _Response:
        otype = self._type(kind)
        record = self._lookup(otype, oid, {k: v for k, v in call.query.items()
                                          if k == "idProperty"})
        self._apply(record, self._validate(otype, _body_dict(call).get("properties") or {}))
        return _Response(200, self._render_full(record))

    def _delete_object(self, call: Call, kind: str, oid: str) -> _Response:
        record = self._records[self._type(kind)].get(oid)
        if record is not None:  # archiving is idempotent: unknown ids are a 204 too
            self._archive(record)
        return _Response(204)

    def _batch(self, call: Call, kind: str, op: str) -> _Response:
        otype = self._type(kind)
        body = _body_dict(call)
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            raise _ApiError(400, "inputs must be a list", "VALIDATION_ERROR")
        if len(inputs) > self.BATCH_MAX_INPUTS:
            raise _ApiError(400, f"Batch input size {len(inputs)} exceeds the maximum of "
                                 f"{self.BATCH_MAX_INPUTS}", "VALIDATION_ERROR")
        started = _iso(self.clock.now_ms())
        if op == "archive":
            for item in inputs:
                record = self._records[otype].get(str((item or {}).get("id")))
                if record is not None:
                    self._archive(record)
            return _Response(204)
        if op == "create":
            for item in inputs:  # validate everything first: HubSpot fails the whole batch
                self._validate(otype, (item or {}).get("properties") or {})
                self._check_associations(otype, (item or {}).get("associations") or [])
            records = [self._create_from_input(otype, item or {}) for item in inputs]
            return _Response(201, _batch_body([self._render_full(r) for r in records], started,
                                              self.clock))
        if op == "update":
            targets = []
            for item in inputs:
                record = self._require(otype, str((item or {}).get("id")), archived=False)
                values = self._validate(otype, (item or {}).get("properties") or {})
                targets.append((record, values))
            for record, values in targets:
                self._apply(record, values)
            return _Response(200, _batch_body([self._render_full(r) for r, _ in targets],
                                              started, self.clock))
        # read
        props = body.get("properties") or None
        id_property = body.get("idProperty")
        query = {"archived": [str(bool(_q_bool(call.query, "archived"))).lower()]}
        if id_property:
            query["idProperty"] = [id_property]
        results, missing = [], []
        for item in inputs:
            key = str((item or {}).get("id"))
            try:
                results.append(self._render(self._lookup(otype, key, query), props))
            except _ApiError:
                missing.append(key)
        out = _batch_body(results, started, self.clock)
        if not missing:
            return _Response(200, out)
        out["numErrors"] = 1
        out["errors"] = [{
            "status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {_TYPES[otype].singular.upper()} objects, they may "
                       "be deleted or not exist. Check that ids are valid.",
            "context": {"ids": missing}, "errors": [], "links": {},
        }]
        return _Response(207, out)

    # search -------------------------------------------------------------------

    def _search_objects(self, call: Call, kind: str) -> _Response:
        otype = self._type(kind)
        body = _body_dict(call)
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise _ApiError(400, "limit must be a non-negative integer", "VALIDATION_ERROR")
        if limit > self.SEARCH_MAX_LIMIT:
            raise _ApiError(400, f"limit must be less than or equal to {self.SEARCH_MAX_LIMIT}",
                            "VALIDATION_ERROR")
        after_raw = body.get("after") or "0"
        if not re.fullmatch(r"\d+", str(after_raw)):
            raise _ApiError(400, f"Invalid after value: {after_raw}", "VALIDATION_ERROR")
        after = int(after_raw)
        if after + limit > self.search_cap:
            raise _ApiError(
                400, f"The search API returns at most {self.search_cap} results per query; "
                     f"after ({after}) + limit ({limit}) exceeds it. Narrow the filters "
                     f"instead of paging further.", "VALIDATION_ERROR")
        groups = self._parse_groups(otype, body.get("filterGroups") or [])
        sorts = self._parse_sorts(otype, body.get("sorts") or [])
        pool = [r for r in self._sorted(otype) if not r.archived]
        if groups:
            pool = [r for r in pool if any(all(self._matches(r, f) for f in g) for g in groups)]
        query = body.get("query")
        if query:
            pool = [r for r in pool if self._query_matches(r, str(query))]
        for name, descending in reversed(sorts):
            prop = self._schema[otype][name]
            present = [r for r in pool if r.properties.get(name) is not None]
            absent = [r for r in pool if r.properties.get(name) is None]
            present.sort(key=lambda r: _sort_key(prop, r.properties[name]), reverse=descending)
            pool = present + absent
        page = pool[after:after + limit]
        out: dict[str, Any] = {"total": len(pool),
                               "results": [self._render(r, body.get("properties") or None)
                                           for r in page]}
        if after + len(page) < len(pool):
            out["paging"] = {"next": {"after": str(after + len(page))}}
        return _Response(200, out)

    def _parse_groups(self, otype: str, raw: Any) -> list[list[dict[str, Any]]]:
        if not isinstance(raw, list):
            raise _ApiError(400, "filterGroups must be a list", "VALIDATION_ERROR")
        if len(raw) > self.MAX_FILTER_GROUPS:
            raise _ApiError(400, f"Too many filter groups: {len(raw)} (maximum "
                                 f"{self.MAX_FILTER_GROUPS})", "VALIDATION_ERROR")
        groups, total = [], 0
        for group in raw:
            filters = (group or {}).get("filters") or []
            total += len(filters)
            if len(filters) > self.MAX_FILTERS_PER_GROUP or total > self.MAX_FILTERS_TOTAL:
                raise _ApiError(400, f"Too many filters (maximum {self.MAX_FILTERS_PER_GROUP} "
                                     f"per group, {self.MAX_FILTERS_TOTAL} in total)",
                                "VALIDATION_ERROR")
            for f in filters:
                if f.get("operator") not in _OPERATORS:
                    raise _ApiError(400, f"Unknown filter operator {f.get('operator')!r}",
                                    "VALIDATION_ERROR")
                if f.get("propertyName") not in self._schema[otype]:
                    raise _ApiError(400, f"Property {f.get('propertyName')!r} does not exist on "
                                         f"{otype}", "VALIDATION_ERROR")
            if filters:
                groups.append(filters)
        return groups

    def _parse_sorts(self, otype: str, raw: Any) -> list[tuple[str, bool]]:
        if not isinstance(raw, list):
            raise _ApiError(400, "sorts must be a list", "VALIDATION_ERROR")
        if len(raw) > 1:
            raise _ApiError(400, "Only one sort is allowed per search", "VALIDATION_ERROR")
        sorts = []
        for item in raw:
            name, direction = (item, "ASCENDING") if isinstance(item, str) else (
                (item or {}).get("propertyName"), (item or {}).get("direction", "ASCENDING"))
            if name not in self._schema[otype] or direction not in ("ASCENDING", "DESCENDING"):
                raise _ApiError(400, f"Invalid sort {item!r}", "VALIDATION_ERROR")
            sorts.append((name, direction == "DESCENDING"))
        return sorts

    def _matches(self, record: _Record, f: dict[str, Any]) -> bool:
        prop = self._schema[record.object_type][f["propertyName"]]
        actual = record.properties.get(prop.name)
        op = f["operator"]
        if op == "HAS_PROPERTY":
            return actual is not None
        if op == "NOT_HAS_PROPERTY":
            return actual is None
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            found = actual is not None and _contains_token(actual, str(f.get("value", "")))
            return found if op == "CONTAINS_TOKEN" else not found
        if op in ("IN", "NOT_IN"):
            wanted = [_sort_key(prop, v) for v in f.get("values") or []]
            inside = actual is not None and _sort_key(prop, actual) in wanted
            return inside if op == "IN" else not inside
        if op == "NEQ":
            return actual is None or _sort_key(prop, actual) != _sort_key(prop, f.get("value"))
        if actual is None:
            return False
        have, value = _sort_key(prop, actual), _sort_key(prop, f.get("value"))
        if have is None or value is None:
            return False
        if op == "BETWEEN":
            high = _sort_key(prop, f.get("highValue"))
            return high is not None and value <= have <= high
        return {"EQ": have == value, "LT": have < value, "LTE": have <= value,
                "GT": have > value, "GTE": have >= value}[op]

    def _query_matches(self, record: _Record, query: str) -> bool:
        needle = query.lower()
        for name in _TYPES[record.object_type].query_props:
            value = (record.properties.get(name) or "").lower()
            if value.startswith(needle) or any(t.startswith(needle) for t in _tokens(value)):
                return True
        return False

    # owners / properties ------------------------------------------------------

    def _list_owners(self, call: Call) -> _Response:
        limit = min(_q_int(call.query, "limit", 100, minimum=1), self.OWNERS_MAX_LIMIT)
        after = _q_int(call.query, "after", None, minimum=0)
        archived = _q_bool(call.query, "archived")
        email = (call.query.get("email") or [""])[0].lower()
        pool = sorted((o for o in self._owners.values() if o.archived == archived
                       and (not email or o.email.lower() == email)
                       and (after is None or int(o.id) >= after)), key=lambda o: int(o.id))
        page = pool[:limit]
        body: dict[str, Any] = {"results": [o.render() for o in page]}
        if len(pool) > limit:
            cursor = str(int(page[-1].id) + 1)
            body["paging"] = {"next": {"after": cursor, "link":
                              f"{self.url}/crm/v3/owners/?after={cursor}&limit={limit}"}}
        return _Response(200, body)

    def _get_owner(self, call: Call, oid: str) -> _Response:
        archived = _q_bool(call.query, "archived")
        by_user = (call.query.get("idProperty") or ["id"])[0] == "userId"
        for owner in self._owners.values():
            key = str(owner.user_id) if by_user else owner.id
            if key == oid and owner.archived == archived:
                return _Response(200, owner.render())
        raise _ApiError(404, "resource not found", "OBJECT_NOT_FOUND")

    def _list_properties(self, call: Call, kind: str) -> _Response:
        otype = self._type(kind)
        return _Response(200, {"results": [p.render(otype, self._schema_created)
                                           for p in self._schema[otype].values()]})

    def _get_property(self, call: Call, kind: str, name: str) -> _Response:
        otype = self._type(kind)
        prop = self._schema[otype].get(name)
        if prop is None:
            raise _ApiError(404, f"Unable to find property {name}", "OBJECT_NOT_FOUND")
        return _Response(200, prop.render(otype, self._schema_created))

    # v4 associations ----------------------------------------------------------

    def _v4_entries(self, otype: str, object_id: str, target: str) -> list[dict[str, Any]]:
        return [{"toObjectId": int(tid),
                 "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": t,
                                       "label": _ASSOC_BY_ID[t][5]} for t in sorted(types)]}
                for tid, types in self._associated(otype, object_id, target)]

    def _v4_list(self, call: Call, kind: str, oid: str, to: str) -> _Response:
        otype, target = self._type(kind), self._type(to)
        limit = min(_q_int(call.query, "limit", self.ASSOC_PAGE_MAX, minimum=1),
                    self.ASSOC_PAGE_MAX)
        after = _q_int(call.query, "after", None, minimum=0)
        entries = [e for e in self._v4_entries(otype, oid, target)
                   if after is None or e["toObjectId"] >= after]
        body: dict[str, Any] = {"results": entries[:limit]}
        if len(entries) > limit:
            cursor = str(entries[limit - 1]["toObjectId"] + 1)
            body["paging"] = {"next": {"after": cursor, "link":
                              f"{self.url}{call.path}?after={cursor}&limit={limit}"}}
        return _Response(200, body)

    def _v4_put(self, call: Call, kind: str, oid: str, to: str, to_id: str) -> _Response:
        otype, target = self._type(kind), self._type(to)
        self._require(otype, oid, archived=False)
        self._require(target, to_id, archived=False)
        specs = call.body if isinstance(call.body, list) else []
        for spec in specs:
            self._associate(otype, oid, target, to_id, spec.get("associationTypeId"))
        return _Response(201, {"fromObjectTypeId": _TYPES[otype].type_id,
                               "fromObjectId": int(oid), "toObjectTypeId": _TYPES[target].type_id,
                               "toObjectId": int(to_id),
                               "labels": [_ASSOC_BY_ID[s.get("associationTypeId")][5]
                                          for s in specs
                                          if _ASSOC_BY_ID[s.get("associationTypeId")][5]]})

    def _v4_put_default(self, call: Call, kind: str, oid: str, to: str,
                        to_id: str) -> _Response:
        otype, target = self._type(kind), self._type(to)
        self._require(otype, oid, archived=False)
        self._require(target, to_id, archived=False)
        self._associate(otype, oid, target, to_id, _DEFAULT_ASSOC[(otype, target)])
        started = _iso(self.clock.now_ms())
        result = {"from": {"id": oid}, "to": {"id": to_id},
                  "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                      "associationTypeId": _DEFAULT_ASSOC[(otype, target)]}}
        return _Response(200, _batch_body([result], started, self.clock))

    def _v4_batch_read(self, call: Call, kind: str, to: str) -> _Response:
        otype, target = self._type(kind), self._type(to)
        inputs = _body_dict(call).get("inputs")
        if not isinstance(inputs, list):
            raise _ApiError(400, "inputs must be a list", "VALIDATION_ERROR")
        if len(inputs) > self.ASSOC_BATCH_MAX_INPUTS:
            raise _ApiError(400, f"Batch input size {len(inputs)} exceeds the maximum of "
                                 f"{self.ASSOC_BATCH_MAX_INPUTS}", "VALIDATION_ERROR")
        started = _iso(self.clock.now_ms())
        results, errors = [], []
        for item in inputs:
            key = str((item or {}).get("id"))
            after = (item or {}).get("after")
            entries = [e for e in self._v4_entries(otype, key, target)
                       if not after or e["toObjectId"] >= int(after)]
            if not entries:
                errors.append({
                    "status": "error", "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {_TYPES[target].singular} is associated with "
                               f"{_TYPES[otype].singular} {key}.",
                    "context": {"fromObjectId": [key]}, "errors": [], "links": {}})
                continue
            result: dict[str, Any] = {"from": {"id": key}, "to": entries[:self.ASSOC_PAGE_MAX]}
            if len(entries) > self.ASSOC_PAGE_MAX:
                result["paging"] = {"next": {"after": str(
                    entries[self.ASSOC_PAGE_MAX - 1]["toObjectId"] + 1)}}
            results.append(result)
        out = _batch_body(results, started, self.clock)
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
            return _Response(207, out)
        return _Response(200, out)


# ----------------------------------------------------------------------- helpers


def _fmt_num(value: float | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rate_limit_body(message: str, policy: str, correlation: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "errorType": "RATE_LIMIT",
            "correlationId": correlation, "policyName": policy}


def _batch_body(results: list[Any], started: str, clock: FakeClock) -> dict[str, Any]:
    return {"status": "COMPLETE", "results": results, "startedAt": started,
            "completedAt": _iso(clock.now_ms())}


def _prop_error(name: str, message: str, code: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": code, "name": name,
            "localizedErrorMessage": message,
            "_detail": {"message": message, "code": code, "context": {"propertyName": [name]}}}


def _body_dict(call: Call) -> dict[str, Any]:
    if call.body is None:
        return {}
    if not isinstance(call.body, dict):
        raise _ApiError(400, "Invalid input JSON: expected an object", "VALIDATION_ERROR")
    return call.body


def _normalise(prop: PropertyDef, value: Any) -> tuple[str | None, tuple[str, str] | None]:
    """Coerce a written value to HubSpot's stored string form, or explain why not."""
    if value is None or value == "":
        return None, None
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = _fmt_num(value) if isinstance(value, (int, float)) else str(value)
    if prop.type == "number":
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            return None, ("INVALID_FLOAT", f"{text} was not a valid number.")
        return text.strip(), None
    if prop.type in ("datetime", "date"):
        ms = _parse_ms(text)
        if ms is None:
            return None, ("INVALID_DATE", f"{text} was not a valid date or datetime "
                                          "(use epoch milliseconds or ISO-8601).")
        if prop.type == "datetime":
            return _iso(ms), None
        if ms % 86_400_000:
            return None, ("INVALID_DATE", f"{text} is not midnight UTC, as a date "
                                          "property requires.")
        return _iso(ms)[:10], None
    if prop.type == "bool":
        if text.lower() not in ("true", "false"):
            return None, ("INVALID_BOOLEAN", f"{text} was not a valid boolean.")
        return text.lower(), None
    if prop.type == "enumeration" and prop.options and text not in prop.options:
        return None, ("INVALID_OPTION", f"{text} was not one of the allowed options: "
                                        f"{', '.join(prop.options)}")
    return text, None


def _sort_key(prop: PropertyDef, value: Any) -> Any:
    """Comparable form of a stored or filter value for the property's type."""
    if value is None:
        return None
    if prop.type == "number":
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if prop.type in ("datetime", "date"):
        return _parse_ms(value)
    return str(value).lower()


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,;:()\[\]<>\"']+", text.lower()) if t]


def _contains_token(actual: str, needle: str) -> bool:
    """CONTAINS_TOKEN: a whole word matches; ``*`` wildcards are allowed."""
    needle = needle.lower().strip()
    if not needle:
        return False
    candidates = [actual.lower(), *_tokens(actual)]
    if "*" in needle:
        return any(fnmatchcase(c, needle) for c in candidates)
    return needle in candidates


def _q_list(query: dict[str, list[str]], key: str) -> list[str] | None:
    """Both ``a,b`` and repeated ``key=a&key=b`` (what hubspot-api-client sends)."""
    if key not in query:
        return None
    items = [part.strip() for raw in query[key] for part in raw.split(",") if part.strip()]
    return items or None


def _q_bool(query: dict[str, list[str]], key: str) -> bool:
    return (query.get(key) or ["false"])[0].strip().lower() == "true"


def _q_int(query: dict[str, list[str]], key: str, default: int | None, *,
           minimum: int) -> Any:
    raw = (query.get(key) or [""])[0].strip()
    if raw == "":
        return default
    if not re.fullmatch(r"-?\d+", raw) or int(raw) < minimum:
        raise _ApiError(400, f"Invalid value for {key}: {raw}", "VALIDATION_ERROR")
    return int(raw)

