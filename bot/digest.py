"""The daily digest per CSM and the weekly digest for managers.

The scheduler calls ``send_daily`` and ``send_weekly`` at the times of ``scheduler:`` in
kizuna.yaml (team time zone): the time of day is its decision, so digests ignore quiet hours,
but nothing goes out on weekends and holidays (``slack.work_days``, ``slack.holidays``). Both
are safe to call again: a digest has a marker per CSM and day (per ISO week for the weekly one)
and goes out once, with the same crash handling as nudges (``sending`` before the post, the
marker in the message metadata).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bot.blocks import (
    ACTION_OPEN,
    button,
    context,
    esc,
    header,
    limit_blocks,
    play_line,
    section,
)
from bot.notifier import SlackNotifier
from bot.state import FAILED, SENDING, SENT, DeliveryRow
from bot.text import tr
from bot.web import SlackUnsure
from core.app import Kizuna
from core.domain import Play, PlayState
from core.errors import DeliveryError

log = logging.getLogger(__name__)
DIGEST_EVENT = "kizuna_digest"


@dataclass
class DigestReport:
    """What one digest run did, for the scheduler's log and the tests."""

    sent: list[str] = field(default_factory=list)      # markers posted
    skipped: list[str] = field(default_factory=list)   # markers already done
    errors: list[str] = field(default_factory=list)
    held: bool = False


# -- builders (pure) -----------------------------------------------------------------------------

def daily_message(day: date, plays: Sequence[Play], names: Mapping[str, str], *, language: str,
                  open_count: int, overdue: int, today: date) -> dict[str, Any]:
    title = tr("daily_title", language, day=day.isoformat())
    blocks: list[dict[str, Any]] = [header(title),
                                    context(tr("daily_intro", language, n=len(plays)))]
    for play in plays:
        blocks.append(section(play_line(play, names.get(play.account_id, play.account_id),
                                        language, today),
                              block_id=f"open:{play.ref}",
                              accessory=button(tr("btn_open", language), ACTION_OPEN, play.ref)))
    footer = context(tr("daily_footer", language, open=open_count, overdue=overdue))
    blocks = limit_blocks(blocks, language, limit=49)
    return {"text": f"{title}: {len(plays)}", "blocks": [*blocks, footer]}


@dataclass
class CsmWeek:
    """One CSM's line in the manager digest."""

    name: str
    accounts: int = 0
    behind: int = 0
    open: int = 0
    overdue: int = 0
    at_risk: dict[str, float] = field(default_factory=dict)  # renewal quarter → ARR


def quarter(day: date | None) -> str:
    return "—" if day is None else f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def weekly_message(day: date, rows: Sequence[CsmWeek], *, language: str,
                   currency: str) -> dict[str, Any]:
    title = tr("weekly_title", language, day=day.isoformat())
    total = CsmWeek(name="")
    for r in rows:
        total.accounts += r.accounts
        total.behind += r.behind
        total.open += r.open
        total.overdue += r.overdue
        for q, arr in r.at_risk.items():
            total.at_risk[q] = total.at_risk.get(q, 0) + arr
    blocks: list[dict[str, Any]] = [
        header(title),
        section(tr("weekly_team", language, accounts=total.accounts, behind=total.behind,
                   open=total.open, overdue=total.overdue) + "\n" +
                _risk_line(total.at_risk, language, currency)),
        {"type": "divider"},
    ]
    for r in rows:
        blocks.append(section(tr("weekly_csm", language, name=esc(r.name), accounts=r.accounts,
                                 behind=r.behind, open=r.open, overdue=r.overdue) + "\n" +
                              _risk_line(r.at_risk, language, currency)))
    return {"text": title, "blocks": limit_blocks(blocks, language)}


def _risk_line(at_risk: Mapping[str, float], language: str, currency: str) -> str:
    if not at_risk:
        return f"{tr('at_risk', language)}: {tr('at_risk_none', language)}"
    parts = []
    for q in sorted(at_risk, key=lambda k: (k == "—", k)):
        label = tr("no_renewal", language) if q == "—" else q
        parts.append(f"{label} {esc(currency)} {at_risk[q]:,.0f}")
    return f"{tr('at_risk', language)}: " + " · ".join(parts)


# -- sending -------------------------------------------------------------------------------------

def _deliver(notifier: SlackNotifier, row: DeliveryRow, payload: dict[str, Any],
             report: DigestReport) -> None:
    try:
        response = notifier.calls(
            "chat_postMessage", channel=row.target, text=payload["text"],
            blocks=payload["blocks"], unfurl_links=False, unfurl_media=False,
            metadata={"event_type": DIGEST_EVENT, "event_payload": {"marker": row.marker}})
    except SlackUnsure as exc:
        report.errors.append(f"{row.marker}: {exc}")  # stays "sending": checked next time
        return
    except DeliveryError as exc:
        notifier.state.mark(row.id, FAILED, error=str(exc))
        report.errors.append(f"{row.marker}: {exc}")
        return
    notifier.state.finish_digest(row, response["channel"], response["ts"])
    report.sent.append(row.marker)


