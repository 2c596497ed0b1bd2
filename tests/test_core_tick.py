"""One tick end to end on the demo CRM: plays, CRM tasks, drafts and nudges, exactly once."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from core.app import Kizuna
from core.domain import Account, Activity, ActivityKind, PlayState, SyncBatch
from tests.conftest import NOW


def first_tick(kizuna: Kizuna):
    kizuna.sync()
    kizuna.backfill_health()
    return kizuna.tick(sync=False)


def test_first_tick_creates_one_task_draft_and_nudge_per_play(kizuna: Kizuna) -> None:
    """Every opened play gets exactly one CRM task, one email draft and one nudge."""
    report = first_tick(kizuna)
    plays = kizuna.ledger.plays("demo")
    assert report.opened == len(plays) > 20
    assert len(report.delivery.tasks) == len(plays)
    assert len(report.delivery.nudges) == len(plays)
    assert len(report.delivery.drafts) == len(plays)
    refs = [t["ref"] for t in kizuna.connector.tasks]
    assert sorted(refs) == sorted(p.ref for p in plays)
    assert {p.playbook_id for p in plays} >= {
        "qbr_due", "low_form_impressions", "renewal_approaching", "no_contact_within_cadence",
        "health_drop", "onboarding_stalled", "upsell_signal"}
    owners = {n.recipient for n in report.delivery.nudges}
    assert len(owners) == 4


def test_second_tick_creates_nothing_new(kizuna: Kizuna) -> None:
    """Re-running the tick finds every play in the ledger: no new task, draft or nudge."""
    first_tick(kizuna)
    tasks_before = len(kizuna.connector.tasks)
    report = kizuna.tick()
    assert (report.opened, len(report.delivery.tasks), len(report.delivery.nudges),
            len(report.delivery.drafts)) == (0, 0, 0, 0)
    assert len(kizuna.connector.tasks) == tasks_before


def test_task_created_before_a_crash_is_not_created_again(kizuna: Kizuna) -> None:
    """CRM accepted the task but the ledger never heard: the re-run finds it by its ref."""
    kizuna.sync()
    decisions = kizuna.decide()
    kizuna.ledger.insert(decisions.new_plays)
    play = decisions.new_plays[0]
    account = kizuna.store.account("demo", play.account_id)
    first_id = kizuna.connector.create_task(kizuna.crm_task(play, account))  # then "crash"
    kizuna.deliver()
    matching = [t for t in kizuna.connector.tasks if t["ref"] == play.ref]
    assert [t["id"] for t in matching] == [first_id]
    assert kizuna.ledger.get(play.key).task_id == first_id


def test_play_closes_when_its_condition_clears_and_task_is_completed(kizuna: Kizuna) -> None:
    """A meeting logged in the CRM clears 'no contact' and completes the CRM task."""
    first_tick(kizuna)
    play = next(p for p in kizuna.ledger.plays("demo")
                if p.playbook_id == "no_contact_within_cadence")
    kizuna.store.apply_sync("demo", [SyncBatch("test", (Activity(
        "demo", "MEET-1", play.account_id, ActivityKind.MEETING, NOW - timedelta(hours=1),
        "x@example.com", "Report review"),))])
    report = kizuna.tick(sync=False)
    closed = kizuna.ledger.get(play.key)
    assert closed.state == PlayState.CLOSED
    assert report.closed >= 1
    task = next(t for t in kizuna.connector.tasks if t["id"] == closed.task_id)
    assert task["status"] == "completed"


def test_cooldown_then_a_new_episode(kizuna: Kizuna, settings, store, demo_crm) -> None:
    """After a play ends, the same playbook stays quiet for its cooldown, then opens episode 2."""
    first_tick(kizuna)
    play = next(p for p in kizuna.ledger.plays("demo") if p.playbook_id == "low_form_impressions")
    kizuna.ledger.close([play.key], kizuna.today(), state=PlayState.DONE, actor="U1")
    again = kizuna.decide()
    finding = next(f for f in again.findings
                   if f.play_key is None and f.account_id == play.account_id
                   and f.playbook_id == "low_form_impressions")
    assert finding.outcome == "cooldown"
    later = Kizuna(settings, kizuna.rules, store, demo_crm,
                   clock=lambda: NOW + timedelta(days=31))
    keys = [p.key for p in later.decide().new_plays
            if p.account_id == play.account_id and p.playbook_id == "low_form_impressions"]
    assert keys == [play.key.rsplit("/", 1)[0] + "/2"]


def test_drafts_follow_the_account_language(kizuna: Kizuna) -> None:
    """Japanese accounts get a polite Japanese email, English accounts an English one."""
    report = first_tick(kizuna)
    by_lang = Counter(d.language for d in report.delivery.drafts)
    assert by_lang["ja"] and by_lang["en"]
    ja = next(d for d in report.delivery.drafts if d.language == "ja")
    en = next(d for d in report.delivery.drafts if d.language == "en")
    assert "様" in ja.body and "いつもお世話になっております。" in ja.body and "30分" in ja.body
    assert en.body.startswith("Hi ") and "30 minutes" in en.body
    assert ja.subject and en.subject


def test_dry_run_writes_nothing(kizuna: Kizuna) -> None:
    """decide() alone opens no play and touches neither the CRM nor health history."""
    kizuna.sync()
    decisions = kizuna.decide()
    assert decisions.new_plays
    assert kizuna.ledger.plays("demo") == []
    assert kizuna.connector.tasks == []
    assert not kizuna.store.has_health_history("demo")


def test_hostile_account_names_are_escaped_in_nudges(kizuna: Kizuna) -> None:
    """An account named like a Slack control sequence renders as text, not a ping or link."""
    kizuna.sync()
    hostile = "<!channel> & <https://evil.example|click>"
    base = kizuna.store.account("demo", "ACC-00002")
    kizuna.store.apply_sync("demo", [SyncBatch("t", (Account(
        **{**{f: getattr(base, f) for f in base.__slots__}, "name": hostile}),))])
    report = kizuna.tick(sync=False)
    payloads = [n.payload for n in report.delivery.nudges if n.account.crm_id == "ACC-00002"]
    assert payloads
    text = json.dumps([b for p in payloads for b in p["blocks"] if b["type"] != "header"],
                      ensure_ascii=False)
    assert "<!channel>" not in text and "<https://evil.example" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text


def test_times_are_in_the_team_zone(kizuna: Kizuna) -> None:
    """'Today' is the team's calendar day (Tokyo), not the server's UTC day."""
    late_utc = Kizuna(kizuna.settings, kizuna.rules, kizuna.store, kizuna.connector,
                      clock=lambda: datetime(2026, 11, 23, 16, 0, tzinfo=UTC))
    assert str(late_utc.today()) == "2026-11-24"


def test_plays_of_a_deleted_account_close(kizuna: Kizuna) -> None:
    """An account deleted in the CRM stops being nudged and its open plays end."""
    first_tick(kizuna)
    play = kizuna.ledger.plays("demo")[0]
    kizuna.store.apply_sync("demo", [SyncBatch("t", deleted={"accounts": (play.account_id,)})])
    decisions = kizuna.decide()
    assert play.key in {p.key for p in decisions.to_close}
    assert not [p for p in decisions.new_plays if p.account_id == play.account_id]
    kizuna.apply(decisions)
    assert kizuna.ledger.get(play.key).state == PlayState.CLOSED
