"""Pure Block Kit builders: domain objects in, Slack payload dicts out.

Every CRM-sourced string goes through ``esc`` before it is placed in mrkdwn, so an account named
``<!channel>`` renders as text; every text is cut to Slack's limits with an ellipsis, and a
surface with more blocks than Slack allows is summarised ("…and 12 more").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from bot.text import tr
from core.domain import Account, Activity, EmailDraft, Play, PlayState, StepState
from core.text import truncate

MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 3000
MAX_FIELD = 2000
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_VALUE = 2000
MAX_URL = 3000
MAX_MODAL_TITLE = 24
MAX_METADATA = 3000
MAX_INPUT = 3000
MAX_FALLBACK = 4000  # message ``text`` shown in notifications; Slack truncates past 40,000

ACTION_CREATE_TASK = "play_create_task"
ACTION_DRAFT = "play_draft_email"
ACTION_SNOOZE = "play_snooze"
ACTION_DONE = "play_done"
ACTION_NOT_USEFUL = "play_not_useful"
ACTION_OPEN = "play_open"
ACTION_PICK = "account_pick"
VIEW_EMAIL = "kizuna_email"
VIEW_SNOOZE = "kizuna_snooze"
NUDGE_EVENT = "kizuna_nudge"

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


# -- primitives ----------------------------------------------------------------------------------

def esc(text: object) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    """Cut mrkdwn with an ellipsis, never inside an ``&amp;`` entity or a ``<…>`` link."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 0)]
    amp, semi = head.rfind("&"), head.rfind(";")
    if amp > semi and len(head) - amp <= 5:
        head = head[:amp]
    lt, gt = head.rfind("<"), head.rfind(">")
    if lt > gt:
        head = head[:lt]
    return head + "…"


def mrkdwn(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text, limit) or " "}


def plain(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text), **extra}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(text)]}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": plain(text, MAX_HEADER)}


def mention(actor: str | None, language: str) -> str:
    """``slack:U123`` (how the ledger records a Slack user) as a mention, else plain text."""
    if actor and actor.startswith("slack:") and _USER_ID.match(actor[6:]):
        return f"<@{actor[6:]}>"
    return esc(actor) if actor else tr("someone", language)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    return str(value)


def button(text: str, action_id: str, value: str, style: str | None = None,
           url: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text, MAX_BUTTON_TEXT),
                               "action_id": action_id[:255], "value": truncate(value, MAX_VALUE)}
    if style:
        element["style"] = style
    if url:
        element["url"] = url
    return element


