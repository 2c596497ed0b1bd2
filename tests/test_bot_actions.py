"""Buttons and modals through signed requests: each action, double clicks, errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.demo import OWNERS
from core.domain import PlayState, StepState
from core.ledger import play_ref
from playbooks.catalog import BUILTIN
from tests.fakes.slack import FakeSlack, validate_blocks
from tests.slack_helpers import TODAY, Rig, button_of, in_days, make_rig, option


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def rig(tmp_path: Path, fake: FakeSlack) -> Rig:
    rig = make_rig(tmp_path, fake)
    rig.kizuna.tick(sync=False)
    return rig


def first_nudge(rig: Rig, email: str = OWNERS[0][0]) -> tuple[str, dict[str, Any]]:
    """(owner's user id, the first nudge in their DM)."""
    user = rig.users[email]
    message = next(m for m in rig.fake.messages(user) if (m.get("metadata") or {}).get(
        "event_type") == "kizuna_nudge")
    return user, message


def dm(rig: Rig, user: str) -> str:
    channel = rig.fake.dm_channel_id(user)
    assert channel is not None
    return channel


def stored(rig: Rig, user: str, ts: str) -> dict[str, Any]:
    return next(m for m in rig.fake.messages(user) if m["ts"] == ts)


def ref_of(message: dict[str, Any]) -> str:
    return message["metadata"]["event_payload"]["ref"]


def has_buttons(message: dict[str, Any]) -> bool:
    return any(b["type"] == "actions" for b in message["blocks"])


def test_done_updates_ledger_and_message_and_a_second_click_says_so(rig: Rig) -> None:
    """Done ends the play as done by the clicker, redraws the DM; clicking again changes nothing."""
    user, message = first_nudge(rig)
    click = {**button_of(message, "play_done"), "type": "button"}
    response, url = rig.click(click, user=user, message=message, channel=dm(rig, user))
    assert response.status == 200
    play = rig.kizuna.play(ref_of(message))
    assert play.state == PlayState.DONE and rig.kizuna.ledger.actor(play.key) == f"slack:{user}"
    after = stored(rig, user, message["ts"])
    assert f"<@{user}>" in json.dumps(after, ensure_ascii=False) and not has_buttons(after)
    assert validate_blocks(after["blocks"]) == []
    updates = len(rig.fake.calls_to("chat.update"))
    _, url = rig.click(click, user=user, message=message, channel=dm(rig, user))
    assert len(rig.fake.calls_to("chat.update")) == updates
    (reply,) = rig.fake.responses(url)
    assert reply["response_type"] == "ephemeral" and f"<@{user}>" in reply["text"]
    assert [e["action"] for e in rig.kizuna.ledger.events(play.key)] == ["done"]


def test_not_useful_is_recorded_against_the_playbook(rig: Rig) -> None:
    """Not useful dismisses the play and counts for its playbook's precision."""
    user, message = first_nudge(rig)
    play = rig.kizuna.play(ref_of(message))
    rig.click({**button_of(message, "play_not_useful"), "type": "button"}, user=user,
              message=message, channel=dm(rig, user))
    assert rig.kizuna.play(play.key).state == PlayState.DISMISSED
    assert rig.kizuna.ledger.feedback("demo")[play.playbook_id]["dismissed"] == 1
    assert [e["action"] for e in rig.kizuna.ledger.events(play.key)] == ["not_useful"]
    _, url = rig.click({**button_of(message, "play_done"), "type": "button"}, user=user,
                       message=message, channel=dm(rig, user))
    assert rig.kizuna.play(play.key).state == PlayState.DISMISSED  # a late Done changes nothing
    assert "not useful" in rig.fake.responses(url)[0]["text"] or \
        "役に立たない" in rig.fake.responses(url)[0]["text"]


@pytest.mark.parametrize(("code", "days"), [("1d", 1), ("1w", 7)])
def test_snooze_for_a_day_or_a_week(rig: Rig, code: str, days: int) -> None:
    """Snooze hides the play until the chosen day; the same snooze again changes nothing."""
    user, message = first_nudge(rig)
    rig.click(option(message, "play_snooze", code), user=user, message=message,
              channel=dm(rig, user))
    play = rig.kizuna.play(ref_of(message))
    assert play.state == PlayState.SNOOZED and play.snoozed_until == in_days(days)
    after = stored(rig, user, message["ts"])
    assert in_days(days).isoformat() in json.dumps(after, ensure_ascii=False)
    assert has_buttons(after)  # a snoozed play can still be marked done
    _, url = rig.click(option(message, "play_snooze", code), user=user, message=message,
                       channel=dm(rig, user))
    assert in_days(days).isoformat() in rig.fake.responses(url)[0]["text"]
    assert [e["action"] for e in rig.kizuna.ledger.events(play.key)] == ["snoozed"]


def test_snooze_until_a_date_through_the_modal(rig: Rig) -> None:
    """'Until a date…' opens a datepicker; a past date is refused in the modal; a future one
    snoozes and redraws the original message."""
    user, message = first_nudge(rig)
    rig.click(option(message, "play_snooze", "date"), user=user, message=message,
              channel=dm(rig, user))
    (opened,) = rig.fake.calls_to("views.open")
    view = opened.response["view"]
    assert view["callback_id"] == "kizuna_snooze"
    refused = rig.submit(view, {"until": {"type": "datepicker",
                                          "selected_date": TODAY.isoformat()}}, user=user)
    body = json.loads(refused.body)
    assert body["response_action"] == "errors" and "until" in body["errors"]
    assert rig.kizuna.play(ref_of(message)).state == PlayState.OPEN
    until = in_days(20)
    assert rig.submit(view, {"until": {"type": "datepicker",
                                       "selected_date": until.isoformat()}}, user=user).status \
        == 200
    play = rig.kizuna.play(ref_of(message))
    assert (play.state, play.snoozed_until) == (PlayState.SNOOZED, until)
    assert until.isoformat() in json.dumps(stored(rig, user, message["ts"]), ensure_ascii=False)


def test_draft_email_modal_and_log_as_sent(rig: Rig) -> None:
    """Draft email shows the ledger's draft in the account's language; Log as sent writes one
    completed CRM task and a local email activity, and says so; logging again adds nothing."""
    user, message = first_nudge(rig)
    play = rig.kizuna.play(ref_of(message))
    draft = rig.kizuna.ledger.draft(play.key)
    account = rig.kizuna.account_of(play)
    assert draft is not None and draft.language == account.language
    _, url = rig.click({**button_of(message, "play_draft_email"), "type": "button"}, user=user,
                       message=message, channel=dm(rig, user))
    (opened,) = rig.fake.calls_to("views.open")
    view = opened.response["view"]
    fields = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert fields["subject"]["initial_value"] == draft.subject
    assert fields["body"]["initial_value"] == draft.body
    assert "mailto:" in json.dumps(view)
    tasks_before = len(rig.crm.tasks)
    values = {"subject": {"type": "plain_text_input", "value": "Edited: " + draft.subject},
              "body": {"type": "plain_text_input", "value": draft.body + "\nPS"}}
    assert rig.submit(view, values, user=user).status == 200
    logged = [t for t in rig.crm.tasks if t["ref"] == play_ref(f"{play.key}#email")]
    assert len(logged) == 1 and logged[0]["status"] == "completed"
    assert logged[0]["subject"].startswith("Edited: ") and logged[0]["body"].endswith("PS")
    recent = rig.store.recent_activities("demo", play.account_id)
    assert recent[0].crm_id == f"kizuna-{logged[0]['ref']}" and recent[0].kind == "email"
    assert logged[0]["id"] in rig.fake.responses(url)[0]["text"]
    assert ":email:" in json.dumps(stored(rig, user, message["ts"]))
    rig.submit(view, values, user=user)
    assert len(rig.crm.tasks) == tasks_before + 1


def test_create_task_button_when_the_playbook_does_not_create_one(tmp_path: Path,
                                                                  fake: FakeSlack) -> None:
    """A playbook with crm_task: false offers the button; it creates the task once."""
    folder = tmp_path / "playbooks"
    folder.mkdir()
    for name in ("qbr_due", "low_form_impressions", "no_contact_within_cadence",
                 "health_drop"):
        text = (BUILTIN / f"{name}.yaml").read_text(encoding="utf-8")
        (folder / f"{name}.yaml").write_text(text + "actions: {crm_task: false}\n",
                                             encoding="utf-8")
    rig = make_rig(tmp_path, fake, playbooks={"folder": folder})
    rig.kizuna.tick(sync=False)
    user, message = next((u, m) for u in rig.users.values() for m in fake.messages(u)
                         if any(e.get("action_id") == "play_create_task"
                                for b in m["blocks"] for e in b.get("elements", [])))
    play = rig.kizuna.play(ref_of(message))
    assert play.task_state == StepState.SKIPPED
    click = {**button_of(message, "play_create_task"), "type": "button"}
    rig.click(click, user=user, message=message, channel=dm(rig, user))
    play = rig.kizuna.play(play.key)
    assert play.task_state == StepState.DONE and play.task_id
    assert [t["id"] for t in rig.crm.tasks if t["ref"] == play.ref] == [play.task_id]
    after = stored(rig, user, message["ts"])
    assert play.task_id in json.dumps(after) and "play_create_task" not in json.dumps(after)
    _, url = rig.click(click, user=user, message=message, channel=dm(rig, user))
    assert play.task_id in rig.fake.responses(url)[0]["text"]
    assert [t["id"] for t in rig.crm.tasks if t["ref"] == play.ref] == [play.task_id]


def test_open_shows_the_card_and_acting_there_updates_the_original_nudge(rig: Rig) -> None:
    """Open (from a list) answers with the full card; Done on it redraws both messages."""
    user, message = first_nudge(rig)
    ref = ref_of(message)
    _, url = rig.click({"action_id": "play_open", "type": "button", "value": ref}, user=user,
                       channel="C0LIST", ephemeral=True)
    (card,) = rig.fake.responses(url)
    assert card["response_type"] == "ephemeral" and has_buttons(card)
    _, url = rig.click({**button_of(card, "play_done"), "type": "button"}, user=user,
                       channel="C0LIST", ephemeral=True, message={"ts": "1.000001"})
    (redrawn,) = rig.fake.responses(url)
    assert redrawn["replace_original"] is True and not has_buttons(redrawn)
    assert not has_buttons(stored(rig, user, message["ts"]))


def test_open_from_the_home_tab_opens_a_modal(rig: Rig) -> None:
    """Home tab buttons have no message to answer: the card opens in a modal."""
    user, message = first_nudge(rig)
    home = {"id": "V0HOME", "type": "home", "blocks": []}
    rig.click({"action_id": "play_open", "type": "button", "value": ref_of(message)}, user=user,
              view=home)
    (opened,) = rig.fake.calls_to("views.open")
    assert opened.ok and opened.args["view"]["type"] == "modal"


def test_unknown_play_gets_a_short_not_found_reply(rig: Rig) -> None:
    """A button for a play the ledger does not know answers only the clicker, briefly."""
    user, _ = first_nudge(rig)
    _, url = rig.click({"action_id": "play_done", "type": "button",
                        "value": "kz-0000000000000000"}, user=user, channel="C0X")
    (reply,) = rig.fake.responses(url)
    assert reply["response_type"] == "ephemeral" and "kz-0000000000000000" in reply["text"]


def test_unexpected_error_is_logged_with_a_reference_shown_to_the_user(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A surprise failure: the log has the traceback and a ref; the user gets only the ref."""
    user, _ = first_nudge(rig)
    broken = {"type": "modal", "callback_id": "kizuna_email", "private_metadata": "{not json",
              "id": "V0BROKEN"}
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        rig.submit(broken, {}, user=user)
    (record,) = [r for r in caplog.records if r.name == "bot.errors"]
    ref = record.args[0]
    assert record.exc_info is not None
    (dm_reply,) = [m for m in rig.fake.messages(user) if ref in m.get("text", "")]
    assert "Traceback" not in dm_reply["text"]


def test_snoozed_play_returns_to_the_ledger_as_open_the_next_day(rig: Rig) -> None:
    """Snooze for one day, then on that day the tick reopens and re-sends it once."""
    user, message = first_nudge(rig)
    rig.click(option(message, "play_snooze", "1d"), user=user, message=message,
              channel=dm(rig, user))
    rig.clock.now += timedelta(days=1)
    rig.kizuna.deliver()
    play = rig.kizuna.play(ref_of(message))
    assert play.state == PlayState.OPEN
    assert len([m for m in rig.fake.messages(user)
                if m.get("metadata") and ref_of(m) == play.ref]) == 2
