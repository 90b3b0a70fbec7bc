"""Every table of the service, as typed SQLAlchemy 2 models.

The keys that make "nothing lost, nothing doubled" hold are database constraints, not checks in
Python: a message is unique by the SHA-256 of its raw bytes; a mailbox location (mailbox,
UIDVALIDITY, UID) is unique; a submission version is unique per sender; an outgoing mail is unique
by its own Message-ID. Storage imports nothing from `intake`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = getattr(cls, "__table__", None)
        if table is not None:
            for column in table.columns:
                if type(column.type) is String and column.type.length:
                    column.type = FittedString(column.type.length)


class FittedString(TypeDecorator[str]):
    """VARCHAR(n) that cuts a longer value to n characters on the way in, for every model
    (`Base` gives it to each String(n) column). Mail and forms are hostile and careless: a phone
    cell holding three numbers is a DataError on PostgreSQL that would fail the whole message
    after every retry, while SQLite stores it whole; cut, both store the same and the message
    is decided. Where the whole value matters the column is Text."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        length = getattr(self.impl, "length", None)
        if isinstance(value, str) and length and len(value) > length:
            return value[:length]
        return value


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native ENUM type) so SQLite and PostgreSQL migrate alike.
    return Enum(cls, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class SenderKind(enum.StrEnum):
    PROVINCE = "province"
    CLUSTER = "cluster"


class MessageState(enum.StrEnum):
    RECEIVED = "received"  # archived and recorded; nothing else done yet
    PROCESSED = "processed"  # results and replies committed; not yet filed on the server
    DONE = "done"  # filed on the server (or imported: nothing to file)
    FAILED = "failed"  # could not be processed; kept, shown to the coordinator


class MessageOutcome(enum.StrEnum):
    SUBMISSION = "submission"  # at least one form read for a known sender
    REVIEW = "review"  # waits for a person (unknown sender, conflict, unreadable ...)
    NOISE = "noise"  # auto-reply, bounce, list mail, our own mail
    NO_FORM = "no_form"  # a known sender wrote without a readable form
    RESEND = "resend"  # the same file again: no new version


class SubmissionStatus(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    # a valid form that does not count until a person decides: from an unverified address while
    # a verified one's form stands, or from an office that is not an expected sender
    PENDING = "pending"


class OutboxState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # handed to SMTP; a crash here leaves the outcome unknown
    SENT = "sent"
    FAILED = "failed"  # permanent failure, shown to the coordinator
    HELD = "held"  # waits for the coordinator (unknown send state, spoofing, dry run review)
    CANCELLED = "cancelled"


class ReviewState(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Sender(Base):
    """One expected sender (a province or a provincial cluster), from `config/senders/`."""

    __tablename__ = "sender"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # TH-50 or cluster id
    kind: Mapped[SenderKind] = mapped_column(_enum(SenderKind))
    name_th: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    region_th: Mapped[str] = mapped_column(String(100), default="")
    region_en: Mapped[str] = mapped_column(String(100), default="")
    cluster_id: Mapped[str | None] = mapped_column(String(40))
    aliases: Mapped[list[str]] = mapped_column(default=list)
    expected: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_key: Mapped[str] = mapped_column(String(200), default="")
    deadline_override: Mapped[datetime | None]

    addresses: Mapped[list[SenderAddress]] = relationship(back_populates="sender")


class SenderAddress(Base):
    """An e-mail address known to belong to a sender (configured, learned or added by hand)."""

    __tablename__ = "sender_address"
    __table_args__ = (UniqueConstraint("sender_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[str] = mapped_column(ForeignKey("sender.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), index=True)
    # config | coordinator | confirmed (all verified); learned (before issue 11, not verified)
    source: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    bounced_at: Mapped[datetime | None]

    sender: Mapped[Sender] = relationship(back_populates="addresses")


class MailboxCursor(Base):
    """How far a mailbox folder has been read: the UID high-water mark under one UIDVALIDITY."""

    __tablename__ = "mailbox_cursor"

    mailbox: Mapped[str] = mapped_column(String(400), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Message(Base):
    """One distinct e-mail, archived raw before anything else happens to it."""

    __tablename__ = "message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    message_id_header: Mapped[str | None] = mapped_column(String(998), index=True)
    archive_path: Mapped[str] = mapped_column(String(500))
    size: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))  # imap | import
    received_at: Mapped[datetime]  # IMAP INTERNALDATE (or the best available for imports)
    state: Mapped[MessageState] = mapped_column(_enum(MessageState), index=True)
    outcome: Mapped[MessageOutcome | None] = mapped_column(_enum(MessageOutcome))
    header_from: Mapped[str | None] = mapped_column(Text)  # raw From:, for duplicate detection
    header_date: Mapped[str | None] = mapped_column(String(200))  # raw Date:, same reason
    from_address: Mapped[str | None] = mapped_column(String(320))  # parsed addr-spec
    subject: Mapped[str | None] = mapped_column(Text)
    forwarded_from: Mapped[str | None] = mapped_column(String(320))
    noise_reason: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    # the coordinator said who sent it (`intake review assign`): every replay keeps that answer
    assigned_sender_id: Mapped[str | None] = mapped_column(ForeignKey("sender.id"))

    locations: Mapped[list[MessageLocation]] = relationship(back_populates="message")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.position"
    )


class MessageLocation(Base):
    """Where a message was seen on a server: the fetch key (mailbox, UIDVALIDITY, UID)."""

    __tablename__ = "message_location"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    mailbox: Mapped[str] = mapped_column(String(400))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    marked_at: Mapped[datetime | None]

    message: Mapped[Message] = relationship(back_populates="locations")


class Attachment(Base):
    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    origin: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)

    message: Mapped[Message] = relationship(back_populates="attachments")


