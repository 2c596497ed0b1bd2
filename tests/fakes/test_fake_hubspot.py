"""Drive the real hubspot-api-client against FakeHubSpot.

Why: the fake is only useful if the official client accepts what it serves and if it
reproduces the HubSpot behaviours the connector must cope with (paging, search caps,
rate limits, error shapes).  Each test pins one such behaviour.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm import companies as hs_companies
from hubspot.crm import deals as hs_deals
from hubspot.crm.associations import v4 as hs_assoc
from hubspot.crm.objects import tasks as hs_tasks
from urllib3.util.retry import Retry

from tests.fakes.hubspot import FakeHubSpot


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


def client(fake: FakeHubSpot, **kwargs: Any) -> HubSpot:
    return HubSpot(access_token=fake.access_token, host=fake.url, **kwargs)


def no_retry_client(fake: FakeHubSpot) -> HubSpot:
    return client(fake, retry=Retry(total=0))


def body_of(exc: Exception) -> dict[str, Any]:
    return json.loads(exc.body)  # type: ignore[attr-defined]


def search_request(**kwargs: Any) -> hs_companies.PublicObjectSearchRequest:
    return hs_companies.PublicObjectSearchRequest(**kwargs)


def flt(prop: str, op: str, **kwargs: Any) -> hs_companies.Filter:
    return hs_companies.Filter(property_name=prop, operator=op, **kwargs)


def ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


# ----------------------------------------------------------------- listing / paging


def test_get_page_walks_250_companies_in_three_pages(fake: FakeHubSpot) -> None:
    """List paging: 100 + 100 + 50 with an opaque `after` cursor and no next on the last page."""
    ids = [fake.add("companies", {"name": f"Company {i}"}) for i in range(250)]
    api = client(fake).crm.companies.basic_api
    seen: list[str] = []
    sizes: list[int] = []
    after = None
    while True:
        page = api.get_page(limit=100, after=after)
        sizes.append(len(page.results))
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        assert page.paging.next.link.startswith(f"{fake.url}/crm/v3/objects/companies?")
        after = page.paging.next.after
    assert sizes == [100, 100, 50]
    assert seen == ids


def test_get_all_fetches_everything_with_max_page_size(fake: FakeHubSpot) -> None:
    """`get_all` asks for limit=100 pages and follows paging to the end (3 requests)."""
    for i in range(250):
        fake.add("companies", {"name": f"Company {i}"})
    results = client(fake).crm.companies.get_all()
    assert len(results) == 250
    gets = [c for c in fake.calls if c.method == "GET"]
    assert len(gets) == 3
    assert all(c.query["limit"] == ["100"] for c in gets)


def test_list_limit_above_100_is_clamped(fake: FakeHubSpot) -> None:
    """Documented max page size for list endpoints is 100; larger limits are clamped."""
    for i in range(150):
        fake.add("contacts", {"email": f"p{i}@example.com"})
    page = client(fake).crm.contacts.basic_api.get_page(limit=500)
    assert len(page.results) == 100
    assert page.paging.next.after


def test_properties_selection_and_defaults(fake: FakeHubSpot) -> None:
    """Requested properties + always-returned ones come back, unset as null, unknown ignored."""
    fake.add("companies", {"name": "Acme", "domain": "acme.example", "industry": "RETAIL"})
    api = client(fake).crm.companies.basic_api
    chosen = api.get_page(properties=["name", "annualrevenue", "no_such_prop"]).results[0]
    assert chosen.properties == {
        "createdate": "2024-01-01T00:00:00.000Z",
        "hs_lastmodifieddate": "2024-01-01T00:00:00.000Z",
        "hs_object_id": chosen.id,
        "name": "Acme",
        "annualrevenue": None,
    }
    default = api.get_page().results[0]
    assert set(default.properties) == {
        "createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"}
    contact_id = fake.add("contacts", {"email": "a@b.example"})
    contact = client(fake).crm.contacts.basic_api.get_by_id(contact_id)
    assert set(contact.properties) == {
        "createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"}


def test_japanese_name_round_trips(fake: FakeHubSpot) -> None:
    """Non-ASCII values survive create, read and an EQ search unchanged (UTF-8 JSON)."""
    api = client(fake).crm.companies
    created = api.basic_api.create(
        hs_companies.SimplePublicObjectInputForCreate(properties={"name": "株式会社テスト"}))
    assert api.basic_api.get_by_id(created.id).properties["name"] == "株式会社テスト"
    by_name = hs_companies.FilterGroup(filters=[flt("name", "EQ", value="株式会社テスト")])
    found = api.search_api.do_search(search_request(filter_groups=[by_name]))
    assert [r.id for r in found.results] == [created.id]
    assert fake.get("companies", created.id)["properties"]["name"] == "株式会社テスト"


def test_archived_objects_are_listed_only_with_archived_true(fake: FakeHubSpot) -> None:
    """Archived records vanish from normal reads/search and appear only under archived=true."""
    keep = fake.add("companies", {"name": "Live"})
    gone_api = fake.add("companies", {"name": "Deleted via API"})
    gone_helper = fake.add("companies", {"name": "Deleted via helper"})
    api = client(fake).crm.companies
    api.basic_api.archive(gone_api)
    fake.archive("companies", gone_helper)

    assert [r.id for r in api.basic_api.get_page().results] == [keep]
    archived = api.basic_api.get_page(archived=True).results
    assert [r.id for r in archived] == [gone_api, gone_helper]
    assert all(r.archived and r.archived_at is not None for r in archived)
    with pytest.raises(hs_companies.ApiException) as err:
        api.basic_api.get_by_id(gone_api)
    assert err.value.status == 404
    assert api.basic_api.get_by_id(gone_api, archived=True).archived is True
    assert api.search_api.do_search(search_request()).total == 1


def test_list_includes_v3_associations_when_asked(fake: FakeHubSpot) -> None:
    """`associations=companies` adds {"companies": {"results": [{id, type}]}} to each task."""
    company = fake.add("companies", {"name": "Acme"})
    fake.add("tasks", {"hs_task_subject": "Call back"}, associations={"companies": [company]})
    fake.add("tasks", {"hs_task_subject": "Unlinked"})
    page = client(fake).crm.objects.tasks.basic_api.get_page(associations=["companies"])
    linked, unlinked = page.results
    assert linked.associations["companies"].results[0].id == company
    assert linked.associations["companies"].results[0].type == "task_to_company"
    assert unlinked.associations is None


# ------------------------------------------------------------------------- search


def test_search_gte_lastmodified_sorted_ascending_pages(fake: FakeHubSpot) -> None:
    """Incremental sync shape: GTE epoch-ms filter, ASC sort, offset `after`, exact total."""
    start = datetime(2024, 3, 1, tzinfo=UTC)
    fake.now = start
    ids = []
    for i in range(30):
        ids.append(fake.add("companies", {"name": f"C{i}"}))
        fake.advance(60)
    fake.update("companies", ids[0], {"industry": "RETAIL"})  # now the most recent change
    cutoff = start + timedelta(minutes=20)

    api = client(fake).crm.companies.search_api
    got: list[tuple[str, str]] = []
    after = None
    for _ in range(5):
        page = api.do_search(search_request(
            filter_groups=[hs_companies.FilterGroup(
                filters=[flt("hs_lastmodifieddate", "GTE", value=ms(cutoff))])],
            sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            properties=["name", "hs_lastmodifieddate"], limit=4, after=after))
        assert page.total == 11
        got += [(r.id, r.properties["hs_lastmodifieddate"]) for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
        fake.advance(1)  # stay under the 5 searches/second limit
    assert [i for i, _ in got] == [*ids[20:], ids[0]]
    stamps = [s for _, s in got]
    assert stamps == sorted(stamps)
    iso = api.do_search(search_request(filter_groups=[hs_companies.FilterGroup(
        filters=[flt("hs_lastmodifieddate", "GTE", value="2024-03-01T00:20:00Z")])]))
    assert iso.total == 11


def test_search_operators_follow_hubspot_semantics(fake: FakeHubSpot) -> None:
    """AND within a group, OR across groups; IN/BETWEEN/HAS_PROPERTY/CONTAINS_TOKEN/NEQ."""
    big = fake.add("deals", {"dealname": "Big renewal", "amount": "50000",
                             "dealtype": "existingbusiness"})
    small = fake.add("deals", {"dealname": "Small upsell", "amount": "500",
                               "dealtype": "newbusiness"})
    blank = fake.add("deals", {"dealname": "No amount yet"})
    api = client(fake).crm.deals.search_api

    def ids(*groups: list[hs_deals.Filter]) -> list[str]:
        request = hs_deals.PublicObjectSearchRequest(
            filter_groups=[hs_deals.FilterGroup(filters=list(g)) for g in groups])
        fake.advance(1)
        return [r.id for r in api.do_search(request).results]

    def f(prop: str, op: str, **kwargs: Any) -> hs_deals.Filter:
        return hs_deals.Filter(property_name=prop, operator=op, **kwargs)

    assert ids([f("amount", "BETWEEN", value="100", high_value="1000")]) == [small]
    assert ids([f("amount", "GT", value="1000")], [f("dealname", "CONTAINS_TOKEN", value="yet")]) \
        == [big, blank]
    assert ids([f("amount", "HAS_PROPERTY"),
                f("dealtype", "IN", values=["newbusiness"])]) == [small]
    assert ids([f("amount", "NOT_HAS_PROPERTY")]) == [blank]
    assert ids([f("dealname", "CONTAINS_TOKEN", value="renew*")]) == [big]
    assert ids([f("dealtype", "NEQ", value="newbusiness")]) == [big, blank]
    assert ids([f("dealtype", "NOT_IN", values=["newbusiness", "existingbusiness"])]) == [blank]


def test_search_rejects_paging_past_the_10000_result_cap(fake: FakeHubSpot) -> None:
    """Documented cap: after + limit beyond 10,000 is a 400 even though `total` is larger."""
    for i in range(10_050):
        fake.add("contacts", {"email": f"user{i}@example.com"})
    api = no_retry_client(fake).crm.contacts.search_api
    request = hs_companies.PublicObjectSearchRequest  # same JSON shape for every object type
    last = api.do_search(request(limit=10, after="9990"))
    assert last.total == 10_050 and len(last.results) == 10
    assert last.paging.next.after == "10000"  # HubSpot still hands out the poisoned cursor
    fake.advance(1)
    from hubspot.crm.contacts import ApiException as ContactsApiException

    with pytest.raises(ContactsApiException) as err:
        api.do_search(request(limit=10, after=last.paging.next.after))
    assert err.value.status == 400
    assert body_of(err.value)["category"] == "VALIDATION_ERROR"


def test_search_cap_is_configurable_for_small_fixtures() -> None:
    """`search_cap` shrinks the 10,000 window so connector tests can hit it cheaply."""
    with FakeHubSpot(search_cap=50) as small:
        for i in range(60):
            small.add("companies", {"name": f"C{i}"})
        api = no_retry_client(small).crm.companies.search_api
        assert len(api.do_search(search_request(limit=50)).results) == 50
        with pytest.raises(hs_companies.ApiException) as err:
            api.do_search(search_request(limit=10, after="50"))
        assert err.value.status == 400


def test_search_limit_above_200_is_rejected(fake: FakeHubSpot) -> None:
    """Search pages are capped at 200 per request; asking for more is a validation error."""
    api = no_retry_client(fake).crm.companies.search_api
    assert api.do_search(search_request(limit=200)).total == 0
    with pytest.raises(hs_companies.ApiException) as err:
        api.do_search(search_request(limit=201))
    assert err.value.status == 400


def test_search_secondly_rate_limit_and_missing_rate_headers(fake: FakeHubSpot) -> None:
    """5 searches/second then 429 SECONDLY; search responses carry no X-HubSpot-RateLimit-*."""
    api = no_retry_client(fake).crm.companies.search_api
    for _ in range(5):
        _, status, headers = api.do_search_with_http_info(search_request())
        assert status == 200
        assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in headers)
    with pytest.raises(hs_companies.ApiException) as err:
        api.do_search(search_request())
    assert err.value.status == 429
    assert body_of(err.value)["policyName"] == "SECONDLY"
    fake.advance(1)
    assert api.do_search(search_request()).total == 0


# -------------------------------------------------------------------------- writes


def test_create_rejects_unknown_property_with_validation_error(fake: FakeHubSpot) -> None:
    """Unknown property names are a 400 VALIDATION_ERROR (PROPERTY_DOESNT_EXIST); nothing saved."""
    api = no_retry_client(fake).crm.companies.basic_api
    with pytest.raises(hs_companies.ApiException) as err:
        api.create(hs_companies.SimplePublicObjectInputForCreate(
            properties={"name": "Acme", "favourite_colour": "teal"}))
    body = body_of(err.value)
    assert err.value.status == 400
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    assert "PROPERTY_DOESNT_EXIST" in body["message"] and body["correlationId"]
    assert body["errors"][0]["context"] == {"propertyName": ["favourite_colour"]}
    assert fake.objects("companies") == []
    fake.define_property("companies", "favourite_colour")
    assert api.create(hs_companies.SimplePublicObjectInputForCreate(
        properties={"name": "Acme", "favourite_colour": "teal"})).id


def test_enumeration_values_are_validated(fake: FakeHubSpot) -> None:
    """Writing an option that the enumeration lacks (hs_task_status=DONE) is rejected."""
    api = no_retry_client(fake).crm.objects.tasks.basic_api
    with pytest.raises(hs_tasks.ApiException) as err:
        api.create(hs_tasks.SimplePublicObjectInputForCreate(
            properties={"hs_task_subject": "x", "hs_task_status": "DONE"}))
    assert "INVALID_OPTION" in body_of(err.value)["message"]


def test_patch_updates_and_bumps_modified_date(fake: FakeHubSpot) -> None:
    """PATCH returns the record with new values and a strictly later hs_lastmodifieddate."""
    cid = fake.add("companies", {"name": "Old"})
    before = fake.get("companies", cid)["properties"]["hs_lastmodifieddate"]
    updated = client(fake).crm.companies.basic_api.update(
        cid, hs_companies.SimplePublicObjectInput(properties={"name": "New", "annualrevenue": 12}))
    assert updated.properties["name"] == "New" and updated.properties["annualrevenue"] == "12"
    assert updated.properties["hs_lastmodifieddate"] > before
    assert updated.updated_at > updated.created_at


def test_clock_makes_timestamps_deterministic(fake: FakeHubSpot) -> None:
    """Writes without advancing the clock get +1 ms stamps; setting `now` is honoured exactly."""
    fake.now = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    a = fake.add("deals", {"dealname": "A", "closedate": "2025-07-01"})
    b = fake.add("deals", {"dealname": "B"})
    fake.update("deals", a, {"amount": "10"})
    props_a, props_b = fake.get("deals", a)["properties"], fake.get("deals", b)["properties"]
    assert props_a["createdate"] == "2025-06-01T09:00:00.000Z"
    assert props_b["createdate"] == "2025-06-01T09:00:00.001Z"
    assert props_a["hs_lastmodifieddate"] == "2025-06-01T09:00:00.002Z"
    assert props_a["closedate"] == "2025-07-01T00:00:00.000Z"


def test_batch_read_returns_found_and_reports_missing(fake: FakeHubSpot) -> None:
    """batch/read: requested properties for known ids, 207 with OBJECT_NOT_FOUND for the rest."""
    ids = [fake.add("companies", {"name": f"C{i}", "domain": f"c{i}.example"}) for i in range(3)]
    api = client(fake).crm.companies.batch_api
    ok = api.read(hs_companies.BatchReadInputSimplePublicObjectId(
        inputs=[hs_companies.SimplePublicObjectId(id=i) for i in ids],
        properties=["domain"], properties_with_history=[]))
    assert ok.status == "COMPLETE"
    assert sorted(r.properties["domain"] for r in ok.results) == [
        "c0.example", "c1.example", "c2.example"]
    partial = api.read(hs_companies.BatchReadInputSimplePublicObjectId(
        inputs=[hs_companies.SimplePublicObjectId(id=i) for i in (ids[0], "424242")],
        properties=[], properties_with_history=[]))
    assert [r.id for r in partial.results] == [ids[0]]
    assert partial.num_errors == 1
    assert partial.errors[0].category == "OBJECT_NOT_FOUND"
    assert partial.errors[0].context == {"ids": ["424242"]}
    with pytest.raises(hs_companies.ApiException) as err:
        no_retry_client(fake).crm.companies.batch_api.read(
            hs_companies.BatchReadInputSimplePublicObjectId(
                inputs=[hs_companies.SimplePublicObjectId(id=str(n)) for n in range(101)],
                properties=[], properties_with_history=[]))
    assert err.value.status == 400


def test_batch_create_is_all_or_nothing(fake: FakeHubSpot) -> None:
    """batch/create answers 201 with every record; one invalid input fails the whole batch."""
    api = no_retry_client(fake).crm.companies.batch_api

    def batch(*props: dict[str, str]) -> Any:
        return hs_companies.BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
            hs_companies.SimplePublicObjectBatchInputForCreate(properties=p) for p in props])

    created = api.create(batch({"name": "A"}, {"name": "B"}))
    assert sorted(r.properties["name"] for r in created.results) == ["A", "B"]
    with pytest.raises(hs_companies.ApiException) as err:
        api.create(batch({"name": "C"}, {"nom": "D"}))
    assert err.value.status == 400
    assert len(fake.objects("companies")) == 2


# ------------------------------------------------------------ owners / properties


def test_owners_list_filter_and_get(fake: FakeHubSpot) -> None:
    """Owners carry id/email/names/userId; `email` filters; archived ones are listed separately."""
    first = fake.add_owner("aiko@example.com", "Aiko", "Sato")
    fake.add_owner("ben@example.com", "Ben", "Jones")
    fake.add_owner("gone@example.com", "Gone", "User", archived=True)
    api = client(fake).crm.owners.owners_api
    page = api.get_page()
    assert [o.email for o in page.results] == ["aiko@example.com", "ben@example.com"]
    owner = page.results[0]
    assert (owner.id, owner.first_name, owner.last_name, owner.archived) == (
        first, "Aiko", "Sato", False)
    assert isinstance(owner.user_id, int) and owner.created_at is not None
    assert [o.id for o in api.get_page(email="AIKO@example.com").results] == [first]
    assert [o.email for o in api.get_page(archived=True).results] == ["gone@example.com"]
    assert api.get_by_id(first).email == "aiko@example.com"


def test_properties_endpoint_lists_schema(fake: FakeHubSpot) -> None:
    """GET /crm/v3/properties/{type} lists name/label/type/fieldType, custom ones included."""
    fake.define_property("companies", "kizuna_health", "number", label="Health score")
    props = {p.name: p for p in client(fake).crm.properties.core_api.get_all("companies").results}
    assert props["notes_last_contacted"].type == "datetime"
    assert props["notes_last_contacted"].field_type == "date"
    assert props["lifecyclestage"].type == "enumeration"
    assert "customer" in [o.value for o in props["lifecyclestage"].options]
    assert (props["kizuna_health"].label, props["kizuna_health"].type) == ("Health score", "number")
    task_props = client(fake).crm.properties.core_api.get_all("tasks").results
    assert {"hs_task_subject", "hs_timestamp", "hs_task_status", "hubspot_owner_id"} <= {
        p.name for p in task_props}


# ----------------------------------------------------------------- associations


def test_task_created_with_type_192_is_visible_through_v4(fake: FakeHubSpot) -> None:
    """Create-time association 192 (task→company) shows up in v4 list and batch read, both ways."""
    company = fake.add("companies", {"name": "Acme"})
    lonely = fake.add("companies", {"name": "No tasks"})
    hs = client(fake)
    task = hs.crm.objects.tasks.basic_api.create(hs_tasks.SimplePublicObjectInputForCreate(
        properties={"hs_task_subject": "QBR prep", "hs_timestamp": "2024-05-01T09:00:00Z",
                    "hs_task_priority": "HIGH"},
        associations=[hs_tasks.PublicAssociationsForObject(
            to=hs_tasks.PublicObjectId(id=company),
            types=[hs_tasks.AssociationSpec(association_category="HUBSPOT_DEFINED",
                                            association_type_id=192)])]))
    assert task.properties["hs_timestamp"] == "2024-05-01T09:00:00.000Z"

    listed = hs.crm.associations.v4.basic_api.get_page("tasks", task.id, "companies")
    assert [r.to_object_id for r in listed.results] == [company]
    assert listed.results[0].association_types[0].type_id == 192
    assert listed.results[0].association_types[0].category == "HUBSPOT_DEFINED"

    batch = hs.crm.associations.v4.batch_api.get_page(
        "companies", "tasks", hs_assoc.BatchInputPublicFetchAssociationsBatchRequest(inputs=[
            hs_assoc.PublicFetchAssociationsBatchRequest(id=company),
            hs_assoc.PublicFetchAssociationsBatchRequest(id=lonely)]))
    assert [(r._from.id, [t.to_object_id for t in r.to]) for r in batch.results] == [
        (company, [task.id])]
    assert batch.results[0].to[0].association_types[0].type_id == 191
    assert batch.num_errors == 1
    assert batch.errors[0].sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"


def test_create_with_association_to_missing_record_fails(fake: FakeHubSpot) -> None:
    """An association to a non-existent id is rejected and the task is not created."""
    api = no_retry_client(fake).crm.objects.tasks.basic_api
    with pytest.raises(hs_tasks.ApiException) as err:
        api.create(hs_tasks.SimplePublicObjectInputForCreate(
            properties={"hs_task_subject": "x"},
            associations=[hs_tasks.PublicAssociationsForObject(
                to=hs_tasks.PublicObjectId(id="999"),
                types=[hs_tasks.AssociationSpec(association_category="HUBSPOT_DEFINED",
                                                association_type_id=192)])]))
    assert err.value.status == 400
    assert fake.objects("tasks") == []


# ------------------------------------------------------------------ auth / errors


def test_wrong_or_missing_token_is_401_with_hubspot_body(fake: FakeHubSpot) -> None:
    """Bad bearer tokens get 401 INVALID_AUTHENTICATION; the client raises UnauthorizedException."""
    for hs in (HubSpot(access_token="wrong", host=fake.url), HubSpot(host=fake.url)):
        with pytest.raises(hs_companies.exceptions.UnauthorizedException) as err:
            hs.crm.companies.basic_api.get_page()
        body = body_of(err.value)
        assert err.value.status == 401
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"].startswith("Authentication credentials not found")
    assert fake.calls[-1].header("authorization") is None


def test_unknown_object_type_is_400(fake: FakeHubSpot) -> None:
    """An object type HubSpot cannot resolve is a 400, not a 404."""
    with pytest.raises(Exception) as err:
        no_retry_client(fake).crm.objects.basic_api.get_page("widgets")
    assert err.value.status == 400  # type: ignore[attr-defined]


# --------------------------------------------------------------- rate limiting


def test_normal_responses_carry_rate_limit_headers(fake: FakeHubSpot) -> None:
    """Every non-search response reports the ten-second window and the daily quota."""
    api = client(fake).crm.companies.basic_api
    _, _, headers = api.get_page_with_http_info()
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert headers["X-HubSpot-RateLimit-Max"] == "100"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    assert headers["X-HubSpot-Correlation-Id"]


def test_burst_limiter_returns_429_then_recovers_after_window() -> None:
    """TEN_SECONDLY_ROLLING: the 4th call in 10 s (limit 3) is 429; advancing the clock frees it."""
    with FakeHubSpot(burst_limit=3) as fake:
        api = no_retry_client(fake).crm.companies.basic_api
        remaining = [api.get_page_with_http_info()[2]["X-HubSpot-RateLimit-Remaining"]
                     for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        with pytest.raises(hs_companies.ApiException) as err:
            api.get_page()
        body = body_of(err.value)
        assert err.value.status == 429
        assert body["errorType"] == "RATE_LIMIT"
        assert body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        fake.advance(10)
        assert api.get_page().results == []


def test_injected_429_surfaces_as_api_exception_without_retries(fake: FakeHubSpot) -> None:
    """With urllib3 Retry(total=0) an injected 429 + Retry-After reaches the caller at once."""
    cid = fake.add("companies", {"name": "Acme"})
    fake.inject(429, retry_after=7)
    with pytest.raises(hs_companies.ApiException) as err:
        no_retry_client(fake).crm.companies.basic_api.get_by_id(cid)
    assert err.value.status == 429
    assert err.value.headers["Retry-After"] == "7"
    assert body_of(err.value)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert [(c.status, c.injected) for c in fake.calls] == [(429, True)]


def test_default_client_config_lets_urllib3_retry_get_on_429(fake: FakeHubSpot) -> None:
    """Default hubspot-api-client uses urllib3's Retry(3): GET + 429 + Retry-After is retried."""
    cid = fake.add("companies", {"name": "Acme"})
    fake.inject(429, times=2, retry_after=0)
    assert client(fake).crm.companies.basic_api.get_by_id(cid).id == cid
    assert [(c.status, c.injected) for c in fake.calls] == [(429, True), (429, True), (200, False)]


