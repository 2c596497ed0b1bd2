"""Evaluation: facts → health → portfolio placement → playbook checks, for one account at a time.

Pure and in-memory: the store loads signals, the ledger decides what to do with the outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from core.config import KizunaConfig
from core.domain import Account, AccountSignals
from playbooks.catalog import Playbook, Variant
from playbooks.facts import FactBuilder
from playbooks.portfolio import Placement, Portfolio
from playbooks.scorecard import Health, Scorecard


@dataclass(slots=True)
class Evaluation:
    """The outcome for one account: its facts, health, placement and what each playbook said."""

    account: Account
    facts: dict[str, Any]
    health: Health
    placement: Placement
    fired: list[tuple[Playbook, Variant]] = field(default_factory=list)
    cleared: list[Playbook] = field(default_factory=list)
    skipped: list[tuple[Playbook, list[str]]] = field(default_factory=list)


class Evaluator:
    """Scores, segments and checks every playbook; built once per configuration."""

    def __init__(self, config: KizunaConfig, playbooks: list[Playbook]) -> None:
        self.config = config
        self.facts = FactBuilder(config)
        self.scorecard = Scorecard(config.scorecard)
        self.portfolio = Portfolio(config.portfolio)
        self.playbooks = playbooks
        self.facts.need([*(m.fact for m in config.scorecard.measures),
                         config.portfolio.potential_fact,
                         *(name for pb in playbooks for name in pb.referenced),
                         *(name for pb in playbooks for name in pb.spec.evidence)])
        self._by_cell: dict[tuple[str, str], tuple[list[Playbook], list[Playbook]]] = {}

    def _split(self, touch: str, cell: str) -> tuple[list[Playbook], list[Playbook]]:
        """Playbooks that apply to a portfolio cell, and those that do not (cached per cell)."""
        key = (touch, cell)
        split = self._by_cell.get(key)
        if split is None:
            split = ([pb for pb in self.playbooks if pb.applies(touch, cell)],
                     [pb for pb in self.playbooks if not pb.applies(touch, cell)])
            self._by_cell[key] = split
        return split

    def evaluate(self, signals: AccountSignals, today: date,
                 end: datetime | None = None) -> Evaluation:
        """``end`` (midnight after ``today`` in the team zone) may be passed to save work."""
        facts = self.facts.build(signals, today, end)
        health = self.scorecard.score(facts)
        placement = self.portfolio.place(facts)
        score = health.score
        previous = facts["health_previous"]
        peak = signals.peak_health_14d
        facts["health_score"] = score
        facts["health_band"] = health.band
        # Facts stay unrounded on the hot path; evidence is rounded when a play records it.
        facts["health_change"] = (score - previous
                                  if score is not None and previous is not None else None)
        facts["health_drop_14d"] = (max(peak - score, 0.0)
                                    if score is not None and peak is not None else None)
        touch, cell, cadence = placement.touch, placement.cell, placement.cadence_days
        contact = facts["days_since_contact"]
        facts.update(potential_band=placement.potential_band, engagement=placement.engagement,
                     cell=cell, touch=touch, cadence_days=cadence,
                     days_over_cadence=contact - cadence if contact is not None else None)
        applicable, not_applicable = self._split(touch, cell)
        fired: list[tuple[Playbook, Variant]] = []
        cleared = not_applicable[:]
        skipped: list[tuple[Playbook, list[str]]] = []
        for pb in applicable:
            outcome = pb.check(facts)
            if outcome is None:
                skipped.append((pb, pb.missing(facts)))
            elif outcome is False:
                cleared.append(pb)
            else:
                fired.append((pb, outcome))
        return Evaluation(signals.account, facts, health, placement, fired, cleared, skipped)

    def evaluate_all(self, signals: Iterable[AccountSignals], today: date) -> Iterator[Evaluation]:
        end = self.facts.end_of(today)
        for s in signals:
            yield self.evaluate(s, today, end)
