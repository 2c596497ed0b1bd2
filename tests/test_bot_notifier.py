"""Nudge delivery through the fake Slack: routing, volume control, hours, faults, exactly-once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import update

from bot.app import build_bot
from bot.digest import send_daily
from connectors.demo import OWNERS
from connectors.retry import RetryPolicy
from core import schema as t
from core.domain import PlayState, Severity, StepState
from tests.fakes.slack import FakeSlack
from tests.slack_helpers import TODAY, Rig, Sleeps, in_days, make_rig


@pytest.fixture
def fake() -> Any:
    with FakeSlack() as server:
        yield server


def nudges_in(fake: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages(channel)
            if (m.get("metadata") or {}).get("event_type") == "kizuna_nudge"]


def refs_posted(fake: FakeSlack) -> Counter:
    """How many times each play's ref was posted, across every successful chat.postMessage."""
    return Counter(c.args["metadata"]["event_payload"]["ref"]
                   for c in fake.calls_to("chat.postMessage")
                   if c.ok and (c.args.get("metadata") or {}).get("event_type") == "kizuna_nudge")


def nudge_states(rig: Rig) -> Counter:
    return Counter(str(p.nudge_state) for p in rig.kizuna.ledger.plays(rig.kizuna.source))


def test_tick_posts_one_dm_per_play_each_carrying_its_marker(tmp_path: Path,
                                                             fake: FakeSlack) -> None:
    """A tick DMs each owner their plays once; a second tick posts nothing new."""
    rig = make_rig(tmp_path, fake)
    report = rig.kizuna.tick(sync=False)
    assert report.delivery.errors == [] and report.opened > 0
    posted = refs_posted(fake)
    assert posted and set(posted.values()) == {1}
    for _email, user in rig.users.items():
        for message in nudges_in(fake, user):
            assert message["metadata"]["event_payload"]["marker"].startswith("nudge:kz-")
            assert message["blocks"][0]["type"] == "header"
    assert nudge_states(rig) == Counter({"done": report.opened})
    before = len(fake.calls_to("chat.postMessage"))
    again = rig.kizuna.tick(sync=False)
    assert again.opened == 0 and len(fake.calls_to("chat.postMessage")) == before


def test_cap_and_low_severity_go_to_the_daily_digest_once(tmp_path: Path,
                                                          fake: FakeSlack) -> None:
    """At most 5 nudges per CSM a day, most severe first; the rest arrive in one digest."""
    rig = make_rig(tmp_path, fake)
    rig.kizuna.tick(sync=False)
    by_ref = {p.ref: p for p in rig.kizuna.ledger.plays(rig.kizuna.source)}
    rank = {"high": 0, "medium": 1, "low": 2}
    waiting: dict[str, int] = {}
    for email, user in rig.users.items():
        sent = [by_ref[m["metadata"]["event_payload"]["ref"]] for m in nudges_in(fake, user)]
        queued = [rig.kizuna.ledger.get(r.play_key) for r in rig.bot.state.queued()
                  if r.owner_email == email]
        assert len(sent) <= 5
        assert all(p.severity != Severity.LOW for p in sent)
        capped = [q for q in queued if q.severity != Severity.LOW]
        if capped:
            assert len(sent) == 5
            assert max(rank[str(p.severity)] for p in sent) <= \
                min(rank[str(q.severity)] for q in capped)
        if queued:
            waiting[email] = len(queued)
    assert waiting and any(n > 0 for n in waiting.values())
    rig.clock.set(TODAY, 17, 0)
    report = send_daily(rig.kizuna, rig.bot.notifier, rig.clock())
    assert report.errors == []
    assert sorted(report.sent) == sorted(f"daily:{e}:{TODAY.isoformat()}" for e in waiting)
    for email, n in waiting.items():
        (digest,) = [m for m in fake.messages(rig.users[email])
                     if (m.get("metadata") or {}).get("event_type") == "kizuna_digest"]
        assert len([b for b in digest["blocks"] if b.get("accessory")]) == n
    assert rig.bot.state.queued() == []
    assert rig.bot.state.counts()["nudge:digested"] == sum(waiting.values())
    again = send_daily(rig.kizuna, rig.bot.notifier, rig.clock())
    assert again.sent == [] and again.errors == []


