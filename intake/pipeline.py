"""One message from the mailbox to its reply, top to bottom. Read this file first.

    1 fetch      raw bytes and INTERNALDATE from IMAP (BODY.PEEK: \\Seen is never touched)
    2 archive    raw .eml by SHA-256 (fsynced) + a `message` row in state RECEIVED, committed:
                 from here the message cannot be lost; the same bytes again are recognised here
    3 parse      from the archive, never from the socket
    4 classify   noise (auto-reply, bounce, list, our own mail) gets no reply
    5 read       every attachment through the form description -> records + located problems
    6 identify   which expected sender each form belongs to (form header, address, subject/body)
    7 decide     ONE transaction: claim the message (RECEIVED -> PROCESSED, guarded), attachments,
                 submissions with their rows and problems, review items, replies in the outbox
    8 mark       file the message on the server; state DONE
    then         send what the outbox holds (intake.outbox), at most once

Steps 3-6 are pure and may run twice (two workers, a crash, `intake reprocess`); step 7 is the
only writer of results and commits only for the worker whose guarded update won.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake import memguard, record
from intake import message as mail
from intake.archive import Archive, sha256_hex
from intake.attachments import Refusal
from intake.auth import Verdict, dmarc_verdict
from intake.clock import Clock, as_utc
from intake.errors import MailboxUnavailable
from intake.faults import crash_point, fail_point
from intake.forms import FormSpec, MessageBudget, part_refused, read_forms
from intake.forms.model import FormResult, Problem
from intake.identify import Identifier, Match, receipts_in
from intake.mimetext import header_text
from intake.replies import Renderer
from intake.roster import Roster
from intake.settings import Settings
from storage import queries
from storage.models import (
    Message,
    MessageOutcome,
    MessageState,
)
from storage.session import session_scope

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # a message that fails this often is FAILED and shown to the coordinator
HEADER_RAW_LIMIT = 16 * 1024  # characters of one raw header value parsed when archiving
HEADER_TEXT_LIMIT = 998  # characters of a header kept in the row (RFC 5322's line length)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
FORM_KINDS = {"xlsx", "xlsm", "xls", "docx"}
SPREADSHEET_LIKE = FORM_KINDS | {"ods", "doc", "encrypted", "zip"}


@dataclass
class Services:
    """Everything a cycle needs, built once at the edge and passed down."""

    settings: Settings
    factory: sessionmaker[Session]
    archive: Archive
    roster: Roster
    spec: FormSpec
    renderer: Renderer
    clock: Clock

    @property
    def own_addresses(self) -> frozenset[str]:
        own = {self.settings.smtp.from_address.lower()}
        if "@" in self.settings.imap.username:
            own.add(self.settings.imap.username.lower())
        return frozenset(own)


# --- steps 1-2: archive ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    mailbox: str
    uidvalidity: int
    uid: int


def archive_message(
    svc: Services,
    raw: bytes,
    received_at: datetime,
    source: str,
    location: Location | None = None,
) -> tuple[int, bool]:
    """Store the raw bytes and record them; return (message row id, whether it is new).
    With a `location`, the mailbox cursor moves to it in the same commit.

    The same bytes, or the same Message-ID with the same From and Date (a copy re-fetched after a
    UIDVALIDITY change, a second worker, a re-import), map to the existing row; the new location
    is still recorded so the copy gets filed on the server too.
    """
    digest, rel = svc.archive.store(raw)
    try:
        parsed: Any = BytesHeaderParser(policy=default_policy).parsebytes(_header_section(raw))
    except Exception:  # noqa: BLE001 - no header read is no reason to lose the message
        log.warning("archive.headers_unreadable sha256=%s", digest, exc_info=True)
        parsed = None
    # each field decoded once: the policy parses a field again on every get
    field = functools.cache(functools.partial(_header, parsed))
    message_id = _clean_message_id(field("message-id"))
    bare = False  # True after the database refused the header values: the row without them
    conflicted = False
    while True:
        try:
            with session_scope(svc.factory) as session:
                existing = _find_same_message(session, digest, message_id, field)
                if existing is not None:
                    row_id, is_new = existing.id, False
                else:
                    row_id = _insert_message(
                        session, digest, message_id, rel, raw, source, received_at,
                        _no_header if bare else field,
                    )  # fmt: skip
                    is_new = True
                if location is not None:
                    queries.insert_location_if_absent(
                        session, row_id, location.mailbox, location.uidvalidity, location.uid
                    )
                    # the fetch cursor moves in the same commit: one commit per fetched message
                    queries.set_cursor(
                        session, location.mailbox, location.uidvalidity, location.uid
                    )
                return row_id, is_new
        except IntegrityError:
            if conflicted:
                raise
            # another worker recorded the same message between our look-up and insert: look again
            conflicted = True
        except DataError:
            if bare:
                raise
            # a header value the database refuses must not keep the message out: the row without
            # them (the raw bytes are archived; step 3 reads them from there)
            log.warning("archive.header_values_refused sha256=%s", digest, exc_info=True)
            bare, message_id = True, None


def _no_header(_name: str) -> str:
    return ""


def _insert_message(
    session: Session,
    digest: str,
    message_id: str | None,
    rel: str,
    raw: bytes,
    source: str,
    received_at: datetime,
    field: Callable[[str], str],
) -> int:
    """The new `message` row in state RECEIVED (one INSERT ... RETURNING, no ORM flush)."""
    values = {
        "sha256": digest,
        "message_id_header": message_id,
        "archive_path": rel,
        "size": len(raw),
        "source": source,
        "received_at": as_utc(received_at),
        "state": MessageState.RECEIVED,
        "header_from": field("from")[:998] or None,
        "header_date": field("date")[:200] or None,
        "subject": field("subject") or None,
    }
    return int(session.execute(insert(Message).values(values).returning(Message.id)).scalar_one())


def _header_section(raw: bytes) -> bytes:
    """The bytes up to the first empty line: all a header parser reads (the body of a 50 KB
    message is otherwise split into lines for nothing)."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := raw.find(sep)) >= 0]
    return raw[: min(ends)] if ends else raw


