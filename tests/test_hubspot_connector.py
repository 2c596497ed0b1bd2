"""The HubSpot connector against FakeHubSpot, through the real hubspot-api-client.

Each test pins one behaviour the issue asks for: bulk and incremental reads within HubSpot's
limits, the search API's 10,000-result cap, archived companies, failures (429, 5xx, 401, other
4xx), idempotent task creation across a crash, and a whole Kizuna tick on a real SQLite store.
Time is simulated (``SimTime``) so rate limiting and retries never really wait.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hubspot import HubSpot

from connectors.hubspot import (
    CompanyProperties,
    HubSpotSettings,
    Limits,
    Renewals,
    TaskSettings,
    from_settings,
)
from core.app import Kizuna, Rules
from core.config import KizunaConfig, Settings, load_settings
from core.domain import (
    Account,
    Activity,
    ActivityKind,
    Contact,
    CrmTask,
    MetricPoint,
    PlayState,
    Severity,
    StepState,
    SyncBatch,
)
from core.errors import AuthError, ConfigError, FatalAPIError, RetriableAPIError
from core.ledger import Ledger
from core.store import Store
from tests.fakes.hubspot import FakeHubSpot
from tests.hubspot_helpers import NOW, TODAY, SimTime, connector, seed

ENGAGEMENT_TYPES = ("calls", "meetings", "emails", "notes", "tasks")
OBJECT_TYPES = ("companies", "deals", "contacts", *ENGAGEMENT_TYPES)


@pytest.fixture
def sim() -> SimTime:
    return SimTime()


@pytest.fixture
def fake(sim: SimTime) -> Iterator[FakeHubSpot]:
    """A fake portal whose rate-limit windows run on the same simulated time as the connector."""
    with FakeHubSpot(limiter_clock=sim) as server:
        server.now = datetime(2024, 6, 1, tzinfo=UTC)
        yield server


def records(batches: list[SyncBatch], kind: type) -> list:
    return [r for b in batches for r in b.records if isinstance(r, kind)]


def cursors_of(batches: list[SyncBatch]) -> dict[str, str]:
    return {b.stream: b.cursor for b in batches if b.cursor is not None}


def calls_to(fake: FakeHubSpot, method: str, path: str) -> list:
    return [c for c in fake.calls if c.method == method and c.path.rstrip("/") == path]


def client(fake: FakeHubSpot) -> HubSpot:
    return HubSpot(access_token=fake.access_token, host=fake.url)


def task_companies(fake: FakeHubSpot) -> dict[str, list[str]]:
    """Task id → associated company ids, as HubSpot shows them (v3 list with associations)."""
    page = client(fake).crm.objects.tasks.basic_api.get_page(limit=100, associations=["companies"])
    return {t.id: [a.id for a in t.associations["companies"].results] if t.associations else []
            for t in page.results}


def sample_task(account_id: str, ref: str = "kz-0123456789abcdef",
                owner: str | None = "sato.hanako@example.com") -> CrmTask:
    return CrmTask(ref=ref, account_id=account_id, owner_email=owner,
                   subject="【Kizuna】フォーム表示回数が低下しています - 株式会社さくら0号",
                   body="直近30日のフォーム表示回数は100回です。\n<期限>",
                   due_on=TODAY + timedelta(days=3), priority=Severity.HIGH, language="ja")


# -- bulk and incremental reads -----------------------------------------------------------------

@pytest.fixture(scope="module")
def big_portal() -> Iterator[tuple[FakeHubSpot, object]]:
    """3,050 companies with contacts, QBR meetings and renewal deals (built once: it is slow)."""
    with FakeHubSpot(burst_limit=None, search_rate_limit=None) as server:
        server.now = datetime(2024, 6, 1, tzinfo=UTC)
        yield server, seed(server, 3050)


def test_full_then_incremental_sync_of_3050_companies(big_portal: tuple) -> None:
    """Full pull: ⌈N/100⌉ list pages per object + owners; then only changes; then 1 call each."""
    fake, portal = big_portal
    fake.reset_calls()
    hs = connector(fake)
    full = list(hs.pull({}))

    accounts = {a.crm_id: a for a in records(full, Account)}
    assert len(accounts) == 3050
    first, second = portal.companies[0], portal.companies[1]
    assert accounts[first].name == "株式会社さくら0号" and accounts[first].language == "ja"
    assert accounts[second].name == "Northwind 1 Inc."
    assert all(accounts[c].owner_email == portal.owner_of[c] for c in portal.companies)
    assert accounts[first].renewal_date == TODAY + timedelta(days=30)
    assert accounts[first].lifecycle_stage == "customer"
    points = {p.account_id: p for p in records(full, MetricPoint)}
    assert points[second] == MetricPoint(second, "form_impressions", TODAY, 100.0)
    contacts = records(full, Contact)
    assert len(contacts) == 1017 and contacts[0].name == "山田 太郎"
    qbrs = records(full, Activity)
    assert len(qbrs) == 1017 and {a.kind for a in qbrs} == {ActivityKind.QBR}

    lists = Counter(c.path.rsplit("/", 1)[-1] for c in fake.calls
                    if c.method == "GET" and "/objects/" in c.path
                    and c.query.get("archived") != ["true"])
    assert lists == {"companies": 31, "contacts": 11, "meetings": 11, "deals": 4, "calls": 1,
                     "emails": 1, "notes": 1, "tasks": 1}
    assert len(calls_to(fake, "GET", "/crm/v3/owners")) == 1
    assert not [c for c in fake.calls if "/search" in c.path or "/batch/" in c.path]
    company_list = calls_to(fake, "GET", "/crm/v3/objects/companies")[0]
    assert set(company_list.query["properties"]) == {
        "name", "hubspot_owner_id", "lifecyclestage", "industry", "form_impressions",
        "hs_lastmodifieddate"}

    # A few changes, then an incremental sync: searches plus one association read per page.
    fake.advance(3600)
    fake.update("companies", second, {"name": "Northwind Renamed", "form_impressions": 5})
    fake.add("calls", {"hs_call_title": "Check-in", "hs_timestamp": "2024-06-01T02:00:00Z",
                       "hubspot_owner_id": portal.owners["emily.clark@example.com"]},
             associations={"companies": [first]})
    fake.reset_calls()
    changed = list(hs.pull(cursors_of(full)))
    assert [a.name for a in records(changed, Account)] == ["Northwind Renamed"]
    assert records(changed, MetricPoint) == [MetricPoint(second, "form_impressions", TODAY, 5.0)]
    (call,) = records(changed, Activity)
    assert (call.kind, call.account_id, call.owner_email) == (
        ActivityKind.CALL, first, "emily.clark@example.com")
    assert {c.path for c in fake.calls if c.method == "POST" and c.path.endswith("/search")} == {
        f"/crm/v3/objects/{t}/search" for t in OBJECT_TYPES}

    # Nothing changed: one search per object type (archived companies were listed minutes ago).
    fake.reset_calls()
    unchanged = list(hs.pull(cursors_of(full) | cursors_of(changed)))
    assert sum(len(b.records) for b in unchanged) == 0
    per_object = Counter(c.path.split("/")[4] for c in fake.calls)
    assert per_object == {t: 1 for t in OBJECT_TYPES}
    assert hs.stats()["api_calls"] == len(fake.calls) == 8


def test_search_never_pages_past_the_result_cap() -> None:
    """More changes than the search cap are read whole, and no query pages past the cap."""
    with FakeHubSpot(search_cap=300, burst_limit=None, search_rate_limit=None) as fake:
        ids = [fake.add("companies", {"name": f"C{i}"}) for i in range(1000)]
        hs = connector(fake)
        cursors = cursors_of(list(hs.pull({})))
        fake.advance(60)
        for i, cid in enumerate(ids):
            fake.update("companies", cid, {"name": f"変更後{i}"})
        fake.reset_calls()
        changed = records(list(hs.pull(cursors)), Account)
        assert len(changed) == 1000 > fake.search_cap
        assert sorted(a.name for a in changed) == sorted(f"変更後{i}" for i in range(1000))
        searches = [c for c in fake.calls if c.path.endswith("/search")]
        assert all(c.status in (200, 207) for c in fake.calls)
        assert all(int(c.body.get("after") or 0) + c.body["limit"] <= 300 for c in searches)
        # 200 new, then 199 new per page (the boundary record comes back once), until short.
        assert len([c for c in searches if "companies" in c.path]) == math.ceil(1000 / 199)


def test_changes_in_one_millisecond_beyond_a_page_are_walked_by_id() -> None:
    """450 meetings modified in the same millisecond are each read exactly once."""
    with FakeHubSpot(burst_limit=None, search_rate_limit=None) as fake:
        company = fake.add("companies", {"name": "Acme"})
        ids = [fake.add("meetings", {"hs_meeting_title": f"M{i}",
                                     "hs_timestamp": "2024-01-10T00:00:00Z"},
                        associations={"companies": [company]}) for i in range(450)]
        hs = connector(fake)
        cursors = cursors_of(list(hs.pull({})))
        for mid in ids:  # a bulk import stamps every record with the same time
            fake.update("meetings", mid, {"hs_meeting_title": f"X{mid}",
                                          "hs_lastmodifieddate": "2024-02-01T00:00:00.000Z"})
        changed = [a.crm_id for a in records(list(hs.pull(cursors)), Activity)]
        assert sorted(changed) == sorted(f"meeting:{i}" for i in ids)


def test_next_day_reads_every_usage_value_again(fake: FakeHubSpot, sim: SimTime) -> None:
    """Unchanged usage still yields one point per account per day (one list pass, no search)."""
    portal = seed(fake, 150, contacts_every=0, meetings_every=0, deals_every=0)
    day = {"now": NOW}
    hs = connector(fake, sim, clock=lambda: day["now"])
    cursors = cursors_of(list(hs.pull({})))
    assert cursors["usage"] == TODAY.isoformat()
    day["now"] = NOW + timedelta(days=1)
    fake.reset_calls()
    batches = list(hs.pull(cursors))
    points = records(batches, MetricPoint)
    assert len(points) == 150 and {p.period for p in points} == {TODAY + timedelta(days=1)}
    assert points[1] == MetricPoint(portal.companies[1], "form_impressions",
                                    TODAY + timedelta(days=1), 100.0)
    usage_lists = [c for c in calls_to(fake, "GET", "/crm/v3/objects/companies")
                   if c.query.get("archived") != ["true"]]
    assert len(usage_lists) == 2 and usage_lists[0].query["properties"] == ["form_impressions"]
    assert cursors_of(batches)["usage"] == (TODAY + timedelta(days=1)).isoformat()


def test_archived_company_is_deleted_once(fake: FakeHubSpot, sim: SimTime,
                                          tmp_path: Path) -> None:
    """A company archived in HubSpot is marked deleted in the mirror and leaves evaluation."""
    portal = seed(fake, 5, contacts_every=0, meetings_every=0, deals_every=0)
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    clock = [NOW]
    hs = connector(fake, sim, clock=lambda: clock[0])
    store.apply_sync("hubspot", hs.pull({}))
    gone = portal.companies[2]
    fake.archive("companies", gone)
    soon = list(hs.pull(store.cursors("hubspot")))
    assert not [b for b in soon if b.deleted], "archived companies are listed every 15 minutes"
    store.apply_sync("hubspot", soon)
    clock[0] = NOW + timedelta(minutes=16)
    batches = list(hs.pull(store.cursors("hubspot")))
    assert [b.deleted for b in batches if b.deleted] == [{"accounts": (gone,)}]
    store.apply_sync("hubspot", batches)
    assert store.account_count("hubspot") == 4
    live = {s.account.crm_id for s in store.signals("hubspot", today=TODAY, until=NOW,
                                                    usage_metric="form_impressions",
                                                    usage_days=30)}
    assert gone not in live
    clock[0] = NOW + timedelta(minutes=40)
    again = list(hs.pull(store.cursors("hubspot")))
    assert not [b for b in again if b.deleted]


def test_engagements_map_to_activity_kinds(fake: FakeHubSpot, sim: SimTime) -> None:
    """QBR by title, missed calls/meetings as notes, HTML notes as text, tasks as tasks."""
    acme = fake.add("companies", {"name": "Acme"})
    other = fake.add("companies", {"name": "株式会社ほか"})
    owner = fake.add_owner("gone@example.com", archived=True)
    at = {"hs_timestamp": "2024-05-20T01:00:00Z", "hubspot_owner_id": owner}
    link = {"companies": [acme]}
    fake.add("meetings", {**at, "hs_meeting_title": "四半期レビュー (QBR)"}, associations=link)
    fake.add("meetings", {**at, "hs_meeting_title": "Weekly sync",
                          "hs_meeting_outcome": "CANCELED"}, associations=link)
    fake.add("calls", {**at, "hs_call_title": "Quarterly call", "hs_call_status": "NO_ANSWER"},
             associations=link)
    fake.add("emails", {**at, "hs_email_subject": "QBR invitation"}, associations=link)
    fake.add("notes", {**at, "hs_note_body": "<p>Met <b>Sato-san</b> &amp; team</p>"},
             associations=link)
    fake.add("tasks", {**at, "hs_task_subject": "Prepare QBR deck"}, associations=link)
    fake.add("calls", {**at, "hs_call_title": "No company"})
    fake.add("contacts", {"firstname": "Olivia", "lastname": "Brown", "email": "o@acme.test"},
             associations={"companies": [other]})
    two = fake.add("contacts", {"firstname": "花子", "lastname": "佐藤"})
    fake.associate("contacts", two, "companies", other)
    fake.associate("contacts", two, "companies", acme, 1)  # the primary company
    batches = list(connector(fake, sim).pull({}))
    got = sorted((a.kind.value, a.subject, a.owner_email, a.account_id)
                 for a in records(batches, Activity))
    assert got == sorted([
        ("qbr", "四半期レビュー (QBR)", "gone@example.com", acme),
        ("note", "Weekly sync", "gone@example.com", acme),
        ("note", "Quarterly call", "gone@example.com", acme),
        ("email", "QBR invitation", "gone@example.com", acme),
        ("note", "Met Sato-san & team", "gone@example.com", acme),
        ("task", "Prepare QBR deck", "gone@example.com", acme),
    ])
    people = {c.name: c.account_id for c in records(batches, Contact)}
    assert people == {"Olivia Brown": other, "佐藤 花子": acme}
    assert {a.language for a in records(batches, Account)} == {"ja"}


def test_renewal_date_from_company_property_and_custom_fields(fake: FakeHubSpot,
                                                              sim: SimTime) -> None:
    """Configured company properties fill renewal date, potential, plan limit and custom facts."""
    fake.define_property("companies", "renewal_on", "date")
    fake.define_property("companies", "web_budget", "number")
    fake.define_property("companies", "conversion_target", "number")
    fake.define_property("companies", "ui_language", "enumeration", options=["ja", "en"])
    cid = fake.add("companies", {"name": "Northwind", "renewal_on": "2024-09-30",
                                 "web_budget": "42000000", "conversion_target": "0.03",
                                 "ui_language": "en"})
    config = HubSpotSettings(
        companies=CompanyProperties(potential="web_budget", language="ui_language",
                                    custom={"conversion_target": "conversion_target"}),
        renewals=Renewals(source="company_property", company_property="renewal_on"))
    (account,) = records(list(connector(fake, sim, config=config).pull({})), Account)
    assert (account.crm_id, account.renewal_date.isoformat(), account.potential,
            account.language, dict(account.custom)) == (
        cid, "2024-09-30", 42_000_000.0, "en", {"conversion_target": 0.03})
    assert not calls_to(fake, "GET", "/crm/v3/objects/deals")


def test_renewal_date_follows_changed_deals(fake: FakeHubSpot, sim: SimTime) -> None:
    """A deal moved to closed-won (or a new open one) updates its company's renewal date."""
    cid = fake.add("companies", {"name": "Acme"})
    soon = fake.add("deals", {"dealname": "Renewal 2024", "closedate": "2024-07-01",
                              "dealstage": "contractsent"}, associations={"companies": [cid]})
    fake.add("deals", {"dealname": "Renewal 2025", "closedate": "2025-07-01",
                       "dealstage": "appointmentscheduled"}, associations={"companies": [cid]})
    hs = connector(fake, sim)
    full = list(hs.pull({}))
    assert records(full, Account)[0].renewal_date.isoformat() == "2024-07-01"
    fake.advance(60)
    fake.update("deals", soon, {"dealstage": "closedwon"})
    (account,) = records(list(hs.pull(cursors_of(full))), Account)
    assert (account.crm_id, account.name, account.renewal_date.isoformat()) == (
        cid, "Acme", "2025-07-01")


