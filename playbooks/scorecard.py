"""The health scorecard: configured measures → a weighted 0–100 score, a band and an explanation."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import Any, NamedTuple

from core.config import Scorecard as ScorecardConfig
from core.errors import ConfigError
from playbooks.facts import is_known_fact


# NamedTuples rather than frozen dataclasses: equally immutable, several times cheaper to build,
# and a scorecard builds four of them per account per tick.
class MeasureScore(NamedTuple):
    id: str
    value: float
    score: float
    weight: float


class Health(NamedTuple):
    """An account's health: the score, its band, and the measures behind it.

    ``missing`` lists measures left out of the weighting because their fact was unknown;
    ``score`` is None only when every measure was missing.
    """

    score: float | None
    band: str | None
    parts: tuple[tuple[str, float, float, float], ...]  # (id, value, score, weight), plain
    missing: tuple[str, ...]

    @property
    def measures(self) -> tuple[MeasureScore, ...]:
        return tuple(MeasureScore(*part) for part in self.parts)

    def pulled_down_by(self, below: float = 60) -> list[MeasureScore]:
        """Measures scoring under ``below``, the heaviest drag on the overall score first."""
        weak = [m for m in self.measures if m.score < below]
        return sorted(weak, key=lambda m: (m.score - 100) * m.weight)


class _Measure:
    __slots__ = ("fact", "id", "weight", "xs", "ys")

    def __init__(self, id: str, fact: str, weight: float, points: list[tuple[float, float]]):
        self.id, self.fact, self.weight = id, fact, weight
        self.xs = [x for x, _ in points]
        self.ys = [y for _, y in points]

    def score(self, value: float) -> float:
        xs, ys = self.xs, self.ys
        if value <= xs[0]:
            return ys[0]
        if value >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, value)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 + (y1 - y0) * (value - x0) / (x1 - x0)


class Scorecard:
    """Compiled from ``scorecard:`` in kizuna.yaml; ``score(facts)`` is pure and fast."""

    def __init__(self, config: ScorecardConfig) -> None:
        for i, m in enumerate(config.measures):
            if not is_known_fact(m.fact):
                raise ConfigError(f"unknown fact {m.fact!r}",
                                  field=f"scorecard.measures[{i}].fact")
        self.config = config
        self.measures = [_Measure(m.id, m.fact, m.weight, list(m.points))
                         for m in config.measures]
        self.green = config.bands.green
        self.yellow = config.bands.yellow
        self.labels = {m.id: m.label for m in config.measures}

    def band(self, score: float) -> str:
        return "green" if score >= self.green else "yellow" if score >= self.yellow else "red"

    def score(self, facts: Mapping[str, Any]) -> Health:
        parts: list[tuple[str, float, float, float]] = []
        missing: list[str] = []
        total = weights = 0.0
        for m in self.measures:
            value = facts.get(m.fact)
            if type(value) not in (int, float):  # None, text and booleans are not scores
                missing.append(m.id)
                continue
            s = m.score(value)
            parts.append((m.id, value, s, m.weight))
            total += s * m.weight
            weights += m.weight
        if not weights:
            return Health(None, None, (), tuple(missing))
        score = round(total / weights, 1)
        return Health(score, self.band(score), tuple(parts), tuple(missing))
