"""Helpers for the HubSpot connector tests: simulated time and a seeded portal.

Why: rate limiting and retries must be tested without really waiting. ``SimTime`` is one
simulated monotonic clock shared by the connector (its limiter and retry sleeps advance it) and
by ``FakeHubSpot``'s rate-limit windows (``limiter_clock=sim``), so the fake sees exactly the
pacing the connector produces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.hubspot import HubSpotConnector, HubSpotSettings
from tests.fakes.hubspot import FakeHubSpot

TODAY = date(2024, 6, 3)
NOW = datetime(2024, 6, 3, 1, 0, tzinfo=UTC)   # 10:00 in Tokyo


class SimTime:
    """A monotonic clock that only moves when someone sleeps; records every sleep."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


def connector(fake: FakeHubSpot, sim: SimTime | None = None, *,
              config: HubSpotSettings | None = None, clock: Callable[[], datetime] | None = None,
              **kwargs: Any) -> HubSpotConnector:
    """A connector pointed at the fake, on simulated time, with the usage metric mapped."""
    sim = sim or SimTime()
    kwargs.setdefault("default_metrics", {"form_impressions": "form_impressions"})
    return HubSpotConnector(fake.access_token, base_url=fake.url, config=config,
                            clock=clock or (lambda: NOW), timer=sim, sleep=sim.sleep, **kwargs)


@dataclass
class Portal:
    """What ``seed`` put into the fake, for assertions."""

    owners: dict[str, str] = field(default_factory=dict)      # email → owner id
    companies: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)       # company id → name
    owner_of: dict[str, str] = field(default_factory=dict)    # company id → owner email


OWNER_EMAILS = ("sato.hanako@example.com", "tanaka.kenji@example.com", "emily.clark@example.com")


def seed(fake: FakeHubSpot, companies: int, *, contacts_every: int = 3,
         meetings_every: int = 3, deals_every: int = 10) -> Portal:
    """Create owners, companies (every other one with a Japanese name), contacts, meetings and
    renewal deals directly in the fake (no HTTP)."""
    portal = Portal()
    for email, first, last in zip(OWNER_EMAILS, ("Hanako", "Kenji", "Emily"),
                                  ("Sato", "Tanaka", "Clark"), strict=True):
        portal.owners[email] = fake.add_owner(email, first, last)
    fake.define_property("companies", "form_impressions", "number")
    owner_ids = list(portal.owners.values())
    for i in range(companies):
        name = f"株式会社さくら{i}号" if i % 2 == 0 else f"Northwind {i} Inc."
        owner = owner_ids[i % len(owner_ids)]
        cid = fake.add("companies", {"name": name, "hubspot_owner_id": owner,
                                     "form_impressions": 100 * i, "lifecyclestage": "customer"})
        portal.companies.append(cid)
        portal.names[cid] = name
        portal.owner_of[cid] = OWNER_EMAILS[i % len(owner_ids)]
        if contacts_every and i % contacts_every == 0:
            fake.add("contacts", {"firstname": "太郎", "lastname": "山田",
                                  "email": f"taro{i}@example.jp", "jobtitle": "部長"},
                     associations={"companies": [cid]})
        if meetings_every and i % meetings_every == 0:
            fake.add("meetings", {"hs_meeting_title": "QBR 四半期レビュー",
                                  "hs_timestamp": "2024-05-01T05:00:00Z",
                                  "hubspot_owner_id": owner}, associations={"companies": [cid]})
        if deals_every and i % deals_every == 0:
            close = TODAY + timedelta(days=30 + i % 60)
            fake.add("deals", {"dealname": "更新", "closedate": close.isoformat(),
                               "dealstage": "contractsent", "pipeline": "default",
                               "dealtype": "existingbusiness"},
                     associations={"companies": [cid]})
    return portal