def test_list_without_associations_falls_back_to_one_batch_read(fake: FakeHubSpot,
                                                                  sim: SimTime) -> None:
    """A server that ignores `associations=` on lists costs one v4 read per page, not data."""
    company = fake.add("companies", {"name": "Acme"})
    meeting = fake.add("meetings", {"hs_meeting_title": "Kickoff",
                                    "hs_timestamp": "2024-05-01T00:00:00Z"},
                       associations={"companies": [company]})
    bare = {"results": [{"id": meeting, "properties": {
        "hs_meeting_title": "Kickoff", "hs_timestamp": "2024-05-01T00:00:00.000Z",
        "hs_lastmodifieddate": "2024-06-01T00:00:00.000Z"}, "archived": False}]}
    fake.inject(200, body=bare, match=lambda c: c.method == "GET"
                and c.path == "/crm/v3/objects/meetings")
    (activity,) = records(list(connector(fake, sim).pull({})), Activity)
    assert (activity.crm_id, activity.account_id) == (f"meeting:{meeting}", company)
    assert len(calls_to(fake, "POST", "/crm/v4/associations/meetings/companies/batch/read")) == 1


def test_unsorted_search_results_stop_the_sync(fake: FakeHubSpot, sim: SimTime) -> None:
    """Keyset paging relies on the sort; a server that ignores it fails loudly, not lossily."""
    fake.add("companies", {"name": "Acme"})
    hs = connector(fake, sim)
    cursors = cursors_of(list(hs.pull({})))
    rows = [{"id": str(i), "properties": {"hs_lastmodifieddate": stamp}}
            for i, stamp in ((1, "2024-07-02T00:00:00.000Z"), (2, "2024-07-01T00:00:00.000Z"))]
    fake.inject(200, body={"total": 500, "results": rows, "paging": {"next": {"after": "2"}}},
                match="/companies/search")
    with pytest.raises(FatalAPIError, match="out of order"):
        list(hs.pull(cursors))


