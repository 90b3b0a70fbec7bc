"""One poll cycle as the worker and `intake poll` run it: logged, recorded, stoppable, leased.

`run_cycle` wraps `pipeline.poll_once` with what an unattended service needs around it:
- a stop request takes effect at the next message boundary (`poll_once` reports progress after
  each message is archived and after each is processed; the pipeline is idempotent per message,
  so stopping there loses nothing and the next cycle resumes from the cursor and the archive);
- one log line per handled message (row id, Message-ID, From, the senders its forms went to);
- the result in `worker_status` and `DATA_DIR/health.json` (last success, last error).

`poll_with_lease` is `intake poll`: the same cycle under the worker lease, waiting a while for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from intake.errors import LeaseBusy, MailboxUnavailable, OAuthRevoked
from intake.lease import LEASE_NAME, Lease, real_now
from intake.logs import event
from intake.pipeline import CycleReport, Progress, Services, poll_once
from storage import queries
from storage.models import MessageState
from storage.session import session_scope

log = logging.getLogger(__name__)

LOG_PAGE = 500  # messages per read when logging what a cycle handled


class CycleInterrupted(Exception):
    """A stop was requested: the cycle ended at a message boundary."""


@dataclass(frozen=True)
class _Before:
    max_id: int
    pending: tuple[int, ...]


def run_cycle(
    svc: Services, stop: threading.Event | None = None, progress: Progress | None = None
) -> CycleReport:
    """One cycle; raises MailboxUnavailable, CycleInterrupted or the unexpected error, recorded."""
    started = time.monotonic()
    before = _snapshot(svc)

    def step(stage: str, done: int, total: int) -> None:
        log.debug("cycle.step stage=%s done=%d total=%d", stage, done, total)
        if progress is not None:
            progress(stage, done, total)
        if stop is not None and stop.is_set():
            raise CycleInterrupted(f"stopped during {stage} after {done} of {total}")

    event(log, "cycle.start")
    try:
        report = poll_once(svc, step)
    except CycleInterrupted as exc:
        _log_handled(svc, before)
        event(log, "cycle.interrupted", logging.WARNING, detail=str(exc))
        raise
    except Exception as exc:
        _log_handled(svc, before)
        _record(svc, _describe(exc))
        if isinstance(exc, OAuthRevoked):
            _alert_signin(svc, exc)
        raise
    _log_handled(svc, before)
    # a filing failure is an outcome (the cycle did its work, the next one files): the poll
    # succeeded, and the failure is kept as the last error for `intake status`
    filing = f"filing: {report.file_errors[0]}" if report.file_errors else None
    _record(svc, None, filing)
    if filing:
        event(log, "cycle.file_failed", logging.WARNING, error=filing[:500])
    event(
        log, "cycle.done", fetched=report.fetched, new=report.new, processed=report.processed,
        failed=report.failed, filed=report.marked, sent=report.sent,
        unsent=len(report.send_errors) or None, unfiled=len(report.file_errors) or None,
        seconds=round(time.monotonic() - started, 2),
    )  # fmt: skip
    return report


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MailboxUnavailable):
        return f"mailbox: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _alert_signin(svc: Services, exc: OAuthRevoked) -> None:
    """The refresh token was refused: only a person can fix it, so say so now (never raises)."""
    from intake import health

    try:
        health.signin_alert(svc.factory, svc.settings, exc, real_now())
    except Exception as error:  # noqa: BLE001 - the cycle's own error is what propagates
        event(log, "alert.failed", logging.ERROR, error=f"{type(error).__name__}: {error}")


def _snapshot(svc: Services) -> _Before:
    with session_scope(svc.factory) as session:
        return _Before(
            queries.max_message_id(session),
            tuple(queries.message_ids_in_state(session, MessageState.RECEIVED)),
        )


def _log_handled(svc: Services, before: _Before) -> None:
    """One line per message the cycle touched, read a page at a time: a backlog of any size is
    logged in the same memory (all of them at once, as ORM rows, cost 24 MB at 10,000)."""
    pending, above = set(before.pending), 0
    while True:
        try:
            with session_scope(svc.factory) as session:
                digests = queries.message_digests(
                    session, before.max_id, before.pending, above_id=above, limit=LOG_PAGE
                )
        except Exception as exc:  # noqa: BLE001 - logging must not turn a result into a failure
            event(log, "cycle.log_failed", logging.WARNING, error=type(exc).__name__)
            return
        _log_digests(digests, pending)
        if len(digests) < LOG_PAGE:
            return
        above = digests[-1].id


def _log_digests(digests: list[queries.MessageDigest], pending: set[int]) -> None:
    for d in digests:
        if d.state == MessageState.RECEIVED.value and d.id in pending and not d.error:
            continue  # untouched leftover of an earlier cycle
        level = logging.WARNING if d.state == MessageState.FAILED.value or d.error else logging.INFO
        event(
            log, "message.handled", level, id=d.id, message_id=d.message_id,
            sender_address=d.from_address, senders=d.senders or None, outcome=d.outcome,
            state=d.state, error=d.error[:300] if d.error else None,
        )  # fmt: skip


def _record(svc: Services, error: str | None, warning: str | None = None) -> None:
    """The poll's result in the database and the health file; never raises. A `warning` (a
    successful poll that could not file) becomes the last error without counting a failure."""
    from intake import health

    now = real_now()
    try:
        with session_scope(svc.factory) as session:
            if warning is not None and error is None:
                queries.record_poll(session, LEASE_NAME, now, warning)
            queries.record_poll(session, LEASE_NAME, now, error)
        health.write_file(
            health.health_path(svc.settings), health.collect(svc.factory, svc.settings, now)
        )
    except Exception as exc:  # noqa: BLE001 - a full disk must not hide the poll's own outcome
        event(log, "health.write_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")


# --- `intake poll`: the cycle under the lease -------------------------------------------------


@contextmanager
def holding_lease(svc: Services, wait: float) -> Iterator[Lease]:
    """Hold the worker lease for the block (renewed in the background); LeaseBusy if we can't."""
    lease = Lease(svc.factory, svc.settings.worker.lease_ttl)
    if not lease.try_acquire():
        current = lease.current()
        if current is not None:
            event(log, "lease.waiting", holder=lease.holder, active=current.holder, wait=wait)
        if not lease.wait(wait):
            current = lease.current()
            raise LeaseBusy(
                current.holder if current else "?", current.expires_at if current else None
            )
    done = threading.Event()
    keeper = threading.Thread(target=_keep, args=(lease, done), name="lease-keeper", daemon=True)
    keeper.start()
    try:
        yield lease
    finally:
        done.set()
        keeper.join(5)
        lease.release()


def _keep(lease: Lease, done: threading.Event) -> None:
    interval = max(1.0, lease.ttl.total_seconds() / 3)
    while not done.wait(interval):
        try:
            if not lease.renew():
                event(log, "lease.lost", logging.WARNING, holder=lease.holder)
                return
        except Exception as exc:  # noqa: BLE001 - the database may be back before expiry
            event(log, "lease.renew_failed", logging.WARNING, error=type(exc).__name__)


def poll_with_lease(
    svc: Services, progress: Progress | None = None, wait: float | None = None
) -> CycleReport:
    """`intake poll`: one cycle while holding the lease (waiting up to `worker.lease_wait`)."""
    with holding_lease(svc, svc.settings.worker.lease_wait if wait is None else wait):
        return run_cycle(svc, progress=progress)