def _header(headers: Any, name: str) -> str:
    """A header as text that any database accepts, whatever bytes the sender put there.

    Raw 8-bit headers come back from the parser with surrogate escapes, which PostgreSQL refuses;
    a message that cannot be recorded would be retried forever, so they are replaced here (the
    raw bytes are in the archive, and step 3 decodes them properly). The raw value is cut to
    `HEADER_RAW_LIMIT` before the policy parses it (200,000 encoded words take gigabytes there),
    and a value the policy refuses (an encoded CR/LF in a display name raises ValueError on
    every access, `get_all` included) is decoded from the raw text instead: never an exception.
    """
    try:
        raw = next((str(v) for k, v in headers.raw_items() if k.lower() == name), None)
    except Exception:  # noqa: BLE001 - a malformed header must not stop archiving
        raw = None
    if raw is None:
        return ""
    raw = raw[:HEADER_RAW_LIMIT]
    try:
        text = str(headers.policy.header_fetch_parse(name, raw)).strip()
    except Exception:  # noqa: BLE001 - the same value decoded by our own lenient decoder
        try:
            text = header_text(raw)
        except Exception:  # noqa: BLE001 - last resort: the raw characters themselves
            text = raw
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = _CONTROL.sub(" ", text.replace("\x00", ""))  # a decoded CR/LF is no line break here
    return text[:HEADER_TEXT_LIMIT].strip()


def _clean_message_id(value: str) -> str | None:
    value = value.strip().strip("<>").strip()
    return value[:998] or None


def _find_same_message(
    session: Session, digest: str, message_id: str | None, field: Callable[[str], str]
) -> Message | None:
    found = queries.message_by_sha(session, digest)
    if found is not None or message_id is None:
        return found
    same = (field("from"), field("date"))
    for candidate in queries.messages_by_message_id(session, message_id):
        if (candidate.header_from or "", candidate.header_date or "") == same:
            return candidate
    return None


# --- steps 3-6: read (pure) ------------------------------------------------------------------------


@dataclass
class FormOutcome:
    result: FormResult
    attachment_index: int
    match: Match
    sender_id: str | None
    problems: list[Problem]