# -- configuration -------------------------------------------------------------------------------

def test_missing_configured_property_is_a_startup_error(fake: FakeHubSpot,
                                                        tmp_path: Path) -> None:
    """A kizuna.yaml property the portal lacks stops start-up, naming property, key and line."""
    config = tmp_path / "kizuna.yaml"
    config.write_text("timezone: Asia/Tokyo\nhubspot:\n  companies:\n"
                      "    potential: annual_web_budget\n", encoding="utf-8")
    settings = load_settings({"KIZUNA_CONFIG": str(config), "HUBSPOT_ACCESS_TOKEN": "x",
                              "HUBSPOT_BASE_URL": fake.url + "/"})
    hs = from_settings(settings)
    with pytest.raises(ConfigError) as err:
        hs.check()
    text = err.value.describe()
    assert f"{config}:4: hubspot.companies.potential:" in text
    assert "'annual_web_budget' does not exist" in text
    assert len(fake.calls) == 2  # company and deal properties, nothing else


def test_missing_default_properties_are_skipped(fake: FakeHubSpot, sim: SimTime) -> None:
    """Defaults the portal lacks (no usage property here) are left out, not an error."""
    fake.add("companies", {"name": "Acme"})
    batches = list(connector(fake, sim).pull({}))
    assert len(records(batches, Account)) == 1 and records(batches, MetricPoint) == []
    assert "usage" not in cursors_of(batches)


