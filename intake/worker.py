"""`intake run`: the long-running worker. One process, one active worker per database.

    standby ──(lease taken)──> active ──(SIGTERM/SIGINT)──> release lease, exit 0
       ^                         │
       └────(lease lost)─────────┘

Standby: the lease is held by another worker; try again every `worker.standby_check` seconds
(logged once per holder). A holder that stops renewing loses the lease after `worker.lease_ttl`;
one whose process is gone from this host loses it at once.

Active: the APScheduler jobs (`intake.schedule`) and an IDLE watcher (`intake.idle`). IDLE asks
for a poll; a poll asked for while one runs is run right after it (never lost, never doubled).
Each cycle runs on a thread of its own under a watchdog: past `worker.cycle_timeout` it is
abandoned (logged, recorded as the last error) and the next cycle starts fresh; the pipeline is
idempotent per message, so a late-waking abandoned cycle cannot double anything. Three abandoned
cycles still running means something is wedged: the worker exits with code 70 for its supervisor
(docker compose `restart: unless-stopped`) to start it again.

Shutdown: the current cycle stops at the next message boundary (`intake.cycle`), waiting at most
`worker.shutdown_grace` seconds; then the lease is released so a standby takes over at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from intake import health
from intake.cycle import CycleInterrupted, run_cycle
from intake.errors import MailboxLoginFailed, MailboxUnavailable
from intake.idle import IdleWatcher
from intake.lease import LEASE_NAME, Lease, real_now
from intake.logs import event
from intake.pipeline import Services
from intake.reminders import queue_due_reminders
from intake.schedule import build_scheduler
from storage import queries
from storage.session import session_scope

log = logging.getLogger(__name__)

EXIT_WEDGED = 70
MAX_ABANDONED = 3


class Worker:
    def __init__(self, svc: Services, *, idle_chunk: float | None = None) -> None:
        self.svc = svc
        self.settings = svc.settings
        self.lease = Lease(svc.factory, self.settings.worker.lease_ttl)
        self.stop = threading.Event()  # shutdown requested
        self.changed = threading.Event()  # stop requested or lease lost: leave active mode
        self.exit_code = 0
        self.cycles = 0  # completed cycles (tests, the demo)
        self.idle_chunk = idle_chunk
        self._lock = threading.Lock()
        self._wanted = False
        self._running = False
        self._failures = 0
        self._scheduler: Any = None
        self._idle: IdleWatcher | None = None
        self._cycle_thread: threading.Thread | None = None
        self._abandoned: list[threading.Thread] = []
        self._stopping_at: float | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def run(self, install_signals: bool = True) -> int:
        """Work until asked to stop; the exit code (0 after a clean stop)."""
        if install_signals:
            self._install_signals()
        event(
            log,
            "worker.start",
            holder=self.lease.holder,
            poll_interval=self.settings.worker.poll_interval,
        )
        announced: str | None = None
        while not self.stop.is_set():
            try:
                acquired = self.lease.try_acquire()
            except Exception as exc:  # noqa: BLE001 - the database may come back
                event(log, "lease.unavailable", logging.WARNING, error=type(exc).__name__)
                acquired = False
            if acquired:
                announced = None
                self._active()
                continue
            current = self._current_holder()
            if current != announced:
                event(log, "worker.standby", holder=self.lease.holder, active=current)
                announced = current
            self.stop.wait(self.settings.worker.standby_check)
        if self.lease.release():
            self._save_status(mode="stopped")
        event(log, "worker.stopped", holder=self.lease.holder, exit_code=self.exit_code)
        return self.exit_code

    def request_stop(self, exit_code: int = 0) -> None:
        if not self.stop.is_set():
            self.exit_code = exit_code or self.exit_code
            self._stopping_at = time.monotonic()
        self.stop.set()
        self.changed.set()

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            if self.stop.is_set():
                event(log, "worker.forced_exit", logging.WARNING, signal=signum)
                os._exit(128 + signum)  # a second signal: leave now (every step is crash-safe)
            event(log, "worker.stopping", signal=signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _current_holder(self) -> str | None:
        try:
            current = self.lease.current()
        except Exception:  # noqa: BLE001 - only for the log line
            return None
        return current.holder if current else None

    def _active(self) -> None:
        self.changed.clear()
        if self.stop.is_set():
            self.changed.set()
        now = real_now()
        self._save_status(mode="active", started_at=now, heartbeat_at=now)
        event(log, "worker.active", holder=self.lease.holder)
        idle_stop = threading.Event()
        self._scheduler = build_scheduler(self, self.settings)
        self._scheduler.start()
        if self.settings.worker.idle:
            chunk = {"chunk": self.idle_chunk} if self.idle_chunk else {}
            self._idle = IdleWatcher(self.settings.imap, self.request_poll, idle_stop, **chunk)
            self._idle.start()
        self.changed.wait()
        idle_stop.set()
        self._scheduler.shutdown(wait=False)
        self._scheduler = None
        self._wait_for_cycle(self.settings.worker.shutdown_grace)
        if not self.stop.is_set():
            event(log, "worker.standby", holder=self.lease.holder, reason="lease lost")

    def _wait_for_cycle(self, grace: float) -> None:
        thread = self._cycle_thread
        if thread is not None and thread.is_alive():
            thread.join(grace)
            if thread.is_alive():
                event(log, "cycle.abandoned", logging.WARNING, reason="shutdown", after=grace)

    # --- polling ----------------------------------------------------------------------------

    def request_poll(self, reason: str = "asked") -> None:
        """Poll now; if a cycle is running, run another right after it."""
        with self._lock:
            self._wanted = True
            if self._running:
                return
        self._schedule_poll(0.0, reason)

    def _schedule_poll(self, delay: float, reason: str) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        try:
            scheduler.modify_job("poll", next_run_time=datetime.now(UTC) + timedelta(seconds=delay))
        except Exception:  # noqa: BLE001 - the scheduler is shutting down
            return
        log.debug("poll.scheduled reason=%s in=%.1f", reason, delay)

    def poll_job(self) -> None:
        with self._lock:
            self._running = True
        try:
            while True:
                with self._lock:
                    self._wanted = False
                if self.changed.is_set() or not self._still_ours():
                    return
                self._guarded_cycle()
                with self._lock:
                    if not self._wanted or self.changed.is_set():
                        self._running = False
                        return
        finally:
            with self._lock:
                self._running = False

    def _still_ours(self) -> bool:
        try:
            if self.lease.renew():
                return True
        except Exception as exc:  # noqa: BLE001 - cannot tell: do not act, do not give up
            event(log, "lease.renew_failed", logging.WARNING, error=type(exc).__name__)
            return False
        self._lost()
        return False

    def _lost(self) -> None:
        event(log, "lease.lost", logging.WARNING, holder=self.lease.holder)
        self.changed.set()

    def _guarded_cycle(self) -> None:
        """Run one cycle on its own thread; abandon it past `worker.cycle_timeout`."""
        self._abandoned = [t for t in self._abandoned if t.is_alive()]
        thread = threading.Thread(target=self._cycle_body, name="cycle", daemon=True)
        self._cycle_thread = thread
        thread.start()
        limit = self.settings.worker.cycle_timeout
        deadline = time.monotonic() + limit
        while thread.is_alive():
            thread.join(0.2)
            if time.monotonic() >= deadline:
                self._abandon(thread, limit)
                return
            stopping = self._stopping_at
            if (
                stopping is not None
                and time.monotonic() - stopping > self.settings.worker.shutdown_grace
            ):
                return  # shutdown goes on without it (_wait_for_cycle logs it)

    def _abandon(self, thread: threading.Thread, limit: float) -> None:
        self._abandoned.append(thread)
        error = f"cycle abandoned: still running after {limit:g} s"
        event(
            log, "cycle.abandoned", logging.ERROR, after=limit, still_running=len(self._abandoned)
        )
        self._record_failure(error)
        if len(self._abandoned) >= MAX_ABANDONED:
            event(log, "worker.wedged", logging.CRITICAL, abandoned=len(self._abandoned))
            self.request_stop(EXIT_WEDGED)

    def _cycle_body(self) -> None:
        try:
            run_cycle(self.svc, stop=self.changed)
        except CycleInterrupted:
            return
        except MailboxLoginFailed as exc:
            self._after_failure(str(exc), logging.ERROR)
        except MailboxUnavailable as exc:
            self._after_failure(str(exc), logging.WARNING)
        except Exception as exc:  # noqa: BLE001 - the worker outlives any one cycle
            log.exception("cycle.failed error=%s", type(exc).__name__)
            self._after_failure(f"{type(exc).__name__}: {exc}", logging.ERROR, logged=True)
        else:
            if self._failures:
                event(log, "worker.recovered", after_failures=self._failures)
            self._failures = 0
            self.cycles += 1

    def _after_failure(self, error: str, level: int, logged: bool = False) -> None:
        self._failures += 1
        delay = min(self.settings.worker.poll_interval, 5.0 * 2 ** (self._failures - 1))
        if not logged:
            event(log, "cycle.failed", level, error=error, failures=self._failures, retry_in=delay)
        self._schedule_poll(delay, "retry")

    def _record_failure(self, error: str) -> None:
        try:
            with session_scope(self.svc.factory) as session:
                queries.record_poll(session, LEASE_NAME, real_now(), error)
        except Exception as exc:  # noqa: BLE001 - the log line above says it anyway
            event(log, "health.write_failed", logging.WARNING, error=type(exc).__name__)

    # --- the other jobs ---------------------------------------------------------------------

    def heartbeat_job(self) -> None:
        if not self._still_ours():
            return
        self._save_status(mode="active", heartbeat_at=real_now())

    def health_job(self) -> None:
        self._safely(
            "health", lambda: health.check_alert(self.svc.factory, self.settings, real_now())
        )

    def reminders_job(self) -> None:
        if self._still_ours():
            self._safely("reminders", lambda: self._reminders())

    def _reminders(self) -> None:
        from intake.notices import send_queued

        result = queue_due_reminders(self.svc)
        event(log, "reminders.checked", result=repr(result)[:200] if result is not None else None)
        send_queued(self.svc.factory, self.settings, self.svc.clock.now())

    def summary_job(self) -> None:
        from intake.summary import queue_daily_summary

        if self._still_ours():
            self._safely("summary", lambda: queue_daily_summary(self.svc))

    def _safely(self, job: str, action: Any) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - one failed job must not stop the others
            event(log, "job.failed", logging.ERROR, job=job, error=f"{type(exc).__name__}: {exc}")

    def _save_status(self, **values: Any) -> None:
        """Our row in `worker_status` and the health file; never raises."""
        try:
            with session_scope(self.svc.factory) as session:
                queries.save_worker_status(session, LEASE_NAME, holder=self.lease.holder, **values)
            now = real_now()
            health.write_file(
                health.health_path(self.settings),
                health.collect(self.svc.factory, self.settings, now),
            )
        except Exception as exc:  # noqa: BLE001 - health is reported, never a reason to stop
            event(log, "health.write_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