def send_daily(kizuna: Kizuna, notifier: SlackNotifier, now: datetime) -> DigestReport:
    """Post each CSM's digest of the nudges that waited for it (low severity, over the cap)."""
    report = DigestReport()
    if not notifier.hours.working_day(now.astimezone(notifier.hours.tz).date()):
        report.held = True
        return report
    day = now.astimezone(notifier.hours.tz).date()
    state = notifier.state
    _resolve_interrupted(notifier, report)
    waiting: dict[str, list[DeliveryRow]] = defaultdict(list)
    for row in state.queued():
        waiting[row.owner_email or ""].append(row)
    for owner, rows in sorted(waiting.items()):
        marker = f"daily:{owner or '-'}:{day.isoformat()}"
        existing = state.delivery(marker)
        if existing is not None and existing.state == SENT:
            continue  # what was queued after today's digest waits for tomorrow's
        plays, ended = _live_plays(kizuna, rows)
        state.drop(ended)
        if not plays:
            continue
        try:
            route = notifier.route(owner or None)
        except DeliveryError as exc:
            report.errors.append(f"{marker}: {exc}")
            continue
        state.assign([r.id for r in rows if r.id not in ended], marker)
        names = {a.crm_id: a.name for a in kizuna.store.accounts_by_ids(
            kizuna.source, sorted({p.account_id for p in plays})).values()}
        mine = kizuna.ledger.owner_plays(kizuna.source, owner) if owner else []
        payload = daily_message(day, plays, names, language=notifier.language,
                                open_count=len(mine),
                                overdue=sum(1 for p in mine if p.due_on < day), today=day)
        row = state.begin(marker, kind="daily", route=route.kind, target=route.target,
                          owner_email=owner, day=day)
        _deliver(notifier, row, payload, report)
    return report


def _resolve_interrupted(notifier: SlackNotifier, report: DigestReport) -> None:
    """Digests left "sending" by a crash: found in Slack → done; else their nudges go again."""
    state = notifier.state
    for marker in sorted({r.digest_marker for r in state.queued() if r.digest_marker}):
        row = state.delivery(marker)
        if row is None or row.state != SENDING:
            continue
        try:
            found = notifier.find_posted(row)
        except DeliveryError as exc:
            report.errors.append(f"{marker}: {exc}")
            continue
        if found is not None:
            state.finish_digest(row, *found)
            report.skipped.append(marker)
        else:
            state.mark(row.id, FAILED, error="interrupted; not found in Slack")


def _live_plays(kizuna: Kizuna, rows: Sequence[DeliveryRow]) -> tuple[list[Play], list[int]]:
    plays, ended = [], []
    for row in rows:
        play = kizuna.ledger.get(row.play_key or "")
        if play is None or play.state != PlayState.OPEN:
            ended.append(row.id)
        else:
            plays.append(play)
    plays.sort(key=lambda p: (p.due_on, p.key))
    return plays, ended


def weekly_rows(kizuna: Kizuna, day: date) -> list[CsmWeek]:
    """Per CSM: accounts behind cadence, open and overdue plays, at-risk ARR by quarter."""
    rows: dict[str, CsmWeek] = {}
    language = kizuna.config.language

    def row_for(owner: str) -> CsmWeek:
        if owner not in rows:
            csm = kizuna.csm(owner)
            rows[owner] = CsmWeek(name=csm["name_en" if language == "en" else "name_ja"])
        return rows[owner]

    owner_of: dict[str, str] = {}
    for ev in kizuna.book():
        owner = (ev.account.owner_email or "").lower()
        owner_of[ev.account.crm_id] = owner
        r = row_for(owner)
        r.accounts += 1
        if (ev.facts.get("days_over_cadence") or 0) > 0:
            r.behind += 1
        if ev.health.band in ("red", "yellow") and ev.account.arr:
            q = quarter(ev.account.renewal_date)
            r.at_risk[q] = r.at_risk.get(q, 0) + ev.account.arr
    for play in kizuna.ledger.plays(kizuna.source, states=[PlayState.OPEN]):
        r = row_for(owner_of.get(play.account_id, ""))
        r.open += 1
        if play.due_on < day:
            r.overdue += 1
    return [rows[k] for k in sorted(rows, key=lambda o: (o == "", rows[o].name))]


def send_weekly(kizuna: Kizuna, notifier: SlackNotifier, now: datetime) -> DigestReport:
    """Post the manager digest to ``slack.manager_channel`` once per ISO week."""
    report = DigestReport()
    channel = notifier.slack.manager_channel
    if not channel:
        report.errors.append("slack.manager_channel is not set")
        return report
    if not notifier.hours.working_day(now.astimezone(notifier.hours.tz).date()):
        report.held = True
        return report
    day = now.astimezone(notifier.hours.tz).date()
    year, week, _ = day.isocalendar()
    marker = f"weekly:{year}-W{week:02d}"
    if (existing := notifier.state.delivery(marker)) is not None and existing.state == SENT:
        report.skipped.append(marker)
        return report
    payload = weekly_message(day, weekly_rows(kizuna, day), language=notifier.language,
                             currency=kizuna.config.currency)
    if existing is not None and existing.state == SENDING:
        found = notifier.find_posted(existing)
        if found is not None:
            notifier.state.finish_digest(existing, *found)
            report.skipped.append(marker)
            return report
    row = notifier.state.begin(marker, kind="weekly", route="manager", target=channel,
                               owner_email=None, day=day)
    _deliver(notifier, row, payload, report)
    return report


__all__ = ["DigestReport", "daily_message", "send_daily", "send_weekly",
           "weekly_message", "weekly_rows"]
