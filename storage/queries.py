"""Named queries: every `select()` and guarded `update()` of the service lives here.

Functions take a `Session` and plain values and return models or plain rows; the caller owns the
transaction. Guarded updates (`WHERE state = ...`) return whether this caller won, which is how two
workers stay safe without locks held across network calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import JSON, Table, and_, exists, false, func, or_, select, update
from sqlalchemy.orm import Session

from storage.models import (
    Approach,
    AuditEvent,
    Counter,
    FormText,
    Indicator,
    Lease,
    MailboxCursor,
    Message,
    MessageLocation,
    MessageState,
    Meta,
    Outbox,
    OutboxState,
    Partner,
    Project,
    ReviewItem,
    ReviewState,
    Sender,
    SenderAddress,
    SenderKind,
    Submission,
    SubmissionStatus,
    WorkerStatus,
)
from storage.session import storable

# --- roster -------------------------------------------------------------------------------------


def sync_senders(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Make the sender table match the roster files; configured addresses are added, never lost.

    Upserts, so two workers starting at once cannot trip over each other. Every command starts
    with this, so only rows that differ from the table are written (one SELECT of each table
    otherwise: 2.3 s -> ~0.1 s for a roster of 10,000).
    """
    columns = [c.name for c in Sender.__table__.columns if c.name != "id"]
    current = {
        row[0]: tuple(row[1:])
        for row in session.execute(select(Sender.id, *(getattr(Sender, c) for c in columns)))
    }
    known = {
        (sender_id, address)
        for sender_id, address in session.execute(
            select(SenderAddress.sender_id, SenderAddress.address)
        )
    }
    for row in rows:
        row = dict(row)
        addresses = [
            a for a in row.pop("addresses", ()) if (row["id"], a.strip().lower()) not in known
        ]
        was = current.get(row["id"])
        if was is None or was != tuple(
            _same_type(row.get(c, _ABSENT), old) for c, old in zip(columns, was, strict=True)
        ):
            changes = {k: v for k, v in row.items() if k != "id"}
            session.execute(
                _insert(session, Sender)
                .values(**row)
                .on_conflict_do_update(index_elements=["id"], set_=changes)
            )
        for address in addresses:  # after the sender row: the address refers to it
            add_sender_address(session, row["id"], address, "config")
    session.flush()


_ABSENT = object()


def _same_type(value: Any, was: Any) -> Any:
    """A roster value as the table would hold it, for comparison (a column the roster does not
    set keeps its stored value; tuples are lists in JSON)."""
    if value is _ABSENT:
        return was
    return list(value) if isinstance(value, tuple) else value


