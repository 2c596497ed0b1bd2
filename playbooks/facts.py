"""Facts: the flat, named numbers about one account that scorecards and playbooks read.

Computed once per account per evaluation from what the store knows (``AccountSignals``). A fact
that cannot be known is ``None``, never a made-up zero: rules treat it as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.config import KizunaConfig
from core.domain import AccountSignals

#: Facts every account has (value may be None), with what they mean. Used to validate playbooks
#: and scorecards; ``metric.<name>`` and ``custom.<field>`` are accepted as well.
FACTS: dict[str, str] = {
    "usage_30d": "usage metric over the latest window (e.g. form impressions, last 30 days)",
    "usage_prev_30d": "usage metric over the window before that",
    "usage_drop_pct": "percent drop of usage_30d against usage_prev_30d (negative = growth)",
    "usage_limit_pct": "usage_30d as a percent of the plan's limit",
    "days_since_contact": "days since the last email, call, meeting or QBR "
                          "(else since contract start)",
    "days_since_qbr": "days since the last quarterly review (else since contract start)",
    "has_contact": "true if any email, call, meeting or QBR is on record",
    "has_qbr": "true if a quarterly review is on record",
    "days_to_renewal": "days until the renewal date",
    "contract_age_days": "days since the contract started",
    "nps": "latest NPS (metric 'nps')",
    "goal_attainment": "latest goal metric divided by the account's target (1.0 = on target)",
    "potential": "the account's potential (e.g. annual marketing budget)",
    "arr": "annual recurring revenue",
    "mrr": "monthly recurring revenue",
    "plan_limit": "usage allowance of the account's plan",
    "lifecycle_stage": "lifecycle stage from the CRM",
    "language": "ja or en",
    "industry": "industry from the CRM",
    "health_score": "overall health score 0–100 (this evaluation)",
    "health_band": "green / yellow / red",
    "health_previous": "score of the previous evaluation day",
    "health_change": "health_score minus health_previous",
    "health_drop_14d": "highest score of the last 14 days minus health_score",
    "potential_band": "portfolio potential band (e.g. high / mid / low)",
    "engagement": "active / passive / dormant",
    "cell": "portfolio cell, e.g. high.active",
    "touch": "touch model: high_touch / low_touch / tech_touch",
    "cadence_days": "contact cadence of the account's portfolio cell, in days",
    "days_over_cadence": "days_since_contact minus cadence_days",
}

#: Facts filled in after scoring and segmenting (the rest are known before).
DERIVED = ("health_score", "health_band", "health_previous", "health_change", "health_drop_14d",
           "potential_band", "engagement", "cell", "touch", "cadence_days", "days_over_cadence")


def is_known_fact(name: str) -> bool:
    if name in FACTS:
        return True
    prefix, _, rest = name.partition(".")
    return prefix in ("metric", "custom") and bool(rest)


class FactBuilder:
    """Turns ``AccountSignals`` into facts; holds the config bits it needs, resolved once."""

    def __init__(self, config: KizunaConfig) -> None:
        self.tz = ZoneInfo(config.timezone)
        self.stale = timedelta(days=config.usage.stale_after_days)
        self.prev_latest = timedelta(days=config.usage.window_days - 3)
        self.prev_earliest = timedelta(days=2 * config.usage.window_days + 5)
        self.goal_metric = config.goal.metric
        self.goal_target = config.goal.target_field
        self.namespaced: list[tuple[str, str, str]] = []

    def need(self, names: Iterable[str]) -> None:
        """Materialise these ``metric.<x>`` / ``custom.<x>`` facts (only the ones rules read)."""
        for name in sorted(set(names)):
            source, _, field = name.partition(".")
            if source in ("metric", "custom") and field and \
                    all(n != name for n, _, _ in self.namespaced):
                self.namespaced.append((name, source, field))

    def end_of(self, today: date) -> datetime:
        """Midnight after ``today`` in the team's zone, in UTC: days since X = (end - X).days."""
        return datetime.combine(today + timedelta(days=1), time(0), self.tz).astimezone(UTC)

    def build(self, s: AccountSignals, today: date, end: datetime | None = None) -> dict[str, Any]:
        a = s.account
        end = end or self.end_of(today)
        usage, prev = self._usage(s.usage, today)
        contract_age = (today - a.contract_start).days if a.contract_start else None
        contact_at, qbr_at = s.last_contact_at, s.last_qbr_at
        metrics = s.metrics
        target = a.custom.get(self.goal_target)
        actual = metrics.get(self.goal_metric)
        goal = (actual / target) if (actual is not None and type(target) in (int, float)
                                     and target > 0) else None
        facts: dict[str, Any] = {
            "usage_30d": usage,
            "usage_prev_30d": prev,
            "usage_drop_pct": ((prev - usage) / prev * 100
                               if usage is not None and prev else None),
            "usage_limit_pct": (usage / a.plan_limit * 100
                                if usage is not None and a.plan_limit else None),
            "days_since_contact": (end - contact_at).days if contact_at else contract_age,
            "days_since_qbr": (end - qbr_at).days if qbr_at else contract_age,
            "has_contact": contact_at is not None,
            "has_qbr": qbr_at is not None,
            "days_to_renewal": (a.renewal_date - today).days if a.renewal_date else None,
            "contract_age_days": contract_age,
            "nps": metrics.get("nps"),
            "goal_attainment": goal,
            "potential": a.potential,
            "arr": a.arr,
            "mrr": a.mrr,
            "plan_limit": a.plan_limit,
            "lifecycle_stage": a.lifecycle_stage,
            "language": a.language,
            "industry": a.industry,
            "health_previous": s.previous_health,
        }
        for name, source, field in self.namespaced:
            facts[name] = (metrics if source == "metric" else a.custom).get(field)
        return facts

    def _usage(self, points: tuple[tuple[date, float], ...],
               today: date) -> tuple[float | None, float | None]:
        """Latest fresh value and the value one window before it (see README "Usage metric")."""
        if not points:
            return None, None
        period, value = points[-1]
        if period < today - self.stale:
            return None, None
        prev_latest = period - self.prev_latest
        prev_earliest = period - self.prev_earliest
        prev = None
        for p, v in reversed(points[:-1]):
            if p <= prev_latest:
                if p >= prev_earliest:
                    prev = v
                break
        return value, prev


