"""App Home: the CSM's book of business, published when they open the bot's Home tab.

What needs attention today first (open plays due today or overdue, or opened today), then the
book's health and portfolio counts, open plays by due date and recent health drops. Slack allows
100 blocks in a Home tab; longer lists are summarised ("…and 40 more").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bot.blocks import (
    ACTION_OPEN,
    MAX_VIEW_BLOCKS,
    button,
    context,
    esc,
    header,
    limit_blocks,
    play_line,
    play_title,
    section,
)
from bot.text import tr
from core.app import Kizuna
from core.domain import Play

ATTENTION_ACCOUNTS = 15
LISTED_PLAYS = 30
DROPS = 10
NOTABLE_DROP = 10.0
_RANK = {"high": 0, "medium": 1, "low": 2}


@dataclass
class Book:
    """One CSM's book as the Home tab shows it; built from the store, rendered purely."""

    name: str
    today: date
    accounts: int = 0
    bands: Counter = field(default_factory=Counter)
    cells: Counter = field(default_factory=Counter)
    plays: list[Play] = field(default_factory=list)          # open, by due date
    names: dict[str, str] = field(default_factory=dict)      # account id → name
    drops: list[tuple[str, float, float]] = field(default_factory=list)  # name, before, now

    def attention(self) -> list[tuple[str, list[Play]]]:
        """Accounts with a play due today or overdue, or opened today: most urgent first."""
        urgent: dict[str, list[Play]] = defaultdict(list)
        for play in self.plays:
            if play.due_on <= self.today or play.opened_on == self.today:
                urgent[play.account_id].append(play)
        order = sorted(urgent, key=lambda a: (min(_RANK.get(str(p.severity), 9)
                                                  for p in urgent[a]),
                                              min(p.due_on for p in urgent[a])))
        return [(a, urgent[a]) for a in order]


def build_book(kizuna: Kizuna, owner_email: str) -> Book:
    language = kizuna.config.language
    csm = kizuna.csm(owner_email)
    book = Book(name=csm["name_en" if language == "en" else "name_ja"], today=kizuna.today())
    for ev in kizuna.book(owner_email):
        book.accounts += 1
        book.bands[ev.health.band or "unknown"] += 1
        book.cells[ev.placement.cell] += 1
        book.names[ev.account.crm_id] = ev.account.name
        drop = ev.facts.get("health_drop_14d")
        if drop is not None and drop >= NOTABLE_DROP and ev.health.score is not None:
            book.drops.append((ev.account.name, ev.health.score + drop, ev.health.score))
    book.drops.sort(key=lambda d: d[2] - d[1])
    book.plays = kizuna.ledger.owner_plays(kizuna.source, owner_email)
    return book


def home_view(book: Book, *, language: str, updated: str) -> dict[str, Any]:
    """The Home tab for one CSM (pure: snapshot-tested)."""
    blocks: list[dict[str, Any]] = [
        header(tr("home_title", language, name=book.name)),
        section(tr("home_counts", language, accounts=book.accounts,
                   green=book.bands.get("green", 0), yellow=book.bands.get("yellow", 0),
                   red=book.bands.get("red", 0), unknown=book.bands.get("unknown", 0))),
    ]
    if book.cells:
        cells = " · ".join(f"{esc(cell)} {n}" for cell, n in sorted(book.cells.items()))
        blocks.append(context(f"{tr('home_portfolio', language)}: {cells}"))
    blocks += [{"type": "divider"}, section(f"*{tr('home_attention', language)}*")]
    attention = book.attention()
    if not attention:
        blocks.append(context(tr("home_attention_none", language)))
    for account_id, plays in attention[:ATTENTION_ACCOUNTS]:
        lines = "\n".join(f"• {esc(play_title(p, language))} ({tr('due', language)}: "
                          f"{p.due_on.isoformat()})" for p in plays[:5])
        blocks.append(section(f"*{esc(book.names.get(account_id, account_id))}*\n{lines}",
                              block_id=f"attention:{plays[0].ref}",
                              accessory=button(tr("btn_open", language), ACTION_OPEN,
                                               plays[0].ref)))
    if len(attention) > ATTENTION_ACCOUNTS:
        blocks.append(context(tr("more", language, n=len(attention) - ATTENTION_ACCOUNTS)))
    blocks += [{"type": "divider"},
               section(f"*{tr('home_plays', language)}* ({len(book.plays)})")]
    for play in book.plays[:LISTED_PLAYS]:
        blocks.append(section(play_line(play, book.names.get(play.account_id, play.account_id),
                                        language, book.today),
                              block_id=f"open:{play.ref}",
                              accessory=button(tr("btn_open", language), ACTION_OPEN, play.ref)))
    if len(book.plays) > LISTED_PLAYS:
        blocks.append(context(tr("more", language, n=len(book.plays) - LISTED_PLAYS)))
    blocks += [{"type": "divider"}, section(_drops(book.drops, language))]
    blocks.append(context(tr("home_updated", language, at=updated)))
    return {"type": "home", "blocks": limit_blocks(blocks, language, MAX_VIEW_BLOCKS)}


def _drops(drops: list[tuple[str, float, float]], language: str) -> str:
    title = f"*{tr('home_drops', language)}*"
    if not drops:
        return f"{title}\n{tr('home_drops_none', language)}"
    lines = [tr("home_drop", language, name=esc(name), before=before, now=now,
                delta=now - before) for name, before, now in drops[:DROPS]]
    if len(drops) > DROPS:
        lines.append(tr("more", language, n=len(drops) - DROPS))
    return title + "\n" + "\n".join(lines)


def unknown_user_view(language: str) -> dict[str, Any]:
    text = tr("home_unknown_user", language) + "\n" + tr("help", language)
    return {"type": "home", "blocks": [section(text)]}


def stamp(moment: datetime, tz: Any) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


__all__ = ["Book", "build_book", "home_view", "stamp", "unknown_user_view"]
