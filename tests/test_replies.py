"""Acknowledgements and correction requests as they leave: headers checked on the raw bytes that
reached a real SMTP server, Thai content of each kind, and the outbox's SMTP behaviour (4xx, 5xx,
dry run, disabled, a crash between commit and send)."""

from __future__ import annotations

import re
from datetime import datetime
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from intake.forms.model import Problem
from intake.replies import Renderer, ReplyData, sender_title
from tests.forms.builders import warning_form_bytes
from tests.intake_env import CONFIG_DIR, IntakeRunner, settings_env
from tests.replies_env import (
    ON_TIME,
    XLSX,
    body_of,
    invalid_form,
    mail,
    make_harness,
    parse,
    valid_form,
)

SUBJECT = "ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่"
CM = "สนจ.เชียงใหม่ <saraban@chiangmai.go.th>"


@pytest.fixture
def harness(tmp_path, database_url, imap_user, smtp_server):
    h = make_harness(tmp_path, database_url, imap_user, smtp_server)
    yield h
    h.close()


def raw_headers(raw: bytes) -> dict[str, str]:
    """Header name (lowercase) -> raw unfolded value, straight from the bytes on the wire."""
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    assert all(b < 128 for b in head), "header section must be 7-bit (RFC 2047 for Thai)"
    text = re.sub(r"\r?\n[ \t]+", " ", head.decode("ascii"))
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        out.setdefault(name.strip().lower(), value.strip())
    return out


def decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


# --- the acknowledgement, end to end ---------------------------------------------------------------


def test_acknowledgement_headers_and_thai_content(harness):
    h = harness
    h.user.append(
        mail(1, CM, SUBJECT, [valid_form("เชียงใหม่", "แบบฟอร์ม_เชียงใหม่.xlsx")],
             extra_headers=["References: <earlier@province.example>"]),
        ON_TIME,
    )
    h.poll()
    [sent] = h.smtp.messages
    assert sent.rcpt_tos == ["saraban@chiangmai.go.th"]
    assert sent.mail_from == h.svc.settings.smtp.from_address
    raw = raw_headers(sent.raw)
    [(receipt, message_id)] = h.rows("select s.receipt, o.message_id_header from submission s "
                                     "join outbox o on o.submission_id = s.id")
    assert re.fullmatch(r"2567-\d{4}", receipt)
    # subject: the original kept, Re: once, the receipt added; RFC 2047 UTF-8 on the wire
    assert "=?utf-8?" in raw["subject"].lower()
    assert decoded(raw["subject"]) == f"Re: {SUBJECT} [เลขรับ {receipt}]"
    assert decoded(raw["from"]).startswith(h.svc.settings.smtp.from_name)
    assert raw["auto-submitted"] == "auto-replied"
    assert raw["x-intake-kind"] == "acknowledgement"
    assert raw["in-reply-to"] == "<m1@province.example>"
    assert raw["references"] == "<earlier@province.example> <m1@province.example>"
    assert raw["message-id"] == message_id
    assert re.fullmatch(r"<intake\.[0-9a-f]{32}@intake\.moi\.local>", message_id)
    assert raw["date"] and raw["mime-version"] == "1.0"

    msg = parse(sent.raw)
    assert msg.get_content_type() == "multipart/alternative"
    text, html = body_of(msg), body_of(msg, "html")
    assert text.startswith("เรียน ผู้ประสานงานจังหวัดเชียงใหม่")
    for expected in (
        f"เลขรับ               : {receipt}",
        "19 มกราคม 2567 เวลา 10:00 น. (ภายในกำหนด)",  # Thai month, B.E. year, Bangkok time
        "ฉบับที่               : 1\n",
        "แบบฟอร์ม_เชียงใหม่.xlsx",
        "๑. เอกลักษณ์ที่โดดเด่น จำนวน 2 รายการ",
        "๕. แผนงาน/โครงการสำคัญ จำนวน 2 รายการ",
        "งบประมาณรวมของแผนงาน/โครงการ 12,850,000.50 บาท",
        "ตอบกลับอีเมลฉบับนี้",
        "จึงเรียนมาเพื่อโปรดทราบ",
    ):
        assert expected in text, expected
    assert "ใช้แทนฉบับที่" not in text
    assert receipt in html and "12,850,000.50" in html and 'lang="th"' in html

    # a new version, answering our ack: replaces version 1, our old tag is not stacked
    h.user.append(
        mail(2, CM, f"Re: {SUBJECT} [เลขรับ {receipt}]",
             [("v2.xlsx", warning_form_bytes("เชียงใหม่"), XLSX)],
             extra_headers=["In-Reply-To: " + message_id, "References: " + message_id]),
        ON_TIME,
    )
    h.poll()
    second = h.smtp.messages[1]
    raw2 = raw_headers(second.raw)
    [(receipt2,)] = h.rows("select receipt from submission where version = 2")
    assert decoded(raw2["subject"]) == f"Re: {SUBJECT} [เลขรับ {receipt2}]"
    assert raw2["references"] == f"{message_id} <m2@province.example>"
    text2 = body_of(parse(second.raw))
    assert "ฉบับที่               : 2 (ใช้แทนฉบับที่ 1)" in text2
    assert "ข้อสังเกต (ข้อมูลได้รับไว้แล้ว ไม่จำเป็นต้องส่งใหม่)" in text2  # the C.E. year warning


