"""Named queries for the coordinator's desk: the review queue with its context, one sender's
history, and the audit trail. Kept beside `storage.queries` (same rules: functions over a
`Session`, plain values out, the caller owns the transaction) so that module stays a size one can
read; the web page and `intake review` read through these only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from storage.models import (
    AuditEvent,
    Message,
    Outbox,
    OutboxState,
    Problem,
    ReviewItem,
    ReviewState,
    Sender,
    SenderAddress,
    Submission,
)

# Outbox states a person may act on: send again, or cancel.
ACTIONABLE_OUTBOX = (OutboxState.HELD, OutboxState.FAILED)


@dataclass(frozen=True)
class ReviewEntry:
    """An open review item with what a person needs to decide it."""

    id: int
    reason: str
    detail: str
    created_at: datetime | None
    message_id: int | None = None
    message_id_header: str | None = None
    from_address: str | None = None
    subject: str | None = None
    received_at: datetime | None = None
    message_state: str | None = None
    outbox_id: int | None = None
    outbox_state: str | None = None
    outbox_kind: str | None = None
    outbox_to: str | None = None
    outbox_error: str | None = None
    sender_ids: tuple[str, ...] = ()  # senders the message's forms or the reply belong to
    submission_id: int | None = None  # the form a confirm/reject decides


def open_review_entries(session: Session) -> list[ReviewEntry]:
    """Every open review item, oldest first, with its message and reply (when it has them)."""
    rows = session.execute(
        select(ReviewItem, Message, Outbox)
        .outerjoin(Message, ReviewItem.message_id == Message.id)
        .outerjoin(Outbox, ReviewItem.outbox_id == Outbox.id)
        .where(ReviewItem.state == ReviewState.OPEN)
        .order_by(ReviewItem.created_at, ReviewItem.id)
    ).all()
    message_ids = {msg.id for _, msg, _ in rows if msg is not None}
    senders = _senders_of_messages(session, message_ids)
    out = []
    for item, msg, box in rows:
        ids = set(senders.get(msg.id, ())) if msg is not None else set()
        if box is not None and box.sender_id:
            ids.add(box.sender_id)
        if msg is not None and msg.assigned_sender_id:
            ids.add(msg.assigned_sender_id)
        out.append(
            ReviewEntry(
                id=item.id,
                reason=item.reason,
                detail=item.detail,
                created_at=item.created_at,
                message_id=msg.id if msg else None,
                message_id_header=msg.message_id_header if msg else None,
                from_address=msg.from_address if msg else None,
                subject=msg.subject if msg else None,
                received_at=msg.received_at if msg else None,
                message_state=msg.state.value if msg else None,
                outbox_id=box.id if box else None,
                outbox_state=box.state.value if box else None,
                outbox_kind=box.kind if box else None,
                outbox_to=box.to_address if box else None,
                outbox_error=box.last_error if box else None,
                sender_ids=tuple(sorted(ids)),
                submission_id=item.submission_id,
            )
        )
    return out


def _senders_of_messages(session: Session, message_ids: Iterable[int]) -> dict[int, set[str]]:
    ids = list(message_ids)
    if not ids:
        return {}
    result: dict[int, set[str]] = {}
    for message_id, sender_id in session.execute(
        select(Submission.message_id, Submission.sender_id).where(Submission.message_id.in_(ids))
    ):
        if message_id is not None:
            result.setdefault(message_id, set()).add(sender_id)
    return result


def open_items_for(
    session: Session,
    *,
    message_id: int | None = None,
    outbox_id: int | None = None,
    submission_id: int | None = None,
) -> list[ReviewItem]:
    """Open review items about one message, one reply or one form."""
    stmt = select(ReviewItem).where(ReviewItem.state == ReviewState.OPEN)
    if submission_id is not None:
        stmt = stmt.where(ReviewItem.submission_id == submission_id)
    if message_id is not None:
        stmt = stmt.where(ReviewItem.message_id == message_id)
    if outbox_id is not None:
        stmt = stmt.where(ReviewItem.outbox_id == outbox_id)
    return list(session.scalars(stmt.order_by(ReviewItem.id)))


def senders_in_order(session: Session) -> list[Sender]:
    """Every sender in roster order (for pick lists)."""
    return list(session.scalars(select(Sender).order_by(Sender.sort_key, Sender.id)))


@dataclass
class SenderHistory:
    """Everything that happened with one sender, newest last."""

    sender: Sender
    addresses: list[SenderAddress]
    submissions: list[Submission]
    messages: list[Message]
    problems: dict[int | None, list[Problem]]  # by submission id (None: the message as a whole)
    replies: list[Outbox]
    review: list[ReviewItem]
    audit: list[AuditEvent] = field(default_factory=list)


def sender_history(session: Session, sender_id: str) -> SenderHistory | None:
    sender = session.get(Sender, sender_id)
    if sender is None:
        return None
    addresses = list(
        session.scalars(
            select(SenderAddress)
            .where(SenderAddress.sender_id == sender_id)
            .order_by(SenderAddress.id)
        )
    )
    submissions = list(
        session.scalars(
            select(Submission).where(Submission.sender_id == sender_id).order_by(Submission.version)
        )
    )
    message_ids = {s.message_id for s in submissions if s.message_id is not None}
    message_ids |= set(
        session.scalars(select(Message.id).where(Message.assigned_sender_id == sender_id))
    )
    replies = list(
        session.scalars(
            select(Outbox)
            .where(
                or_(
                    Outbox.sender_id == sender_id,
                    Outbox.answers_message_id.in_(message_ids or {-1}),
                )
            )
            .order_by(Outbox.id)
        )
    )
    messages = list(
        session.scalars(
            select(Message).where(Message.id.in_(message_ids or {-1})).order_by(Message.received_at)
        )
    )
    problems: dict[int | None, list[Problem]] = {}
    for problem in session.scalars(
        select(Problem).where(Problem.message_id.in_(message_ids or {-1})).order_by(Problem.id)
    ):
        problems.setdefault(problem.submission_id, []).append(problem)
    review = list(
        session.scalars(
            select(ReviewItem)
            .where(
                or_(
                    ReviewItem.message_id.in_(message_ids or {-1}),
                    ReviewItem.outbox_id.in_([r.id for r in replies] or [-1]),
                )
            )
            .order_by(ReviewItem.id)
        )
    )
    targets = [f"sender:{sender_id}"]
    targets += [f"submission:{s.id}" for s in submissions]
    targets += [f"message:{m}" for m in message_ids]
    targets += [f"outbox:{r.id}" for r in replies]
    targets += [f"review:{r.id}" for r in review]
    audit = list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.target.in_(targets)).order_by(AuditEvent.id)
        )
    )
    return SenderHistory(sender, addresses, submissions, messages, problems, replies, review, audit)


def recent_audit(session: Session, limit: int = 50) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))
