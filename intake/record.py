"""Step 7's writers: how one message's reading becomes rows, review items and queued replies.

Everything here runs inside the single decision transaction that `pipeline._commit` opens after
it has claimed the message; nothing here commits, talks to a server or reads a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from intake import message as mail
from intake.archive import sha256_hex
from intake.clock import as_utc
from intake.forms.model import FormData, FormResult, Problem
from intake.replies import PART_TITLES_TH, ReplyData, build_mime, new_message_id, sender_title
from intake.thai import be_year
from storage import queries
from storage.models import (
    Approach,
    Attachment,
    FormText,
    Indicator,
    Message,
    MessageOutcome,
    Outbox,
    OutboxState,
    Partner,
    Project,
    Sender,
    SenderAddress,
    Submission,
    SubmissionStatus,
)
from storage.models import Problem as ProblemRow

if TYPE_CHECKING:
    from intake.auth import Verdict
    from intake.pipeline import FormOutcome, Outcome, Reading, Services


def store_attachments(
    session: Session, message_id: int, parsed: mail.ParsedMessage
) -> dict[int, int]:
    ids = queries.attachments_of(session, message_id)
    if ids:
        return ids  # a replay: the attachments were recorded the first time
    for index, att in enumerate(parsed.attachments):
        row = Attachment(
            message_id=message_id,
            position=index,
            filename=att.filename[:255],
            content_type=att.content_type[:255],
            kind=att.kind,
            origin=att.origin[:300],
            size=len(att.data),
            sha256=sha256_hex(att.data),
        )
        session.add(row)
        session.flush()
        ids[index] = row.id
    return ids


@dataclass
class Decision:
    svc: Services
    session: Session
    message_id: int
    parsed: mail.ParsedMessage
    received_at: datetime
    now: datetime
    hold: str | None = None  # why this message's replies must wait for the coordinator

    def deadline_for(self, sender_id: str | None) -> datetime:
        deadline = self.svc.settings.deadline
        if sender_id:
            sender = self.session.get(Sender, sender_id)
            if sender is not None and sender.deadline_override is not None:
                deadline = as_utc(sender.deadline_override)
        return deadline

    def on_time(self, sender_id: str | None) -> bool:
        return self.received_at <= self.deadline_for(sender_id)


def store_form(
    ctx: Decision, form: FormOutcome, attachment_ids: dict[int, int], result: Outcome
) -> None:
    session, data = ctx.session, form.result.data
    assert data is not None
    if form.sender_id is None:
        reason = "ambiguous_sender" if form.match.reason == "ambiguous" else "unknown_sender"
        candidates = ", ".join(form.match.candidates)
        queries.add_review(
            session,
            reason,
            f"{form.result.filename}: ชื่อในแบบฟอร์ม ‘{data.header.get('entity_name') or ''}’"
            + (f" ตรงกับหลายหน่วย ({candidates})" if candidates else ""),
            message_id=ctx.message_id,
        )
        queue_reply(ctx, "correction", None, form.problems, form.result.filename, None)
        return
    file_sha = _attachment_sha(session, attachment_ids.get(form.attachment_index))
    if ctx.hold:  # a roster address failed DMARC: not accepted until a person decides
        form.problems.append(_unverified_sender(ctx, form.result.filename))
    errors = [p for p in form.problems if p.severity == "error"]
    status = SubmissionStatus.INVALID if errors else SubmissionStatus.VALID
    earlier = queries.submission_with_file(session, form.sender_id, file_sha) if file_sha else None
    if (
        earlier is not None
        and earlier.message_id != ctx.message_id
        and earlier.sheet == form.result.sheet
    ):
        # The same file again (a resend): no new version; answer with what it already earned.
        accepted = earlier.status == SubmissionStatus.VALID
        problems = [p for p in form.problems if not accepted or p.severity == "warning"]
        kind = "acknowledgement" if accepted else "correction"
        queue_reply(ctx, kind, earlier, problems, form.result.filename, data, resend=True)
        result.outcome = MessageOutcome.RESEND
        session.execute(
            update(Message)
            .where(Message.id == ctx.message_id)
            .values(outcome=MessageOutcome.RESEND)
        )
        return
    submission = _submission(ctx, form, attachment_ids, status, file_sha)
    _store_rows(session, submission.id, data)
    _store_problems(session, ctx.message_id, submission.id, form.problems)
    result.submissions.append(submission.id)
    entry = ctx.svc.roster.by_id.get(form.sender_id)
    if entry is None or not entry.expected:
        queries.add_review(
            session,
            "unexpected_sender",
            f"ได้รับแบบฟอร์มของ {form.sender_id} ซึ่งไม่อยู่ในรายชื่อผู้ที่ต้องส่งข้อมูล",
            message_id=ctx.message_id,
        )
    if status == SubmissionStatus.VALID and ctx.parsed.from_address:
        queries.add_sender_address(session, form.sender_id, ctx.parsed.from_address, "learned")
    kind = "acknowledgement" if status == SubmissionStatus.VALID else "correction"
    problems = [p for p in form.problems if kind == "correction" or p.severity == "warning"]
    queue_reply(ctx, kind, submission, problems, form.result.filename, data)


def _attachment_sha(session: Session, attachment_id: int | None) -> str | None:
    if attachment_id is None:
        return None
    row = session.get(Attachment, attachment_id)
    return row.sha256 if row else None


def _submission(
    ctx: Decision,
    form: FormOutcome,
    attachment_ids: dict[int, int],
    status: SubmissionStatus,
    file_sha: str | None,
) -> Submission:
    """The submission this form makes: a new version, or on a replay the one it made before."""
    assert form.sender_id is not None
    session = ctx.session
    attachment_id = attachment_ids.get(form.attachment_index)
    existing = queries.submission_of_message(
        session, ctx.message_id, form.sender_id, attachment_id, form.result.sheet
    )
    if existing is not None:  # same version, judged again
        if existing.accepted_by is None:  # a person's decision (`intake review`) stands
            existing.status = status
        if existing.status == SubmissionStatus.VALID and existing.receipt is None:
            existing.receipt = _receipt(ctx)
        return existing
    header = form.result.data.header if form.result.data is not None else {}
    known = {"kind", "entity_name", "contact_name", "position", "phone", "email"}
    submission = Submission(
        sender_id=form.sender_id,
        message_id=ctx.message_id,
        attachment_id=attachment_id,
        version=queries.next_version(session, form.sender_id),
        status=status,
        file_sha256=file_sha,
        sheet=form.result.sheet,
        template_version=form.result.template_version,
        received_at=ctx.received_at,
        late=not ctx.on_time(form.sender_id),
        receipt=_receipt(ctx) if status == SubmissionStatus.VALID else None,
        kind_label=_text(header.get("kind")),
        entity_name=_text(header.get("entity_name")),
        contact_name=_text(header.get("contact_name")),
        position=_text(header.get("position")),
        phone=_text(header.get("phone")),
        email=_text(header.get("email")),
        header_extra={
            k: _text(v) for k, v in header.items() if k not in known and not k.startswith("_")
        },
    )
    session.add(submission)
    session.flush()
    return submission


def _receipt(ctx: Decision) -> str:
    return new_receipt(ctx.session, ctx.received_at, ctx.svc.settings.campaign)


def new_receipt(session: Session, received_at: datetime, campaign: str) -> str:
    """A readable running number per campaign and B.E. year of receipt: `2567-0001`.

    The pipeline and the coordinator's hand decisions draw from the same counter."""
    year = be_year(as_utc(received_at))
    number = queries.next_counter(session, f"receipt:{campaign}:{year}")
    return f"{year}-{number:04d}"


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _plain(row: dict[str, Any], skip: Iterable[str]) -> dict[str, Any]:
    skip = set(skip)
    return {
        k: (str(v) if isinstance(v, Decimal) else v)
        for k, v in row.items()
        if k not in skip and not k.startswith("_")
    }