@dataclass
class Reading:
    parsed: mail.ParsedMessage
    noise: str | None
    forms: list[FormOutcome] = field(default_factory=list)  # forms with data
    unreadable: list[FormResult] = field(default_factory=list)  # files that are not usable forms
    message_match: Match = field(default_factory=lambda: Match(None, "none", "unknown"))
    auth: Verdict | None = None  # DMARC as our receiving server saw it (intake/auth.py)


def read_message(svc: Services, identifier: Identifier, raw: bytes) -> Reading:
    """Steps 3-6. A robot marker (step 4) decides whether the sender is answered, never whether
    the mail is read: a form from a document system's `noreply@` counts like any other."""
    parsed = mail.parse(raw)  # 3 parse
    noise = mail.noise_reason(parsed, svc.own_addresses)  # 4 classify
    reading = Reading(parsed=parsed, noise=noise)
    replies = svc.settings.replies
    reading.auth = dmarc_verdict(parsed.headers, replies.authserv_id, parsed.from_address)
    thread = None  # a reply to a mail of ours: the sender that mail was about (a read only)
    ours = [i for i in (parsed.in_reply_to, *reversed(parsed.references)) if i]
    receipts = receipts_in(parsed.subject)
    if ours or receipts:
        with session_scope(svc.factory) as session:
            thread = queries.sender_of_our_mail(session, ours, receipts)
    reading.message_match = identifier.for_message(
        parsed.forwarded_from or parsed.from_address, parsed.subject, parsed.body_text, thread
    )
    # parts refused before reading (too large, encrypted in a zip) reach sender and coordinator
    refusals = [note for note in parsed.notes if isinstance(note, Refusal)]
    refused_archives = {r.archive or r.filename for r in refusals}
    budget = MessageBudget.of(svc.spec.limits)  # what all files of this message may unpack
    for index, attachment in enumerate(parsed.attachments):  # 5 read
        if attachment.kind in {"text"}:
            continue
        if attachment.kind == "zip" and attachment.filename in refused_archives:
            continue  # its refusal says why, which "send it unzipped" would not
        unpacked = budget.remaining
        for result in read_forms(
            attachment.filename, attachment.kind, attachment.data, svc.spec, budget
        ):
            if result.data is None:
                if attachment.kind in SPREADSHEET_LIKE or attachment.kind in {
                    "pdf",
                    "image",
                    "tnef",
                }:
                    reading.unreadable.append(result)
                continue
            reading.forms.append(_identify_form(identifier, reading, result, index))  # 6 identify
        if max(unpacked - budget.remaining, len(attachment.data)) > memguard.RELEASE_AFTER:
            memguard.release()  # one bomb's peak must not stay the worker's size
    for refusal in refusals:
        if reading.forms:  # a form was read: the refused part is a warning on the first one
            reading.forms[0].problems.append(
                Problem("warning", refusal.code, str(refusal), filename=refusal.filename or None)
            )
        else:
            reading.unreadable.append(part_refused(refusal.filename, refusal.code, str(refusal)))
    return reading


def _identify_form(
    identifier: Identifier, reading: Reading, result: FormResult, index: int
) -> FormOutcome:
    assert result.data is not None
    header = result.data.header
    name, kind = header.get("entity_name"), header.get("kind")
    match = identifier.by_form_name(str(name) if name else None, str(kind) if kind else None)
    problems = list(result.problems)
    sender_id = match.sender_id
    if sender_id is None and name and match.reason == "unknown":
        problems.append(
            Problem(
                severity="error",
                code="unknown_entity",
                message_th=(
                    f"ไม่พบชื่อ ‘{name}’ ในรายชื่อจังหวัดและกลุ่มจังหวัด "
                    "กรุณาระบุชื่อจังหวัดหรือกลุ่มจังหวัดให้ถูกต้อง เช่น ‘เชียงใหม่’ หรือ "
                    "‘กลุ่มจังหวัดภาคเหนือตอนบน 1’"
                ),
                filename=result.filename,
                sheet=result.sheet,
                part="header",
                column="ชื่อกลุ่มจังหวัด/จังหวัด",
            )
        )
    if sender_id is None and match.reason != "ambiguous":
        # The form does not name a sender we know: the message as a whole may (address, subject).
        fallback = reading.message_match
        if fallback.sender_id is not None:
            return FormOutcome(result, index, fallback, fallback.sender_id, problems)
    return FormOutcome(result, index, match, sender_id, problems)


