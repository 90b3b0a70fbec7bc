"""IMAP IDLE on a connection of its own: wake the poll the moment mail arrives.

The poll itself opens its own session each cycle (`pipeline.poll_once`); this thread only waits.
`Mailbox.idle_wait` re-issues IDLE every 9 minutes (Gmail drops idlers after about 10, RFC 2177
allows 29) and treats a socket that is readable but empty as closed. When the connection drops,
it reconnects with exponential backoff (1 s, 2 s, 4 s ... `backoff_max`) and asks for a poll as
soon as it is back, so mail that came while it was away is taken in at once. A server without
IDLE ends the thread: the interval poll is then the only trigger.

The thread is a daemon: on shutdown nobody waits for a read that may last minutes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from intake.errors import MailboxLoginFailed, MailboxUnavailable
from intake.logs import event
from intake.mailbox import IDLE_RENEW_SECONDS, Mailbox
from intake.settings import ImapSettings

log = logging.getLogger(__name__)


class IdleWatcher(threading.Thread):
    """Calls `on_mail(reason)` when the folder announces new mail, or after a reconnect."""

    def __init__(
        self,
        settings: ImapSettings,
        on_mail: Callable[[str], None],
        stop: threading.Event,
        *,
        chunk: float = IDLE_RENEW_SECONDS,
        backoff_max: float = 60.0,
    ) -> None:
        super().__init__(name="imap-idle", daemon=True)
        self.settings = settings
        self.on_mail = on_mail
        self.stop = stop
        self.chunk = max(1.0, min(chunk, IDLE_RENEW_SECONDS))
        self.backoff_max = backoff_max
        self.listening = threading.Event()  # set while an IDLE session is up (tests, status)
        self.supported: bool | None = None

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                with Mailbox(self.settings, connect_attempts=1) as box:
                    if not box.supports_idle():
                        self.supported = False
                        event(log, "idle.unsupported", host=self.settings.host)
                        return
                    self.supported = True
                    if failures:
                        event(log, "idle.reconnected", after_failures=failures)
                        self.on_mail("reconnected")
                    failures = 0
                    self.listening.set()
                    event(log, "idle.listening", folder=self.settings.folder)
                    self._wait(box)
            except MailboxUnavailable as exc:
                self.listening.clear()
                if self.stop.is_set():
                    return
                failures += 1
                cap = self.backoff_max * (5 if isinstance(exc, MailboxLoginFailed) else 1)
                delay = min(cap, 2.0 ** (failures - 1))
                event(
                    log, "idle.disconnected", logging.WARNING,
                    error=str(exc), failures=failures, retry_in=delay,
                )  # fmt: skip
                self.stop.wait(delay)
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any surprise
                self.listening.clear()
                failures += 1
                event(log, "idle.error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
                self.stop.wait(min(self.backoff_max, 2.0 ** (failures - 1)))
        self.listening.clear()

    def _wait(self, box: Mailbox) -> None:
        while not self.stop.is_set():
            if box.idle_wait(self.chunk):
                event(log, "idle.new_mail", folder=self.settings.folder)
                self.on_mail("idle")
