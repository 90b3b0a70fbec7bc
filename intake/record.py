"""Step 7's writers: how one message's reading becomes rows, review items and queued replies.

Everything here runs inside the single decision transaction that `pipeline._commit` opens after
it has claimed the message; nothing here commits, talks to a server or reads a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, exists, insert, select, update
from sqlalchemy.orm import Session

from intake import message as mail
from intake.archive import sha256_hex
from intake.clock import as_utc
from intake.forms.model import FormData, FormResult, Problem
from intake.receipts import new_receipt
from intake.replies import PART_TITLES_TH, ReplyData, build_mime, new_message_id, sender_title
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
    SenderAddress,
    Submission,
    SubmissionStatus,
)
from storage.models import Problem as ProblemRow

if TYPE_CHECKING:
    from intake.auth import Verdict
    from intake.pipeline import FormOutcome, Outcome, Reading, Services


# position in the message -> (attachment row id, sha256 of the file)
StoredAttachments = dict[int, tuple[int, str]]


def store_attachments(
    session: Session, message_id: int, parsed: mail.ParsedMessage, replay: bool = True
) -> StoredAttachments:
    """Record the message's attachments, all in one INSERT; their ids and hashes by position.
    On a replay they were recorded by the first decision and are only read."""
    stored = queries.attachments_of(session, message_id) if replay else {}
    if stored or not parsed.attachments:
        return stored
    rows = [
        {
            "message_id": message_id,
            "position": index,
            "filename": att.filename[:255],
            "content_type": att.content_type[:255],
            "kind": att.kind,
            "origin": att.origin[:300],
            "size": len(att.data),
            "sha256": sha256_hex(att.data),
        }
        for index, att in enumerate(parsed.attachments)
    ]
    table = cast(Table, Attachment.__table__)
    inserted = session.connection().execute(
        insert(table).returning(table.c.position, table.c.id), rows
    )
    return {position: (row_id, rows[position]["sha256"]) for position, row_id in inserted}


@dataclass
class Decision:
    svc: Services
    session: Session
    message_id: int
    parsed: mail.ParsedMessage
    received_at: datetime
    now: datetime
    hold: str | None = None  # why this message's replies must wait for the coordinator
    # False when this message was decided before (`intake reprocess`): only then can results of
    # its own exist already (submissions, replies), so only then are they looked up
    replay: bool = True
    # DMARC as our receiving server saw it (intake/auth.py): a roster domain verifies on "pass"
    auth: Verdict | None = None
    # why the sender of this message gets no reply at all (a robot marker, `mail.noise_reason`):
    # its forms are still read and recorded; only the answer is left out
    silent: str | None = None
    # sender -> addresses this decision recorded for it. Always empty since issue 11: an address
    # is learned only when a coordinator confirms it (`intake review confirm`), never from a mail
    learned: dict[str, set[str]] = field(default_factory=dict)
    # submission made by this decision -> the valid version it replaces (None: the first)
    replaces: dict[int, int | None] = field(default_factory=dict)
    _deadlines: dict[str, datetime] = field(default_factory=dict)

    def know_deadline(self, sender_id: str, override: datetime | None) -> None:
        """Remember a sender's deadline read along with other data (`queries.sender_history`)."""
        self._deadlines[sender_id] = (
            as_utc(override) if override is not None else self.svc.settings.deadline
        )

    def deadline_for(self, sender_id: str | None) -> datetime:
        if not sender_id:
            return self.svc.settings.deadline
        if sender_id not in self._deadlines:
            self.know_deadline(sender_id, queries.sender_deadline_override(self.session, sender_id))
        return self._deadlines[sender_id]

    def on_time(self, sender_id: str | None) -> bool:
        return self.received_at <= self.deadline_for(sender_id)