def test_portal_without_properties_api_still_syncs(fake: FakeHubSpot, sim: SimTime) -> None:
    """A server (or token) that cannot list properties: the mapping is used unchecked."""
    fake.define_property("companies", "web_budget", "number")
    fake.add("companies", {"name": "Acme", "web_budget": "12000000"})
    fake.inject(404, times=5, match="/crm/v3/properties/")
    config = HubSpotSettings(companies=CompanyProperties(potential="web_budget"))
    batches = list(connector(fake, sim, config=config).pull({}))
    (account,) = records(batches, Account)
    assert account.potential == 12_000_000.0
    assert [c.status for c in fake.calls if "/properties/" in c.path] == [404, 404]


def test_token_comes_from_environment(tmp_path: Path) -> None:
    """Without HUBSPOT_ACCESS_TOKEN the connector refuses to start, naming the variable."""
    settings = Settings(KizunaConfig(data_dir=tmp_path), load_settings({}).env.model_copy(
        update={"hubspot_access_token": None}), None)
    with pytest.raises(ConfigError) as err:
        from_settings(settings)
    assert err.value.field == "HUBSPOT_ACCESS_TOKEN"


# -- failures ------------------------------------------------------------------------------------

def test_429_waits_for_retry_after_and_urllib3_does_not_retry(fake: FakeHubSpot,
                                                              sim: SimTime) -> None:
    """A 429 with Retry-After: 7 is retried once after 7 s; urllib3 sends nothing extra."""
    fake.add("companies", {"name": "Acme"})
    fake.inject(429, retry_after=7, match=lambda c: c.path.endswith("/objects/companies"))
    hs = connector(fake, sim)
    assert len(records(list(hs.pull({})), Account)) == 1
    lists = calls_to(fake, "GET", "/crm/v3/objects/companies")
    assert [(c.status, c.injected) for c in lists[:2]] == [(429, True), (200, False)]
    assert 7.0 in sim.sleeps
    assert hs.stats()["rate_limited"] == 1


