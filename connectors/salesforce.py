"""Salesforce connector: bulk, incremental reads and exactly-once task writes over the REST API.

Reads use one SOQL query per object with relationship fields in the same query (``Owner.Email``),
2,000-record pages followed through ``nextRecordsUrl``, and ``queryAll`` so deleted records come
back in incremental syncs. Each stream keeps a cursor: the newest ``SystemModstamp`` seen, plus a
fingerprint of the field mapping so a changed mapping re-reads that object in full. Batches are
yielded page by page; the store applies the whole pull in one transaction.

Writes: a Task per play, owned by the CSM's Salesforce user, carrying the play's ref either at the
end of its Subject (``[kz-0123456789abcdef]``) or in a configured custom field. Before creating,
the connector looks the ref up, so a crash between Salesforce accepting a Task and Kizuna's ledger
recording it never leads to a second Task. ``Task.Description`` cannot be filtered in SOQL, so the
ref never lives only there.

Every request goes through one ``requests.Session`` (a timeout on each call, a count of API calls,
plain http for a local instance such as ``http://127.0.0.1:8000``) and one error mapping: 429,
5xx, ``REQUEST_LIMIT_EXCEEDED`` and dropped connections are retried with the shared
``RetryPolicy``; an expired session logs in again once when username credentials exist; bad
queries and missing permissions fail at once, naming the SOQL and the field.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import ipaddress
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests
from pydantic import Field
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
)

from connectors.retry import RetryPolicy
from core.config import Settings, Strict
from core.domain import (
    LANGUAGES,
    Account,
    Activity,
    ActivityKind,
    Contact,
    CrmTask,
    MetricPoint,
    Record,
    SyncBatch,
)
from core.errors import (
    AuthError,
    ConfigError,
    ConfigErrors,
    ConnectorError,
    FatalAPIError,
    RetriableAPIError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SOURCE = "salesforce"
ID_CHUNK = 300            # ids per ``IN (...)`` list: keeps the GET URL below 16,384 bytes
LOAD_ALL_ABOVE = 1000     # more accounts than this to look up: read every open renewal instead
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REF_RE = re.compile(r"\[(kz-[0-9a-f]{16})\]")
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_NUMERIC = {"double", "currency", "percent", "int", "long"}
_DATES = {"date", "datetime"}

ApiName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=80)]
FieldPath = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*){0,4}$",
                                 max_length=200)]


# -- kizuna.yaml `salesforce:` ------------------------------------------------------------------

class AccountFields(Strict):
    """Account fields read into Kizuna's account record; ``null`` leaves a value empty."""

    name: FieldPath = "Name"
    owner_email: FieldPath | None = "Owner.Email"
    potential: FieldPath | None = "AnnualRevenue"
    arr: FieldPath | None = None           # when null, the renewal opportunity's Amount
    mrr: FieldPath | None = None
    contract_start: FieldPath | None = None
    lifecycle_stage: FieldPath | None = "Type"
    industry: FieldPath | None = "Industry"
    plan_limit: FieldPath | None = None
    language: FieldPath | None = None      # e.g. a picklist "Japanese"/"English"
    #: raw value of the language field → ja/en; "ja…", "Japan…", "日本…", "en…", "English", "英…"
    #: are understood without an entry; anything else falls back to the team's language.
    language_values: dict[str, Literal["ja", "en"]] = Field(default_factory=dict)
    #: extra fields copied into the account's custom facts, e.g. conversion_target: Target_CVR__c
    custom: dict[str, FieldPath] = Field(default_factory=dict)


class ContactFields(Strict):
    name: FieldPath = "Name"
    email: FieldPath | None = "Email"
    title: FieldPath | None = "Title"
    primary: FieldPath | None = None       # a checkbox marking the main contact


class ActivitySettings(Strict):
    tasks: bool = True
    events: bool = True
    #: the first sync reads activities modified in the last this many days (0: all of them)
    history_days: int = Field(730, ge=0)


class RenewalSettings(Strict):
    """The renewal date: an Account date field, or the earliest open renewal opportunity."""

    account_field: FieldPath | None = None       # when set, opportunities are not read
    opportunity_type: str | None = "Renewal"     # null: no renewal dates from opportunities
    type_field: ApiName = "Type"
    amount_as_arr: bool = True                   # the renewal's Amount is the ARR if no arr field


class UsageObject(Strict):
    """A custom object with one row per account and period, e.g. monthly form impressions."""

    name: ApiName
    account_field: ApiName                 # lookup to Account
    period_field: ApiName                  # date (or datetime) the value's window ends on
    value_field: ApiName
    metric: str | None = None              # default: `usage.metric` of kizuna.yaml
    history_days: int = Field(400, ge=0)   # first sync reads periods this recent (0: all)


class UsageSettings(Strict):
    #: metric → Account field holding its current value; read as one point per day
    account_fields: dict[str, FieldPath] = Field(default_factory=dict)
    object: UsageObject | None = None


class TaskSettings(Strict):
    status: str = "Not Started"
    completed_status: str = "Completed"
    #: a Task text field (e.g. Kizuna_Ref__c) that holds the play's ref instead of the Subject
    ref_field: ApiName | None = None
    priorities: dict[Literal["high", "medium", "low"], str] = Field(
        default_factory=lambda: {"high": "High", "medium": "Normal", "low": "Low"})


class RetrySettings(Strict):
    attempts: int = Field(5, ge=1)
    max_total_wait: float = Field(120.0, ge=0)
    max_single_wait: float = Field(60.0, ge=0)


class SalesforceSettings(Strict):
    """The ``salesforce:`` section of kizuna.yaml. See docs/salesforce.md."""

    api_version: Annotated[str, Field(pattern=r"^\d{2}\.0$")] = "59.0"
    timeout_seconds: float = Field(60.0, gt=0)
    overlap_seconds: int = Field(60, ge=0)    # re-read what was written this long before a read
    describe_cache_hours: float = Field(24.0, ge=0)  # 0: describe on every start
    accounts: AccountFields = AccountFields()
    contacts: ContactFields = ContactFields()
    activities: ActivitySettings = ActivitySettings()
    renewals: RenewalSettings = RenewalSettings()
    usage: UsageSettings = UsageSettings()
    tasks: TaskSettings = TaskSettings()
    retry: RetrySettings = RetrySettings()


# -- credentials ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """What the environment gave us; ``repr`` never shows a secret."""

    instance_url: str | None = None
    session_id: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    domain: str = "login"

    @property
    def can_login(self) -> bool:
        return bool(self.username and self.password)


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text or None


def credentials_from(settings: Settings) -> Credentials:
    """Read SALESFORCE_* variables; missing ones are a ConfigError naming them."""
    env = settings.env
    instance = (env.salesforce_instance_url or "").strip() or None
    session_id = _secret(env.salesforce_session_id)
    username = (env.salesforce_username or "").strip() or None
    password = _secret(env.salesforce_password)
    token = _secret(env.salesforce_security_token)
    domain = (env.salesforce_domain or "").strip() or "login"
    domain = re.sub(r"^https?://", "", domain).removesuffix("/").removesuffix(".salesforce.com")
    if instance is not None:
        parts = urlsplit(instance)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"not an http(s) URL: {instance!r}", file="environment",
                              field="SALESFORCE_INSTANCE_URL")
        instance = f"{parts.scheme}://{parts.netloc}"
    if session_id and instance is None:
        raise ConfigError("SALESFORCE_SESSION_ID needs SALESFORCE_INSTANCE_URL "
                          "(e.g. https://yourorg.my.salesforce.com)", file="environment",
                          field="SALESFORCE_INSTANCE_URL")
    if not session_id and not (username and password):
        raise ConfigError(
            "Salesforce credentials missing: set SALESFORCE_INSTANCE_URL and "
            "SALESFORCE_SESSION_ID, or SALESFORCE_USERNAME, SALESFORCE_PASSWORD and "
            "SALESFORCE_SECURITY_TOKEN (plus SALESFORCE_DOMAIN for a sandbox or My Domain)",
            file="environment", field="SALESFORCE_*")
    return Credentials(instance, session_id, username, password, token, domain)


