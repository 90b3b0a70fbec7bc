"""What waits for a person, and what a person can do about it.

The machine sends to the review list what it must not decide alone (an unknown or ambiguous
sender, an unreadable file, a failed DMARC check, a bounced reply, a reply in an unknown state).
Each action here is one transaction (the caller's `session_scope`) that changes the data and writes
an `AuditEvent` with who and what; `intake review` and the web page are thin skins over these
functions, so both do exactly the same thing.

Audit targets name what was acted on: `sender:TH-50`, `message:12`, `submission:7`, `outbox:3`,
`review:9`; the sender's history page collects them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from intake.clock import as_utc
from intake.errors import IntakeError
from intake.receipts import new_receipt
from intake.settings import os_user
from storage import queries
from storage import review_queries as rq
from storage.models import (
    Message,
    Outbox,
    OutboxState,
    ReviewItem,
    ReviewState,
    Sender,
    Submission,
    SubmissionStatus,
)

if TYPE_CHECKING:
    from intake.pipeline import CycleReport, Services

REASONS_TH = {
    "unknown_sender": "ไม่ทราบผู้ส่ง (ไม่ตรงกับจังหวัดหรือกลุ่มจังหวัดใด)",
    "ambiguous_sender": "ระบุผู้ส่งได้มากกว่าหนึ่งหน่วย",
    "identity_conflict": "ข้อมูลผู้ส่งขัดแย้งกัน",
    "no_form": "ไม่พบแบบฟอร์มที่อ่านได้",
    "processing_error": "ประมวลผลอีเมลไม่สำเร็จ",
    "unexpected_sender": "ได้รับจากหน่วยที่ไม่อยู่ในรายชื่อผู้ส่ง",
    "unverified_sender": "ส่งจากอีเมลที่ยังไม่ยืนยัน (นับไว้ก่อน รอยืนยัน)",
    "unverified_pending": "ส่งจากอีเมลที่ยังไม่ยืนยัน (ยังไม่ใช้แทนข้อมูลเดิม รอยืนยัน)",
    "dmarc_fail": "ตรวจสอบแหล่งที่มาของอีเมลไม่ผ่าน (อาจถูกปลอมแปลง)",
    "bounce": "อีเมลตอบกลับถูกตีกลับ",
    "reply_failed": "ส่งอีเมลตอบกลับไม่สำเร็จ",
    "reply_cap": "ระงับการตอบกลับอัตโนมัติ (เกินจำนวนต่อวัน)",
    "outbox_unknown": "ไม่ทราบผลการส่งอีเมลตอบกลับ",
}
CHANNELS_TH = {
    "email": "อีเมล",
    "paper": "หนังสือ/เอกสาร",
    "hand": "ยื่นด้วยตนเอง",
    "fax": "โทรสาร",
    "other": "ช่องทางอื่น",
}
OUTBOX_STATE_TH = {
    "queued": "รอส่ง",
    "sending": "กำลังส่ง",
    "sent": "ส่งแล้ว",
    "failed": "ส่งไม่สำเร็จ",
    "held": "ระงับไว้",
    "cancelled": "ยกเลิกแล้ว",
}
ACTIONS_TH = {
    "assign_message": "กำหนดผู้ส่งของอีเมล",
    "add_address": "เพิ่มอีเมลในรายชื่อ",
    "accept_submission": "รับแบบฟอร์ม",
    "reject_submission": "ไม่รับแบบฟอร์ม",
    "confirm_sender": "ยืนยันอีเมลผู้ส่งและแบบฟอร์ม",
    "mark_received": "บันทึกว่าได้รับทางช่องทางอื่น",
    "extend_deadline": "ขยายกำหนดส่ง",
    "resend_reply": "ส่งอีเมลตอบกลับอีกครั้ง",
    "cancel_reply": "ยกเลิกอีเมลตอบกลับ",
    "resolve_review": "ปิดรายการตรวจสอบ",
}
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class ReviewError(IntakeError):
    """An action that cannot be done as asked (no such item, or not in a state that allows it)."""


def reason_th(reason: str) -> str:
    return REASONS_TH.get(reason, reason)


def actor_name(by: str | None = None) -> str:
    """Who acts: `--by NAME` (or the web user), else the login name of this process."""
    name = (by or "").strip() or os_user()
    return name[:100]


@dataclass(frozen=True)
class Done:
    """What an action did, in Thai for the person who asked (CLI line, web banner)."""

    message_th: str
    target: str


def pending(session: Session) -> list[rq.ReviewEntry]:
    """Everything that waits for a person, oldest first."""
    return rq.open_review_entries(session)


# --- helpers ------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _get(session: Session, model: type[Any], key: Any, what_th: str) -> Any:
    row = session.get(model, key)
    if row is None:
        raise ReviewError(f"ไม่พบ{what_th} {key}")
    return row


def _close_items(session: Session, items: list[ReviewItem], actor: str, note: str) -> list[int]:
    now = _now()
    for item in items:
        item.state, item.resolved_at, item.resolved_by = ReviewState.RESOLVED, now, actor
        item.note = note
    return [item.id for item in items]


def _sender(session: Session, sender_id: str) -> Sender:
    sender = session.get(Sender, sender_id.strip())
    if sender is None:
        raise ReviewError(f"ไม่พบผู้ส่งรหัส {sender_id} ในรายชื่อ (เช่น TH-50 หรือ north-upper-1)")
    return sender


# --- actions on a message or a sender ------------------------------------------------------------


def assign_message(
    session: Session, message_id: int, sender_id: str, actor: str, note: str = ""
) -> Done:
    """Say who sent a message; it goes back to RECEIVED and is decided again for that sender.

    The answer is stored on the message (`assigned_sender_id`), so this decision and every later
    replay (`intake reprocess`) reach the same sender. Run `run_assigned` (or the next poll)
    afterwards to do the decision.
    """
    message = _get(session, Message, message_id, "อีเมลลำดับที่")
    sender = _sender(session, sender_id)
    closed = _close_items(
        session,
        [i for i in rq.open_items_for(session, message_id=message_id) if i.outbox_id is None],
        actor,
        note or f"กำหนดผู้ส่งเป็น {sender.name_th}",
    )
    previous = message.assigned_sender_id
    message.assigned_sender_id = sender.id
    queries.reset_for_reprocess(session, message_id)
    queries.audit(
        session, actor, "assign_message", f"message:{message_id}",
        sender_id=sender.id, previous=previous, closed_items=closed, note=note,
    )  # fmt: skip
    return Done(f"กำหนดอีเมลลำดับที่ {message_id} เป็นของ {sender.name_th} แล้ว", sender.id)


def run_assigned(svc: Services, message_id: int) -> CycleReport:
    """Decide an assigned message again now (steps 3-7 from the archive)."""
    from intake.pipeline import reprocess

    return reprocess(svc, [message_id])


def add_address(session: Session, sender_id: str, address: str, actor: str, note: str = "") -> Done:
    """Add an e-mail address to a sender's roster; mail from it is then recognised."""
    sender = _sender(session, sender_id)
    address = address.strip().lower()
    if not _ADDRESS.match(address):
        raise ReviewError(f"ที่อยู่อีเมล ‘{address}’ ไม่ถูกต้อง")
    new = queries.add_sender_address(session, sender.id, address, "coordinator")
    queries.audit(
        session, actor, "add_address", f"sender:{sender.id}", address=address, new=new, note=note
    )
    what = "เพิ่ม" if new else "มีอยู่แล้ว:"
    return Done(f"{what} {address} ในรายชื่ออีเมลของ {sender.name_th}", sender.id)