def test_5xx_is_retried_then_succeeds(fake: FakeHubSpot, sim: SimTime) -> None:
    """Two 503s on a search are retried with backoff; the sync completes."""
    fake.add("companies", {"name": "Acme"})
    hs = connector(fake, sim)
    cursors = cursors_of(list(hs.pull({})))
    fake.inject(503, times=2, match="/meetings/search")
    batches = list(hs.pull(cursors))
    assert [c.status for c in fake.calls if "/meetings/search" in c.path] == [503, 503, 200]
    assert "meetings" in cursors_of(batches) and len(sim.sleeps) >= 2


def test_persistent_5xx_gives_up_within_the_bounded_wait(fake: FakeHubSpot, sim: SimTime) -> None:
    """A 5xx that never clears is tried `retry_attempts` times, waiting at most the bound."""
    fake.inject(500, times=50)
    config = HubSpotSettings(limits=Limits(retry_attempts=4, max_retry_wait_seconds=20))
    with pytest.raises(RetriableAPIError):
        connector(fake, sim, config=config).check()
    assert len(fake.calls) == 4
    assert sum(sim.sleeps) <= 20


def test_401_fails_fast_without_revealing_the_token(fake: FakeHubSpot, sim: SimTime) -> None:
    """A wrong token is one request and an AuthError that names the variable, not the token."""
    from connectors.hubspot import HubSpotConnector

    hs = HubSpotConnector("pat-na1-very-secret", base_url=fake.url, timer=sim, sleep=sim.sleep)
    with pytest.raises(AuthError) as err:
        hs.check()
    assert "HUBSPOT_ACCESS_TOKEN" in str(err.value) and "very-secret" not in str(err.value)
    assert [c.status for c in fake.calls] == [401] and sim.sleeps == []


