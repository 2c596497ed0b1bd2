"""Block Kit builders: snapshots of every payload, escaping of CRM text, Slack's limits."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from bot.blocks import (
    ACTION_DONE,
    MAX_HEADER,
    account_card,
    email_modal,
    esc,
    help_message,
    limit_blocks,
    mrkdwn,
    no_match,
    nudge_message,
    pick_list,
    play_list,
    render_text,
    section,
    snooze_modal,
)
from bot.digest import CsmWeek, daily_message, weekly_message
from bot.home import Book, home_view
from core.app import AccountCard
from core.domain import (
    Account,
    Activity,
    ActivityKind,
    EmailDraft,
    Play,
    PlayState,
    Severity,
    StepState,
)
from core.ledger import play_ref
from tests.fakes.slack import validate_blocks
from tests.slack_helpers import assert_snapshot

ACCOUNT = Account(source="demo", crm_id="ACC-00001", name="株式会社さくらウェブ制作",
                  owner_email="sato.hanako@example.com", arr=2_400_000.0,
                  renewal_date=date(2027, 3, 31), language="ja")
KEY = "low_form_impressions/demo/ACC-00001/1"
PLAY = Play(
    key=KEY, ref=play_ref(KEY), playbook_id="low_form_impressions", variant=None,
    source="demo", account_id="ACC-00001", episode=1, severity=Severity.HIGH,
    state=PlayState.OPEN, opened_on=date(2026, 11, 24), due_on=date(2026, 11, 27),
    title={"ja": "フォーム表示回数が低下しています", "en": "Form impressions are dropping"},
    reason={"ja": "直近30日のフォーム表示回数が812回で、前の30日から52%減りました。",
            "en": "812 form impressions in the last 30 days, 52% fewer than before."},
    evidence={"facts": {"usage_30d": 812, "usage_drop_pct": 52.3},
              "health": {"score": 38.2, "band": "red", "weak": [
                  {"id": "usage", "label": "フォーム表示回数(30日)", "score": 27.1,
                   "value": 812}]},
              "cell": "high.active", "touch": "high_touch", "potential_band": "high",
              "engagement": "active", "cadence_days": 30},
    task_state=StepState.DONE, task_id="TSK-000001")
LABELS = {"usage_30d": "フォーム表示回数(30日)", "usage_drop_pct": "減少率(%)"}
HOSTILE = ["<!channel>", "<https://evil.example|click>", "<@U0ADMIN1>", "a & b"]


def nudge(play: Play = PLAY, account: Account = ACCOUNT, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"language": "ja", "owner_name": "佐藤 花子", "labels": LABELS,
                               "auto_task": True, **kwargs}
    return nudge_message(play, account, **options)


def mrkdwn_texts(payload: Any) -> list[str]:
    """Every mrkdwn string in a payload, wherever it sits."""
    found: list[str] = []
    if isinstance(payload, dict):
        if payload.get("type") == "mrkdwn":
            found.append(payload["text"])
        for value in payload.values():
            found += mrkdwn_texts(value)
    elif isinstance(payload, list):
        for value in payload:
            found += mrkdwn_texts(value)
    return found


# -- snapshots -----------------------------------------------------------------------------------

def test_nudge_snapshot_japanese() -> None:
    """The Japanese nudge: header, account, owner, portfolio, health, why, evidence, buttons."""
    payload = nudge()
    assert validate_blocks(payload["blocks"]) == []
    assert_snapshot("nudge_ja", payload)


def test_nudge_snapshot_english_with_create_task_button() -> None:
    """A playbook without an automatic task offers *Create CRM task* (English UI)."""
    play = replace(PLAY, task_state=StepState.SKIPPED, task_id=None)
    payload = nudge(play, language="en", owner_name="Hanako Sato", auto_task=False)
    assert next(e.get("action_id") for e in payload["blocks"][-1]["elements"]) == \
        "play_create_task"
    assert_snapshot("nudge_en_create_task", payload)


def test_ended_play_shows_who_did_it_and_loses_its_buttons() -> None:
    """After *Done* the message keeps its content, adds the note and drops the buttons."""
    done = replace(PLAY, state=PlayState.DONE, closed_on=date(2026, 11, 24))
    payload = nudge(done, note=":white_check_mark: <@U0CSM0001> が完了にしました(2026-11-24)")
    assert not [b for b in payload["blocks"] if b["type"] == "actions"]
    assert_snapshot("nudge_done", payload)


def test_account_card_snapshot() -> None:
    """/account's card: fields, recent activity, open plays with *Open* buttons."""
    recent = [Activity(source="demo", crm_id="ACT-1", account_id="ACC-00001",
                       kind=ActivityKind.MEETING, occurred_at=datetime(2026, 11, 2, 5, tzinfo=UTC),
                       subject="Report review <b>")]
    card = AccountCard(ACCOUNT, None, datetime(2026, 11, 2, 5, tzinfo=UTC), [PLAY], recent, [])
    payload = account_card(card, language="ja", owner_name="佐藤 花子", today=date(2026, 11, 24))
    assert validate_blocks(payload["blocks"]) == []
    assert_snapshot("account_card", payload)