def submission_of_item(session: Session, item_id: int) -> int:
    """The form an open review item decides (`intake review confirm --item`)."""
    item = _get(session, ReviewItem, item_id, "รายการตรวจสอบลำดับที่")
    if item.submission_id is None:
        raise ReviewError(f"รายการตรวจสอบลำดับที่ {item_id} ไม่ได้เกี่ยวกับแบบฟอร์มฉบับใด")
    return int(item.submission_id)


def decide_submission(
    session: Session, submission_id: int, accept: bool, actor: str, note: str, *, campaign: str
) -> Done:
    """Accept or reject a form by hand, with the reason; a replay will not overturn it. The
    review items about that form (unverified sender, unexpected sender) are closed with it."""
    if not note.strip():
        raise ReviewError("กรุณาระบุเหตุผล (--note)")
    submission = _get(session, Submission, submission_id, "แบบฟอร์มลำดับที่")
    before = submission.status.value
    submission.status = SubmissionStatus.VALID if accept else SubmissionStatus.INVALID
    submission.accepted_by, submission.note = actor, note.strip()
    if accept:  # a person vouches for this form (its address is not learned: see confirm)
        submission.verified = True
    if accept and submission.receipt is None:
        submission.receipt = new_receipt(session, submission.received_at, campaign)
    closed = _close_items(
        session, rq.open_items_for(session, submission_id=submission.id), actor, note.strip()
    )
    queries.audit(
        session, actor, "accept_submission" if accept else "reject_submission",
        f"submission:{submission.id}",
        sender_id=submission.sender_id, before=before, receipt=submission.receipt, note=note,
        closed_items=closed,
    )  # fmt: skip
    verb = "รับ" if accept else "ไม่รับ"
    return Done(
        f"{verb}แบบฟอร์มฉบับที่ {submission.version} ของ {submission.sender_id} แล้ว",
        submission.sender_id,
    )


