"""The data guard: bad data never floods people.

If the CRM suddenly yields far fewer live accounts than the last good tick, or most usage metrics
vanish, Kizuna does not act on it: playbooks that read usage or contact data are *held* (nothing
opened, nothing closed), the admin hears about it once, and the next good tick releases them.
The baseline only moves on good ticks, so a slow decay cannot sneak past as many small drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from core import schema as t
from core.store import Store

GUARDED_CATEGORIES = frozenset({"usage", "contact"})
GUARDED_FACTS = frozenset({"health_drop_14d", "days_since_contact", "days_since_qbr",
                           "days_over_cadence", "has_contact", "has_qbr"})


def is_guarded(category: str, referenced: frozenset[str]) -> bool:
    """Playbooks that read usage or contact data (directly or through a health drop)."""
    return (category in GUARDED_CATEGORIES or bool(referenced & GUARDED_FACTS)
            or any(name.startswith("usage_") for name in referenced))


@dataclass(frozen=True)
class Verdict:
    held: bool
    accounts: int
    coverage: float
    reason: str | None = None


class DataGuard:
    def __init__(self, store: Store, source: str, *, min_accounts: int = 10,
                 ratio: float = 0.5) -> None:
        self.store = store
        self.source = source
        self.min_accounts = min_accounts
        self.ratio = ratio

    def _row(self) -> dict | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.data_guard).where(
                t.data_guard.c.source == self.source)).mappings().first()
        return dict(row) if row else None

    def judge(self, accounts: int, with_usage: int) -> Verdict:
        """Compare this evaluation with the last good one."""
        coverage = with_usage / accounts if accounts else 0.0
        base = self._row()
        if base is None or base["accounts"] < self.min_accounts:
            return Verdict(False, accounts, coverage)
        if accounts < base["accounts"] * self.ratio:
            return Verdict(True, accounts, coverage,
                           f"the CRM yields {accounts} live accounts; the last good sync had "
                           f"{base['accounts']}")
        if base["usage_coverage"] >= 0.2 and coverage < base["usage_coverage"] * self.ratio:
            return Verdict(True, accounts, coverage,
                           f"usage data is present for {coverage:.0%} of accounts; it was "
                           f"{base['usage_coverage']:.0%} at the last good sync")
        return Verdict(False, accounts, coverage)

    def record(self, verdict: Verdict) -> bool:
        """Store the outcome; True when a hold starts now (tell the admin once)."""
        base = self._row()
        now = datetime.now(UTC)
        starts = verdict.held and not (base and base["held"])
        if verdict.held and base is not None:
            row = {**base, "held": True, "reason": verdict.reason,
                   "since": base["since"] if base["held"] else now, "updated_at": now}
        else:
            row = {"source": self.source, "accounts": verdict.accounts,
                   "usage_coverage": verdict.coverage, "held": False, "reason": None,
                   "since": None, "updated_at": now}
        with self.store.begin() as conn:
            insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
            stmt = insert(t.data_guard).values(**row)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["source"], set_={k: stmt.excluded[k] for k in row
                                                 if k != "source"}))
        return starts

    def state(self) -> dict | None:
        return self._row()
