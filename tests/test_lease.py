"""The worker lease and status rows, on SQLite and PostgreSQL: one holder at a time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from intake.lease import Lease, holder_is_dead, new_holder_id
from storage import queries
from storage.session import make_engine, session_factory, session_scope

T0 = datetime(2024, 1, 20, 3, 0, tzinfo=UTC)
TTL = timedelta(seconds=90)


def _factory(url: str):  # type: ignore[no-untyped-def]
    return session_factory(make_engine(url))


def _acquire(factory, holder: str, now: datetime, **kw) -> bool:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        return queries.acquire_lease(session, "worker", holder, now, TTL, **kw)


def test_one_holder_until_it_expires_or_releases(database_url):
    factory = _factory(database_url)
    assert _acquire(factory, "a", T0)
    assert not _acquire(factory, "b", T0 + timedelta(seconds=30))
    assert _acquire(factory, "a", T0 + timedelta(seconds=30))  # the holder keeps it
    with session_scope(factory) as session:
        assert queries.renew_lease(session, "worker", "a", T0 + timedelta(seconds=60), TTL)
        assert not queries.renew_lease(session, "worker", "b", T0 + timedelta(seconds=60), TTL)
    # a: renewed at 60 s, so it holds until 150 s
    assert not _acquire(factory, "b", T0 + timedelta(seconds=149))
    assert _acquire(factory, "b", T0 + timedelta(seconds=151))  # expired: taken over
    with session_scope(factory) as session:
        assert not queries.renew_lease(session, "worker", "a", T0 + timedelta(seconds=152), TTL)
        assert not queries.release_lease(session, "worker", "a")  # not a's any more
        assert queries.get_lease(session, "worker").holder == "b"
        assert queries.release_lease(session, "worker", "b")
    assert _acquire(factory, "c", T0 + timedelta(seconds=153))


def test_a_dead_holder_is_replaced_before_expiry_only_if_it_still_holds(database_url):
    factory = _factory(database_url)
    assert _acquire(factory, "dead", T0)
    assert not _acquire(factory, "b", T0, replace_holder="someone-else")
    assert _acquire(factory, "b", T0, replace_holder="dead")
    assert not _acquire(factory, "c", T0, replace_holder="dead")  # b has it now


def test_racing_workers_never_both_win(database_url):
    factories = [_factory(database_url) for _ in range(6)]
    barrier = threading.Barrier(len(factories))
    won: list[str] = []

    def race(i: int) -> None:
        barrier.wait()
        if _acquire(factories[i], f"w{i}", T0):
            won.append(f"w{i}")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(factories))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1
    with session_scope(factories[0]) as session:
        assert queries.get_lease(session, "worker").holder == won[0]


def test_lease_object_waits_and_takes_over_a_crashed_local_holder(database_url):
    factory = _factory(database_url)
    first, second = Lease(factory, 90), Lease(factory, 90)
    assert first.try_acquire()
    assert not second.wait(0.3)  # alive (our own process): no takeover
    crashed = f"{first.holder.split(':')[0]}:999999999:abc"  # same host, no such pid
    assert holder_is_dead(crashed) and not holder_is_dead(first.holder)
    assert not holder_is_dead("other-host:1:x")
    first.release()
    with session_scope(factory) as session:
        queries.acquire_lease(session, "worker", crashed, datetime.now(UTC), TTL)
    assert second.try_acquire()
    assert second.current().holder == second.holder
    assert new_holder_id() != new_holder_id()


def test_worker_status_records_successes_and_counts_failures(database_url):
    factory = _factory(database_url)
    with session_scope(factory) as session:
        queries.record_poll(session, "worker", T0, "mailbox: down")
        queries.record_poll(session, "worker", T0 + timedelta(minutes=1), "mailbox: still down")
    with session_scope(factory) as session:
        status = queries.get_worker_status(session, "worker")
        assert status.consecutive_failures == 2 and status.last_success_at is None
        assert status.last_error == "mailbox: still down"
        queries.record_poll(session, "worker", T0 + timedelta(minutes=2), None)
        queries.save_worker_status(session, "worker", mode="active", holder="h", heartbeat_at=T0)
    with session_scope(factory) as session:
        status = queries.get_worker_status(session, "worker")
        assert status.consecutive_failures == 0 and status.mode == "active"
        assert status.last_error == "mailbox: still down"  # kept: the last error, with its time
        assert status.last_success_at.replace(tzinfo=UTC) == T0 + timedelta(minutes=2)
