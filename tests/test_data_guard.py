"""The data guard: a CRM that suddenly loses most accounts or usage data floods nobody."""

from __future__ import annotations

from datetime import timedelta

from core.app import Kizuna
from core.domain import SyncBatch
from tests.conftest import NOW


def started(kizuna: Kizuna) -> Kizuna:
    kizuna.sync()
    kizuna.tick(sync=False)
    return kizuna


def test_vanished_usage_holds_usage_and_contact_playbooks(kizuna: Kizuna) -> None:
    """Usage data missing for most accounts: usage/contact plays neither open nor close."""
    started(kizuna)
    open_before = {p.key for p in kizuna.ledger.plays("demo")}
    stale = Kizuna(kizuna.settings, kizuna.rules, kizuna.store, kizuna.connector,
                   notifier=kizuna.notifier, clock=lambda: NOW + timedelta(days=60))
    decisions = stale.decide()
    assert decisions.guard.held and "usage data" in decisions.guard.reason
    assert not any(p.playbook_id in ("low_form_impressions", "no_contact_within_cadence",
                                     "qbr_due", "onboarding_stalled", "upsell_signal",
                                     "health_drop") for p in decisions.new_plays)
    assert decisions.count("held") > 0
    stale.apply(decisions)
    assert open_before <= {p.key for p in kizuna.ledger.plays("demo")}
    assert len(kizuna.notifier.alerts) == 1
    stale.apply(stale.decide())
    assert len(kizuna.notifier.alerts) == 1, "the admin hears about a hold once"


def test_mass_deletion_holds_and_the_next_good_sync_releases(kizuna: Kizuna) -> None:
    """Most accounts deleted in one sync: held; once they are back, plays flow again."""
    started(kizuna)
    ids = tuple(f"ACC-{i:05d}" for i in range(1, 61))
    kizuna.store.apply_sync("demo", [SyncBatch("t", deleted={"accounts": ids})])
    held = kizuna.decide()
    assert held.guard.held and "live accounts" in held.guard.reason
    kizuna.apply(held)
    kizuna.store.apply_sync("demo", [SyncBatch("t", tuple(
        demo.account for demo in kizuna.connector.accounts()))])
    again = kizuna.decide()
    assert not again.guard.held
    kizuna.apply(again)
    assert kizuna.decide().guard.held is False


def test_renewals_are_not_held(kizuna: Kizuna) -> None:
    """Renewal dates do not depend on usage data: renewal plays still open during a hold."""
    kizuna.sync()
    kizuna.apply(kizuna.decide())  # baseline
    for play in kizuna.ledger.plays("demo"):
        kizuna.ledger.close([play.key], kizuna.today() - timedelta(days=365))
    stale = Kizuna(kizuna.settings, kizuna.rules, kizuna.store, kizuna.connector,
                   clock=lambda: NOW + timedelta(days=60))
    decisions = stale.decide()
    assert decisions.guard.held
    assert any(p.playbook_id == "renewal_approaching" for p in decisions.new_plays)
