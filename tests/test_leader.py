"""Leader election: one scheduler leader at a time, handed over when the leader goes away."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from core.leader import Lease
from core.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_only_one_holder_and_renewal(any_store: Store) -> None:
    """The first process takes the lease, others are followers, the holder can renew."""
    clock = Clock()
    a, b, c = (Lease(any_store, holder=h, clock=clock) for h in "abc")
    assert [a.acquire(), b.acquire(), c.acquire()] == [True, False, False]
    clock.now += timedelta(seconds=30)
    assert a.acquire() and not b.acquire()
    assert any_store and a.current()[0] == "a"


def test_follower_takes_over_after_the_leader_dies(any_store: Store) -> None:
    """A lease not renewed within its ttl goes to the next follower that asks."""
    clock = Clock()
    a = Lease(any_store, holder="a", ttl=timedelta(seconds=45), clock=clock)
    b = Lease(any_store, holder="b", ttl=timedelta(seconds=45), clock=clock)
    assert a.acquire()
    clock.now += timedelta(seconds=44)
    assert not b.acquire()
    clock.now += timedelta(seconds=2)  # a stopped renewing 46 s ago
    assert b.acquire()
    assert not a.acquire()  # the old leader finds out at its next renewal


def test_release_hands_over_at_once(any_store: Store) -> None:
    """A clean shutdown releases the lease so a follower need not wait for expiry."""
    clock = Clock()
    a, b = Lease(any_store, holder="a", clock=clock), Lease(any_store, holder="b", clock=clock)
    assert a.acquire()
    a.release()
    assert b.acquire()


def test_racing_processes_elect_exactly_one(any_store: Store) -> None:
    """Many contenders asking at the same moment: exactly one wins."""
    leases = [Lease(any_store, holder=f"p{i}") for i in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(leases))

    def contend(lease: Lease) -> None:
        barrier.wait()
        results.append(lease.acquire())

    threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
