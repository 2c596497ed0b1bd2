"""App Home on app_home_opened, the daily digest per CSM, the weekly manager digest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.digest import send_daily, send_weekly
from connectors.demo import OWNERS
from core import schema as t
from core.domain import PlayState
from tests.fakes.slack import FakeSlack, validate_blocks
from tests.slack_helpers import TODAY, Rig, event_request, in_days, make_rig


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def rig(tmp_path: Path, fake: FakeSlack) -> Rig:
    fake.add_channel("cs-managers")
    rig = make_rig(tmp_path, fake, slack={"manager_channel": "#cs-managers"})
    rig.kizuna.tick(sync=False)
    return rig


def digests(fake: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages(channel)
            if (m.get("metadata") or {}).get("event_type") == "kizuna_digest"]


def test_app_home_opened_publishes_the_csms_book(rig: Rig) -> None:
    """Opening the Home tab publishes that CSM's accounts, open plays and counts."""
    email, name_ja, _ = OWNERS[0]
    user = rig.users[email]
    response = rig.dispatch(event_request({"type": "app_home_opened", "user": user,
                                           "tab": "home", "channel": "D0HOME"},
                                          rig.fake.team_id))
    assert response.status == 200
    (home,) = rig.fake.views(user)
    assert home["type"] == "home" and len(home["blocks"]) <= 100
    text = json.dumps(home["blocks"], ensure_ascii=False)
    assert name_ja in text
    mine = rig.kizuna.ledger.owner_plays("demo", email)
    listed = [b["accessory"]["value"] for b in home["blocks"]
              if b.get("block_id", "").startswith("open:")]
    assert listed == [p.ref for p in mine][:30]
    assert f"アカウント {len(rig.kizuna.owned_accounts(email))}" in text


def test_home_for_someone_without_accounts(rig: Rig) -> None:
    """A Slack member who owns nothing still gets a valid (empty) Home tab."""
    stranger = rig.fake.add_user("new.hire@example.com")
    rig.dispatch(event_request({"type": "app_home_opened", "user": stranger, "tab": "home"},
                               rig.fake.team_id))
    (home,) = rig.fake.views(stranger)
    assert validate_blocks(home["blocks"], max_blocks=100) == []
    assert "アカウント 0" in json.dumps(home["blocks"], ensure_ascii=False)


def test_daily_digest_waits_for_a_working_day(rig: Rig) -> None:
    """On a Sunday the digest is held, not sent and not lost; Monday morning sends it."""
    queued = len(rig.bot.state.queued())
    rig.clock.set(in_days(5), 8, 30)  # Sunday
    report = send_daily(rig.kizuna, rig.bot.notifier, rig.clock())
    assert report.held and report.sent == [] and len(rig.bot.state.queued()) == queued > 0
    rig.clock.set(in_days(6), 8, 30)  # Monday, at the scheduler's default digest time
    assert send_daily(rig.kizuna, rig.bot.notifier, rig.clock()).sent
    assert rig.bot.state.queued() == []


def test_daily_digest_leaves_out_plays_that_ended(rig: Rig) -> None:
    """A queued play marked done before the digest is dropped from it."""
    row = rig.bot.state.queued()[0]
    rig.kizuna.done(row.play_key, "slack:U1")
    rig.clock.set(TODAY, 17)
    send_daily(rig.kizuna, rig.bot.notifier, rig.clock())
    play = rig.kizuna.play(row.play_key)
    assert play.state == PlayState.DONE
    texts = [json.dumps(m) for u in rig.users.values() for m in digests(rig.fake, u)]
    assert not any(play.ref in text for text in texts)
    assert rig.bot.state.delivery(row.marker).state == "dropped"


def test_daily_digest_after_a_crash_is_not_posted_twice(rig: Rig) -> None:
    """A digest whose post was accepted but not recorded is found again, not re-posted."""
    rig.clock.set(TODAY, 17)
    first = send_daily(rig.kizuna, rig.bot.notifier, rig.clock())
    assert first.sent
    d = t.slack_deliveries
    with rig.store.begin() as conn:
        conn.execute(update(d).where(d.c.kind == "daily").values(state="sending", channel=None,
                                                                  ts=None))
        conn.execute(update(d).where(d.c.state == "digested").values(state="queued"))
    posts = len(rig.fake.calls_to("chat.postMessage"))
    second = send_daily(rig.kizuna, rig.bot.notifier, rig.clock())
    assert second.sent == [] and sorted(second.skipped) == sorted(first.sent)
    assert len(rig.fake.calls_to("chat.postMessage")) == posts
    assert rig.bot.state.queued() == []


def test_weekly_manager_digest(rig: Rig) -> None:
    """Per CSM: accounts, behind cadence, open and overdue plays, at-risk ARR; once a week."""
    rig.clock.set(in_days(6), 9, 30)  # Monday
    report = send_weekly(rig.kizuna, rig.bot.notifier, rig.clock())
    assert report.errors == [] and len(report.sent) == 1
    (message,) = digests(rig.fake, "#cs-managers")
    text = json.dumps(message["blocks"], ensure_ascii=False)
    for _, name_ja, _ in OWNERS:
        assert name_ja in text
    open_plays = len(rig.kizuna.ledger.plays("demo", states=[PlayState.OPEN]))
    assert f"対応待ち {open_plays}" in text
    assert "リスクARR" in text and "20" in text  # quarters like 2026-Q4 / 2027-Q1
    rig.clock.now += timedelta(hours=2)
    again = send_weekly(rig.kizuna, rig.bot.notifier, rig.clock())
    assert again.sent == [] and again.skipped
    assert len(digests(rig.fake, "#cs-managers")) == 1


def test_weekly_digest_needs_a_manager_channel(tmp_path: Path, fake: FakeSlack) -> None:
    """Without slack.manager_channel the weekly digest reports why it did nothing."""
    rig = make_rig(tmp_path, fake)
    report = send_weekly(rig.kizuna, rig.bot.notifier, rig.clock())
    assert report.errors == ["slack.manager_channel is not set"]