class AssignedIdentifier(Identifier):
    """The coordinator's answer to "who sent this?" (`intake review assign`) for one message: it
    stands wherever the mail itself names no single sender; a form naming a known sender keeps it."""

    def __init__(self, base: Identifier, sender_id: str) -> None:
        self.__dict__.update(base.__dict__)
        self.assigned = sender_id

    def by_form_name(self, name: str | None, kind_label: str | None = None) -> Match:
        match = super().by_form_name(name, kind_label)
        return match if match.sender_id else Match(self.assigned, "coordinator")

    def for_message(
        self, from_address: str | None, subject: str, body: str, thread: str | None = None
    ) -> Match:
        return Match(self.assigned, "coordinator")


# --- step 7: decide and commit ---------------------------------------------------------------------


@dataclass
class Outcome:
    message_id: int
    outcome: MessageOutcome | None
    claimed: bool
    submissions: list[int] = field(default_factory=list)
    replies: list[int] = field(default_factory=list)
    error: str | None = None
    learned: dict[str, set[str]] = field(default_factory=dict)  # sender -> addresses it added


def process_message(svc: Services, message_id: int, identifier: Identifier) -> Outcome:
    """Steps 3-7 for one archived message; a failure is recorded, never raised past here."""
    with session_scope(svc.factory) as session:
        row = session.get(Message, message_id)
        if row is None or row.state != MessageState.RECEIVED:
            return Outcome(message_id, None, claimed=False)
        path, assigned = row.archive_path, row.assigned_sender_id
        received_at, replay = as_utc(row.received_at), row.processed_at is not None
    if assigned:
        identifier = AssignedIdentifier(identifier, assigned)
    try:
        raw = svc.archive.read(path)
        reading = read_message(svc, identifier, raw)
        fail_point("decision", reading.parsed.message_id)
        return _commit(svc, message_id, reading, received_at, replay)
    except Exception as exc:  # noqa: BLE001 - one bad message must never stop the worker
        log.exception("message.failed id=%s", message_id)
        error = _error_text(exc)
    try:
        return _record_failure(svc, message_id, error)
    except Exception:  # noqa: BLE001 - the failure itself unrecordable: the next cycle retries
        log.exception("message.failure_not_recorded id=%s", message_id)
        return Outcome(message_id, None, claimed=False, error=error)