def confirm_submission(
    session: Session, submission_id: int, actor: str, note: str = "", *, campaign: str
) -> Done:
    """A person confirms that the address a form came from speaks for its sender: the address
    is learned (source `confirmed`), the form counts as verified, and one that waited (PENDING)
    now counts with a receipt. The only way an address is learned from a mail. Like `accept`, a
    replay keeps it (`accepted_by`)."""
    submission = _get(session, Submission, submission_id, "แบบฟอร์มลำดับที่")
    message = session.get(Message, submission.message_id) if submission.message_id else None
    address = ((message.from_address if message else None) or "").strip().lower()
    if "@" not in address:
        raise ReviewError(f"แบบฟอร์มลำดับที่ {submission_id} ไม่มีที่อยู่อีเมลผู้ส่งที่ยืนยันได้")
    sender = _sender(session, submission.sender_id)
    if not sender.expected:
        raise ReviewError(
            f"{sender.name_th} ไม่อยู่ในรายชื่อผู้ส่ง: ใช้ intake review accept หรือ reject แทน"
        )
    before = submission.status.value
    new = queries.add_sender_address(session, sender.id, address, "confirmed")
    submission.verified = True
    # a person's decision, like `accept`: a replay keeps it and asks nothing again
    submission.accepted_by = actor
    submission.note = note.strip() or f"ยืนยันอีเมลผู้ส่ง {address}"
    if submission.status == SubmissionStatus.PENDING:
        submission.status = SubmissionStatus.VALID
    if submission.status == SubmissionStatus.VALID and submission.receipt is None:
        submission.receipt = new_receipt(session, submission.received_at, campaign)
    closed = _close_items(
        session,
        rq.open_items_for(session, submission_id=submission.id),
        actor,
        note or f"ยืนยัน {address} เป็นอีเมลของ {sender.name_th}",
    )
    queries.audit(
        session, actor, "confirm_sender", f"submission:{submission.id}",
        sender_id=sender.id, address=address, new_address=new, before=before,
        receipt=submission.receipt, closed_items=closed, note=note,
    )  # fmt: skip
    return Done(
        f"ยืนยัน {address} เป็นอีเมลของ {sender.name_th} และรับแบบฟอร์มฉบับที่ "
        f"{submission.version} แล้ว",
        sender.id,
    )


def mark_received(
    session: Session,
    sender_id: str,
    channel: str,
    actor: str,
    note: str,
    *,
    deadline: datetime,
    campaign: str,
    received_at: datetime | None = None,
) -> Done:
    """A form came by another channel (paper, by hand): a valid version with no message."""
    if channel not in CHANNELS_TH or channel == "email":
        allowed = ", ".join(c for c in CHANNELS_TH if c != "email")
        raise ReviewError(f"ช่องทาง ‘{channel}’ ไม่รู้จัก (ใช้ {allowed})")
    sender = _sender(session, sender_id)
    when = as_utc(received_at) if received_at else _now()
    own_deadline = as_utc(sender.deadline_override) if sender.deadline_override else deadline
    submission = Submission(
        sender_id=sender.id,
        message_id=None,
        channel=channel,
        version=queries.next_version(session, sender.id),
        status=SubmissionStatus.VALID,
        received_at=when,
        late=when > as_utc(own_deadline),
        receipt=new_receipt(session, when, campaign),
        accepted_by=actor,
        note=note.strip() or None,
    )
    session.add(submission)
    session.flush()
    queries.audit(
        session, actor, "mark_received", f"sender:{sender.id}",
        submission_id=submission.id, channel=channel, receipt=submission.receipt, note=note,
    )  # fmt: skip
    return Done(
        f"บันทึกว่าได้รับข้อมูลของ {sender.name_th} ทาง{CHANNELS_TH[channel]} "
        f"(เลขรับ {submission.receipt})",
        sender.id,
    )