def store_form(
    ctx: Decision, form: FormOutcome, attachments: StoredAttachments, result: Outcome
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
    _, file_sha = _stored(attachments, form.attachment_index)
    if ctx.hold:  # DMARC failed: not accepted until a person decides
        form.problems.append(_unverified_sender(ctx, form.result.filename))
    errors = [p for p in form.problems if p.severity == "error"]
    status = SubmissionStatus.INVALID if errors else SubmissionStatus.VALID
    entry = ctx.svc.roster.by_id.get(form.sender_id)
    expected = entry is not None and entry.expected
    address = (ctx.parsed.from_address or "").strip().lower()
    history = queries.sender_history(session, form.sender_id, file_sha, address)
    ctx.know_deadline(form.sender_id, history.deadline_override)
    # the coordinator said who sent this mail (`intake review assign`): that vouches for it
    vouched = form.match.method == "coordinator"
    verified = vouched or _verified(ctx, entry, address, history.address_verified)
    earlier = (
        queries.submission_by_version(session, form.sender_id, history.same_file_version)
        if history.same_file_version is not None
        else None
    )
    if (
        earlier is not None
        and earlier.message_id != ctx.message_id
        and earlier.sheet == form.result.sheet
    ):
        # The same file again (a resend): no new version; answer with what it already earned.
        accepted = earlier.status == SubmissionStatus.VALID
        problems = [p for p in form.problems if not accepted or p.severity == "warning"]
        if earlier.status == SubmissionStatus.PENDING:  # still waits for the coordinator
            notice = "awaiting" if expected else "unexpected"
            queue_reply(ctx, "notice", earlier, [], form.result.filename, data, notice=notice)
        else:
            kind = "acknowledgement" if accepted else "correction"
            queue_reply(ctx, kind, earlier, problems, form.result.filename, data, resend=True)
        result.outcome = MessageOutcome.RESEND
        session.execute(
            update(Message)
            .where(Message.id == ctx.message_id)
            .values(outcome=MessageOutcome.RESEND)
        )
        return
    if status == SubmissionStatus.VALID and not expected:
        status = SubmissionStatus.PENDING  # no receipt, no promise: the coordinator looks
    provisional = status == SubmissionStatus.VALID and not verified
    submission = _submission(
        ctx, form, attachments, status, file_sha, history, verified=verified,
        provisional=provisional,
    )  # fmt: skip
    _store_rows(session, submission.id, data)
    _store_problems(session, ctx.message_id, submission.id, form.problems)
    result.submissions.append(submission.id)
    filename = form.result.filename
    if submission.accepted_by is not None:  # a replay: a person decided (`intake review`);
        return  # nothing to ask the coordinator or tell the sender again
    verified = submission.verified
    if not expected:
        queries.add_review(
            session,
            "unexpected_sender",
            f"ได้รับแบบฟอร์มของ {form.sender_id} ซึ่งไม่อยู่ในรายชื่อผู้ที่ต้องส่งข้อมูล",
            message_id=ctx.message_id,
            submission_id=submission.id,
        )
        queue_reply(ctx, "notice", submission, [], filename, data, notice="unexpected")
        return
    if not verified and submission.status != SubmissionStatus.INVALID:
        _unverified_form(ctx, submission, address, filename, data)
        if submission.status == SubmissionStatus.PENDING:
            return
    kind = "acknowledgement" if submission.status == SubmissionStatus.VALID else "correction"
    problems = [p for p in form.problems if kind == "correction" or p.severity == "warning"]
    queue_reply(ctx, kind, submission, problems, filename, data)


def _verified(ctx: Decision, entry: Any, address: str, on_file: bool) -> bool:
    """Whether `address` may speak for the sender of `entry`: a roster or coordinator-confirmed
    address (`on_file`), or an address in one of the roster's domains for that sender with DMARC
    pass. Never when DMARC failed (`ctx.hold`), never a value without `@`."""
    if ctx.hold or "@" not in address:
        return False
    if on_file or (entry is not None and address in entry.addresses):
        return True
    domain = address.rsplit("@", 1)[1]
    own = entry.domains if entry is not None else ()
    in_domain = any(domain == d or domain.endswith("." + d) for d in own)
    return in_domain and ctx.auth is not None and ctx.auth.outcome == "pass"


def _unverified_form(
    ctx: Decision, submission: Submission, address: str, filename: str | None, data: FormData
) -> None:
    """A form from an address not verified for its sender: the coordinator confirms or rejects
    it, the sender's verified addresses hear of it, and while a verified address's form stands
    (status PENDING) its sender is told that it waits, with no receipt."""
    waiting = submission.status == SubmissionStatus.PENDING
    entry = ctx.svc.roster.by_id.get(submission.sender_id)
    title = sender_title(entry.kind, entry.name_th) if entry else submission.sender_id
    shown = address or "(ไม่ทราบที่อยู่อีเมล)"
    detail = (
        f"แบบฟอร์มฉบับที่ {submission.version} ของ{title} ส่งมาจาก {shown} "
        "ซึ่งยังไม่ได้ยืนยันว่าเป็นอีเมลของหน่วยงานนี้ "
        + (
            "ข้อมูลเดิมจากอีเมลที่ยืนยันแล้วยังคงใช้อยู่ ฉบับนี้จะใช้แทนเมื่อผู้ประสานงานยืนยัน"
            if waiting
            else "ขณะนี้นับเป็นข้อมูลของหน่วยงานไว้ก่อน (ยังไม่ยืนยัน)"
        )
        + f" — ยืนยัน: intake review confirm {submission.id} · "
        f"ไม่รับ: intake review reject {submission.id} --note …"
    )
    queries.add_review(
        ctx.session,
        "unverified_pending" if waiting else "unverified_sender",
        detail,
        message_id=ctx.message_id,
        submission_id=submission.id,
    )
    for to in queries.verified_addresses(ctx.session, submission.sender_id):
        if to != address:
            queue_reply(ctx, "notice", submission, [], filename, data, notice="copy", to=to)
    if waiting:
        queue_reply(ctx, "notice", submission, [], filename, data, notice="awaiting")


def _stored(attachments: StoredAttachments, index: int | None) -> tuple[int | None, str | None]:
    """(attachment row id, sha256) of the attachment at `index`; (None, None) for none."""
    found = attachments.get(index) if index is not None else None
    return found if found else (None, None)


def _submission(
    ctx: Decision,
    form: FormOutcome,
    attachments: StoredAttachments,
    status: SubmissionStatus,
    file_sha: str | None,
    history: queries.SenderHistory,
    *,
    verified: bool = True,
    provisional: bool = False,
) -> Submission:
    """The submission this form makes: a new version, or on a replay the one it made before.

    `provisional`: a valid form from an unverified address. It counts (provisionally) while no
    valid form from a verified address came before it; otherwise it waits (PENDING)."""
    assert form.sender_id is not None
    session = ctx.session
    attachment_id, _ = _stored(attachments, form.attachment_index)
    existing = (
        queries.submission_of_message(
            session, ctx.message_id, form.sender_id, attachment_id, form.result.sheet
        )
        if ctx.replay
        else None
    )
    if existing is not None:  # same version, judged again
        if existing.accepted_by is None:  # a person's decision (`intake review`) stands
            existing.status = status
            if provisional and queries.verified_valid_before(
                session, form.sender_id, existing.version
            ):
                existing.status = SubmissionStatus.PENDING
            existing.verified = verified
        else:  # a person accepted or rejected it: an acceptance vouched for it
            existing.verified = existing.verified or verified
        if existing.status == SubmissionStatus.VALID and existing.receipt is None:
            existing.receipt = _receipt(ctx)
        return existing
    if provisional and history.last_verified_valid_version is not None:
        status = SubmissionStatus.PENDING  # never supersedes a verified address's form alone
    header = form.result.data.header if form.result.data is not None else {}
    known = {"kind", "entity_name", "contact_name", "position", "phone", "email"}
    submission = Submission(
        sender_id=form.sender_id,
        message_id=ctx.message_id,
        attachment_id=attachment_id,
        version=(history.last_version or 0) + 1,
        status=status,
        file_sha256=file_sha,
        sheet=form.result.sheet,
        template_version=form.result.template_version,
        received_at=ctx.received_at,
        late=not ctx.on_time(form.sender_id),
        receipt=_receipt(ctx) if status == SubmissionStatus.VALID else None,
        verified=verified,
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
    ctx.replaces[submission.id] = history.last_valid_version  # every earlier version is older
    return submission


def _receipt(ctx: Decision) -> str:
    return new_receipt(ctx.session, ctx.received_at, ctx.svc.settings.campaign)


def _text(value: Any) -> str | None:
    if type(value) is str:  # the usual case, ~600 times a form
        return value or None
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

    One bulk insert per table (`queries.insert_values`), rows built as tuples: a form of 450
    rows as ORM objects, or even through the ORM's bulk INSERT, cost more than reading it.
    """
    texts: list[tuple[Any, ...]] = []  # the free-text parts share one table
    for part, rows in data.parts.items():
        table = _ROW_TABLES.get(part)
        if table is None:
            texts += [(submission_id, n, part, _free_text(row)) for n, row in enumerate(rows, 1)]
            continue
        model, columns = table
        converters = list(columns.items())
        values = [
            (
                submission_id,
                row_no,
                *[convert(row.get(key)) for key, convert in converters],
                # usually every key is a typed column: then `extra` is empty without building it
                _plain(row, columns) if row.keys() - columns.keys() else {},
            )
            for row_no, row in enumerate(rows, start=1)
        ]
        queries.insert_values(
            session, model, ("submission_id", "row_no", *columns, "extra"), values
        )
    queries.insert_values(session, FormText, ("submission_id", "row_no", "part", "text"), texts)


def _free_text(row: dict[str, Any]) -> str:
    text = row.get("text")
    if text is None:
        text = " | ".join(
            str(v) for k, v in row.items() if v not in (None, "") and not k.startswith("_")
        )
    return str(text)


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
    rows = [
        {
            "message_id": message_id,
            "submission_id": submission_id,
            "severity": p.severity,
            "code": p.code[:60],
            "message_th": p.message_th,
            "filename": p.filename,
            "sheet": p.sheet,
            "part": p.part,
            "row": p.row,
            "column": p.column,
            "cell": p.cell,
            "table_no": p.table,
        }
        for p in problems
    ]
    queries.insert_rows(session, ProblemRow, rows)


NO_ATTACHMENT = Problem(
    severity="error",
    code="no_attachment",
    message_th=("ไม่พบไฟล์แนบในอีเมล กรุณาแนบแบบฟอร์มข้อมูล (.xlsx) ที่กรอกแล้ว แล้วส่งกลับมาอีกครั้ง"),
)


def handle_no_form(
    ctx: Decision, reading: Reading, attachments: StoredAttachments, result: Outcome
) -> None:
    """No readable form: tell the sender what to send instead, and show it to the coordinator."""
    session = ctx.session
    spreadsheetish = [r for r in reading.unreadable if looks_like_form_file(r)]
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
        _, sha = _stored(attachments, form.attachment_index)
        address = (ctx.parsed.from_address or "").strip().lower()
        history = queries.sender_history(session, sender_id, None, address)
        ctx.know_deadline(sender_id, history.deadline_override)
        entry = ctx.svc.roster.by_id.get(sender_id)
        vouched = reading.message_match.method == "coordinator"
        verified = vouched or _verified(ctx, entry, address, history.address_verified)
        submission = _submission(
            ctx, form, attachments, SubmissionStatus.INVALID, sha, history, verified=verified
        )
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
        detail = "; ".join(p.message_th for p in problems)
        queries.add_review(
            session,
            reason,
            QUESTION_TH if _is_question(reading) else detail[:1000],
            message_id=ctx.message_id,
        )
    if _is_question(reading):  # not a sender who forgot the file: nothing to correct
        to = (ctx.parsed.from_address or "").strip().lower()
        if not _question_answered(session, to):
            queue_reply(ctx, "notice", None, [], None, None, notice="question")
        return
    entry = ctx.svc.roster.by_id.get(sender_id) if sender_id else None
    if entry is not None and not entry.expected:  # no correction: that would promise a look
        queries.add_review(
            session,
            "unexpected_sender",
            f"ได้รับอีเมลของ {sender_id} ซึ่งไม่อยู่ในรายชื่อผู้ที่ต้องส่งข้อมูล",
            message_id=ctx.message_id,
        )
    unexpected = entry is not None and not entry.expected
    kind, notice = ("notice", "unexpected") if unexpected else ("correction", None)
    queue_reply(
        ctx,
        kind,
        None,
        problems,
        reported[0].filename if reported else None,
        None,
        sender_id=sender_id,
        notice=notice,
    )


QUESTION_TH = "อีเมลไม่มีไฟล์แนบจากผู้ที่ไม่อยู่ในรายชื่อผู้ส่ง (อาจเป็นคำถาม) รอเจ้าหน้าที่ตอบ"


def _is_question(reading: Reading) -> bool:
    """No file at all, from no expected sender (not even an ambiguous one): a question from the
    public. Asking it to "correct" and attach a form it never had would be wrong; a person
    answers it, and the sender is told so once."""
    match = reading.message_match
    return match.sender_id is None and match.reason != "ambiguous" and not reading.unreadable


def _question_answered(session: Session, to: str) -> bool:
    """Whether this address already got the question notice (at most one per address: a second
    question is for the person who answers, not for another automatic mail). Its key is
    `reply:<message>:-:-:notice`: no sender, no file (every other notice names a sender)."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Outbox.to_address == to,
                    Outbox.kind == "notice",
                    Outbox.dedupe_key.like("reply:%:-:-:notice"),
                )
            )
        )
    )