def test_quiet_hours_and_weekends_hold_nudges_until_the_next_working_morning(
        tmp_path: Path, fake: FakeSlack) -> None:
    """At 22:00 and on Saturday nothing is posted and nothing fails; 09:00 Monday sends."""
    rig = make_rig(tmp_path, fake)
    rig.clock.set(TODAY, 22, 0)
    report = rig.kizuna.tick(sync=False)
    assert report.delivery.held and report.delivery.errors == []
    assert fake.calls_to("chat.postMessage") == []
    assert nudge_states(rig)["pending"] == report.opened
    rig.clock.set(in_days(4), 11, 0)  # Saturday
    assert rig.kizuna.deliver().held and fake.calls_to("chat.postMessage") == []
    rig.clock.set(in_days(6), 8, 59)  # Monday, before the quiet hours end
    assert rig.kizuna.deliver().held
    rig.clock.set(in_days(6), 9, 0)
    delivery = rig.kizuna.deliver()
    assert delivery.held == [] and delivery.errors == []
    assert refs_posted(fake) and nudge_states(rig)["pending"] == 0


def test_unmapped_owner_goes_to_fallback_and_admin_hears_once(tmp_path: Path,
                                                              fake: FakeSlack) -> None:
    """Owners without a Slack user: nudges in the fallback channel, one admin notice each,
    remembered in the store (a restarted bot says nothing again)."""
    fallback = fake.add_channel("cs-fallback")
    admin = fake.add_channel("kizuna-admin")
    slack = {"fallback_channel": "#cs-fallback", "admin_channel": "#kizuna-admin"}
    rig = make_rig(tmp_path, fake, slack=slack, map_owners=False)
    mapped = fake.add_user(OWNERS[0][0])
    report = rig.kizuna.tick(sync=False)
    assert report.delivery.errors == []
    assert nudges_in(fake, mapped) and nudges_in(fake, fallback)
    notices = [m["text"] for m in fake.messages(admin)]
    assert len(notices) == len(OWNERS) - 1
    assert all("slack.users" in n for n in notices)
    assert len(fake.calls_to("users.lookupByEmail")) == len(OWNERS)  # cached, not per nudge
    restarted = build_bot(rig.bot.kizuna.settings, rig.kizuna, clock=rig.clock,
                          process_before_response=True)
    for email, _, _ in OWNERS[1:]:
        assert restarted.notifier.route(email).kind == "fallback"
    assert len(fake.messages(admin)) == len(notices)
    assert len(fake.calls_to("users.lookupByEmail")) == len(OWNERS)


def test_owner_with_no_user_and_no_fallback_waits_and_is_reported_once(
        tmp_path: Path, fake: FakeSlack) -> None:
    """Without a fallback channel the play stays pending (reported), never dropped."""
    admin = fake.add_channel("kizuna-admin")
    rig = make_rig(tmp_path, fake, slack={"admin_channel": "#kizuna-admin"}, map_owners=False)
    first = rig.kizuna.tick(sync=False)
    assert first.delivery.errors and fake.calls_to("chat.postMessage")  # only to the admin
    assert refs_posted(fake) == Counter()
    assert nudge_states(rig) == Counter({"pending": first.opened})
    rig.kizuna.deliver()
    assert len(fake.messages(admin)) == len(OWNERS)
    users = {email: fake.add_user(email) for email, _, _ in OWNERS}
    rig.clock.now += timedelta(days=1, hours=1)  # the "no such member" cache expires
    rig.kizuna.deliver()
    assert sum(len(nudges_in(fake, u)) for u in users.values()) > 0
    assert set(refs_posted(fake).values()) == {1}


