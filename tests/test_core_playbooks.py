"""Built-in playbooks fire exactly when their documented condition holds, and say why."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from core.config import KizunaConfig
from core.domain import Account, AccountSignals
from core.render import Renderer
from playbooks.catalog import load_playbooks
from playbooks.engine import Evaluation, Evaluator

TODAY = date(2026, 11, 23)


def _at(days_ago: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(3, 0), UTC)


def signals(*, potential: float = 50_000_000, usage: float | None = 5000,
            prev_usage: float | None = 5200, plan_limit: float = 50_000,
            contact_days: int | None = 5, qbr_days: int | None = 30,
            renewal_days: int | None = 200, contract_days: int = 500, nps: float | None = 50,
            previous: float | None = 80, peak: float | None = 82) -> AccountSignals:
    points: list[tuple[date, float]] = []
    if prev_usage is not None:
        points.append((TODAY - timedelta(days=35), prev_usage))
    if usage is not None:
        points.append((TODAY - timedelta(days=5), usage))
    account = Account(
        source="demo", crm_id="A1", name="株式会社テスト", owner_email="csm@x.test",
        potential=potential, arr=1_200_000, contract_start=TODAY - timedelta(days=contract_days),
        renewal_date=TODAY + timedelta(days=renewal_days) if renewal_days is not None else None,
        plan_limit=plan_limit)
    return AccountSignals(
        account=account,
        last_contact_at=_at(contact_days) if contact_days is not None else None,
        last_qbr_at=_at(qbr_days) if qbr_days is not None else None,
        usage=tuple(points), metrics={"nps": nps} if nps is not None else {},
        previous_health=previous, peak_health_14d=peak)


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator(KizunaConfig(), load_playbooks(Renderer()))


def run(evaluator: Evaluator, **kw: object) -> Evaluation:
    return evaluator.evaluate(signals(**kw), TODAY)


def fired(ev: Evaluation) -> dict[str, str]:
    return {pb.id: variant.id for pb, variant in ev.fired}


def skipped(ev: Evaluation) -> dict[str, list[str]]:
    return {pb.id: missing for pb, missing in ev.skipped}


def test_a_healthy_account_triggers_nothing(evaluator: Evaluator) -> None:
    """The baseline account is green, in cadence and far from renewal: no playbook fires."""
    ev = run(evaluator)
    assert ev.health.band == "green"
    assert fired(ev) == {}


@pytest.mark.parametrize(("qbr_days", "potential", "expected"), [
    (100, 50_000_000, True),    # high-touch, last QBR 100 days ago
    (80, 50_000_000, False),    # within 90 days
    (None, 50_000_000, True),   # never had one in 500 days of contract
    (200, 2_000_000, False),    # tech-touch accounts get no QBR nudge
])
def test_qbr_due(evaluator: Evaluator, qbr_days: int | None, potential: float,
                 expected: bool) -> None:
    """qbr_due: a high-touch account whose last quarterly review is more than 90 days old."""
    ev = run(evaluator, qbr_days=qbr_days, potential=potential)
    assert ("qbr_due" in fired(ev)) is expected


@pytest.mark.parametrize(("usage", "prev", "expected"), [
    (500, 600, True),       # under 1,000
    (5000, 12000, True),    # down 58 %
    (5000, 6000, False),    # down 17 %
    (5000, None, False),    # no earlier window: only the threshold applies
])
def test_low_form_impressions(evaluator: Evaluator, usage: float, prev: float | None,
                              expected: bool) -> None:
    """low_form_impressions: under the threshold, or down ≥ 50 % against the previous window."""
    ev = run(evaluator, usage=usage, prev_usage=prev)
    assert ("low_form_impressions" in fired(ev)) is expected


def test_usage_playbooks_skip_an_account_without_the_metric(evaluator: Evaluator) -> None:
    """A missing usage metric skips usage playbooks (naming the missing fact) instead of firing."""
    ev = run(evaluator, usage=None, prev_usage=None, contract_days=30)
    assert "low_form_impressions" not in fired(ev)
    assert "onboarding_stalled" not in fired(ev)
    assert "usage_30d" in skipped(ev)["low_form_impressions"]
    assert "usage_30d" in skipped(ev)["onboarding_stalled"]
    assert "usage" in ev.health.missing


def test_stale_usage_counts_as_missing(evaluator: Evaluator) -> None:
    """Usage last reported long ago is not today's usage: treated as unknown, not as low."""
    ev = evaluator.evaluate(AccountSignals(
        signals().account, _at(5), _at(30), ((TODAY - timedelta(days=100), 10.0),), {}, 80, 82),
        TODAY)
    assert "low_form_impressions" in skipped(ev)