def test_correction_groups_problems_by_part_with_locations(harness):
    h = harness
    h.user.append(mail(3, "lamphun.office@gmail.com", "ข้อมูลจังหวัดลำพูน",
                       [invalid_form("ลำพูน", "lamphun.xlsx")]), ON_TIME)
    h.poll()
    [sent] = h.smtp.messages
    raw = raw_headers(sent.raw)
    assert decoded(raw["subject"]) == "Re: ข้อมูลจังหวัดลำพูน [ขอให้แก้ไขข้อมูล]"
    assert raw["x-intake-kind"] == "correction" and raw["auto-submitted"] == "auto-replied"
    assert raw["in-reply-to"] == "<m3@province.example>"
    text = body_of(parse(sent.raw))
    assert text.startswith("เรียน ผู้ประสานงานจังหวัดลำพูน")
    assert "จากการตรวจสอบพบว่า ข้อมูลยังไม่ครบถ้วนหรือยังไม่ถูกต้อง" in text
    header_at, projects_at = text.index("\nส่วนหัว (ข้อมูลผู้ส่ง)\n"), text.index(
        "\n๕. แผนงาน/โครงการสำคัญ\n")
    assert header_at < projects_at  # groups in the form's order
    projects = text[projects_at:text.index("เมื่อแก้ไขเรียบร้อยแล้ว")]
    items = re.findall(r"^  \d+\) .*$", projects, re.M)
    assert len(items) >= 4  # axis, budget, fiscal year, agency, term
    assert all("เซลล์" in item and "lamphun.xlsx" in item for item in items)
    assert "ตอบกลับอีเมลฉบับนี้พร้อมแนบไฟล์แบบฟอร์ม (.xlsx) ที่แก้ไขแล้ว" in text
    html = body_of(parse(sent.raw), "html")
    assert "<b>๕. แผนงาน/โครงการสำคัญ</b>" in html


def test_no_readable_form_says_what_to_send_instead(harness):
    h = harness
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    h.user.append(mail(4, "office@phrae.go.th", "ส่งข้อมูลจังหวัดแพร่",
                       [("แบบฟอร์ม.pdf", pdf, "application/pdf")]), ON_TIME)
    h.user.append(mail(5, "office@nan.go.th", "ส่งข้อมูลจังหวัดน่าน"), ON_TIME)  # nothing attached
    h.poll()
    by_to = {m.rcpt_tos[0]: body_of(m.message) for m in h.smtp.messages}
    pdf_reply, empty_reply = by_to["office@phrae.go.th"], by_to["office@nan.go.th"]
    for text in (pdf_reply, empty_reply):
        assert "ไม่พบแบบฟอร์มข้อมูลที่ระบบสามารถอ่านได้" in text
        assert "สิ่งที่ขอให้จัดส่ง: แบบฟอร์มข้อมูลการยกระดับเมืองฯ" in text
        assert "ไฟล์ Excel (.xlsx)" in text and "ตอบกลับอีเมลฉบับนี้" in text
        assert "ข้อมูลยังไม่ครบถ้วนหรือยังไม่ถูกต้อง" not in text  # there was no data to judge
    assert "แบบฟอร์ม.pdf" in pdf_reply and "PDF" in pdf_reply
    assert "ไม่พบไฟล์แนบ" in empty_reply


# --- rendering, pure ---------------------------------------------------------------------------------