def test_rate_limited_posting_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """1 post/s per channel plus injected 429s: every play posted exactly once, waits honoured."""
    now = [1_790_000_000.0]
    with FakeSlack(post_message_rate_limit=1, clock=lambda: now[0]) as fake:
        rig = make_rig(tmp_path, fake, accounts=40,
                       slack={"daily_cap": None, "low_severity_to_digest": False})
        sleeps = Sleeps(advance=lambda s: now.__setitem__(0, now[0] + s))
        rig.bot.calls.policy = RetryPolicy(attempts=5, max_total_wait=60, sleep=sleeps)
        fake.ratelimit("chat.postMessage", times=3, retry_after=4)
        report = rig.kizuna.tick(sync=False)
        assert report.delivery.errors == []
        posted = refs_posted(fake)
        plays = rig.kizuna.ledger.plays(rig.kizuna.source)
        assert sorted(posted) == sorted(p.ref for p in plays)  # none lost
        assert set(posted.values()) == {1}                      # none duplicated
        assert 4.0 in sleeps.waits and all(w >= 1 for w in sleeps.waits)
        statuses = Counter(c.status for c in fake.calls_to("chat.postMessage"))
        assert statuses[429] >= 3 and statuses[200] == len(plays)


def test_rate_limit_that_outlasts_the_policy_keeps_the_play_pending(tmp_path: Path,
                                                                    fake: FakeSlack) -> None:
    """When Slack keeps answering 429, the nudge stays pending and goes out next tick."""
    rig = make_rig(tmp_path, fake)
    fake.ratelimit("chat.postMessage", times=4, retry_after=1)
    report = rig.kizuna.tick(sync=False)
    assert any("rate limited" in e for e in report.delivery.errors)
    assert nudge_states(rig)["pending"] >= 1
    rig.kizuna.deliver()
    assert nudge_states(rig)["pending"] == 0 and set(refs_posted(fake).values()) == {1}


def test_invalid_blocks_posts_a_plain_version_and_tells_the_admin(tmp_path: Path,
                                                                  fake: FakeSlack) -> None:
    """Slack refusing the blocks: the admin hears the error, the CSM still gets the play."""
    admin = fake.add_channel("kizuna-admin")
    rig = make_rig(tmp_path, fake, slack={"admin_channel": "#kizuna-admin"})
    fake.inject_error("chat.postMessage", "invalid_blocks", times=1)
    report = rig.kizuna.tick(sync=False)
    assert report.delivery.errors == []
    (notice,) = fake.messages(admin)
    assert "invalid_blocks" in notice["text"]
    plain = [m for u in rig.users.values() for m in nudges_in(fake, u)
             if m["blocks"][0]["type"] == "section"]
    assert len(plain) == 1 and plain[0]["blocks"][-1]["type"] == "actions"
    assert set(refs_posted(fake).values()) == {1}


def test_missing_team_channel_is_reported_once_and_the_play_waits(tmp_path: Path,
                                                                  fake: FakeSlack) -> None:
    """channel_not_found: one admin notice, the plays stay pending, then go out once."""
    admin = fake.add_channel("kizuna-admin")
    email = OWNERS[1][0]
    slack = {"admin_channel": "#kizuna-admin",
             "teams": [{"name": "SMB", "channel": "#cs-smb", "members": [email]}]}
    rig = make_rig(tmp_path, fake, slack=slack)
    first = rig.kizuna.tick(sync=False)
    assert first.delivery.errors
    rig.kizuna.deliver()
    assert [m["text"].count("channel_not_found") for m in fake.messages(admin)] == [1]
    waiting = [p for p in rig.kizuna.ledger.plays(rig.kizuna.source)
               if p.nudge_state == StepState.PENDING]
    assert waiting
    channel = fake.add_channel("cs-smb")
    assert rig.kizuna.deliver().errors == []
    assert nudges_in(fake, channel) and set(refs_posted(fake).values()) == {1}