def test_default_client_surfaces_429_after_three_silent_retries(fake: FakeHubSpot) -> None:
    """Default Retry(3) sends 4 requests; the last 429 then reaches the caller as ApiException."""
    fake.inject(429, times=4, retry_after=0)
    with pytest.raises(hs_companies.ApiException) as err:
        client(fake).crm.companies.basic_api.get_page()
    assert err.value.status == 429
    assert len(fake.calls) == 4 and all(c.injected for c in fake.calls)


def test_default_client_does_not_retry_post_search(fake: FakeHubSpot) -> None:
    """urllib3 never retries POST, so a 429 on search surfaces at once even by default."""
    fake.inject(429, retry_after=0, match="/search")
    with pytest.raises(hs_companies.ApiException) as err:
        client(fake).crm.companies.search_api.do_search(search_request())
    assert err.value.status == 429
    assert len(fake.calls) == 1


def test_injected_5xx_respects_match_and_times(fake: FakeHubSpot) -> None:
    """Faults only hit matching requests, fire `times` times, and 5xx maps to ServiceException."""
    deal = fake.add("deals", {"dealname": "D"})
    fake.inject(503, times=2, match="/deals")
    fake.inject(500, match=lambda call: call.method == "PATCH")
    hs = no_retry_client(fake)
    assert hs.crm.companies.basic_api.get_page().results == []
    for _ in range(2):
        with pytest.raises(hs_deals.exceptions.ServiceException):
            hs.crm.deals.basic_api.get_by_id(deal)
    assert hs.crm.deals.basic_api.get_by_id(deal).id == deal
    with pytest.raises(hs_deals.ApiException) as err:
        hs.crm.deals.basic_api.update(deal, hs_deals.SimplePublicObjectInput(properties={}))
    assert err.value.status == 500
    assert [c.status for c in fake.calls] == [200, 503, 503, 200, 500]


# ------------------------------------------------------------------ concurrency


def test_concurrent_requests_are_all_served_and_recorded() -> None:
    """The threaded server handles parallel clients; `calls` loses nothing."""
    with FakeHubSpot(burst_limit=None) as fake:
        cid = fake.add("companies", {"name": "Acme"})
        errors: list[BaseException] = []

        def worker() -> None:
            api = client(fake).crm.companies.basic_api
            try:
                for _ in range(10):
                    assert api.get_by_id(cid).id == cid
            except BaseException as exc:  # surfaced below; threads swallow exceptions
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(fake.calls) == 80 and {c.status for c in fake.calls} == {200}
        fake.reset_calls()
        assert fake.calls == []
