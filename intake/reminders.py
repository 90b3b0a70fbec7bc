"""Reminders before the deadline (and, if configured, overdue notices after it): once per sender
per reminder time, only to senders still missing or needing correction, only to known addresses.

Two halves:
- Pure planning: `reminder_slots` (the configured times for one deadline), `due_slot` (which of
  them is due at `now`), `plan` (who gets which). Tested without a database.
- `queue_due_reminders(svc)` (what the scheduler and `intake remind` call) reads the senders'
  status and addresses, plans, and puts one outbox row per reminder, keyed
  `reminder:<sender>:<slot>` (a unique column), so a re-run, a restart or a second worker queues
  nothing twice. Sending is the outbox's job (`intake.outbox.send_outbox`), as for every reply.
  `pending_reminders(svc)` is the same plan without writing (`intake remind --dry-run`).

Rules:
- A slot is `days_before` whole days before the deadline's date (Bangkok) at `at` (09:00), or
  `overdue_days_after` days after it. Only the LATEST slot that has come is due: a slot missed
  while the service was down is not sent late on top of a newer one. A "before" slot is never due
  once the deadline has passed. A sender's own (extended) deadline is used when it has one.
- Addresses, best first: the From of the sender's latest (invalid) version, when it needs
  correction; then the `sender_address` table (coordinator, config, learned; newest first).
  Addresses flagged by a bounce (`bounced_at`) and our own addresses are never used. One address
  per reminder: one reminder per sender per slot.
- Each reminder counts towards the per-recipient daily cap like any automatic mail (HELD beyond).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.clock import BANGKOK, as_utc
from intake.forms.model import Problem
from intake.replies import ReminderData, build_mime, new_message_id, sender_title
from intake.settings import RemindersSettings, Settings
from storage import queries
from storage.models import Message, Outbox, OutboxState
from storage.session import session_scope

if TYPE_CHECKING:
    from intake.pipeline import Services

log = logging.getLogger(__name__)

SlotKind = Literal["before", "overdue"]
_SOURCE_RANK = {"coordinator": 0, "config": 1, "learned": 2}


@dataclass(frozen=True)
class Slot:
    """One reminder time for one deadline."""

    kind: SlotKind
    days: int
    at: datetime  # aware

    @property
    def key(self) -> str:
        """Stable per kind, day count and date: `before-3d-2024-01-19` (a changed time of day
        does not make a second reminder; an extended deadline does make new ones)."""
        return f"{self.kind}-{self.days}d-{self.at.astimezone(BANGKOK).date().isoformat()}"


@dataclass(frozen=True)
class Contact:
    """What planning needs to know about one expected sender."""

    sender_id: str
    title_th: str  # `จังหวัดเชียงใหม่`
    status: str  # accepted | needs_correction | missing
    deadline: datetime
    addresses: tuple[str, ...] = ()  # usable ones, best first
    problems: tuple[Problem, ...] = ()  # errors of the latest version (needs_correction)
    last_received_at: datetime | None = None


@dataclass(frozen=True)
class PlannedReminder:
    contact: Contact
    slot: Slot

    @property
    def address(self) -> str:
        return self.contact.addresses[0]

    @property
    def dedupe_key(self) -> str:
        return f"reminder:{self.contact.sender_id}:{self.slot.key}"


@dataclass(frozen=True)
class QueuedReminder:
    """One reminder put in the outbox by `queue_due_reminders`."""

    sender_id: str
    address: str
    slot: str  # Slot.key
    outbox_id: int
    held: bool  # the per-recipient cap held it for the coordinator


# --- pure planning -----------------------------------------------------------------------------


def _at(day: date, cfg: RemindersSettings) -> datetime:
    return datetime.combine(day, cfg.at, tzinfo=BANGKOK)


def reminder_slots(cfg: RemindersSettings, deadline: datetime) -> list[Slot]:
    """Every configured reminder time for this deadline, earliest first."""
    day = as_utc(deadline).astimezone(BANGKOK).date()
    slots = [
        Slot("before", n, _at(day - timedelta(days=n), cfg))
        for n in set(cfg.days_before)
        if n >= 0 and _at(day - timedelta(days=n), cfg) < deadline
    ]
    slots += [
        Slot("overdue", n, _at(day + timedelta(days=n), cfg))
        for n in set(cfg.overdue_days_after)
        if n > 0 and _at(day + timedelta(days=n), cfg) > deadline
    ]
    return sorted(slots, key=lambda s: s.at)


def due_slot(cfg: RemindersSettings, deadline: datetime, now: datetime) -> Slot | None:
    """The latest reminder time that has come at `now`, or None (see the module's rules)."""
    passed = [s for s in reminder_slots(cfg, deadline) if s.at <= now]
    if not passed:
        return None
    slot = passed[-1]
    if slot.kind == "before" and now > deadline:
        return None
    return slot


def plan(contacts: list[Contact], cfg: RemindersSettings, now: datetime) -> list[PlannedReminder]:
    """Who gets which reminder at `now`: not accepted, with an address, a slot due."""
    out = []
    for contact in contacts:
        if contact.status == "accepted" or not contact.addresses:
            continue
        slot = due_slot(cfg, contact.deadline, now)
        if slot is not None:
            out.append(PlannedReminder(contact, slot))
    return out


# --- reading the database ----------------------------------------------------------------------


def load_contacts(session: Session, svc: Services) -> list[Contact]:
    """Every expected sender with its status, deadline, usable addresses and open problems."""
    by_sender: dict[str, list[tuple[int, int, str]]] = {}
    bounced: set[str] = set()
    for known in queries.sender_addresses(session):
        if known.bounced_at is not None:
            bounced.add(known.address)
        rank = (_SOURCE_RANK.get(known.source, 3), -known.id, known.address)
        by_sender.setdefault(known.sender_id, []).append(rank)
    skip = bounced | set(svc.own_addresses)
    latest = queries.latest_submissions(session)
    contacts = []
    for row in queries.sender_status_rows(session):
        status = (
            "accepted" if row.valid_versions else "needs_correction" if row.versions else "missing"
        )
        deadline = as_utc(row.deadline_override) if row.deadline_override else svc.settings.deadline
        candidates = [address for *_, address in sorted(by_sender.get(row.id, []))]
        problems: tuple[Problem, ...] = ()
        last_at = None
        submission = latest.get(row.id)
        if status == "needs_correction" and submission is not None:
            problems = tuple(
                _problem(p) for p in queries.submission_problems(session, submission.id)
            )
            last_at = as_utc(submission.received_at)
            message = session.get(Message, submission.message_id) if submission.message_id else None
            if message is not None and message.from_address:
                candidates.insert(0, message.from_address.lower())
        usable = tuple(a for a in dict.fromkeys(candidates) if a not in skip and "@" in a)
        contacts.append(
            Contact(
                sender_id=row.id,
                title_th=sender_title(row.kind.value, row.name_th),
                status=status,
                deadline=deadline,
                addresses=usable,
                problems=problems,
                last_received_at=last_at,
            )
        )
    return contacts


def _problem(row: Any) -> Problem:
    """A stored problem row back as the plain value the templates show."""
    return Problem(
        severity=row.severity,
        code=row.code,
        message_th=row.message_th,
        filename=row.filename,
        sheet=row.sheet,
        part=row.part,
        row=row.row,
        column=row.column,
        cell=row.cell,
        table=getattr(row, "table_no", None),
    )


# --- who cannot be reached --------------------------------------------------------------------------

# How a coordinator gives a sender an address (the roster file is read at every start).
ADD_ADDRESS_COMMAND = "intake review add-address SENDER ADDRESS"


@dataclass(frozen=True)
class Unverified:
    """An expected sender with no verified address (`intake roster check`)."""

    sender_id: str
    title_th: str
    seen: tuple[str, ...] = ()  # From addresses of its mails: suggestions, never used unasked


def addresses_csv(settings: Settings) -> Path:
    """The roster's address file in force (`config_dir`, see `intake config`)."""
    return settings.config_dir / "senders" / "addresses.csv"


def unverified_senders(session: Session, own: frozenset[str] = frozenset()) -> list[Unverified]:
    """Expected senders without a verified address, each with the addresses seen in its mail.

    Verified means the roster file, the coordinator, or a form the coordinator confirmed
    (issue 11): a reminder goes nowhere else, except as an answer to a version needing
    correction. Our own addresses are never suggested."""
    seen = queries.addresses_seen_by_sender(session)
    return [
        Unverified(
            sender_id,
            sender_title(kind, name_th),
            tuple(a for a in seen.get(sender_id, ()) if "@" in a and a not in own),
        )
        for sender_id, kind, name_th in queries.unverified_expected_senders(session)
    ]


def unreachable_text(settings: Settings, unverified: int, unreachable: int | None = None) -> str:
    """Short lines for the commands: how many cannot be reached and how to fix it (each line
    fits 80 columns but for a long path; the command is never broken)."""
    lines = []
    if unreachable is not None:
        lines.append(f"{unreachable} senders still owing a form have no address and get no reminder.")
    lines += [
        f"{unverified} expected senders have no verified address. Add them to",
        f"  {addresses_csv(settings)}",
        f"or run `{ADD_ADDRESS_COMMAND}`;",
        "`intake roster check` lists them, with addresses seen in their mail.",
    ]
    return "\n".join(lines)


# --- queueing --------------------------------------------------------------------------------------


def pending_reminders(svc: Services) -> list[PlannedReminder]:
    """The reminders due now and not yet queued; changes nothing (`intake remind --dry-run`)."""
    now = svc.clock.now()
    with session_scope(svc.factory) as session:
        planned = plan(load_contacts(session, svc), svc.settings.reminders, now)
        return [p for p in planned if not queries.outbox_key_exists(session, p.dedupe_key)]


def queue_due_reminders(svc: Services) -> list[QueuedReminder]:
    """Queue every reminder due now, each once per sender per reminder time; return them.

    Safe to call as often as you like (the scheduler does, every few minutes): a reminder already
    queued, by this or another worker, is not queued again. Nothing is sent here; send the outbox
    afterwards. Returns [] when replies or reminders are disabled.
    """
    settings = svc.settings
    if not settings.replies.enabled or not settings.reminders.enabled:
        return []
    now = svc.clock.now()
    queued = []
    for planned in pending_reminders(svc):
        try:
            with session_scope(svc.factory) as session:
                if queries.outbox_key_exists(session, planned.dedupe_key):
                    continue
                row = _queue_one(svc, session, planned, now)
                done = QueuedReminder(
                    planned.contact.sender_id,
                    planned.address,
                    planned.slot.key,
                    row.id,
                    row.state == OutboxState.HELD,
                )
        except IntegrityError:
            continue  # another worker queued the same reminder a moment ago
        queued.append(done)
        log.info("reminder.queued sender=%s slot=%s to=%s", done.sender_id, done.slot, done.address)
    return queued


def render(svc: Services, planned: PlannedReminder, now: datetime) -> tuple[str, str, str]:
    """(subject, text, html) of one planned reminder."""
    contact = planned.contact
    data = ReminderData(
        to_address=planned.address,
        sender_title=contact.title_th,
        status=contact.status,
        deadline=contact.deadline,
        now=now,
        overdue=planned.slot.kind == "overdue",
        mailbox=svc.settings.smtp.from_address,
        problems=list(contact.problems),
        last_received_at=contact.last_received_at,
    )
    return svc.renderer.render_reminder(data)


def _queue_one(svc: Services, session: Session, planned: PlannedReminder, now: datetime) -> Outbox:
    settings = svc.settings
    subject, text, html = render(svc, planned, now)
    message_id = new_message_id(settings.replies.message_id_domain)
    to = planned.address
    raw = build_mime(
        from_address=settings.smtp.from_address,
        from_name=settings.smtp.from_name,
        to_address=to,
        subject=subject,
        text=text,
        html=html,
        message_id=message_id,
        kind="reminder",
        in_reply_to=None,
        references=[],
        date=now,
        auto_submitted="auto-generated",
    )
    cap = settings.replies.per_recipient_daily_cap
    capped = queries.replies_to_address_since(session, to, now - timedelta(days=1)) >= cap
    row = Outbox(
        message_id_header=message_id,
        kind="reminder",
        to_address=to,
        subject=subject,
        raw=raw,
        sender_id=planned.contact.sender_id,
        dedupe_key=planned.dedupe_key[:200],
        state=OutboxState.HELD if capped else OutboxState.QUEUED,
        last_error="daily cap for this recipient reached" if capped else None,
        created_at=now,
    )
    session.add(row)
    session.flush()
    if capped:
        queries.add_review(
            session,
            "reply_cap",
            f"ระงับการแจ้งเตือนอัตโนมัติถึง {to}: เกิน {cap} ฉบับใน 24 ชั่วโมง",
            outbox_id=row.id,
        )
    return row
