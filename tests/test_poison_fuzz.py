"""Property: whatever is done to a real mail (bytes flipped, header values injected, encoded CR/LF
and NUL included, the body cut short, parts nested deep, megabytes of header), archiving it and
running the cycle never raise, and the message ends as an outcome: a row, PROCESSED or FAILED
(with a review item), never left RECEIVED after MAX_ATTEMPTS cycles. Real archive and database:
the long run on SQLite, a shorter one on PostgreSQL. Cases worth keeping are in
tests/fixtures/hostile/ and run through `intake import` (tests/test_poison_e2e.py)."""

from __future__ import annotations

import base64
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from intake import pipeline
from intake.mimetext import is_address
from storage.models import Message, MessageState, Outbox, ReviewItem
from storage.session import session_scope
from tests.forms.builders import filled_form_bytes, form_with_errors_bytes
from tests.mime_builders import build_forward, build_submission
from tests.test_poison import services

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RECEIVED = datetime(2024, 1, 19, 3, tzinfo=UTC)
HOSTILE = Path(__file__).parent / "fixtures" / "hostile"


def _seeds() -> list[bytes]:
    form = build_submission(
        subject="ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่", from_="สนจ. <saraban@chiangmai.go.th>",
        to="jpp.moi9999@gmail.com", body="เรียน ผู้ประสานงาน\n",
        attachments=[("แบบฟอร์ม.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)],
        message_id="<seed1@province.example>",
    )  # fmt: skip
    errors = build_submission(
        subject="ลำพูน", from_="lamphun.office@gmail.com", to="jpp.moi9999@gmail.com",
        body="แนบแบบฟอร์ม", attachments=[("l.xlsx", form_with_errors_bytes("ลำพูน"), XLSX)],
        message_id="<seed2@province.example>", charset="windows-874",
    )  # fmt: skip
    question = build_submission(
        subject="สอบถาม", from_="curious@gmail.com", to="jpp.moi9999@gmail.com",
        body="ขอสอบถามว่าต้องส่งภายในวันใด", attachments=[], message_id="<seed3@a.example>",
    )  # fmt: skip
    return [form, errors, question, build_forward(form)] + [
        p.read_bytes() for p in sorted(HOSTILE.glob("*.eml")) if p.stat().st_size < 10_000
    ]


SEEDS = _seeds()
HEADERS = ["From", "Subject", "To", "Cc", "Reply-To", "Message-ID", "Date", "Received",
           "Content-Type", "Content-Disposition", "Content-Transfer-Encoding", "In-Reply-To",
           "References", "Authentication-Results", "Precedence", "Auto-Submitted"]  # fmt: skip
NASTY = st.sampled_from(["\r\n", "\r", "\n", "\x00", "\x1b[2J", "\x01", "\udcff", "<", ">", "@",
                         "=?", "?=", ";", '"', "\\", "Bcc: v@victim.example", "ก", "\u202e"])


@st.composite
def header_values(draw: st.DrawFn) -> str:
    text = draw(st.lists(st.one_of(NASTY, st.text(max_size=12)), max_size=12).map("".join))
    form = draw(st.sampled_from(["raw", "b", "q", "huge", "address"]))
    data = text.encode("utf-8", "surrogateescape")
    if form == "b":
        return f"=?{draw(st.sampled_from(['utf-8', 'windows-874', 'x-bogus']))}?b?" \
               f"{base64.b64encode(data).decode()}?="
    if form == "q":
        return "=?utf-8?q?" + "".join(f"={b:02X}" for b in data) + "?="
    if form == "huge":
        return (text or "x") * (draw(st.integers(1_000, 200_000)) // max(1, len(text)))
    if form == "address":
        return f"=?utf-8?b?{base64.b64encode(data).decode()}?= <{text}@{text}>"
    return text


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "inject", "truncate", "nest", "rfc822"]))
        if op == "flip" and raw:
            for _ in range(draw(st.integers(1, 8))):
                i = draw(st.integers(0, len(raw) - 1))
                raw[i] ^= draw(st.integers(1, 255))
        elif op == "inject":
            name = draw(st.sampled_from(HEADERS))
            value = draw(header_values())
            line = f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")
            raw[0:0] = line if draw(st.booleans()) else b""
            if not draw(st.booleans()):
                end = raw.find(b"\r\n\r\n")
                raw[end if end >= 0 else len(raw) : end if end >= 0 else len(raw)] = b"\r\n" + line
        elif op == "truncate" and raw:
            del raw[draw(st.integers(0, len(raw) - 1)) :]
        elif op == "nest":
            depth = draw(st.integers(1, 3000))
            head = b"".join(b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n'
                            % (i, i) for i in range(depth))  # fmt: skip
            tail = b"".join(b"\r\n--n%d--\r\n" % i for i in reversed(range(depth)))
            top, _, rest = bytes(raw).partition(b"\r\n\r\n")
            raw = bytearray(top + b"\r\n" + head + b"\r\n" + rest + tail)
        elif op == "rfc822":
            wraps = draw(st.integers(1, 2000))
            raw = bytearray(b"From: fwd@a.example\r\nSubject: f\r\n"
                            + b"Content-Type: message/rfc822\r\n\r\n" * wraps + bytes(raw))
    return bytes(raw)


def _ends_as_an_outcome(svc: pipeline.Services, raw: bytes) -> None:
    message_id, _ = pipeline.archive_message(svc, raw, RECEIVED, "import")
    for _ in range(pipeline.MAX_ATTEMPTS):
        pipeline.process_pending(svc, pipeline.CycleReport())  # never raises
    with session_scope(svc.factory) as session:
        row = session.get(Message, message_id)
        assert row is not None
        assert row.state in (MessageState.PROCESSED, MessageState.DONE, MessageState.FAILED)
        # what was stored is bounded and clean, and only a real address is ever an address
        for value in (row.subject, row.header_from, row.message_id_header):
            assert value is None or (len(value) <= 998 and "\x00" not in value)
        assert row.from_address is None or is_address(row.from_address)
        recipients = session.scalars(
            select(Outbox.to_address).where(Outbox.answers_message_id == message_id)
        )
        assert all(is_address(to) for to in recipients)
        if row.state == MessageState.FAILED:
            reasons = session.scalars(
                select(ReviewItem.reason).where(ReviewItem.message_id == message_id)
            )
            assert "processing_error" in set(reasons)


@pytest.mark.parametrize(("backend", "examples"), [("sqlite", 150), ("postgresql", 40)])
def test_mutated_mail_always_ends_as_an_outcome(backend, examples, request):
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            url = f"sqlite:///{tmp}/fuzz.db"
            from storage.session import migrate

            migrate(url)
            svc = services(Path(tmp), url)
        else:
            svc = services(Path(tmp), request.getfixturevalue("database_url_postgresql"))

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(mutated())
        def run(raw: bytes) -> None:
            _ends_as_an_outcome(svc, raw)

        run()


@pytest.fixture
def database_url_postgresql(postgres):  # type: ignore[no-untyped-def]
    from storage.session import migrate

    name = postgres.create_database()
    url = postgres.url(name)
    migrate(url)
    yield url
    postgres.drop_database(name)
