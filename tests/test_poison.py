"""No mail can stop the others (issue 11): hostile headers, NUL, megabytes of header, deep nesting
and values that are not addresses each end as an outcome of their own, through the real archive
step and `process_pending` on a real database (SQLite and PostgreSQL). The same through the real
commands over IMAP and `intake import` is in tests/test_poison_e2e.py; fuzzing in
tests/test_poison_fuzz.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.orm import sessionmaker

from intake import message as mail
from intake import pipeline
from storage import queries
from storage.models import Message, MessageState, Outbox, ReviewItem, Sender
from storage.session import make_engine, session_scope
from tests.forms.builders import filled_form_bytes
from tests.intake_env import services
from tests.mime_builders import build_submission

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
CRLF_FROM = "=?utf-8?b?TmFtZQ0KQmNjOiB2aWN0aW1AdmljdGltLmV4YW1wbGU=?= <x@evil.example>"
RECEIVED = datetime(2024, 1, 19, 3, tzinfo=UTC)


def good_mail(n: int, province: str = "เชียงใหม่", sender: str = "saraban@chiangmai.go.th") -> bytes:
    return build_submission(
        subject=f"ส่งแบบฟอร์มข้อมูล จังหวัด{province}", from_=sender,
        to="jpp.moi9999@gmail.com", body="เรียน ผู้ประสานงาน\n",
        attachments=[(f"form{n}.xlsx", filled_form_bytes(province), XLSX)],
        message_id=f"<good{n}@province.example>",
    )  # fmt: skip


def hostile(headers: list[str], body: str = "hello\r\n") -> bytes:
    return ("\r\n".join([*headers, "To: jpp.moi9999@gmail.com", ""]) + "\r\n" + body).encode(
        "utf-8", "surrogateescape"
    )


def verified(svc: pipeline.Services) -> None:
    """The good mails' addresses as the coordinator adds them: verified senders (issue 11's
    no-learning rule), so a good form is acknowledged, not held as provisional."""
    with session_scope(svc.factory) as session:
        queries.add_sender_address(session, "TH-50", "saraban@chiangmai.go.th", "coordinator")
        queries.add_sender_address(session, "TH-51", "lamphun.office@gmail.com", "coordinator")


def run_cycle(svc: pipeline.Services) -> pipeline.CycleReport:
    report = pipeline.CycleReport()
    pipeline.process_pending(svc, report)
    return report


def row(svc: pipeline.Services, message_id: int) -> Message:
    with session_scope(svc.factory) as session:
        found = session.get(Message, message_id)
        assert found is not None
        return found


def test_an_encoded_crlf_in_the_display_name_is_recorded_and_the_others_handled(
    tmp_path, database_url
):
    svc = services(tmp_path, database_url)
    verified(svc)
    good1, _ = pipeline.archive_message(svc, good_mail(1), RECEIVED, "import")
    poison, is_new = pipeline.archive_message(
        svc, hostile([f"From: {CRLF_FROM}", "Subject: hello", "Message-ID: <p@evil.example>"]),
        RECEIVED, "import",
    )  # fmt: skip
    good2, _ = pipeline.archive_message(
        svc, good_mail(2, "ลำพูน", "lamphun.office@gmail.com"), RECEIVED, "import"
    )
    assert is_new
    recorded = row(svc, poison)
    assert recorded.header_from == "Name Bcc: victim@victim.example <x@evil.example>"
    assert "\r" not in recorded.header_from and "\n" not in recorded.header_from

    report = run_cycle(svc)
    assert report.processed == 3 and report.failed == 0
    after = row(svc, poison)
    assert after.state == MessageState.PROCESSED and after.from_address == "x@evil.example"
    assert {row(svc, g).state for g in (good1, good2)} == {MessageState.PROCESSED}
    with session_scope(svc.factory) as session:
        reasons = [r.reason for r in session.scalars(select(ReviewItem))]
        replies = sorted(tuple(r) for r in session.execute(select(Outbox.kind, Outbox.to_address)))
        raws = list(session.scalars(select(Outbox.raw)))
    assert reasons == ["unknown_sender"]  # the poison waits for a person
    assert ("acknowledgement", "saraban@chiangmai.go.th") in replies
    assert ("acknowledgement", "lamphun.office@gmail.com") in replies
    assert all(to != "victim@victim.example" for _, to in replies)
    assert not any(b"\nBcc:" in raw or b"victim@victim.example>" in raw for raw in raws)


def test_an_encoded_nul_is_stored_without_it(tmp_path, database_url):
    """PostgreSQL refuses NUL in text: the subject was a DataError, three times, then FAILED."""
    svc = services(tmp_path, database_url)
    raw = hostile(
        ["From: =?utf-8?b?TnVsAE5hbWU=?= <x@evil.example>",
         "Subject: =?utf-8?b?aGVsbG8Ad29ybGQ=?=", "Message-ID: <nul@evil.example>"],
        body="body \x00 text",
    )  # fmt: skip
    message_id, _ = pipeline.archive_message(svc, raw, RECEIVED, "import")
    assert run_cycle(svc).failed == 0
    stored = row(svc, message_id)
    assert stored.state == MessageState.PROCESSED and stored.attempts == 0
    assert stored.subject == "helloworld"
    assert "\x00" not in (stored.header_from or "")


def test_nul_is_removed_at_the_storage_layer_for_core_orm_and_text(tmp_path, database_url):
    """One rule in storage/session.py covers every way a value reaches the database."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Sender).values(
                    id="X-\x001", kind="province", name_th="ก\x00ข", name_en="a\x00b"
                )
            )
            conn.execute(
                text("update sender set name_en = :v where id = :id"),
                {"v": "c\x00d\udcff", "id": "X-1"},  # and a lone surrogate neither driver encodes
            )
            rows = conn.execute(text("select id, name_th, name_en from sender where id = 'X-1'"))
            assert [tuple(r) for r in rows] == [("X-1", "กข", "cd\ufffd")]
    finally:
        engine.dispose()