def looks_like_form_file(result: FormResult) -> bool:
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
    """A forged From gets no automatic mail (the forger chose the recipient: backscatter) and
    no form of it is accepted: its replies are HELD and the coordinator decides.

    Forged means: our receiving server said `dmarc=fail` (whoever the From claims to be), or a
    roster address failed the stricter rule of intake/auth.py (no DMARC policy and no aligned
    DKIM/SPF pass). No Authentication-Results at all (a local test server) holds nothing."""
    settings = ctx.svc.settings.replies
    address = ctx.parsed.from_address
    if not settings.require_dmarc or verdict is None or verdict.outcome != "fail" or not address:
        return
    known = queries.address_is_known(ctx.session, address)
    if not verdict.explicit and not known:
        return
    ctx.hold = f"DMARC not passed ({verdict.reason}): held for the coordinator"
    where = "ซึ่งอยู่ในรายชื่อผู้ส่ง " if known else ""
    queries.add_review(
        ctx.session,
        "dmarc_fail",
        f"อีเมลอ้างว่ามาจาก {address} {where}แต่ผลตรวจสอบผู้ส่ง (DMARC) ไม่ผ่าน "
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
    notice: str | None = None,
    to: str | None = None,
) -> None:
    """Put one reply in the outbox, in the same transaction as the result it reports.

    `notice` (kind "notice"): `unexpected` (not a sender of this letter), `awaiting` (waits for
    the coordinator's confirmation) or `copy` (to the sender's verified address `to`, telling it
    a form in its name came from another address). Without `to` the mail answers the From
    address, which a robot marker (`ctx.silent`) rules out."""
    svc, session, parsed = ctx.svc, ctx.session, ctx.parsed
    copy = to is not None
    to = ((to if copy else parsed.from_address) or "").lower()
    if not svc.settings.replies.enabled or not to or "@" not in to:
        return
    if ctx.silent and not copy:
        return  # a robot's mail: read and recorded, never answered
    if mail.mailbox_key(to) in {mail.mailbox_key(a) for a in svc.own_addresses}:
        return  # never to ourselves, in any of Gmail's spellings (a loop)
    sender_id = submission.sender_id if submission else sender_id
    dedupe_key = f"reply:{ctx.message_id}:{sender_id or '-'}:{filename or '-'}:{kind}"
    if copy:
        dedupe_key += f":{to}"
    if ctx.replay and queries.outbox_key_exists(session, dedupe_key[:200]):
        return  # already answered (a reprocess must not answer twice)
    entry = svc.roster.by_id.get(sender_id) if sender_id else None
    replaces = None
    if submission is not None and submission.status == SubmissionStatus.VALID and not resend:
        if submission.id in ctx.replaces:  # a version made by this decision
            replaces = ctx.replaces[submission.id]
        else:
            replaces = queries.previous_valid_version(
                session, submission.sender_id, submission.version
            )
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
        notice=notice,
        from_address=(parsed.from_address or "").lower(),
        provisional=submission is not None and not submission.verified,
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
        in_reply_to=None if copy else parsed.message_id,
        references=[] if copy else parsed.references,
        date=ctx.now,
        auto_submitted="auto-generated" if copy else "auto-replied",
    )
    recent = queries.replies_to_address_since(session, to, ctx.now - timedelta(days=1))
    capped = recent >= svc.settings.replies.per_recipient_daily_cap
    outbox_id = session.execute(
        insert(Outbox)
        .values(
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
        .returning(Outbox.id)
    ).scalar_one()
    if capped:
        queries.add_review(
            session,
            "reply_cap",
            f"ระงับการตอบกลับอัตโนมัติถึง {to}: เกิน {svc.settings.replies.per_recipient_daily_cap} ฉบับใน 24 ชั่วโมง",
            message_id=ctx.message_id,
            outbox_id=outbox_id,
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