class Submission(Base):
    """One form for one sender: a version in that sender's history, valid or not."""

    __tablename__ = "submission"
    __table_args__ = (
        UniqueConstraint("sender_id", "version"),
        Index("ix_submission_sender_status", "sender_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[str] = mapped_column(ForeignKey("sender.id"))
    # NULL when the form came by another channel (paper, by hand) and a person recorded it
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    attachment_id: Mapped[int | None] = mapped_column(ForeignKey("attachment.id"))
    channel: Mapped[str] = mapped_column(String(20), default="email", server_default="email")
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[SubmissionStatus] = mapped_column(_enum(SubmissionStatus))
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    sheet: Mapped[str | None] = mapped_column(String(255))
    template_version: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime]
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    receipt: Mapped[str | None] = mapped_column(String(40), unique=True)
    # header of the form, as read
    kind_label: Mapped[str | None] = mapped_column(String(100))
    entity_name: Mapped[str | None] = mapped_column(String(300))
    contact_name: Mapped[str | None] = mapped_column(String(300))
    position: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(50))
    email: Mapped[str | None] = mapped_column(String(320))
    header_extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    accepted_by: Mapped[str | None] = mapped_column(String(100))  # set when a person decided
    # False: the From address was not verified for this sender when it came (intake/record.py)
    verified: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    sender: Mapped[Sender] = relationship()


class FormText(Base):
    """Rows of the free-text parts (identity, goals): one line each, in order."""

    __tablename__ = "form_text"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    part: Mapped[str] = mapped_column(String(40))
    row_no: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


class Approach(Base):
    __tablename__ = "approach"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    row_no: Mapped[int] = mapped_column(Integer)
    seq: Mapped[str | None] = mapped_column(String(20))
    approach: Mapped[str | None] = mapped_column(Text)
    axis: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Indicator(Base):
    __tablename__ = "indicator"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    row_no: Mapped[int] = mapped_column(Integer)
    seq: Mapped[str | None] = mapped_column(String(20))
    indicator: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(200))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    row_no: Mapped[int] = mapped_column(Integer)
    seq: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(Text)
    axis: Mapped[int | None] = mapped_column(Integer)
    term: Mapped[str | None] = mapped_column(String(40))
    budget: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    source: Mapped[str | None] = mapped_column(Text)
    agency: Mapped[str | None] = mapped_column(Text)
    fiscal_year: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Partner(Base):
    __tablename__ = "partner"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    row_no: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Problem(Base):
    """A problem found in a message or a form, located and worded in Thai."""

    __tablename__ = "problem"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"), index=True)
    severity: Mapped[str] = mapped_column(String(10))  # error | warning
    code: Mapped[str] = mapped_column(String(60))
    message_th: Mapped[str] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(255))
    sheet: Mapped[str | None] = mapped_column(String(255))
    part: Mapped[str | None] = mapped_column(String(40))
    row: Mapped[int | None] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(200))
    cell: Mapped[str | None] = mapped_column(String(20))
    table_no: Mapped[int | None] = mapped_column(Integer)  # Word: which table (`row` is in it)


class Outbox(Base):
    """A reply, committed with the result it answers; sent by SMTP afterwards, at most once."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id_header: Mapped[str] = mapped_column(String(400), unique=True)  # idempotency key
    kind: Mapped[str] = mapped_column(String(30))  # acknowledgement | correction | reminder ...
    to_address: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # the exact MIME bytes to send
    sender_id: Mapped[str | None] = mapped_column(ForeignKey("sender.id"), index=True)
    answers_message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sending_at: Mapped[datetime | None]  # by the real clock: when the claim below was made
    sending_by: Mapped[str | None] = mapped_column(String(200))  # host:pid:token of the sender
    sent_at: Mapped[datetime | None]


class ReviewItem(Base):
    """Something the machine could not decide; waits for the coordinator."""

    __tablename__ = "review_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"), index=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    # the form a confirm/reject decides (`unverified_sender`, `unverified_pending`)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"))
    reason: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[ReviewState] = mapped_column(_enum(ReviewState), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)


class Counter(Base):
    """Named running numbers (receipt numbers per campaign year)."""

    __tablename__ = "counter"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Meta(Base):
    """Small facts about the database itself, by key (e.g. `roster_fingerprint`: which roster
    files the sender table was last synced from, so a start with the same files skips the sync)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Lease(Base):
    """Which worker may act now; renewed each cycle, taken over when it expires."""

    __tablename__ = "lease"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]


class WorkerStatus(Base):
    """The worker's health, for `intake status`, the container health check and the alert.

    One row per worker name (the lease name). Times are the real clock, never `INTAKE_NOW`:
    they measure the service, not the campaign.
    """

    __tablename__ = "worker_status"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(20), default="stopped")  # active|standby|stopped
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]  # the last poll that completed
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    alerted_for: Mapped[str | None] = mapped_column(String(200))  # the outage last alerted
