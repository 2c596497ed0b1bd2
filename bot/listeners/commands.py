"""Slash commands: ``/account QUERY`` and ``/kizuna help|due|snoozed``.

Every command is acknowledged first (an empty ack shows nothing), then answered through the
``response_url`` — so Slack's 3-second limit holds even when the store is slow or a sync is
writing; the answer comes from the local store, never from the CRM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.blocks import (
    account_card,
    error_message,
    esc,
    help_message,
    no_match,
    pick_list,
    play_list,
)
from bot.text import tr
from core.domain import PlayState
from core.text import search_key

if TYPE_CHECKING:
    from bot.app import SlackBot


def account_answer(bot: SlackBot, query: str) -> dict[str, Any]:
    """The answer to ``/account QUERY``: a card, a short pick list, or a helpful miss."""
    language = bot.language
    kizuna = bot.kizuna
    if not query.strip():
        return no_match(query, language)
    matches = kizuna.find_accounts(query)
    if not matches:
        return no_match(query, language)
    if len(matches) > 1 and search_key(matches[0].name) != search_key(query):
        return pick_list(query, matches, language)
    return card_answer(bot, matches[0].crm_id)


def card_answer(bot: SlackBot, crm_id: str) -> dict[str, Any]:
    kizuna = bot.kizuna
    account = kizuna.store.account(kizuna.source, crm_id)
    if account is None:
        return no_match(crm_id, bot.language)
    owner = kizuna.csm(account.owner_email)
    name = owner["name_en" if bot.language == "en" else "name_ja"]
    labels = {m: label.get(bot.language)
              for m, label in kizuna.rules.evaluator.scorecard.labels.items()}
    return account_card(kizuna.card(account), language=bot.language, owner_name=name,
                        today=kizuna.today(), measure_labels=labels)


def my_plays(bot: SlackBot, user_id: str, state: PlayState) -> dict[str, Any]:
    """``/kizuna due`` and ``/kizuna snoozed``: the caller's plays, by due date."""
    language = bot.language
    email = bot.owners.email_of(user_id)
    if email is None:
        return error_message(tr("who_are_you", language))
    kizuna = bot.kizuna
    plays = kizuna.ledger.owner_plays(kizuna.source, email, states=[state])
    if not plays and not kizuna.owned_accounts(email):
        return error_message(tr("owns_nothing", language, email=esc(email)))
    names = {a.crm_id: a.name for a in kizuna.store.accounts_by_ids(
        kizuna.source, sorted({p.account_id for p in plays})).values()}
    if state == PlayState.SNOOZED:
        plays.sort(key=lambda p: (p.snoozed_until or p.due_on, p.key))
        title, empty = tr("snoozed_title", language, n=len(plays)), tr("snoozed_none", language)
    else:
        title, empty = tr("due_title", language, n=len(plays)), tr("due_none", language)
    return play_list(title, plays, names, language, kizuna.today(), empty=empty)


def register(app: App, bot: SlackBot) -> None:
    @app.command("/account")
    def account(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        ack()
        answer = account_answer(bot, command.get("text") or "")
        respond(response_type="ephemeral", **answer)

    @app.command("/kizuna")
    def kizuna(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        ack()
        text = (command.get("text") or "").strip()
        word = text.split()[0].lower() if text else "help"
        if word in ("due", "期限"):
            answer = my_plays(bot, command["user_id"], PlayState.OPEN)
        elif word in ("snoozed", "スヌーズ"):
            answer = my_plays(bot, command["user_id"], PlayState.SNOOZED)
        elif word in ("help", "ヘルプ"):
            answer = help_message(bot.language)
        else:
            answer = help_message(bot.language,
                                  tr("unknown_command", bot.language, text=esc(text)))
        respond(response_type="ephemeral", **answer)