def _store_rows(session: Session, submission_id: int, data: FormData) -> None:
    """Form rows into queryable tables; columns the code does not know go to `extra`.

    One executemany INSERT per table: a form of 450 rows as ORM objects cost more than reading it.
    """
    batches: dict[Any, list[dict[str, Any]]] = {}
    for part, rows in data.parts.items():
        for row_no, row in enumerate(rows, start=1):
            model, values = _row_values(part, submission_id, row_no, row)
            batches.setdefault(model, []).append(values)
    for model, values_list in batches.items():
        session.execute(insert(model), values_list)


def _row_values(
    part: str, submission_id: int, row_no: int, row: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    base = {"submission_id": submission_id, "row_no": row_no}
    if part in _ROW_TABLES:
        model, columns = _ROW_TABLES[part]
        values = {key: convert(row.get(key)) for key, convert in columns.items()}
        return model, {**base, **values, "extra": _plain(row, columns)}
    text = row.get("text")
    if text is None:
        text = " | ".join(
            str(v) for k, v in row.items() if v not in (None, "") and not k.startswith("_")
        )
    return FormText, {**base, "part": part, "text": str(text)}


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    return None


# Parts with a table of their own: the typed columns and how each value is stored; any other
# column (added in config/form.toml) goes to `extra`. Free-text parts go to `form_text`.
_ROW_TABLES: dict[str, tuple[type[Any], dict[str, Callable[[Any], Any]]]] = {
    "approaches": (Approach, {"seq": _text, "approach": _text, "axis": _int}),
    "indicators": (
        Indicator, {"seq": _text, "indicator": _text, "target": _text, "unit": _text}
    ),
    "projects": (
        Project,
        {
            "seq": _text, "name": _text, "axis": _int, "term": _text, "budget": _decimal,
            "source": _text, "agency": _text, "fiscal_year": _int,
        },
    ),
    "partners": (Partner, {"name": _text, "role": _text}),
}  # fmt: skip


def _store_problems(
    session: Session, message_id: int, submission_id: int | None, problems: list[Problem]
) -> None:
    for p in problems:
        session.add(
            ProblemRow(
                message_id=message_id,
                submission_id=submission_id,
                severity=p.severity,
                code=p.code[:60],
                message_th=p.message_th,
                filename=p.filename,
                sheet=p.sheet,
                part=p.part,
                row=p.row,
                column=p.column,
                cell=p.cell,
                table_no=p.table,
            )
        )


NO_ATTACHMENT = Problem(
    severity="error",
    code="no_attachment",
    message_th=("ไม่พบไฟล์แนบในอีเมล กรุณาแนบแบบฟอร์มข้อมูล (.xlsx) ที่กรอกแล้ว แล้วส่งกลับมาอีกครั้ง"),
)


def handle_no_form(
    ctx: Decision, reading: Reading, attachment_ids: dict[int, int], result: Outcome
) -> None:
    """No readable form: tell the sender what to send instead, and show it to the coordinator."""
    session = ctx.session
    spreadsheetish = [r for r in reading.unreadable if _looks_like_form_file(r)]
    reported = spreadsheetish or reading.unreadable
    problems = [p for r in reported for p in r.problems] or [NO_ATTACHMENT]
    sender_id = reading.message_match.sender_id
    if sender_id and reading.unreadable:
        # Something came from a known sender: it counts as a submission that needs correction.
        from intake.pipeline import FormOutcome  # at run time: pipeline imports this module

        first = reported[0]
        index = next(
            (i for i, a in enumerate(reading.parsed.attachments) if a.filename == first.filename),
            None,
        )
        form = FormOutcome(
            first, index if index is not None else -1, reading.message_match, sender_id, problems
        )
        index = form.attachment_index
        sha = _attachment_sha(session, attachment_ids.get(index))
        submission = _submission(ctx, form, attachment_ids, SubmissionStatus.INVALID, sha)
        _store_problems(session, ctx.message_id, submission.id, problems)
        result.submissions.append(submission.id)
    else:
        _store_problems(session, ctx.message_id, None, problems)
        reason = (
            "no_form"
            if sender_id
            else (
                "ambiguous_sender"
                if reading.message_match.reason == "ambiguous"
                else "unknown_sender"
            )
        )
        queries.add_review(
            session,
            reason,
            "; ".join(p.message_th for p in problems)[:1000],
            message_id=ctx.message_id,
        )
    queue_reply(
        ctx,
        "correction",
        None,
        problems,
        reported[0].filename if reported else None,
        None,
        sender_id=sender_id,
    )


def _looks_like_form_file(result: FormResult) -> bool:
    name = result.filename.lower()
    return name.endswith((".xlsx", ".xlsm", ".xls", ".ods", ".docx", ".doc", ".zip"))


def _unverified_sender(ctx: Decision, filename: str | None) -> Problem:
    return Problem(
        severity="error",
        code="sender_unverified",
        message_th=(
            f"ระบบไม่สามารถยืนยันได้ว่าอีเมลฉบับนี้ส่งมาจาก {ctx.parsed.from_address} จริง "
            "(ผลตรวจสอบ DMARC ไม่ผ่าน) เจ้าหน้าที่ผู้ประสานงานจะตรวจสอบและแจ้งผลให้ทราบ"
        ),
        filename=filename,
    )


def hold_if_spoofed(ctx: Decision, verdict: Verdict | None) -> None:
    """A roster address failing DMARC (intake/auth.py) is not answered: its replies are HELD and
    the coordinator decides. Anyone else's From changes nothing (the roster is what is at stake)."""
    settings = ctx.svc.settings.replies
    address = ctx.parsed.from_address
    if not settings.require_dmarc or verdict is None or verdict.outcome != "fail" or not address:
        return
    if not queries.address_is_known(ctx.session, address):
        return
    ctx.hold = f"DMARC not passed ({verdict.reason}): held for the coordinator"
    queries.add_review(
        ctx.session,
        "dmarc_fail",
        f"อีเมลอ้างว่ามาจาก {address} ซึ่งอยู่ในรายชื่อผู้ส่ง แต่ผลตรวจสอบผู้ส่ง (DMARC) ไม่ผ่าน "
        f"({verdict.reason}) จึงระงับการตอบกลับไว้ให้ผู้ประสานงานพิจารณา",
        message_id=ctx.message_id,
    )


def handle_noise(
    session: Session, message_id: int, parsed: mail.ParsedMessage, now: datetime | None = None
) -> None:
    """No reply, ever. A bounce of one of our replies flags the address it went to."""
    if not mail.is_bounce(parsed):
        return
    for bounced in mail.bounced_message_ids(parsed):
        ours = (
            session.query(Outbox)
            .filter(Outbox.message_id_header == f"<{bounced.strip('<>')}>")
            .one_or_none()
        )
        if ours is None:
            continue
        for address in session.query(SenderAddress).filter(
            SenderAddress.address == ours.to_address
        ):
            address.bounced_at = as_utc(now or datetime.now().astimezone())
        queries.add_review(
            session,
            "bounce",
            f"อีเมลตอบกลับถึง {ours.to_address} ถูกตีกลับ ({ours.kind})",
            message_id=message_id,
            outbox_id=ours.id,
        )


def queue_reply(
    ctx: Decision,
    kind: str,
    submission: Submission | None,
    problems: list[Problem],
    filename: str | None,
    data: FormData | None,
    *,
    resend: bool = False,
    sender_id: str | None = None,
) -> None:
    """Put one reply in the outbox, in the same transaction as the result it reports."""
    svc, session, parsed = ctx.svc, ctx.session, ctx.parsed
    to = (parsed.from_address or "").lower()
    if not svc.settings.replies.enabled or not to or "@" not in to:
        return
    sender_id = submission.sender_id if submission else sender_id
    dedupe_key = f"reply:{ctx.message_id}:{sender_id or '-'}:{filename or '-'}:{kind}"
    if queries.outbox_key_exists(session, dedupe_key[:200]):
        return  # already answered (a reprocess must not answer twice)
    entry = svc.roster.by_id.get(sender_id) if sender_id else None
    replaces = None
    if submission is not None and submission.status == SubmissionStatus.VALID and not resend:
        earlier = (
            session.query(Submission)
            .filter(
                Submission.sender_id == submission.sender_id,
                Submission.status == SubmissionStatus.VALID,
                Submission.version < submission.version,
            )
            .order_by(Submission.version.desc())
            .first()
        )
        replaces = earlier.version if earlier else None
    reply = ReplyData(
        kind=kind,
        to_address=to,
        original_subject=parsed.subject,
        original_message_id=parsed.message_id,
        references=parsed.references,
        received_at=ctx.received_at,
        on_time=ctx.on_time(sender_id),
        sender_name=sender_title(entry.kind, entry.name_th) if entry else None,
        receipt=submission.receipt if submission else None,
        version=submission.version if submission else None,
        replaces_version=replaces,
        resend_of_version=submission.version if (resend and submission) else None,
        counts=_counts(data),
        total_budget=_total_budget(data),
        problems=problems,
        filename=filename,
        form_read=data is not None,
    )
    subject, text, html = svc.renderer.render(reply)
    message_id = new_message_id(svc.settings.replies.message_id_domain)
    raw = build_mime(
        from_address=svc.settings.smtp.from_address,
        from_name=svc.settings.smtp.from_name,
        to_address=to,
        subject=subject,
        text=text,
        html=html,
        message_id=message_id,
        kind=kind,
        in_reply_to=parsed.message_id,
        references=parsed.references,
        date=ctx.now,
    )
    recent = queries.replies_to_address_since(session, to, ctx.now - timedelta(days=1))
    capped = recent >= svc.settings.replies.per_recipient_daily_cap
    row = Outbox(
        message_id_header=message_id,
        kind=kind,
        to_address=to,
        subject=subject,
        raw=raw,
        sender_id=sender_id if entry else None,
        answers_message_id=ctx.message_id,
        submission_id=submission.id if submission else None,
        dedupe_key=dedupe_key[:200],
        state=OutboxState.HELD if capped or ctx.hold else OutboxState.QUEUED,
        last_error=ctx.hold or ("daily cap for this recipient reached" if capped else None),
        created_at=ctx.now,  # the clock's now (INTAKE_NOW aware): the cap counts by it
    )
    session.add(row)
    session.flush()
    if capped:
        queries.add_review(
            session,
            "reply_cap",
            f"ระงับการตอบกลับอัตโนมัติถึง {to}: เกิน {svc.settings.replies.per_recipient_daily_cap} ฉบับใน 24 ชั่วโมง",
            message_id=ctx.message_id,
            outbox_id=row.id,
        )


def _counts(data: FormData | None) -> dict[str, int]:
    if data is None:
        return {}
    return {PART_TITLES_TH.get(k, k): len(rows) for k, rows in data.parts.items() if rows}


def _total_budget(data: FormData | None) -> str | None:
    if data is None:
        return None
    total = sum(
        (
            b
            for row in data.parts.get("projects", [])
            if isinstance(b := row.get("budget"), Decimal)
        ),
        Decimal(0),
    )
    return f"{total:,.2f}" if total else None