_LABELS: dict[str, tuple[str, str]] = {
    "usage_30d": ("{usage}(直近30日)", "{usage} (last 30 days)"),
    "usage_prev_30d": ("{usage}(前の30日)", "{usage} (previous 30 days)"),
    "usage_drop_pct": ("{usage}の減少率(%)", "{usage} drop (%)"),
    "usage_limit_pct": ("プラン上限に対する利用率(%)", "share of plan limit (%)"),
    "days_since_contact": ("最終接触からの日数", "days since last contact"),
    "days_since_qbr": ("前回QBRからの日数", "days since last QBR"),
    "has_contact": ("接触記録あり", "contact on record"),
    "has_qbr": ("QBR記録あり", "QBR on record"),
    "days_to_renewal": ("更新までの日数", "days to renewal"),
    "contract_age_days": ("契約開始からの日数", "days since contract start"),
    "nps": ("NPS", "NPS"),
    "goal_attainment": ("目標達成率", "goal attainment"),
    "potential": ("ポテンシャル", "potential"),
    "arr": ("ARR", "ARR"),
    "mrr": ("MRR", "MRR"),
    "plan_limit": ("プラン上限", "plan limit"),
    "health_score": ("ヘルススコア", "health score"),
    "health_band": ("ヘルス区分", "health band"),
    "health_previous": ("前回のヘルススコア", "previous health score"),
    "health_change": ("ヘルススコアの変化", "health change"),
    "health_drop_14d": ("14日間のヘルス低下幅", "health drop in 14 days"),
    "cadence_days": ("接触目安(日)", "cadence (days)"),
    "days_over_cadence": ("接触目安の超過日数", "days over cadence"),
    "touch": ("タッチモデル", "touch model"),
    "cell": ("ポートフォリオ区分", "portfolio cell"),
    "engagement": ("エンゲージメント", "engagement"),
    "potential_band": ("ポテンシャル帯", "potential band"),
}


def fact_labels(language: str, usage_label: str) -> dict[str, str]:
    """Human labels of facts in ``language``; unknown facts fall back to their names."""
    i = 1 if language == "en" else 0
    return {name: pair[i].format(usage=usage_label) for name, pair in _LABELS.items()}