# -- HTTP --------------------------------------------------------------------------------------

def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or "]" in host else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class SalesforceSession(requests.Session):
    """The session simple-salesforce sends every request through.

    simple-salesforce always builds ``https://`` URLs; for hosts named in ``http_hosts`` (a
    local ``http://`` instance) the scheme is rewritten. Every request gets a timeout (requests
    has none by default), REST calls and logins are counted, and the last response is kept per
    thread so the error mapping can read ``Retry-After``.
    """

    def __init__(self, *, timeout: float, http_hosts: Iterable[str] = ()) -> None:
        super().__init__()
        self.timeout = timeout
        self.http_hosts = {h.lower() for h in http_hosts}
        if self.http_hosts and all(_is_loopback(h) for h in self.http_hosts):
            self.trust_env = False   # a loopback server is reached directly, never via a proxy
        self.api_calls = 0
        self.logins = 0
        self.limit_info: str | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def request(self, method: str | bytes, url: str | bytes,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        parts = urlsplit(text)
        if parts.scheme == "https" and parts.netloc.lower() in self.http_hosts:
            text = urlunsplit(("http", parts.netloc, parts.path, parts.query, parts.fragment))
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        self._local.response = None
        response = super().request(method, text, *args, **kwargs)
        with self._lock:
            if "/services/data/" in parts.path:
                self.api_calls += 1
            elif "/services/Soap/" in parts.path:
                self.logins += 1
            limit = response.headers.get("Sforce-Limit-Info")
            if limit:
                self.limit_info = limit
        self._local.response = response
        return response

    def retry_after(self) -> float | None:
        """Seconds the last response on this thread asked us to wait, if it said."""
        response = getattr(self._local, "response", None)
        value = response.headers.get("Retry-After") if response is not None else None
        if not value:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)


# -- errors -------------------------------------------------------------------------------------

class SalesforceFatalError(FatalAPIError):
    """A request Salesforce refused for good; ``code`` is its errorCode (e.g. INVALID_FIELD)."""

    def __init__(self, message: str, *, code: str | None, soql: str | None = None,
                 fields: Sequence[str] = ()) -> None:
        self.code = code
        self.soql = soql
        self.fields = tuple(fields)
        super().__init__(message, connector=SOURCE, detail=soql)


_RETRIABLE_CODES = {"REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"}
_COLUMN_RE = re.compile(r"No such column '([^']+)' on (?:entity|sobject of type) '?(\w+)")
_RELATION_RE = re.compile(r"Didn't understand relationship '([^']+)'")


def _first_error(content: Any) -> tuple[str | None, str, list[str]]:
    """errorCode, message and fields of a Salesforce error body (a list of errors)."""
    item = content[0] if isinstance(content, list) and content else content
    if isinstance(item, Mapping):
        fields = item.get("fields") or []
        return (item.get("errorCode") or item.get("statusCode"),
                str(item.get("message") or "").strip(), [str(f) for f in fields])
    if isinstance(content, bytes):
        content = content.decode("utf-8", errors="replace")
    return None, str(content or "").strip()[:300], []


def _short(soql: str, limit: int = 600) -> str:
    return soql if len(soql) <= limit else f"{soql[:limit // 2]} … {soql[-limit // 3:]}"


# -- values ---------------------------------------------------------------------------------------