def limit_blocks(blocks: list[dict[str, Any]], language: str,
                 limit: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """At most ``limit`` blocks; what does not fit is summarised in a last context line."""
    if len(blocks) <= limit:
        return blocks
    kept = blocks[: limit - 1]
    return [*kept, context(tr("more", language, n=len(blocks) - len(kept)))]


# -- nudges --------------------------------------------------------------------------------------

def health_line(evidence: Mapping[str, Any], language: str) -> str:
    health = evidence.get("health") or {}
    score, band = health.get("score"), health.get("band")
    if score is None:
        return f"*{tr('health', language)}:* {tr('health_unknown', language)}"
    line = f"*{tr('health', language)}:* {score:.0f} ({tr(band or 'unknown', language)})"
    weak = health.get("weak") or []
    if weak:
        parts = [f"{esc(w['label'])} {w['score']:.0f}" for w in weak]
        line += f" — {tr('pulled_down', language)}: " + ", ".join(parts)
    return line


def segment_line(evidence: Mapping[str, Any], language: str) -> str:
    touch = evidence.get("touch")
    if not touch:
        return ""
    band = evidence.get("potential_band", "")
    return (f"*{tr('segment', language)}:* {tr(touch, language)} · "
            f"{tr('potential_band', language, band=esc(band))} · "
            f"{tr(evidence.get('engagement', 'passive'), language)} · "
            f"{tr('cadence', language, days=evidence.get('cadence_days', '—'))}")


_WORDS = ("green", "yellow", "red", "high_touch", "low_touch", "tech_touch", "active",
          "passive", "dormant")


def evidence_fields(evidence: Mapping[str, Any], labels: Mapping[str, str],
                    language: str = "en") -> list[str]:
    """The evidence numbers as "label: *value*"; band and segment words in the reader's language."""
    facts = evidence.get("facts") or {}
    return [f"{esc(labels.get(name, name))}: "
            f"*{esc(tr(value, language) if value in _WORDS else _num(value))}*"
            for name, value in facts.items()]


def play_title(play: Play, language: str) -> str:
    return play.title.get(language) or play.title.get("ja") or play.playbook_id


def nudge_message(play: Play, account: Account, *, language: str, owner_name: str | None,
                  labels: Mapping[str, str], auto_task: bool,
                  note: str | None = None) -> dict[str, Any]:
    """The DM a CSM receives for one play: what, for whom, why, the numbers, and buttons.

    ``note`` (already mrkdwn) says who did what; an ended play keeps its text but loses its
    buttons, so the message itself shows the outcome.
    """
    title = play_title(play, language)
    reason = play.reason.get(language) or play.reason.get("ja", "")
    severity = tr(f"severity_{play.severity}", language)
    lines = [f"*{tr('account', language)}:* {esc(account.name)}"]
    if owner_name:
        lines.append(f"*{tr('owner', language)}:* {esc(owner_name)}")
    segment = segment_line(play.evidence, language)
    if segment:
        lines.append(segment)
    lines.append(health_line(play.evidence, language))
    blocks: list[dict[str, Any]] = [
        header(f"{title} — {account.name}"),
        section("\n".join(lines)),
        section(f"*{tr('why', language)}:* {esc(reason)}"),
    ]
    fields = evidence_fields(play.evidence, labels, language)
    if fields:
        blocks.append(context(" · ".join(fields)))
    status = f"{severity} · *{tr('due', language)}:* {play.due_on.isoformat()}"
    if play.task_state in (StepState.DONE, StepState.COMPLETED):
        status += f" · :white_check_mark: {tr('task_created', language)}"
    blocks.append(context(status))
    if note:
        blocks.append(context(note))
    if play.state.active:
        blocks.append({"type": "actions", "block_id": f"play:{play.ref}",
                       "elements": _play_buttons(play, language, auto_task)})
    text = truncate(esc(f"{title}: {account.name} — {reason}"), MAX_FALLBACK)
    return {"text": text, "blocks": blocks[:MAX_BLOCKS]}


def _play_buttons(play: Play, language: str, auto_task: bool) -> list[dict[str, Any]]:
    ref = play.ref
    buttons = []
    if not auto_task and play.task_state not in (StepState.DONE, StepState.COMPLETED):
        buttons.append(button(tr("btn_create_task", language), ACTION_CREATE_TASK, ref,
                              "primary"))
    buttons.append(button(tr("btn_draft", language), ACTION_DRAFT, ref))
    options = [("1d", "snooze_1d"), ("1w", "snooze_1w"), ("date", "snooze_date")]
    buttons.append({
        "type": "overflow", "action_id": ACTION_SNOOZE,
        "options": [{"text": plain(tr(label, language), 75),
                     "value": truncate(f"{code}|{ref}", MAX_OPTION_VALUE)}
                    for code, label in options],
    })
    buttons.append(button(tr("btn_done", language), ACTION_DONE, ref))
    buttons.append(button(tr("btn_not_useful", language), ACTION_NOT_USEFUL, ref, "danger"))
    return buttons


def plain_nudge(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A stripped-down nudge for when Slack rejects the full one: its text and its buttons."""
    blocks = [section(str(payload.get("text") or " "))]
    blocks += [b for b in payload.get("blocks", []) if b.get("type") == "actions"]
    return {"text": payload.get("text") or " ", "blocks": blocks}


def nudge_metadata(ref: str, marker: str) -> dict[str, Any]:
    """Message metadata that lets Kizuna find its own post again after a crash."""
    return {"event_type": NUDGE_EVENT, "event_payload": {"ref": ref, "marker": marker}}


# -- lists of plays ------------------------------------------------------------------------------

def play_line(play: Play, account_name: str, language: str, today: date) -> str:
    due = play.due_on.isoformat()
    if play.state == PlayState.SNOOZED and play.snoozed_until:
        when = tr("until", language, day=play.snoozed_until.isoformat())
    elif play.due_on < today:
        when = f"*{tr('due', language)}: {due}* ({tr('overdue', language)})"
    else:
        when = f"{tr('due', language)}: {due}"
    return f"*{esc(play_title(play, language))}* — {esc(account_name)}\n{when}"


def play_list(title: str, plays: Sequence[Play], names: Mapping[str, str], language: str,
              today: date, *, empty: str, limit: int = 20) -> dict[str, Any]:
    """A short list of plays, each with an *Open* button that shows its full card."""
    if not plays:
        return {"text": empty, "blocks": [section(empty)]}
    blocks: list[dict[str, Any]] = [section(f"*{esc(title)}*")]
    for play in plays[:limit]:
        blocks.append(section(play_line(play, names.get(play.account_id, play.account_id),
                                        language, today),
                              block_id=f"open:{play.ref}",
                              accessory=button(tr("btn_open", language), ACTION_OPEN, play.ref)))
    if len(plays) > limit:
        blocks.append(context(tr("more", language, n=len(plays) - limit)))
    return {"text": title, "blocks": limit_blocks(blocks, language)}


# -- /account ------------------------------------------------------------------------------------

def _activity_line(activity: Activity, language: str) -> str:
    subject = f": {esc(activity.subject)}" if activity.subject else ""
    kind = tr(f"kind_{activity.kind}", language)
    return f"{activity.occurred_at.date().isoformat()} {kind}{subject}"


def account_card(card: Any, *, language: str, owner_name: str, today: date,
                 measure_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``/account``'s answer: the card of ``kizuna account`` with open plays to act on."""
    a: Account = card.account
    data = card.as_dict(language)
    health = data["health"] or {}
    portfolio = data["portfolio"] or {}
    if health.get("score") is not None:
        band = tr(health.get("band") or "unknown", language)
        health_text = f"{health['score']:.0f} ({band})"
    else:
        health_text = tr("health_unknown", language)
    touch = portfolio.get("touch")
    portfolio_text = (f"{tr(touch, language)} · {esc(portfolio.get('cell'))} · "
                      f"{tr('cadence', language, days=portfolio.get('cadence_days'))}"
                      if touch else "—")
    usage = data["usage_30d"]
    fields = [
        f"*{tr('owner', language)}*\n{esc(owner_name)}",
        f"*{tr('health', language)}*\n{health_text}",
        f"*{tr('segment', language)}*\n{portfolio_text}",
        f"*{tr('renewal', language)}*\n{data['renewal_date'] or '—'}",
        f"*{tr('arr', language)}*\n{_num(a.arr)}",
        f"*{tr('last_touch', language)}*\n"
        f"{(data['last_touch'] or '')[:10] or tr('none_on_record', language)}",
        f"*{tr('usage_30d', language)}*\n"
        f"{_num(usage) if usage is not None else tr('no_data', language)}",
    ]
    blocks: list[dict[str, Any]] = [
        header(f"{a.name} ({a.crm_id})"),
        {"type": "section", "fields": [mrkdwn(f, MAX_FIELD) for f in fields]},
    ]
    evaluation = card.evaluation
    if evaluation is not None and evaluation.health.pulled_down_by():
        labels = measure_labels or {}
        weak = ", ".join(f"{esc(labels.get(m.id, m.id))} {m.score:.0f}"
                         for m in evaluation.health.pulled_down_by())
        blocks.append(context(f"{tr('pulled_down', language)}: {weak}"))
    if card.recent:
        lines = "\n".join(_activity_line(r, language) for r in card.recent)
        blocks.append(section(f"*{tr('recent_activity', language)}*\n{lines}"))
    blocks.append({"type": "divider"})
    if card.open_plays:
        blocks.append(section(f"*{tr('open_plays', language)}*"))
        for play in card.open_plays[:10]:
            blocks.append(section(play_line(play, a.name, language, today),
                                  block_id=f"open:{play.ref}",
                                  accessory=button(tr("btn_open", language), ACTION_OPEN,
                                                   play.ref)))
        if len(card.open_plays) > 10:
            blocks.append(context(tr("more", language, n=len(card.open_plays) - 10)))
    else:
        blocks.append(context(tr("no_open_plays", language)))
    return {"text": esc(a.name), "blocks": limit_blocks(blocks, language)}


def pick_list(query: str, accounts: Sequence[Account], language: str) -> dict[str, Any]:
    """Several close matches: a short list to pick from."""
    text = tr("several", language, query=esc(query), n=len(accounts))
    blocks: list[dict[str, Any]] = [section(text)]
    for a in accounts[:10]:
        blocks.append(section(f"*{esc(a.name)}* ({esc(a.crm_id)})", block_id=f"pick:{a.crm_id}",
                              accessory=button(tr("btn_show", language), ACTION_PICK,
                                               a.crm_id)))
    return {"text": text, "blocks": blocks}


def no_match(query: str, language: str) -> dict[str, Any]:
    text = tr("no_match", language, query=esc(query)) if query.strip() \
        else tr("account_usage", language)
    return {"text": text, "blocks": [section(text)]}


def help_message(language: str, prefix: str | None = None) -> dict[str, Any]:
    text = tr("help", language)
    if prefix:
        text = f"{prefix}\n{text}"
    return {"text": text, "blocks": [section(text)]}


def error_message(text: str) -> dict[str, Any]:
    return {"text": text, "blocks": [section(text)]}


# -- modals --------------------------------------------------------------------------------------

def _metadata(meta: Mapping[str, Any]) -> str:
    text = json.dumps(dict(meta), ensure_ascii=False, separators=(",", ":"))
    if len(text) > MAX_METADATA:  # response_url and such are optional: drop them, keep the ref
        text = json.dumps({"ref": meta["ref"]}, separators=(",", ":"))
    return text


def mailto(to: str | None, subject: str, body: str, limit: int = MAX_URL) -> tuple[str, bool]:
    """A mailto link with the draft; when too long for Slack, the subject only."""
    address = quote(to or "", safe="@")
    url = f"mailto:{address}?subject={quote(subject, safe='')}&body={quote(body, safe='')}"
    if len(url) <= limit:
        return url, True
    return f"mailto:{address}?subject={quote(subject[:200], safe='')}", False


def email_modal(play: Play, account: Account, draft: EmailDraft, *, language: str,
                meta: Mapping[str, Any]) -> dict[str, Any]:
    """The drafted email, editable, with a mail-app link and *Log as sent* as the submit."""
    to = (f"{esc(draft.to_name or '')} &lt;{esc(draft.to_email)}&gt;" if draft.to_email
          else tr("no_recipient", language))
    label = tr("open_mail", language)
    url, whole = mailto(draft.to_email, draft.subject, draft.body,
                        limit=MAX_TEXT - len(label) - 8)
    blocks: list[dict[str, Any]] = [
        section(f"*{esc(play_title(play, draft.language))}* — {esc(account.name)}\n"
                f"*{tr('to', language)}:* {to}"),
        {"type": "input", "block_id": "subject", "label": plain(tr("subject", language), 2000),
         "element": {"type": "plain_text_input", "action_id": "subject", "max_length": 500,
                     "initial_value": truncate(draft.subject, 500)}},
        {"type": "input", "block_id": "body", "label": plain(tr("body", language), 2000),
         "element": {"type": "plain_text_input", "action_id": "body", "multiline": True,
                     "max_length": MAX_INPUT, "initial_value": truncate(draft.body, MAX_INPUT)}},
        section(f":email: <{url}|{label}>"),
        context(tr("email_hint", language)),
    ]
    if not whole:
        blocks.append(context(tr("mailto_cut", language)))
    return {
        "type": "modal", "callback_id": VIEW_EMAIL,
        "title": plain(tr("modal_email", language), MAX_MODAL_TITLE),
        "submit": plain(tr("log_sent", language), MAX_MODAL_TITLE),
        "close": plain(tr("cancel", language), MAX_MODAL_TITLE),
        "private_metadata": _metadata(meta), "blocks": blocks,
    }


def snooze_modal(play: Play, account: Account, *, language: str, initial: date,
                 meta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": VIEW_SNOOZE,
        "title": plain(tr("modal_snooze", language), MAX_MODAL_TITLE),
        "submit": plain(tr("btn_snooze", language), MAX_MODAL_TITLE),
        "close": plain(tr("cancel", language), MAX_MODAL_TITLE),
        "private_metadata": _metadata(meta),
        "blocks": [
            section(f"*{esc(play_title(play, language))}* — {esc(account.name)}"),
            {"type": "input", "block_id": "until", "label": plain(tr("snooze_until", language)),
             "element": {"type": "datepicker", "action_id": "until",
                         "initial_date": initial.isoformat()}},
        ],
    }


# -- terminal ------------------------------------------------------------------------------------

def render_text(payload: Mapping[str, Any]) -> str:
    """A terminal rendering of a Block Kit message, for the demo and previews."""
    out: list[str] = []
    for block in payload.get("blocks", []):
        kind = block["type"]
        if kind == "header":
            out.append(f"■ {block['text']['text']}")
        elif kind == "section":
            if "text" in block:
                out.append(block["text"]["text"])
            for f in block.get("fields", []):
                out.append(f["text"].replace("\n", ": ", 1))
        elif kind == "context":
            out.append("  " + " ".join(e.get("text", "") for e in block["elements"]))
        elif kind == "actions":
            labels = [f"[{e['text']['text']}]" if e["type"] == "button" else "[⋯]"
                      for e in block["elements"]]
            out.append(" ".join(labels))
        elif kind == "divider":
            out.append("─" * 20)
    return _unescape("\n".join(out))


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def due_label(day: date, language: str) -> str:
    return f"{tr('due', language)}: {day.isoformat()}"


def local_stamp(moment: datetime, tz: Any) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
