"""The Kizuna service: one tick = sync → score → segment → evaluate → deliver.

The CLI, the scheduler and the Slack bot all call these methods; none of them re-implements a
step. Construction is split so that every configuration check (playbooks, scorecard, templates)
runs in ``Rules.load`` before the store or the CRM is touched.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from time import monotonic
from typing import Any, Protocol

from rapidfuzz import fuzz, process
from sqlalchemy import func, select

from bot.blocks import nudge_message
from connectors.base import Connector
from core import schema
from core.config import Settings
from core.domain import (
    Account,
    AccountSignals,
    Activity,
    ActivityKind,
    CrmTask,
    EmailDraft,
    Play,
    PlayState,
    StepState,
    SyncBatch,
)
from core.errors import (
    ConfigError,
    ConnectorError,
    DeliveryError,
    FatalAPIError,
    KizunaError,
    NotFoundError,
)
from core.faults import crash_point
from core.guard import DataGuard, Verdict, is_guarded
from core.ledger import Action, History, Ledger, play_key, play_ref
from core.render import Renderer
from core.store import Store, SyncCounts
from core.text import search_key
from playbooks.catalog import Playbook, Variant, load_playbooks, reason_context, sample_facts
from playbooks.engine import Evaluation, Evaluator
from playbooks.facts import fact_labels

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


# -- configuration checked up front ------------------------------------------------------------

class Rules:
    """Playbooks, scorecard, portfolio and templates, validated together before anything runs."""

    def __init__(self, settings: Settings, renderer: Renderer, playbooks: list[Playbook]) -> None:
        self.settings = settings
        self.config = settings.config
        self.renderer = renderer
        self.playbooks = {pb.id: pb for pb in playbooks}
        self.evaluator = Evaluator(settings.config, playbooks)

    @classmethod
    def load(cls, settings: Settings) -> Rules:
        cfg = settings.config
        folder = settings.resolve(cfg.templates.folder) if cfg.templates.folder else None
        if folder is not None and not folder.is_dir():
            raise ConfigError("template folder not found", file=str(folder),
                              field="templates.folder")
        renderer = Renderer(folder)
        pb_folder = settings.resolve(cfg.playbooks.folder) if cfg.playbooks.folder else None
        playbooks = load_playbooks(renderer, pb_folder, cfg.playbooks.disabled,
                                   cells=list(cfg.portfolio.cells))
        rules = cls(settings, renderer, playbooks)
        rules.check_templates()
        return rules

    def labels(self, language: str) -> dict[str, str]:
        return fact_labels(language, self.config.usage.label.get(language))

    def check_templates(self) -> None:
        """Render every draft and task template once with sample data (StrictUndefined)."""
        account = Account(source="demo", crm_id="SAMPLE", name="Acme", owner_email="csm@x.test",
                          renewal_date=date(2030, 1, 1), contract_start=date(2029, 1, 1))
        facts = sample_facts()
        for pb in self.playbooks.values():
            for variant in [pb.default, *pb.variants]:
                for lang in ("ja", "en"):
                    play = _sample_play(pb, variant, account, facts)
                    if pb.spec.actions.email_draft:
                        self.email(play, account, None, lang, csm=_csm_sample())
                    self.task_text(play, account, lang)

    def email_template(self, playbook_id: str, variant: str | None, language: str) -> str:
        names = []
        if variant:
            names.append(f"email/{playbook_id}.{variant}.{language}.j2")
        names += [f"email/{playbook_id}.{language}.j2", f"email/default.{language}.j2"]
        return self.renderer.first(*names)

    def email(self, play: Play, account: Account, contact: Any, language: str,
              csm: Mapping[str, str]) -> EmailDraft:
        name = self.email_template(play.playbook_id, play.variant, language)
        context = self._context(play, account, language)
        context.update(contact=contact, csm=csm)
        body, subject = self.renderer.render_module(name, context, "subject")
        if not subject:
            raise ConfigError("template sets no subject ({% set subject = ... %})", file=name)
        return EmailDraft(play_key=play.key, account_id=account.crm_id, language=language,
                          to_name=getattr(contact, "name", None),
                          to_email=getattr(contact, "email", None), subject=subject, body=body)

    def task_text(self, play: Play, account: Account, language: str) -> tuple[str, str]:
        context = self._context(play, account, language)
        subject = self.renderer.render(f"task/subject.{language}.j2", context)
        body = self.renderer.render(f"task/body.{language}.j2", context)
        return subject.replace("\n", " ")[:255], body

    def _context(self, play: Play, account: Account, language: str) -> dict[str, Any]:
        evidence = play.evidence
        return {
            "account": account,
            "play": {"title": play.title.get(language, ""), "reason": play.reason.get(language, ""),
                     "variant": play.variant, "due_on": play.due_on,
                     "playbook_id": play.playbook_id, "ref": play.ref},
            "facts": dict(evidence.get("facts", {})),
            "params": dict(evidence.get("params", {})),
            "health": dict(evidence.get("health", {"score": None, "band": None})),
            "labels": self.labels(language),
            "company": self.config.company,
            "language": language,
        }


def _csm_sample() -> dict[str, str]:
    return {"name_ja": "佐藤", "name_en": "Sato", "email": "csm@example.com"}


def _sample_play(pb: Playbook, variant: Variant, account: Account,
                 facts: Mapping[str, Any]) -> Play:
    evidence = {"facts": {f: facts.get(f) for f in pb.spec.evidence},
                "params": dict(pb.spec.params), "health": {"score": 55.0, "band": "yellow"}}
    return Play(key="sample", ref="kz-sample", playbook_id=pb.id, variant=variant.id,
                source=account.source, account_id=account.crm_id, episode=1,
                severity=variant.severity, state=PlayState.OPEN, opened_on=date(2030, 1, 1),
                due_on=date(2030, 1, 8), title={"ja": variant.title.ja, "en": variant.title.en},
                reason={"ja": "", "en": ""}, evidence=evidence)


# -- delivery of nudges ------------------------------------------------------------------------

@dataclass(frozen=True)
class Nudge:
    """A message for one CSM about one play, as the bot will post it."""

    play: Play
    account: Account
    recipient: str | None  # the owner's email; the notifier maps it to a Slack user
    payload: dict[str, Any]


class Notifier(Protocol):
    def send(self, nudge: Nudge) -> tuple[str, str | None]:
        """Deliver; return (channel, message ts). Raise DeliveryError to retry next tick."""


class NudgeHeld(DeliveryError):
    """The notifier keeps a nudge for later (quiet hours, weekend): pending, but not an error."""


class PreviewNotifier:
    """Keeps nudges in memory for the terminal (demo, dry runs) instead of posting them."""

    def __init__(self) -> None:
        self.sent: list[Nudge] = []
        self.alerts: list[tuple[str, str]] = []

    def send(self, nudge: Nudge) -> tuple[str, str | None]:
        self.sent.append(nudge)
        return "preview", None

    def alert(self, key: str, text: str) -> None:
        self.alerts.append((key, text))


# -- reports -----------------------------------------------------------------------------------

@dataclass
class Finding:
    """One (account, playbook) outcome, as the dry run and the tick report it."""

    account_id: str
    account_name: str
    owner_email: str | None
    playbook_id: str
    outcome: str  # open / already_open / cooldown / limit / close / skipped
    variant: str | None = None
    severity: str | None = None
    reason: Mapping[str, str] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    until: date | None = None
    play_key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v)
                for k, v in self.__dict__.items() if v not in (None, [], {})}


@dataclass
class Decisions:
    today: date
    accounts: int = 0
    findings: list[Finding] = field(default_factory=list)
    new_plays: list[Play] = field(default_factory=list)
    to_close: list[Play] = field(default_factory=list)
    health: list[tuple[str, float, str]] = field(default_factory=list)
    bands: Counter = field(default_factory=Counter)
    cells: Counter = field(default_factory=Counter)
    with_usage: int = 0
    guard: Verdict | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.findings if f.outcome == outcome)


@dataclass
class SyncResult:
    counts: SyncCounts
    stats: Mapping[str, Any]
    seconds: float


@dataclass
class Delivery:
    tasks: list[tuple[Play, str]] = field(default_factory=list)
    completed: list[Play] = field(default_factory=list)
    drafts: list[EmailDraft] = field(default_factory=list)
    nudges: list[Nudge] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    held: list[Nudge] = field(default_factory=list)


@dataclass
class TickReport:
    decisions: Decisions
    delivery: Delivery
    sync: SyncResult | None = None
    opened: int = 0
    closed: int = 0


# -- the account card ------------------------------------------------------------------------

@dataclass
class AccountCard:
    """What a CSM wants to see about one account, for `kizuna account` and `/account`."""

    account: Account
    evaluation: Evaluation | None
    last_contact_at: datetime | None
    open_plays: list[Play]
    recent: list[Any]
    contacts: list[Any]

    def as_dict(self, language: str) -> dict[str, Any]:
        a = self.account
        ev = self.evaluation
        health = None
        if ev is not None:
            health = {"score": ev.health.score, "band": ev.health.band,
                      "pulled_down_by": [m.id for m in ev.health.pulled_down_by()],
                      "missing": list(ev.health.missing),
                      "measures": [{"id": m.id, "value": m.value, "score": round(m.score, 1),
                                    "weight": m.weight} for m in ev.health.measures]}
        return {
            "id": a.crm_id, "source": a.source, "name": a.name, "owner": a.owner_email,
            "language": a.language, "arr": a.arr, "potential": a.potential,
            "renewal_date": a.renewal_date.isoformat() if a.renewal_date else None,
            "contract_start": a.contract_start.isoformat() if a.contract_start else None,
            "health": health,
            "portfolio": None if ev is None else {
                "cell": ev.placement.cell, "touch": ev.placement.touch,
                "cadence_days": ev.placement.cadence_days},
            "last_touch": self.last_contact_at.isoformat() if self.last_contact_at else None,
            "usage_30d": None if ev is None else ev.facts.get("usage_30d"),
            "open_plays": [{"key": p.key, "playbook": p.playbook_id, "state": str(p.state),
                            "due_on": p.due_on.isoformat(), "title": p.title.get(language)}
                           for p in self.open_plays],
            "recent_activity": [{"kind": str(r.kind), "at": r.occurred_at.isoformat(),
                                 "subject": r.subject} for r in self.recent],
        }



# -- the service -------------------------------------------------------------------------------

_LATIN = re.compile(r"[a-z]")


class NameIndex:
    """Folded account names in memory: every word as a substring, else fuzzy — the steps of
    ``Store.search_accounts`` and the fuzzy fallback, for stores of ``FROM_ACCOUNTS`` or more."""

    FROM_ACCOUNTS = 5_000
    MAX_AGE = 300.0

    def __init__(self, key: tuple, rows: list[tuple[str, str, str]]) -> None:
        rows.sort(key=lambda r: (len(r[1]), r[2]))  # the order Store.search_accounts uses
        self.key = key
        self.ids = [r[0] for r in rows]
        self.keys = [r[1] for r in rows]
        # One string of all names (keys hold no newline: search_key collapses whitespace), so a
        # word is found with str.find at C speed; starts maps a position back to its name.
        self.blob = "\n".join(self.keys)
        self.starts = list(accumulate((len(k) + 1 for k in self.keys[:-1]), initial=0))
        # For the fuzzy step: a query in Latin letters can only come close to names that have
        # some, a query in kana/kanji only to names with those.
        latin = [i for i, k in enumerate(self.keys) if _LATIN.search(k)]
        other = [i for i, k in enumerate(self.keys) if not k.isascii()]
        self.pools = {"latin": (latin, [self.keys[i] for i in latin]),
                      "other": (other, [self.keys[i] for i in other]),
                      "all": (range(len(self.keys)), self.keys)}
        self.loaded = monotonic()

    def fresh(self) -> bool:
        return monotonic() - self.loaded < self.MAX_AGE

    def find(self, query: str, limit: int) -> list[str]:
        key = search_key(query)
        words = key.split()
        if not words:
            return []
        keys = self.keys
        first, *others = sorted(words, key=len, reverse=True)  # the rarest-looking word first
        hits: list[int] = []
        at = self.blob.find(first)
        while at >= 0 and len(hits) < limit:  # names are in search order: the first hits win
            i = bisect_right(self.starts, at) - 1
            if all(word in keys[i] for word in others):
                hits.append(i)
            if i + 1 >= len(keys):
                break
            at = self.blob.find(first, self.starts[i + 1])
        if hits:
            return [self.ids[i] for i in hits]
        # WRatio on every name is too slow at this size: a quick QRatio pass picks the
        # thousand names that could be close, WRatio ranks those with the store's cut-off.
        if key.isascii():
            pool, pool_keys = self.pools["latin" if _LATIN.search(key) else "all"]
        else:
            pool, pool_keys = self.pools["all" if _LATIN.search(key) else "other"]
        rough = process.extract(key, pool_keys, scorer=fuzz.QRatio, limit=1000, score_cutoff=40)
        near = [pool[j] for _, _, j in rough]
        best = process.extract(key, [keys[i] for i in near], scorer=fuzz.WRatio, limit=limit,
                               score_cutoff=70)
        return [self.ids[near[j]] for _, _, j in best]


class Kizuna:
    _names: NameIndex | None = None

    def __init__(self, settings: Settings, rules: Rules, store: Store, connector: Connector, *,
                 notifier: Notifier | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.config = settings.config
        self.rules = rules
        self.store = store
        self.ledger = Ledger(store)
        self.connector = connector
        self.notifier = notifier or PreviewNotifier()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.source = connector.name

    # time ------------------------------------------------------------------------------------

    def today(self) -> date:
        return self.clock().astimezone(self.settings.tz).date()

    def _end_of(self, day: date) -> datetime:
        return datetime.combine(day + timedelta(days=1), time(0), self.settings.tz)

    # sync ------------------------------------------------------------------------------------

    def sync(self, observe: Callable[[SyncBatch], None] | None = None) -> SyncResult:
        """Pull what changed since the stored cursors; all-or-nothing.

        ``observe`` sees every batch as it arrives (the CLI's progress bar).
        """
        cursors = self.store.cursors(self.source)
        run = self.store.start_sync(self.source, full=not cursors)
        started = datetime.now(UTC)
        batches = self.connector.pull(cursors)
        if observe is not None:
            batches = _observed(batches, observe)
        try:
            counts = self.store.apply_sync(self.source, batches)
        except KizunaError as exc:
            stats = dict(self.connector.stats())
            self.store.finish_sync(run, status="failed", error=str(exc),
                                   api_calls=stats.get("api_calls"))
            raise
        stats = dict(self.connector.stats())
        self.store.finish_sync(run, status="ok", counts=counts.as_dict(),
                               api_calls=stats.get("api_calls"))
        return SyncResult(counts, stats, (datetime.now(UTC) - started).total_seconds())

    # evaluation ------------------------------------------------------------------------------

    def signals(self, day: date) -> Iterator[AccountSignals]:
        usage = self.config.usage
        return self.store.signals(self.source, today=day, until=self._end_of(day),
                                  usage_metric=usage.metric,
                                  usage_days=usage.stale_after_days + 2 * usage.window_days + 10)

    def decide(self, day: date | None = None) -> Decisions:
        """Evaluate every account and decide, against the ledger, what to open and close."""
        day = day or self.today()
        history = self.ledger.history(self.source, day)
        decisions = Decisions(today=day)
        live: set[str] = set()
        for ev in self.rules.evaluator.evaluate_all(self.signals(day), day):
            crash_point("mid_evaluation")
            live.add(ev.account.crm_id)
            decisions.accounts += 1
            decisions.with_usage += ev.facts["usage_30d"] is not None
            decisions.cells[ev.placement.cell] += 1
            decisions.bands[ev.health.band or "unknown"] += 1
            if ev.health.score is not None:
                decisions.health.append((ev.account.crm_id, ev.health.score, ev.health.band))
            self._decide_account(ev, history, day, decisions)
        decisions.guard = DataGuard(self.store, self.source).judge(decisions.accounts,
                                                                   decisions.with_usage)
        if decisions.guard.held:
            self._hold(decisions)
        else:  # accounts deleted in the CRM: their plays end (never during a data-guard hold)
            for (playbook_id, account_id), play in history.active.items():
                if account_id not in live:
                    decisions.to_close.append(play)
                    decisions.findings.append(Finding(
                        account_id, account_id, None, playbook_id, "close", play_key=play.key,
                        reason={"ja": "CRMでアカウントが削除されました",
                                "en": "the account was deleted in the CRM"}))
        return decisions

    def _hold(self, decisions: Decisions) -> None:
        """Suspect data: open and close nothing for playbooks that read usage or contact."""
        held = {pb.id for pb in self.rules.playbooks.values()
                if is_guarded(pb.spec.category, pb.referenced)}
        decisions.new_plays = [p for p in decisions.new_plays if p.playbook_id not in held]
        decisions.to_close = [p for p in decisions.to_close if p.playbook_id not in held]
        for finding in decisions.findings:
            if finding.playbook_id in held and finding.outcome in ("open", "close"):
                finding.outcome = "held"

    def _decide_account(self, ev: Evaluation, history: History, day: date,
                        decisions: Decisions) -> None:
        account = ev.account
        for pb, variant in ev.fired:
            pair = (pb.id, account.crm_id)
            finding = self._finding(ev, pb, "open", variant)
            active = history.active.get(pair)
            last = history.last_ended.get(pair)
            if active is not None:
                finding.outcome, finding.play_key = "already_open", active.key
            elif last is not None and (day - last).days < pb.spec.cooldown_days:
                finding.outcome = "cooldown"
                finding.until = last + timedelta(days=pb.spec.cooldown_days)
            elif pb.spec.max_per_year and history.opened_last_year.get(pair, 0) >= \
                    pb.spec.max_per_year:
                finding.outcome = "limit"
            else:
                play = self._new_play(ev, pb, variant, history.episodes.get(pair, 0) + 1, day,
                                      finding)
                finding.play_key = play.key
                decisions.new_plays.append(play)
            decisions.findings.append(finding)
        for pb in ev.cleared:
            active = history.active.get((pb.id, account.crm_id))
            if active is not None:
                decisions.to_close.append(active)
                decisions.findings.append(Finding(
                    account.crm_id, account.name, account.owner_email, pb.id, "close",
                    play_key=active.key))
        for pb, missing in ev.skipped:
            decisions.findings.append(Finding(account.crm_id, account.name, account.owner_email,
                                              pb.id, "skipped", missing=missing))

    def _finding(self, ev: Evaluation, pb: Playbook, outcome: str, variant: Variant) -> Finding:
        facts = ev.facts
        ctx = reason_context(facts, pb.spec.params, ev.account.name)
        reason = {}
        for lang in ("ja", "en"):
            text = getattr(variant.reason, lang)
            reason[lang] = self.rules.renderer.render_string(
                text, ctx, file=pb.file, line=pb.line_of("reason", lang), field=f"reason.{lang}")
        evidence = {
            "facts": {name: _rounded(facts.get(name)) for name in pb.spec.evidence},
            "params": dict(pb.spec.params),
            "health": _health_evidence(ev, self.rules),
            "cell": ev.placement.cell, "touch": ev.placement.touch,
            "potential_band": ev.placement.potential_band,
            "engagement": ev.placement.engagement, "cadence_days": ev.placement.cadence_days,
        }
        return Finding(ev.account.crm_id, ev.account.name, ev.account.owner_email, pb.id,
                       outcome, variant=variant.id, severity=str(variant.severity),
                       reason=reason, evidence=evidence)

    def _new_play(self, ev: Evaluation, pb: Playbook, variant: Variant, episode: int, day: date,
                  finding: Finding) -> Play:
        key = play_key(pb.id, self.source, ev.account.crm_id, episode)
        actions = pb.spec.actions
        return Play(
            key=key, ref=play_ref(key), playbook_id=pb.id,
            variant=None if variant is pb.default else variant.id, source=self.source,
            account_id=ev.account.crm_id, episode=episode, severity=variant.severity,
            state=PlayState.OPEN, opened_on=day, due_on=day + timedelta(days=pb.spec.due_in_days),
            title={"ja": variant.title.ja, "en": variant.title.en}, reason=finding.reason,
            evidence=finding.evidence,
            task_state=StepState.PENDING if actions.crm_task else StepState.SKIPPED,
            nudge_state=StepState.PENDING if actions.slack_nudge else StepState.SKIPPED)

    # the tick --------------------------------------------------------------------------------

    def tick(self, *, sync: bool = True) -> TickReport:
        sync_result = self.sync() if sync else None
        crash_point("after_sync")
        decisions = self.decide()
        report = self.apply(decisions)
        report.sync = sync_result
        return report

    def apply(self, decisions: Decisions) -> TickReport:
        """Record health, open and close plays, then deliver whatever is pending."""
        if decisions.guard is not None and DataGuard(self.store, self.source).record(
                decisions.guard):
            self.alert(f"data-guard:{self.source}:{decisions.today}",
                        f"Kizuna is holding usage and contact playbooks: "
                        f"{decisions.guard.reason}. They resume after the next good sync.")
        if decisions.guard is None or not decisions.guard.held:
            self.store.record_health(self.source, decisions.today, decisions.health)
        opened = self.ledger.insert(decisions.new_plays)
        closed = self.ledger.close([p.key for p in decisions.to_close], decisions.today)
        delivery = Delivery()
        if self.config.playbooks.complete_tasks_on_close:
            self._complete_tasks(decisions.to_close, delivery)
        self.deliver(delivery)
        return TickReport(decisions, delivery, opened=opened, closed=closed)

    def alert(self, key: str, text: str) -> None:
        """Tell the admin once (the notifier's ``alert``, when it has one) and log it."""
        log.warning("%s", text)
        alert = getattr(self.notifier, "alert", None)
        if alert is not None:
            alert(key, text)

    def backfill_health(self, days: int = 14) -> int:
        """Score the past ``days`` days from history, so trends exist from the first run."""
        today = self.today()
        done = 0
        for back in range(days, 0, -1):
            day = today - timedelta(days=back)
            scores = [(ev.account.crm_id, ev.health.score, ev.health.band)
                      for ev in self.rules.evaluator.evaluate_all(self.signals(day), day)
                      if ev.health.score is not None]
            self.store.record_health(self.source, day, scores)
            done += 1
        return done

    # delivery --------------------------------------------------------------------------------

    def _complete_tasks(self, plays: list[Play], delivery: Delivery) -> None:
        for play in plays:
            if play.task_id and play.task_state == StepState.DONE:
                try:
                    self.connector.complete_task(play.task_id)
                except ConnectorError as exc:
                    delivery.errors.append(f"{play.key}: completing task failed: {exc}")
                    continue
                self.ledger.mark_task(play.key, StepState.COMPLETED)
                delivery.completed.append(play)

    def deliver(self, delivery: Delivery | None = None) -> Delivery:
        """Do every pending side effect; each success is committed right after it happened."""
        delivery = delivery or Delivery()
        self.ledger.wake(self.source, self.today())
        active = [PlayState.OPEN, PlayState.SNOOZED]
        pending_tasks = self.ledger.plays(self.source, states=active,
                                          task_state=StepState.PENDING)
        pending_drafts = [p for p in self.ledger.without_draft(self.source)
                          if self._playbook_wants(p, "email_draft")]
        pending_nudges = self.ledger.plays(self.source, states=[PlayState.OPEN],
                                           nudge_state=StepState.PENDING)
        # Most important first: a notifier with a daily cap sends these and digests the rest.
        pending_nudges.sort(key=lambda p: (_SEVERITY_RANK.get(str(p.severity), 9), p.due_on))
        ids = {p.account_id for p in (*pending_tasks, *pending_drafts, *pending_nudges)}
        accounts = self.store.accounts_by_ids(self.source, sorted(ids))
        for play in pending_tasks:
            account = accounts.get(play.account_id)
            if account is not None:
                self._create_task(play, account, delivery)
        for play in pending_drafts:
            account = accounts.get(play.account_id)
            if account is not None:
                delivery.drafts.append(self._draft(play, account))
        for play in pending_nudges:
            account = accounts.get(play.account_id)
            if account is not None:
                self._nudge(play, account, delivery)
        return delivery

    def _playbook_wants(self, play: Play, action: str) -> bool:
        pb = self.rules.playbooks.get(play.playbook_id)
        return pb is not None and getattr(pb.spec.actions, action)

    def crm_task(self, play: Play, account: Account) -> CrmTask:
        language = account.language
        subject, body = self.rules.task_text(play, account, language)
        return CrmTask(ref=play.ref, account_id=account.crm_id, owner_email=account.owner_email,
                       subject=subject, body=body, due_on=play.due_on, priority=play.severity,
                       language=language)

    def _create_task(self, play: Play, account: Account, delivery: Delivery) -> None:
        try:
            task_id = self.connector.create_task(self.crm_task(play, account))
            crash_point("after_task_created")
        except FatalAPIError as exc:
            self.ledger.mark_task(play.key, StepState.FAILED)
            delivery.errors.append(f"{play.key}: task rejected: {exc}")
            return
        except ConnectorError as exc:
            delivery.errors.append(f"{play.key}: task not created yet (will retry): {exc}")
            return
        self.ledger.mark_task(play.key, StepState.DONE, task_id)
        delivery.tasks.append((play, task_id))

    def _draft(self, play: Play, account: Account) -> EmailDraft:
        contacts = self.store.contacts_of(self.source, account.crm_id)
        contact = contacts[0] if contacts else None
        draft = self.rules.email(play, account, contact, account.language,
                                 csm=self.csm(account.owner_email))
        self.ledger.save_draft(draft)
        return draft

    def _nudge(self, play: Play, account: Account, delivery: Delivery) -> None:
        play = self.ledger.get(play.key) or play  # the task step may have just changed
        nudge = Nudge(play, account, account.owner_email, self.nudge_payload(play, account))
        try:
            channel, ts = self.notifier.send(nudge)
            crash_point("after_nudge_sent")
        except NudgeHeld:
            delivery.held.append(nudge)
            return
        except DeliveryError as exc:
            delivery.errors.append(f"{play.key}: nudge not delivered yet (will retry): {exc}")
            return
        self.ledger.mark_nudge(play.key, StepState.DONE, channel=channel, ts=ts)
        delivery.nudges.append(nudge)

    def nudge_payload(self, play: Play, account: Account, *,
                      note: str | None = None) -> dict[str, Any]:
        """The Block Kit message for a play, as posted and as re-drawn after a button click."""
        language = self.config.language
        owner = self.csm(account.owner_email)
        pb = self.rules.playbooks.get(play.playbook_id)
        return nudge_message(play, account, language=language,
                             owner_name=owner["name_en" if language == "en" else "name_ja"],
                             labels=self.rules.labels(language),
                             auto_task=pb is None or pb.spec.actions.crm_task, note=note)

    # people acting on plays (Slack buttons) -----------------------------------------------------

    def play(self, ref_or_key: str) -> Play:
        """A play by its ``kz-`` reference (Slack buttons) or its key."""
        play = self.ledger.by_ref(ref_or_key) or self.ledger.get(ref_or_key)
        if play is None:
            raise NotFoundError(f"no play {ref_or_key}")
        return play

    def account_of(self, play: Play) -> Account:
        account = self.store.account(play.source, play.account_id)
        if account is None:
            raise NotFoundError(f"account {play.account_id} is not in the local store")
        return account

    def done(self, key: str, actor: str) -> Action:
        return self.ledger.finish(key, PlayState.DONE, self.today(), actor)

    def not_useful(self, key: str, actor: str) -> Action:
        """Dismiss a play; counted against its playbook's precision."""
        return self.ledger.finish(key, PlayState.DISMISSED, self.today(), actor,
                                  feedback="not_useful")

    def snooze(self, key: str, until: date, actor: str) -> Action:
        if until <= self.today():
            raise ValueError(f"snooze date {until.isoformat()} is not in the future")
        return self.ledger.snooze(key, until, actor)

    def create_task_now(self, key: str, actor: str) -> tuple[Action, str]:
        """Create the play's CRM task on request (idempotent: the connector dedupes on the ref)."""
        play = self.play(key)
        if play.task_state in (StepState.DONE, StepState.COMPLETED) and play.task_id:
            return Action(play, False, self.ledger.actor(play.key)), play.task_id
        task_id = self.connector.create_task(self.crm_task(play, self.account_of(play)))
        self.ledger.mark_task(play.key, StepState.DONE, task_id)
        play = self.play(play.key)
        self.ledger.record(play, "task_created", actor, {"task_id": task_id})
        return Action(play, True, actor), task_id

    def email_draft(self, key: str) -> EmailDraft:
        """The play's drafted email (made now if the tick has not drafted it yet)."""
        play = self.play(key)
        return self.ledger.draft(play.key) or self._draft(play, self.account_of(play))

    def log_email_sent(self, key: str, subject: str, body: str, actor: str) -> str:
        """Record that the CSM sent the email: a completed CRM task carrying the text, plus a
        local email activity so the account's last touch moves now rather than after a sync.
        Idempotent: the task's ref is derived from the play, so a second log finds the first."""
        play = self.play(key)
        account = self.account_of(play)
        ref = play_ref(f"{play.key}#email")
        task = CrmTask(ref=ref, account_id=account.crm_id, owner_email=account.owner_email,
                       subject=subject[:255], body=body, due_on=self.today(),
                       priority=play.severity, language=account.language)
        task_id = self.connector.create_task(task)
        self.connector.complete_task(task_id)
        activity = Activity(source=play.source, crm_id=f"kizuna-{ref}", account_id=account.crm_id,
                            kind=ActivityKind.EMAIL, occurred_at=self.clock(),
                            owner_email=account.owner_email, subject=subject[:500])
        self.store.apply_sync(play.source, [SyncBatch("kizuna", (activity,))])
        self.ledger.record(play, "email_logged", actor, {"task_id": task_id, "subject": subject})
        return task_id

    # accounts --------------------------------------------------------------------------------

    def card(self, account: Account) -> AccountCard:
        day = self.today()
        signals = list(self.store.signals(
            self.source, today=day, until=self._end_of(day), usage_metric=self.config.usage.metric,
            usage_days=self.config.usage.stale_after_days + 2 * self.config.usage.window_days + 10,
            account_id=account.crm_id))
        evaluation = self.rules.evaluator.evaluate(signals[0], day) if signals else None
        plays = self.ledger.plays(self.source, account_id=account.crm_id,
                                  states=[PlayState.OPEN, PlayState.SNOOZED])
        return AccountCard(account, evaluation, signals[0].last_contact_at if signals else None,
                           plays, self.store.recent_activities(self.source, account.crm_id),
                           self.store.contacts_of(self.source, account.crm_id))

    def find_accounts(self, query: str, *, limit: int = 5) -> list[Account]:
        """Accounts matching a person's query: CRM id, then name words, then fuzzy on the name."""
        exact = self.store.account(self.source, query.strip())
        if exact is not None:
            return [exact]
        index = self._name_index()
        if index is not None:  # a large store: the same three steps, on names held in memory
            ids = index.find(query, limit)
            by_id = self.store.accounts_by_ids(self.source, ids)
            return [by_id[i] for i in ids if i in by_id]
        found = self.store.search_accounts(self.source, query, limit=limit)
        if found:
            return found
        names = self.store.account_names(self.source)
        key = search_key(query)
        if not key:
            return []
        best = process.extract(key, {crm_id: name for crm_id, name in names},
                               scorer=fuzz.WRatio, limit=limit, score_cutoff=70)
        ids = [crm_id for _, _, crm_id in best]
        by_id = self.store.accounts_by_ids(self.source, ids)
        return [by_id[i] for i in ids if i in by_id]


    def _name_index(self) -> NameIndex | None:
        """Names of a store with many accounts, kept in memory until the next sync.

        Reading 100,000 names per query would cost more than Slack's patience for /account;
        the index (or the finding that the store is small) is kept until the last sync run
        changes, or for five minutes, so a sync in another process is seen soon after.
        """
        run = self.store.last_sync(self.source) or {}
        key = (run.get("id"), run.get("status"), run.get("finished_at"))
        cached = self._names
        if cached is not None and cached.key == key and cached.fresh():
            return cached if cached.ids else None
        index = NameIndex(key, [])
        if self.store.account_count(self.source) >= NameIndex.FROM_ACCOUNTS:
            a = schema.accounts
            with self.store.engine.connect() as conn:
                rows = conn.execute(select(a.c.crm_id, a.c.name_key, a.c.name).where(
                    a.c.source == self.source, a.c.deleted.is_(False))).all()
            index = NameIndex(key, [tuple(r) for r in rows])
        self._names = index
        return index if index.ids else None

    def owned_accounts(self, owner_email: str) -> list[str]:
        """CRM ids of the live accounts one CSM owns."""
        a = schema.accounts
        with self.store.engine.connect() as conn:
            return list(conn.execute(select(a.c.crm_id).where(
                a.c.source == self.source, a.c.deleted.is_(False),
                func.lower(a.c.owner_email) == owner_email.lower())).scalars())

    def book(self, owner_email: str | None = None) -> list[Evaluation]:
        """Today's evaluation of every account one CSM owns (all accounts when None).

        A small book is evaluated account by account; a large share of the store in one pass.
        """
        day = self.today()
        if owner_email is None:
            return list(self.rules.evaluator.evaluate_all(self.signals(day), day))
        ids = self.owned_accounts(owner_email)
        if len(ids) * 20 > self.store.account_count(self.source):
            wanted = set(ids)
            return [ev for ev in self.rules.evaluator.evaluate_all(self.signals(day), day)
                    if ev.account.crm_id in wanted]
        usage = self.config.usage
        out = []
        for crm_id in ids:
            for signals in self.store.signals(
                    self.source, today=day, until=self._end_of(day), usage_metric=usage.metric,
                    usage_days=usage.stale_after_days + 2 * usage.window_days + 10,
                    account_id=crm_id):
                out.append(self.rules.evaluator.evaluate(signals, day))
        return out

    # people ----------------------------------------------------------------------------------

    def csm(self, email: str | None) -> dict[str, str]:
        """Display names of the CSM who owns an account: kizuna.yaml ``team``, else the email."""
        email = email or ""
        for member in self.config.team:
            if member.email.lower() == email.lower() and member.name:
                return {"name_ja": member.name.ja, "name_en": member.name.en, "email": email}
        if self.source == "demo":
            from connectors.demo import OWNERS
            for owner_email, ja, en in OWNERS:
                if owner_email == email:
                    return {"name_ja": ja, "name_en": en, "email": email}
        local = email.split("@")[0] or "CSM"
        return {"name_ja": local, "name_en": local, "email": email}


def _observed(batches: Iterator[SyncBatch],
              observe: Callable[[SyncBatch], None]) -> Iterator[SyncBatch]:
    for batch in batches:
        observe(batch)
        yield batch


def _rounded(value: Any) -> Any:
    """Evidence as people read it: floats to at most 3 significant decimals."""
    if isinstance(value, float):
        return round(value, 1) if abs(value) >= 10 else round(value, 3)
    return value


def _health_evidence(ev: Evaluation, rules: Rules) -> dict[str, Any]:
    labels = rules.evaluator.scorecard.labels
    language = rules.config.language
    weak = [{"id": m.id, "label": labels[m.id].get(language), "score": round(m.score, 1),
             "value": m.value} for m in ev.health.pulled_down_by()]
    return {"score": ev.health.score, "band": ev.health.band, "weak": weak,
            "missing": list(ev.health.missing)}

