"""Pins FakeSalesforce's documented Salesforce behaviour by driving the real simple-salesforce."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from tests.fakes.salesforce import FakeSalesforce, FakeSalesforceError, HttpsToHttpSession

USERNAME = "cs-bot@example.com"
PASSWORD = "hunter2"
TOKEN = "TOKEN123"


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    with FakeSalesforce(users={USERNAME: PASSWORD + TOKEN}) as server:
        yield server


def connect(fake: FakeSalesforce) -> Salesforce:
    return Salesforce(instance_url=fake.url, session_id=fake.session_id,
                      session=HttpsToHttpSession(fake.url))


def error_of(exc: pytest.ExceptionInfo) -> dict:
    return exc.value.content[0]


def test_query_all_iter_follows_next_records_url_pages(fake: FakeSalesforce) -> None:
    """4,500 matches at page_size 2000 come back as 3 pages linked by nextRecordsUrl."""
    ids = {fake.add("Account", Name=f"Acme {i}") for i in range(4500)}
    sf = connect(fake)

    first = sf.query("SELECT Id FROM Account")
    assert (first["totalSize"], first["done"], len(first["records"])) == (4500, False, 2000)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")

    fake.reset_calls()
    records = list(sf.query_all_iter("SELECT Id, Name FROM Account"))
    assert {r["Id"] for r in records} == ids
    assert [c.path.rsplit("-", 1)[-1] for c in fake.calls[1:]] == ["2000", "4000"]
    assert len(fake.calls) == 3
    assert fake.calls[0].params == {"q": "SELECT Id, Name FROM Account"}


def test_query_locator_is_a_snapshot(fake: FakeSalesforce) -> None:
    """Pages after the first reflect the data as it was when the query ran."""
    fake.page_size = 2
    ids = [fake.add("Account", Name=f"A{i}") for i in range(4)]
    sf = connect(fake)
    first = sf.query("SELECT Id, Name FROM Account ORDER BY Name")
    fake.update("Account", ids[3], Name="renamed")
    fake.delete("Account", ids[2])
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert [r["Name"] for r in rest["records"]] == ["A2", "A3"]
    assert rest["done"] is True and "nextRecordsUrl" not in rest


def test_relationship_fields_nest_or_are_null(fake: FakeSalesforce) -> None:
    """Owner.Email comes back as a nested object with attributes; an empty lookup is null."""
    owner = fake.add("User", Username="sato@x", Email="sato@example.com", LastName="Sato")
    account = fake.add("Account", Name="Acme", OwnerId=owner)
    fake.add("Contact", LastName="Orphan")
    fake.add("Contact", LastName="Linked", AccountId=account)
    sf = connect(fake)

    acc = sf.query("SELECT Id, Owner.Email FROM Account")["records"][0]
    assert acc["Owner"] == {
        "attributes": {"type": "User", "url": f"/services/data/v59.0/sobjects/User/{owner}"},
        "Email": "sato@example.com",
    }
    contacts = sf.query("SELECT LastName, Account.Name, Account.Owner.Email FROM Contact "
                        "ORDER BY LastName")["records"]
    assert contacts[0]["Account"]["Name"] == "Acme"
    assert contacts[0]["Account"]["Owner"]["Email"] == "sato@example.com"
    assert contacts[1]["Account"] is None


def test_polymorphic_what_resolves_through_name_entity(fake: FakeSalesforce) -> None:
    """Task.What.Name/What.Type work on any target and report attributes.type 'Name'."""
    account = fake.add("Account", Name="Acme")
    opp = fake.add("Opportunity", Name="Renewal", StageName="Prospecting",
                   CloseDate="2026-03-31", AccountId=account)
    fake.add("Task", Subject="Call", WhatId=account)
    fake.add("Task", Subject="Quote", WhatId=opp)
    sf = connect(fake)
    rows = sf.query("SELECT Subject, What.Name, What.Type FROM Task "
                    "WHERE What.Type = 'Opportunity'")["records"]
    assert len(rows) == 1
    assert rows[0]["What"]["attributes"]["type"] == "Name"
    assert rows[0]["What"]["attributes"]["url"].endswith(f"/Opportunity/{opp}")
    assert (rows[0]["What"]["Name"], rows[0]["What"]["Type"]) == ("Renewal", "Opportunity")


def test_where_on_systemmodstamp_compares_instants(fake: FakeSalesforce) -> None:
    """Datetime literals with Z or +hh:mm offsets are compared as instants against UTC stamps."""
    fake.now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    old = fake.add("Account", Name="old")
    fake.now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    new = fake.add("Account", Name="new")
    assert fake.get("Account", new)["SystemModstamp"] == "2026-03-02T00:00:00.000+0000"
    sf = connect(fake)

    def ids(where: str) -> list[str]:
        soql = f"SELECT Id FROM Account WHERE {where} ORDER BY SystemModstamp"
        return [r["Id"] for r in sf.query(soql)["records"]]

    assert ids("SystemModstamp > 2026-03-01T12:00:00Z") == [new]
    assert ids("SystemModstamp >= 2026-03-01T09:00:00+09:00") == [old, new]
    assert ids("SystemModstamp < 2026-03-01T08:59:59+09:00") == []
    fake.update("Account", old, Industry="Software")
    assert ids("SystemModstamp > 2026-03-01T12:00:00Z") == [new, old]


def test_where_operators_follow_soql_semantics(fake: FakeSalesforce) -> None:
    """AND/OR/NOT, IN, LIKE, null, booleans, numbers and date literals filter like SOQL."""
    fake.now = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
    fake.add("Account", Name="Acme Corp", Industry="Software", NumberOfEmployees=50,
             LastActivityDate="2026-05-19")
    fake.add("Account", Name="Beta 100%", Industry="Retail", NumberOfEmployees=500)
    fake.add("Account", Name="gamma", NumberOfEmployees=5, LastActivityDate="2026-01-02")
    sf = connect(fake)

    def names(where: str) -> list[str]:
        soql = f"SELECT Name FROM Account WHERE {where} ORDER BY Name"
        return [r["Name"] for r in sf.query(soql)["records"]]

    assert names("Name = 'ACME CORP'") == ["Acme Corp"]  # case-insensitive
    assert names("Industry = null") == ["gamma"]
    assert names("Industry != 'Software'") == ["Beta 100%", "gamma"]  # nulls included
    assert names("Industry IN ('Software', 'Retail') AND NumberOfEmployees > 100") == [
        "Beta 100%"]
    assert names("NOT (Industry = 'Software' OR NumberOfEmployees < 10)") == ["Beta 100%"]
    assert names("Industry NOT IN ('Retail')") == ["Acme Corp", "gamma"]
    assert names("Name LIKE 'a%'") == ["Acme Corp"]
    assert names("Name LIKE '%100\\%'") == ["Beta 100%"]
    assert names("LastActivityDate = LAST_N_DAYS:7") == ["Acme Corp"]
    assert names("CreatedDate = TODAY AND IsDeleted = false") == [
        "Acme Corp", "Beta 100%", "gamma"]
    assert names("LastActivityDate < 2026-02-01") == ["gamma"]


def test_order_by_nulls_and_limit_offset(fake: FakeSalesforce) -> None:
    """ORDER BY sorts case-insensitively, nulls first by default; LIMIT/OFFSET slice."""
    for name, employees in [("b", 2), ("A", None), ("c", 1)]:
        fake.add("Account", Name=name, NumberOfEmployees=employees)
    sf = connect(fake)

    def names(tail: str) -> list[str]:
        return [r["Name"] for r in sf.query(f"SELECT Name FROM Account {tail}")["records"]]

    assert names("ORDER BY Name") == ["A", "b", "c"]
    assert names("ORDER BY NumberOfEmployees DESC") == ["A", "b", "c"]
    assert names("ORDER BY NumberOfEmployees DESC NULLS LAST") == ["b", "c", "A"]
    assert names("ORDER BY Name LIMIT 1 OFFSET 1") == ["b"]


def test_query_all_includes_deleted_records(fake: FakeSalesforce) -> None:
    """Deleted records are invisible to query but returned by queryAll with IsDeleted=true."""
    keep = fake.add("Account", Name="keep")
    gone = fake.add("Account", Name="gone")
    fake.delete("Account", gone)
    sf = connect(fake)
    assert [r["Id"] for r in sf.query("SELECT Id FROM Account")["records"]] == [keep]
    rows = sf.query_all("SELECT Id, IsDeleted FROM Account", include_deleted=True)["records"]
    assert {r["Id"]: r["IsDeleted"] for r in rows} == {keep: False, gone: True}
    assert fake.calls[-1].path == "/services/data/v59.0/queryAll/"


def test_count_returns_total_size_without_records(fake: FakeSalesforce) -> None:
    """SELECT COUNT() answers totalSize with an empty records list."""
    for i in range(5):
        fake.add("Account", Name=f"A{i}", Industry="Software" if i % 2 else "Retail")
    result = connect(fake).query("SELECT COUNT() FROM Account WHERE Industry = 'Software'")
    assert (result["totalSize"], result["done"], result["records"]) == (2, True, [])


def test_describe_lists_standard_and_custom_fields(fake: FakeSalesforce) -> None:
    """describe() reports defined custom fields and lookup metadata; describeGlobal lists it."""
    fake.define("Account", {"Form_Impressions_30d__c": "double"})
    sf = connect(fake)
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert fields["Form_Impressions_30d__c"]["type"] == "double"
    assert fields["Form_Impressions_30d__c"]["custom"] is True
    assert fields["OwnerId"]["referenceTo"] == ["User"]
    assert fields["OwnerId"]["relationshipName"] == "Owner"
    assert fields["Name"]["nillable"] is False
    assert fields["CreatedDate"]["createable"] is False
    assert "Account" in {o["name"] for o in sf.describe()["sobjects"]}


def test_custom_object_and_custom_lookup(fake: FakeSalesforce) -> None:
    """define() creates a custom object (a0 prefix) whose __c lookup queries via __r."""
    account = fake.add("Account", Name="Acme")
    fake.define("Health_Score__c", {"Score__c": "double", "Account__c": "reference:Account"})
    hs = fake.add("Health_Score__c", Name="HS-1", Score__c=82.5, Account__c=account)
    assert hs.startswith("a0")
    row = connect(fake).query("SELECT Score__c, Account__r.Name FROM Health_Score__c")
    assert row["records"][0]["Score__c"] == 82.5
    assert row["records"][0]["Account__r"]["Name"] == "Acme"


def test_create_and_update_task(fake: FakeSalesforce) -> None:
    """POST creates (201, id), PATCH updates (204) and bumps SystemModstamp; IsClosed derives."""
    account = fake.add("Account", Name="Acme")
    sf = connect(fake)
    created = sf.Task.create({"Subject": "QBR follow-up", "WhatId": account,
                              "ActivityDate": "2026-02-01", "TaskSubtype": "Task"})
    assert created["success"] is True and created["errors"] == []
    task = fake.get("Task", created["id"])
    assert (task["Status"], task["IsClosed"], task["OwnerId"]) == (
        "Not Started", False, fake.user_id)

    assert sf.Task.update(created["id"], {"Status": "Completed"}) == 204
    updated = fake.get("Task", created["id"])
    assert updated["IsClosed"] is True
    assert updated["SystemModstamp"] > task["SystemModstamp"]
    assert sf.Task.get(created["id"])["Subject"] == "QBR follow-up"
    assert fake.calls[-2].body == {"Status": "Completed"}


def test_write_validation_errors(fake: FakeSalesforce) -> None:
    """Unknown, read-only and missing required fields fail as Salesforce reports them."""
    sf = connect(fake)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"Name": "x", "Foo__c": 1})
    assert error_of(exc)["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.create({"FirstName": "Hanako"})
    assert error_of(exc)["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert error_of(exc)["fields"] == ["LastName"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"Name": "x", "SystemModstamp": "2026-01-01T00:00:00Z"})
    assert error_of(exc)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(FakeSalesforceError):
        fake.add("Account", Name="x", NumberOfEmployees="many")


def test_record_lookup_errors(fake: FakeSalesforce) -> None:
    """Unknown records are 404 NOT_FOUND; deleted ones 404 ENTITY_IS_DELETED."""
    sf = connect(fake)
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Account.get("001000000000000AAA")
    assert error_of(exc)["errorCode"] == "NOT_FOUND"
    gone = fake.add("Account", Name="gone")
    sf.Account.delete(gone)
    assert fake.get("Account", gone)["IsDeleted"] is True
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Account.get(gone)
    assert error_of(exc)["errorCode"] == "ENTITY_IS_DELETED"


def test_invalid_field_in_query(fake: FakeSalesforce) -> None:
    """An unknown column is 400 INVALID_FIELD with Salesforce's message and position."""
    with pytest.raises(SalesforceMalformedRequest) as exc:
        connect(fake).query("SELECT Id, Foo__c FROM Account")
    assert error_of(exc)["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Foo__c' on entity 'Account'." in error_of(exc)["message"]
    assert "ERROR at Row:1:Column:12" in error_of(exc)["message"]


@pytest.mark.parametrize("soql", [
    "SELECT Id FROM Account WHERE",
    "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
    "SELECT Id FROM Account WHERE SystemModstamp > 2026-01-01T00:00:00.000+0000",
    'SELECT Id FROM Account WHERE Name = "double quoted"',
    "SELECT Id, Id FROM Account",
])
def test_malformed_query(fake: FakeSalesforce, soql: str) -> None:
    """Syntax SOQL rejects (incl. mixed AND/OR, +0000 offsets, double quotes) is MALFORMED_QUERY."""
    with pytest.raises(SalesforceMalformedRequest) as exc:
        connect(fake).query(soql)
    assert error_of(exc)["errorCode"] == "MALFORMED_QUERY"


def test_filter_literal_types_are_checked(fake: FakeSalesforce) -> None:
    """Quoted dates and malformed ids are rejected, as Salesforce does."""
    sf = connect(fake)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Account WHERE CreatedDate > '2026-01-01T00:00:00Z'")
    assert error_of(exc)["errorCode"] == "INVALID_FIELD"
    assert "must be of type dateTime" in error_of(exc)["message"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM Account WHERE Id = 'nope'")
    assert error_of(exc)["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"


def test_unknown_object_is_invalid_type(fake: FakeSalesforce) -> None:
    """Querying an undefined sObject is 400 INVALID_TYPE."""
    with pytest.raises(SalesforceMalformedRequest) as exc:
        connect(fake).query("SELECT Id FROM Widget__c")
    assert error_of(exc)["errorCode"] == "INVALID_TYPE"


def test_injected_429_carries_retry_after(fake: FakeSalesforce) -> None:
    """An injected 429 surfaces as status 429 with the Retry-After header and is recorded."""
    fake.inject(429, retry_after=7, times=2, match="/query")
    sf = connect(fake)
    with pytest.raises(SalesforceGeneralError) as exc:
        sf.query("SELECT Id FROM Account")
    assert exc.value.status == 429
    raw = HttpsToHttpSession(fake.url).get(
        f"{fake.url}/services/data/v59.0/query/", params={"q": "SELECT Id FROM Account"},
        headers={"Authorization": f"Bearer {fake.session_id}"})
    assert (raw.status_code, raw.headers["Retry-After"]) == (429, "7")
    assert fake.pending_faults == 0
    assert [c.injected for c in fake.calls] == [True, True]
    assert sf.query("SELECT Id FROM Account")["done"] is True


def test_expired_session_raises_expired_session(fake: FakeSalesforce) -> None:
    """After expire_session() a session-id client gets 401 INVALID_SESSION_ID."""
    sf = connect(fake)
    sf.query("SELECT Id FROM Account")
    fake.expire_session()
    with pytest.raises(SalesforceExpiredSession) as exc:
        sf.query("SELECT Id FROM Account")
    assert error_of(exc)["errorCode"] == "INVALID_SESSION_ID"


def test_soap_login_and_relogin_after_expiry(fake: FakeSalesforce) -> None:
    """Password+token SOAP login yields a working session; the client re-logs in on expiry."""
    sf = Salesforce(username=USERNAME, password=PASSWORD, security_token=TOKEN,
                    session=HttpsToHttpSession(fake.url))
    assert sf.sf_instance == fake.url.removeprefix("http://")
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 1
    fake.expire_session()
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 1
    logins = [c for c in fake.calls if c.path == "/services/Soap/u/59.0"]
    assert len(logins) == 2 and sf.session_id == fake.session_id


def test_soap_login_rejects_bad_credentials(fake: FakeSalesforce) -> None:
    """A wrong password (or missing token) is a SOAP INVALID_LOGIN fault."""
    session_id, instance = SalesforceLogin(username=USERNAME, password=PASSWORD,
                                           security_token=TOKEN, scratch_url=fake.url,
                                           session=HttpsToHttpSession(fake.url))
    assert session_id.startswith("00D") and instance == fake.url.removeprefix("http://")
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        SalesforceLogin(username=USERNAME, password=PASSWORD, security_token="",
                        session=HttpsToHttpSession(fake.url))
    assert exc.value.code == "INVALID_LOGIN"


def test_daily_budget_exhaustion_is_request_limit_exceeded(fake: FakeSalesforce) -> None:
    """Once api-usage reaches the daily max, calls get 403 REQUEST_LIMIT_EXCEEDED."""
    fake.daily_api_max = 2
    sf = connect(fake)
    sf.query("SELECT Id FROM Account")
    sf.query("SELECT Id FROM Account")
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT Id FROM Account")
    assert error_of(exc) == {"message": "TotalRequests Limit exceeded.",
                             "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    assert fake.api_used == 2


def test_api_usage_and_limits(fake: FakeSalesforce) -> None:
    """Sforce-Limit-Info feeds simple-salesforce's api_usage; /limits agrees."""
    fake.api_used = 100
    sf = connect(fake)
    sf.query("SELECT Id FROM Account")
    usage = sf.api_usage["api-usage"]
    assert (usage.used, usage.total) == (101, 15000)
    assert sf.limits()["DailyApiRequests"] == {"Max": 15000, "Remaining": 14898}


def test_mid_pagination_failure_can_resume(fake: FakeSalesforce) -> None:
    """fail_page(2) breaks the second nextRecordsUrl fetch once; retrying that URL works."""
    fake.page_size = 10
    for i in range(35):
        fake.add("Account", Name=f"A{i:02d}")
    fake.fail_page(2, status=503)
    sf = connect(fake)
    with pytest.raises(SalesforceGeneralError) as exc:
        sf.query_all("SELECT Name FROM Account ORDER BY Name")
    assert exc.value.status == 503
    failed_url = fake.calls[-1].path
    assert failed_url.endswith("-20")
    page = sf.query_more(failed_url, identifier_is_url=True)
    assert [r["Name"] for r in page["records"]] == [f"A{i}" for i in range(20, 30)]
    fake.expire_query_locators()
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert error_of(exc)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_japanese_text_round_trips(fake: FakeSalesforce) -> None:
    """Non-ASCII names survive create, equality and LIKE filters unchanged."""
    sf = connect(fake)
    created = sf.Account.create({"Name": "株式会社テスト", "BillingCity": "東京"})
    rows = sf.query("SELECT Id, Name, BillingCity FROM Account "
                    "WHERE Name = '株式会社テスト'")["records"]
    assert [(r["Id"], r["Name"], r["BillingCity"]) for r in rows] == [
        (created["id"], "株式会社テスト", "東京")]
    assert sf.query("SELECT COUNT() FROM Account WHERE Name LIKE '%テスト'")["totalSize"] == 1


def test_sobject_collections_all_or_none(fake: FakeSalesforce) -> None:
    """POST composite/sobjects rolls everything back when allOrNone and one record fails."""
    sf = connect(fake)
    records = [{"attributes": {"type": "Account"}, "Name": "Good"},
               {"attributes": {"type": "Contact"}, "FirstName": "No last name"}]
    results = sf.restful("composite/sobjects", method="POST",
                         json={"allOrNone": True, "records": records})
    assert [r["errors"][0]["statusCode"] for r in results] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUIRED_FIELD_MISSING"]
    assert fake.records("Account") == []

    results = sf.restful("composite/sobjects", method="POST",
                         json={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, False]
    assert fake.get("Account", results[0]["id"])["Name"] == "Good"


def test_calls_record_method_params_body_and_headers(fake: FakeSalesforce) -> None:
    """calls captures method, path, query params, JSON body, headers and status."""
    sf = connect(fake)
    sf.Account.create({"Name": "Acme"})
    call = fake.calls[-1]
    assert (call.method, call.status) == ("POST", 201)
    assert call.path == "/services/data/v59.0/sobjects/Account/"
    assert call.body == {"Name": "Acme"}
    assert call.header("authorization") == f"Bearer {fake.session_id}"
    fake.reset_calls()
    assert fake.calls == []


def test_clock_ticks_keep_modstamps_ordered(fake: FakeSalesforce) -> None:
    """Each write stamps the clock then advances it, so SystemModstamp is strictly increasing."""
    fake.now = datetime(2026, 11, 23, 10, 15, 18, tzinfo=UTC)
    first = fake.add("Account", Name="a")
    second = fake.add("Account", Name="b")
    stamps = [fake.get("Account", i)["SystemModstamp"] for i in (first, second)]
    assert stamps == ["2026-11-23T10:15:18.000+0000", "2026-11-23T10:15:19.000+0000"]
    assert fake.now == datetime(2026, 11, 23, 10, 15, 20, tzinfo=UTC)
    assert len(first) == 18 and first.startswith("001")
    assert fake.get("Account", first[:15])["Id"] == first
    fake.now += timedelta(days=1)
    assert fake.get("Account", fake.add("Account", Name="c"))["CreatedDate"].startswith(
        "2026-11-24")


def test_auth_header_forms(fake: FakeSalesforce) -> None:
    """OAuth and Bearer schemes both work; a missing header is 401 INVALID_AUTH_HEADER."""
    http = HttpsToHttpSession(fake.url)
    limits = f"{fake.url}/services/data/v62.0/limits/"
    ok = http.get(limits, headers={"Authorization": f"OAuth {fake.session_id}"})
    assert ok.status_code == 200
    assert ok.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    missing = http.get(limits)
    assert (missing.status_code, missing.json()[0]["errorCode"]) == (401, "INVALID_AUTH_HEADER")
    assert http.get(f"{fake.url}/services/data/").json()[-1]["version"] == "65.0"


def test_event_timing_fields_are_derived(fake: FakeSalesforce) -> None:
    """Event EndDateTime/DurationInMinutes complete each other; without either, create fails."""
    sf = connect(fake)
    created = sf.Event.create({"Subject": "Kickoff", "StartDateTime": "2026-04-01T10:00:00+09:00",
                               "DurationInMinutes": 30})
    event = fake.get("Event", created["id"])
    assert (event["StartDateTime"], event["EndDateTime"], event["ActivityDate"]) == (
        "2026-04-01T01:00:00.000+0000", "2026-04-01T01:30:00.000+0000", "2026-04-01")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Event.create({"Subject": "No end", "StartDateTime": "2026-04-01T10:00:00Z"})
    assert error_of(exc)["fields"] == ["DurationInMinutes"]