@pytest.mark.parametrize(("renewal_days", "nps", "usage", "expected"), [
    (30, 50, 5000, "prepare"),     # healthy: renewal prep / upsell wording
    (30, -80, 200, "at_risk"),     # not green: risk wording
    (120, 50, 5000, None),         # outside 90 days
    (-3, 50, 5000, None),          # already past
])
def test_renewal_approaching(evaluator: Evaluator, renewal_days: int, nps: float, usage: float,
                             expected: str | None) -> None:
    """renewal_approaching: within 90 days; the wording depends on the health band."""
    ev = run(evaluator, renewal_days=renewal_days, nps=nps, usage=usage, prev_usage=usage)
    assert fired(ev).get("renewal_approaching") == expected


@pytest.mark.parametrize(("contact_days", "expected"), [(40, True), (20, False)])
def test_no_contact_within_cadence(evaluator: Evaluator, contact_days: int,
                                   expected: bool) -> None:
    """no_contact_within_cadence: days since last touch beyond the cell's cadence (30 here)."""
    ev = run(evaluator, contact_days=contact_days)
    assert ev.placement.cadence_days == 30
    assert ("no_contact_within_cadence" in fired(ev)) is expected


def test_no_contact_is_low_severity_for_tech_touch(evaluator: Evaluator) -> None:
    """Tech-touch accounts behind cadence get the low-severity variant (digest material)."""
    ev = run(evaluator, potential=1_000_000, contact_days=400, contract_days=800)
    assert ev.placement.touch == "tech_touch"
    pb_variant = {pb.id: v for pb, v in ev.fired}["no_contact_within_cadence"]
    assert str(pb_variant.severity) == "low"


@pytest.mark.parametrize(("peak_gap", "expected"), [(20, True), (5, False)])
def test_health_drop(evaluator: Evaluator, peak_gap: float, expected: bool) -> None:
    """health_drop: the score fell by ≥ 15 points from its 14-day high."""
    score = run(evaluator).health.score
    ev = run(evaluator, peak=score + peak_gap)
    assert ("health_drop" in fired(ev)) is expected


def test_health_drop_needs_history(evaluator: Evaluator) -> None:
    """Without earlier scores, health_drop is skipped rather than guessed."""
    ev = run(evaluator, peak=None, previous=None)
    assert skipped(ev)["health_drop"] == ["health_drop_14d"]


@pytest.mark.parametrize(("contract_days", "usage", "expected"), [
    (30, 100, True), (30, 2000, False), (200, 100, False)])
def test_onboarding_stalled(evaluator: Evaluator, contract_days: int, usage: float,
                            expected: bool) -> None:
    """onboarding_stalled: contract younger than 60 days with usage under 300."""
    ev = run(evaluator, contract_days=contract_days, usage=usage, prev_usage=None)
    assert ("onboarding_stalled" in fired(ev)) is expected


@pytest.mark.parametrize(("usage", "potential", "expected"), [
    (45_000, 50_000_000, True), (20_000, 50_000_000, False), (45_000, 5_000_000, False)])
def test_upsell_signal(evaluator: Evaluator, usage: float, potential: float,
                       expected: bool) -> None:
    """upsell_signal: high potential, green health, usage ≥ 80 % of the plan's limit."""
    ev = run(evaluator, usage=usage, prev_usage=usage, potential=potential)
    assert ("upsell_signal" in fired(ev)) is expected


def test_reasons_cite_the_numbers(evaluator: Evaluator, kizuna) -> None:
    """A fired play's reason names the measured value and the threshold, in ja and en."""
    ev = run(evaluator, usage=420, prev_usage=1100)
    pb, variant = next((pb, v) for pb, v in ev.fired if pb.id == "low_form_impressions")
    finding = kizuna._finding(ev, pb, "open", variant)
    assert "420" in finding.reason["ja"] and "1,000" in finding.reason["ja"]
    assert "down 62%" in finding.reason["en"]
    assert finding.evidence["facts"] == {"usage_30d": 420.0, "usage_prev_30d": 1100.0,
                                         "usage_drop_pct": 61.8}
