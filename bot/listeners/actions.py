"""Buttons on nudges and lists: create task, draft email, snooze, done, not useful, open, pick.

Each handler acknowledges first, then changes the ledger, then redraws the message that was
clicked (and the original nudge) to show who did what. A second click finds nothing to change
— the ledger only moves plays out of an active state once — and says so to the clicker alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.blocks import (
    ACTION_CREATE_TASK,
    ACTION_DONE,
    ACTION_DRAFT,
    ACTION_NOT_USEFUL,
    ACTION_OPEN,
    ACTION_PICK,
    ACTION_SNOOZE,
    MAX_VIEW_BLOCKS,
    email_modal,
    limit_blocks,
    plain,
    snooze_modal,
)
from bot.listeners.commands import card_answer
from bot.text import tr
from core.domain import Play, PlayState
from core.ledger import Action

if TYPE_CHECKING:
    from bot.app import SlackBot

VIEW_CARD = "kizuna_card"


@dataclass(frozen=True)
class Where:
    """The surface a button was clicked on, kept in modals' private_metadata to redraw it."""

    ref: str
    channel: str | None = None
    ts: str | None = None
    ephemeral: bool = False
    response_url: str | None = None
    view_id: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any], ref: str) -> Where:
        container = body.get("container") or {}
        view_id = container.get("view_id") if container.get("type") == "view" else None
        return cls(ref=ref,
                   channel=container.get("channel_id") or (body.get("channel") or {}).get("id"),
                   ts=container.get("message_ts") or (body.get("message") or {}).get("ts"),
                   ephemeral=bool(container.get("is_ephemeral")),
                   response_url=body.get("response_url"), view_id=view_id)

    @classmethod
    def load(cls, text: str) -> Where:
        data = json.loads(text or "{}")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def meta(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


def card_modal(payload: dict[str, Any], language: str) -> dict[str, Any]:
    """A play's card in a modal (opened from the Home tab, where there is no message)."""
    return {"type": "modal", "callback_id": VIEW_CARD, "title": plain("Kizuna", 24),
            "close": plain(tr("cancel", language), 24),
            "blocks": limit_blocks(list(payload["blocks"]), language, MAX_VIEW_BLOCKS)}


def show(bot: SlackBot, play: Play, note: str, where: Where) -> None:
    """Redraw the clicked surface and the original nudge with the play's new state."""
    if where.view_id:
        payload = bot.kizuna.nudge_payload(play, bot.kizuna.account_of(play), note=note)
        bot.calls("views_update", view_id=where.view_id, view=card_modal(payload, bot.language))
    bot.redraw(play, note, channel=None if where.view_id else where.channel,
               ts=None if where.view_id else where.ts, ephemeral=where.ephemeral,
               response_url=where.response_url)


def again(bot: SlackBot, action: Action, key: str, **values: Any) -> str:
    """What a second click says: the play already got that outcome (or ended otherwise)."""
    play = action.play
    language = bot.language
    by_people = {PlayState.DONE: "again_done", PlayState.DISMISSED: "again_not_useful"}
    if key == "again_snoozed":
        if play.state != PlayState.SNOOZED:
            return tr("again_ended", language, state=tr(f"state_{play.state}", language))
    elif play.state in by_people:
        key = by_people[play.state]
    else:
        return tr("again_ended", language, state=tr(f"state_{play.state}", language))
    return tr(key, language, actor=bot.mention(action.actor), **values)


def register(app: App, bot: SlackBot) -> None:
    kizuna = bot.kizuna

    def finish(body: dict[str, Any], ref: str, *, useful: bool) -> None:
        user = body["user"]["id"]
        actor = bot.actor(user)
        where = Where.of(body, ref)
        play = kizuna.play(ref)
        result = kizuna.done(play.key, actor) if useful else kizuna.not_useful(play.key, actor)
        if result.changed:
            show(bot, result.play, bot.note("note_done" if useful else "note_not_useful", actor),
                 where)
        else:
            bot.tell(user, again(bot, result, "again_done" if useful else "again_not_useful"),
                     response_url=where.response_url, channel=where.channel)

    @app.action(ACTION_DONE)
    def done(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        finish(body, action["value"], useful=True)

    @app.action(ACTION_NOT_USEFUL)
    def not_useful(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        finish(body, action["value"], useful=False)

    @app.action(ACTION_SNOOZE)
    def snooze(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        code, _, ref = action["selected_option"]["value"].partition("|")
        user = body["user"]["id"]
        where = Where.of(body, ref)
        play = kizuna.play(ref)
        today = kizuna.today()
        if code == "date":
            view = snooze_modal(play, kizuna.account_of(play), language=bot.language,
                                initial=today + timedelta(days=7), meta=where.meta())
            method = "views_push" if where.view_id else "views_open"
            bot.calls(method, trigger_id=body["trigger_id"], view=view)
            return
        until = today + timedelta(days=1 if code == "1d" else 7)
        snooze_play(bot, play, until, user, where)

    @app.action(ACTION_CREATE_TASK)
    def create_task(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        user = body["user"]["id"]
        actor = bot.actor(user)
        where = Where.of(body, action["value"])
        result, task_id = kizuna.create_task_now(action["value"], actor)
        if result.changed:
            show(bot, result.play, bot.note("note_task", actor, task_id=task_id), where)
        else:
            bot.tell(user, tr("again_task", bot.language, task_id=task_id),
                     response_url=where.response_url, channel=where.channel)

    @app.action(ACTION_DRAFT)
    def draft(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        where = Where.of(body, action["value"])
        play = kizuna.play(action["value"])
        view = email_modal(play, kizuna.account_of(play), kizuna.email_draft(play.key),
                           language=bot.language, meta=where.meta())
        method = "views_push" if where.view_id else "views_open"
        bot.calls(method, trigger_id=body["trigger_id"], view=view)

    @app.action(ACTION_OPEN)
    def open_play(ack: Ack, body: dict[str, Any], action: dict[str, Any],
                  respond: Respond) -> None:
        ack()
        play = kizuna.play(action["value"])
        payload = kizuna.nudge_payload(play, kizuna.account_of(play), note=state_note(bot, play))
        if body.get("response_url"):
            respond(response_type="ephemeral", replace_original=False, **payload)
        else:  # the Home tab: no message to answer, so the card opens in a modal
            bot.calls("views_open", trigger_id=body["trigger_id"],
                      view=card_modal(payload, bot.language))

    @app.action(ACTION_PICK)
    def pick(ack: Ack, action: dict[str, Any], respond: Respond) -> None:
        ack()
        respond(replace_original=True, **card_answer(bot, action["value"]))


def snooze_play(bot: SlackBot, play: Play, until: Any, user: str, where: Where) -> None:
    actor = bot.actor(user)
    result = bot.kizuna.snooze(play.key, until, actor)
    if result.changed:
        show(bot, result.play, bot.note("note_snoozed", actor, until=until.isoformat()), where)
    else:
        until_text = (result.play.snoozed_until or until).isoformat()
        bot.tell(user, again(bot, result, "again_snoozed", until=until_text),
                 response_url=where.response_url, channel=where.channel)


def state_note(bot: SlackBot, play: Play) -> str | None:
    """How an ended or snoozed play's card says what happened to it."""
    actor = bot.kizuna.ledger.actor(play.key)
    day = (play.closed_on or bot.kizuna.today()).isoformat()
    if play.state == PlayState.DONE:
        return bot.note("note_done", actor, day=day)
    if play.state == PlayState.DISMISSED:
        return bot.note("note_not_useful", actor, day=day)
    if play.state == PlayState.SNOOZED and play.snoozed_until:
        return bot.note("note_snoozed", actor, until=play.snoozed_until.isoformat())
    if play.state == PlayState.CLOSED:
        return tr("note_closed", bot.language)
    return None