def test_nul_is_removed_on_the_bulk_path_too(tmp_path, database_url):
    """Form rows go in by COPY on PostgreSQL, past the engine's hook: the same rule holds there."""
    engine = make_engine(database_url)
    try:
        with session_scope(sessionmaker(engine)) as session:
            queries.insert_values(
                session, Sender,
                ("id", "kind", "name_th", "name_en", "region_th", "region_en", "aliases",
                 "expected", "sort_key"),
                [("X-2", "province", "ก\x00ข", "e\udcfff", "", "", [], True, "")],
            )  # fmt: skip
        with engine.begin() as conn:
            rows = conn.execute(text("select name_th, name_en from sender where id = 'X-2'"))
            assert [tuple(r) for r in rows] == [("กข", "e\ufffdf")]
    finally:
        engine.dispose()


def test_megabytes_of_header_are_capped_in_the_row_and_whole_in_the_archive(
    tmp_path, database_url
):
    svc = services(tmp_path, database_url)
    huge = "A" * (20 * 1024 * 1024)
    words = " ".join(["=?utf-8?b?4LiB?="] * 200_000)  # took gigabytes in the header policy
    raw = hostile([f"From: {words} <x@evil.example>", f"Subject: {huge}",
                   "Message-ID: <huge@evil.example>"])  # fmt: skip
    message_id, _ = pipeline.archive_message(svc, raw, RECEIVED, "import")
    stored = row(svc, message_id)
    assert len(stored.subject or "") <= 998 and len(stored.header_from or "") <= 998
    assert svc.archive.read(stored.archive_path) == raw
    run_cycle(svc)
    stored = row(svc, message_id)
    assert stored.state == MessageState.PROCESSED
    assert len(stored.subject or "") <= 998 and stored.from_address == "x@evil.example"


def test_a_from_without_at_is_never_an_address(tmp_path, database_url):
    svc = services(tmp_path, database_url)
    ids = [
        pipeline.archive_message(svc, hostile([sender, f"Subject: s{i}"]), RECEIVED, "import")[0]
        for i, sender in enumerate(["From: <script>", "From: script", "From: a b <c d>"])
    ]
    run_cycle(svc)
    for message_id in ids:
        stored = row(svc, message_id)
        assert stored.state == MessageState.PROCESSED and stored.from_address is None
    with session_scope(svc.factory) as session:
        assert session.scalar(text("select count(*) from outbox")) == 0  # nobody to answer


def test_twenty_thousand_nested_multiparts_keep_from_and_subject():
    n = 20_000
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'
                   for i in range(n))  # fmt: skip
    tail = "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(n)))
    raw = ("From: Somchai <somchai@chiangmai.go.th>\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
           + head + "Content-Type: text/plain\r\n\r\nhi" + tail).encode()  # fmt: skip
    parsed = mail.parse(raw)
    assert (parsed.from_address, parsed.subject) == ("somchai@chiangmai.go.th", "deep")
    assert any("ซ้อนกันลึกเกินไป" in note for note in parsed.notes)
    forwards = ("From: a@b.example\r\nSubject: forwards\r\n"
                + "Content-Type: message/rfc822\r\n\r\n" * 5000 + "From: c@d.example\r\n\r\nx")
    parsed = mail.parse(forwards.encode())
    assert (parsed.from_address, parsed.subject) == ("a@b.example", "forwards")


