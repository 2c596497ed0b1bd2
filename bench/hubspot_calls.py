"""HubSpot API calls for a full sync of 10,000 companies, an unchanged re-sync, and the naive way.

    python -m bench hubspot_calls

Runs the real connector against ``FakeHubSpot`` (a local HTTP server that enforces HubSpot's
burst and search limits). The connector and the fake share one simulated clock, so the limiter's
waits cost no real time but are added up: "at HubSpot's limits" is the least time the same calls
would take against a real portal (100 requests per 10 s, 4 searches per second).

The naive approach — read each company, then ask for its contacts, deals and each kind of
engagement, one company at a time — is measured on a sample of companies through the same
client library and multiplied out.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from hubspot import HubSpot

from connectors.hubspot import HubSpotConnector
from tests.fakes.hubspot import FakeHubSpot

COMPANIES = 10_000
PER_COMPANY = {"contacts": 1.0, "deals": 0.2, "meetings": 0.5, "calls": 0.3, "emails": 0.5,
               "notes": 0.1, "tasks": 0.1}
NAIVE_SAMPLE = 50
RELATED = ("contacts", "deals", "calls", "meetings", "emails", "notes", "tasks")


class SimulatedTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def _seed(fake: FakeHubSpot) -> dict[str, int]:
    owners = [fake.add_owner(f"csm{i}@example.com", f"CSM{i}", "Kizuna") for i in range(20)]
    fake.define_property("companies", "form_impressions", "number")
    made: Counter = Counter()
    carry: Counter = Counter()
    for i in range(COMPANIES):
        name = f"株式会社ベンチ{i}" if i % 2 else f"Bench Company {i} Inc."
        cid = fake.add("companies", {"name": name, "hubspot_owner_id": owners[i % len(owners)],
                                     "form_impressions": i * 7 % 9000})
        made["companies"] += 1
        link = {"companies": [cid]}
        for kind, rate in PER_COMPANY.items():
            carry[kind] += rate
            while carry[kind] >= 1:
                carry[kind] -= 1
                made[kind] += 1
                props = {"contacts": {"firstname": "太郎", "lastname": "山田"},
                         "deals": {"dealname": "Renewal", "closedate": "2025-04-01",
                                   "dealstage": "contractsent"}}.get(
                    kind, {"hs_timestamp": "2024-05-01T00:00:00Z"})
                fake.add(kind, props, associations=link)
    return dict(made)


def _by_object(fake: FakeHubSpot) -> Counter:
    out: Counter = Counter()
    for call in fake.calls:
        parts = call.path.strip("/").split("/")
        if parts[:3] == ["crm", "v3", "objects"]:
            kind = parts[3] + (" (archived)" if call.query.get("archived") == ["true"] else "")
        elif parts[:2] == ["crm", "v4"]:
            kind = f"associations {parts[3]}→{parts[4]}"
        else:
            kind = parts[2]
        out[kind] += 1
    return out


def _naive_per_company(fake: FakeHubSpot, sim: SimulatedTime, company_ids: list[str]) -> float:
    """Calls per company when each company is read on its own (measured on a sample).

    Paced at 10 requests a (simulated) second, the most HubSpot's burst limit allows.
    """
    client = HubSpot(access_token=fake.access_token, host=fake.url)
    companies = client.crm.companies.basic_api
    links = client.crm.associations.v4.basic_api
    fake.reset_calls()
    for cid in company_ids:
        sim.sleep(0.11)
        companies.get_by_id(cid, properties=["name", "hubspot_owner_id", "form_impressions"])
        for kind in RELATED:
            sim.sleep(0.11)
            links.get_page("companies", cid, kind, limit=500)
    return len(fake.calls) / len(company_ids)


def _line(label: str, calls: int, detail: str, wall: float | None, simulated: float) -> None:
    took = f"wall {wall:.1f} s here; " if wall is not None else ""
    print(f"   {label:<26}{calls:>8,} calls   {took}≥ {simulated:,.0f} s at HubSpot's limits")
    print(f"   {'':<26}{'':>8}         {detail}")


def main() -> None:
    sim = SimulatedTime()
    with FakeHubSpot(limiter_clock=sim) as fake:
        fake.now = datetime(2024, 6, 1, tzinfo=UTC)
        started = time.perf_counter()
        made = _seed(fake)
        print(f"   portal: {', '.join(f'{n:,} {k}' for k, n in made.items())} "
              f"(seeded in {time.perf_counter() - started:.1f} s)")
        hs = HubSpotConnector(fake.access_token, base_url=fake.url, timer=sim, sleep=sim.sleep,
                              default_metrics={"form_impressions": "form_impressions"})
        fake.reset_calls()
        hs.check()
        checked = len(fake.calls)
        fake.reset_calls()

        t0, s0 = time.perf_counter(), sim.now
        batches = list(hs.pull({}))
        full_wall, full_sim = time.perf_counter() - t0, sim.now - s0
        full = _by_object(fake)
        cursors = {b.stream: b.cursor for b in batches if b.cursor is not None}
        rejected = sum(1 for c in fake.calls if c.status == 429)

        fake.advance(3600)
        fake.reset_calls()
        t0, s0 = time.perf_counter(), sim.now
        again = list(hs.pull(cursors))
        second_wall, second_sim = time.perf_counter() - t0, sim.now - s0
        second = _by_object(fake)
        assert sum(len(b.records) for b in again) == 0

        sample = [r["id"] for r in fake.objects("companies")[:NAIVE_SAMPLE]]
        per_company = _naive_per_company(fake, sim, sample)
        naive = round(per_company * COMPANIES)

    print(f"   == API calls for {COMPANIES:,} companies ==")
    print(f"   start-up check: {checked} calls (company and deal property lists)")
    _line("full sync (list pages)", sum(full.values()),
          ", ".join(f"{k} {n}" for k, n in sorted(full.items())), full_wall, full_sim)
    _line("unchanged second sync", sum(second.values()),
          ", ".join(f"{k} {n}" for k, n in sorted(second.items())), second_wall, second_sim)
    _line("naive, per company", naive,
          f"{per_company:.1f} calls per company (measured on {len(sample)}): the company, then "
          "its contacts, deals and each engagement type", None, naive / 10)
    print(f"   429 responses during the full sync: {rejected} (client-side limiter)")