def extend_deadline(
    session: Session, sender_id: str, deadline: datetime, actor: str, note: str = ""
) -> Done:
    """Give one sender a later deadline; whether its forms are late is judged again."""
    if deadline.tzinfo is None:
        raise ReviewError("กำหนดส่งต้องระบุเขตเวลา เช่น 2024-01-25T23:59:59+07:00")
    sender = _sender(session, sender_id)
    previous = sender.deadline_override
    sender.deadline_override = as_utc(deadline)
    for submission in session.query(Submission).filter(Submission.sender_id == sender.id):
        submission.late = as_utc(submission.received_at) > as_utc(deadline)
    queries.audit(
        session, actor, "extend_deadline", f"sender:{sender.id}",
        deadline=as_utc(deadline).isoformat(),
        previous=as_utc(previous).isoformat() if previous else None, note=note,
    )  # fmt: skip
    from intake.thai import format_thai_datetime

    return Done(
        f"ขยายกำหนดส่งของ {sender.name_th} เป็น {format_thai_datetime(deadline)} แล้ว", sender.id
    )


# --- actions on a reply ---------------------------------------------------------------------------


def _outbox_action(
    session: Session,
    outbox_id: int,
    allowed: tuple[OutboxState, ...],
    values: Callable[[Outbox], dict[str, Any]],
) -> Outbox:
    box = _get(session, Outbox, outbox_id, "อีเมลตอบกลับลำดับที่")
    state = box.state
    if state not in allowed:
        raise ReviewError(
            f"อีเมลตอบกลับลำดับที่ {outbox_id} อยู่ในสถานะ ‘{OUTBOX_STATE_TH[state.value]}’ "
            "จึงทำรายการนี้ไม่ได้"
        )
    if not queries.transition_outbox(session, outbox_id, state, **values(box)):
        raise ReviewError(f"อีเมลตอบกลับลำดับที่ {outbox_id} เปลี่ยนสถานะไปแล้ว กรุณาลองอีกครั้ง")
    session.refresh(box)
    return box


def resend_reply(session: Session, outbox_id: int, actor: str, note: str = "") -> Done:
    """A person decides a HELD or FAILED reply goes out after all: back to the queue.

    For a reply held because its first sending may or may not have reached the server, this can
    deliver it twice; that is the person's deliberate choice (the same Message-ID goes again).
    """
    box = _outbox_action(
        session,
        outbox_id,
        rq.ACTIONABLE_OUTBOX,
        lambda _: {"state": OutboxState.QUEUED, "next_attempt_at": None, "last_error": None},
    )
    closed = _close_items(
        session, rq.open_items_for(session, outbox_id=outbox_id), actor, note or "ส่งอีกครั้ง"
    )
    queries.audit(
        session, actor, "resend_reply", f"outbox:{outbox_id}",
        to=box.to_address, sender_id=box.sender_id, closed_items=closed, note=note,
    )  # fmt: skip
    return Done(f"นำอีเมลตอบกลับถึง {box.to_address} เข้าคิวส่งอีกครั้งแล้ว", box.sender_id or "")


def cancel_reply(session: Session, outbox_id: int, actor: str, note: str = "") -> Done:
    """A queued, held or failed reply will never be sent."""
    box = _outbox_action(
        session,
        outbox_id,
        (OutboxState.QUEUED, *rq.ACTIONABLE_OUTBOX),
        lambda _: {"state": OutboxState.CANCELLED},
    )
    closed = _close_items(
        session, rq.open_items_for(session, outbox_id=outbox_id), actor, note or "ยกเลิกการส่ง"
    )
    queries.audit(
        session, actor, "cancel_reply", f"outbox:{outbox_id}",
        to=box.to_address, sender_id=box.sender_id, closed_items=closed, note=note,
    )  # fmt: skip
    return Done(f"ยกเลิกอีเมลตอบกลับถึง {box.to_address} แล้ว", box.sender_id or "")


# --- the item itself ------------------------------------------------------------------------------


def resolve_item(session: Session, item_id: int, actor: str, note: str) -> Done:
    """Close a review item with the reason (dealt with elsewhere, or nothing to do)."""
    if not note.strip():
        raise ReviewError("กรุณาระบุเหตุผล (--note)")
    item = _get(session, ReviewItem, item_id, "รายการตรวจสอบลำดับที่")
    if item.state != ReviewState.OPEN:
        raise ReviewError(f"รายการตรวจสอบลำดับที่ {item_id} ปิดไปแล้ว")
    _close_items(session, [item], actor, note.strip())
    queries.audit(
        session, actor, "resolve_review", f"review:{item.id}",
        reason=item.reason, message_id=item.message_id, outbox_id=item.outbox_id, note=note,
    )  # fmt: skip
    return Done(f"ปิดรายการตรวจสอบลำดับที่ {item.id} ({reason_th(item.reason)}) แล้ว", "")
