"""What the bot remembers in the store: Slack users by email, deliveries, admin notices.

A *delivery* is one message Kizuna means to post — a nudge, a daily digest, a weekly digest —
identified by a deterministic *marker* (``nudge:<ref>:<round>``, ``daily:<email>:<day>``,
``weekly:<year>-W<week>``). The row is written as ``sending`` before Slack is called and turned
``sent`` (with channel and ts) right after Slack accepts, so a crash in between leaves a trace
that the next attempt resolves by looking for the marker in the channel instead of posting
again. Nudges routed to the digest are rows in state ``queued`` until a digest takes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from core import schema as t
from core.domain import Play
from core.errors import DeliveryError
from core.store import Store

SENDING, SENT, FAILED = "sending", "sent", "failed"
QUEUED, DIGESTED, DROPPED, SUPERSEDED = "queued", "digested", "dropped", "superseded"


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    marker: str
    kind: str
    play_key: str | None
    owner_email: str | None
    route: str
    target: str | None
    state: str
    local_day: date
    channel: str | None
    ts: str | None
    digest_marker: str | None
    error: str | None
    created_at: datetime


def _row(r: Any) -> DeliveryRow:
    return DeliveryRow(**{name: r[name] for name in DeliveryRow.__dataclass_fields__})


def _now() -> datetime:
    return datetime.now(UTC)


def _insert(conn: Connection, table: Any) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


class SlackState:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # -- Slack users by email ----------------------------------------------------------------

    def cached_user(self, email: str) -> tuple[bool, str | None, datetime | None]:
        """(known, user id or None, when looked up) for an owner's email."""
        u = t.slack_users
        with self.engine.connect() as conn:
            row = conn.execute(select(u.c.user_id, u.c.looked_up_at)
                               .where(u.c.email == email.lower())).first()
        if row is None:
            return False, None, None
        return True, row.user_id, row.looked_up_at

    def remember_user(self, email: str, user_id: str | None, now: datetime) -> None:
        u = t.slack_users
        with self.store.begin() as conn:
            stmt = _insert(conn, u).values(email=email.lower(), user_id=user_id,
                                           looked_up_at=now)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["email"], set_={"user_id": user_id, "looked_up_at": now}))

    def email_of(self, user_id: str) -> str | None:
        u = t.slack_users
        with self.engine.connect() as conn:
            return conn.execute(select(u.c.email).where(u.c.user_id == user_id)
                                .order_by(u.c.looked_up_at.desc()).limit(1)).scalar()

    # -- admin notices (each said once) --------------------------------------------------------

    def noticed(self, key: str) -> bool:
        n = t.slack_notices
        with self.engine.connect() as conn:
            return conn.execute(select(n.c.key).where(n.c.key == key[:255])).first() is not None

    def remember_notice(self, key: str, text: str, channel: str | None) -> bool:
        """Record a notice; False when it had been recorded already (by another process)."""
        try:
            with self.store.begin() as conn:
                conn.execute(t.slack_notices.insert().values(
                    key=key[:255], text=text, channel=channel, posted_at=_now()))
        except IntegrityError:
            return False
        return True

    # -- deliveries ------------------------------------------------------------------------------

    def delivery(self, marker: str) -> DeliveryRow | None:
        d = t.slack_deliveries
        with self.engine.connect() as conn:
            row = conn.execute(select(d).where(d.c.marker == marker)).mappings().first()
        return _row(row) if row else None

    def current_nudge(self, play_key: str) -> DeliveryRow | None:
        """The live delivery of a play's nudge (earlier rounds are superseded by a wake-up)."""
        d = t.slack_deliveries
        with self.engine.connect() as conn:
            row = conn.execute(select(d).where(d.c.play_key == play_key, d.c.kind == "nudge",
                                               d.c.state != SUPERSEDED)
                               .order_by(d.c.id.desc()).limit(1)).mappings().first()
        return _row(row) if row else None

    def nudge_marker(self, play: Play) -> str:
        d = t.slack_deliveries
        with self.engine.connect() as conn:
            rounds = conn.execute(select(func.count()).where(
                d.c.play_key == play.key, d.c.kind == "nudge")).scalar_one()
        return f"nudge:{play.ref}:{rounds + 1}"

    def begin(self, marker: str, *, kind: str, route: str, target: str | None,
              owner_email: str | None, day: date, play_key: str | None = None,
              state: str = SENDING) -> DeliveryRow:
        """Write the attempt before calling Slack (or reopen a failed one with the same marker)."""
        d = t.slack_deliveries
        now = _now()
        with self.store.begin() as conn:
            reopened = conn.execute(update(d).where(d.c.marker == marker, d.c.state == FAILED)
                                    .values(state=state, route=route, target=target,
                                            local_day=day, error=None, updated_at=now)).rowcount
            if not reopened:
                inserted = conn.execute(_insert(conn, d).values(
                    marker=marker, kind=kind, play_key=play_key, owner_email=owner_email,
                    route=route, target=target, state=state, local_day=day,
                    created_at=now, updated_at=now).on_conflict_do_nothing(
                    index_elements=["marker"])).rowcount
                if not inserted:
                    raise DeliveryError(f"{marker} is being delivered by another process")
        row = self.delivery(marker)
        assert row is not None
        return row

    def mark(self, row_id: int, state: str, *, channel: str | None = None,
             ts: str | None = None, error: str | None = None) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": _now(), "error": error}
        if channel is not None:
            values["channel"] = channel
        if ts is not None:
            values["ts"] = ts
        with self.store.begin() as conn:
            conn.execute(update(t.slack_deliveries).where(t.slack_deliveries.c.id == row_id)
                         .values(**values))

    def sent_today(self, owner_email: str, day: date) -> int:
        """Individual nudges a CSM got (or is being sent) on ``day``: what the cap counts."""
        d = t.slack_deliveries
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                d.c.kind == "nudge", d.c.owner_email == owner_email, d.c.local_day == day,
                d.c.route != "digest", d.c.state.in_([SENDING, SENT]))).scalar_one()

    def channel_of(self, target: str) -> str | None:
        """The channel id Slack reported for an earlier post to ``target`` (a name or a user)."""
        d = t.slack_deliveries
        with self.engine.connect() as conn:
            return conn.execute(select(d.c.channel).where(d.c.target == target,
                                                          d.c.channel.is_not(None))
                                .order_by(d.c.id.desc()).limit(1)).scalar()

    # -- digests ---------------------------------------------------------------------------------

    def queued(self) -> list[DeliveryRow]:
        """Nudges waiting for a digest, by owner."""
        d = t.slack_deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(select(d).where(d.c.kind == "nudge", d.c.state == QUEUED)
                                .order_by(d.c.owner_email, d.c.id)).mappings()
            return [_row(r) for r in rows]

    def assign(self, row_ids: Sequence[int], digest_marker: str) -> None:
        with self.store.begin() as conn:
            conn.execute(update(t.slack_deliveries).where(t.slack_deliveries.c.id.in_(row_ids))
                         .values(digest_marker=digest_marker, updated_at=_now()))

    def finish_digest(self, digest: DeliveryRow, channel: str, ts: str) -> None:
        """The digest is posted: it and every nudge it carried are done, in one transaction."""
        d = t.slack_deliveries
        now = _now()
        with self.store.begin() as conn:
            conn.execute(update(d).where(d.c.id == digest.id).values(
                state=SENT, channel=channel, ts=ts, error=None, updated_at=now))
            conn.execute(update(d).where(d.c.digest_marker == digest.marker, d.c.state == QUEUED)
                         .values(state=DIGESTED, channel=channel, ts=ts, updated_at=now))

    def drop(self, row_ids: Sequence[int]) -> None:
        """Queued nudges whose play ended before the digest went out."""
        if row_ids:
            with self.store.begin() as conn:
                conn.execute(update(t.slack_deliveries)
                             .where(t.slack_deliveries.c.id.in_(list(row_ids)))
                             .values(state=DROPPED, updated_at=_now()))

    def problems(self) -> list[DeliveryRow]:
        """Deliveries that failed or were interrupted, for `kizuna bot --check`."""
        d = t.slack_deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(select(d).where(d.c.state.in_([FAILED, SENDING]))
                                .order_by(d.c.id)).mappings()
            return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        d = t.slack_deliveries
        with self.engine.connect() as conn:
            return {f"{k}:{s}": n for k, s, n in conn.execute(
                select(d.c.kind, d.c.state, func.count()).group_by(d.c.kind, d.c.state))}
