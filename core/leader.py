"""Leader election for the scheduler: a lease row in the shared store.

Any number of ``kizuna serve`` processes may share one database; the one holding the
``scheduler`` lease runs the scheduled jobs. The holder renews it well before it expires; if the
holder dies, the lease runs out and a follower takes it over at its next attempt (within
``ttl + renew_every``, well under a minute by default). Works the same on PostgreSQL and SQLite:
the conditional UPDATE is atomic on both. Effects stay exactly-once even if two processes ever
overlapped, because every play and message is keyed in the ledger.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core import schema as t
from core.store import Store

log = logging.getLogger(__name__)


def process_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Lease:
    def __init__(self, store: Store, name: str = "scheduler", *, holder: str | None = None,
                 ttl: timedelta = timedelta(seconds=45),
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.name = name
        self.holder = holder or process_identity()
        self.ttl = ttl
        self.clock = clock or (lambda: datetime.now(UTC))
        self.held = False

    def acquire(self) -> bool:
        """Take or renew the lease; True while this process is the leader."""
        now = self.clock()
        table = t.leases
        with self.store.begin() as conn:
            # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
            taken = conn.execute(update(table).where(
                table.c.name == self.name,
                or_(table.c.holder == self.holder, table.c.expires_at < now),
            ).values(holder=self.holder, expires_at=now + self.ttl,
                     acquired_at=now if not self.held else table.c.acquired_at)
                .returning(table.c.name)).first() is not None
            if not taken:
                insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
                taken = conn.execute(insert(table).values(
                    name=self.name, holder=self.holder, acquired_at=now,
                    expires_at=now + self.ttl).on_conflict_do_nothing(index_elements=["name"])
                    .returning(table.c.name)).first() is not None
        if bool(taken) != self.held:
            log.info("%s %s the %s lease", self.holder, "took" if taken else "lost", self.name)
        self.held = bool(taken)
        return self.held

    def release(self) -> None:
        """Give the lease up (on a clean shutdown) so a follower need not wait for it to expire."""
        table = t.leases
        with self.store.begin() as conn:
            conn.execute(update(table).where(table.c.name == self.name,
                                             table.c.holder == self.holder)
                         .values(expires_at=self.clock() - timedelta(seconds=1)))
        self.held = False

    def current(self) -> tuple[str, datetime] | None:
        """(holder, expires_at) of the lease as stored, whoever holds it."""
        table = t.leases
        with self.store.engine.connect() as conn:
            row = conn.execute(select(table.c.holder, table.c.expires_at)
                               .where(table.c.name == self.name)).first()
        return (row.holder, row.expires_at) if row else None
