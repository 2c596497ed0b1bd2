"""Fake Salesforce REST API server for connector tests.

A real HTTP server on 127.0.0.1 (ephemeral port) that follows the documented Salesforce REST
API: SOQL query/queryAll with query locators, sObject CRUD and describe, sObject Collections,
limits, the partner SOAP login, Salesforce-shaped error bodies and the Sforce-Limit-Info
header. Tests drive the real simple-salesforce client against it so the connector is checked
over real HTTP, with deterministic fault injection for the failure paths that matter in
production (expired sessions, rate limits, 5xx mid-pagination, exhausted API budget).
"""

from __future__ import annotations

import copy
import itertools
import json
import operator
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cmp_to_key
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

import requests

__all__ = ["FakeSalesforce", "FakeSalesforceError", "HttpsToHttpSession", "RecordedCall"]

# ---------------------------------------------------------------------------------------------
# Ids and timestamps
# ---------------------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_DATETIME_VALUE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)


def _to_id18(value: str) -> str | None:
    """18-char form of a 15/18-char Id (case-safe checksum suffix), or None if malformed."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    base = value[:15]
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(base[start : start + 5]) if ch.isupper())
        suffix += _CHECKSUM_CHARS[bits]
    return base + suffix


def _new_id(prefix: str, serial: int) -> str:
    """A realistic 18-char Id: key prefix, pod chars, base62 serial, checksum."""
    digits = ""
    while serial:
        serial, rem = divmod(serial, 62)
        digits = _BASE62[rem] + digits
    return _to_id18(f"{prefix}5g00{digits.rjust(8, '0')}")  # type: ignore[return-value]


def _sf_datetime(value: datetime) -> str:
    """Salesforce's wire format for dateTime values: 2026-11-23T10:15:18.000+0000."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _parse_datetime(text: str) -> datetime:
    """Parse a dateTime value as the REST API accepts it on write (naive means UTC)."""
    if not _DATETIME_VALUE_RE.match(text):
        raise ValueError(text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _label(name: str) -> str:
    """Describe-style label from an API name (AccountId -> Account ID, Foo_Bar__c -> Foo Bar)."""
    base = name[:-3] if name.endswith("__c") else name
    if base.endswith("Id") and len(base) > 2:
        base = base[:-2] + " ID"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", base).replace("_", " ")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class FakeSalesforceError(ValueError):
    """A Salesforce API error; raised by helpers too so bad test data fails like the API would."""

    def __init__(
        self, status: int, error_code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def rest_body(self) -> list[dict[str, Any]]:
        """The REST error list: [{"message", "errorCode"[, "fields"]}]."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]

    def save_error(self) -> dict[str, Any]:
        """The per-record error shape used by sObject Collections (statusCode, not errorCode)."""
        return {"statusCode": self.error_code, "message": self.message, "fields": self.fields or []}


_NOT_FOUND = "The requested resource does not exist"


def _not_found() -> FakeSalesforceError:
    return FakeSalesforceError(404, "NOT_FOUND", _NOT_FOUND)


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

_STRINGY = {"string", "textarea", "picklist", "combobox", "email", "url", "phone"}
_NUMERIC = {"double", "currency", "percent", "int"}
_IDS = {"id", "reference"}
_FIELD_TYPES = _STRINGY | _NUMERIC | _IDS | {"boolean", "date", "datetime"}
_MAX_LENGTH = {"string": 255, "textarea": 32768, "picklist": 255, "combobox": 255,
               "email": 80, "url": 255, "phone": 40, "id": 18, "reference": 18}
_SOAP_TYPE = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean",
              "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
              "int": "xsd:int", "date": "xsd:date", "datetime": "xsd:dateTime"}
_FILTER_TYPE_NAME = {"double": "double", "currency": "double", "percent": "double",
                     "int": "integer", "boolean": "boolean", "date": "date",
                     "datetime": "dateTime"}
_SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                  "LastModifiedById", "SystemModstamp")


@dataclass(frozen=True)
class _Field:
    name: str
    type: str
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    required: bool = False  # must be supplied (non-blank) on API create/update
    default: Any = None
    picklist: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        numeric = self.type in _NUMERIC
        return {
            "name": self.name,
            "label": _label(self.name),
            "type": self.type,
            "soapType": _SOAP_TYPE.get(self.type, "xsd:string"),
            "length": _MAX_LENGTH.get(self.type, 0),
            "precision": 18 if numeric and self.type != "int" else 0,
            "scale": 2 if self.type == "currency" else 0,
            "digits": 9 if self.type == "int" else 0,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "custom": self.name.endswith("__c"),
            "calculated": False,
            "defaultedOnCreate": self.default is not None or self.name in _SYSTEM_FIELDS
            or self.name == "OwnerId",
            "defaultValue": self.default,
            "filterable": True,
            "sortable": self.type != "textarea",
            "groupable": self.type not in {"textarea", "double", "currency", "percent"},
            "unique": False,
            "externalId": False,
            "idLookup": self.name == "Id",
            "nameField": self.name == "Name",
            "relationshipName": self.relationship_name,
            "referenceTo": list(self.reference_to),
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "picklistValues": [
                {"active": True, "defaultValue": value == self.default, "label": value,
                 "value": value, "validFor": None}
                for value in self.picklist
            ],
        }


@dataclass
class _Object:
    name: str
    key_prefix: str
    label_plural: str
    custom: bool = False
    fields: dict[str, _Field] = field(default_factory=dict)  # keyed by lower-case name
    relationships: dict[str, _Field] = field(default_factory=dict)

    def add(self, fdef: _Field) -> None:
        self.fields[fdef.name.lower()] = fdef
        if fdef.relationship_name:
            self.relationships[fdef.relationship_name.lower()] = fdef

    def field(self, name: str) -> _Field | None:
        return self.fields.get(name.lower())

    def summary(self, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name, "label": _label(self.name), "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix, "custom": self.custom, "createable": True,
            "updateable": True, "deletable": True, "queryable": True, "retrieveable": True,
            "searchable": True, "layoutable": True, "triggerable": True,
            "urls": {"sobject": base, "describe": f"{base}/describe",
                     "rowTemplate": f"{base}/{{ID}}"},
        }


_RO = {"createable": False, "updateable": False}


def _ref(name: str, *targets: str, **kw: Any) -> _Field:
    rel = name[:-2] if name.endswith("Id") else name[:-3] + "__r"
    return _Field(name, "reference", reference_to=targets, relationship_name=rel, **kw)


def _system_fields() -> list[_Field]:
    return [
        _Field("Id", "id", nillable=False, **_RO),
        _Field("IsDeleted", "boolean", nillable=False, **_RO),
        _Field("CreatedDate", "datetime", nillable=False, **_RO),
        _ref("CreatedById", "User", nillable=False, **_RO),
        _Field("LastModifiedDate", "datetime", nillable=False, **_RO),
        _ref("LastModifiedById", "User", nillable=False, **_RO),
        _Field("SystemModstamp", "datetime", nillable=False, **_RO),
    ]


_TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else",
                  "Deferred")
_PRIORITIES = ("High", "Normal", "Low")
_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
           "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote",
           "Negotiation/Review", "Closed Won", "Closed Lost")
_WHAT_TARGETS = ("Account", "Opportunity")


def _standard_objects() -> dict[str, _Object]:
    """Standard objects with a realistic subset of their standard fields."""
    owner = _ref("OwnerId", "User", nillable=False)
    activity_owner = _ref("OwnerId", "Group", "User", nillable=False)
    last_activity = _Field("LastActivityDate", "date", **_RO)
    specs: dict[str, tuple[str, str, list[_Field]]] = {
        "Account": ("001", "Accounts", [
            _Field("Name", "string", nillable=False, required=True),
            _Field("Type", "picklist", picklist=("Prospect", "Customer - Direct",
                                                 "Customer - Channel", "Partner", "Other")),
            _ref("ParentId", "Account"),
            _Field("Industry", "picklist"),
            _Field("AnnualRevenue", "currency"),
            _Field("NumberOfEmployees", "int"),
            _Field("Website", "url"),
            _Field("Phone", "phone"),
            _Field("BillingCity", "string"),
            _Field("BillingCountry", "string"),
            _Field("Description", "textarea"),
            owner,
            last_activity,
        ]),
        "Contact": ("003", "Contacts", [
            _ref("AccountId", "Account"),
            _Field("FirstName", "string"),
            _Field("LastName", "string", nillable=False, required=True),
            _Field("Name", "string", nillable=False, **_RO),
            _Field("Email", "email"),
            _Field("Title", "string"),
            _Field("Phone", "phone"),
            _Field("MobilePhone", "phone"),
            _Field("Department", "string"),
            owner,
            last_activity,
        ]),
        "Task": ("00T", "Tasks", [
            _ref("WhoId", "Contact", "Lead"),
            _ref("WhatId", *_WHAT_TARGETS),
            _Field("Subject", "combobox"),
            _Field("Description", "textarea"),
            _Field("ActivityDate", "date"),
            _Field("Status", "picklist", nillable=False, default="Not Started",
                   picklist=_TASK_STATUSES),
            _Field("Priority", "picklist", nillable=False, default="Normal",
                   picklist=_PRIORITIES),
            _Field("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
            _Field("TaskSubtype", "picklist", updateable=False,
                   picklist=("Task", "Email", "Call", "ListEmail", "Cadence")),
            _Field("IsClosed", "boolean", nillable=False, **_RO),
            _Field("CompletedDateTime", "datetime", **_RO),
            activity_owner,
        ]),
        "Event": ("00U", "Events", [
            _ref("WhoId", "Contact", "Lead"),
            _ref("WhatId", *_WHAT_TARGETS),
            _Field("Subject", "combobox"),
            _Field("Description", "textarea"),
            _Field("Location", "string"),
            _Field("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
            _Field("EventSubtype", "picklist", updateable=False, picklist=("Event",)),
            _Field("StartDateTime", "datetime", required=True),
            _Field("EndDateTime", "datetime"),
            _Field("ActivityDateTime", "datetime"),
            _Field("ActivityDate", "date"),
            _Field("DurationInMinutes", "int"),
            _Field("IsAllDayEvent", "boolean", nillable=False, default=False),
            activity_owner,
        ]),
        "Opportunity": ("006", "Opportunities", [
            _ref("AccountId", "Account"),
            _Field("Name", "string", nillable=False, required=True),
            _Field("Type", "picklist", picklist=("New Business", "Existing Business")),
            _Field("StageName", "picklist", nillable=False, required=True, picklist=_STAGES),
            _Field("CloseDate", "date", nillable=False, required=True),
            _Field("Amount", "currency"),
            _Field("Probability", "percent"),
            _Field("IsClosed", "boolean", nillable=False, **_RO),
            _Field("IsWon", "boolean", nillable=False, **_RO),
            owner,
            last_activity,
        ]),
        "User": ("005", "Users", [
            _Field("Username", "string", nillable=False, required=True),
            _Field("Email", "email", nillable=False, required=True),
            _Field("FirstName", "string"),
            _Field("LastName", "string", nillable=False, required=True),
            _Field("Name", "string", nillable=False, **_RO),
            _Field("Alias", "string"),
            _Field("Title", "string"),
            _Field("IsActive", "boolean", nillable=False, default=True),
        ]),
    }
    objects: dict[str, _Object] = {}
    for name, (prefix, plural, fields) in specs.items():
        obj = _Object(name, prefix, plural)
        for fdef in _system_fields() + fields:
            obj.add(fdef)
        objects[name.lower()] = obj
    return objects


# The polymorphic "Name" entity: what Who/What/Owner resolve to when a lookup has several targets.
_NAME_ENTITY = _Object("Name", "", "Names")
for _fdef in (_Field("Id", "id"), _Field("Name", "string"), _Field("Type", "string"),
              _Field("Alias", "string"), _Field("FirstName", "string"),
              _Field("LastName", "string"), _Field("Email", "email"),
              _Field("IsActive", "boolean"), _Field("Phone", "phone"),
              _Field("Title", "string"), _Field("Username", "string")):
    _NAME_ENTITY.add(_fdef)


def _field_from_spec(name: str, spec: str, objects: Mapping[str, _Object]) -> _Field:
    """Build a field from a define() spec: 'double', 'picklist', 'reference:Account', ..."""
    kind, _, target = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "reference":
        target_obj = objects.get(target.strip().lower())
        if target_obj is None:
            raise ValueError(f"reference target {target!r} is not defined")
        return _ref(name, target_obj.name)
    if kind not in _FIELD_TYPES - _IDS or target:
        raise ValueError(f"unsupported field type {spec!r} for {name}")
    return _Field(name, kind)


def _coerce(obj: _Object, fdef: _Field, value: Any) -> Any:
    """Validate a written value and return it in the JSON form queries return."""
    if value is None:
        return None
    if isinstance(value, datetime) and fdef.type == "datetime":
        return _sf_datetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date) and not isinstance(value, datetime) and fdef.type == "date":
        return value.isoformat()
    try:
        if fdef.type in _STRINGY:
            if not isinstance(value, str):
                raise TypeError
            if len(value) > _MAX_LENGTH[fdef.type]:
                raise FakeSalesforceError(
                    400, "STRING_TOO_LONG",
                    f"{_label(fdef.name)}: data value too large: {value[:20]}... "
                    f"(max length={_MAX_LENGTH[fdef.type]})", [fdef.name])
            return value
        if fdef.type in _IDS:
            id18 = _to_id18(value)
            if id18 is None:
                raise FakeSalesforceError(
                    400, "MALFORMED_ID",
                    f"{_label(fdef.name)}: id value of incorrect type: {value}", [fdef.name])
            return id18
        if fdef.type == "boolean":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if fdef.type in _NUMERIC:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            if fdef.type == "int":
                if value != int(value):
                    raise TypeError
                return int(value)
            return float(value)
        if fdef.type == "date":
            return date.fromisoformat(value).isoformat()
        return _sf_datetime(_parse_datetime(value))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, FakeSalesforceError):
            raise
        raise FakeSalesforceError(
            400, "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {fdef.type} from value {value!r} "
            f"for field {obj.name}.{fdef.name}") from None


# ---------------------------------------------------------------------------------------------
# SOQL: tokenizer, parser, date literals
# ---------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""(?P<ws>\s+)
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>[+-]?\d+(?:\.\d+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<op>!=|<>|<=|>=|=|<|>)
    |(?P<punct>[(),:])""",
    re.X,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"',
            "\\": "\\"}
_RESERVED = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY",
             "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE"}
