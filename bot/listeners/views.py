"""Modal submissions: *Log as sent* on the drafted email, and *Snooze* until a chosen date."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from bot.blocks import VIEW_EMAIL, VIEW_SNOOZE
from bot.listeners.actions import Where, show, snooze_play
from bot.text import tr

if TYPE_CHECKING:
    from bot.app import SlackBot


def _value(view: dict[str, Any], block: str) -> Any:
    element = (view.get("state") or {}).get("values", {}).get(block, {}).get(block, {})
    return element.get("value") if "value" in element else element.get("selected_date")


def register(app: App, bot: SlackBot) -> None:
    kizuna = bot.kizuna

    @app.view(VIEW_SNOOZE)
    def snooze(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        chosen = _value(view, "until")
        until = date.fromisoformat(chosen) if chosen else None
        if until is None or until <= kizuna.today():
            ack(response_action="errors", errors={"until": tr("snooze_past", bot.language)})
            return
        ack()
        where = Where.load(view.get("private_metadata", ""))
        snooze_play(bot, kizuna.play(where.ref), until, body["user"]["id"], where)

    @app.view(VIEW_EMAIL)
    def log_sent(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        ack()
        user = body["user"]["id"]
        actor = bot.actor(user)
        where = Where.load(view.get("private_metadata", ""))
        play = kizuna.play(where.ref)
        subject = (_value(view, "subject") or "").strip()
        text = _value(view, "body") or ""
        task_id = kizuna.log_email_sent(play.key, subject, text, actor)
        show(bot, kizuna.play(play.key), bot.note("note_email", actor), where)
        bot.tell(user, tr("email_logged", bot.language, task_id=task_id),
                 response_url=where.response_url, channel=where.channel)
