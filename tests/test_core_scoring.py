"""Scorecard math, bands and explanations; portfolio placement; condition logic."""

from __future__ import annotations

import pytest

from core.config import Bands, Cell, Engagement, Localized, Measure, PotentialBand
from core.config import Portfolio as PortfolioCfg
from core.config import Scorecard as ScorecardCfg
from core.yamlfile import parse_yaml
from playbooks.conditions import Compiler
from playbooks.portfolio import Portfolio
from playbooks.scorecard import Scorecard

L = Localized(ja="x", en="x")


def card(**bands: float) -> Scorecard:
    return Scorecard(ScorecardCfg(measures=[
        Measure(id="usage", label=L, fact="usage_30d", weight=3,
                points=[(0, 0), (1000, 50), (3000, 100)]),
        Measure(id="contact", label=L, fact="days_since_contact", weight=1,
                points=[(30, 100), (90, 0)]),
    ], bands=Bands(**bands) if bands else Bands()))


def test_points_interpolate_and_clamp() -> None:
    """A value between two points is interpolated linearly; beyond the ends it is clamped."""
    sc = card()
    assert sc.score({"usage_30d": 2000, "days_since_contact": 30}).measures[0].score == 75
    assert sc.score({"usage_30d": 99999, "days_since_contact": 0}).measures[0].score == 100
    assert sc.score({"usage_30d": -5, "days_since_contact": 500}).measures[1].score == 0


def test_overall_score_is_weighted() -> None:
    """Overall = Σ score × weight / Σ weight over the measures that are known."""
    health = card().score({"usage_30d": 1000, "days_since_contact": 60})
    assert health.score == pytest.approx((50 * 3 + 50 * 1) / 4)


def test_missing_measure_is_left_out_not_zero() -> None:
    """An unknown fact drops its measure from the weighting instead of scoring it 0."""
    health = card().score({"usage_30d": 3000, "days_since_contact": None})
    assert health.score == 100
    assert health.missing == ("contact",)
    assert card().score({}).score is None


@pytest.mark.parametrize(("usage", "band"), [(3000, "green"), (1000, "yellow"), (200, "red")])
def test_bands(usage: float, band: str) -> None:
    """≥ green threshold is green, ≥ yellow is yellow, else red (defaults 70 / 40)."""
    assert card().score({"usage_30d": usage, "days_since_contact": 60}).band == band


def test_explanation_names_what_pulled_it_down() -> None:
    """The explanation lists weak measures, heaviest drag first."""
    health = card().score({"usage_30d": 500, "days_since_contact": 80})
    assert [m.id for m in health.pulled_down_by()] == ["usage", "contact"]


def test_weights_must_be_positive_numbers() -> None:
    """A zero, negative or non-numeric weight is rejected at load."""
    for bad in (0, -1, "heavy", True):
        with pytest.raises(ValueError):
            Measure(id="x", label=L, fact="nps", weight=bad, points=[(0, 0), (1, 1)])


def portfolio() -> Portfolio:
    return Portfolio(PortfolioCfg(
        potential_bands=[PotentialBand(id="big", min=100), PotentialBand(id="small", min=0)],
        engagement=Engagement(active_min_usage=1000, active_within_days=60,
                              dormant_below_usage=100, dormant_after_days=120),
        cells={f"{b}.{e}": Cell(touch="high_touch" if b == "big" else "tech_touch",
                                cadence_days=30 if b == "big" else 90)
               for b in ("big", "small") for e in ("active", "passive", "dormant")}))


@pytest.mark.parametrize(("facts", "cell"), [
    ({"potential": 500, "usage_30d": 5000, "days_since_contact": 10}, "big.active"),
    ({"potential": 500, "usage_30d": 5000, "days_since_contact": 90}, "big.passive"),
    ({"potential": 50, "usage_30d": 50, "days_since_contact": 200}, "small.dormant"),
    ({"potential": 50, "usage_30d": None, "days_since_contact": None}, "small.dormant"),
    ({"potential": None, "usage_30d": 500, "days_since_contact": 10}, "small.passive"),
])
def test_portfolio_placement(facts: dict, cell: str) -> None:
    """Potential band × engagement (usage and contact recency) picks the cell and its cadence."""
    placement = portfolio().place(facts)
    assert placement.cell == cell
    assert placement.cadence_days == (30 if cell.startswith("big") else 90)


def test_portfolio_requires_every_cell() -> None:
    """A grid with a missing cell is a configuration error naming it."""
    with pytest.raises(ValueError, match=r"cells missing for: big\.dormant"):
        PortfolioCfg(potential_bands=[PotentialBand(id="big", min=0)],
                     cells={"big.active": Cell(touch="high_touch", cadence_days=1),
                            "big.passive": Cell(touch="high_touch", cadence_days=1)})


def compile_condition(text: str):
    doc = parse_yaml(text, "t.yaml")
    return Compiler(doc, {"limit": 10}).compile(doc.data["when"], ("when",))


@pytest.mark.parametrize(("facts", "expected"), [
    ({"usage_30d": 5, "nps": 1}, True),
    ({"usage_30d": 50, "nps": 1}, False),
    ({"usage_30d": None, "nps": 1}, None),      # unknown stays unknown
    ({"usage_30d": None, "nps": -5}, True),     # any: one true branch is enough
])
def test_three_valued_logic(facts: dict, expected: bool | None) -> None:
    """Comparisons on unknown facts are unknown; any/all follow Kleene logic."""
    cond = compile_condition("""
when:
  any:
    - all:
        - {fact: usage_30d, lt: {param: limit}}
        - {fact: nps, gte: 0}
    - {fact: nps, lt: 0}
""")
    assert cond(facts) is expected


def test_operand_can_be_another_fact() -> None:
    """`{fact: other}` compares two facts of the same account."""
    cond = compile_condition("when: {fact: days_since_contact, gt: {fact: cadence_days}}")
    assert cond({"days_since_contact": 40, "cadence_days": 30}) is True
    assert cond({"days_since_contact": 20, "cadence_days": 30}) is False
