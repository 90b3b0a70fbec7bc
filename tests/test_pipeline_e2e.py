"""The spine end to end: mail appended to a real Dovecot -> `intake poll --once` (the real command)
-> database rows, archive files, flags on the server, replies on a real SMTP server, report JSON.
Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import email
from datetime import datetime
from decimal import Decimal
from email.policy import default as default_policy
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from storage.models import Message, MessageLocation, MessageState, Outbox, OutboxState, Submission
from tests.forms.builders import (
    filled_form_bytes,
    form_with_errors_bytes,
    multi_form_bytes,
    sample_parts,
)
from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_submission

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ON_TIME = datetime.fromisoformat("2024-01-19T10:00:00+07:00")
LATE = datetime.fromisoformat("2024-01-23T08:00:00+07:00")


@pytest.fixture
def env(tmp_path, database_url, imap_user, smtp_server):
    imap, user = imap_user
    runner = IntakeRunner(settings_env(tmp_path, database_url, imap, smtp_server.smtp_settings()))
    return runner, user, smtp_server, database_url, tmp_path


def _count(url: str, model) -> int:  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(model)).scalar_one()
    finally:
        engine.dispose()


def _rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _mail(n: int, sender: str, subject: str, attachments=(), **kw) -> bytes:  # type: ignore[no-untyped-def]
    return build_submission(
        subject=subject,
        from_=sender,
        to="jpp.moi9999@gmail.com",
        body=kw.pop("body", "เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n"),
        attachments=attachments,
        message_id=f"<m{n}@province.example>",
        **kw,
    )


def _fill_mailbox(user) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """A realistic mix: valid, needing correction, a cluster lead's two forms, noise, a question."""
    uids = {}
    uids["chiangmai"] = user.append(
        _mail(1, "สนจ.เชียงใหม่ <saraban@chiangmai.go.th>", "ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่",
              [("แบบฟอร์ม_เชียงใหม่.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)]),
        ON_TIME,
    )
    uids["lamphun"] = user.append(
        _mail(2, "lamphun.office@gmail.com", "ข้อมูลจังหวัดลำพูน",
              [("lamphun.xlsx", form_with_errors_bytes("ลำพูน"), XLSX)]),
        ON_TIME,
        flags=[r"\Seen"],  # somebody already opened it in Gmail: still taken in
    )
    uids["chiangrai"] = user.append(
        _mail(3, "saraban@chiangrai.go.th", "แบบฟอร์ม จ.เชียงราย และกลุ่มจังหวัด",
              [("forms.xlsx", multi_form_bytes([("เชียงราย", "จังหวัด"),
                                                ("ภาคเหนือตอนบน 2", "กลุ่มจังหวัด")]), XLSX)]),
        ON_TIME,
    )
    uids["autoreply"] = user.append(
        _mail(4, "someone@chiangmai.go.th", "ตอบกลับอัตโนมัติ: ไม่อยู่",
              extra_headers=["Auto-Submitted: auto-replied"]),
        ON_TIME,
    )
    uids["question"] = user.append(
        _mail(5, "curious@gmail.com", "สอบถามรายละเอียด", body="ขอสอบถามว่าต้องส่งภายในวันใด"),
        ON_TIME,
    )
    return uids


def _roster(intake) -> None:  # type: ignore[no-untyped-def]
    """The official addresses of the mix, as the coordinator adds them (verified senders)."""
    for sender_id, address in (
        ("TH-50", "saraban@chiangmai.go.th"),
        ("TH-57", "saraban@chiangrai.go.th"),
        ("north-upper-2", "saraban@chiangrai.go.th"),
    ):
        intake("review", "add-address", sender_id, address)


def test_poll_once_end_to_end_and_a_second_run_changes_nothing(env):
    intake, user, smtp, url, tmp = env
    intake("db", "upgrade")
    _roster(intake)
    uids = _fill_mailbox(user)

    first = intake("poll", "--once")
    assert "fetched 5" in first.stdout

    report = intake.report()
    assert report["summary"] == {
        "expected": 94, "accepted": 3, "needs_correction": 1, "missing": 90, "late": 0,
    }
    by_id = {e["id"]: e for e in report["entities"]}
    assert set(report) == {"deadline", "generated_at", "summary", "entities", "review"}
    assert set(by_id["TH-50"]) == {
        "id", "kind", "name_th", "name_en", "status", "late", "last_received_at", "versions",
        "receipt", "verified",
    }
    assert [by_id[s]["verified"] for s in ("TH-50", "TH-57", "north-upper-2")] == [True] * 3
    assert by_id["TH-51"]["verified"] is None and by_id["TH-52"]["verified"] is None
    assert by_id["TH-50"]["status"] == "accepted" and by_id["TH-50"]["receipt"].startswith("2567-")
    assert by_id["TH-50"]["last_received_at"] == "2024-01-19T10:00:00+07:00"  # INTERNALDATE
    assert by_id["TH-51"]["status"] == "needs_correction" and by_id["TH-51"]["receipt"] is None
    assert by_id["TH-57"]["status"] == "accepted"
    assert by_id["north-upper-2"]["status"] == "accepted" and by_id["north-upper-2"]["kind"] == "cluster"
    assert by_id["TH-52"]["status"] == "missing" and by_id["TH-52"]["versions"] == 0
    assert "TH-10" not in by_id  # Bangkok is not expected
    assert report["deadline"] == "2024-01-22T23:59:59+07:00"
    assert [r["reason"] for r in report["review"]] == ["unknown_sender"]
    assert report["review"][0]["from"] == "curious@gmail.com"

    # the form's data is in queryable tables, typed
    sample = sample_parts()
    projects = _rows(url, "select p.name, p.axis, p.term, p.budget, p.fiscal_year from project p "
                          "join submission s on s.id = p.submission_id where s.sender_id = 'TH-50' "
                          "order by p.row_no")
    assert [(r[0], r[1], r[2], Decimal(str(r[3])), r[4]) for r in projects] == [
        (p["name"], p["axis"], p["term"], p["budget"], p["fiscal_year"]) for p in sample["projects"]
    ]
    for table, part in (("approach", "approaches"), ("indicator", "indicators"),
                        ("partner", "partners")):
        [(n,)] = _rows(url, f"select count(*) from {table} t join submission s "
                            f"on s.id = t.submission_id where s.sender_id = 'TH-50'")
        assert n == len(sample[part]), table
    [(goals,)] = _rows(url, "select count(*) from form_text t join submission s on "
                            "s.id = t.submission_id where s.sender_id = 'TH-50' and t.part = 'goals'")
    assert goals == len(sample["goals"])

    # every message archived raw, once
    archived = sorted((tmp / "var" / "archive").rglob("*.eml"))
    assert len(archived) == 5
    assert _count(url, Message) == 5
    assert {r[0] for r in _rows(url, "select state from message")} == {"done"}

    # filed on the server with the keyword, nothing deleted, \Seen left as it was
    for name, uid in uids.items():
        flags = user.flags(uid)
        assert "$IntakeDone" in flags, name
        assert (r"\Seen" in flags) == (name == "lamphun"), name
    assert len(user.uids()) == 5

    # replies: ack x3 (Chiang Mai, Chiang Rai, its cluster), a correction, a notice, none to the robot
    kinds = sorted(
        (m.message["X-Intake-Kind"], m.rcpt_tos[0]) for m in smtp.messages
    )
    assert kinds == [
        ("acknowledgement", "saraban@chiangmai.go.th"),
        ("acknowledgement", "saraban@chiangrai.go.th"),
        ("acknowledgement", "saraban@chiangrai.go.th"),
        ("correction", "lamphun.office@gmail.com"),
        ("notice", "curious@gmail.com"),  # a question: nothing to correct, a person answers
    ]
    ack = next(m.message for m in smtp.messages if m.rcpt_tos == ["saraban@chiangmai.go.th"])
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == "<m1@province.example>"
    assert by_id["TH-50"]["receipt"] in ack["Subject"]
    assert "ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่" in ack["Subject"]
    assert _count(url, Outbox) == 5
    assert {r[0] for r in _rows(url, "select state from outbox")} == {"sent"}

    # the second run: nothing new anywhere
    second = intake("poll", "--once")
    assert "fetched 0" in second.stdout
    again = intake.report()
    assert again["summary"] == report["summary"] and again["entities"] == report["entities"]
    assert len(smtp.messages) == 5
    assert _count(url, Message) == 5 and _count(url, Submission) == 4


def test_correction_names_the_problem_and_where_in_thai(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    user.append(
        _mail(2, "lamphun.office@gmail.com", "ข้อมูลจังหวัดลำพูน",
              [("lamphun.xlsx", form_with_errors_bytes("ลำพูน"), XLSX)]),
        ON_TIME,
    )
    intake("poll", "--once")
    [reply] = smtp.messages
    msg = email.message_from_bytes(reply.raw, policy=default_policy)
    body = msg.get_body(preferencelist=("plain",)).get_content()
    assert msg["X-Intake-Kind"] == "correction"
    assert "แกนหลัก" in body  # the column named in the problem
    assert "เซลล์" in body  # and where it is
    assert "ตอบกลับอีเมลฉบับนี้" in body  # a corrected file can simply be sent as a reply
    problems = _rows(url, "select severity, part, cell from problem where severity = 'error'")
    assert problems and all(cell for _, _, cell in problems if _ != "header")


def test_lateness_is_judged_by_internaldate_not_the_date_header(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    user.append(
        _mail(7, "saraban@nan.go.th", "แบบฟอร์มข้อมูล จังหวัดน่าน",
              [("nan.xlsx", filled_form_bytes("น่าน"), XLSX)],
              date="Mon, 22 Jan 2024 09:00:00 +0700"),  # the sender claims on time
        LATE,  # the mailbox received it after the deadline
    )
    intake("poll", "--once", INTAKE_NOW="2024-01-23T09:00:00+07:00")
    report = intake.report()
    nan = next(e for e in report["entities"] if e["id"] == "TH-55")
    assert nan["status"] == "accepted" and nan["late"] is True
    assert report["summary"]["late"] == 1
    body = smtp.messages[0].message.get_body(preferencelist=("plain",)).get_content()
    assert "หลังวันที่กำหนด" in body


def test_a_resubmission_supersedes_while_every_version_stays(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    user.append(_mail(2, "lamphun.office@gmail.com", "ลำพูน",
                      [("v1.xlsx", form_with_errors_bytes("ลำพูน"), XLSX)]), ON_TIME)
    intake("poll", "--once")
    corrected = filled_form_bytes("ลำพูน")
    user.append(_mail(3, "lamphun.office@gmail.com", "Re: ลำพูน (แก้ไขแล้ว)",
                      [("v2.xlsx", corrected, XLSX)]), ON_TIME)
    intake("poll", "--once")
    user.append(_mail(4, "lamphun.office@gmail.com", "Re: ลำพูน ส่งซ้ำ",
                      [("v2.xlsx", corrected, XLSX)]), ON_TIME)
    intake("poll", "--once")
    lamphun = next(e for e in intake.report()["entities"] if e["id"] == "TH-51")
    assert lamphun["status"] == "accepted"
    assert lamphun["versions"] == 2  # the identical resend is not a third version
    assert [m.message["X-Intake-Kind"] for m in smtp.messages] == [
        "correction", "acknowledgement", "acknowledgement",
    ]
    resend_body = smtp.messages[2].message.get_body(preferencelist=("plain",)).get_content()
    assert "ฉบับเดียวกับที่เคยส่งมาแล้ว" in resend_body
    assert lamphun["receipt"] in smtp.messages[2].message["Subject"]


def test_a_uidvalidity_change_rescans_without_duplicates(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    _fill_mailbox(user)
    intake("poll", "--once")
    user.set_uidvalidity("INBOX", 999999)
    result = intake("poll", "--once")
    assert "fetched 5 (new 0)" in result.stdout  # everything seen again, nothing new
    assert _count(url, Message) == 5 and _count(url, Submission) == 4
    assert len(smtp.messages) == 5
    # the copies under the new UIDVALIDITY are filed on the server too
    assert _count(url, MessageLocation) == 10
    assert all(r[0] is not None for r in _rows(url, "select marked_at from message_location"))


@pytest.mark.parametrize("point", ["after_archive", "after_decision"])
def test_a_crash_then_a_restart_handles_every_message_once(env, point):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    uids = _fill_mailbox(user)
    crashed = intake("poll", "--once", check=False, INTAKE_FAULT=point)
    assert crashed.returncode == 137
    intake("poll", "--once")
    intake("poll", "--once")
    assert _count(url, Message) == 5 and _count(url, Submission) == 4
    assert len(smtp.messages) == 5
    assert sorted(m.rcpt_tos[0] for m in smtp.messages).count("saraban@chiangrai.go.th") == 2
    assert all("$IntakeDone" in user.flags(uid) for uid in uids.values())


def test_two_pollers_at_once_handle_every_message_once(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    _fill_mailbox(user)
    procs = [intake.popen("poll", "--once") for _ in range(2)]
    for proc in procs:
        out, errs = proc.communicate(timeout=300)
        assert proc.returncode == 0, errs
    assert _count(url, Message) == 5 and _count(url, Submission) == 4
    assert len(smtp.messages) == 5
    assert _count(url, Outbox) == 5


def test_a_crash_after_smtp_accepted_never_sends_twice(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    _roster(intake)
    user.append(_mail(1, "saraban@chiangmai.go.th", "เชียงใหม่",
                      [("cm.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)]), ON_TIME)
    crashed = intake("poll", "--once", check=False, INTAKE_FAULT="after_smtp")
    assert crashed.returncode == 137
    assert len(smtp.messages) == 1
    later = "2024-01-20T10:30:00+07:00"  # the restart comes a while after the crash
    intake("poll", "--once", INTAKE_NOW=later)
    intake("poll", "--once", INTAKE_NOW=later)
    assert len(smtp.messages) == 1  # not resent blindly
    states = [r[0] for r in _rows(url, "select state from outbox")]
    assert states == [OutboxState.HELD.value]  # nothing in a Sent folder: the coordinator decides
    assert [r["reason"] for r in intake.report()["review"]] == ["outbox_unknown"]


def test_an_interrupted_send_found_in_the_sent_folder_counts_as_sent(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    _roster(intake)
    user.append(_mail(1, "saraban@chiangmai.go.th", "เชียงใหม่",
                      [("cm.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)]), ON_TIME)
    crashed = intake("poll", "--once", check=False, INTAKE_FAULT="after_smtp")
    assert crashed.returncode == 137
    user.append(smtp.messages[0].raw, folder="Sent")  # as Gmail keeps a copy of what it sent
    intake("poll", "--once", INTAKE_NOW="2024-01-20T10:30:00+07:00")
    assert len(smtp.messages) == 1
    assert [r[0] for r in _rows(url, "select state from outbox")] == [OutboxState.SENT.value]
    assert intake.report()["review"] == []


def test_mailbox_login_failure_is_a_clear_nonzero_exit(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    result = intake("poll", "--once", check=False, INTAKE_IMAP__PASSWORD="wrong-secret-xyz")
    assert result.returncode == 3
    assert "mailbox" in result.stderr.lower()
    assert "wrong-secret-xyz" not in result.stderr + result.stdout


def test_import_takes_eml_mbox_and_maildir_through_the_same_path(env):
    import mailbox as stdlib_mailbox

    intake, user, smtp, url, tmp = env
    intake("db", "upgrade")
    eml = tmp / "one.eml"
    eml.write_bytes(_mail(1, "saraban@chiangmai.go.th", "เชียงใหม่",
                          [("cm.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)]))
    mbox_path = tmp / "takeout.mbox"
    box = stdlib_mailbox.mbox(mbox_path)
    box.add(_mail(2, "lamphun.office@gmail.com", "ลำพูน",
                  [("l.xlsx", filled_form_bytes("ลำพูน"), XLSX)]))
    box.add(_mail(3, "saraban@nan.go.th", "น่าน", [("n.xlsx", filled_form_bytes("น่าน"), XLSX)]))
    box.close()
    maildir = stdlib_mailbox.Maildir(tmp / "Maildir")
    maildir.add(_mail(4, "x@phrae.go.th", "แพร่", [("p.xlsx", filled_form_bytes("แพร่"), XLSX)]))
    intake("import", str(eml), str(mbox_path), str(tmp / "Maildir"))
    intake("import", str(eml))  # the same file again: nothing doubled
    summary = intake.report()["summary"]
    assert summary["accepted"] == 4
    assert _count(url, Message) == 4
    assert {r[0] for r in _rows(url, "select state from message")} == {MessageState.DONE.value}
    assert len(smtp.messages) == 4


def test_reprocess_replays_from_the_archive_without_a_second_reply(env):
    intake, user, smtp, url, tmp = env
    intake("db", "upgrade")
    _fill_mailbox(user)
    intake("poll", "--once")
    before = intake.report()
    intake("reprocess", "--all", INTAKE_IMAP__HOST="127.0.0.1", INTAKE_IMAP__PORT="1")
    after = intake.report()
    assert after["summary"] == before["summary"]
    assert [e["receipt"] for e in after["entities"]] == [e["receipt"] for e in before["entities"]]
    assert len(smtp.messages) == 5
    assert {r[0] for r in _rows(url, "select state from message")} == {"done"}
    assert Path(tmp / "var" / "archive").exists()


def test_raw_8bit_tis620_headers_are_recorded_and_decoded(env):
    """Old Thai mail clients put TIS-620 bytes straight into headers: never a poison message."""
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    form = filled_form_bytes("แพร่")
    raw = _mail(9, "x@phrae.go.th", "placeholder", [("phrae.xlsx", form, XLSX)])
    head, _, rest = raw.partition(b"Subject:")
    line_end = rest.index(b"\n")
    subject = "แบบฟอร์มจังหวัดแพร่".encode("cp874")
    raw = head + b"Subject: " + subject + rest[line_end:]
    user.append(raw, ON_TIME)
    intake("poll", "--once")
    [(subject_db,)] = _rows(url, "select subject from message")
    assert subject_db == "แบบฟอร์มจังหวัดแพร่"
    phrae = next(e for e in intake.report()["entities"] if e["id"] == "TH-54")
    assert phrae["status"] == "accepted"
    assert "แบบฟอร์มจังหวัดแพร่" in smtp.messages[0].message["Subject"]


def test_a_pdf_only_mail_needs_correction_and_a_replay_keeps_one_version(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    user.append(_mail(1, "saraban@chiangmai.go.th", "แบบฟอร์ม จังหวัดเชียงใหม่ (สแกน)",
                      [("แบบฟอร์ม.pdf", pdf, "application/pdf")]), ON_TIME)
    intake("poll", "--once")
    chiangmai = next(e for e in intake.report()["entities"] if e["id"] == "TH-50")
    assert (chiangmai["status"], chiangmai["versions"]) == ("needs_correction", 1)
    [reply] = smtp.messages
    body = reply.message.get_body(preferencelist=("plain",)).get_content()
    assert reply.message["X-Intake-Kind"] == "correction"
    assert "PDF" in body and ".xlsx" in body  # says what to send instead
    intake("reprocess", "--all")
    again = next(e for e in intake.report()["entities"] if e["id"] == "TH-50")
    assert again["versions"] == 1
    assert _count(url, Submission) == 1 and len(smtp.messages) == 1
