"""Only one worker acts: a lease row in the database, taken, renewed and released.

The lease is what keeps a second `intake run` (started by mistake, or a stand-by on purpose) and a
manual `intake poll --once` from working the mailbox at the same time as the worker. The pipeline
stays idempotent without it (a lost lease cannot double anything); the lease keeps the work and
the replies in one place, so there is one story in the logs.

Times are the real clock: `INTAKE_NOW` moves the campaign's "now", never a lease's expiry.
A holder is `host:pid:token`. A lease whose holder ran on this host and whose process is gone (a
crash, a kill -9) is taken over at once instead of after its expiry.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.logs import event
from storage import queries
from storage.session import session_scope

log = logging.getLogger(__name__)

LEASE_NAME = "worker"


def real_now() -> datetime:
    return datetime.now(UTC)


_OURS: set[str] = set()  # holder ids this process made: alive as long as we are


def new_holder_id() -> str:
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    _OURS.add(holder)
    return holder


_PROCESS: tuple[int, str] | None = None  # (pid, id) of this process: see process_holder()


def process_holder() -> str:
    """This process's own `host:pid:token`, the same for its whole life (a new one after a fork).

    It names who claimed a reply for sending (`outbox.sending_by`): `holder_is_dead` tells from it
    whether that process still runs, so a reply cut off by a crash is settled at the restart.
    """
    global _PROCESS
    if _PROCESS is None or _PROCESS[0] != os.getpid():
        _PROCESS = (os.getpid(), new_holder_id())
    return _PROCESS[1]


def holder_is_dead(holder: str) -> bool:
    """True when `holder` ran on this host and its process no longer exists (or is us, reborn:
    a container restarted with the same host name and pid)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        # ours, or an earlier life of a container restarted with the same host name and pid
        return holder not in _OURS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


@dataclass(frozen=True)
class LeaseInfo:
    holder: str
    expires_at: datetime


class Lease:
    """The lease `name` for one holder; every method is one short transaction."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        ttl: float,
        *,
        name: str = LEASE_NAME,
        holder: str | None = None,
        now: Callable[[], datetime] = real_now,
    ) -> None:
        self.factory = factory
        self.ttl = timedelta(seconds=ttl)
        self.name = name
        self.holder = holder or new_holder_id()
        _OURS.add(self.holder)
        self.now = now

    def try_acquire(self) -> bool:
        with session_scope(self.factory) as session:
            current = queries.get_lease(session, self.name)
            dead = None
            if current is not None and current.holder != self.holder:
                dead = current.holder if holder_is_dead(current.holder) else None
            won = queries.acquire_lease(
                session, self.name, self.holder, self.now(), self.ttl, replace_holder=dead
            )
        if won and dead:
            event(log, "lease.taken_over", holder=self.holder, previous=dead, reason="dead")
        return won

    def renew(self) -> bool:
        with session_scope(self.factory) as session:
            return queries.renew_lease(session, self.name, self.holder, self.now(), self.ttl)

    def release(self) -> bool:
        """Give the lease up if we hold it; True when we did."""
        try:
            with session_scope(self.factory) as session:
                return queries.release_lease(session, self.name, self.holder)
        except SQLAlchemyError as exc:  # it expires by itself; say so and go on
            event(log, "lease.release_failed", logging.WARNING, error=type(exc).__name__)
            return False

    def current(self) -> LeaseInfo | None:
        with session_scope(self.factory) as session:
            row = queries.get_lease(session, self.name)
            return LeaseInfo(row.holder, row.expires_at) if row else None

    def wait(self, timeout: float, stop: threading.Event | None = None, step: float = 0.5) -> bool:
        """Try until the lease is ours or `timeout` seconds passed (or `stop` is set)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.try_acquire():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                return False
            if stop is not None:
                stop.wait(min(step, left))
            else:
                time.sleep(min(step, left))
