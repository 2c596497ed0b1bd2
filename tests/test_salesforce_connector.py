"""The Salesforce connector driven through real simple-salesforce against FakeSalesforce.

Covers bulk and incremental reads, deletes, the field mapping, every failure the issue names,
exactly-once task creation (crash included), a whole Kizuna tick, and `kizuna sync` as a command.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors.salesforce import (
    REF_RE,
    SalesforceConnector,
    credentials_from,
    parse_datetime,
)
from core.app import Kizuna, Rules
from core.config import load_settings
from core.domain import Account, ActivityKind, CrmTask, Severity
from core.errors import (
    AuthError,
    ConfigError,
    FatalAPIError,
    RetriableAPIError,
    StoreError,
)
from core.ledger import Ledger
from core.store import Store
from tests.cli_helpers import kizuna as run_kizuna
from tests.fakes.salesforce import FakeSalesforce
from tests.salesforce_helpers import (
    NOW,
    PASSWORD,
    TOKEN,
    USERNAME,
    Sleeps,
    add_user,
    calls_per_object,
    connector,
    pull,
    queries_of,
    seed_accounts,
    sf_settings,
    soql_calls,
)

OBJECTS = ("Account", "Contact", "Task", "Event", "Opportunity")


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    with FakeSalesforce(now=NOW, users={USERNAME: PASSWORD + TOKEN}) as server:
        yield server


def task_for(account_id: str, *, ref: str = "kz-0123456789abcdef", owner: str | None = None,
             language: str = "ja") -> CrmTask:
    subject = "【Kizuna】契約更新が近づいています - テスト" if language == "ja" else \
        "[Kizuna] Renewal is approaching - Test"
    return CrmTask(ref=ref, account_id=account_id, owner_email=owner, subject=subject,
                   body="契約更新まで27日です。\n根拠:\n- 更新までの日数: 27",
                   due_on=date(2026, 11, 30), priority=Severity.HIGH, language=language)


# -- reading ------------------------------------------------------------------------------------

def test_full_sync_maps_accounts_contacts_activities_and_renewals(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """One full pull turns Salesforce rows into Kizuna records: owner email, Japanese names,
    nulls, QBR events, logged calls, open to-dos and the earliest open renewal."""
    sato = add_user(fake, "sato@example.com", "佐藤")
    fake.define("Account", {"Language__c": "picklist", "Form_Impressions__c": "double"})
    acme = fake.add("Account", Name="株式会社さくらウェブ制作", OwnerId=sato, AnnualRevenue=5e7,
                    Industry="Web制作", Type="Customer - Direct", Language__c="日本語",
                    Form_Impressions__c=1234.0)
    bare = fake.add("Account", Name="Northwind <script>&", Language__c="English")
    fake.add("Contact", AccountId=acme, FirstName="花子", LastName="山田", Email="yamada@x.jp",
             Title="部長")
    fake.add("Contact", LastName="Orphan")          # no account: not mirrored
    fake.add("Contact", AccountId=bare, LastName="NoEmail")
    call = fake.add("Task", WhatId=acme, Subject="定期連絡", Status="Completed", TaskSubtype="Call",
                    ActivityDate="2026-11-10")
    todo = fake.add("Task", WhatId=acme, Subject="Send proposal", ActivityDate="2026-12-01")
    mail = fake.add("Task", WhatId=bare, Subject="Re: invoice", Status="Completed",
                    TaskSubtype="Email", ActivityDate="2026-11-02")
    qbr = fake.add("Event", WhatId=acme, Subject="2026年 四半期レビュー",
                   StartDateTime="2026-10-01T05:00:00Z", DurationInMinutes=60)
    meeting = fake.add("Event", WhatId=bare, Subject="Kickoff",
                       StartDateTime="2026-11-01T05:00:00Z", DurationInMinutes=30)
    for close, amount, stage in (("2027-03-31", 2.4e6, "Prospecting"),
                                 ("2026-12-20", 1.2e6, "Prospecting"),
                                 ("2026-06-30", 9.9e6, "Closed Won")):
        fake.add("Opportunity", Name="Renewal", AccountId=acme, Type="Renewal",
                 StageName=stage, CloseDate=close, Amount=amount)
    fake.add("Opportunity", Name="Upsell", AccountId=bare, Type="New Business",
             StageName="Prospecting", CloseDate="2026-12-01", Amount=1.0)
    settings = sf_settings(tmp_path, fake, salesforce={
        "accounts": {"language": "Language__c"},
        "usage": {"account_fields": {"form_impressions": "Form_Impressions__c"}}})

    got = pull(connector(settings, fake))

    a = got.accounts[acme]
    assert (a.name, a.owner_email, a.potential, a.industry, a.lifecycle_stage, a.language) == (
        "株式会社さくらウェブ制作", "sato@example.com", 5e7, "Web制作", "Customer - Direct", "ja")
    assert (a.renewal_date, a.arr) == (date(2026, 12, 20), 1.2e6)
    b = got.accounts[bare]
    assert (b.name, b.potential, b.industry, b.renewal_date, b.arr, b.language) == (
        "Northwind <script>&", None, None, None, None, "en")
    assert b.owner_email == "integration@kizuna.example"
    assert {c.name for c in got.contacts.values()} == {"花子 山田", "NoEmail"}
    assert got.contacts[next(iter(got.contacts))].account_id in (acme, bare)
    kinds = {i: x.kind for i, x in got.activities.items()}
    assert kinds == {call: ActivityKind.CALL, todo: ActivityKind.TASK, mail: ActivityKind.EMAIL,
                     qbr: ActivityKind.QBR, meeting: ActivityKind.MEETING}
    assert got.activities[qbr].occurred_at == parse_datetime("2026-10-01T05:00:00Z")
    assert got.activities[call].owner_email == "integration@kizuna.example"
    assert [(p.account_id, p.metric, p.period, p.value) for p in got.points] == [
        (acme, "form_impressions", date(2026, 11, 23), 1234.0)]
    assert set(got.cursors) == {*OBJECTS, "Account.metrics"}


def test_4500_accounts_arrive_in_three_pages_streamed_as_they_come(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """4,500 accounts are three queryAll pages (2,000 each), yielded page by page."""
    created = seed_accounts(fake, 4500)
    sf = connector(sf_settings(tmp_path, fake), fake)
    got = pull(sf)
    assert set(got.accounts) == set(created)
    account_batches = [b for b in got.batches if b.stream == "Account" and b.records]
    assert [len(b.records) for b in account_batches] == [2000, 2000, 500]
    assert calls_per_object(fake)["Account"] == 1 + 3   # describe + 3 pages
    assert got.accounts[created[-1]].name == "株式会社テスト04499"


def test_api_calls_full_sync_is_pages_plus_constant_and_unchanged_sync_one_per_object(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """A full sync of N accounts is ⌈N/2000⌉ query calls per object plus the describes; an
    unchanged second sync (a new process, describes cached) makes one call per object."""
    n = 4100
    seed_accounts(fake, n)
    settings = sf_settings(tmp_path, fake)
    first = connector(settings, fake)
    got = pull(first)
    per_object = calls_per_object(fake)
    assert per_object == {"Account": 1 + math.ceil(n / 2000), "Contact": 2, "Task": 2,
                          "Event": 2, "Opportunity": 2}
    assert first.stats()["api_calls"] == len(fake.calls) == 5 + math.ceil(n / 2000) + 4

    fake.reset_calls()
    second = connector(settings, fake)   # a new process: describes come from the cache
    again = pull(second, got.cursors)
    assert calls_per_object(fake) == dict.fromkeys(OBJECTS, 1)
    assert second.stats()["api_calls"] == len(OBJECTS)
    assert again.accounts == {} and again.contacts == {} and again.activities == {}


def test_incremental_sync_asks_for_changes_since_the_cursor_with_z_literals(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """After a full pull only changed records come back, queried with a SOQL dateTime literal
    (Z, whole seconds) rather than Salesforce's own +0000 form."""
    ids = seed_accounts(fake, 30)
    settings = sf_settings(tmp_path, fake)
    first = pull(connector(settings, fake))
    fake.now += timedelta(hours=1)
    fake.update("Account", ids[3], Name="株式会社リネーム")
    contact = fake.add("Contact", AccountId=ids[5], LastName="新規")
    fake.reset_calls()

    again = pull(connector(settings, fake), first.cursors)

    assert set(again.accounts) == {ids[3]}
    assert again.accounts[ids[3]].name == "株式会社リネーム"
    assert set(again.contacts) == {contact}
    account_soql = queries_of(fake, "Account")[0]
    stamp = re.search(r"SystemModstamp > (\S+)", account_soql).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert "+0000" not in " ".join(c.params.get("q", "") for c in fake.calls)
    assert parse_datetime(stamp) <= parse_datetime(fake.get("Account", ids[3])["SystemModstamp"])