def test_401_mid_sync_fails_the_pull(fake: FakeHubSpot, sim: SimTime) -> None:
    """A token revoked during a pull stops it at once with AuthError."""
    fake.add("companies", {"name": "Acme"})
    fake.inject(401, match="/objects/contacts")
    with pytest.raises(AuthError):
        list(connector(fake, sim).pull({}))
    assert sim.sleeps == []


def test_other_4xx_is_fatal_and_names_the_request(fake: FakeHubSpot, sim: SimTime) -> None:
    """A 400 is not retried and the error names the request and HubSpot's message."""
    fake.add("companies", {"name": "Acme"})
    hs = connector(fake, sim)
    cursors = cursors_of(list(hs.pull({})))
    fake.inject(400, match="/contacts/search", body={
        "status": "error", "category": "VALIDATION_ERROR",
        "message": 'Property "lastmodifieddate" does not exist on contacts'})
    with pytest.raises(FatalAPIError) as err:
        list(hs.pull(cursors))
    assert "POST /crm/v3/objects/contacts/search" in str(err.value)
    assert "lastmodifieddate" in str(err.value)
    assert len([c for c in fake.calls if "/contacts/search" in c.path]) == 1


def test_daily_limit_is_fatal(fake: FakeHubSpot, sim: SimTime) -> None:
    """HubSpot's DAILY 429 is not worth waiting for: the sync fails at once."""
    fake.inject(429, body={"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY",
                           "message": "You have reached your daily limit."})
    with pytest.raises(FatalAPIError, match="daily API limit"):
        connector(fake, sim).check()
    assert len(fake.calls) == 1


def test_failed_sync_leaves_the_previous_mirror_intact(fake: FakeHubSpot, sim: SimTime,
                                                       tmp_path: Path) -> None:
    """A sync failing half-way changes nothing in the store and is recorded as failed."""
    portal = seed(fake, 20)
    settings = Settings(KizunaConfig(data_dir=tmp_path), load_settings({}).env, None)
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    kizuna = Kizuna(settings, Rules.load(settings), store, connector(fake, sim),
                    clock=lambda: NOW)
    kizuna.sync()
    before = store.cursors("hubspot")
    renamed = portal.companies[0]
    fake.advance(60)
    fake.update("companies", renamed, {"name": "Renamed"})
    fake.inject(503, times=50, match="/notes/search")
    with pytest.raises(RetriableAPIError):
        kizuna.sync()
    assert store.account("hubspot", renamed).name == "株式会社さくら0号"
    assert store.cursors("hubspot") == before
    assert store.last_sync("hubspot")["status"] == "failed"


# -- rate limiting -------------------------------------------------------------------------------

def test_client_limiter_stays_under_the_burst_limit(sim: SimTime) -> None:
    """With a 10-per-10-s portal the connector paces itself: no 429 at all, time passes."""
    with FakeHubSpot(burst_limit=10, limiter_clock=sim) as fake:
        seed(fake, 700, contacts_every=0, meetings_every=0, deals_every=0)
        started = sim.now
        hs = connector(fake, sim)  # configured for 100/10 s; learns 10 from the headers
        assert len(records(list(hs.pull({})), Account)) == 700
        assert {c.status for c in fake.calls} == {200}
        assert len(fake.calls) > 10 and sim.now - started >= (len(fake.calls) - 10)
        stats = hs.stats()
        assert stats["ratelimit_max"] == 10 and "daily_remaining" in stats