def _value(record: Mapping[str, Any] | None, path: str) -> Any:
    """A field of a query row by (dotted, any-case) path; a null lookup gives None."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        if part in current:
            current = current[part]
            continue
        folded = part.casefold()
        current = next((v for k, v in current.items() if k.casefold() == folded), None)
    return current


def parse_datetime(text: Any) -> datetime | None:
    """Salesforce's ``2026-01-01T00:00:00.000+0000`` (or any ISO form) as an aware UTC time."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    value = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def soql_datetime(value: datetime) -> str:
    """A SOQL dateTime literal: whole seconds, ``Z`` (SOQL rejects Salesforce's own ``+0000``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_string(value: str) -> str:
    """A quoted SOQL string literal."""
    escaped = (value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f"'{escaped}'"


def _ids(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values if _ID_RE.match(v))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).replace(",", ""))
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (Mapping, list)):
        return None
    text = str(value).strip()
    return text or None


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a field value for ``Account.custom``."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# -- describe -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Described:
    """What check() needs from one sObject describe: field names and types, lookups, prefix."""

    name: str
    key_prefix: str | None
    fields: Mapping[str, tuple[str, str]]      # lower-case name → (Name, type)
    relationships: Mapping[str, str]           # lower-case relationship name → field Name

    @classmethod
    def from_describe(cls, payload: Mapping[str, Any]) -> Described:
        fields = {f["name"].lower(): (f["name"], f.get("type") or "")
                  for f in payload.get("fields") or []}
        rels = {f["relationshipName"].lower(): f["name"]
                for f in payload.get("fields") or [] if f.get("relationshipName")}
        return cls(payload["name"], payload.get("keyPrefix"), fields, rels)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "key_prefix": self.key_prefix,
                "fields": {k: list(v) for k, v in self.fields.items()},
                "relationships": dict(self.relationships)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Described:
        return cls(data["name"], data.get("key_prefix"),
                   {k: (v[0], v[1]) for k, v in data["fields"].items()},
                   dict(data["relationships"]))

    def has(self, path: str) -> bool:
        """A plain field exists, or the first hop of a dotted path is a lookup."""
        first, dot, _ = path.partition(".")
        if dot:
            return first.lower() in self.relationships
        return first.lower() in self.fields

    def type_of(self, name: str) -> str | None:
        hit = self.fields.get(name.lower())
        return hit[1] if hit else None


@dataclass(frozen=True)
class _Need:
    """One field a mapping needs: where it is configured, the types it may have, and what to
    fall back to when it is a default the org lacks (an explicit setting must exist)."""

    sobject: str
    path: str
    key: tuple[str | int, ...]       # location in kizuna.yaml (under salesforce:)
    types: frozenset[str] = frozenset()
    explicit: bool = True
    fallback: tuple[str, str, Any] | None = None   # (section, setting, value)


# -- streams -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stream:
    """One incremental read: its cursor key, SELECT list and filters."""

    name: str
    sobject: str
    fields: tuple[str, ...]
    where: tuple[str, ...] = ()          # on every read
    full_where: tuple[str, ...] = ()     # on a full read only (history window)
    floor: datetime | None = None        # a full read covers records modified since then
    material: str = ""                   # mapping settings that change what a record becomes

    @property
    def fingerprint(self) -> str:
        text = json.dumps([self.sobject, self.fields, self.where, self.material])
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def soql(self, since: datetime | None) -> str:
        conditions = list(self.where)
        if since is None:
            conditions = ["IsDeleted = false", *conditions, *self.full_where]
        else:
            conditions.append(f"SystemModstamp > {soql_datetime(since)}")
        select = ", ".join(self.fields)
        return f"SELECT {select} FROM {self.sobject} WHERE {' AND '.join(conditions)}"


def _select(*fields: str | None) -> tuple[str, ...]:
    """A SELECT list without blanks or duplicates (SOQL rejects a field selected twice)."""
    seen: set[str] = set()
    out: list[str] = []
    for name in fields:
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class Cursor:
    """A stream's bookmark: the newest SystemModstamp seen and when that read started.

    Stored as ``<newest>|<read at>|<mapping fingerprint>``. A record can commit after a read
    with a stamp older than the newest one that read saw, but only if it was written around
    that read; so the next read starts up to ``overlap`` before the newest stamp, and only as
    far back as ``overlap`` before the previous read started (nothing when the last change is
    older than that).
    """

    newest: datetime
    read_at: datetime
    fingerprint: str

    def encode(self) -> str:
        return f"{soql_datetime(self.newest)}|{soql_datetime(self.read_at)}|{self.fingerprint}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        parts = text.split("|")
        if len(parts) != 3:
            return None
        newest, read_at = parse_datetime(parts[0]), parse_datetime(parts[1])
        if newest is None or read_at is None:
            return None
        return cls(newest, read_at, parts[2])

    def lower_bound(self, overlap: timedelta) -> datetime:
        return max(self.newest - overlap, min(self.newest, self.read_at - overlap))


# -- the connector -------------------------------------------------------------------------------

class SalesforceConnector:
    """Salesforce behind Kizuna's connector protocol (see ``connectors.base.Connector``)."""

    name = SOURCE

    def __init__(
        self,
        config: SalesforceSettings,
        credentials: Credentials,
        *,
        tz: ZoneInfo | str = "Asia/Tokyo",
        language: str = "ja",
        qbr_pattern: str = r"QBR|Quarterly|四半期|定例",
        usage_metric: str = "form_impressions",
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        describe_cache: Path | None = None,
        config_error: Callable[[str, tuple[str | int, ...]], ConfigError] | None = None,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.language = language if language in LANGUAGES else "ja"
        self.qbr = re.compile(qbr_pattern, re.IGNORECASE)
        self.usage_metric = usage_metric
        self.retry = retry or RetryPolicy(attempts=config.retry.attempts,
                                          max_total_wait=config.retry.max_total_wait,
                                          max_single_wait=config.retry.max_single_wait)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.describe_cache = describe_cache if config.describe_cache_hours > 0 else None
        self._config_error = config_error or _yaml_error
        http_hosts = []
        if credentials.instance_url and credentials.instance_url.startswith("http://"):
            http_hosts.append(urlsplit(credentials.instance_url).netloc)
        self.http = SalesforceSession(timeout=config.timeout_seconds, http_hosts=http_hosts)
        self._sf: Salesforce | None = None
        self._described: dict[str, Described] = {}
        self._checked = False
        self._users: dict[str, str] | None = None
        self._lock = threading.RLock()
        language_values = {k.casefold(): v for k, v in config.accounts.language_values.items()}
        self._language_values = language_values

    # -- connection ------------------------------------------------------------------------

    def _client(self) -> Salesforce:
        with self._lock:
            if self._sf is None:
                creds = self.credentials
                if creds.session_id and creds.instance_url:
                    self._sf = self._direct(creds.session_id, creds.instance_url)
                else:
                    self._login()
            assert self._sf is not None
            return self._sf

    def _direct(self, session_id: str, instance_url: str) -> Salesforce:
        return Salesforce(instance_url=instance_url, session_id=session_id, session=self.http,
                          version=self.config.api_version)

    def _login(self) -> None:
        """SOAP login with username, password and security token (never logged)."""
        creds = self.credentials
        if not creds.can_login:
            raise AuthError(
                "the Salesforce session has expired or is invalid (INVALID_SESSION_ID): set a "
                "fresh SALESFORCE_SESSION_ID, or set SALESFORCE_USERNAME, SALESFORCE_PASSWORD "
                "and SALESFORCE_SECURITY_TOKEN so Kizuna can log in again by itself",
                connector=SOURCE)
        login_url = creds.instance_url
        where = login_url or f"https://{creds.domain}.salesforce.com"
        log.info("logging in to Salesforce at %s as %s", where, creds.username)
        try:
            session_id, instance = SalesforceLogin(
                username=creds.username, password=creds.password,
                security_token=creds.security_token or "", domain=creds.domain,
                sf_version=self.config.api_version, session=self.http, scratch_url=login_url)
        except SalesforceAuthenticationFailed as exc:
            raise AuthError(f"Salesforce login at {where} as {creds.username} failed: "
                            f"{exc.code}: {exc.message}", connector=SOURCE) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetriableAPIError(f"cannot reach {where} to log in: {type(exc).__name__}",
                                    connector=SOURCE) from None
        scheme = "http" if instance.lower() in self.http.http_hosts else "https"
        self._sf = self._direct(session_id, f"{scheme}://{instance}")

    # -- calls ----------------------------------------------------------------------------

    def _request(self, what: str, fn: Callable[[Salesforce], T], *, soql: str | None = None) -> T:
        """One API call with the error mapping; an expired session logs in again, once."""
        try:
            return self._mapped(what, fn, soql)
        except SalesforceExpiredSession:
            pass
        with self._lock:
            self._login()
        try:
            return self._mapped(what, fn, soql)
        except SalesforceExpiredSession as exc:
            code, message, _ = _first_error(exc.content)
            raise AuthError(f"Salesforce rejected a fresh login's session for {what}: "
                            f"{code}: {message}", connector=SOURCE) from None

    def _mapped(self, what: str, fn: Callable[[Salesforce], T], soql: str | None) -> T:
        sf = self._client()
        try:
            return fn(sf)
        except SalesforceExpiredSession:
            raise
        except SalesforceError as exc:
            raise self._error(what, exc, soql) from None
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise RetriableAPIError(f"{what}: connection failed ({type(exc).__name__})",
                                    connector=SOURCE) from None
        except requests.RequestException as exc:   # e.g. a proxy's HTML page instead of JSON
            raise RetriableAPIError(f"{what}: unreadable answer ({type(exc).__name__})",
                                    connector=SOURCE) from None

    def _call(self, what: str, fn: Callable[[Salesforce], T], *, soql: str | None = None) -> T:
        """An API call that is safe to repeat, retried within the retry policy."""
        return self.retry.run(self._request, what, fn, soql=soql)

    def _error(self, what: str, exc: SalesforceError, soql: str | None) -> ConnectorError:
        code, message, fields = _first_error(exc.content)
        status = exc.status
        if status == 429 or status >= 500 or code in _RETRIABLE_CODES:
            wait = self.http.retry_after()
            budget = self._budget()
            if code == "REQUEST_LIMIT_EXCEEDED" and budget:
                message = f"{message} (daily API use {budget[0]}/{budget[1]})"
            return RetriableAPIError(f"{what}: HTTP {status} {code or ''}: {message}".strip(),
                                     connector=SOURCE, retry_after=wait, detail=soql)
        column = _COLUMN_RE.search(message)
        relation = _RELATION_RE.search(message)
        named = list(fields)
        if column:
            named.append(f"{column.group(2)}.{column.group(1)}")
        elif relation:
            named.append(relation.group(1))
        text = f"{what}: HTTP {status} {code or ''}: {message}"
        if named:
            text += f" (field: {', '.join(named)})"
        if soql:
            text += f"\nSOQL: {_short(soql)}"
        if code in ("INVALID_FIELD", "INVALID_TYPE") and self.describe_cache is not None:
            self.describe_cache.unlink(missing_ok=True)   # describe again on the next start
        return SalesforceFatalError(text, code=code, soql=soql, fields=named)

    def _budget(self) -> tuple[int, int] | None:
        """(used, max) of the org's daily API requests, from the latest Sforce-Limit-Info."""
        usage = None
        if self.http.limit_info:   # every answer, errors included
            usage = Salesforce.parse_api_usage(self.http.limit_info).get("api-usage")
        if usage is None and self._sf is not None:
            usage = self._sf.api_usage.get("api-usage")
        return (usage.used, usage.total) if usage is not None else None

    def _pages(self, soql: str) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """(records, more pages follow) for every page of a queryAll; each page is retried on
        its own, since a query locator stays valid after a failed fetch."""
        page = self._call("query", lambda sf: sf.query(soql, include_deleted=True), soql=soql)
        while True:
            next_url = page.get("nextRecordsUrl")
            more = not page.get("done", True) and bool(next_url)
            yield list(page.get("records") or []), more
            if not more:
                return
            fetch = functools.partial(_query_more, url=next_url)
            page = self._call("query (next page)", fetch, soql=soql)

    def _all(self, soql: str) -> Iterator[dict[str, Any]]:
        for records, _ in self._pages(soql):
            yield from records

    # -- check ----------------------------------------------------------------------------

    def check(self) -> None:
        """Describe each object once (cached) and verify every mapped field exists.

        A field written in kizuna.yaml that the org lacks is a ConfigError naming the object,
        the field and the setting; a default the org lacks is left out with a warning.
        """
        with self._lock:
            if self._checked:
                return
            needs = self._needs()
            self._describe(sorted({n.sobject for n in needs}),
                           optional={n.sobject for n in needs if not n.explicit} - {
                               n.sobject for n in needs if n.explicit})
            errors: list[ConfigError] = []
            fallbacks: dict[tuple[str, str], Any] = {}
            for need in needs:
                problem = self._problem(need)
                if problem is None:
                    continue
                if need.explicit or need.fallback is None:
                    errors.append(self._config_error(problem, need.key))
                    continue
                section, setting, value = need.fallback
                if (section, setting) not in fallbacks:
                    log.warning("%s; going without it (set salesforce.%s in kizuna.yaml to "
                                "choose)", problem, ".".join(str(k) for k in need.key))
                fallbacks[(section, setting)] = value
            if errors:
                if self.describe_cache is not None:
                    self.describe_cache.unlink(missing_ok=True)
                raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
            if fallbacks:
                self._apply_fallbacks(fallbacks)
            self._checked = True

    def _problem(self, need: _Need) -> str | None:
        described = self._described.get(need.sobject)
        if described is None:
            return (f"the Salesforce org has no {need.sobject} object (or the integration "
                    "user cannot see it)")
        if not described.has(need.path):
            return (f"the {need.sobject} object has no field {need.path!r} (or the integration "
                    "user cannot see it: check its field-level security)")
        kind = described.type_of(need.path)
        if need.types and "." not in need.path and kind not in need.types:
            return (f"{need.sobject}.{need.path} is a {kind} field; expected "
                    f"{' or '.join(sorted(need.types))}")
        return None

    def _apply_fallbacks(self, fallbacks: Mapping[tuple[str, str], Any]) -> None:
        sections: dict[str, dict[str, Any]] = {}
        for (section, setting), value in fallbacks.items():
            sections.setdefault(section, {})[setting] = value
        update = {name: getattr(self.config, name).model_copy(update=values)
                  for name, values in sections.items()}
        self.config = self.config.model_copy(update=update)

    def _needs(self) -> list[_Need]:
        cfg = self.config
        needs: list[_Need] = []

        def need(sobject: str, path: str | None, key: tuple[str | int, ...] = (),
                 types: Iterable[str] = (), explicit: bool = True,
                 fallback: tuple[str, str, Any] | None = None) -> None:
            if path:
                needs.append(_Need(sobject, path, key or ("(standard field)",),
                                   frozenset(types), explicit, fallback))

        def mapped(sobject: str, section: str, model: Strict, setting: str,
                   types: Iterable[str] = ()) -> None:
            need(sobject, getattr(model, setting), (section, setting), types,
                 explicit=setting in model.model_fields_set,
                 fallback=(section, setting, None))

        for name in ("Id", "IsDeleted", "SystemModstamp", "Name"):
            need("Account", name)
        a = cfg.accounts
        for setting in ("name", "owner_email", "lifecycle_stage", "industry", "language"):
            mapped("Account", "accounts", a, setting)
        for setting in ("potential", "arr", "mrr", "plan_limit"):
            mapped("Account", "accounts", a, setting, _NUMERIC)
        mapped("Account", "accounts", a, "contract_start", _DATES)
        for key, path in a.custom.items():
            need("Account", path, ("accounts", "custom", key))
        for metric, path in cfg.usage.account_fields.items():
            need("Account", path, ("usage", "account_fields", metric), _NUMERIC)
        r = cfg.renewals
        if r.account_field:
            need("Account", r.account_field, ("renewals", "account_field"), _DATES)
        elif r.opportunity_type:
            chosen = bool({"opportunity_type", "type_field"} & r.model_fields_set)
            off = ("renewals", "opportunity_type", None)
            for name in ("Id", "IsDeleted", "SystemModstamp", "AccountId", "CloseDate",
                         "IsClosed"):
                need("Opportunity", name, ("renewals", "opportunity_type"), explicit=chosen,
                     fallback=off)
            need("Opportunity", r.type_field, ("renewals", "type_field"), explicit=chosen,
                 fallback=off)
            if r.amount_as_arr and not a.arr:
                need("Opportunity", "Amount", ("renewals", "amount_as_arr"), _NUMERIC,
                     explicit="amount_as_arr" in r.model_fields_set,
                     fallback=("renewals", "amount_as_arr", False))
        c = cfg.contacts
        for name in ("Id", "IsDeleted", "SystemModstamp", "AccountId"):
            need("Contact", name)
        for setting in ("name", "email", "title", "primary"):
            mapped("Contact", "contacts", c, setting)
        for name in ("Id", "IsDeleted", "SystemModstamp", "WhatId", "Subject"):
            need("Task", name)
        need("Task", cfg.tasks.ref_field, ("tasks", "ref_field"))
        if cfg.activities.events:
            chosen = "events" in cfg.activities.model_fields_set
            for name in ("Id", "IsDeleted", "SystemModstamp", "WhatId", "Subject"):
                need("Event", name, ("activities", "events"), explicit=chosen,
                     fallback=("activities", "events", False))
        u = cfg.usage.object
        if u is not None:
            for name in ("Id", "IsDeleted", "SystemModstamp"):
                need(u.name, name, ("usage", "object", "name"))
            need(u.name, u.account_field, ("usage", "object", "account_field"))
            need(u.name, u.period_field, ("usage", "object", "period_field"), _DATES)
            need(u.name, u.value_field, ("usage", "object", "value_field"), _NUMERIC)
        return needs

    def _describe(self, objects: Sequence[str], optional: set[str]) -> None:
        """Describe what is not described yet; an optional object the org lacks is skipped."""
        cached = self._read_describe_cache()
        for name in objects:
            if name in self._described:
                continue
            if name in cached:
                self._described[name] = cached[name]
                continue
            try:
                payload = self._call(f"describe {name}",
                                     lambda sf, n=name: sf.restful(f"sobjects/{n}/describe/"))
            except SalesforceFatalError as exc:
                if exc.code != "NOT_FOUND":
                    raise
                if name in optional:
                    continue
                key: tuple[str | int, ...] = ("usage", "object", "name") if name not in (
                    "Account", "Contact", "Task", "Event", "Opportunity") else ()
                raise self._config_error(
                    f"the Salesforce org has no {name} object (or the integration user "
                    "cannot see it)", key) from None
            self._described[name] = Described.from_describe(payload or {"name": name})
        self._write_describe_cache()

    def _cache_key(self) -> str:
        host = self.credentials.instance_url or self.credentials.domain
        return f"{host}|{self.credentials.username or ''}|{self.config.api_version}"

    def _read_describe_cache(self) -> dict[str, Described]:
        path = self.describe_cache
        if path is None or not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            saved = datetime.fromisoformat(data["saved_at"])
            fresh = self.clock() - saved < timedelta(hours=self.config.describe_cache_hours)
            if data.get("key") != self._cache_key() or not fresh:
                return {}
            return {name: Described.from_json(d) for name, d in data["objects"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _write_describe_cache(self) -> None:
        path = self.describe_cache
        if path is None:
            return
        data = {"key": self._cache_key(), "saved_at": self.clock().isoformat(),
                "objects": {n: d.as_json() for n, d in self._described.items()}}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot keep the Salesforce describe cache at %s: %s", path, exc)

    def _has(self, sobject: str, name: str) -> bool:
        described = self._described.get(sobject)
        return described is not None and described.has(name)

    # -- pull -------------------------------------------------------------------------------

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    def pull(self, cursors: Mapping[str, str]) -> Iterator[SyncBatch]:
        """Yield what changed since ``cursors``, object by object, page by page."""
        self.check()
        today = self.today()
        full_accounts = yield from self._accounts_and_renewals(cursors, today)
        yield from self._account_metrics(cursors, full=full_accounts, today=today)
        yield from self._read(self._contact_stream(), cursors, self._contacts)
        if self.config.activities.tasks:
            yield from self._read(self._task_stream(), cursors, self._tasks)
        if self.config.activities.events:
            yield from self._read(self._event_stream(), cursors, self._events)
        if self.config.usage.object is not None:
            yield from self._read(self._usage_stream(), cursors, self._usage_points)

    def _overlap(self) -> timedelta:
        return timedelta(seconds=self.config.overlap_seconds)

    def _cursor(self, cursors: Mapping[str, str], stream: Stream) -> Cursor | None:
        """The stream's cursor, or None for a full read (none yet, or the mapping changed)."""
        raw = cursors.get(stream.name)
        cursor = Cursor.decode(raw) if raw else None
        if cursor is not None and cursor.fingerprint != stream.fingerprint:
            log.info("the %s mapping changed since the last sync: reading it in full",
                     stream.name)
            return None
        return cursor

    def _soql(self, stream: Stream, cursor: Cursor | None) -> str:
        return stream.soql(cursor.lower_bound(self._overlap()) if cursor else None)

    def _read(self, stream: Stream, cursors: Mapping[str, str],
              convert: Callable[[list[dict[str, Any]], bool],
                                tuple[list[Record], dict[str, list[str]]]],
              ) -> Iterator[SyncBatch]:
        cursor = self._cursor(cursors, stream)
        read_at = self.clock()
        newest = cursor.newest if cursor else stream.floor or EPOCH
        for records, _ in self._pages(self._soql(stream, cursor)):
            newest = max([newest, *(_stamp(r) for r in records)])
            converted, deleted = convert(records, cursor is not None)
            yield SyncBatch(stream.name, tuple(converted),
                            {k: tuple(v) for k, v in deleted.items() if v})
        yield SyncBatch(stream.name, cursor=Cursor(newest, read_at, stream.fingerprint).encode())

    # streams ----------------------------------------------------------------------------------

    def _floor(self, days: int) -> datetime | None:
        if days <= 0:
            return None
        start = datetime.combine(self.today() - timedelta(days=days), time(0), self.tz)
        return start.astimezone(UTC)

    def _material(self, *parts: Any) -> str:
        return json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)

    def _account_stream(self) -> Stream:
        a, r = self.config.accounts, self.config.renewals
        fields = _select("Id", "IsDeleted", "SystemModstamp", a.name, a.owner_email, a.potential,
                         a.arr, a.mrr, a.contract_start, a.lifecycle_stage, a.industry,
                         a.plan_limit, a.language, r.account_field, *a.custom.values(),
                         *self.config.usage.account_fields.values())
        material = self._material(a.model_dump(), r.model_dump(),
                                  self.config.usage.account_fields, self.language)
        return Stream("Account", "Account", fields, material=material)

    def _opportunity_stream(self) -> Stream | None:
        r = self.config.renewals
        if r.account_field or not r.opportunity_type:
            return None
        amount = "Amount" if self._has("Opportunity", "Amount") else None
        fields = _select("Id", "IsDeleted", "SystemModstamp", "AccountId", "CloseDate",
                         "IsClosed", amount)
        where = (f"{r.type_field} = {soql_string(r.opportunity_type)}",)
        return Stream("Opportunity", "Opportunity", fields, where,
                      material=self._material(r.model_dump()))

    def _contact_stream(self) -> Stream:
        c = self.config.contacts
        fields = _select("Id", "IsDeleted", "SystemModstamp", "AccountId", c.name, c.email,
                         c.title, c.primary)
        return Stream("Contact", "Contact", fields)

    def _activity_floor(self) -> tuple[tuple[str, ...], datetime | None]:
        """A first sync reads the activities modified within ``history_days``."""
        floor = self._floor(self.config.activities.history_days)
        if floor is None:
            return (), None
        return (f"SystemModstamp >= {soql_datetime(floor)}",), floor

    def _optional(self, sobject: str, *names: str) -> list[str]:
        return [n for n in names if self._has(sobject, n)]

    def _task_stream(self) -> Stream:
        optional = self._optional("Task", "AccountId", "Status", "IsClosed", "ActivityDate",
                                  "Owner.Email", "Type", "TaskSubtype", "CompletedDateTime",
                                  "CreatedDate")
        fields = _select("Id", "IsDeleted", "SystemModstamp", "WhatId", "Subject", *optional,
                         self.config.tasks.ref_field)
        full_where, floor = self._activity_floor()
        material = self._material(self.qbr.pattern, self.config.tasks.ref_field)
        return Stream("Task", "Task", fields, full_where=full_where, floor=floor,
                      material=material)

    def _event_stream(self) -> Stream:
        optional = self._optional("Event", "AccountId", "Owner.Email", "Type", "StartDateTime",
                                  "ActivityDateTime", "ActivityDate", "CreatedDate")
        fields = _select("Id", "IsDeleted", "SystemModstamp", "WhatId", "Subject", *optional)
        full_where, floor = self._activity_floor()
        return Stream("Event", "Event", fields, full_where=full_where, floor=floor,
                      material=self._material(self.qbr.pattern))

    def _usage_stream(self) -> Stream:
        u = self.config.usage.object
        assert u is not None
        fields = _select("Id", "IsDeleted", "SystemModstamp", u.account_field, u.period_field,
                         u.value_field)
        full_where: tuple[str, ...] = ()
        if u.history_days:
            first = self.today() - timedelta(days=u.history_days)
            if self._described[u.name].type_of(u.period_field) == "datetime":
                start = datetime.combine(first, time(0), self.tz)
                full_where = (f"{u.period_field} >= {soql_datetime(start)}",)
            else:
                full_where = (f"{u.period_field} >= {first.isoformat()}",)
        material = self._material(u.model_dump(), self.usage_metric, str(self.tz))
        return Stream(u.name, u.name, fields, full_where=full_where, material=material)

    # accounts and renewals ----------------------------------------------------------------------

    def _accounts_and_renewals(self, cursors: Mapping[str, str],
                               today: date) -> Iterator[SyncBatch]:
        """Accounts with their renewal dates; returns whether every account was read.

        Full: every renewal opportunity first, then every account. Incremental, with up to a
        page of changed accounts (the usual case): the changed accounts, then one Opportunity
        query that both finds changed renewals and looks up those accounts' open renewals;
        accounts whose renewals changed on their own are read again by Id.
        """
        accounts = self._account_stream()
        opportunity = self._opportunity_stream()
        renewals = _Renewals(self)
        account_cursor = self._cursor(cursors, accounts)
        opp_cursor = self._cursor(cursors, opportunity) if opportunity else None
        read_at = self.clock()
        emitted: set[str] = set()
        affected: set[str] = set()
        opp_bookmark: str | None = None
        if account_cursor is None or (opportunity is not None and opp_cursor is None):
            account_cursor = None
            if opportunity is not None:
                opp_bookmark = self._all_renewals(opportunity, renewals, read_at)
        newest = account_cursor.newest if account_cursor else EPOCH
        pages = self._pages(self._soql(accounts, account_cursor))
        records, more = next(pages)
        if opportunity is not None and account_cursor is not None and opp_cursor is not None:
            live = [r["Id"] for r in records if not r.get("IsDeleted")]
            affected, opp_bookmark = self._changed_renewals(
                opportunity, opp_cursor, [] if more else live, renewals, read_at)
            if more:
                renewals.load_all()   # many accounts changed: one read of every open renewal
        while True:
            newest = max([newest, *(_stamp(r) for r in records)])
            yield self._account_batch(records, renewals, emitted, today)
            if not more:
                break
            records, more = next(pages)
        yield SyncBatch(accounts.name,
                        cursor=Cursor(newest, read_at, accounts.fingerprint).encode())
        missing = sorted(affected - emitted)
        if missing:
            yield from self._reread_accounts(accounts, missing, renewals, today)
        if opportunity is not None and opp_bookmark is not None:
            yield SyncBatch(opportunity.name, cursor=opp_bookmark)
        return account_cursor is None

    def _all_renewals(self, stream: Stream, renewals: _Renewals, read_at: datetime) -> str:
        """Full read of the renewal opportunities into the index; returns the new cursor."""
        newest = EPOCH
        for rec in self._all(stream.soql(None)):
            newest = max(newest, _stamp(rec))
            renewals.add(rec)
        renewals.complete = True
        return Cursor(newest, read_at, stream.fingerprint).encode()

    def _changed_renewals(self, stream: Stream, cursor: Cursor, account_ids: Sequence[str],
                          renewals: _Renewals, read_at: datetime) -> tuple[set[str], str]:
        """Renewal opportunities changed since the cursor (their accounts are returned), in the
        same query as the open renewals of ``account_ids``."""
        lower = cursor.lower_bound(self._overlap())
        changed = f"SystemModstamp > {soql_datetime(lower)}"
        newest = cursor.newest
        affected: set[str] = set()
        chunks = list(_chunks(list(account_ids), ID_CHUNK)) or [[]]
        for i, chunk in enumerate(chunks):
            lookup = (f"(IsDeleted = false AND IsClosed = false AND AccountId IN "
                      f"({_ids(chunk)}))") if chunk else ""
            if i > 0:
                condition = lookup
            elif lookup:
                condition = f"({changed} OR {lookup})"
            else:
                condition = changed
            soql = (f"SELECT {', '.join(stream.fields)} FROM {stream.sobject} "
                    f"WHERE {' AND '.join([*stream.where, condition])}")
            for rec in self._all(soql):
                stamp = _stamp(rec)
                newest = max(newest, stamp)
                if stamp > lower and rec.get("AccountId"):
                    affected.add(rec["AccountId"])
                renewals.add(rec)
        renewals.looked_up.update(account_ids)
        return affected, Cursor(newest, read_at, stream.fingerprint).encode()

    def _reread_accounts(self, stream: Stream, ids: list[str], renewals: _Renewals,
                         today: date) -> Iterator[SyncBatch]:
        """Accounts whose renewal opportunities changed while they did not."""
        for chunk in _chunks(ids, ID_CHUNK):
            soql = (f"SELECT {', '.join(stream.fields)} FROM Account "
                    f"WHERE IsDeleted = false AND Id IN ({_ids(chunk)})")
            for records, _ in self._pages(soql):
                yield self._account_batch(records, renewals, set(), today)

    def _account_batch(self, page: list[dict[str, Any]], renewals: _Renewals,
                       emitted: set[str], today: date) -> SyncBatch:
        live = [r for r in page if not r.get("IsDeleted")]
        renewals.ensure([r["Id"] for r in live])
        records: list[Record] = []
        for rec in live:
            account = self._account(rec, renewals.get(rec["Id"]))
            records.append(account)
            records.extend(self._account_points(rec, today))
            emitted.add(rec["Id"])
        deleted = tuple(r["Id"] for r in page if r.get("IsDeleted"))
        return SyncBatch("Account", tuple(records), {"accounts": deleted} if deleted else {})

    def _account(self, rec: Mapping[str, Any], renewal: tuple[date, float | None] | None,
                 ) -> Account:
        a, r = self.config.accounts, self.config.renewals

        def get(path: str | None) -> Any:
            return _value(rec, path) if path else None

        if r.account_field:
            renewal_date = self._date(get(r.account_field))
        else:
            renewal_date = renewal[0] if renewal else None
        arr = _number(get(a.arr)) if a.arr else None
        if arr is None and not a.arr and r.amount_as_arr and renewal is not None:
            arr = renewal[1]
        return Account(
            source=SOURCE, crm_id=rec["Id"], name=_text(get(a.name)) or rec["Id"],
            owner_email=_text(get(a.owner_email)), potential=_number(get(a.potential)),
            arr=arr, mrr=_number(get(a.mrr)), contract_start=self._date(get(a.contract_start)),
            renewal_date=renewal_date, lifecycle_stage=_text(get(a.lifecycle_stage)),
            language=self._language(get(a.language)), plan_limit=_number(get(a.plan_limit)),
            industry=_text(get(a.industry)),
            custom={key: _plain(get(path)) for key, path in a.custom.items()},
            modified_at=parse_datetime(rec.get("SystemModstamp")))

    def _account_points(self, rec: Mapping[str, Any], today: date) -> Iterator[MetricPoint]:
        for metric, path in self.config.usage.account_fields.items():
            value = _number(_value(rec, path))
            if value is not None:
                yield MetricPoint(rec["Id"], metric, today, value)

    def _account_metrics(self, cursors: Mapping[str, str], *, full: bool,
                         today: date) -> Iterator[SyncBatch]:
        """Account-field metrics hold only today's value: read them once a day for everyone."""
        fields = self.config.usage.account_fields
        if not fields:
            return
        name = "Account.metrics"
        fingerprint = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
        cursor = f"{today.isoformat()}|{fingerprint}"
        if not full and cursors.get(name) != cursor:
            soql = (f"SELECT {', '.join(_select('Id', *fields.values()))} FROM Account "
                    "WHERE IsDeleted = false")
            for records, _ in self._pages(soql):
                points = [p for rec in records for p in self._account_points(rec, today)]
                yield SyncBatch(name, tuple(points))
        yield SyncBatch(name, cursor=cursor)

    def _language(self, raw: Any) -> str:
        text = _text(raw)
        if text is None:
            return self.language
        folded = text.casefold()
        if folded in self._language_values:
            return self._language_values[folded]
        if folded.startswith(("ja", "japan")) or "日本" in text:
            return "ja"
        if folded.startswith("en") or "english" in folded or "英" in text:
            return "en"
        return self.language

    def _date(self, raw: Any) -> date | None:
        if not isinstance(raw, str) or not raw:
            return None
        if "T" in raw:
            parsed = parse_datetime(raw)
            return parsed.astimezone(self.tz).date() if parsed else None
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            return None

    def _at_noon(self, raw: Any) -> datetime | None:
        day = self._date(raw)
        return datetime.combine(day, time(12), self.tz).astimezone(UTC) if day else None

    # contacts, activities, usage --------------------------------------------------------------

    def _contacts(self, page: list[dict[str, Any]], incremental: bool,
                  ) -> tuple[list[Record], dict[str, list[str]]]:
        c = self.config.contacts
        records: list[Record] = []
        deleted: list[str] = []
        for rec in page:
            account = rec.get("AccountId")
            if rec.get("IsDeleted") or not account:
                if incremental:
                    deleted.append(rec["Id"])
                continue
            email = _text(_value(rec, c.email)) if c.email else None
            name = _text(_value(rec, c.name)) or email or rec["Id"]
            records.append(Contact(
                source=SOURCE, crm_id=rec["Id"], account_id=account, name=name, email=email,
                title=_text(_value(rec, c.title)) if c.title else None,
                is_primary=bool(_value(rec, c.primary)) if c.primary else False,
                modified_at=parse_datetime(rec.get("SystemModstamp"))))
        return records, {"contacts": deleted}

    def _account_of(self, rec: Mapping[str, Any]) -> str | None:
        account = rec.get("AccountId")
        if account:
            return account
        what = rec.get("WhatId")
        prefix = self._described["Account"].key_prefix or "001"
        return what if isinstance(what, str) and what.startswith(prefix) else None

    def _activities(self, page: list[dict[str, Any]], incremental: bool,
                    kind_of: Callable[[Mapping[str, Any]], tuple[ActivityKind, datetime | None]],
                    ) -> tuple[list[Record], dict[str, list[str]]]:
        records: list[Record] = []
        deleted: list[str] = []
        for rec in page:
            account = self._account_of(rec)
            kind, at = kind_of(rec)
            at = at or parse_datetime(rec.get("CreatedDate")) or _stamp(rec)
            if rec.get("IsDeleted") or not account:
                if incremental:
                    deleted.append(rec["Id"])
                continue
            records.append(Activity(
                source=SOURCE, crm_id=rec["Id"], account_id=account, kind=kind, occurred_at=at,
                owner_email=_text(_value(rec, "Owner.Email")), subject=_text(rec.get("Subject")),
                modified_at=parse_datetime(rec.get("SystemModstamp"))))
        return records, {"activities": deleted}

    def _tasks(self, page: list[dict[str, Any]], incremental: bool,
               ) -> tuple[list[Record], dict[str, list[str]]]:
        return self._activities(page, incremental, self._task_kind)

    def _events(self, page: list[dict[str, Any]], incremental: bool,
                ) -> tuple[list[Record], dict[str, list[str]]]:
        return self._activities(page, incremental, self._event_kind)

    def is_kizuna_task(self, rec: Mapping[str, Any]) -> bool:
        ref_field = self.config.tasks.ref_field
        if ref_field and _text(_value(rec, ref_field)):
            return True
        return bool(REF_RE.search(rec.get("Subject") or ""))

    def _task_kind(self, rec: Mapping[str, Any]) -> tuple[ActivityKind, datetime | None]:
        """Logged calls and emails are contact; open to-dos and Kizuna's own tasks are not."""
        closed = rec.get("IsClosed")
        if closed is None:   # an org without IsClosed: go by Status; without either, logged
            status = rec.get("Status")
            closed = status is None or status == self.config.tasks.completed_status
        due = self._at_noon(rec.get("ActivityDate"))
        done = parse_datetime(rec.get("CompletedDateTime"))
        at = min((t for t in (due, done) if t), default=None) if closed else due
        if self.is_kizuna_task(rec) or not closed:
            return ActivityKind.TASK, at
        subtype = (rec.get("TaskSubtype") or "").casefold()
        kind_name = (rec.get("Type") or "").casefold()
        generic = subtype in ("", "task")
        if subtype == "email" or (generic and kind_name == "email"):
            kind = ActivityKind.EMAIL
        elif subtype == "call" or (generic and kind_name == "call"):
            kind = ActivityKind.CALL
        elif kind_name == "meeting":
            kind = ActivityKind.MEETING
        else:
            return ActivityKind.TASK, at
        if kind in (ActivityKind.CALL, ActivityKind.MEETING) and self._is_qbr(rec):
            kind = ActivityKind.QBR
        return kind, at

    def _event_kind(self, rec: Mapping[str, Any]) -> tuple[ActivityKind, datetime | None]:
        at = (parse_datetime(rec.get("StartDateTime"))
              or parse_datetime(rec.get("ActivityDateTime"))
              or self._at_noon(rec.get("ActivityDate")))
        return (ActivityKind.QBR if self._is_qbr(rec) else ActivityKind.MEETING), at

    def _is_qbr(self, rec: Mapping[str, Any]) -> bool:
        return any(self.qbr.search(text) for text in (rec.get("Subject"), rec.get("Type"))
                   if isinstance(text, str))

    def _usage_points(self, page: list[dict[str, Any]], incremental: bool,
                      ) -> tuple[list[Record], dict[str, list[str]]]:
        u = self.config.usage.object
        assert u is not None
        metric = u.metric or self.usage_metric
        points: list[Record] = []
        for rec in page:
            account = _value(rec, u.account_field)
            period = self._date(_value(rec, u.period_field))
            value = _number(_value(rec, u.value_field))
            if rec.get("IsDeleted") or not account or period is None or value is None:
                continue
            points.append(MetricPoint(account, metric, period, value))
        return points, {}

    # -- write ---------------------------------------------------------------------------------

    def create_task(self, task: CrmTask) -> str:
        """Create the play's Task, or return the one an earlier (crashed) attempt created."""
        self.check()
        owner = self._user_id(task.owner_email)
        return self.retry.run(self._find_or_create, task, owner)

    def _find_or_create(self, task: CrmTask, owner: str | None) -> str:
        existing = self.find_task(task)
        if existing is not None:
            log.info("task for %s already exists in Salesforce: %s", task.ref, existing)
            return existing
        t = self.config.tasks
        payload: dict[str, Any] = {
            "WhatId": task.account_id,
            "Subject": self._subject(task),
            "Description": task.body[:32000],
            "ActivityDate": task.due_on.isoformat(),
            "Priority": t.priorities.get(str(task.priority), "Normal"),
            "Status": t.status,
        }
        if owner:
            payload["OwnerId"] = owner
        if t.ref_field:
            payload[t.ref_field] = task.ref
        created = self._request("create Task", lambda sf: _sobject(sf, "Task").create(payload))
        task_id = created.get("id") if isinstance(created, Mapping) else None
        if not task_id:
            raise RetriableAPIError(f"create Task answered without an id: {created!r}",
                                    connector=SOURCE)
        return str(task_id)

    def _subject(self, task: CrmTask) -> str:
        subject = " ".join(task.subject.split())
        if self.config.tasks.ref_field:
            return subject[:255]
        marker = f" [{task.ref}]"
        room = 255 - len(marker)
        if len(subject) > room:
            subject = subject[:room - 1] + "…"
        return subject + marker

    def find_task(self, task: CrmTask) -> str | None:
        """The Task already carrying this play's ref (deleted ones too, so none is re-made)."""
        ref_field = self.config.tasks.ref_field
        if ref_field:
            soql = f"SELECT Id, IsDeleted FROM Task WHERE {ref_field} = {soql_string(task.ref)}"
        else:
            if not _ID_RE.match(task.account_id):
                raise SalesforceFatalError(f"not a Salesforce account id: {task.account_id!r}",
                                           code="MALFORMED_ID")
            pattern = task.ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            soql = (f"SELECT Id, IsDeleted, Subject FROM Task WHERE WhatId = "
                    f"'{task.account_id}' AND Subject LIKE {soql_string(f'%[{pattern}]%')}")
        found = self._request("find Task", lambda sf: sf.query(soql, include_deleted=True),
                              soql=soql)
        rows = list(found.get("records") or [])
        if not ref_field:
            rows = [r for r in rows if f"[{task.ref}]" in (r.get("Subject") or "")]
        rows.sort(key=lambda r: bool(r.get("IsDeleted")))
        return rows[0]["Id"] if rows else None

    def _user_id(self, email: str | None) -> str | None:
        """The active Salesforce user with this email, from one User query per instance."""
        if not email:
            return None
        with self._lock:
            if self._users is None:
                users: dict[str, str] = {}
                soql = "SELECT Id, Email FROM User WHERE IsActive = true"
                for rec in self._all(soql):
                    key = (rec.get("Email") or "").casefold()
                    if key:
                        users.setdefault(key, rec["Id"])
                self._users = users
            user = self._users.get(email.casefold())
        if user is None:
            log.warning("no active Salesforce user has the email %s: the task goes to the "
                        "integration user", email)
        return user

    def complete_task(self, task_id: str) -> None:
        """Set the Task's status to completed; a Task deleted meanwhile needs nothing."""
        payload = {"Status": self.config.tasks.completed_status}
        try:
            self._call(f"complete Task {task_id}",
                       lambda sf: _sobject(sf, "Task").update(task_id, payload))
        except SalesforceFatalError as exc:
            if exc.code in ("ENTITY_IS_DELETED", "NOT_FOUND"):
                log.info("task %s is gone from Salesforce; nothing to complete", task_id)
                return
            raise

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> Mapping[str, Any]:
        """API calls made by this instance and the org's daily budget from Sforce-Limit-Info."""
        out: dict[str, Any] = {"api_calls": self.http.api_calls}
        if self.http.logins:
            out["logins"] = self.http.logins
        budget = self._budget()
        if budget is not None:
            used, total = budget
            out.update(daily_api_used=used, daily_api_max=total,
                       daily_api_remaining=max(total - used, 0))
        return out


class _Renewals:
    """Earliest open renewal opportunity per account, looked up as accounts stream past."""

    def __init__(self, connector: SalesforceConnector) -> None:
        self.connector = connector
        self.config = connector.config.renewals
        self.best: dict[str, tuple[date, float | None]] = {}
        self.looked_up: set[str] = set()
        self.complete = False
        self.active = not self.config.account_field and bool(self.config.opportunity_type)

    def add(self, rec: Mapping[str, Any]) -> None:
        account = rec.get("AccountId")
        close = self.connector._date(rec.get("CloseDate"))
        if rec.get("IsDeleted") or rec.get("IsClosed") or not account or close is None:
            return
        current = self.best.get(account)
        if current is None or close < current[0]:
            self.best[account] = (close, _number(rec.get("Amount")))

    def _open_renewals(self) -> str:
        c = self.config
        amount = ", Amount" if self.connector._has("Opportunity", "Amount") else ""
        return (f"SELECT AccountId, CloseDate, IsClosed{amount} FROM Opportunity "
                f"WHERE IsDeleted = false AND IsClosed = false AND "
                f"{c.type_field} = {soql_string(c.opportunity_type or '')}")

    def load_all(self) -> None:
        if not self.active or self.complete:
            return
        for rec in self.connector._all(self._open_renewals()):
            self.add(rec)
        self.complete = True

    def ensure(self, account_ids: Sequence[str]) -> None:
        if not self.active or self.complete:
            return
        wanted = [a for a in account_ids if a not in self.looked_up]
        if not wanted:
            return
        if len(wanted) > LOAD_ALL_ABOVE:
            self.load_all()
            return
        for chunk in _chunks(wanted, ID_CHUNK):
            for rec in self.connector._all(f"{self._open_renewals()} "
                                           f"AND AccountId IN ({_ids(chunk)})"):
                self.add(rec)
        self.looked_up.update(wanted)

    def get(self, account_id: str) -> tuple[date, float | None] | None:
        return self.best.get(account_id)


def _stamp(rec: Mapping[str, Any]) -> datetime:
    return parse_datetime(rec.get("SystemModstamp")) or EPOCH


def _sobject(sf: Salesforce, name: str) -> Any:
    return getattr(sf, name)


def _query_more(sf: Salesforce, *, url: str) -> Any:
    return sf.query_more(url, identifier_is_url=True)


def _yaml_error(message: str, key: tuple[str | int, ...]) -> ConfigError:
    field_name = ".".join(["salesforce", *(str(k) for k in key)])
    return ConfigError(message, file="kizuna.yaml", field=field_name)


def from_settings(settings: Settings, *, retry: RetryPolicy | None = None,
                  clock: Callable[[], datetime] | None = None) -> SalesforceConnector:
    """The connector for ``crm: salesforce``: kizuna.yaml's section plus SALESFORCE_* secrets."""
    config = settings.section("salesforce", SalesforceSettings)
    credentials = credentials_from(settings)
    document = settings.document

    def config_error(message: str, key: tuple[str | int, ...]) -> ConfigError:
        if document is not None and key and not key[0].startswith("("):
            return document.error(message, ("salesforce", *key))
        return _yaml_error(message, key)

    return SalesforceConnector(
        config, credentials, tz=settings.tz, language=settings.config.language,
        qbr_pattern=settings.config.activities.qbr_pattern,
        usage_metric=settings.config.usage.metric,
        describe_cache=settings.data_dir / "salesforce-describe.json",
        config_error=config_error, retry=retry, clock=clock)


__all__ = ["Credentials", "SalesforceConnector", "SalesforceSession", "SalesforceSettings",
           "from_settings"]