def _reply(**kw) -> ReplyData:  # type: ignore[no-untyped-def]
    values = {
        "kind": "acknowledgement", "to_address": "a@b.go.th", "original_subject": "ส่งข้อมูล",
        "original_message_id": "x@y", "references": [], "on_time": True,
        "received_at": datetime.fromisoformat("2024-01-22T17:30:00+00:00"),  # 23 Jan 00:30 BKK
        "sender_name": "จังหวัดน่าน", "receipt": "2567-0042", "version": 3,
    } | kw
    return ReplyData(**values)


def test_late_acknowledgement_and_bangkok_date():
    subject, text, html = Renderer(CONFIG_DIR / "templates").render(_reply(on_time=False))
    assert subject == "Re: ส่งข้อมูล [เลขรับ 2567-0042]"
    assert "23 มกราคม 2567 เวลา 00:30 น. (ได้รับหลังวันที่กำหนด)" in text
    assert "(ได้รับหลังวันที่กำหนด)" in html


def test_unknown_sender_is_addressed_without_a_name():
    renderer = Renderer(CONFIG_DIR / "templates")
    problem = Problem("error", "unknown_entity", "ไม่พบชื่อ", part="header", cell="C3")
    _, text, _ = renderer.render(_reply(kind="correction", sender_name=None, receipt=None,
                                        problems=[problem]))
    assert text.startswith("เรียน ผู้ประสานงาน\n")
    assert "ข้อมูลของหน่วยงานของท่าน ได้" in text and "None" not in text
    assert "ไม่พบชื่อ — เซลล์ C3" in text


CLUSTER_2 = "กลุ่มจังหวัดภาคเหนือตอนบน 2"
GLUED = re.compile(r"[0-9][\u0e01-\u0e4f]")  # an Arabic digit run into a Thai word


def test_a_name_ending_in_a_digit_is_not_glued_to_the_next_word():
    renderer = Renderer(CONFIG_DIR / "templates")
    _, text, html = renderer.render(_reply(sender_name=CLUSTER_2))
    assert f"แบบฟอร์มข้อมูลของ{CLUSTER_2} ไว้เรียบร้อยแล้ว" in text
    assert f"ของ{CLUSTER_2} ไว้เรียบร้อยแล้ว" in html
    variants = [
        {}, {"resend_of_version": 2}, {"provisional": True},
        {"kind": "correction"}, {"kind": "correction", "form_read": False},
        *({"kind": "notice", "notice": n} for n in ("unexpected", "awaiting", "copy", "question")),
    ]  # fmt: skip
    for variant in variants:
        subject, text, html = renderer.render(_reply(sender_name=CLUSTER_2, **variant))
        for rendered in (subject, text, html):
            assert not GLUED.search(rendered), (variant, GLUED.search(rendered))


def test_subject_keeps_the_original_and_never_stacks_tags():
    renderer = Renderer(CONFIG_DIR / "templates")
    assert renderer.subject(_reply(original_subject="")) == "Re: (ไม่มีชื่อเรื่อง) [เลขรับ 2567-0042]"
    stacked = "RE: ส่งข้อมูล [ขอให้แก้ไขข้อมูล] [เลขรับ 2567-0001]"
    assert renderer.subject(_reply(original_subject=stacked)) == "RE: ส่งข้อมูล [เลขรับ 2567-0042]"
    assert renderer.subject(_reply(kind="correction", original_subject=stacked)) == (
        "RE: ส่งข้อมูล [ขอให้แก้ไขข้อมูล]"
    )


def test_sender_titles():
    assert sender_title("province", "เชียงใหม่") == "จังหวัดเชียงใหม่"
    assert sender_title("province", "กรุงเทพมหานคร") == "กรุงเทพมหานคร"
    assert sender_title("cluster", "กลุ่มจังหวัดภาคเหนือตอนบน 1") == "กลุ่มจังหวัดภาคเหนือตอนบน 1"


# --- SMTP behaviour ------------------------------------------------------------------------------


def _one_ack(h, n: int = 1) -> None:  # type: ignore[no-untyped-def]
    from storage import queries

    with h.svc.factory.begin() as session:  # a roster address: no confirmation to wait for
        queries.add_sender_address(session, "TH-50", "saraban@chiangmai.go.th", "config")
    h.user.append(mail(n, CM, SUBJECT, [valid_form("เชียงใหม่")]), ON_TIME)


