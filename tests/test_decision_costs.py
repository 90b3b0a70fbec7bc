"""What deciding one message costs and the fast paths behind it (issue 7): replies written as MIME
without the `email` policy's folding, form rows stored in one bulk insert per table, a sender's past
read in one query, and a fixed number of commits and statements per message whatever the form's
size. Real SQLite and PostgreSQL (`database_url`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import default as default_policy
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from intake import pipeline
from intake.clock import as_utc
from intake.identify import Identifier
from intake.replies import build_mime
from storage import queries
from storage.models import (
    Message,
    MessageState,
    Project,
    Sender,
    SenderKind,
    Submission,
    SubmissionStatus,
)
from storage.session import make_engine, session_factory, session_scope
from tests.forms.builders import filled_form_bytes, sample_parts
from tests.intake_env import services
from tests.mime_builders import build_submission

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NAME = "ศูนย์ประสานข้อมูลการยกระดับเมือง กระทรวงมหาดไทย"


def _mime(**overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "from_address": "jpp.moi9999@gmail.com",
        "from_name": NAME,
        "to_address": "saraban@chiangmai.go.th",
        "subject": "Re: ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่ [เลขรับ 2567-0001]",
        "text": "เรียน จังหวัดเชียงใหม่\nได้รับแบบฟอร์มแล้ว\n",
        "html": "<p>เรียน จังหวัดเชียงใหม่</p>\n",
        "message_id": "<intake.1@intake.moi.local>",
        "kind": "acknowledgement",
        "in_reply_to": "m1@province.example",
        "references": ["earlier@province.example"],
        "date": datetime(2024, 1, 20, 3, tzinfo=UTC),
    }
    return build_mime(**{**args, **overrides})


def _decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


@pytest.mark.parametrize(
    "subject",
    [
        "Re: ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่ [เลขรับ 2567-0001]",
        "Re: " + "ข้อมูลการยกระดับเมือง " * 12,  # many encoded words
        "Re: plain ascii subject",
        "Re: " + "long ascii subject " * 8,  # folded by the stdlib policy, as before
    ],
)
def test_reply_headers_are_7bit_folded_and_decode_to_the_text(subject):
    raw = _mime(subject=subject)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert all(len(w) <= 75 for w in re.findall(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=", head))
    unfolded = re.sub(r"\r\n[ \t]+", " ", head.decode("ascii"))
    fields = dict(line.split(": ", 1) for line in unfolded.split("\r\n"))
    assert " ".join(_decoded(fields["Subject"]).split()) == " ".join(subject.split())
    assert _decoded(fields["From"]) == f"{NAME} <jpp.moi9999@gmail.com>"
    assert fields["References"] == "<earlier@province.example> <m1@province.example>"
    assert fields["In-Reply-To"] == "<m1@province.example>"
    assert fields["MIME-Version"] == "1.0"


def test_reply_bodies_decode_whatever_their_transfer_encoding():
    long_line = "ข้อความภาษาไทยที่ยาวมากเกินเจ็ดสิบแปดไบต์ในบรรทัดเดียว " * 3
    raw = _mime(text=f"สั้น\n{long_line}\nจบ\n", html="<p>short</p>\n")
    message = message_from_bytes(raw, policy=default_policy)
    plain, html = list(message.iter_parts())  # type: ignore[attr-defined]
    assert plain["Content-Transfer-Encoding"] == "base64"  # a line longer than 78 bytes
    assert plain.get_content().replace("\r\n", "\n") == f"สั้น\n{long_line}\nจบ\n"
    assert html["Content-Transfer-Encoding"] == "7bit"
    assert html.get_content().replace("\r\n", "\n") == "<p>short</p>\n"
    short = message_from_bytes(_mime(), policy=default_policy)
    body = short.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    assert body["Content-Transfer-Encoding"] == "8bit"
    assert body.get_content().replace("\r\n", "\n") == "เรียน จังหวัดเชียงใหม่\nได้รับแบบฟอร์มแล้ว\n"
    assert not message.defects and not short.defects


def test_a_reply_header_cannot_be_split_by_a_line_break():
    with pytest.raises(ValueError):
        _mime(subject="Re: x\r\nBcc: someone@example.com")
    raw = _mime(to_address='"odd name"@example.com')  # quoted local part: the policy writes it
    message = message_from_bytes(raw, policy=default_policy)
    assert message["To"].addresses[0].addr_spec == '"odd name"@example.com'


def _seed_sender(factory: Any, sender_id: str = "TH-50") -> None:
    with session_scope(factory) as session:
        session.add(
            Sender(
                id=sender_id,
                kind=SenderKind.PROVINCE,
                name_th="เชียงใหม่",
                name_en="Chiang Mai",
                aliases=[],
            )
        )
        session.flush()
        message = Message(
            sha256="0" * 64,
            archive_path="x",
            size=1,
            source="import",
            received_at=datetime(2024, 1, 19, tzinfo=UTC),
            state=MessageState.PROCESSED,
        )
        session.add(message)
        session.flush()
        for version, status, sha in [
            (1, SubmissionStatus.VALID, "a"),
            (2, SubmissionStatus.VALID, "b"),
            (3, SubmissionStatus.INVALID, "b"),
        ]:
            session.add(
                Submission(
                    sender_id=sender_id,
                    message_id=message.id,
                    version=version,
                    status=status,
                    file_sha256=sha,
                    received_at=datetime(2024, 1, 19, tzinfo=UTC),
                    header_extra={},
                )
            )


def test_insert_rows_stores_what_a_core_insert_stores(database_url):
    factory = session_factory(make_engine(database_url))
    _seed_sender(factory)
    tricky = ["tab\there", "two\nlines\r\n", "back\\slash \\N", "ภาษาไทย", "", None, "x" * 2000]
    rows = [
        {"row_no": i, "seq": str(i), "name": value, "axis": i, "term": (value or "")[:40],
         "budget": Decimal("12500000.50") if i % 2 else None, "source": value,
         "agency": "ก\tข", "fiscal_year": 2567,
         "extra": {} if i % 3 else {"note\t": "ค่า\n\\", "n": "1.5", "list": [1, None, True]}}
        for i, value in enumerate(tricky)
    ]  # fmt: skip
    with session_scope(factory) as session:
        ids = [s.id for s in session.query(Submission).order_by(Submission.version)]
        queries.insert_rows(session, Project, [{"submission_id": ids[0], **r} for r in rows])
        session.connection().execute(
            insert(Project.__table__), [{"submission_id": ids[1], **r} for r in rows]
        )
    select = (
        "select row_no, seq, name, axis, term, budget, source, agency, fiscal_year, extra "
        "from project where submission_id = :s order by row_no"
    )
    with session_scope(factory) as session:
        fast = [tuple(r) for r in session.execute(text(select), {"s": ids[0]})]
        core = [tuple(r) for r in session.execute(text(select), {"s": ids[1]})]
        assert fast == core and len(fast) == len(tricky)
        stored = session.query(Project).filter(Project.submission_id == ids[0]).all()
        assert {p.row_no: p.extra for p in stored}[0] == rows[0]["extra"]
        assert {p.row_no: p.name for p in stored}[1] == "two\nlines\r\n"


def test_sender_history_reads_a_senders_past_in_one_query(database_url):
    factory = session_factory(make_engine(database_url))
    _seed_sender(factory)
    extended = datetime(2024, 1, 29, 16, 59, tzinfo=UTC)
    with session_scope(factory) as session:
        assert queries.sender_history(session, "TH-50", "b") == (3, 2, 2, None, 2, False)
        assert queries.sender_history(session, "TH-50", None) == (3, 2, None, None, 2, False)
        assert queries.sender_history(session, "TH-99", "b") == (
            None, None, None, None, None, False,
        )  # fmt: skip
        queries.add_sender_address(session, "TH-50", "saraban@chiangmai.go.th", "config")
        queries.add_sender_address(session, "TH-50", "old@chiangmai.go.th", "learned")
        queries.add_sender_address(session, "TH-50", "not-an-address", "config")
        asked = {a: queries.sender_history(session, "TH-50", None, a).address_verified
                 for a in ("Saraban@ChiangMai.go.th", "old@chiangmai.go.th", "not-an-address")}
        assert asked == {"Saraban@ChiangMai.go.th": True, "old@chiangmai.go.th": False,
                         "not-an-address": False}  # fmt: skip
        session.get(Sender, "TH-50").deadline_override = extended  # type: ignore[union-attr]
    with session_scope(factory) as session:
        override = queries.sender_history(session, "TH-50", "zzz").deadline_override
        assert override is not None and as_utc(override) == extended


def _submission_mail(n: int, projects: int) -> bytes:
    base = sample_parts()["projects"][0]
    rows = [dict(base, seq=i + 1, name=f"โครงการ {n}.{i + 1}") for i in range(projects)]
    form = filled_form_bytes("เชียงใหม่", projects=rows)
    return build_submission(
        subject=f"ส่งแบบฟอร์มข้อมูล ครั้งที่ {n}", from_=f"saraban{n}@chiangmai.go.th",
        to="jpp.moi9999@gmail.com", body="เรียน ผู้ประสานงาน\n",
        attachments=[("แบบฟอร์ม.xlsx", form, XLSX)], message_id=f"<cost{n}@province.example>",
    )  # fmt: skip


def test_statements_and_commits_per_message_do_not_grow_with_the_form(tmp_path, database_url):
    """Archive (one commit, the cursor included) and decide (one transaction) a valid form of 2
    and of 200 project rows: the same statements, three commits in all (the third is the read
    that starts processing). 22 statements on SQLite (BEGIN counted), 38 before issue 7."""
    svc = services(tmp_path, database_url)
    engine = svc.factory.kw["bind"]
    counts: dict[str, int] = {"statements": 0, "commits": 0}

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(*_: Any) -> None:
        counts["statements"] += 1

    @event.listens_for(engine, "commit")
    def _commit(*_: Any) -> None:
        counts["commits"] += 1

    identifier = Identifier(svc.roster)
    with session_scope(svc.factory) as session:  # verified addresses: the common path
        for n in (1, 2, 3):
            queries.add_sender_address(session, "TH-50", f"saraban{n}@chiangmai.go.th", "config")
    seen = []
    for n, projects in [(1, 2), (2, 2), (3, 200)]:  # the first also creates cursor and counter
        counts.update(statements=0, commits=0)
        location = pipeline.Location("box", 7, n)
        when = datetime(2024, 1, 19, 3, tzinfo=UTC)
        message_id, is_new = pipeline.archive_message(
            svc, _submission_mail(n, projects), when, "imap", location
        )
        outcome = pipeline.process_message(svc, message_id, identifier)
        assert is_new and outcome.claimed and len(outcome.submissions) == 1
        seen.append(dict(counts))
    assert seen[1] == seen[2]
    assert seen[1]["commits"] == 3
    assert seen[1]["statements"] <= 22
    with session_scope(svc.factory) as session:
        cursor = queries.get_cursor(session, "box")
        assert cursor is not None and (cursor.uidvalidity, cursor.last_uid) == (7, 3)
        versions = [s.version for s in session.query(Submission).order_by(Submission.id)]
        assert versions == [1, 2, 3]
        rows = session.execute(text("select count(*) from project")).scalar_one()
        assert rows == 204
    engine.dispose()


def test_an_address_is_learned_only_when_the_coordinator_confirms_it(tmp_path, database_url):
    """A valid form from an address on no roster counts provisionally but teaches nothing (issue
    11: anyone could otherwise speak for a province); once the coordinator confirms it, the
    address identifies and verifies the next mail."""
    from intake import review

    svc = services(tmp_path, database_url)
    office = "chiangmai.office@gmail.com"  # on no roster
    form = build_submission(
        subject="ส่งแบบฟอร์มข้อมูล", from_=office, to="jpp.moi9999@gmail.com",
        body="เรียน ผู้ประสานงาน\n", message_id="<learn1@example.com>",
        attachments=[("แบบฟอร์ม.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)],
    )  # fmt: skip

    def scan(n: int) -> bytes:
        return build_submission(
            subject="ส่งเอกสาร", from_=office, to="jpp.moi9999@gmail.com",
            body="เรียน ผู้ประสานงาน\n", message_id=f"<learn{n}@example.com>",
            attachments=[("scan.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")],
        )  # fmt: skip

    for n, raw in enumerate([form, scan(2)], start=1):
        pipeline.archive_message(svc, raw, datetime(2024, 1, 19, n, tzinfo=UTC), "import")
    report = pipeline.CycleReport()
    pipeline.process_pending(svc, report)
    assert report.processed == 2
    with session_scope(svc.factory) as session:
        rows = [(s.sender_id, s.verified) for s in session.query(Submission).order_by(Submission.id)]
        assert rows == [("TH-50", False)]  # the scan is not known by the address
        assert queries.addresses_by_sender(session) == {}
        [first] = session.query(Submission).all()
        review.confirm_submission(session, first.id, "coordinator", campaign="2567")
    pipeline.archive_message(svc, scan(3), datetime(2024, 1, 19, 5, tzinfo=UTC), "import")
    pipeline.process_pending(svc, pipeline.CycleReport())
    with session_scope(svc.factory) as session:
        assert queries.addresses_by_sender(session) == {"TH-50": {office}}
        rows = [(s.sender_id, s.verified) for s in session.query(Submission).order_by(Submission.id)]
        assert rows == [("TH-50", True), ("TH-50", True)]
    svc.factory.kw["bind"].dispose()