_UNSUPPORTED = {"GROUP", "HAVING", "WITH", "FOR", "TYPEOF", "USING", "INCLUDES", "EXCLUDES"}
_RANGE_LITERALS = {"YESTERDAY", "TODAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK",
                   "LAST_MONTH", "THIS_MONTH", "NEXT_MONTH", "LAST_90_DAYS", "NEXT_90_DAYS",
                   "LAST_YEAR", "THIS_YEAR", "NEXT_YEAR"}
_RANGE_LITERALS_N = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int
    value: Any = None


@dataclass(frozen=True)
class _Lit:
    kind: str  # string, number, date, datetime, bool, null, range
    value: Any
    tok: _Tok


def _soql_error(soql: str, pos: int, code: str, detail: str) -> FakeSalesforceError:
    """Error with Salesforce's echo of the offending line, a caret and ERROR at Row:Column."""
    line_start = soql.rfind("\n", 0, pos) + 1
    line_end = soql.find("\n", pos)
    line = soql[line_start : line_end if line_end != -1 else len(soql)]
    row = soql.count("\n", 0, pos) + 1
    col = pos - line_start + 1
    caret = " " * (col - 1) + "^"
    return FakeSalesforceError(
        400, code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{col}\n{detail}")


def _read_string(soql: str, start: int) -> tuple[_Tok, int]:
    """Read a single-quoted literal; value is (decoded text, LIKE regex)."""
    text: list[str] = []
    like: list[str] = []
    i = start + 1
    while i < len(soql):
        ch = soql[i]
        if ch == "'":
            return _Tok("string", soql[start : i + 1], start, ("".join(text), "".join(like))), i + 1
        if ch != "\\":
            text.append(ch)
            like.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
            i += 1
            continue
        nxt = soql[i + 1 : i + 2]
        if nxt and nxt in "%_":
            decoded, i = nxt, i + 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", soql[i + 2 : i + 6]):
            decoded, i = chr(int(soql[i + 2 : i + 6], 16)), i + 6
        elif nxt in _ESCAPES and nxt:
            decoded, i = _ESCAPES[nxt], i + 2
        else:
            raise _soql_error(soql, i, "MALFORMED_QUERY",
                              f"Illegal character sequence '\\{nxt}' in string literal.")
        text.append(decoded)
        like.append(re.escape(decoded))
    raise _soql_error(soql, len(soql), "MALFORMED_QUERY", "unexpected token: <EOF>")


def _tokenize(soql: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(soql):
        if soql[pos] == "'":
            tok, pos = _read_string(soql, pos)
            toks.append(tok)
            continue
        match = _TOKEN_RE.match(soql, pos)
        if match is None:
            raise _soql_error(soql, pos, "MALFORMED_QUERY", f"unexpected token: '{soql[pos]}'")
        if match.lastgroup != "ws":
            toks.append(_Tok(match.lastgroup or "", match.group(), pos))
        pos = match.end()
    toks.append(_Tok("eof", "<EOF>", len(soql)))
    return toks


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _date_range(name: str, n: int, today: date) -> tuple[date, date]:
    """[start, end) of a SOQL date literal relative to ``today`` (weeks start Sunday, en_US)."""
    day = timedelta(days=1)
    week = today - timedelta(days=(today.weekday() + 1) % 7)
    month = today.replace(day=1)
    year = date(today.year, 1, 1)
    ranges = {
        "YESTERDAY": (today - day, today),
        "TODAY": (today, today + day),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_WEEK": (week - 7 * day, week),
        "THIS_WEEK": (week, week + 7 * day),
        "NEXT_WEEK": (week + 7 * day, week + 14 * day),
        "LAST_MONTH": (_add_months(month, -1), month),
        "THIS_MONTH": (month, _add_months(month, 1)),
        "NEXT_MONTH": (_add_months(month, 1), _add_months(month, 2)),
        "LAST_YEAR": (date(today.year - 1, 1, 1), year),
        "THIS_YEAR": (year, date(today.year + 1, 1, 1)),
        "NEXT_YEAR": (date(today.year + 1, 1, 1), date(today.year + 2, 1, 1)),
        "LAST_90_DAYS": (today - 90 * day, today + day),
        "NEXT_90_DAYS": (today + day, today + 91 * day),
        "LAST_N_DAYS": (today - n * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": (today - n * day, today - (n - 1) * day),
    }
    return ranges[name]


@dataclass
class _RawQuery:
    count: bool
    fields: list[_Tok]
    sobject: _Tok
    where: Any
    order: list[tuple[_Tok, bool, bool]]
    limit: int | None
    offset: int


class _Parser:
    """Recursive-descent parser for the supported SOQL subset (syntax only, no schema)."""

    def __init__(self, soql: str, today: date) -> None:
        self.soql = soql
        self.today = today
        self.toks = _tokenize(soql)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def is_kw(self, *words: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "ident" and tok.text.upper() in words

    def fail(self, tok: _Tok) -> FakeSalesforceError:
        if tok.kind == "ident" and tok.text.upper() in _UNSUPPORTED:
            detail = (f"unexpected token: '{tok.text}' "
                      "(FakeSalesforce does not implement this SOQL feature)")
        elif tok.kind == "eof":
            detail = "unexpected token: <EOF>"
        else:
            detail = f"unexpected token: '{tok.text}'"
        return _soql_error(self.soql, tok.pos, "MALFORMED_QUERY", detail)

    def unsupported(self, tok: _Tok, what: str) -> FakeSalesforceError:
        return _soql_error(self.soql, tok.pos, "MALFORMED_QUERY",
                           f"FakeSalesforce does not implement {what}")

    def expect_kw(self, word: str) -> _Tok:
        if not self.is_kw(word):
            raise self.fail(self.peek())
        return self.next()

    def expect_punct(self, text: str) -> _Tok:
        tok = self.peek()
        if tok.kind != "punct" or tok.text != text:
            raise self.fail(tok)
        return self.next()

    def field_ref(self) -> _Tok:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            raise self.unsupported(tok, "subqueries")
        if tok.kind != "ident" or tok.text.upper() in _RESERVED | _UNSUPPORTED:
            raise self.fail(tok)
        if self.peek(1).kind == "punct" and self.peek(1).text == "(":
            raise self.unsupported(tok, f"SOQL function {tok.text}()")
        return self.next()

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or not tok.text.isdigit():
            raise self.fail(tok)
        return int(tok.text)

    def parse(self) -> _RawQuery:
        self.expect_kw("SELECT")
        count = False
        fields: list[_Tok] = []
        if self.is_kw("COUNT") and self.peek(1).text == "(":
            tok = self.next()
            self.next()
            if self.peek().text != ")":
                raise self.unsupported(tok, "aggregate functions other than COUNT()")
            self.next()
            count = True
        else:
            fields.append(self.field_ref())
            while self.peek().text == ",":
                self.next()
                fields.append(self.field_ref())
        self.expect_kw("FROM")
        sobject = self.next()
        if sobject.kind != "ident" or "." in sobject.text:
            raise self.fail(sobject)
        where = None
        if self.is_kw("WHERE"):
            self.next()
            where = self.condition()
        order: list[tuple[_Tok, bool, bool]] = []
        if self.is_kw("ORDER"):
            self.next()
            self.expect_kw("BY")
            order.append(self.order_item())
            while self.peek().text == ",":
                self.next()
                order.append(self.order_item())
        limit = None
        if self.is_kw("LIMIT"):
            self.next()
            limit = self.integer()
        offset = 0
        if self.is_kw("OFFSET"):
            self.next()
            offset = self.integer()
        if self.peek().kind != "eof":
            raise self.fail(self.peek())
        return _RawQuery(count, fields, sobject, where, order, limit, offset)

    def order_item(self) -> tuple[_Tok, bool, bool]:
        tok = self.field_ref()
        desc = False
        if self.is_kw("ASC", "DESC"):
            desc = self.next().text.upper() == "DESC"
        nulls_first = True  # documented default: null values are sorted first
        if self.is_kw("NULLS"):
            self.next()
            if not self.is_kw("FIRST", "LAST"):
                raise self.fail(self.peek())
            nulls_first = self.next().text.upper() == "FIRST"
        return tok, desc, nulls_first

    def condition(self) -> Any:
        parts = [self.unary()]
        conj: str | None = None
        while self.is_kw("AND", "OR"):
            tok = self.peek()
            if conj is not None and tok.text.upper() != conj:
                raise self.fail(tok)  # SOQL requires parentheses when mixing AND and OR
            conj = self.next().text.upper()
            parts.append(self.unary())
        return parts[0] if conj is None else (conj.lower(), parts)

    def unary(self) -> Any:
        if self.is_kw("NOT"):
            self.next()
            return ("not", self.unary())
        if self.peek().text == "(" and self.peek().kind == "punct":
            self.next()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Any:
        fld = self.field_ref()
        if self.is_kw("NOT") and self.is_kw("IN", ahead=1):
            self.next()
            self.next()
            return ("in", fld, True, self.literal_list())
        if self.is_kw("IN"):
            self.next()
            return ("in", fld, False, self.literal_list())
        if self.is_kw("LIKE"):
            self.next()
            lit = self.literal()
            if lit.kind != "string":
                raise self.fail(lit.tok)
            return ("like", fld, lit)
        op = self.next()
        if op.kind != "op":
            raise self.fail(op)
        return ("cmp", fld, "!=" if op.text == "<>" else op.text, self.literal())

    def literal_list(self) -> list[_Lit]:
        tok = self.expect_punct("(")
        if self.is_kw("SELECT"):
            raise self.unsupported(tok, "semi-join subqueries")
        items = [self.literal()]
        while self.peek().text == ",":
            self.next()
            items.append(self.literal())
        self.expect_punct(")")
        return items

    def literal(self) -> _Lit:
        tok = self.next()
        if tok.kind == "string":
            return _Lit("string", tok.value, tok)
        if tok.kind == "number":
            return _Lit("number", float(tok.text), tok)
        if tok.kind == "date":
            try:
                return _Lit("date", date.fromisoformat(tok.text), tok)
            except ValueError:
                raise self.fail(tok) from None
        if tok.kind == "datetime":
            try:
                return _Lit("datetime", datetime.fromisoformat(tok.text).astimezone(UTC), tok)
            except ValueError:
                raise self.fail(tok) from None
        word = tok.text.upper() if tok.kind == "ident" else ""
        if word == "NULL":
            return _Lit("null", None, tok)
        if word in ("TRUE", "FALSE"):
            return _Lit("bool", word == "TRUE", tok)
        if word in _RANGE_LITERALS:
            return _Lit("range", _date_range(word, 0, self.today), tok)
        if word in _RANGE_LITERALS_N:
            self.expect_punct(":")
            return _Lit("range", _date_range(word, self.integer(), self.today), tok)
        raise self.fail(tok)


# ---------------------------------------------------------------------------------------------
# Compiled queries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Path:
    """A resolved field reference: lookups to traverse, then the final field."""

    rels: tuple[_Field, ...]
    field: _Field
    name_entity: bool  # the last hop is polymorphic, so it lands on the Name entity
    key: str  # canonical dotted name, for duplicate detection


@dataclass
class _Query:
    obj: _Object
    count: bool
    fields: list[_Path]
    where: Callable[[dict[str, Any]], bool] | None
    order: list[tuple[_Path, bool, bool]]
    limit: int | None
    offset: int


def _norm(ftype: str, value: Any) -> Any:
    """A comparable form of a stored value (case-insensitive text, 15-char ids, instants)."""
    if value is None:
        return None
    if ftype in _STRINGY:
        return value.casefold()
    if ftype in _IDS:
        return value[:15]
    if ftype in _NUMERIC:
        return float(value)
    if ftype == "date":
        return date.fromisoformat(value).toordinal()
    if ftype == "datetime":
        return _parse_datetime(value).timestamp()
    return value


_COMPARE = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}


# ---------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordedCall:
    """One request the fake received (injected faults included)."""

    method: str
    path: str
    params: dict[str, str]
    body: Any  # parsed JSON, raw text (SOAP), or None
    headers: dict[str, str]
    status: int | None = None
    injected: bool = False

    def header(self, name: str) -> str | None:
        """Case-insensitive request header lookup."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return _Reply(status, body, {"Content-Type": "application/json;charset=UTF-8",
                                 **(headers or {})})


@dataclass
class _Fault:
    status: int
    remaining: int
    skip: int
    retry_after: int | str | None
    body: Any
    error_code: str | None
    match: Callable[[RecordedCall], bool] | str | None

    def matches(self, call: RecordedCall) -> bool:
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match in call.path
        return bool(self.match(call))


_DEFAULT_FAULT_CODE = {401: "INVALID_SESSION_ID", 403: "REQUEST_LIMIT_EXCEEDED",
                       404: "NOT_FOUND", 429: "REQUEST_LIMIT_EXCEEDED",
                       502: "SERVER_UNAVAILABLE", 503: "SERVER_UNAVAILABLE",
                       504: "SERVER_UNAVAILABLE"}
_FAULT_MESSAGES = {
    "INVALID_SESSION_ID": "Session expired or invalid",
    "REQUEST_LIMIT_EXCEEDED": "TotalRequests Limit exceeded.",
    "NOT_FOUND": _NOT_FOUND,
    "SERVER_UNAVAILABLE": "Server temporarily unavailable. Please try again later.",
    "UNKNOWN_EXCEPTION": "An unexpected error occurred. Please include this ErrorId if you "
                         "contact support: 1234567890-12345 (-1234567890)",
}
_LOCATOR_PATH_RE = re.compile(r"/services/data/v\d+\.\d+/(?:query|queryAll)/01g\w+-\d+/?$")
_DATA_PATH_RE = re.compile(r"^/services/data/v(\d+\.\d+)(/.*)?$")
_SOAP_PATH_RE = re.compile(r"^/services/Soap/u/(\d+\.\d+)/?$")
_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def _soap_fault(code: str, message: str, *, login_fault: bool) -> _Reply:
    detail = ""
    if login_fault:
        detail = (f'<detail><sf:LoginFault xsi:type="sf:LoginFault">'
                  f"<sf:exceptionCode>{code}</sf:exceptionCode>"
                  f"<sf:exceptionMessage>{xml_escape(message)}</sf:exceptionMessage>"
                  f"</sf:LoginFault></detail>")
    faultcode = f"sf:{code}" if login_fault else "soapenv:Client"
    body = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{_SOAP_ENV}"'
            ' xmlns:sf="urn:fault.partner.soap.sforce.com"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            f"<soapenv:Fault><faultcode>{faultcode}</faultcode>"
            f"<faultstring>{xml_escape(code + ': ' + message)}</faultstring>{detail}"
            "</soapenv:Fault></soapenv:Body></soapenv:Envelope>")
    return _Reply(500, body.encode("utf-8"), {"Content-Type": "text/xml;charset=UTF-8"})


def _release_label(version: str) -> str:
    """Release name for an API version (59.0 is Winter '24, three releases a year)."""
    step = int(float(version)) - 59
    return f"{('Winter', 'Spring', 'Summer')[step % 3]} '{24 + step // 3}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeSalesforce


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid 40 ms stalls
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        reply = self.server.fake._handle(self.command, self.path, dict(self.headers.items()), raw)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------


@dataclass
class _Cursor:
    records: list[dict[str, Any]]
    endpoint: str
    size: int


class FakeSalesforce:
    """In-memory Salesforce org behind a real HTTP server; see the module docstring."""

    def __init__(
        self,
        *,
        session_id: str = "x",
        page_size: int = 2000,
        daily_api_max: int = 15000,
        users: Mapping[str, str] | None = None,
        now: datetime | None = None,
        tick: timedelta = timedelta(seconds=1),
    ) -> None:
        self._lock = threading.RLock()
        self.page_size = page_size
        self.daily_api_max = daily_api_max
        self._api_used = 0
        self._users = dict(users or {})
        self._now = (now or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)).astimezone(UTC)
        self._tick = tick
        self.session_id = session_id
        self._sessions = {session_id}
        self._serial = itertools.count(1)
        self._custom_prefixes = itertools.count(0)
        self._objects = _standard_objects()
        self._tables: dict[str, dict[str, dict[str, Any]]] = {
            obj.name: {} for obj in self._objects.values()}
        self._index: dict[str, tuple[_Object, dict[str, Any]]] = {}
        self._cursors: dict[str, _Cursor] = {}
        self._calls: list[RecordedCall] = []
        self._faults: list[_Fault] = []
        self.org_id = _new_id("00D", next(self._serial))
        self.user_id = _new_id("005", next(self._serial))
        self._insert(self._objects["user"], {
            "Username": "integration@kizuna.example", "Email": "integration@kizuna.example",
            "FirstName": "Kizuna", "LastName": "Integration", "Alias": "kizuna"},
            api=False, record_id=self.user_id)

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="fake-salesforce", daemon=True)
        self._thread.start()

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> FakeSalesforce:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the HTTP server; safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()

    # -- clock ------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The fake's clock (UTC); every write stamps it and then advances it by ``tick``."""
        with self._lock:
            return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        with self._lock:
            self._now = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)

    def _stamp(self) -> str:
        stamp = _sf_datetime(self._now)
        self._now += self._tick
        return stamp

    # -- recorded calls, budget, sessions, faults ---------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        """Snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    @property
    def api_used(self) -> int:
        """API requests counted against ``daily_api_max`` (settable to simulate a busy day)."""
        with self._lock:
            return self._api_used

    @api_used.setter
    def api_used(self, value: int) -> None:
        with self._lock:
            self._api_used = value

    def expire_session(self) -> None:
        """Invalidate every session: API calls get 401 INVALID_SESSION_ID until a new login."""
        with self._lock:
            self._sessions.clear()

    def inject(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | str | None = None,
        body: Any = None,
        error_code: str | None = None,
        match: Callable[[RecordedCall], bool] | str | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead of serving them.

        ``match`` is a substring of the request path or a predicate on the RecordedCall (None
        matches everything, logins included); the first ``after`` matching requests pass
        through untouched. ``body`` replaces the Salesforce error list: str/bytes are sent
        as text/html (a proxy page), anything else as JSON. Injected replies are not counted
        against the API budget.
        """
        with self._lock:
            self._faults.append(
                _Fault(status, times, after, retry_after, body, error_code, match))

    def fail_page(self, n: int = 1, *, status: int = 500, error_code: str | None = None) -> None:
        """Fail, once, the n-th nextRecordsUrl fetch from now on; the locator stays usable."""
        self.inject(status, error_code=error_code, after=n - 1,
                    match=lambda call: bool(_LOCATOR_PATH_RE.search(call.path)))

    @property
    def pending_faults(self) -> int:
        """How many injected replies have not been served yet."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def expire_query_locators(self) -> None:
        """Drop open query cursors, as Salesforce does after inactivity."""
        with self._lock:
            self._cursors.clear()

    # -- schema and data helpers --------------------------------------------------------------

    def define(self, sobject: str, fields: Mapping[str, str]) -> None:
        """Add fields (e.g. {"Form_Impressions_30d__c": "double", "Acct__c":
        "reference:Account"}) to an object, creating a custom object if ``sobject`` is new."""
        with self._lock:
            obj = self._objects.get(sobject.lower())
            if obj is None:
                if not sobject.endswith("__c"):
                    raise ValueError(f"custom object names end in __c: {sobject!r}")
                prefix = "a0" + _BASE62[next(self._custom_prefixes)]
                obj = _Object(sobject, prefix, _label(sobject) + "s", custom=True)
                for fdef in [*_system_fields(), _Field("Name", "string"),
                             _ref("OwnerId", "User", nillable=False)]:
                    obj.add(fdef)
                self._objects[sobject.lower()] = obj
                self._tables[obj.name] = {}
            for name, spec in fields.items():
                obj.add(_field_from_spec(name, spec, self._objects))

    def add(self, sobject: str, **fields: Any) -> str:
        """Seed a record (read-only fields such as LastActivityDate allowed); returns its Id."""
        with self._lock:
            return self._insert(self._require_object(sobject), fields, api=False)

    def update(self, sobject: str, record_id: str, **fields: Any) -> None:
        """Change a record as a user would, bumping LastModifiedDate and SystemModstamp."""
        with self._lock:
            obj = self._require_object(sobject)
            current = self._live(obj, record_id)
            self._commit(obj, self._prepare(obj, current, fields, api=False))

    def delete(self, sobject: str, record_id: str) -> None:
        """Soft-delete (recycle bin): IsDeleted=true, visible only to queryAll."""
        with self._lock:
            obj = self._require_object(sobject)
            self._soft_delete(obj, self._live(obj, record_id))

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Copies of the stored records, in insertion order."""
        with self._lock:
            table = self._tables[self._require_object(sobject).name]
            return [copy.deepcopy(r) for r in table.values()
                    if include_deleted or not r["IsDeleted"]]

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """Copy of one record (deleted ones included); KeyError if absent."""
        with self._lock:
            obj = self._require_object(sobject)
            rec = self._tables[obj.name].get(_to_id18(record_id) or "")
            if rec is None:
                raise KeyError(record_id)
            return copy.deepcopy(rec)

    def _require_object(self, sobject: str) -> _Object:
        obj = self._objects.get(sobject.lower())
        if obj is None:
            raise KeyError(f"unknown sObject {sobject!r}; define() it first")
        return obj

    def _live(self, obj: _Object, record_id: str) -> dict[str, Any]:
        rec = self._tables[obj.name].get(_to_id18(record_id) or "")
        if rec is None:
            raise _not_found()
        if rec["IsDeleted"]:
            raise FakeSalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return rec

    # -- writes -------------------------------------------------------------------------------

    def _insert(self, obj: _Object, values: Mapping[str, Any], *, api: bool,
                record_id: str | None = None) -> str:
        rec = self._prepare(obj, None, values, api=api, record_id=record_id)
        self._commit(obj, rec)
        return rec["Id"]

    def _commit(self, obj: _Object, rec: dict[str, Any]) -> None:
        self._tables[obj.name][rec["Id"]] = rec
        self._index[rec["Id"]] = (obj, rec)

    def _soft_delete(self, obj: _Object, rec: dict[str, Any]) -> None:
        stamp = self._stamp()
        updated = {**rec, "IsDeleted": True, "LastModifiedDate": stamp, "SystemModstamp": stamp}
        self._commit(obj, updated)

    def _prepare(self, obj: _Object, current: dict[str, Any] | None, values: Mapping[str, Any],
                 *, api: bool, record_id: str | None = None) -> dict[str, Any]:
        """Validate a create (current is None) or update and return the record to store."""
        canon: dict[str, Any] = {}
        for key, value in values.items():
            fdef = obj.field(key)
            if fdef is None:
                raise FakeSalesforceError(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")
            canon[fdef.name] = value

        def writable(name: str) -> bool:
            fdef = obj.fields[name.lower()]
            if name in ("Id", "IsDeleted") or not api:
                return name not in ("Id", "IsDeleted")
            return fdef.createable if current is None else fdef.updateable

        blocked = [n for n in canon if not writable(n)]
        if blocked:
            raise FakeSalesforceError(
                400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(blocked)}. Please check the security "
                "settings of this field and verify that it is read/write for your profile or "
                "permission set.", blocked)
        rec = ({f.name: f.default for f in obj.fields.values()} if current is None
               else dict(current))
        for name, value in canon.items():
            rec[name] = _coerce(obj, obj.fields[name.lower()], value)
        stamp = self._stamp()
        audit = {"LastModifiedDate": stamp, "SystemModstamp": stamp,
                 "LastModifiedById": self.user_id}
        if current is None:
            audit.update(Id=record_id or _new_id(obj.key_prefix, next(self._serial)),
                         IsDeleted=False, CreatedDate=stamp, CreatedById=self.user_id)
            if obj.field("OwnerId") is not None:
                audit["OwnerId"] = self.user_id
        rec.update({k: v for k, v in audit.items() if k not in canon})
        self._derive(obj.name, rec, set(canon), stamp)
        if api:
            missing = [f.name for f in obj.fields.values()
                       if f.required and rec.get(f.name) in (None, "")]
            if obj.name == "Event" and rec.get("EndDateTime") is None:
                missing.append("DurationInMinutes")
            if missing:
                raise FakeSalesforceError(
                    400, "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]", missing)
        return rec

    @staticmethod
    def _derive(sobject: str, rec: dict[str, Any], explicit: set[str], stamp: str) -> None:
        """Fields Salesforce computes itself (compound names, IsClosed/IsWon, event timing)."""

        def put(name: str, value: Any) -> None:
            if name not in explicit:
                rec[name] = value

        if sobject in ("Contact", "User"):
            put("Name", " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
                or None)
        elif sobject == "Task":
            closed = rec.get("Status") == "Completed"
            put("IsClosed", closed)
            put("CompletedDateTime", (rec.get("CompletedDateTime") or stamp) if closed else None)
        elif sobject == "Opportunity":
            stage = rec.get("StageName")
            put("IsClosed", stage in ("Closed Won", "Closed Lost"))
            put("IsWon", stage == "Closed Won")
        elif sobject == "Event" and rec.get("StartDateTime"):
            start = _parse_datetime(rec["StartDateTime"])
            if rec.get("EndDateTime") is None and rec.get("DurationInMinutes") is not None:
                rec["EndDateTime"] = _sf_datetime(
                    start + timedelta(minutes=rec["DurationInMinutes"]))
            if rec.get("EndDateTime") is not None:
                minutes = (_parse_datetime(rec["EndDateTime"]) - start) // timedelta(minutes=1)
                put("DurationInMinutes", minutes)
            put("ActivityDateTime", rec["StartDateTime"])
            put("ActivityDate", start.date().isoformat())

    # -- SOQL ---------------------------------------------------------------------------------

    def _compile(self, soql: str) -> _Query:
        raw = _Parser(soql, self._now.date()).parse()
        obj = self._objects.get(raw.sobject.text.lower())
        if obj is None:
            raise _soql_error(
                soql, raw.sobject.pos, "INVALID_TYPE",
                f"sObject type '{raw.sobject.text}' is not supported. If you are attempting to "
                "use a custom object, be sure to append the '__c' after the entity name. "
                "Please reference your WSDL or the describe call for the appropriate names.")
        paths: list[_Path] = []
        for tok in raw.fields:
            path = self._resolve(soql, obj, tok)
            if any(p.key == path.key for p in paths):
                raise _soql_error(soql, tok.pos, "MALFORMED_QUERY",
                                  f"duplicate field selected: {tok.text}")
            paths.append(path)
        where = self._compile_condition(soql, obj, raw.where) if raw.where else None
        order = [(self._resolve(soql, obj, tok), desc, nf) for tok, desc, nf in raw.order]
        return _Query(obj, raw.count, paths, where, order, raw.limit, raw.offset)

    def _resolve(self, soql: str, obj: _Object, tok: _Tok) -> _Path:
        parts = tok.text.split(".")
        if (len(parts) > 1 and parts[0].lower() not in obj.relationships
                and parts[0].lower() == obj.name.lower()):
            parts = parts[1:]  # SOQL allows prefixing fields with the FROM object's name
        cur = obj
        rels: list[_Field] = []
        name_entity = False
        for part in parts[:-1]:
            ref = cur.relationships.get(part.lower())
            if ref is None:
                raise _soql_error(
                    soql, tok.pos, "INVALID_FIELD",
                    f"Didn't understand relationship '{part}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    "the custom relationship name. Please reference your WSDL or the describe "
                    "call for the appropriate names.")
            rels.append(ref)
            target = self._objects.get(ref.reference_to[0].lower())
            if len(ref.reference_to) == 1 and target is not None:
                cur = target
            else:
                cur, name_entity = _NAME_ENTITY, True
        fdef = cur.field(parts[-1])
        if fdef is None:
            raise _soql_error(
                soql, tok.pos, "INVALID_FIELD",
                f"No such column '{parts[-1]}' on entity '{cur.name}'. If you are attempting to "
                "use a custom field, be sure to append the '__c' after the custom field name. "
                "Please reference your WSDL or the describe call for the appropriate names.")
        key = ".".join([r.relationship_name or "" for r in rels] + [fdef.name]).lower()
        return _Path(tuple(rels), fdef, name_entity, key)

    def _compile_condition(self, soql: str, obj: _Object,
                           node: Any) -> Callable[[dict[str, Any]], bool]:
        kind = node[0]
        if kind in ("and", "or"):
            preds = [self._compile_condition(soql, obj, child) for child in node[1]]
            combine = all if kind == "and" else any
            return lambda rec: combine(p(rec) for p in preds)
        if kind == "not":
            inner = self._compile_condition(soql, obj, node[1])
            return lambda rec: not inner(rec)
        path = self._resolve(soql, obj, node[1])
        ftype = path.field.type

        def value(rec: dict[str, Any]) -> Any:
            return _norm(ftype, self._value(obj, rec, path))

        if kind == "like":
            if ftype not in _STRINGY:
                raise _soql_error(soql, node[1].pos, "INVALID_QUERY_FILTER_OPERATOR",
                                  f"invalid operator on {ftype} field")
            pattern = re.compile(node[2].value[1], re.IGNORECASE | re.DOTALL)

            def like(rec: dict[str, Any]) -> bool:
                raw_value = self._value(obj, rec, path)
                return raw_value is not None and pattern.fullmatch(raw_value) is not None

            return like
        if kind == "in":
            negate = node[2]
            targets = {self._literal(soql, node[1], path.field, lit) for lit in node[3]}
            return lambda rec: (value(rec) in targets) != negate
        op, lit = node[2], node[3]
        target = self._literal(soql, node[1], path.field, lit)
        if lit.kind == "null":
            if op in ("=", "!="):
                return lambda rec: (value(rec) is None) == (op == "=")
            return lambda rec: False
        if lit.kind == "range":
            lo, hi = target
            inside = {"=": lambda v: lo <= v < hi, "!=": lambda v: not lo <= v < hi,
                      "<": lambda v: v < lo, "<=": lambda v: v < hi,
                      ">": lambda v: v >= hi, ">=": lambda v: v >= lo}[op]
            return lambda rec: ((v := value(rec)) is None and op == "!=") or (
                v is not None and inside(v))
        compare = _COMPARE[op]
        return lambda rec: ((v := value(rec)) is None and op == "!=") or (
            v is not None and compare(v, target))

    def _literal(self, soql: str, ftok: _Tok, fdef: _Field, lit: _Lit) -> Any:
        """Type-check a literal against its field and return its comparable form."""
        if lit.kind == "null":
            return None
        ftype = fdef.type
        if ftype in _STRINGY | _IDS:
            if lit.kind != "string":
                raise _soql_error(
                    soql, lit.tok.pos, "INVALID_FIELD",
                    f"value of filter criterion for field '{ftok.text}' must be of type string "
                    "and should be enclosed in quotes")
            if ftype in _STRINGY:
                return lit.value[0].casefold()
            id18 = _to_id18(lit.value[0])
            if id18 is None:
                raise _soql_error(soql, lit.tok.pos, "INVALID_QUERY_FILTER_OPERATOR",
                                  f"invalid ID field: {lit.value[0]}")
            return id18[:15]
        accepted = {"boolean": ("bool",), "date": ("date", "range"),
                    "datetime": ("datetime", "range")}.get(ftype, ("number",))
        if lit.kind not in accepted:
            raise _soql_error(
                soql, lit.tok.pos, "INVALID_FIELD",
                f"value of filter criterion for field '{ftok.text}' must be of type "
                f"{_FILTER_TYPE_NAME[ftype]} and should not be enclosed in quotes")
        if lit.kind == "range":
            start, end = lit.value
            if ftype == "date":
                return start.toordinal(), end.toordinal()
            return (datetime.combine(start, datetime.min.time(), UTC).timestamp(),
                    datetime.combine(end, datetime.min.time(), UTC).timestamp())
        if lit.kind == "date":
            return lit.value.toordinal()
        if lit.kind == "datetime":
            return lit.value.timestamp()
        return lit.value

    def _parent(self, rec: dict[str, Any], ref: _Field) -> tuple[_Object, dict[str, Any]] | None:
        hit = self._index.get(rec.get(ref.name) or "")
        return None if hit is None or hit[1]["IsDeleted"] else hit

    def _value(self, obj: _Object, rec: dict[str, Any], path: _Path) -> Any:
        cur_obj, cur = obj, rec
        for ref in path.rels:
            hit = self._parent(cur, ref)
            if hit is None:
                return None
            cur_obj, cur = hit
        if path.name_entity:
            if path.field.name == "Type":
                return cur_obj.name
            real = cur_obj.field(path.field.name)
            return cur.get(real.name) if real else None
        return cur.get(path.field.name)

    def _attributes(self, obj: _Object, rec: dict[str, Any], version: str,
                    type_name: str | None = None) -> dict[str, str]:
        return {"type": type_name or obj.name,
                "url": f"/services/data/v{version}/sobjects/{obj.name}/{rec['Id']}"}

    def _render(self, obj: _Object, rec: dict[str, Any], paths: list[_Path],
                version: str) -> dict[str, Any]:
        """A query result row: attributes, then fields in SELECT order, lookups nested."""
        out: dict[str, Any] = {"attributes": self._attributes(obj, rec, version)}
        for path in paths:
            container, cur_obj, cur = out, obj, rec
            for i, ref in enumerate(path.rels):
                key = ref.relationship_name or ""
                hit = self._parent(cur, ref)
                if hit is None:
                    container[key] = None
                    break
                cur_obj, cur = hit
                if container.get(key) is None:
                    polymorphic = path.name_entity and i == len(path.rels) - 1
                    container[key] = {"attributes": self._attributes(
                        cur_obj, cur, version, "Name" if polymorphic else None)}
                container = container[key]
            else:
                container[path.field.name] = self._value(obj, rec, path)
        return out

    def _run_query(self, soql: str, *, include_deleted: bool, version: str,
                   batch_size: int) -> dict[str, Any]:
        query = self._compile(soql)
        rows = [r for r in self._tables[query.obj.name].values()
                if (include_deleted or not r["IsDeleted"])
                and (query.where is None or query.where(r))]
        if query.order:
            keyed = [([_norm(p.field.type, self._value(query.obj, r, p))
                       for p, _, _ in query.order], r) for r in rows]

            def compare(a: tuple[list[Any], Any], b: tuple[list[Any], Any]) -> int:
                for va, vb, (_, desc, nulls_first) in zip(a[0], b[0], query.order, strict=True):
                    if va == vb:
                        continue
                    if va is None or vb is None:
                        return (-1 if va is None else 1) * (1 if nulls_first else -1)
                    return (-1 if va < vb else 1) * (-1 if desc else 1)
                return 0

            rows = [r for _, r in sorted(keyed, key=cmp_to_key(compare))]
        rows = rows[query.offset:]
        if query.limit is not None:
            rows = rows[: query.limit]
        if query.count:
            return {"totalSize": len(rows), "done": True, "records": []}
        rendered = [self._render(query.obj, r, query.fields, version) for r in rows]
        size = min(self.page_size, batch_size)
        if len(rendered) <= size:
            return {"totalSize": len(rendered), "done": True, "records": rendered}
        locator = _new_id("01g", next(self._serial))
        endpoint = "queryAll" if include_deleted else "query"
        self._cursors[locator] = _Cursor(rendered, endpoint, size)
        return {"totalSize": len(rendered), "done": False,
                "nextRecordsUrl": f"/services/data/v{version}/{endpoint}/{locator}-{size}",
                "records": rendered[:size]}

    # -- HTTP dispatch ------------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Reply:
        split = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        text = raw.decode("utf-8", errors="replace")
        body: Any = text or None
        if text:
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        call = RecordedCall(method, split.path, params, body, headers)
        with self._lock:
            reply = self._injected(call) or self._route(call, raw)
            call.status = reply.status
            self._calls.append(call)
        return reply

    def _injected(self, call: RecordedCall) -> _Reply | None:
        for fault in self._faults:
            if fault.remaining <= 0 or not fault.matches(call):
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.remaining -= 1
            call.injected = True
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            if isinstance(fault.body, (str, bytes)):
                payload = fault.body.encode() if isinstance(fault.body, str) else fault.body
                return _Reply(fault.status, payload,
                              {"Content-Type": "text/html;charset=UTF-8", **headers})
            if fault.body is not None:
                return _json_reply(fault.status, fault.body, headers)
            code = fault.error_code or _DEFAULT_FAULT_CODE.get(fault.status, "UNKNOWN_EXCEPTION")
            message = _FAULT_MESSAGES.get(code, code)
            if fault.status == 429 and fault.error_code is None:
                message = "ConcurrentPerOrgLongTxn Limit exceeded."
            return _json_reply(fault.status, [{"message": message, "errorCode": code}], headers)
        return None

    def _route(self, call: RecordedCall, raw: bytes) -> _Reply:
        soap = _SOAP_PATH_RE.match(call.path)
        if soap and call.method == "POST":
            return self._soap_login(call, soap.group(1), raw)
        if call.path.rstrip("/") == "/services/data" and call.method == "GET":
            return _json_reply(200, [
                {"label": _release_label(f"{v}.0"), "url": f"/services/data/v{v}.0",
                 "version": f"{v}.0"} for v in range(55, 66)])
        data = _DATA_PATH_RE.match(call.path)
        if not data:
            return _json_reply(404, _not_found().rest_body())
        auth = (call.header("Authorization") or "").split(None, 1)
        if len(auth) != 2 or auth[0].lower() not in ("bearer", "oauth"):
            return _json_reply(401, [{"message": "INVALID_HEADER_TYPE",
                                      "errorCode": "INVALID_AUTH_HEADER"}])
        if auth[1] not in self._sessions:
            return _json_reply(401, [{"message": "Session expired or invalid",
                                      "errorCode": "INVALID_SESSION_ID"}])
        if self._api_used >= self.daily_api_max:
            reply = _json_reply(403, [{"message": "TotalRequests Limit exceeded.",
                                       "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
        else:
            self._api_used += 1
            version, rest = data.group(1), (data.group(2) or "").rstrip("/")
            try:
                reply = self._dispatch(call, version, rest)
            except FakeSalesforceError as exc:
                reply = _json_reply(exc.status, exc.rest_body())
        reply.headers["Sforce-Limit-Info"] = f"api-usage={self._api_used}/{self.daily_api_max}"
        return reply

    def _dispatch(self, call: RecordedCall, version: str, rest: str) -> _Reply:
        routes: list[tuple[str, dict[str, Callable[..., _Reply]]]] = [
            (r"", {"GET": self._resources}),
            (r"/limits", {"GET": self._limits}),
            (r"/(query|queryAll)", {"GET": self._query}),
            (r"/(?:query|queryAll)/(01g[A-Za-z0-9]{15})-(\d+)", {"GET": self._query_more}),
            (r"/sobjects", {"GET": self._describe_global}),
            (r"/sobjects/(\w+)", {"GET": self._sobject_info, "POST": self._create}),
            (r"/sobjects/(\w+)/describe", {"GET": self._describe}),
            (r"/sobjects/(\w+)/(\w+)", {"GET": self._read, "PATCH": self._patch,
                                        "DELETE": self._delete}),
            (r"/composite/sobjects", {"POST": self._collection, "PATCH": self._collection}),
        ]
        for pattern, methods in routes:
            match = re.fullmatch(pattern, rest)
            if match is None:
                continue
            handler = methods.get(call.method)
            if handler is None:
                return _json_reply(405, [{
                    "message": f"HTTP Method '{call.method}' not allowed. Allowed are "
                               f"{','.join(methods)}",
                    "errorCode": "METHOD_NOT_ALLOWED"}])
            return handler(call, version, *match.groups())
        raise _not_found()

    # -- endpoints ----------------------------------------------------------------------------

    def _resources(self, call: RecordedCall, version: str) -> _Reply:
        base = f"/services/data/v{version}"
        return _json_reply(200, {name: f"{base}/{name}" for name in
                                 ("sobjects", "query", "queryAll", "limits", "composite")})

    def _limits(self, call: RecordedCall, version: str) -> _Reply:
        return _json_reply(200, {"DailyApiRequests": {
            "Max": self.daily_api_max, "Remaining": max(self.daily_api_max - self._api_used, 0)}})

    def _query(self, call: RecordedCall, version: str, endpoint: str) -> _Reply:
        soql = call.params.get("q")
        if not soql:
            raise FakeSalesforceError(400, "MALFORMED_QUERY", "A query string is required (q)")
        batch = 2000
        options = call.header("Sforce-Query-Options") or ""
        if match := re.search(r"batchSize=(\d+)", options):
            batch = min(max(int(match.group(1)), 200), 2000)
        return _json_reply(200, self._run_query(
            soql, include_deleted=endpoint == "queryAll", version=version, batch_size=batch))

    def _query_more(self, call: RecordedCall, version: str, locator: str, start: str) -> _Reply:
        cursor = self._cursors.get(locator)
        offset = int(start)
        if cursor is None or offset >= len(cursor.records):
            raise FakeSalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        end = offset + cursor.size
        page: dict[str, Any] = {"totalSize": len(cursor.records),
                                "done": end >= len(cursor.records)}
        if not page["done"]:
            page["nextRecordsUrl"] = f"/services/data/v{version}/{cursor.endpoint}/{locator}-{end}"
        page["records"] = cursor.records[offset:end]
        return _json_reply(200, page)

    def _describe_global(self, call: RecordedCall, version: str) -> _Reply:
        return _json_reply(200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            obj.summary(version) for obj in self._objects.values()]})

    def _object_or_404(self, name: str) -> _Object:
        obj = self._objects.get(name.lower())
        if obj is None:
            raise _not_found()
        return obj

    def _sobject_info(self, call: RecordedCall, version: str, name: str) -> _Reply:
        obj = self._object_or_404(name)
        return _json_reply(200, {"objectDescribe": obj.summary(version), "recentItems": []})

    def _describe(self, call: RecordedCall, version: str, name: str) -> _Reply:
        obj = self._object_or_404(name)
        return _json_reply(200, {**obj.summary(version),
                                 "fields": [f.describe() for f in obj.fields.values()],
                                 "childRelationships": [], "recordTypeInfos": []})

    @staticmethod
    def _json_object(call: RecordedCall) -> dict[str, Any]:
        if not isinstance(call.body, dict):
            raise FakeSalesforceError(400, "JSON_PARSER_ERROR",
                                      "The request body must be a JSON object")
        return {k: v for k, v in call.body.items() if k != "attributes"}

    def _create(self, call: RecordedCall, version: str, name: str) -> _Reply:
        obj = self._object_or_404(name)
        record_id = self._insert(obj, self._json_object(call), api=True)
        return _json_reply(201, {"id": record_id, "success": True, "errors": []})

    def _read(self, call: RecordedCall, version: str, name: str, record_id: str) -> _Reply:
        obj = self._object_or_404(name)
        rec = self._live(obj, record_id)
        wanted = [f.name for f in obj.fields.values()]
        if call.params.get("fields"):
            wanted = []
            for raw_name in call.params["fields"].split(","):
                fdef = obj.field(raw_name.strip())
                if fdef is None:
                    raise FakeSalesforceError(
                        400, "INVALID_FIELD", f"No such column '{raw_name.strip()}' on entity "
                        f"'{obj.name}'. If you are attempting to use a custom field, be sure to "
                        "append the '__c' after the custom field name. Please reference your "
                        "WSDL or the describe call for the appropriate names.")
                wanted.append(fdef.name)
        return _json_reply(200, {"attributes": self._attributes(obj, rec, version),
                                 **{n: rec.get(n) for n in wanted}})

    def _patch(self, call: RecordedCall, version: str, name: str, record_id: str) -> _Reply:
        obj = self._object_or_404(name)
        current = self._live(obj, record_id)
        self._commit(obj, self._prepare(obj, current, self._json_object(call), api=True))
        return _Reply(204)

    def _delete(self, call: RecordedCall, version: str, name: str, record_id: str) -> _Reply:
        obj = self._object_or_404(name)
        self._soft_delete(obj, self._live(obj, record_id))
        return _Reply(204)

    def _collection(self, call: RecordedCall, version: str) -> _Reply:
        """sObject Collections create (POST) / update (PATCH) with allOrNone rollback."""
        body = call.body if isinstance(call.body, dict) else {}
        records = body.get("records")
        if not isinstance(records, list):
            raise FakeSalesforceError(400, "JSON_PARSER_ERROR", "records must be a JSON array")
        if len(records) > 200:
            raise FakeSalesforceError(
                400, "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call")
        creating = call.method == "POST"
        prepared: list[tuple[_Object | None, dict[str, Any] | None, Any,
                             FakeSalesforceError | None]] = []
        for item in records:
            record_id = item.get("Id") if isinstance(item, dict) else None
            try:
                type_name = ((item.get("attributes") or {}).get("type")
                             if isinstance(item, dict) else None)
                obj = self._objects.get(str(type_name).lower()) if type_name else None
                if obj is None:
                    raise FakeSalesforceError(400, "INVALID_TYPE",
                                              f"sObject type '{type_name}' is not supported.")
                values = {k: v for k, v in item.items() if k != "attributes"}
                if creating:
                    prepared.append((obj, self._prepare(obj, None, values, api=True),
                                     None, None))
                    continue
                values.pop("Id", None)
                if not record_id:
                    raise FakeSalesforceError(400, "MISSING_ARGUMENT",
                                              "Id not specified in an update call")
                current = self._live(obj, record_id)
                prepared.append((obj, self._prepare(obj, current, values, api=True),
                                 record_id, None))
            except FakeSalesforceError as exc:
                prepared.append((None, None, record_id, exc))
        failed = any(err for *_, err in prepared)
        roll_back = failed and bool(body.get("allOrNone"))
        results: list[dict[str, Any]] = []
        for obj, rec, record_id, err in prepared:
            if err is not None or roll_back:
                error = err.save_error() if err else {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the "
                               "request was using AllOrNone header", "fields": []}
                result: dict[str, Any] = {"success": False, "errors": [error]}
                if record_id:
                    result = {"id": _to_id18(record_id) or record_id, **result}
                results.append(result)
                continue
            assert obj is not None and rec is not None
            self._commit(obj, rec)
            results.append({"id": rec["Id"], "success": True, "errors": []})
        return _json_reply(200, results)

    def _soap_login(self, call: RecordedCall, version: str, raw: bytes) -> _Reply:
        """Partner SOAP login(): username + password(+security token) from ``users``."""
        if not call.header("SOAPAction"):
            return _soap_fault("Client", "No SOAPAction header!", login_fault=False)
        try:
            root = ElementTree.fromstring(raw)
        except ElementTree.ParseError:
            return _soap_fault("Client", "Unable to parse the login request",
                               login_fault=False)
        found: dict[str, str] = {}
        for elem in root.iter():
            local = elem.tag.rsplit("}", 1)[-1]
            if local in ("username", "password"):
                found[local] = elem.text or ""
        username, password = found.get("username"), found.get("password")
        if username is None or self._users.get(username) != password:
            return _soap_fault("INVALID_LOGIN",
                               "Invalid username, password, security token; or user locked out.",
                               login_fault=True)
        session = f"{self.org_id[:15]}!AQ4AQFakeSession{next(self._serial)}"
        self._sessions.add(session)
        self.session_id = session
        server = f"{self.url}/services/Soap/u/{version}/{self.org_id[:15]}"
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{_SOAP_ENV}"'
            ' xmlns="urn:partner.soap.sforce.com"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            "<loginResponse><result>"
            f"<metadataServerUrl>{self.url}/services/Soap/m/{version}/{self.org_id[:15]}"
            "</metadataServerUrl><passwordExpired>false</passwordExpired>"
            f"<sandbox>false</sandbox><serverUrl>{server}</serverUrl>"
            f"<sessionId>{session}</sessionId><userId>{self.user_id}</userId>"
            f"<userInfo><organizationId>{self.org_id}</organizationId>"
            f"<userEmail>{xml_escape(username)}</userEmail>"
            f"<userId>{self.user_id}</userId><userName>{xml_escape(username)}</userName>"
            "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>")
        return _Reply(200, body.encode("utf-8"), {"Content-Type": "text/xml;charset=UTF-8"})


class HttpsToHttpSession(requests.Session):
    """requests.Session that sends simple-salesforce's https:// calls to the fake over http.

    simple-salesforce always builds https:// URLs from the instance host and logs in at
    https://login.salesforce.com (or test.); both are redirected to ``fake_url``. Proxy
    environment variables are ignored so the loopback server is always reached directly.
    """

    def __init__(self, fake_url: str,
                 login_hosts: tuple[str, ...] = ("login.salesforce.com", "test.salesforce.com"),
                 ) -> None:
        super().__init__()
        self.trust_env = False
        self._netloc = urlsplit(fake_url).netloc
        self._login_hosts = login_hosts

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        parts = urlsplit(url if isinstance(url, str) else url.decode())
        if parts.scheme == "https" and (parts.netloc == self._netloc
                                        or parts.hostname in self._login_hosts):
            url = urlunsplit(("http", self._netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)