def test_a_reply_fails_after_exactly_the_allowed_temporary_attempts(harness):
    """MAX_TEMPORARY_ATTEMPTS 4xx answers, each after its backoff, then FAILED and a review
    item; one attempt fewer leaves it queued (each attempt is counted once)."""
    from intake.outbox import MAX_TEMPORARY_ATTEMPTS

    h = harness
    h.smtp.fail_next("451 4.3.0 try again later", times=MAX_TEMPORARY_ATTEMPTS)
    _one_ack(h)
    h.poll("2024-01-20T10:00:00+07:00")  # attempt 1
    for day in range(2, MAX_TEMPORARY_ATTEMPTS + 1):  # backoff is at most an hour
        assert h.rows("select state, attempts from outbox") == [("queued", day - 1)]
        h.at(f"2024-01-{19 + day:02d}T10:00:00+07:00")
        h.send()
    assert h.rows("select state, attempts from outbox") == [("failed", MAX_TEMPORARY_ATTEMPTS)]
    assert h.smtp.data_attempts == MAX_TEMPORARY_ATTEMPTS and h.smtp.messages == []
    assert "reply_failed" in h.review_reasons()


def test_a_temporary_failure_is_retried_later_and_delivered_once(harness):
    h = harness
    h.smtp.fail_next("451 4.3.0 try again later")
    _one_ack(h)
    report = h.poll("2024-01-20T10:00:00+07:00")
    assert h.smtp.messages == [] and report.send_errors and "451" in report.send_errors[0]
    [(state, attempts, error)] = h.rows("select state, attempts, last_error from outbox")
    assert (state, attempts) == ("queued", 1) and "451" in error
    assert h.send().sent == 0  # the backoff has not passed yet
    assert h.smtp.data_attempts == 1
    h.at("2024-01-20T10:05:00+07:00")
    assert h.send().sent == 1
    assert h.send().sent == 0
    h.poll()
    assert len(h.smtp.messages) == 1 and h.smtp.data_attempts == 2
    assert h.rows("select state, attempts from outbox") == [("sent", 2)]


def test_a_permanent_failure_stops_and_is_shown(harness):
    h = harness
    h.smtp.fail_next("550 5.1.1 no such mailbox")
    _one_ack(h)
    h.poll()
    [(state, error)] = h.rows("select state, last_error from outbox")
    assert state == "failed" and error.startswith("550")
    assert h.review_reasons() == ["reply_failed"]
    h.poll("2024-01-21T10:00:00+07:00")
    h.send()
    assert h.smtp.data_attempts == 1 and h.smtp.messages == []  # never retried


def test_dry_run_fills_the_outbox_and_sends_nothing(harness):
    h = harness
    h.svc.settings.replies.dry_run = True
    _one_ack(h)
    h.poll()
    h.send()
    assert h.rows("select kind, state from outbox") == [("acknowledgement", "queued")]
    assert h.smtp.data_attempts == 0


def test_replies_disabled_queue_nothing(harness):
    h = harness
    h.svc.settings.replies.enabled = False
    _one_ack(h)
    h.poll()
    assert h.rows("select count(*) from outbox") == [(0,)]
    assert h.rows("select status from submission") == [("valid",)]
    assert h.smtp.data_attempts == 0


def test_a_crash_between_commit_and_smtp_never_sends_twice(tmp_path: Path, database_url,
                                                           imap_user, smtp_server):
    imap, user = imap_user
    intake = IntakeRunner(settings_env(tmp_path, database_url, imap, smtp_server.smtp_settings()))
    intake("db", "upgrade")
    intake("review", "add-address", "TH-50", "saraban@chiangmai.go.th")  # a verified address
    user.append(mail(1, CM, SUBJECT, [valid_form("เชียงใหม่")]), ON_TIME)
    crashed = intake("poll", "--once", check=False, INTAKE_FAULT="before_smtp")
    assert crashed.returncode == 137
    assert smtp_server.data_attempts == 0
    intake("poll", "--once")  # at once: the row may still be on its way, it is left alone
    assert smtp_server.data_attempts == 0
    later = "2024-01-20T10:30:00+07:00"
    intake("poll", "--once", INTAKE_NOW=later)
    intake("poll", "--once", INTAKE_NOW=later)
    assert smtp_server.data_attempts == 0  # at most once: never resent blindly
    assert [r["reason"] for r in intake.report()["review"]] == ["outbox_unknown"]