def test_overlap_rereads_writes_made_just_before_the_last_read(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """Records written within `overlap_seconds` before the last read started are read again
    (they may have committed late); when that read came long after the newest change, nothing
    is read twice."""
    ids = seed_accounts(fake, 5)            # stamped NOW+1s … NOW+5s (the fake's user is NOW)
    settings = sf_settings(tmp_path, fake, salesforce={"overlap_seconds": 3})
    read_at = fake.now                      # the first read starts right after the writes
    first = pull(connector(settings, fake, clock=lambda: read_at), {})
    fake.reset_calls()
    again = pull(connector(settings, fake, clock=lambda: read_at), first.cursors)
    assert set(again.accounts) == set(ids[3:])   # stamped after the read's start (NOW+6s) - 3s
    assert "SystemModstamp > 2026-11-23T01:00:03Z" in queries_of(fake, "Account")[0]

    late = pull(connector(settings, fake, ahead=timedelta(minutes=5)), again.cursors)
    later = pull(connector(settings, fake, ahead=timedelta(minutes=5)), late.cursors)
    assert later.accounts == {}
    assert "SystemModstamp > 2026-11-23T01:00:05Z" in queries_of(fake, "Account")[-1]


def test_deleted_account_leaves_the_store_and_stops_getting_plays(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """A deleted account comes back from queryAll as IsDeleted and stops being live: the
    account count drops and no play fires for it any more."""
    keep = fake.add("Account", Name="Keep KK")
    gone = fake.add("Account", Name="消える株式会社")
    for account in (keep, gone):
        fake.add("Opportunity", Name="R", AccountId=account, Type="Renewal",
                 StageName="Prospecting", CloseDate="2026-12-20")
    fake.add("Contact", AccountId=gone, LastName="連絡先")
    settings = sf_settings(tmp_path, fake)
    store = Store.open(settings.database_url)
    kizuna = Kizuna(settings, Rules.load(settings), store, connector(settings, fake),
                    clock=lambda: NOW)
    kizuna.sync()
    assert store.account_count("salesforce") == 2
    assert {f.account_id for f in kizuna.decide().findings if f.outcome == "open"} == {keep, gone}

    fake.delete("Account", gone)
    kizuna.connector = connector(settings, fake)
    result = kizuna.sync()

    assert store.account_count("salesforce") == 1
    assert result.counts.deleted["accounts"] == 1
    assert {f.account_id for f in kizuna.decide().findings} == {keep}
    store.close()


def test_missing_mapped_field_is_a_startup_error_naming_object_field_and_key(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """A mapped field the org lacks stops check() with the object, field and kizuna.yaml key."""
    settings = sf_settings(tmp_path, fake, salesforce={
        "accounts": {"potential": "Marketing_Budget__c"}})
    with pytest.raises(ConfigError) as exc:
        connector(settings, fake).check()
    text = exc.value.describe()
    assert "salesforce.accounts.potential" in text
    assert "Account" in text and "Marketing_Budget__c" in text
    assert [c.path.rsplit("/", 3)[-3] for c in fake.calls] == [
        "Account", "Contact", "Event", "Opportunity", "Task"]   # one describe per object


def test_missing_field_in_kizuna_yaml_names_the_line(tmp_path: Path, fake: FakeSalesforce,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With a kizuna.yaml, the error points at the file and line of the mapping."""
    monkeypatch.chdir(tmp_path)
    yaml = tmp_path / "kizuna.yaml"
    yaml.write_text("crm: salesforce\nsalesforce:\n  usage:\n    account_fields:\n"
                    "      form_impressions: Impressions__c\n", encoding="utf-8")
    settings = load_settings({"KIZUNA_CONFIG": str(yaml), "SALESFORCE_INSTANCE_URL": fake.url,
                              "SALESFORCE_SESSION_ID": fake.session_id})
    with pytest.raises(ConfigError) as exc:
        connector(settings, fake).check()
    assert exc.value.describe().startswith(
        f"{yaml}:5: salesforce.usage.account_fields.form_impressions: the Account object has "
        "no field 'Impressions__c'")


def test_missing_credentials_name_the_variables(tmp_path: Path) -> None:
    """No session and no username: a ConfigError naming the SALESFORCE_* variables."""
    with pytest.raises(ConfigError) as exc:
        credentials_from(sf_settings(tmp_path, None))
    for name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_SESSION_ID", "SALESFORCE_USERNAME",
                 "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN"):
        assert name in str(exc.value)


def test_kizuna_tasks_read_back_as_tasks_not_contact(tmp_path: Path,
                                                     fake: FakeSalesforce) -> None:
    """A completed Task Kizuna created (ref marker in its Subject) is kind task, not a call."""
    account = fake.add("Account", Name="Acme")
    ours = fake.add("Task", WhatId=account, Status="Completed", TaskSubtype="Call",
                    Subject="【Kizuna】QBR の実施 - Acme [kz-0123456789abcdef]")
    got = pull(connector(sf_settings(tmp_path, fake), fake))
    assert got.activities[ours].kind == ActivityKind.TASK


def test_renewal_from_an_account_field_and_usage_from_a_custom_object(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """Renewal dates can come from an Account date field; usage from one row per period."""
    fake.define("Account", {"Renewal_Date__c": "date", "Plan_Limit__c": "double"})
    fake.define("Usage__c", {"Account__c": "reference:Account", "Period__c": "date",
                             "Impressions__c": "double"})
    acme = fake.add("Account", Name="Acme", Renewal_Date__c="2027-02-01", Plan_Limit__c=5e4)
    for period, value in (("2026-09-30", 900.0), ("2026-10-31", 1200.0)):
        fake.add("Usage__c", Name=period, Account__c=acme, Period__c=period,
                 Impressions__c=value)
    fake.add("Usage__c", Name="empty", Account__c=acme, Period__c="2026-08-31")
    settings = sf_settings(tmp_path, fake, salesforce={
        "accounts": {"plan_limit": "Plan_Limit__c"},
        "renewals": {"account_field": "Renewal_Date__c"},
        "usage": {"object": {"name": "Usage__c", "account_field": "Account__c",
                             "period_field": "Period__c", "value_field": "Impressions__c"}}})
    got = pull(connector(settings, fake))
    assert (got.accounts[acme].renewal_date, got.accounts[acme].plan_limit) == (
        date(2027, 2, 1), 5e4)
    assert sorted((p.period, p.value) for p in got.points) == [
        (date(2026, 9, 30), 900.0), (date(2026, 10, 31), 1200.0)]
    assert {p.metric for p in got.points} == {"form_impressions"}
    assert queries_of(fake, "Opportunity") == []


def test_first_sync_reads_activities_of_the_history_window_only(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """activities.history_days bounds the first read of Tasks and Events by SystemModstamp."""
    acme = fake.add("Account", Name="Acme")
    fake.now = NOW - timedelta(days=40)
    old = fake.add("Task", WhatId=acme, Subject="old call", Status="Completed",
                   TaskSubtype="Call")
    fake.now = NOW
    recent = fake.add("Task", WhatId=acme, Subject="recent call", Status="Completed",
                      TaskSubtype="Call")
    settings = sf_settings(tmp_path, fake, salesforce={"activities": {"history_days": 30}})
    got = pull(connector(settings, fake))
    assert set(got.activities) == {recent} and old not in got.activities
    assert "SystemModstamp >= 2026-10-23T15:00:00Z" in queries_of(fake, "Task")[0]


def test_account_field_usage_is_read_once_a_day(tmp_path: Path, fake: FakeSalesforce) -> None:
    """Current-value usage fields yield one point per day for every account, unchanged or
    not: one extra query on the first sync of a day, none on later syncs that day."""
    fake.define("Account", {"Form_Impressions__c": "double"})
    ids = seed_accounts(fake, 3, Form_Impressions__c=100.0)
    settings = sf_settings(tmp_path, fake, salesforce={
        "usage": {"account_fields": {"form_impressions": "Form_Impressions__c"}}})
    first = pull(connector(settings, fake))
    assert {(p.account_id, p.period) for p in first.points} == {
        (i, date(2026, 11, 23)) for i in ids}
    same_day = pull(connector(settings, fake), first.cursors)
    assert same_day.points == []
    fake.reset_calls()
    next_day = pull(connector(settings, fake, ahead=timedelta(days=1)), same_day.cursors)
    assert {(p.account_id, p.period) for p in next_day.points} == {
        (i, date(2026, 11, 24)) for i in ids}
    assert calls_per_object(fake)["Account"] == 2


def test_changed_renewal_rereads_its_account_in_the_same_opportunity_query(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """A renewal moved in Salesforce updates its account's renewal date on the next sync,
    though the account itself did not change."""
    acme = fake.add("Account", Name="Acme")
    opp = fake.add("Opportunity", Name="R", AccountId=acme, Type="Renewal",
                   StageName="Prospecting", CloseDate="2027-01-31", Amount=100.0)
    settings = sf_settings(tmp_path, fake)
    first = pull(connector(settings, fake))
    assert first.accounts[acme].renewal_date == date(2027, 1, 31)
    fake.now += timedelta(hours=1)
    fake.update("Opportunity", opp, StageName="Closed Won")
    fake.add("Opportunity", Name="R2", AccountId=acme, Type="Renewal", StageName="Prospecting",
             CloseDate="2028-01-31", Amount=150.0)
    again = pull(connector(settings, fake), first.cursors)
    assert (again.accounts[acme].renewal_date, again.accounts[acme].arr) == (
        date(2028, 1, 31), 150.0)


# -- failures -----------------------------------------------------------------------------------

def test_429_is_retried_after_the_servers_retry_after(tmp_path: Path,
                                                      fake: FakeSalesforce) -> None:
    """HTTP 429 with Retry-After: 7 waits 7 s (recorded, not slept), then succeeds."""
    seed_accounts(fake, 3)
    fake.inject(429, retry_after=7, match="/queryAll")
    sleeps = Sleeps()
    got = pull(connector(sf_settings(tmp_path, fake), fake, sleeps))
    assert sleeps.waits == [7.0]
    assert len(got.accounts) == 3


def test_503_is_retried_with_backoff(tmp_path: Path, fake: FakeSalesforce) -> None:
    """HTTP 503 SERVER_UNAVAILABLE twice, then success: two bounded backoff waits."""
    seed_accounts(fake, 3)
    fake.inject(503, times=2, match="/queryAll")
    sleeps = Sleeps()
    got = pull(connector(sf_settings(tmp_path, fake), fake, sleeps))
    assert len(sleeps.waits) == 2 and all(0 < w <= 30 for w in sleeps.waits)
    assert len(got.accounts) == 3


def test_request_limit_exceeded_is_retried_then_reported_with_the_budget(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """403 REQUEST_LIMIT_EXCEEDED is retriable; when it persists, the error is retriable and
    names the org's daily use, after a bounded number of waits."""
    seed_accounts(fake, 3)
    settings = sf_settings(tmp_path, fake)
    fake.inject(403, error_code="REQUEST_LIMIT_EXCEEDED", match="/queryAll")
    sleeps = Sleeps()
    assert len(pull(connector(settings, fake, sleeps)).accounts) == 3
    assert len(sleeps.waits) == 1

    fake.daily_api_max = fake.api_used   # the org's day is used up
    sleeps = Sleeps()
    with pytest.raises(RetriableAPIError) as exc:
        pull(connector(settings, fake, sleeps, attempts=3))
    assert "REQUEST_LIMIT_EXCEEDED" in str(exc.value)
    assert f"daily API use {fake.api_used}/{fake.daily_api_max}" in str(exc.value)
    assert len(sleeps.waits) == 2


def test_expired_session_logs_in_again_once_with_username_credentials(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """401 INVALID_SESSION_ID with username/password/token set: one SOAP login, then on."""
    seed_accounts(fake, 3)
    fake.expire_session()
    sf = connector(sf_settings(tmp_path, fake, login=True), fake)
    got = pull(sf)
    assert len(got.accounts) == 3
    logins = [c for c in fake.calls if c.path.startswith("/services/Soap/u/")]
    assert len(logins) == 1
    assert sf.stats()["logins"] == 1
    assert fake.calls[0].status == 401


def test_expired_session_without_username_fails_clearly_without_retrying(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """401 with only a session id: AuthError saying how to fix it; nothing is retried."""
    fake.expire_session()
    sleeps = Sleeps()
    with pytest.raises(AuthError) as exc:
        connector(sf_settings(tmp_path, fake), fake, sleeps).check()
    assert "SALESFORCE_SESSION_ID" in str(exc.value) and "SALESFORCE_USERNAME" in str(exc.value)
    assert sleeps.waits == [] and len(fake.calls) == 1


def test_username_login_alone_reaches_a_local_http_instance(tmp_path: Path,
                                                            fake: FakeSalesforce) -> None:
    """Without a session id, the SOAP login goes to the instance URL's host (http kept) and the
    session it returns is used for the REST calls."""
    seed_accounts(fake, 2)
    sf = connector(sf_settings(tmp_path, fake, session=False, login=True), fake)
    assert len(pull(sf).accounts) == 2
    assert [c.path for c in fake.calls[:1]] == ["/services/Soap/u/59.0"]
    assert sf.stats()["logins"] == 1


def test_wrong_password_is_an_auth_error(tmp_path: Path, fake: FakeSalesforce) -> None:
    """Username login with bad credentials fails as AuthError with Salesforce's code, and the
    password appears nowhere in the message."""
    with FakeSalesforce(users={USERNAME: "another-password"}) as strict, \
            pytest.raises(AuthError) as exc:
        connector(sf_settings(tmp_path, strict, session=False, login=True), strict).check()
    assert "INVALID_LOGIN" in str(exc.value) and PASSWORD not in str(exc.value)


def test_invalid_field_in_soql_fails_fast_naming_the_soql_and_field(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """A relationship path the org lacks fails at query time as a fatal error that quotes
    the SOQL and names the field; it is not retried."""
    fake.add("Account", Name="Acme")
    settings = sf_settings(tmp_path, fake, salesforce={
        "accounts": {"owner_email": "Owner.Work_Email__c"}})
    sleeps = Sleeps()
    with pytest.raises(FatalAPIError) as exc:
        pull(connector(settings, fake, sleeps))
    text = str(exc.value)
    assert "INVALID_FIELD" in text and "User.Work_Email__c" in text
    assert "SOQL: SELECT Id, IsDeleted, SystemModstamp, Name, Owner.Work_Email__c" in text
    assert sleeps.waits == []


def test_malformed_query_and_missing_permission_are_fatal(tmp_path: Path,
                                                           fake: FakeSalesforce) -> None:
    """MALFORMED_QUERY and INSUFFICIENT_ACCESS are FatalAPIError at once, with the SOQL."""
    settings = sf_settings(tmp_path, fake)
    sleeps = Sleeps()
    fake.inject(400, error_code="MALFORMED_QUERY", match="/queryAll")
    with pytest.raises(FatalAPIError) as exc:
        pull(connector(settings, fake, sleeps))
    assert "MALFORMED_QUERY" in str(exc.value) and "SOQL: SELECT" in str(exc.value)
    fake.inject(403, error_code="INSUFFICIENT_ACCESS", match="/queryAll")
    with pytest.raises(FatalAPIError) as exc:
        pull(connector(settings, fake, sleeps))
    assert "INSUFFICIENT_ACCESS" in str(exc.value)
    assert sleeps.waits == []


def test_unreachable_instance_is_retriable(tmp_path: Path) -> None:
    """A refused connection is a RetriableAPIError after the policy's attempts."""
    with FakeSalesforce() as gone:
        settings = sf_settings(tmp_path, gone)
    sleeps = Sleeps()
    sf = connector(settings, gone, sleeps, attempts=2)
    with pytest.raises(RetriableAPIError) as exc:
        sf.check()
    assert "connection failed" in str(exc.value)
    assert len(sleeps.waits) == 1 and sf.stats()["api_calls"] == 0


def test_mid_page_503_is_retried_on_the_same_page(tmp_path: Path,
                                                   fake: FakeSalesforce) -> None:
    """A 5xx on a nextRecordsUrl fetch retries that page; no page is lost or doubled."""
    created = seed_accounts(fake, 4500)
    fake.fail_page(1, status=503)
    sleeps = Sleeps()
    got = pull(connector(sf_settings(tmp_path, fake), fake, sleeps))
    assert len(got.records(Account)) == 4500 and set(got.accounts) == set(created)
    assert len(sleeps.waits) == 1


def test_failure_mid_pull_leaves_the_previous_mirror_and_cursors_intact(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """When a later page keeps failing, nothing of the pull is applied: same accounts, names
    and cursors as before, and the sync run is recorded as failed."""
    fake.page_size = 100
    ids = seed_accounts(fake, 250)
    settings = sf_settings(tmp_path, fake)
    store = Store.open(settings.database_url)
    kizuna = Kizuna(settings, Rules.load(settings), store, connector(settings, fake),
                    clock=lambda: NOW)
    kizuna.sync()
    cursors = store.cursors("salesforce")
    fake.now += timedelta(hours=1)
    for account in ids[:150]:
        fake.update("Account", account, Name="renamed")
    fake.delete("Account", ids[200])
    fake.inject(500, times=10, match=lambda c: "/queryAll/01g" in c.path)
    kizuna.connector = connector(settings, fake, attempts=3)

    with pytest.raises(RetriableAPIError):
        kizuna.sync()

    assert store.account_count("salesforce") == 250
    assert store.account("salesforce", ids[0]).name == "株式会社テスト00000"
    assert store.cursors("salesforce") == cursors
    assert store.last_sync("salesforce")["status"] == "failed"
    store.close()


# -- writing ------------------------------------------------------------------------------------

def test_create_task_sets_owner_due_date_priority_and_marker(tmp_path: Path,
                                                             fake: FakeSalesforce) -> None:
    """The Task carries WhatId, the CSM's OwnerId (one User query), ActivityDate, Subject with
    the ref marker, Description, Priority and Status."""
    sato = add_user(fake, "Sato@Example.com", "佐藤")
    acme = fake.add("Account", Name="Acme")
    sf = connector(sf_settings(tmp_path, fake), fake)
    first = sf.create_task(task_for(acme, owner="sato@example.com"))
    second = sf.create_task(task_for(acme, owner="sato@example.com", ref="kz-00000000000000ff"))
    task = fake.get("Task", first)
    assert (task["WhatId"], task["OwnerId"], task["ActivityDate"], task["Priority"],
            task["Status"]) == (acme, sato, "2026-11-30", "High", "Not Started")
    assert task["Subject"] == "【Kizuna】契約更新が近づいています - テスト [kz-0123456789abcdef]"
    assert REF_RE.search(task["Subject"]).group(1) == "kz-0123456789abcdef"
    assert task["Description"].startswith("契約更新まで27日です。")
    assert second != first
    assert len(queries_of(fake, "User")) == 1


def test_create_task_twice_with_the_same_ref_makes_one_task(tmp_path: Path,
                                                            fake: FakeSalesforce) -> None:
    """A retried create (e.g. after a crash) finds the first Task by its ref instead of
    making another; the lookup filters on WhatId and Subject, never on Description."""
    acme = fake.add("Account", Name="Acme")
    settings = sf_settings(tmp_path, fake)
    first = connector(settings, fake).create_task(task_for(acme))
    again = connector(settings, fake).create_task(task_for(acme))   # a new process
    assert again == first
    assert len(fake.records("Task")) == 1
    lookups = queries_of(fake, "Task")
    assert lookups and all("Description" not in q for q in lookups)
    assert f"WhatId = '{acme}'" in lookups[-1]


def test_ref_field_when_the_org_has_one(tmp_path: Path, fake: FakeSalesforce) -> None:
    """With tasks.ref_field, the ref goes into that field and the lookup uses it."""
    fake.define("Task", {"Kizuna_Ref__c": "string"})
    acme = fake.add("Account", Name="Acme")
    settings = sf_settings(tmp_path, fake, salesforce={"tasks": {"ref_field": "Kizuna_Ref__c"}})
    first = connector(settings, fake).create_task(task_for(acme, language="en"))
    assert connector(settings, fake).create_task(task_for(acme, language="en")) == first
    task = fake.get("Task", first)
    assert (task["Kizuna_Ref__c"], task["Subject"]) == (
        "kz-0123456789abcdef", "[Kizuna] Renewal is approaching - Test")
    assert "Kizuna_Ref__c = 'kz-0123456789abcdef'" in queries_of(fake, "Task")[-1]


def test_complete_task_sets_completed_and_ignores_deleted(tmp_path: Path,
                                                          fake: FakeSalesforce) -> None:
    """complete_task sets Status Completed; a Task someone deleted needs nothing."""
    acme = fake.add("Account", Name="Acme")
    sf = connector(sf_settings(tmp_path, fake), fake)
    task_id = sf.create_task(task_for(acme))
    sf.complete_task(task_id)
    assert (fake.get("Task", task_id)["Status"], fake.get("Task", task_id)["IsClosed"]) == (
        "Completed", True)
    fake.delete("Task", task_id)
    sf.complete_task(task_id)


def seed_renewals(fake: FakeSalesforce) -> dict[str, str]:
    fake.define("Account", {"Language__c": "picklist"})
    sato = add_user(fake, "sato@example.com", "佐藤")
    emily = add_user(fake, "emily@example.com", "Clark")
    ja = fake.add("Account", Name="株式会社さくらウェブ制作", OwnerId=sato, Language__c="日本語")
    en = fake.add("Account", Name="Northwind Digital Inc.", OwnerId=emily,
                  Language__c="English")
    for account, close in ((ja, "2026-12-20"), (en, "2027-01-10")):
        fake.add("Opportunity", Name="Renewal", AccountId=account, Type="Renewal",
                 StageName="Negotiation/Review", CloseDate=close, Amount=1.2e6)
    return {"ja": ja, "en": en, "sato": sato, "emily": emily}


def test_tick_creates_one_task_per_play_in_the_accounts_language(
        tmp_path: Path, fake: FakeSalesforce) -> None:
    """A Kizuna tick on a real SQLite store creates exactly one Task per play, with the right
    WhatId, OwnerId and due date, in Japanese or English by the account; a second tick (a new
    process) creates none and reads Kizuna's own tasks back as tasks."""
    ids = seed_renewals(fake)
    settings = sf_settings(tmp_path, fake, salesforce={"accounts": {"language": "Language__c"}})
    store = Store.open(settings.database_url)
    kizuna = Kizuna(settings, Rules.load(settings), store, connector(settings, fake),
                    clock=lambda: NOW)
    report = kizuna.tick()

    plays = kizuna.ledger.plays("salesforce")
    tasks = fake.records("Task")
    assert len(plays) == len(tasks) == len(report.delivery.tasks) >= 2
    by_ref = {REF_RE.search(t["Subject"]).group(1): t for t in tasks}
    assert set(by_ref) == {p.ref for p in plays}
    owner = {ids["ja"]: ids["sato"], ids["en"]: ids["emily"]}
    for play in plays:
        task = by_ref[play.ref]
        assert (task["WhatId"], task["OwnerId"], task["ActivityDate"]) == (
            play.account_id, owner[play.account_id], play.due_on.isoformat())
        assert play.task_id == task["Id"]
        if play.account_id == ids["ja"]:
            assert task["Subject"].startswith("【Kizuna】") and "根拠" in task["Description"]
        else:
            assert task["Subject"].startswith("[Kizuna]") and "Evidence" in task["Description"]
    assert {p.playbook_id for p in plays} >= {"renewal_approaching"}

    kizuna.connector = connector(settings, fake, ahead=timedelta(hours=1))
    second = kizuna.tick()
    assert (second.opened, len(second.delivery.tasks)) == (0, 0)
    assert len(fake.records("Task")) == len(tasks)
    recent = store.recent_activities("salesforce", ids["ja"])
    assert recent and {a.kind for a in recent} == {ActivityKind.TASK}
    store.close()


def test_crash_after_salesforce_accepted_the_task_creates_no_second_one(
        tmp_path: Path, fake: FakeSalesforce, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger write fails right after Salesforce created the Task (the process "dies");
    the next run's delivery finds that Task by its ref: exactly one Task per play."""
    seed_renewals(fake)
    settings = sf_settings(tmp_path, fake, salesforce={"accounts": {"language": "Language__c"}})
    store = Store.open(settings.database_url)
    kizuna = Kizuna(settings, Rules.load(settings), store, connector(settings, fake),
                    clock=lambda: NOW)
    kizuna.sync()
    decisions = kizuna.decide()
    kizuna.ledger.insert(decisions.new_plays)

    def crash(self: Ledger, *args: object, **kwargs: object) -> None:
        raise StoreError("the process died before the ledger recorded the task")

    with monkeypatch.context() as patch:
        patch.setattr(Ledger, "mark_task", crash)
        with pytest.raises(StoreError):
            kizuna.deliver()
    assert len(fake.records("Task")) == 1

    rerun = Kizuna(settings, Rules.load(settings), store, connector(settings, fake),
                   clock=lambda: NOW)
    delivery = rerun.deliver()
    plays = rerun.ledger.plays("salesforce")
    tasks = fake.records("Task")
    assert len(tasks) == len(plays) == len(delivery.tasks) >= 2
    assert sorted(REF_RE.search(t["Subject"]).group(1) for t in tasks) == sorted(
        p.ref for p in plays)
    assert all(p.task_id for p in plays)
    store.close()


# -- the command --------------------------------------------------------------------------------

def test_kizuna_sync_command_against_a_local_http_instance(tmp_path: Path,
                                                           fake: FakeSalesforce) -> None:
    """`kizuna sync` with KIZUNA_CRM=salesforce and an http:// instance URL exits 0 and prints
    per-object counts, API calls and the org's remaining daily budget; run again, it uses
    one call per object."""
    fake.now = datetime.now(UTC) - timedelta(days=1)   # the command reads the real clock
    seed_accounts(fake, 2100)
    fake.add("Contact", AccountId=fake.records("Account")[0]["Id"], LastName="山田")
    env = {"KIZUNA_CRM": "salesforce", "SALESFORCE_INSTANCE_URL": fake.url,
           "SALESFORCE_SESSION_ID": fake.session_id}
    done = run_kizuna(tmp_path, "sync", env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"accounts\W+2100\W+0", out) and re.search(r"contacts\W+1\W+0", out)
    assert re.search(r"^api_calls: 11$", out, re.M)   # 5 describes, 2 account pages, 4
    assert re.search(r"^daily_api_remaining: \d+$", out, re.M)

    again = run_kizuna(tmp_path, "sync", env=env)
    assert again.returncode == 0, again.stderr
    assert re.search(r"^api_calls: 5$", again.stdout, re.M)


def test_kizuna_sync_command_exits_1_on_an_expired_session(tmp_path: Path,
                                                           fake: FakeSalesforce) -> None:
    """An expired session without username credentials fails the command with exit 1 and a
    message saying which variables to set."""
    secret = "00D000000000001!AQ4AQSecretSessionValue"
    done = run_kizuna(tmp_path, "sync", env={
        "KIZUNA_CRM": "salesforce", "SALESFORCE_INSTANCE_URL": fake.url,
        "SALESFORCE_SESSION_ID": secret})
    assert done.returncode == 1
    assert "SALESFORCE_SESSION_ID" in done.stderr and "SALESFORCE_USERNAME" in done.stderr
    assert secret not in done.stderr + done.stdout


def test_connector_satisfies_the_protocol(tmp_path: Path, fake: FakeSalesforce) -> None:
    """The registry builds a SalesforceConnector for crm: salesforce."""
    from connectors.base import Connector, create_connector

    sf = create_connector(sf_settings(tmp_path, fake))
    assert isinstance(sf, SalesforceConnector) and isinstance(sf, Connector)
    assert sf.name == "salesforce" and sf.stats() == {"api_calls": 0}
    assert soql_calls(fake) == []