def test_crash_between_slack_accepting_and_the_ledger_commit_does_not_post_twice(
        tmp_path: Path, fake: FakeSlack) -> None:
    """After a crash the next run finds its own post by marker instead of posting again."""
    rig = make_rig(tmp_path, fake)
    rig.kizuna.tick(sync=False)
    posted = refs_posted(fake)
    sent = [p for p in rig.kizuna.ledger.plays(rig.kizuna.source)
            if p.ref in posted]
    # What the disk holds if the process died right after chat.postMessage returned:
    d = t.slack_deliveries
    with rig.store.begin() as conn:
        conn.execute(update(d).where(d.c.kind == "nudge", d.c.state == "sent")
                     .values(state="sending", channel=None, ts=None))
        conn.execute(update(t.plays).where(t.plays.c.key.in_([p.key for p in sent]))
                     .values(nudge_state="pending", nudge_channel=None, nudge_ts=None))
    calls_before = len(fake.calls_to("chat.postMessage"))
    delivery = rig.kizuna.deliver()
    assert delivery.errors == [] and len(fake.calls_to("chat.postMessage")) == calls_before
    assert len(fake.calls_to("conversations.history")) >= len(sent)
    assert nudge_states(rig) == Counter({"done": len(rig.kizuna.ledger.plays("demo"))})
    with rig.store.engine.connect() as conn:
        ts = dict(conn.execute(t.plays.select().with_only_columns(
            t.plays.c.ref, t.plays.c.nudge_ts)).all())
    by_ref = {c.args["metadata"]["event_payload"]["ref"]: c.response["ts"]
              for c in fake.calls_to("chat.postMessage") if c.ok and c.args.get("metadata")
              and c.args["metadata"]["event_type"] == "kizuna_nudge"}
    assert all(ts[ref] == stamp for ref, stamp in by_ref.items())


def test_server_error_on_post_is_checked_before_posting_again(tmp_path: Path,
                                                              fake: FakeSlack) -> None:
    """A 5xx leaves the attempt 'sending'; the retry looks first, then posts exactly once."""
    rig = make_rig(tmp_path, fake)
    fake.inject_status("chat.postMessage", 500)
    report = rig.kizuna.tick(sync=False)
    assert any("HTTP 500" in e for e in report.delivery.errors)
    assert rig.bot.state.problems()[0].state == "sending"
    rig.kizuna.deliver()
    assert rig.bot.state.problems() == []
    assert set(refs_posted(fake).values()) == {1}
    assert fake.calls_to("conversations.history")


def test_snoozed_play_wakes_and_is_nudged_again(tmp_path: Path, fake: FakeSlack) -> None:
    """A play snoozed for a day comes back as a new reminder the next day."""
    rig = make_rig(tmp_path, fake)
    rig.kizuna.tick(sync=False)
    posted = refs_posted(fake)
    play = next(p for p in rig.kizuna.ledger.plays("demo") if p.ref in posted)
    rig.kizuna.snooze(play.key, in_days(1), "slack:U1")
    assert rig.kizuna.play(play.key).state == PlayState.SNOOZED
    rig.clock.set(in_days(1), 10)
    rig.kizuna.deliver()
    assert rig.kizuna.play(play.key).state == PlayState.OPEN
    assert refs_posted(fake)[play.ref] == 2


def test_fake_conversations_history_follows_the_documented_contract(fake: FakeSlack) -> None:
    """Newest first, exclusive oldest, cursor pages, metadata only when asked for."""
    client = WebClient(token=fake.bot_token, base_url=fake.api_url)
    channel = fake.add_channel("hist")
    stamps = [client.chat_postMessage(channel=channel, text=str(i),
                                      metadata={"event_type": "t", "event_payload": {"i": i}})
              ["ts"] for i in range(5)]
    page = client.conversations_history(channel=channel, limit=2, oldest=stamps[0])
    assert [m["text"] for m in page["messages"]] == ["4", "3"] and page["has_more"]
    assert "metadata" not in page["messages"][0]
    rest = client.conversations_history(channel=channel, limit=10, oldest=stamps[0],
                                        include_all_metadata=True,
                                        cursor=page["response_metadata"]["next_cursor"])
    assert [m["metadata"]["event_payload"]["i"] for m in rest["messages"]] == [2, 1]
    assert rest["has_more"] is False


def test_kizuna_alerts_reach_the_admin_channel_once(tmp_path: Path, fake: FakeSlack) -> None:
    """Service alerts (Kizuna._alert → notifier.alert) are posted to the admin channel once."""
    admin = fake.add_channel("kizuna-admin")
    rig = make_rig(tmp_path, fake, slack={"admin_channel": "#kizuna-admin"})
    for _ in range(2):
        rig.bot.notifier.alert("data-guard:demo:2026-11-24", "usage metrics missing <!here>")
    (notice,) = fake.messages(admin)
    assert "&lt;!here&gt;" in notice["text"] and "<!here>" not in notice["text"]