def test_client_limiter_stays_under_the_search_limit(sim: SimTime) -> None:
    """Eight searches in one incremental sync are spread out: no SECONDLY 429."""
    with FakeHubSpot(burst_limit=None, search_rate_limit=5, limiter_clock=sim) as fake:
        fake.add("companies", {"name": "Acme"})
        hs = connector(fake, sim)
        cursors = cursors_of(list(hs.pull({})))
        list(hs.pull(cursors))
        searches = [c for c in fake.calls if c.path.endswith("/search")]
        assert len(searches) == 8 and {c.status for c in searches} == {200}


# -- tasks ---------------------------------------------------------------------------------------

def test_create_task_sets_fields_owner_and_company(fake: FakeHubSpot, sim: SimTime) -> None:
    """The task carries subject+ref, body, due time, status, priority, owner and company (192)."""
    portal = seed(fake, 2, contacts_every=0, meetings_every=0, deals_every=0)
    company = portal.companies[0]
    task_id = connector(fake, sim).create_task(sample_task(company))
    props = fake.get("tasks", task_id)["properties"]
    assert props["hs_task_subject"].endswith(" [kz-0123456789abcdef]")
    assert props["hs_task_subject"].startswith("【Kizuna】フォーム表示回数")
    assert "&lt;期限&gt;" in props["hs_task_body"] and "<br>" in props["hs_task_body"]
    assert props["hs_timestamp"] == "2024-06-06T00:00:00.000Z"  # 09:00 in Tokyo
    assert (props["hs_task_status"], props["hs_task_priority"]) == ("NOT_STARTED", "HIGH")
    assert props["hubspot_owner_id"] == portal.owners["sato.hanako@example.com"]
    assert task_companies(fake) == {task_id: [company]}
    (create,) = calls_to(fake, "POST", "/crm/v3/objects/tasks")
    assert create.body["associations"][0]["types"] == [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}]


def test_task_for_unknown_owner_is_created_unassigned(fake: FakeHubSpot, sim: SimTime) -> None:
    """An owner email with no HubSpot owner leaves the task unassigned rather than failing."""
    company = fake.add("companies", {"name": "Acme"})
    task_id = connector(fake, sim).create_task(sample_task(company, owner="nobody@x.test"))
    assert "hubspot_owner_id" not in fake.get("tasks", task_id)["properties"]


def test_rerun_after_a_crash_finds_the_task_instead_of_creating_another(
        fake: FakeHubSpot, sim: SimTime) -> None:
    """A new process asked for the same ref returns the task HubSpot already has."""
    company = fake.add("companies", {"name": "Acme"})
    first = connector(fake, sim).create_task(sample_task(company))
    # The process died before recording `first`; the next run asks again.
    again = connector(fake, sim).create_task(sample_task(company))
    assert again == first and len(fake.objects("tasks")) == 1
    other = connector(fake, sim).create_task(sample_task(company, ref="kz-fedcba9876543210"))
    assert other != first and len(fake.objects("tasks")) == 2


def test_unclear_create_failure_looks_again_before_retrying(fake: FakeHubSpot,
                                                            sim: SimTime) -> None:
    """A 503 on create waits for the search index, searches again, then creates exactly once."""
    company = fake.add("companies", {"name": "Acme"})
    fake.inject(503, match=lambda c: c.method == "POST" and c.path == "/crm/v3/objects/tasks")
    connector(fake, sim).create_task(sample_task(company))
    assert len(fake.objects("tasks")) == 1
    assert max(sim.sleeps) >= 10
    order = [(c.method, c.path.rsplit("/", 1)[-1], c.status) for c in fake.calls
             if "tasks" in c.path]
    assert order == [("POST", "search", 200), ("POST", "tasks", 503),
                     ("POST", "search", 200), ("POST", "tasks", 201)]


def test_ref_property_is_written_and_searched(fake: FakeHubSpot, sim: SimTime) -> None:
    """With tasks.ref_property set, the ref is also stored there and found by EQ."""
    fake.define_property("tasks", "kizuna_ref")
    company = fake.add("companies", {"name": "Acme"})
    config = HubSpotSettings(tasks=TaskSettings(ref_property="kizuna_ref"))
    first = connector(fake, sim, config=config).create_task(sample_task(company))
    assert fake.get("tasks", first)["properties"]["kizuna_ref"] == "kz-0123456789abcdef"
    fake.update("tasks", first, {"hs_task_subject": "renamed by the CSM"})
    assert connector(fake, sim, config=config).create_task(sample_task(company)) == first
    assert len(fake.objects("tasks")) == 1