def test_nesting_within_the_limit_is_read_as_before():
    """The bound only touches pathological mail: a form three levels down is still found."""
    inner = build_submission(
        subject="x", from_="saraban@chiangmai.go.th", to="jpp.moi9999@gmail.com", body="hi",
        attachments=[("f.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)],
    )  # fmt: skip
    headers, _, body = inner.partition(b"\r\n\r\n")
    ctype = next(line for line in headers.split(b"\r\n") if line.lower().startswith(b"content-type"))
    raw = (b"From: saraban@chiangmai.go.th\r\nSubject: wrapped\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n--outer\r\n'
           + ctype + b"\r\n\r\n" + body + b"\r\n--outer--\r\n")  # fmt: skip
    parsed = mail.parse(raw)
    assert [a.kind for a in parsed.attachments] == ["xlsx"] and not parsed.notes


def test_a_failing_decision_is_retried_then_failed_in_review_and_blocks_nothing(
    tmp_path, database_url
):
    """A message whose archived bytes cannot be read (a real failure inside the decision stage)
    is retried once per cycle, MAX_ATTEMPTS times, then FAILED with a review item; the others
    are decided in the first cycle."""
    svc = services(tmp_path, database_url)
    verified(svc)
    good1, _ = pipeline.archive_message(svc, good_mail(1), RECEIVED, "import")
    poison, _ = pipeline.archive_message(
        svc, hostile(["From: x@evil.example", "Subject: gone"]), RECEIVED, "import"
    )
    good2, _ = pipeline.archive_message(
        svc, good_mail(2, "ลำพูน", "lamphun.office@gmail.com"), RECEIVED, "import"
    )
    (svc.archive.root / row(svc, poison).archive_path).unlink()
    for cycle in range(1, pipeline.MAX_ATTEMPTS + 1):
        report = run_cycle(svc)
        assert report.failed == 1
        assert report.processed == (2 if cycle == 1 else 0)
        assert row(svc, poison).attempts == cycle
    assert {row(svc, g).state for g in (good1, good2)} == {MessageState.PROCESSED}
    failed = row(svc, poison)
    assert failed.state == MessageState.FAILED and "FileNotFoundError" in (failed.error or "")
    with session_scope(svc.factory) as session:
        items = list(session.scalars(select(ReviewItem)))
    assert [(i.reason, i.message_id) for i in items] == [("processing_error", poison)]
    assert run_cycle(svc).failed == 0  # FAILED is an outcome: not tried again


def test_a_failure_quoting_hostile_bytes_is_still_recorded(tmp_path, database_url):
    """The recording of a failure must not fail in turn (PostgreSQL refuses surrogates and NUL)."""
    svc = services(tmp_path, database_url)
    message_id, _ = pipeline.archive_message(
        svc, hostile(["From: x@evil.example", "Subject: s"]), RECEIVED, "import"
    )
    error = pipeline._error_text(ValueError("bad \udcff byte \x00 and \x1b[2J"))
    outcome = pipeline._record_failure(svc, message_id, error)
    assert outcome.error == error
    stored = row(svc, message_id)
    assert stored.attempts == 1 and stored.error == "ValueError: bad ? byte   and  [2J"


def test_two_mails_with_the_same_sender_and_subject_stay_two(tmp_path, database_url):
    svc = services(tmp_path, database_url)
    first = hostile(["From: saraban@chiangmai.go.th", "Subject: ส่งข้อมูล",
                     "Date: Mon, 15 Jan 2024 09:00:00 +0700", "Message-ID: <one@a.example>"],
                    body="ฉบับที่หนึ่ง")  # fmt: skip
    second = hostile(["From: saraban@chiangmai.go.th", "Subject: ส่งข้อมูล",
                      "Date: Mon, 15 Jan 2024 09:00:00 +0700", "Message-ID: <two@a.example>"],
                     body="ฉบับที่สอง")  # fmt: skip
    ids = {pipeline.archive_message(svc, raw, RECEIVED, "import") for raw in (first, second)}
    assert len(ids) == 2 and all(is_new for _, is_new in ids)
    run_cycle(svc)
    with session_scope(svc.factory) as session:
        states = list(session.scalars(select(Message.state)))
    assert states == [MessageState.PROCESSED, MessageState.PROCESSED]


@pytest.mark.parametrize("path", sorted(HOSTILE.glob("*.eml")), ids=lambda p: p.stem)
def test_every_hostile_file_parses_without_raising(path):
    """`parse` is pure and never raises; what it returns is safe to store and to answer."""
    parsed = mail.parse(path.read_bytes())
    assert len(parsed.subject) <= mail.MAX_HEADER_TEXT
    assert parsed.from_address == "" or "@" in parsed.from_address
    assert "\n" not in parsed.subject and "\r" not in parsed.subject


def test_form_values_longer_than_their_columns_do_not_fail_the_message(tmp_path, database_url):
    """PostgreSQL refuses a value longer than a VARCHAR (SQLite does not): a phone cell with three
    numbers, a 400-character name or a long sheet name must not turn a form into FAILED there."""
    svc = services(tmp_path, database_url)
    form = filled_form_bytes(
        "เชียงใหม่", phone="081-234-5678, 053-111-222 ต่อ 123, 053-111-333 ต่อ 124",
        contact_name="ก" * 400, position="ข" * 400,
    )  # fmt: skip
    raw = build_submission(
        subject="แบบฟอร์ม", from_="saraban@chiangmai.go.th", to="jpp.moi9999@gmail.com",
        body="x", attachments=[("f.xlsx", form, XLSX)],
    )  # fmt: skip
    message_id, _ = pipeline.archive_message(svc, raw, RECEIVED, "import")
    run_cycle(svc)
    stored = row(svc, message_id)
    assert (stored.state, stored.error) == (MessageState.PROCESSED, None)