def _error_text(exc: BaseException) -> str:
    """The reason as text any database takes: an exception may quote the mail's bytes
    (surrogate escapes, control characters) and must not fail the recording of itself."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - a __str__ that raises
        text = type(exc).__name__
    text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return _CONTROL.sub(" ", text)[:4000]


def _record_failure(svc: Services, message_id: int, error: str) -> Outcome:
    with session_scope(svc.factory) as session:
        row = session.get(Message, message_id)
        if row is None or row.state != MessageState.RECEIVED:
            return Outcome(message_id, None, claimed=False, error=error)
        row.attempts += 1
        row.error = error[:4000]
        if row.attempts >= MAX_ATTEMPTS:
            row.state = MessageState.FAILED
            queries.add_review(
                session,
                "processing_error",
                f"ประมวลผลไม่สำเร็จ {row.attempts} ครั้ง: {error[:500]}",
                message_id=message_id,
            )
    return Outcome(message_id, None, claimed=False, error=error)


def _commit(
    svc: Services, message_id: int, reading: Reading, received_at: datetime, replay: bool = True
) -> Outcome:
    """Step 7, the one decision transaction. `replay` is False for a message never decided
    before (no `processed_at`): nothing of its own can exist yet, so nothing is looked up."""
    parsed = reading.parsed
    now = svc.clock.now()
    with session_scope(svc.factory) as session:
        outcome_kind = _outcome_kind(reading)
        claimed = queries.claim_message(
            session,
            message_id,
            {
                "processed_at": now,
                "outcome": outcome_kind,
                "from_address": parsed.from_address or None,
                "subject": parsed.subject or None,
                "forwarded_from": parsed.forwarded_from,
                "noise_reason": reading.noise,
                "error": None,
            },
        )
        if not claimed:
            session.rollback()
            return Outcome(message_id, None, claimed=False)
        attachments = record.store_attachments(session, message_id, parsed, replay)
        result = Outcome(message_id, outcome_kind, claimed=True)
        ctx = record.Decision(
            svc, session, message_id, parsed, received_at, now, replay=replay,
            auth=reading.auth, silent=reading.noise,
        )  # fmt: skip
        record.hold_if_spoofed(ctx, reading.auth)  # before any reply is queued
        if reading.noise:  # no reply to it; a bounce of ours flags the address it went to
            record.handle_noise(session, message_id, parsed, now)
        if reading.forms:  # read and recorded whatever the robot markers say
            for form in reading.forms:
                record.store_form(ctx, form, attachments, result)
        elif not reading.noise or any(map(record.looks_like_form_file, reading.unreadable)):
            # a robot's mail with an unreadable spreadsheet-like file may be a province's form;
            # one with only a logo or a PDF is not shown to anyone
            record.handle_no_form(ctx, reading, attachments, result)
        result.learned = ctx.learned
    return result


def _outcome_kind(reading: Reading) -> MessageOutcome:
    form_like = any(map(record.looks_like_form_file, reading.unreadable))
    if reading.noise and not reading.forms and not form_like:
        return MessageOutcome.NOISE
    if reading.forms and all(f.sender_id for f in reading.forms):
        return MessageOutcome.SUBMISSION
    if not reading.forms and reading.message_match.sender_id and reading.unreadable:
        return MessageOutcome.SUBMISSION
    return MessageOutcome.REVIEW


# --- the cycle ---------------------------------------------------------------------------------------


@dataclass
class CycleReport:
    fetched: int = 0
    new: int = 0
    processed: int = 0
    failed: int = 0
    marked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    send_errors: list[str] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)  # step 8 failed: filed next cycle
    smtp_unusable: str | None = None  # the SMTP server could not be used: every reply waits


Progress = Callable[[str, int, int], None]


def process_pending(
    svc: Services,
    report: CycleReport,
    progress: Progress | None = None,
    after_batch: Callable[[list[int]], None] | None = None,
) -> None:
    """Steps 3-7 for every RECEIVED message, oldest first (leftovers of a crash included).

    `after_batch` gets the ids of every `imap.batch_size` messages once they are decided: the
    poll files them on the server then, rather than the whole backlog at the end.
    """
    with session_scope(svc.factory) as session:
        pending = queries.message_ids_in_state(session, MessageState.RECEIVED)
        learned = queries.addresses_by_sender(session)
    identifier = Identifier(svc.roster, learned)
    batch: list[int] = []
    for done, message_id in enumerate(pending, start=1):
        outcome = process_message(svc, message_id, identifier)
        if outcome.claimed:
            crash_point("after_decision")
            report.processed += 1
            key = outcome.outcome.value if outcome.outcome else "unknown"
            report.outcomes[key] = report.outcomes.get(key, 0) + 1
            # a new valid form teaches us the sender's address for the next message: the
            # decision says which it added (no query; re-reading them all was O(n) per message)
            identifier.learn(outcome.learned)
        elif outcome.error:
            report.failed += 1
        batch.append(message_id)
        if after_batch is not None and len(batch) >= svc.settings.imap.batch_size:
            after_batch(batch)
            batch = []
        if progress:
            progress("process", done, len(pending))


def mailbox_key(settings: Settings) -> str:
    imap = settings.imap
    return f"{imap.username}@{imap.host}:{imap.effective_port()}/{imap.folder}"


def poll_once(svc: Services, progress: Progress | None = None) -> CycleReport:
    """One full cycle: fetch new mail, process it, file it on the server, send the outbox.

    Raises MailboxUnavailable / MailboxLoginFailed when the mailbox cannot be used (to connect,
    fetch); a bad message is an outcome, not an error. So is a filing failure (step 8): it is
    logged and kept in `file_errors`, the replies still go, and the messages stay PROCESSED for
    the next cycle to file. Replies a crash cut off mid-send are settled first.
    """
    from intake.mailbox import Mailbox

    report = CycleReport()
    key = mailbox_key(svc.settings)
    with _told_on_failure(report), Mailbox(svc.settings.imap) as box:
        state = box.state()
        _recover_sending(svc, box)  # under the lease: a SENDING row nobody sends now is settled
        with session_scope(svc.factory) as session:
            cursor = queries.get_cursor(session, key)
            last_uid = cursor.last_uid if cursor else 0
            if cursor is not None and cursor.uidvalidity != state.uidvalidity:
                log.warning(
                    "mailbox.uidvalidity_changed mailbox=%s old=%s new=%s: rescanning",
                    key,
                    cursor.uidvalidity,
                    state.uidvalidity,
                )
                last_uid = 0
        uids = box.uids_after(last_uid)
        for fetched in box.fetch(uids):  # steps 1-2, one commit per message
            _, is_new = archive_message(
                svc,
                fetched.raw,
                fetched.internaldate,
                "imap",
                Location(key, fetched.uidvalidity, fetched.uid),
            )
            crash_point("after_archive")  # the cursor moved with the archive commit
            report.fetched += 1
            report.new += int(is_new)
            if progress:
                progress("fetch", report.fetched, len(uids))
        if not uids:
            with session_scope(svc.factory) as session:
                queries.set_cursor(session, key, state.uidvalidity, last_uid)

        def file_batch(message_ids: list[int] | None = None) -> None:  # step 8, never raises
            if report.file_errors:
                return  # it failed once this cycle: the next cycle files these
            try:
                report.marked += mark_handled(svc, box, key, state.uidvalidity, message_ids)
            except SQLAlchemyError:
                raise
            except Exception as exc:  # noqa: BLE001 - filing must not stop replies or messages
                log.warning("mailbox.file_failed error=%s: filed by the next cycle", exc)
                report.file_errors.append(f"{type(exc).__name__}: {exc}")

        process_pending(svc, report, progress, file_batch)  # steps 3-7, filing as it goes
        file_batch()  # step 8 for the rest
        report.sent = _send(svc, report, box)
    return report


@contextlib.contextmanager
def _told_on_failure(report: CycleReport) -> Iterator[None]:
    """A mailbox that fails mid-cycle carries what the cycle did before (`intake poll` says it:
    mail taken in and answered is not undone by a later failure)."""
    try:
        yield
    except MailboxUnavailable as exc:
        exc.cycle_report = report
        raise


def mark_handled(
    svc: Services, box: Any, key: str, uidvalidity: int, message_ids: list[int] | None = None
) -> int:
    """Step 8: file decided messages on the server, then record it (idempotent).

    A page of `imap.batch_size` at a time, by UID, each filed and then recorded: memory and the
    IMAP command stay the same size whatever the backlog. Only messages whose decision is
    committed (PROCESSED or DONE) are filed; a crash between filing and recording files a page
    twice, which is harmless. `message_ids` limits it to those messages (the batch just decided).
    """
    size = svc.settings.imap.batch_size
    marked = after = 0
    while True:
        with session_scope(svc.factory) as session:
            page = queries.locations_to_mark(
                session, key, uidvalidity, after_uid=after, limit=size, message_ids=message_ids
            )
        if not page:
            return marked
        box.mark_done([uid for _, uid in page])
        with session_scope(svc.factory) as session:
            queries.mark_locations(session, [loc_id for loc_id, _ in page], svc.clock.now())
        marked += len(page)
        if len(page) < size:
            return marked
        after = page[-1][1]


def _send(svc: Services, report: CycleReport, box: Any | None) -> int:
    from intake.outbox import send_outbox

    _recover_sending(svc, box)
    sent = send_outbox(svc.factory, svc.settings.smtp, svc.settings.replies, svc.clock.now)
    report.send_errors.extend(sent.errors)
    if sent.deferred and sent.errors:
        report.smtp_unusable = sent.errors[-1]
    return sent.sent


def _recover_sending(svc: Services, box: Any | None) -> None:
    """Settle replies left in SENDING (intake.outbox.recover_sending), looking in Sent over
    `box`; with a mailbox that cannot be asked now, they wait for a cycle that can."""
    from intake.errors import MailboxUnavailable
    from intake.outbox import recover_sending

    try:
        sent_folder = box.sent_folder() if box is not None else None
    except MailboxUnavailable as exc:
        log.warning("outbox.recovery_deferred error=%s", exc)
        return

    def found_in_sent(message_id: str) -> bool:
        if box is None or sent_folder is None:
            return False
        try:
            return bool(box.find_message_id(sent_folder, message_id))
        except Exception:  # noqa: BLE001 - an unreadable Sent folder means "unknown", i.e. hold
            log.warning("outbox.sent_lookup_failed message_id=%s", message_id)
            return False

    recover_sending(svc.factory, svc.clock.now(), found_in_sent)


def import_files(
    svc: Services, raws: Iterable[tuple[bytes, datetime | None]], progress: Progress | None = None
) -> CycleReport:
    """`intake import`: the same path as the mailbox, minus fetching and filing on a server."""
    report = CycleReport()
    for raw, received_at in raws:
        when = received_at or _import_time(raw) or svc.clock.now()
        _, is_new = archive_message(svc, raw, when, "import")
        del raw  # processing reads the archive: a 50 MB mail must not be held twice
        report.fetched += 1
        report.new += int(is_new)
    process_pending(svc, report, progress)
    with session_scope(svc.factory) as session:
        # nothing to file on a server: imported messages are done once processed
        for message_id in queries.message_ids_in_state(session, MessageState.PROCESSED):
            message = session.get(Message, message_id)
            if message is not None and message.source == "import":
                message.state, message.done_at = MessageState.DONE, svc.clock.now()
    report.sent = _send(svc, report, None)
    return report


def _import_time(raw: bytes) -> datetime | None:
    """When our receiving server took the message in, for a file that has no INTERNALDATE: the
    date after the last `;` of the topmost `Received:` (the one our own server added; a Gmail
    Takeout mbox keeps it). Only the topmost counts: the ones below it were written by servers
    on the sender's side, or by the sender. Without it the sender's `Date:` stands in, which
    the log says, since the sender chose it."""
    received = _received_time(raw)
    if received is not None:
        return received
    date = _date_header(raw)
    log.warning(
        "import.no_received_time sha256=%s: lateness judged by the sender's Date: %s",
        sha256_hex(raw),
        date.isoformat() if date else "(none either; the time of the import)",
    )
    return date


def _received_time(raw: bytes) -> datetime | None:
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(_header_section(raw))
        top = next((str(v) for k, v in headers.raw_items() if k.lower() == "received"), None)
        if top is None or ";" not in top:
            return None
        return as_utc(parsedate_to_datetime(" ".join(top.rsplit(";", 1)[1].split())))
    except Exception:  # noqa: BLE001 - an unusable Received header just means "unknown"
        return None


def _date_header(raw: bytes) -> datetime | None:
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(_header_section(raw))
        value = headers.get("date")
        return as_utc(parsedate_to_datetime(" ".join(str(value).split()))) if value else None
    except Exception:  # noqa: BLE001 - an unusable Date header just means "unknown"
        return None


def reprocess(svc: Services, message_ids: list[int] | None = None) -> CycleReport:
    """Run steps 3-7 again from the archive. Earlier results of those messages are replaced;
    versions keep their numbers and a form already answered is not answered again."""
    report = CycleReport()
    with session_scope(svc.factory) as session:
        ids = message_ids or [
            m
            for state in (MessageState.PROCESSED, MessageState.DONE, MessageState.FAILED)
            for m in queries.message_ids_in_state(session, state)
        ]
        for message_id in ids:
            queries.reset_for_reprocess(session, message_id)
    process_pending(svc, report)
    with session_scope(svc.factory) as session:
        queries.restore_done_state(session, ids)
    return report
