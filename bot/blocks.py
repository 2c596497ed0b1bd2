"""Pure Block Kit builders: domain objects in, Slack payload dicts out.

Every CRM-sourced string goes through ``esc`` before it is placed in mrkdwn, so an account named
``<!channel>`` renders as text; every text is cut to Slack's limits with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from bot.text import tr
from core.domain import Account, Play, StepState
from core.text import truncate

MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_VALUE = 2000
MAX_FALLBACK = 4000  # message ``text`` shown in notifications; Slack truncates past 40,000

ACTION_CREATE_TASK = "play_create_task"
ACTION_DRAFT = "play_draft_email"
ACTION_SNOOZE = "play_snooze"
ACTION_DONE = "play_done"
ACTION_NOT_USEFUL = "play_not_useful"


def esc(text: object) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, limit)}


def plain(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    return str(value)


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": plain(text, MAX_BUTTON_TEXT),
                              "action_id": action_id, "value": truncate(value, MAX_VALUE)}
    if style:
        button["style"] = style
    return button


def health_line(evidence: Mapping[str, Any], language: str) -> str:
    health = evidence.get("health") or {}
    score, band = health.get("score"), health.get("band")
    if score is None:
        return f"*{tr('health', language)}:* {tr('health_unknown', language)}"
    line = f"*{tr('health', language)}:* {score:.0f} ({tr(band, language)})"
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
            f"{tr('potential_band', language, band=band)} · "
            f"{tr(evidence.get('engagement', 'passive'), language)} · "
            f"{tr('cadence', language, days=evidence.get('cadence_days', '—'))}")


def evidence_fields(evidence: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    facts = evidence.get("facts") or {}
    return [f"{esc(labels.get(name, name))}: *{esc(_num(value))}*"
            for name, value in facts.items()]


def nudge_message(play: Play, account: Account, *, language: str, owner_name: str | None,
                  labels: Mapping[str, str], auto_task: bool) -> dict[str, Any]:
    """The DM a CSM receives for one play: what, for whom, why, the numbers, and buttons."""
    title = play.title.get(language) or play.title.get("ja", play.playbook_id)
    reason = play.reason.get(language) or play.reason.get("ja", "")
    header = f"{title} — {account.name}"
    severity = tr(f"severity_{play.severity}", language)
    lines = [f"*{tr('account', language)}:* {esc(account.name)}"]
    if owner_name:
        lines.append(f"*{tr('owner', language)}:* {esc(owner_name)}")
    segment = segment_line(play.evidence, language)
    if segment:
        lines.append(segment)
    lines.append(health_line(play.evidence, language))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(header, MAX_HEADER)},
        {"type": "section", "text": mrkdwn("\n".join(lines))},
        {"type": "section", "text": mrkdwn(f"*{tr('why', language)}:* {esc(reason)}")},
    ]
    fields = evidence_fields(play.evidence, labels)
    if fields:
        blocks.append({"type": "context", "elements": [mrkdwn(" · ".join(fields))]})
    status = f"{severity} · *{tr('due', language)}:* {play.due_on.isoformat()}"
    if play.task_state in (StepState.DONE, StepState.COMPLETED):
        status += f" · :white_check_mark: {tr('task_created', language)}"
    blocks.append({"type": "context", "elements": [mrkdwn(status)]})
    blocks.append({"type": "actions", "block_id": f"play:{play.ref}",
                   "elements": _play_buttons(play, language, auto_task)})
    text = truncate(f"{title}: {account.name} — {reason}", MAX_FALLBACK)
    return {"text": text, "blocks": blocks[:MAX_BLOCKS]}


def _play_buttons(play: Play, language: str, auto_task: bool) -> list[dict[str, Any]]:
    value = play.key
    buttons = []
    if not auto_task and play.task_state not in (StepState.DONE, StepState.COMPLETED):
        buttons.append(_button(tr("btn_create_task", language), ACTION_CREATE_TASK, value,
                               "primary"))
    buttons.append(_button(tr("btn_draft", language), ACTION_DRAFT, value))
    buttons.append({
        "type": "overflow", "action_id": ACTION_SNOOZE,
        "options": [
            {"text": plain(tr("snooze_1d", language), 75), "value": truncate(f"1d|{value}", 150)},
            {"text": plain(tr("snooze_1w", language), 75), "value": truncate(f"1w|{value}", 150)},
        ],
    })
    buttons.append(_button(tr("btn_done", language), ACTION_DONE, value))
    buttons.append(_button(tr("btn_not_useful", language), ACTION_NOT_USEFUL, value, "danger"))
    return buttons


def render_text(payload: Mapping[str, Any]) -> str:
    """A terminal rendering of a Block Kit message, for the demo and previews."""
    out: list[str] = []
    for block in payload.get("blocks", []):
        kind = block["type"]
        if kind == "header":
            out.append(f"■ {block['text']['text']}")
        elif kind == "section":
            out.append(block["text"]["text"])
        elif kind == "context":
            out.append("  " + " ".join(e.get("text", "") for e in block["elements"]))
        elif kind == "actions":
            labels = [f"[{e['text']['text']}]" if e["type"] == "button" else "[⋯]"
                      for e in block["elements"]]
            out.append(" ".join(labels))
    return _unescape("\n".join(out))


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def due_label(day: date, language: str) -> str:
    return f"{tr('due', language)}: {day.isoformat()}"
