"""The ABM portfolio: potential band × engagement status → touch model and contact cadence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.config import Portfolio as PortfolioConfig
from core.errors import ConfigError
from playbooks.facts import is_known_fact


@dataclass(frozen=True, slots=True)
class Placement:
    potential_band: str
    engagement: str
    touch: str
    cadence_days: int
    cell: str  # "<potential_band>.<engagement>", e.g. "high.active"


class Portfolio:
    """Compiled from ``portfolio:`` in kizuna.yaml; ``place(facts)`` is pure."""

    def __init__(self, config: PortfolioConfig) -> None:
        if not is_known_fact(config.potential_fact):
            raise ConfigError(f"unknown fact {config.potential_fact!r}",
                              field="portfolio.potential_fact")
        self.config = config
        self.bands = [(b.min, b.id) for b in config.potential_bands]
        self.lowest = config.potential_bands[-1].id
        e = config.engagement
        self.active_usage, self.active_days = e.active_min_usage, e.active_within_days
        self.dormant_usage, self.dormant_days = e.dormant_below_usage, e.dormant_after_days
        self._placements = {key: Placement(*key.split(".", 1), c.touch, c.cadence_days, key)
                            for key, c in config.cells.items()}

    def potential_band(self, potential: Any) -> str:
        """The band of a potential; unknown potential is placed in the lowest band."""
        if isinstance(potential, int | float):
            for minimum, band in self.bands:
                if potential >= minimum:
                    return band
        return self.lowest

    def engagement(self, usage: float | None, days_since_contact: int | None) -> str:
        recent = days_since_contact is not None
        if (usage is not None and usage >= self.active_usage and recent
                and days_since_contact <= self.active_days):
            return "active"
        if ((usage is None or usage < self.dormant_usage)
                and (not recent or days_since_contact > self.dormant_days)):
            return "dormant"
        return "passive"

    def place(self, facts: Mapping[str, Any]) -> Placement:
        band = self.potential_band(facts.get(self.config.potential_fact))
        engagement = self.engagement(facts.get("usage_30d"), facts.get("days_since_contact"))
        return self._placements[f"{band}.{engagement}"]

    def cells(self) -> list[str]:
        return list(self._placements)
