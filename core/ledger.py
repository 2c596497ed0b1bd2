"""The plays ledger: every play with a deterministic key, its state and its delivery steps.

A play's key is ``playbook/source/account/episode``; the episode number only moves on when the
previous play for the same playbook and account has ended, so re-running a tick finds the same
key and inserts nothing new. Side effects (CRM task, Slack nudge) are recorded per play as
separate steps, each committed on its own right after it happened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core import schema as t
from core.domain import EmailDraft, Play, PlayState, Severity, StepState
from core.errors import NotFoundError
from core.faults import crash_point
from core.store import Store

PairKey = tuple[str, str]  # (playbook_id, account_id)
ACTIVE = (PlayState.OPEN.value, PlayState.SNOOZED.value)


def play_key(playbook_id: str, source: str, account_id: str, episode: int) -> str:
    return f"{playbook_id}/{source}/{account_id}/{episode}"


def play_ref(key: str) -> str:
    """A short, stable reference for markers in CRM records and Slack button values."""
    return "kz-" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Action:
    """What a person's click did to a play: whether it changed anything, and the play after.

    ``actor`` is who acted; when nothing changed, it is whoever acted before (a second click).
    """

    play: Play
    changed: bool
    actor: str | None = None


@dataclass
class History:
    """What the ledger remembers per (playbook, account), loaded once per tick."""

    active: dict[PairKey, Play] = field(default_factory=dict)
    last_ended: dict[PairKey, date] = field(default_factory=dict)
    episodes: dict[PairKey, int] = field(default_factory=dict)
    opened_last_year: dict[PairKey, int] = field(default_factory=dict)


def _play(row: Mapping[str, Any]) -> Play:
    return Play(
        key=row["key"], ref=row["ref"], playbook_id=row["playbook_id"], variant=row["variant"],
        source=row["source"], account_id=row["account_id"], episode=row["episode"],
        severity=Severity(row["severity"]), state=PlayState(row["state"]),
        opened_on=row["opened_on"], due_on=row["due_on"], title=row["title"],
        reason=row["reason"], evidence=row["evidence"], closed_on=row["closed_on"],
        snoozed_until=row["snoozed_until"], task_state=StepState(row["task_state"]),
        task_id=row["task_id"], nudge_state=StepState(row["nudge_state"]))


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def history(self, source: str, today: date) -> History:
        p = t.plays
        h = History()
        year_ago = today - timedelta(days=365)
        with self.engine.connect() as conn:
            for row in conn.execute(select(p).where(p.c.source == source,
                                                    p.c.state.in_(ACTIVE))).mappings():
                play = _play(row)
                h.active[(play.playbook_id, play.account_id)] = play
            rows = conn.execute(
                select(p.c.playbook_id, p.c.account_id, func.max(p.c.episode),
                       func.max(p.c.closed_on),
                       func.sum(case((p.c.opened_on >= year_ago, 1), else_=0)))
                .where(p.c.source == source).group_by(p.c.playbook_id, p.c.account_id))
            for pb, account, episode, last_closed, recent in rows:
                pair = (pb, account)
                h.episodes[pair] = episode
                if last_closed is not None:
                    h.last_ended[pair] = last_closed
                h.opened_last_year[pair] = int(recent or 0)
        return h

    def insert(self, plays: Sequence[Play]) -> int:
        """Insert new plays; a key that already exists is left alone (re-runs are harmless)."""
        if not plays:
            return 0
        now = _now()
        rows = [{
            "key": p.key, "ref": p.ref, "playbook_id": p.playbook_id, "variant": p.variant,
            "source": p.source, "account_id": p.account_id, "episode": p.episode,
            "severity": str(p.severity), "state": str(p.state), "opened_on": p.opened_on,
            "due_on": p.due_on, "title": dict(p.title), "reason": dict(p.reason),
            "evidence": dict(p.evidence), "task_state": str(p.task_state),
            "nudge_state": str(p.nudge_state), "updated_at": now,
        } for p in plays]
        inserted = 0
        with self.store.begin() as conn:
            insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
            for i in range(0, len(rows), 500):
                result = conn.execute(insert(t.plays).on_conflict_do_nothing(
                    index_elements=["key"]).returning(t.plays.c.key), rows[i:i + 500])
                inserted += len(result.all())
            crash_point("before_ledger_commit")
        return inserted

    def close(self, keys: Iterable[str], day: date, *, state: PlayState = PlayState.CLOSED,
              actor: str | None = None, feedback: str | None = None) -> int:
        """End active plays. Ended plays stay ended (a second click changes nothing)."""
        keys = list(keys)
        changed = 0
        with self.store.begin() as conn:
            for i in range(0, len(keys), 500):
                result = conn.execute(update(t.plays).where(
                    t.plays.c.key.in_(keys[i:i + 500]), t.plays.c.state.in_(ACTIVE)).values(
                    state=str(state), closed_on=day, acted_by=actor, feedback=feedback,
                    updated_at=_now()))
                changed += result.rowcount
        return changed

    def get(self, key: str) -> Play | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.plays).where(t.plays.c.key == key)).mappings().first()
            return _play(row) if row else None

    def plays(self, source: str, *, account_id: str | None = None,
              states: Sequence[PlayState] | None = None, task_state: StepState | None = None,
              nudge_state: StepState | None = None) -> list[Play]:
        p = t.plays
        q = select(p).where(p.c.source == source)
        if account_id is not None:
            q = q.where(p.c.account_id == account_id)
        if states is not None:
            q = q.where(p.c.state.in_([str(s) for s in states]))
        if task_state is not None:
            q = q.where(p.c.task_state == str(task_state))
        if nudge_state is not None:
            q = q.where(p.c.nudge_state == str(nudge_state))
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(p.c.due_on, p.c.key)).mappings()
            return [_play(r) for r in rows]

    def mark_task(self, key: str, state: StepState, task_id: str | None = None) -> None:
        values: dict[str, Any] = {"task_state": str(state), "updated_at": _now()}
        if task_id is not None:
            values["task_id"] = task_id
        with self.store.begin() as conn:
            conn.execute(update(t.plays).where(t.plays.c.key == key).values(**values))

    def mark_nudge(self, key: str, state: StepState, *, channel: str | None = None,
                   ts: str | None = None) -> None:
        with self.store.begin() as conn:
            conn.execute(update(t.plays).where(t.plays.c.key == key).values(
                nudge_state=str(state), nudge_channel=channel, nudge_ts=ts, updated_at=_now()))

    def save_draft(self, draft: EmailDraft) -> None:
        row = {"play_key": draft.play_key, "account_id": draft.account_id,
               "language": draft.language, "to_name": draft.to_name, "to_email": draft.to_email,
               "subject": draft.subject, "body": draft.body, "created_at": _now()}
        with self.store.begin() as conn:
            insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
            conn.execute(insert(t.email_drafts).on_conflict_do_nothing(
                index_elements=["play_key"]), [row])

    def without_draft(self, source: str) -> list[Play]:
        """Active plays that have no email draft yet."""
        p, d = t.plays, t.email_drafts
        q = (select(p).outerjoin(d, d.c.play_key == p.c.key)
             .where(p.c.source == source, p.c.state.in_(ACTIVE), d.c.play_key.is_(None))
             .order_by(p.c.key))
        with self.engine.connect() as conn:
            return [_play(r) for r in conn.execute(q).mappings()]

    def draft(self, play_key: str) -> EmailDraft | None:
        d = t.email_drafts
        with self.engine.connect() as conn:
            r = conn.execute(select(d).where(d.c.play_key == play_key)).mappings().first()
        if r is None:
            return None
        return EmailDraft(play_key=r["play_key"], account_id=r["account_id"],
                          language=r["language"], to_name=r["to_name"], to_email=r["to_email"],
                          subject=r["subject"], body=r["body"])

    def counts(self, source: str) -> dict[str, int]:
        p = t.plays
        with self.engine.connect() as conn:
            return dict(conn.execute(select(p.c.state, func.count()).where(p.c.source == source)
                                     .group_by(p.c.state)).all())

    # -- people acting on plays (Slack buttons) ---------------------------------------------------

    def by_ref(self, ref: str) -> Play | None:
        """The play a Slack button or CRM marker points at (``kz-`` + 16 hex)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.plays).where(t.plays.c.ref == ref)).mappings().first()
            return _play(row) if row else None

    def actor(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.plays.c.acted_by).where(t.plays.c.key == key)).scalar()

    def finish(self, key: str, state: PlayState, day: date, actor: str,
               feedback: str | None = None) -> Action:
        """End an active play as done or dismissed; an ended play is left as it was."""
        changed = self.close([key], day, state=state, actor=actor, feedback=feedback) > 0
        play = self._require(key)
        if changed:
            self.record(play, str(state) if feedback is None else feedback, actor)
            return Action(play, True, actor)
        return Action(play, False, self.actor(key))

    def snooze(self, key: str, until: date, actor: str) -> Action:
        """Hide an active play until ``until``; snoozing again to the same day changes nothing."""
        p = t.plays
        with self.store.begin() as conn:
            changed = conn.execute(update(p).where(
                p.c.key == key, p.c.state.in_(ACTIVE),
                (p.c.snoozed_until.is_(None)) | (p.c.snoozed_until != until)).values(
                state=PlayState.SNOOZED.value, snoozed_until=until, acted_by=actor,
                updated_at=_now())).rowcount > 0
        play = self._require(key)
        if changed:
            self.record(play, "snoozed", actor, {"until": until.isoformat()})
            return Action(play, True, actor)
        return Action(play, False, self.actor(key))

    def wake(self, source: str, day: date) -> list[str]:
        """Reopen snoozed plays whose day has come; their nudge goes out again as a reminder."""
        p = t.plays
        with self.store.begin() as conn:
            rows = conn.execute(select(p.c.key, p.c.playbook_id, p.c.nudge_state).where(
                p.c.source == source, p.c.state == PlayState.SNOOZED.value,
                p.c.snoozed_until <= day)).all()
            keys = [r.key for r in rows]
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                conn.execute(update(p).where(p.c.key.in_(chunk)).values(
                    state=PlayState.OPEN.value, snoozed_until=None, updated_at=_now()))
                conn.execute(update(p).where(
                    p.c.key.in_(chunk), p.c.nudge_state == StepState.DONE.value).values(
                    nudge_state=StepState.PENDING.value))
                # The earlier Slack message stays as it was; the reminder is a new delivery.
                conn.execute(update(t.slack_deliveries).where(
                    t.slack_deliveries.c.play_key.in_(chunk),
                    t.slack_deliveries.c.kind == "nudge").values(
                    state="superseded", updated_at=_now()))
            now = _now()
            if rows:
                conn.execute(t.play_events.insert(), [
                    {"play_key": r.key, "playbook_id": r.playbook_id, "action": "woke",
                     "actor": None, "at": now, "detail": {"day": day.isoformat()}}
                    for r in rows])
        return keys

    def record(self, play: Play, action: str, actor: str | None,
               detail: Mapping[str, Any] | None = None) -> None:
        """Remember who did what to a play (the message shows it; feedback is counted)."""
        with self.store.begin() as conn:
            conn.execute(t.play_events.insert().values(
                play_key=play.key, playbook_id=play.playbook_id, action=action, actor=actor,
                at=_now(), detail=dict(detail or {})))

    def events(self, key: str) -> list[dict[str, Any]]:
        e = t.play_events
        with self.engine.connect() as conn:
            rows = conn.execute(select(e.c.action, e.c.actor, e.c.at, e.c.detail)
                                .where(e.c.play_key == key).order_by(e.c.id)).mappings()
            return [dict(r) for r in rows]

    def owner_plays(self, source: str, owner_email: str, *,
                    states: Sequence[PlayState] = (PlayState.OPEN,)) -> list[Play]:
        """Plays on the accounts one CSM owns, by due date."""
        p, a = t.plays, t.accounts
        q = (select(p).join(a, (a.c.source == p.c.source) & (a.c.crm_id == p.c.account_id))
             .where(p.c.source == source, func.lower(a.c.owner_email) == owner_email.lower(),
                    p.c.state.in_([str(s) for s in states]))
             .order_by(p.c.due_on, p.c.key))
        with self.engine.connect() as conn:
            return [_play(r) for r in conn.execute(q).mappings()]

    def feedback(self, source: str) -> dict[str, dict[str, int]]:
        """Per playbook: how its plays ended, for precision per playbook (done vs not useful)."""
        p = t.plays
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(p.c.playbook_id, p.c.state, func.count())
                                .where(p.c.source == source)
                                .group_by(p.c.playbook_id, p.c.state))
            for playbook_id, state, n in rows:
                out.setdefault(playbook_id, {})[state] = n
        return out

    def _require(self, key: str) -> Play:
        play = self.get(key)
        if play is None:
            raise NotFoundError(f"no play {key}")
        return play
