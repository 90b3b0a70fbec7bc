"""Send what the outbox holds, by SMTP, at most once: the only module that imports smtplib.

Each row moves QUEUED -> SENDING (committed before the SMTP conversation) -> SENT with the
server's answer. A temporary refusal (4xx, connection trouble before DATA) puts it back to QUEUED
with a later attempt time; a permanent one (5xx) ends in FAILED and a review item. A row still in
SENDING when a new run starts may or may not have reached the server: it is looked up in the Sent
folder by its Message-ID when a mailbox is at hand, otherwise HELD for the coordinator. Never a
blind resend.

Which rows are left over is decided by who claimed them, not by the service clock (`INTAKE_NOW`
freezes it): each claim names its process (`sending_by`, intake.lease.process_holder) and this
process keeps the ids it is sending right now. A row claimed by a process gone from this host, or
by this process but not being sent by it now, is settled at once; only a claim of a process that
may still live (another host, another process here) waits STALE_SENDING by the real clock.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from intake.errors import MailboxUnavailable
from intake.faults import crash_point
from intake.lease import holder_is_dead, process_holder, real_now
from intake.settings import RepliesSettings, SmtpSettings
from storage import queries
from storage.models import Outbox, OutboxState
from storage.session import session_scope

log = logging.getLogger(__name__)

MAX_TEMPORARY_ATTEMPTS = 8
STALE_SENDING = timedelta(minutes=10)
OUTBOX_PAGE = 100  # outbox ids read at a time by send_outbox

# Outbox ids this process is sending right now (a count: two threads may try the same row, one
# wins the claim). Anything else in SENDING that this process claimed is a leftover.
_IN_FLIGHT: Counter[int] = Counter()
_IN_FLIGHT_LOCK = threading.Lock()


@dataclass
class SendReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)


class _Temporary(Exception):
    pass


class _Unreachable(_Temporary):
    """The server cannot be reached or refuses our login: no reply is at fault, and every other
    reply of the round would wait for the same timeout (a backlog of 2,000 for hours)."""


class _Permanent(Exception):
    pass


class _Ambiguous(Exception):
    """The server may or may not have taken the message (connection lost during DATA)."""


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _not_offered(where: str, step: str, security: str) -> str:
    """The server lacks what the settings need: say which, and which settings decide it."""
    if step == "STARTTLS":
        return (
            f"{where} does not offer STARTTLS (INTAKE_SMTP__SECURITY=starttls): use ssl on 465, "
            "or check INTAKE_SMTP__PORT"
        )
    hint = (
        "servers usually offer it only after TLS: INTAKE_SMTP__SECURITY=starttls (port 587) or "
        "ssl (465)"
        if security == "none"
        else "check INTAKE_SMTP__HOST and INTAKE_SMTP__PORT"
    )
    return (
        f"{where} does not offer AUTH, so INTAKE_SMTP__USERNAME cannot log in ({hint}; a relay "
        "that needs no login: leave INTAKE_SMTP__USERNAME empty)"
    )


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


class SmtpTransport:
    """One SMTP connection for a batch of sends; opened lazily, closed by `close()`."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        where = f"SMTP server {s.host}:{s.effective_port()}"
        step = "connect"
        try:
            conn: smtplib.SMTP
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    s.host,
                    s.effective_port(),
                    timeout=s.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                conn = smtplib.SMTP(s.host, s.effective_port(), timeout=s.timeout)
                if s.security == "starttls":
                    step = "STARTTLS"
                    conn.starttls(context=ssl.create_default_context())
            if s.auth == "oauth2":
                step = "AUTH"
                self._oauth2_login(conn)
            elif s.username:
                step = "AUTH"
                conn.login(s.username, s.password.get_secret_value())
        except MailboxUnavailable as exc:  # the OAuth token (intake.oauth), not the SMTP server
            raise _Unreachable(f"SMTP sign-in: {exc}") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise _Unreachable(
                f"{where} refused the login of {s.username!r}: {exc.smtp_code} "
                f"{_text(exc.smtp_error)} (check INTAKE_SMTP__USERNAME and INTAKE_SMTP__PASSWORD)"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise _Unreachable(_not_offered(where, step, s.security)) from None
        except (OSError, smtplib.SMTPException) as exc:
            detail = " ".join(_text(str(exc)).split()) or type(exc).__name__
            hint = ""
            if isinstance(exc, ssl.SSLError):
                hint = " (is INTAKE_SMTP__SECURITY right for this port? ssl: 465, starttls: 587)"
            raise _Unreachable(
                f"cannot reach {where} ({step}): {type(exc).__name__}: {detail}{hint}"
            ) from None
        return conn

    def _oauth2_login(self, conn: smtplib.SMTP) -> None:
        """AUTH XOAUTH2 with an access token from intake.oauth (refreshed before expiry); a
        refused token from the file is tried once more fresh, as `Mailbox._oauth2_login` does."""
        from intake import oauth

        s = self.settings
        if not s.username:
            raise _Unreachable(
                "smtp.auth = 'oauth2' needs smtp.username (INTAKE_SMTP__USERNAME): the Gmail "
                "address that gave consent"
            )
        if s.oauth is None:
            raise _Unreachable("smtp.auth = 'oauth2' but these SMTP settings carry no OAuth client")
        conn.ehlo_or_helo_if_needed()
        if "XOAUTH2" not in conn.esmtp_features.get("auth", "").upper().split():
            raise _Unreachable(
                f"SMTP server {s.host}:{s.effective_port()} does not offer AUTH XOAUTH2 "
                "(smtp.auth = 'oauth2')"
            )
        force = False
        while True:
            token = oauth.access_token(s.oauth, timeout=s.timeout, force=force)
            initial = oauth.xoauth2(s.username, token.token)

            def answer(challenge: bytes | None = None, initial: str = initial) -> str:
                return initial if challenge is None else ""  # an error challenge: end the exchange

            try:
                conn.auth("XOAUTH2", answer, initial_response_ok=True)
                return
            except smtplib.SMTPAuthenticationError:
                if token.fresh:
                    raise
                force = True

    def send(self, mail_from: str, to: str, raw: bytes) -> str:
        if self._conn is None:
            self._conn = self._connect()
        try:
            refused = self._conn.sendmail(mail_from, [to], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise (_Temporary if 400 <= code < 500 else _Permanent)(
                f"{code} {_text(text)}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            message = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            raise (_Temporary if 400 <= exc.smtp_code < 500 else _Permanent)(message) from None
        except smtplib.SMTPServerDisconnected as exc:
            self._conn = None
            raise _Ambiguous(f"connection lost while sending: {exc}") from None
        except OSError as exc:
            self._conn = None
            raise _Ambiguous(f"connection error while sending: {type(exc).__name__}") from None
        if refused:
            raise _Permanent(str(refused))
        return "250 accepted"

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                self._conn.close()
            self._conn = None


def send_outbox(
    factory: sessionmaker[Session],
    smtp: SmtpSettings,
    replies: RepliesSettings,
    now: Callable[[], datetime],
    transport: SmtpTransport | None = None,
    page: int = OUTBOX_PAGE,
) -> SendReport:
    """Send every row QUEUED and due at the start once; dry run and disabled replies send nothing.

    The ids are read a page of `page` at a time (by id, so no row is looked at twice): a backlog
    of replies is sent in the same memory as a handful. When the server cannot be reached the
    round ends at the first reply, which goes back to the queue with no attempt counted; the
    rest wait, untouched, for the next cycle.
    """
    report = SendReport()
    if not replies.enabled or replies.dry_run:
        return report
    transport = transport or SmtpTransport(smtp)
    when, after = now(), 0
    try:
        while True:
            with session_scope(factory) as session:
                due = queries.outbox_due(session, when, after_id=after, limit=page)
            for outbox_id in due:
                if not _send_one(factory, transport, smtp.from_address, outbox_id, now, report):
                    return report  # the server is unreachable: the next cycle tries again
            if len(due) < page:
                return report
            after = due[-1]
    finally:
        transport.close()


def _send_one(
    factory: sessionmaker[Session],
    transport: SmtpTransport,
    mail_from: str,
    outbox_id: int,
    now: Callable[[], datetime],
    report: SendReport,
) -> bool:
    """Send one queued reply; False when the server could not be reached at all."""
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT[outbox_id] += 1
    try:
        return _send_claimed(factory, transport, mail_from, outbox_id, now, report)
    finally:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT[outbox_id] -= 1
            if _IN_FLIGHT[outbox_id] <= 0:
                del _IN_FLIGHT[outbox_id]


def _in_flight(outbox_id: int) -> bool:
    with _IN_FLIGHT_LOCK:
        return _IN_FLIGHT[outbox_id] > 0


def _send_claimed(
    factory: sessionmaker[Session],
    transport: SmtpTransport,
    mail_from: str,
    outbox_id: int,
    now: Callable[[], datetime],
    report: SendReport,
) -> bool:
    """Claim the row (QUEUED -> SENDING, naming this process), talk to SMTP, record the answer."""
    with session_scope(factory) as session:
        row = session.get(Outbox, outbox_id)
        if row is None:
            return True
        # read before the UPDATE, which also refreshes `row` (this attempt is counted once)
        to, raw, attempts = row.to_address, row.raw, row.attempts + 1
        if not queries.transition_outbox(
            session,
            outbox_id,
            OutboxState.QUEUED,
            state=OutboxState.SENDING,
            sending_at=real_now(),  # the claim's age is measured by the real clock, never INTAKE_NOW
            sending_by=process_holder(),
            attempts=attempts,
        ):
            return True  # another worker took it
    log.info("outbox.sending id=%s to=%s", outbox_id, to)
    crash_point("before_smtp")
    try:
        answer = transport.send(mail_from, to, raw)
    except _Unreachable as exc:
        with session_scope(factory) as session:  # not this reply's fault: no attempt counted
            queries.transition_outbox(
                session,
                outbox_id,
                OutboxState.SENDING,
                state=OutboxState.QUEUED,
                attempts=attempts - 1,
                last_error=str(exc),
            )
        report.deferred += 1
        report.errors.append(str(exc))
        log.warning("outbox.unreachable id=%s error=%s", outbox_id, exc)
        return False
    except _Temporary as exc:
        _settle_temporary(factory, outbox_id, attempts, str(exc), now(), report)
        return True
    except _Permanent as exc:
        with session_scope(factory) as session:
            queries.transition_outbox(
                session,
                outbox_id,
                OutboxState.SENDING,
                state=OutboxState.FAILED,
                last_error=str(exc),
            )
            queries.add_review(session, "reply_failed", str(exc), outbox_id=outbox_id)
        report.failed += 1
        report.errors.append(str(exc))
        log.warning("outbox.failed id=%s error=%s", outbox_id, exc)
        return True
    except _Ambiguous as exc:
        # Leave it in SENDING: recover_sending() decides on the next run, never a blind resend.
        report.errors.append(str(exc))
        log.warning("outbox.unknown id=%s error=%s", outbox_id, exc)
        return True
    crash_point("after_smtp")
    with session_scope(factory) as session:
        queries.transition_outbox(
            session,
            outbox_id,
            OutboxState.SENDING,
            state=OutboxState.SENT,
            sent_at=now(),
            smtp_response=answer,
            last_error=None,
        )
    report.sent += 1
    log.info("outbox.sent id=%s to=%s", outbox_id, to)
    return True


def _settle_temporary(
    factory: sessionmaker[Session],
    outbox_id: int,
    attempts: int,
    error: str,
    when: datetime,
    report: SendReport,
) -> None:
    with session_scope(factory) as session:
        if attempts >= MAX_TEMPORARY_ATTEMPTS:
            queries.transition_outbox(
                session, outbox_id, OutboxState.SENDING, state=OutboxState.FAILED, last_error=error
            )
            queries.add_review(session, "reply_failed", error, outbox_id=outbox_id)
            report.failed += 1
        else:
            queries.transition_outbox(
                session,
                outbox_id,
                OutboxState.SENDING,
                state=OutboxState.QUEUED,
                last_error=error,
                next_attempt_at=when + _backoff(attempts),
            )
            report.deferred += 1
    report.errors.append(error)
    log.warning("outbox.deferred id=%s attempts=%s error=%s", outbox_id, attempts, error)


def recover_sending(
    factory: sessionmaker[Session],
    now: datetime,
    found_in_sent: Callable[[str], bool] | None,
    stale_after: timedelta = STALE_SENDING,
    everything: bool = False,
) -> SendReport:
    """Settle rows left in SENDING by a crash: SENT if the Sent folder has them, else HELD.

    A row is left over (see the module's docstring) when no live process is sending it: its
    claimant is gone from this host, or is this process and the row is not in flight here; a
    claim of a process that may still live is left alone for `stale_after` by the real clock.
    `now` is only the time written as `sent_at`.
    """
    report = SendReport()
    with session_scope(factory) as session:
        rows = queries.outbox_keys_in_state(session, OutboxState.SENDING)
    wall = real_now()
    for outbox_id, message_id, sending_at, sending_by in rows:
        if not everything and not _left_over(outbox_id, sending_at, sending_by, wall, stale_after):
            continue
        seen = found_in_sent(message_id) if found_in_sent else False
        with session_scope(factory) as session:
            if seen:
                queries.transition_outbox(
                    session,
                    outbox_id,
                    OutboxState.SENDING,
                    state=OutboxState.SENT,
                    sent_at=now,
                    smtp_response="found in the Sent folder after a restart",
                )
                report.sent += 1
            elif queries.transition_outbox(
                session,
                outbox_id,
                OutboxState.SENDING,
                state=OutboxState.HELD,
                last_error="send state unknown after an interruption; not resent automatically",
            ):
                queries.add_review(
                    session,
                    "outbox_unknown",
                    "ไม่ทราบว่าอีเมลตอบกลับฉบับนี้ส่งถึงผู้รับแล้วหรือไม่ กรุณาตรวจสอบก่อนสั่งส่งซ้ำ",
                    outbox_id=outbox_id,
                )
                report.held += 1
    return report


def _left_over(
    outbox_id: int,
    sending_at: datetime | None,
    sending_by: str | None,
    wall: datetime,
    stale_after: timedelta,
) -> bool:
    """True when nobody can be sending this SENDING row any more (see `recover_sending`)."""
    from intake.clock import as_utc

    if _in_flight(outbox_id):
        return False  # this process is talking to SMTP about it right now
    if sending_by is not None and (sending_by == process_holder() or holder_is_dead(sending_by)):
        return True  # claimed by us and not in flight (a lost connection), or by a dead process
    # another host, or a live process here (`intake remind` next to the worker): the real clock
    return sending_at is None or wall - as_utc(sending_at) >= stale_after