def test_pick_list_and_no_match_snapshots() -> None:
    """Several matches give a pick list; none gives a helpful reply naming the query."""
    others = [replace(ACCOUNT, crm_id=f"ACC-0000{i}", name=f"さくら商事 {i}") for i in (2, 3)]
    assert_snapshot("pick_list", pick_list("さくら", [ACCOUNT, *others], "ja"))
    missing = no_match("<!here>", "en")
    assert "&lt;!here&gt;" in missing["text"] and "<!here>" not in missing["text"]
    assert_snapshot("no_match_en", missing)


def test_play_list_and_help_snapshots() -> None:
    """/kizuna due lists plays with overdue marks; /kizuna help explains the commands."""
    overdue = replace(PLAY, key="x/demo/ACC-00001/1", ref=play_ref("x"), due_on=date(2026, 11, 20))
    payload = play_list("対応待ちのプレイ(2 件)", [overdue, PLAY], {"ACC-00001": ACCOUNT.name},
                        "ja", date(2026, 11, 24), empty="なし")
    assert "期限切れ" in payload["blocks"][1]["text"]["text"]
    assert_snapshot("play_list", payload)
    assert_snapshot("help_en", help_message("en"))


def test_email_modal_snapshot() -> None:
    """The draft modal: recipient, editable subject and body, mailto link, Log as sent."""
    draft = EmailDraft(play_key=KEY, account_id="ACC-00001", language="ja", to_name="加藤 拓也",
                       to_email="contact1@example.net",
                       subject="【ご相談】最近のご利用状況について",
                       body="加藤様\n\nいつもお世話になっております。")
    view = email_modal(PLAY, ACCOUNT, draft, language="ja",
                       meta={"ref": PLAY.ref, "channel": "D0001", "ts": "1.000001"})
    assert len(view["title"]["text"]) <= 24 and len(view["submit"]["text"]) <= 24
    assert validate_blocks(view["blocks"], max_blocks=100) == []
    assert json.loads(view["private_metadata"])["ref"] == PLAY.ref
    assert_snapshot("email_modal", view)


def test_email_modal_long_body_keeps_limits() -> None:
    """A body too long for a mailto link passes the subject only and says so."""
    draft = EmailDraft(play_key=KEY, account_id="ACC-00001", language="en", to_name=None,
                       to_email="x@example.net", subject="Hello", body="word " * 2000)
    view = email_modal(PLAY, ACCOUNT, draft, language="en", meta={"ref": PLAY.ref})
    assert validate_blocks(view["blocks"], max_blocks=100) == []
    assert "&body=" not in json.dumps(view["blocks"][3])
    assert "only the subject" in json.dumps(view)


def test_snooze_modal_snapshot() -> None:
    """Snooze until a date: a datepicker starting a week out."""
    view = snooze_modal(PLAY, ACCOUNT, language="en", initial=date(2026, 12, 1),
                        meta={"ref": PLAY.ref})
    assert validate_blocks(view["blocks"], max_blocks=100) == []
    assert_snapshot("snooze_modal", view)


def _book(plays: int) -> Book:
    book = Book(name="佐藤 花子", today=date(2026, 11, 24), accounts=120,
                bands=Counter(green=80, yellow=25, red=10, unknown=5),
                cells=Counter({"high.active": 30, "mid.passive": 50, "low.dormant": 40}),
                names={"ACC-00001": ACCOUNT.name},
                drops=[(ACCOUNT.name, 71.0, 49.0), ("<!channel> Inc.", 80.0, 65.0)])
    for i in range(plays):
        key = f"pb/demo/ACC-00001/{i}"
        book.plays.append(replace(PLAY, key=key, ref=play_ref(key),
                                  due_on=date(2026, 11, 20 + i % 10)))
    return book