def test_complete_task_marks_it_completed(fake: FakeHubSpot, sim: SimTime) -> None:
    """complete_task PATCHes hs_task_status; a task deleted meanwhile is not an error."""
    company = fake.add("companies", {"name": "Acme"})
    hs = connector(fake, sim)
    task_id = hs.create_task(sample_task(company))
    hs.complete_task(task_id)
    assert fake.get("tasks", task_id)["properties"]["hs_task_status"] == "COMPLETED"
    fake.archive("tasks", task_id)
    hs.complete_task(task_id)


# -- Kizuna end to end ---------------------------------------------------------------------------

def _kizuna(fake: FakeHubSpot, sim: SimTime, tmp_path: Path) -> Kizuna:
    settings = Settings(KizunaConfig(data_dir=tmp_path), load_settings({}).env, None)
    store = Store.open(f"sqlite:///{tmp_path / 'kizuna.db'}")
    return Kizuna(settings, Rules.load(settings), store, connector(fake, sim), clock=lambda: NOW)


def test_tick_creates_one_task_per_play_with_company_and_owner(fake: FakeHubSpot, sim: SimTime,
                                                               tmp_path: Path) -> None:
    """A tick creates exactly one task per play on the right company and owner; a second none."""
    portal = seed(fake, 12, contacts_every=3, meetings_every=3, deals_every=4)
    kizuna = _kizuna(fake, sim, tmp_path)
    report = kizuna.tick()
    plays = kizuna.ledger.plays("hubspot", states=[PlayState.OPEN])
    assert len(plays) >= 5 and {p.task_state for p in plays} == {StepState.DONE}
    tasks = task_companies(fake)
    assert sorted(tasks) == sorted(p.task_id for p in plays)
    assert len(report.delivery.tasks) == len(plays)
    for play in plays:
        assert tasks[play.task_id] == [play.account_id]
        owner = fake.get("tasks", play.task_id)["properties"]["hubspot_owner_id"]
        assert owner == portal.owners[portal.owner_of[play.account_id]]
        assert play.ref in fake.get("tasks", play.task_id)["properties"]["hs_task_subject"]

    fake.advance(3600)
    second = _kizuna(fake, sim, tmp_path).tick()
    assert second.delivery.tasks == [] and len(fake.objects("tasks")) == len(plays)
    synced_tasks = kizuna.store.recent_activities("hubspot", plays[0].account_id, limit=50)
    assert ActivityKind.TASK in {a.kind for a in synced_tasks}


def test_crash_between_create_and_ledger_leaves_exactly_one_task(
        fake: FakeHubSpot, sim: SimTime, tmp_path: Path) -> None:
    """HubSpot accepted the tasks, the process died before the ledger knew: the re-run adds none."""
    seed(fake, 6, contacts_every=0, meetings_every=0, deals_every=0)
    kizuna = _kizuna(fake, sim, tmp_path)
    kizuna.sync()
    decisions = kizuna.decide()
    kizuna.ledger.insert(decisions.new_plays)
    accepted = {}
    for play in decisions.new_plays:  # what the crashed run managed to send
        account = kizuna.store.account("hubspot", play.account_id)
        accepted[play.key] = kizuna.connector.create_task(kizuna.crm_task(play, account))
    assert len(accepted) >= 3
    # ...and then it died: no ledger.mark_task. A fresh process runs the next tick.
    rerun = _kizuna(fake, sim, tmp_path).tick()
    assert len(fake.objects("tasks")) == len(accepted)
    ledger = Ledger(kizuna.store)
    assert {p.key: p.task_id for p in ledger.plays("hubspot")} == accepted
    assert sorted(t for _, t in rerun.delivery.tasks) == sorted(accepted.values())


# -- the CLI -------------------------------------------------------------------------------------

def test_kizuna_sync_cli_against_the_fake(tmp_path: Path) -> None:
    """`kizuna sync` with KIZUNA_CRM=hubspot pulls the portal, printing counts and API calls."""
    with FakeHubSpot(limiter_clock=time.monotonic) as fake:
        seed(fake, 25)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KIZUNA_", "HUBSPOT_", "SALESFORCE_", "SLACK_"))}
        env.update(KIZUNA_CRM="hubspot", HUBSPOT_BASE_URL=fake.url, HUBSPOT_ACCESS_TOKEN="x",
                   KIZUNA_DATABASE_URL=f"sqlite:///{tmp_path / 'kizuna.db'}")
        kizuna = Path(sys.executable).with_name("kizuna")
        done = subprocess.run([str(kizuna), "sync"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "Sync from hubspot" in out
        assert "accounts" in out and "25" in out
        assert "api_calls: " in out and "daily_remaining: " in out
        store = Store.open(env["KIZUNA_DATABASE_URL"], migrate=False)
        assert store.account_count("hubspot") == 25