def _insert(session: Session, model: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT support (SQLite and PostgreSQL)."""
    # Imported here: the PostgreSQL dialect costs ~15 ms at every SQLite command's start.
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model)


# Where an address came from that makes it verified for its sender: the roster file, the
# coordinator adding it, or the coordinator confirming a form sent from it. Rows with source
# `learned` (recorded from a valid form before issue 11) identify a sender but verify nothing.
VERIFIED_SOURCES = ("config", "coordinator", "confirmed")


def add_sender_address(session: Session, sender_id: str, address: str, source: str) -> bool:
    """Record an address for a sender once; True when it was new. A value without `@` is never
    an address (a From of `<script>` parses to `script`): nothing is recorded."""
    if "@" not in address:
        return False
    # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
    inserted = session.execute(
        _insert(session, SenderAddress)
        .values(sender_id=sender_id, address=address.strip().lower(), source=source)
        .on_conflict_do_nothing(index_elements=["sender_id", "address"])
        .returning(SenderAddress.id)
    ).first()
    return inserted is not None


def get_meta(session: Session, key: str) -> str | None:
    return session.scalar(select(Meta.value).where(Meta.key == key))


def set_meta(session: Session, key: str, value: str) -> None:
    """Upsert, so two workers starting at once both succeed (the last one's value stays)."""
    session.execute(
        _insert(session, Meta)
        .values(key=key, value=value)
        .on_conflict_do_update(index_elements=["key"], set_={"value": value})
    )


def addresses_by_sender(session: Session) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for sender_id, address in session.execute(
        select(SenderAddress.sender_id, SenderAddress.address)
    ):
        result.setdefault(sender_id, set()).add(address)
    return result


# --- mailbox cursor and message identity ---------------------------------------------------------


def get_cursor(session: Session, mailbox: str) -> MailboxCursor | None:
    return session.get(MailboxCursor, mailbox)


def set_cursor(session: Session, mailbox: str, uidvalidity: int, last_uid: int) -> None:
    """Move the high-water mark forward (never back) under the given UIDVALIDITY.

    Called once per fetched message, so the usual case (same UIDVALIDITY, a higher UID) is one
    guarded UPDATE; anything else (no row yet, a new UIDVALIDITY) reads the row locked."""
    table = cast(Table, MailboxCursor.__table__)
    moved = session.connection().execute(
        update(table)
        .where(
            table.c.mailbox == mailbox,
            table.c.uidvalidity == uidvalidity,
            table.c.last_uid < last_uid,
        )
        .values(last_uid=last_uid)
    )
    if moved.rowcount == 1:  # type: ignore[attr-defined]
        loaded = session.identity_map.get(session.identity_key(MailboxCursor, mailbox))
        if loaded is not None:
            session.expire(loaded)
        return
    cursor = session.get(MailboxCursor, mailbox, with_for_update=True)
    if cursor is None:
        session.add(MailboxCursor(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid))
    elif cursor.uidvalidity != uidvalidity:
        cursor.uidvalidity, cursor.last_uid = uidvalidity, last_uid
    elif last_uid > cursor.last_uid:
        cursor.last_uid = last_uid
    session.flush()


def message_by_sha(session: Session, sha256: str) -> Message | None:
    return session.scalar(select(Message).where(Message.sha256 == sha256))


def messages_by_message_id(session: Session, message_id_header: str) -> Sequence[Message]:
    return session.scalars(
        select(Message).where(Message.message_id_header == message_id_header)
    ).all()


def location_exists(session: Session, mailbox: str, uidvalidity: int, uid: int) -> bool:
    return bool(
        session.scalar(
            select(
                exists().where(
                    MessageLocation.mailbox == mailbox,
                    MessageLocation.uidvalidity == uidvalidity,
                    MessageLocation.uid == uid,
                )
            )
        )
    )


def insert_location_if_absent(
    session: Session, message_id: int, mailbox: str, uidvalidity: int, uid: int
) -> None:
    values = {"message_id": message_id, "mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid}
    session.execute(_insert(session, MessageLocation).values(**values).on_conflict_do_nothing())


def message_ids_in_state(session: Session, state: MessageState) -> list[int]:
    return list(
        session.scalars(
            select(Message.id).where(Message.state == state).order_by(Message.received_at)
        )
    )


def claim_message(session: Session, message_id: int, values: dict[str, Any]) -> bool:
    """RECEIVED -> PROCESSED for this caller only; False when another worker got there first.

    A Core UPDATE (half the cost of the ORM's, which also looks for loaded objects to refresh):
    the decision transaction that calls this has no `Message` object loaded."""
    table = cast(Table, Message.__table__)
    result = session.connection().execute(
        update(table)
        .where(table.c.id == message_id, table.c.state == MessageState.RECEIVED)
        .values(state=MessageState.PROCESSED, **values)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def locations_to_mark(
    session: Session,
    mailbox: str,
    uidvalidity: int,
    *,
    after_uid: int = 0,
    limit: int | None = None,
    message_ids: Sequence[int] | None = None,
) -> list[tuple[int, int]]:
    """(location id, UID) of decided messages not yet filed on the server, by UID.

    One page: `limit` rows above `after_uid` (keyset), optionally only of `message_ids`, as plain
    tuples rather than ORM rows, so that filing a backlog costs the same memory at any size.
    """
    query = (
        select(MessageLocation.id, MessageLocation.uid)
        .join(Message)
        .where(
            MessageLocation.mailbox == mailbox,
            MessageLocation.uidvalidity == uidvalidity,
            MessageLocation.marked_at.is_(None),
            MessageLocation.uid > after_uid,
            Message.state.in_([MessageState.PROCESSED, MessageState.DONE]),
        )
        .order_by(MessageLocation.uid)
        .limit(limit)
    )
    if message_ids is not None:
        query = query.where(MessageLocation.message_id.in_(list(message_ids)))
    return [(loc_id, uid) for loc_id, uid in session.execute(query)]


def mark_locations(session: Session, location_ids: Sequence[int], when: datetime) -> None:
    if not location_ids:
        return
    session.execute(
        update(MessageLocation).where(MessageLocation.id.in_(location_ids)).values(marked_at=when)
    )
    message_ids = select(MessageLocation.message_id).where(MessageLocation.id.in_(location_ids))
    session.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.state == MessageState.PROCESSED)
        .values(state=MessageState.DONE, done_at=when)
    )


# --- submissions ---------------------------------------------------------------------------------


def next_version(session: Session, sender_id: str) -> int:
    current = session.scalar(
        select(func.max(Submission.version)).where(Submission.sender_id == sender_id)
    )
    return (current or 0) + 1


def next_counter(session: Session, name: str) -> int:
    """Increment a named counter inside the caller's transaction and return the new value.

    One upsert with RETURNING (one round trip; on PostgreSQL the row stays locked until the
    caller commits, so two workers never draw the same number)."""
    stmt = (
        _insert(session, Counter)
        .values(name=name, value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    return int(session.execute(stmt).scalar_one())


def sender_deadline_override(session: Session, sender_id: str) -> datetime | None:
    return session.scalar(select(Sender.deadline_override).where(Sender.id == sender_id))


class SenderHistory(NamedTuple):
    """What deciding a new form needs from a sender's past (`sender_history`)."""

    last_version: int | None
    last_valid_version: int | None
    same_file_version: int | None  # the earliest version made from the same file, if any
    deadline_override: datetime | None
    last_verified_valid_version: int | None = None  # the latest valid one from a verified address
    address_verified: bool = False  # the address asked about is verified for this sender


def sender_history(
    session: Session, sender_id: str, file_sha256: str | None, address: str | None = None
) -> SenderHistory:
    """A sender's latest version, latest valid version, earliest version of this file, own
    deadline, latest valid version from a verified address, and whether `address` is a verified
    address of the sender, in one round trip (six separate queries per form otherwise)."""
    versions = select(func.max(Submission.version)).where(Submission.sender_id == sender_id)
    same_file = (
        select(func.min(Submission.version)).where(
            Submission.sender_id == sender_id, Submission.file_sha256 == file_sha256
        )
        if file_sha256
        else select(func.min(Submission.version)).where(false())
    )
    row = session.execute(
        select(
            versions.scalar_subquery(),
            versions.where(Submission.status == SubmissionStatus.VALID).scalar_subquery(),
            same_file.scalar_subquery(),
            select(Sender.deadline_override).where(Sender.id == sender_id).scalar_subquery(),
            versions.where(
                Submission.status == SubmissionStatus.VALID, Submission.verified.is_(True)
            ).scalar_subquery(),
            exists().where(
                SenderAddress.sender_id == sender_id,
                SenderAddress.address == (address or "").strip().lower(),
                SenderAddress.source.in_(VERIFIED_SOURCES),
            )
            if address and "@" in address
            else false(),
        )
    ).one()
    last, last_valid, same_file, override, verified_valid, known = row
    return SenderHistory(last, last_valid, same_file, override, verified_valid, bool(known))


def verified_valid_before(session: Session, sender_id: str, version: int) -> bool:
    """Whether a valid form from a verified address came before `version` (replays only)."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Submission.sender_id == sender_id,
                    Submission.status == SubmissionStatus.VALID,
                    Submission.verified.is_(True),
                    Submission.version < version,
                )
            )
        )
    )


def verified_addresses(session: Session, sender_id: str) -> list[str]:
    """A sender's verified addresses that have not bounced, oldest first."""
    return list(
        session.scalars(
            select(SenderAddress.address)
            .where(
                SenderAddress.sender_id == sender_id,
                SenderAddress.source.in_(VERIFIED_SOURCES),
                SenderAddress.bounced_at.is_(None),
            )
            .order_by(SenderAddress.id)
        )
    )


def sender_of_our_mail(
    session: Session, message_ids: Sequence[str], receipts: Sequence[str]
) -> str | None:
    """The sender a mail of ours was about: by its Message-ID (in the order given, the first
    that names one sender wins), else by a receipt number we gave. None when nothing matches."""
    wanted = [f"<{m.strip().strip('<>')}>" for m in message_ids if m and m.strip("<> ")]
    if wanted:
        found: dict[str, set[str]] = {}
        for header, sender_id, submitted in session.execute(
            select(Outbox.message_id_header, Outbox.sender_id, Submission.sender_id)
            .outerjoin(Submission, Submission.id == Outbox.submission_id)
            .where(Outbox.message_id_header.in_(wanted))
        ):
            found.setdefault(header, set()).update(s for s in (sender_id, submitted) if s)
        for header in wanted:
            if len(found.get(header, ())) == 1:
                return next(iter(found[header]))
    if receipts:
        senders = set(
            session.scalars(select(Submission.sender_id).where(Submission.receipt.in_(receipts)))
        )
        if len(senders) == 1:
            return next(iter(senders))
    return None


def submission_by_version(session: Session, sender_id: str, version: int) -> Submission | None:
    return session.scalar(
        select(Submission).where(Submission.sender_id == sender_id, Submission.version == version)
    )


def previous_valid_version(session: Session, sender_id: str, version: int) -> int | None:
    """The latest valid version of a sender before `version` (what a new valid form replaces)."""
    return session.scalar(
        select(func.max(Submission.version)).where(
            Submission.sender_id == sender_id,
            Submission.status == SubmissionStatus.VALID,
            Submission.version < version,
        )
    )


# --- outbox --------------------------------------------------------------------------------------


def outbox_key_exists(session: Session, dedupe_key: str) -> bool:
    return bool(session.scalar(select(exists().where(Outbox.dedupe_key == dedupe_key))))


def replies_to_address_since(session: Session, address: str, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count(Outbox.id)).where(
                Outbox.to_address == address,
                Outbox.created_at >= since,
                Outbox.state.notin_([OutboxState.CANCELLED]),
            )
        )
        or 0
    )


def outbox_due(
    session: Session, now: datetime, *, after_id: int = 0, limit: int | None = None
) -> list[int]:
    """Ids of QUEUED rows due at `now`, oldest first: one page of `limit` above `after_id`."""
    return list(
        session.scalars(
            select(Outbox.id)
            .where(
                Outbox.state == OutboxState.QUEUED,
                or_(Outbox.next_attempt_at.is_(None), Outbox.next_attempt_at <= now),
                Outbox.id > after_id,
            )
            .order_by(Outbox.id)
            .limit(limit)
        )
    )


def outbox_keys_in_state(
    session: Session, state: OutboxState
) -> list[tuple[int, str, datetime | None, str | None]]:
    """(id, Message-ID, sending_at, sending_by) of the rows in `state`: the columns only, never
    the raw MIME."""
    rows = session.execute(
        select(Outbox.id, Outbox.message_id_header, Outbox.sending_at, Outbox.sending_by)
        .where(Outbox.state == state)
        .order_by(Outbox.id)
    )
    return [(outbox_id, message_id, at, by) for outbox_id, message_id, at, by in rows]


def transition_outbox(
    session: Session, outbox_id: int, from_state: OutboxState, **values: Any
) -> bool:
    result = session.execute(
        update(Outbox).where(Outbox.id == outbox_id, Outbox.state == from_state).values(**values)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def outbox_counts(session: Session) -> dict[str, int]:
    return {
        state.value: count
        for state, count in session.execute(
            select(Outbox.state, func.count(Outbox.id)).group_by(Outbox.state)
        )
    }


# --- review and audit ----------------------------------------------------------------------------


def add_review(
    session: Session,
    reason: str,
    detail: str = "",
    message_id: int | None = None,
    outbox_id: int | None = None,
    submission_id: int | None = None,
) -> ReviewItem:
    item = ReviewItem(
        reason=reason,
        detail=detail,
        message_id=message_id,
        outbox_id=outbox_id,
        submission_id=submission_id,
        state=ReviewState.OPEN,
    )
    session.add(item)
    return item


def audit(session: Session, actor: str, action: str, target: str | None, **detail: Any) -> None:
    session.add(AuditEvent(actor=actor, action=action, target=target, detail=detail))


@dataclass(frozen=True)
class ReviewRow:
    id: int
    message_id: str | None
    from_address: str | None
    subject: str | None
    received_at: datetime | None
    reason: str
    detail: str


def open_review(session: Session) -> list[ReviewRow]:
    rows = session.execute(
        select(ReviewItem, Message)
        .outerjoin(Message, ReviewItem.message_id == Message.id)
        .where(ReviewItem.state == ReviewState.OPEN)
        .order_by(ReviewItem.created_at, ReviewItem.id)
    )
    return [
        ReviewRow(
            id=item.id,
            message_id=msg.message_id_header if msg else None,
            from_address=msg.from_address if msg else None,
            subject=msg.subject if msg else None,
            received_at=msg.received_at if msg else None,
            reason=item.reason,
            detail=item.detail,
        )
        for item, msg in rows
    ]


# --- status per expected sender ------------------------------------------------------------------


class SenderStatusRow(NamedTuple):
    """A named tuple, not a frozen dataclass: built once per sender on every report, and a
    frozen dataclass's __init__ costs ~4x more (~40 ms of 10,000 rows)."""

    id: str
    kind: SenderKind
    name_th: str
    name_en: str
    region_th: str
    cluster_id: str | None
    sort_key: str
    versions: int
    valid_versions: int
    last_received_at: datetime | None
    first_valid_at: datetime | None
    first_valid_late: bool | None
    receipt: str | None  # the receipt of the latest valid version
    deadline_override: datetime | None
    verified: bool | None = None  # whether the latest valid version came from a verified address


def sender_status_rows(session: Session) -> list[SenderStatusRow]:
    """One row per expected sender with the aggregates the status rules need; one query each."""
    agg = (
        select(
            Submission.sender_id.label("sid"),
            func.count(Submission.id).label("versions"),
            func.count(Submission.id)
            .filter(Submission.status == SubmissionStatus.VALID)
            .label("valid_versions"),
            func.max(Submission.received_at).label("last_received_at"),
            func.max(Submission.version)
            .filter(Submission.status == SubmissionStatus.VALID)
            .label("latest_valid_version"),
            func.min(Submission.version)
            .filter(Submission.status == SubmissionStatus.VALID)
            .label("first_valid_version"),
        )
        .group_by(Submission.sender_id)
        .subquery()
    )
    latest = Submission.__table__.alias("latest")
    first = Submission.__table__.alias("first")
    stmt = (
        select(
            Sender.id,  # columns, not the entity: 10,000 ORM objects cost more than the query
            Sender.kind,
            Sender.name_th,
            Sender.name_en,
            Sender.region_th,
            Sender.cluster_id,
            Sender.sort_key,
            Sender.deadline_override,
            agg.c.versions,
            agg.c.valid_versions,
            agg.c.last_received_at,
            latest.c.receipt,
            latest.c.verified,
            first.c.received_at,
            first.c.late,
        )
        .outerjoin(agg, agg.c.sid == Sender.id)
        .outerjoin(
            latest,
            and_(latest.c.sender_id == Sender.id, latest.c.version == agg.c.latest_valid_version),
        )
        .outerjoin(
            first,
            and_(first.c.sender_id == Sender.id, first.c.version == agg.c.first_valid_version),
        )
        .where(Sender.expected.is_(True))
    )
    out = []
    for (
        sender_id, kind, name_th, name_en, region_th, cluster_id, sort_key, deadline_override,
        versions, valid, last_at, receipt, verified, first_at, first_late,
    ) in session.execute(stmt):  # fmt: skip
        out.append(
            SenderStatusRow(
                id=sender_id,
                kind=kind,
                name_th=name_th,
                name_en=name_en,
                region_th=region_th,
                cluster_id=cluster_id,
                sort_key=sort_key,
                versions=versions or 0,
                valid_versions=valid or 0,
                last_received_at=last_at,
                first_valid_at=first_at,
                first_valid_late=first_late,
                receipt=receipt,
                deadline_override=deadline_override,
                verified=bool(verified) if valid else None,
            )
        )
    return out


# --- replay ------------------------------------------------------------------------------------------


def reset_for_reprocess(session: Session, message_id: int) -> None:
    """Put a message back to RECEIVED and clear what processing derived from it.

    Submissions stay (their version numbers and receipts are history); their rows and problems
    are rebuilt by the next processing. Outbox rows stay too: they are what stops a second reply.
    """
    from sqlalchemy import delete

    from storage.models import Approach, FormText, Indicator, Partner, Problem, Project

    submission_ids = select(Submission.id).where(Submission.message_id == message_id)
    for model in (FormText, Approach, Indicator, Project, Partner):
        session.execute(delete(model).where(model.submission_id.in_(submission_ids)))
    session.execute(delete(Problem).where(Problem.message_id == message_id))
    session.execute(
        delete(ReviewItem).where(
            ReviewItem.message_id == message_id,
            ReviewItem.state == ReviewState.OPEN,
            ReviewItem.outbox_id.is_(None),
        )
    )
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(state=MessageState.RECEIVED, attempts=0, error=None)
    )


def restore_done_state(session: Session, message_ids: Sequence[int]) -> None:
    """After a replay, messages already filed on the server (or imported) are DONE again."""
    for message in session.scalars(select(Message).where(Message.id.in_(message_ids))):
        if message.state != MessageState.PROCESSED:
            continue
        filed = all(loc.marked_at is not None for loc in message.locations)
        if message.source == "import" or (message.locations and filed):
            message.state = MessageState.DONE


def attachments_of(session: Session, message_id: int) -> dict[int, tuple[int, str]]:
    """A message's recorded attachments: position -> (id, sha256)."""
    from storage.models import Attachment

    return {
        position: (attachment_id, sha)
        for position, attachment_id, sha in session.execute(
            select(Attachment.position, Attachment.id, Attachment.sha256).where(
                Attachment.message_id == message_id
            )
        )
    }


def insert_rows(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Many rows of one table, all with the same keys, as one bulk insert (`insert_values`)."""
    if rows:
        columns = list(rows[0])
        insert_values(session, model, columns, [tuple(row[c] for c in columns) for row in rows])


def insert_values(
    session: Session, model: Any, columns: Sequence[str], values: Sequence[tuple[Any, ...]]
) -> None:
    """Many rows of one table at the driver's speed, in the caller's transaction: COPY on
    PostgreSQL (psycopg), one plain executemany on SQLite. `values` are tuples in `columns` order.

    The ORM's bulk INSERT cost more than reading the form (~5 ms for a form's 600 rows on SQLite,
    ~13 ms on PostgreSQL, where executemany is still one statement per row). Each value goes
    through its column type's own bind processor, so what is stored is what an ORM insert stores.
    """
    if not values:
        return
    table = model.__table__
    conn = session.connection()
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    into = f"{quote(table.name)} ({', '.join(quote(c) for c in columns)})"
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        from psycopg.adapt import PyFormat

        raw = conn.connection.driver_connection

        def as_text(wrapped: Any) -> str:  # psycopg would dump the shared empty JSON every row
            dumper = raw.adapters.get_dumper(type(wrapped), PyFormat.TEXT)  # type: ignore[union-attr]
            return bytes(dumper(type(wrapped), raw).dump(wrapped)).decode()

        rows = _bound_values(table, columns, values, dialect, as_text)
        with raw.cursor() as cursor, cursor.copy(f"COPY {into} FROM STDIN") as copy:  # type: ignore[union-attr]
            for value in rows:
                copy.write_row(storable(value))  # COPY bypasses the engine's NUL rule
    elif dialect.paramstyle == "qmark":
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(
            f"INSERT INTO {into} VALUES ({marks})", _bound_values(table, columns, values, dialect)
        )
    else:
        conn.execute(table.insert(), [dict(zip(columns, value, strict=True)) for value in values])


def _bound_values(
    table: Any,
    columns: Sequence[str],
    values: Sequence[tuple[Any, ...]],
    dialect: Any,
    finish_empty: Callable[[Any], Any] = lambda bound: bound,
) -> Sequence[tuple[Any, ...]]:
    """The rows converted by the column types' bind processors (JSON to text, Decimal to float
    on SQLite, ...); an empty JSON value, which `extra` nearly always is, is converted once
    (and `finish_empty`ed once: the driver's own dumping of it)."""
    processors = []
    for i, name in enumerate(columns):
        column_type = table.c[name].type
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            empty = finish_empty(process({})) if isinstance(column_type, JSON) else None
            processors.append((i, process, empty))
    if not processors:
        return values
    converted = []
    for value in values:
        items = list(value)
        for i, process, empty in processors:
            item = items[i]
            items[i] = empty if empty is not None and item == {} else process(item)
        converted.append(tuple(items))
    return converted


def submission_of_message(
    session: Session, message_id: int, sender_id: str, attachment_id: int | None, sheet: str | None
) -> Submission | None:
    return session.scalar(
        select(Submission).where(
            Submission.message_id == message_id,
            Submission.sender_id == sender_id,
            Submission.attachment_id == attachment_id
            if attachment_id is not None
            else Submission.attachment_id.is_(None),
            Submission.sheet == sheet if sheet is not None else Submission.sheet.is_(None),
        )
    )


# --- consolidated export -------------------------------------------------------------------------

# The parts with a table of their own (intake/record.py writes them); any other part's rows are
# in `form_text` under the part's key.
PART_TABLES: dict[str, type[Any]] = {
    "approaches": Approach,
    "indicators": Indicator,
    "projects": Project,
    "partners": Partner,
}
_NOT_VALUES = frozenset({"id", "submission_id", "row_no", "extra", "part"})


@dataclass(frozen=True)
class AcceptedRow:
    """One row of one part, from an expected sender's latest valid version, with its sender."""

    sender_id: str
    name_th: str
    kind: SenderKind
    region_th: str
    receipt: str | None
    version: int
    row_no: int
    values: dict[str, Any]  # column key -> value: typed columns win over keys kept in `extra`


def latest_valid_submission_ids() -> Any:
    """A subquery: the id of each sender's latest valid version (the one that counts)."""
    latest = (
        select(Submission.sender_id.label("sid"), func.max(Submission.version).label("version"))
        .where(Submission.status == SubmissionStatus.VALID)
        .group_by(Submission.sender_id)
        .subquery()
    )
    return select(Submission.id).join(
        latest, and_(Submission.sender_id == latest.c.sid, Submission.version == latest.c.version)
    )


def accepted_part_rows(session: Session, part: str) -> list[AcceptedRow]:
    """Every accepted expected sender's rows of `part`, senders in roster order, rows in form order."""
    model = PART_TABLES.get(part, FormText)
    stmt = (
        select(model, Sender, Submission.receipt, Submission.version)
        .join(Submission, Submission.id == model.submission_id)
        .join(Sender, Sender.id == Submission.sender_id)
        .where(Submission.id.in_(latest_valid_submission_ids()), Sender.expected.is_(True))
        .order_by(Sender.sort_key, Sender.id, model.row_no)
    )
    if model is FormText:
        stmt = stmt.where(FormText.part == part)
    keys = [c.key for c in model.__mapper__.column_attrs if c.key not in _NOT_VALUES]
    return [
        AcceptedRow(
            sender_id=sender.id,
            name_th=sender.name_th,
            kind=sender.kind,
            region_th=sender.region_th,
            receipt=receipt,
            version=version,
            row_no=row.row_no,
            values={**(getattr(row, "extra", None) or {}), **{k: getattr(row, k) for k in keys}},
        )
        for row, sender, receipt, version in session.execute(stmt)
    ]


def first_received_by_sender(session: Session) -> dict[str, datetime]:
    """When each sender's first version (valid or not) reached the mailbox."""
    return dict(
        session.execute(  # type: ignore[arg-type]
            select(Submission.sender_id, func.min(Submission.received_at)).group_by(
                Submission.sender_id
            )
        ).all()
    )


# --- the worker: lease and health ----------------------------------------------------------------


def acquire_lease(
    session: Session,
    name: str,
    holder: str,
    now: datetime,
    ttl: timedelta,
    *,
    replace_holder: str | None = None,
) -> bool:
    """Take (or keep) the lease `name` for `holder` until now + ttl; False while another holds it.

    One guarded statement, INSERT ... ON CONFLICT DO UPDATE ... WHERE (held by us, or expired), so
    two workers racing for a free or expired lease cannot both win, on SQLite and PostgreSQL
    alike. `replace_holder` names a holder known to be dead (its process is gone): its lease is
    taken before it expires, but only if that holder still has it.
    """
    now = _utc(now)
    expires = now + ttl
    table = Lease.__table__
    takeover = or_(table.c.holder == holder, table.c.expires_at <= now)
    if replace_holder:
        takeover = or_(takeover, table.c.holder == replace_holder)
    stmt = (
        _insert(session, Lease)
        .values(name=name, holder=holder, expires_at=expires)
        .on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": holder, "expires_at": expires},
            where=takeover,
        )
        .returning(table.c.holder)
    )
    # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT
    return session.execute(stmt).first() is not None


def renew_lease(session: Session, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Extend our lease; False when it is no longer ours (another worker took it over)."""
    result = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=_utc(now) + ttl)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def release_lease(session: Session, name: str, holder: str) -> bool:
    """Give the lease up (clean shutdown) so a standby worker need not wait for its expiry."""
    from sqlalchemy import delete

    result = session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
    return result.rowcount == 1  # type: ignore[attr-defined]


def get_lease(session: Session, name: str) -> Lease | None:
    return session.get(Lease, name, populate_existing=True)


def _utc(value: datetime) -> datetime:
    from datetime import UTC

    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def get_worker_status(session: Session, name: str) -> WorkerStatus | None:
    return session.get(WorkerStatus, name, populate_existing=True)


def save_worker_status(session: Session, name: str, **values: Any) -> None:
    """Upsert the columns given (holder, mode, started_at, heartbeat_at, alerted_for ...)."""
    values = {k: _utc(v) if isinstance(v, datetime) else v for k, v in values.items()}
    insert_values = {"mode": "stopped", "consecutive_failures": 0, **values}
    session.execute(
        _insert(session, WorkerStatus)
        .values(name=name, **insert_values)
        .on_conflict_do_update(index_elements=["name"], set_=values or {"name": name})
    )


def record_poll(session: Session, name: str, when: datetime, error: str | None) -> None:
    """A poll ended: success resets the failure count; a failure keeps its reason and time."""
    when = _utc(when)
    table = WorkerStatus.__table__
    if error is None:
        values: dict[str, Any] = {"last_success_at": when, "consecutive_failures": 0}
        insert_failures = 0
    else:
        values = {
            "last_error": error[:4000],
            "last_error_at": when,
            "consecutive_failures": table.c.consecutive_failures + 1,
        }
        insert_failures = 1
    insert_values = {**values, "consecutive_failures": insert_failures}
    session.execute(
        _insert(session, WorkerStatus)
        .values(name=name, mode="stopped", **insert_values)
        .on_conflict_do_update(index_elements=["name"], set_=values)
    )


def open_review_count(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count(ReviewItem.id)).where(ReviewItem.state == ReviewState.OPEN)
        )
        or 0
    )


def message_state_counts(session: Session) -> dict[str, int]:
    return {
        state.value: count
        for state, count in session.execute(
            select(Message.state, func.count(Message.id)).group_by(Message.state)
        )
    }


def max_message_id(session: Session) -> int:
    return int(session.scalar(select(func.max(Message.id))) or 0)


@dataclass(frozen=True)
class MessageDigest:
    """What a log line says about one handled message (no content, no secrets)."""

    id: int
    message_id: str | None
    from_address: str | None
    state: str
    outcome: str | None
    senders: tuple[str, ...]
    error: str | None


def message_digests(
    session: Session,
    after_id: int,
    also: Sequence[int] = (),
    *,
    above_id: int = 0,
    limit: int | None = None,
) -> list[MessageDigest]:
    """Messages with id > after_id or in `also`, with the senders their submissions went to.

    One page: `limit` messages with id > `above_id` (keyset), read as columns, not ORM rows, so
    a cycle over any backlog logs them in the same memory.
    """
    condition = Message.id > after_id
    if also:
        condition = or_(condition, Message.id.in_(list(also)))
    rows = session.execute(
        select(
            Message.id,
            Message.message_id_header,
            Message.from_address,
            Message.state,
            Message.outcome,
            Message.error,
        )
        .where(condition, Message.id > above_id)
        .order_by(Message.id)
        .limit(limit)
    ).all()
    senders: dict[int, set[str]] = {}
    if rows:
        for message_id, sender_id in session.execute(
            select(Submission.message_id, Submission.sender_id).where(
                Submission.message_id.in_([m.id for m in rows])
            )
        ):
            if message_id is not None:  # never None here (the IN above); keeps the type exact
                senders.setdefault(message_id, set()).add(sender_id)
    return [
        MessageDigest(
            id=m.id,
            message_id=m.message_id_header,
            from_address=m.from_address,
            state=m.state.value,
            outcome=m.outcome.value if m.outcome else None,
            senders=tuple(sorted(senders.get(m.id, ()))),
            error=m.error,
        )
        for m in rows
    ]


# --- replies: reminders and spoofing checks ------------------------------------------------------


def sender_addresses(session: Session) -> list[SenderAddress]:
    """Every known address of every sender, bounced ones included (callers decide)."""
    return list(
        session.scalars(select(SenderAddress).order_by(SenderAddress.sender_id, SenderAddress.id))
    )


def address_is_known(session: Session, address: str) -> bool:
    """Whether an address is on the roster (configured, learned or added by the coordinator)."""
    wanted = address.strip().lower()
    return bool(session.scalar(select(exists().where(SenderAddress.address == wanted))))


def latest_submissions(session: Session) -> dict[str, Submission]:
    """Each sender's latest version (valid or not)."""
    latest = (
        select(Submission.sender_id.label("sid"), func.max(Submission.version).label("version"))
        .group_by(Submission.sender_id)
        .subquery()
    )
    rows = session.scalars(
        select(Submission).join(
            latest,
            and_(Submission.sender_id == latest.c.sid, Submission.version == latest.c.version),
        )
    )
    return {s.sender_id: s for s in rows}


def submission_problems(session: Session, submission_id: int, severity: str = "error") -> list[Any]:
    """The stored problems of one version, in the order they were found."""
    from storage.models import Problem

    return list(
        session.scalars(
            select(Problem)
            .where(Problem.submission_id == submission_id, Problem.severity == severity)
            .order_by(Problem.id)
        )
    )


def unverified_expected_senders(session: Session) -> list[tuple[str, str, str]]:
    """(id, kind, name_th) of every expected sender with no verified address that has not
    bounced: no reminder or notice can reach it unless it writes first."""
    verified = exists().where(
        SenderAddress.sender_id == Sender.id,
        SenderAddress.source.in_(VERIFIED_SOURCES),
        SenderAddress.bounced_at.is_(None),
    )
    rows = session.execute(
        select(Sender.id, Sender.kind, Sender.name_th)
        .where(Sender.expected.is_(True), ~verified)
        .order_by(Sender.sort_key, Sender.id)
    )
    return [(sid, getattr(kind, "value", str(kind)), name) for sid, kind, name in rows]


def addresses_seen_by_sender(session: Session) -> dict[str, list[str]]:
    """The From addresses of the mails each sender's versions came from, oldest first: what a
    coordinator may confirm by hand (`intake roster check`), never used by themselves."""
    seen: dict[str, list[str]] = {}
    for sender_id, address in session.execute(
        select(Submission.sender_id, Message.from_address)
        .join(Message, Message.id == Submission.message_id)
        .where(Message.from_address.is_not(None))
        .order_by(Submission.id)
    ):
        known = seen.setdefault(sender_id, [])
        if address and address.lower() not in known:
            known.append(address.lower())
    return seen