def test_home_view_snapshot() -> None:
    """App Home: attention today, counts, portfolio, plays by due date, health drops."""
    view = home_view(_book(3), language="ja", updated="2026-11-24 10:00")
    assert validate_blocks(view["blocks"], max_blocks=100) == []
    assert_snapshot("home", view)


def test_home_view_summarises_beyond_100_blocks() -> None:
    """A huge book still fits Slack's 100 blocks, with '…and N more' instead of the rest."""
    view = home_view(_book(400), language="en", updated="2026-11-24 10:00")
    assert len(view["blocks"]) <= 100
    assert validate_blocks(view["blocks"], max_blocks=100) == []
    assert any("…and 370 more" in t for t in mrkdwn_texts(view))


def test_digest_snapshots() -> None:
    """Daily digest per CSM and the weekly manager digest."""
    daily = daily_message(date(2026, 11, 24), [PLAY], {"ACC-00001": ACCOUNT.name}, language="ja",
                          open_count=7, overdue=2, today=date(2026, 11, 24))
    assert validate_blocks(daily["blocks"]) == []
    assert_snapshot("daily_digest", daily)
    rows = [CsmWeek("佐藤 花子", 40, 6, 12, 3, {"2026-Q4": 1_200_000.0, "2027-Q1": 800_000.0}),
            CsmWeek("<!channel>", 10, 0, 0, 0, {})]
    weekly = weekly_message(date(2026, 11, 23), rows, language="en", currency="JPY")
    assert validate_blocks(weekly["blocks"]) == []
    assert_snapshot("weekly_digest", weekly)


# -- safety ------------------------------------------------------------------------------------

def test_hostile_crm_strings_render_as_text() -> None:
    """Account names and reasons with <!channel>, links and mentions are escaped everywhere."""
    for name in HOSTILE:
        account = replace(ACCOUNT, name=name)
        play = replace(PLAY, reason={"ja": name, "en": name}, title={"ja": name, "en": name},
                       evidence={**PLAY.evidence, "facts": {name: name}})
        payload = nudge(play, account, owner_name=name)
        for text in [*mrkdwn_texts(payload), payload["text"]]:
            assert "<!" not in text and "<http" not in text and "<@" not in text
            assert "& " not in text  # a bare ampersand becomes &amp;
        assert name in render_text(payload)  # the terminal shows the real name


def test_long_crm_strings_are_cut_to_slack_limits() -> None:
    """5,000-char names, 10,000-char reasons and 200 facts still make a valid message."""
    account = replace(ACCOUNT, name="長" * 5000)
    facts = {f"fact_{i}": "&<>" * 40 for i in range(200)}
    play = replace(PLAY, reason={"ja": "理由" * 5000, "en": "x"}, title={"ja": "題" * 400},
                   evidence={**PLAY.evidence, "facts": facts}, key="k" * 255)
    payload = nudge(play, account)
    assert validate_blocks(payload["blocks"]) == []
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) == MAX_HEADER and header.endswith("…")
    assert all(len(t) <= 3000 for t in mrkdwn_texts(payload))
    assert mrkdwn_texts(payload)[1].endswith("…")
    done = next(e for e in payload["blocks"][-1]["elements"] if e.get("action_id") == ACTION_DONE)
    assert done["value"] == play.ref


def test_cut_never_splits_an_escape_or_a_link() -> None:
    """Truncation backs off rather than leave '&am…' or a half '<@U…' in mrkdwn."""
    assert mrkdwn("a" * 2997 + esc("&"), 3000)["text"] == "a" * 2997 + "…"
    assert mrkdwn("a" * 2990 + "<@U0123456>", 3000)["text"] == "a" * 2990 + "…"


def test_limit_blocks_summarises_the_rest() -> None:
    """More than 50 blocks become 49 and a '…ほか N 件' line."""
    blocks = [section(str(i)) for i in range(80)]
    kept = limit_blocks(blocks, "ja")
    assert len(kept) == 50 and kept[-1]["elements"][0]["text"] == "…ほか 31 件"
