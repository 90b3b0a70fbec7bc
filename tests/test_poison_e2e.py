"""No mail can stop the others, through the real commands: `intake poll --once` against a real
Dovecot with a poison message between two good ones, every file of the hostile corpus
(tests/fixtures/hostile/) through `intake import`, and `intake import` judging lateness by the
receiving server's `Received:` time. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from intake.pipeline import MAX_ATTEMPTS
from tests.forms.builders import filled_form_bytes
from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_submission
from tests.worker_env import rows

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ON_TIME = datetime.fromisoformat("2024-01-19T10:00:00+07:00")
HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
POISON = (
    b"From: =?utf-8?b?TmFtZQ0KQmNjOiB2aWN0aW1AdmljdGltLmV4YW1wbGU=?= <x@evil.example>\r\n"
    b"To: jpp.moi9999@gmail.com\r\nSubject: =?utf-8?b?aGVsbG8Ad29ybGQ=?=\r\n"
    b"Date: Fri, 19 Jan 2024 09:00:00 +0700\r\nMessage-ID: <poison@evil.example>\r\n\r\nhi\r\n"
)


@pytest.fixture
def env(tmp_path, database_url, imap_user, smtp_server):
    imap, user = imap_user
    runner = IntakeRunner(settings_env(tmp_path, database_url, imap, smtp_server.smtp_settings()))
    return runner, user, smtp_server, database_url, tmp_path


def good(n: int, province: str, sender: str, **kw) -> bytes:  # type: ignore[no-untyped-def]
    return build_submission(
        subject=f"ส่งแบบฟอร์มข้อมูล จังหวัด{province}", from_=sender,
        to="jpp.moi9999@gmail.com", body="เรียน ผู้ประสานงาน\n",
        attachments=[(f"form{n}.xlsx", filled_form_bytes(province), XLSX)],
        message_id=f"<good{n}@province.example>", **kw,
    )  # fmt: skip


GOOD_SENDERS = ["lamphun.office@gmail.com", "saraban@chiangmai.go.th"]


def verified(intake) -> None:  # type: ignore[no-untyped-def]
    """GOOD_SENDERS as the coordinator adds them: verified addresses (issue 11's no-learning
    rule), so the good forms are acknowledged and raise no review item of their own."""
    intake("review", "add-address", "TH-51", "lamphun.office@gmail.com")
    intake("review", "add-address", "TH-50", "saraban@chiangmai.go.th")


def acknowledged(smtp) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(
        m.rcpt_tos[0] for m in smtp.messages if m.message["X-Intake-Kind"] == "acknowledgement"
    )


def test_good_poison_good_over_imap_one_poll_answers_both_and_reviews_the_poison(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    verified(intake)
    user.append(good(1, "เชียงใหม่", "saraban@chiangmai.go.th"), ON_TIME)
    poison_uid = user.append(POISON, ON_TIME)
    user.append(good(2, "ลำพูน", "lamphun.office@gmail.com"), ON_TIME)

    result = intake("poll", "--once")
    assert "fetched 3" in result.stdout
    assert acknowledged(smtp) == GOOD_SENDERS
    assert all("victim" not in " ".join(m.rcpt_tos) for m in smtp.messages)
    [(state, subject, sender)] = rows(
        url, "select state, subject, from_address from message where message_id_header = "
             "'poison@evil.example'"
    )  # fmt: skip
    assert (state, subject, sender) == ("done", "helloworld", "x@evil.example")
    assert [r["reason"] for r in intake.report()["review"]] == ["unknown_sender"]
    assert "$IntakeDone" in user.flags(poison_uid)
    assert "fetched 0" in intake("poll", "--once").stdout  # the cursor is past all three


def test_a_decision_that_keeps_failing_is_retried_then_in_review_and_stops_nothing(env):
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    verified(intake)
    user.append(good(1, "เชียงใหม่", "saraban@chiangmai.go.th"), ON_TIME)
    poison_uid = user.append(POISON, ON_TIME)
    user.append(good(2, "ลำพูน", "lamphun.office@gmail.com"), ON_TIME)
    fault = {"INTAKE_FAULT": "decision:poison@evil.example"}

    first = intake("poll", "--once", **fault)  # exits 0
    assert "fetched 3" in first.stdout
    assert acknowledged(smtp) == GOOD_SENDERS  # both good ones answered in the same cycle
    for _ in range(MAX_ATTEMPTS - 1):
        later = intake("poll", "--once", **fault)
        assert "fetched 0" in later.stdout  # the cursor moved past the poison at once
    [(state, attempts, error)] = rows(
        url, "select state, attempts, error from message where message_id_header = "
             "'poison@evil.example'"
    )  # fmt: skip
    assert (state, attempts) == ("failed", MAX_ATTEMPTS) and "InjectedFault" in error
    assert [r["reason"] for r in intake.report()["review"]] == ["processing_error"]
    assert "$IntakeDone" not in user.flags(poison_uid)  # a processing error never files the mail
    assert len(smtp.messages) == 2  # nothing sent for the poison


@pytest.mark.parametrize("path", sorted(HOSTILE.glob("*.eml")), ids=lambda p: p.stem)
def test_every_hostile_file_is_an_outcome_through_intake_import(tmp_path, database_url,
                                                                smtp_server, path):
    """Each nasty case between two good mails in one `intake import`: exit 0, a row for each,
    both good ones answered."""
    intake = IntakeRunner(settings_env(tmp_path, database_url, None, smtp_server.smtp_settings()))
    intake("db", "upgrade")
    verified(intake)
    first, last = tmp_path / "a.eml", tmp_path / "z.eml"
    first.write_bytes(good(1, "เชียงใหม่", "saraban@chiangmai.go.th"))
    last.write_bytes(good(2, "ลำพูน", "lamphun.office@gmail.com"))
    intake("import", str(first), str(path), str(last))
    states = rows(database_url, "select state, from_address, subject from message")
    assert len(states) == 3 and {s for s, _, _ in states} == {"done"}
    assert all(a is None or "@" in a for _, a, _ in states)  # never `<script>` or a bare word
    assert all(len(s or "") <= 998 and "\x00" not in (s or "") for _, _, s in states)
    assert acknowledged(smtp_server) == GOOD_SENDERS
    recipients = [to for m in smtp_server.messages for to in m.rcpt_tos]
    assert all("@" in to and "victim" not in to for to in recipients)


RECEIVED_LATE = (
    "Received: by 2002:a05:6a10:1234 with SMTP id abc;\r\n"
    "        Tue, 23 Jan 2024 08:00:00 +0700 (ICT)\r\n"
    "Received: from mail.nan.go.th (mail.nan.go.th. [203.0.113.5])\r\n"
    "        by mx.google.com; Mon, 22 Jan 2024 09:00:00 +0700\r\n"  # forgeable: not ours
)


def test_import_judges_lateness_by_the_topmost_received_not_the_date(tmp_path, database_url,
                                                                    smtp_server):
    intake = IntakeRunner(settings_env(tmp_path, database_url, None, smtp_server.smtp_settings(),
                                       now="2024-01-23T09:00:00+07:00"))  # fmt: skip
    intake("db", "upgrade")
    intake("review", "add-address", "TH-55", "saraban@nan.go.th")  # verified senders
    intake("review", "add-address", "TH-54", "x@phrae.go.th")
    late = tmp_path / "late.eml"
    late.write_bytes(RECEIVED_LATE.encode() + good(7, "น่าน", "saraban@nan.go.th",
                                                    date="Mon, 22 Jan 2024 09:00:00 +0700"))
    on_time = tmp_path / "on_time.eml"  # no Received at all: the Date stands in, with a note
    on_time.write_bytes(good(8, "แพร่", "x@phrae.go.th", date="Mon, 22 Jan 2024 09:00:00 +0700"))
    result = intake("import", str(late), str(on_time))
    entities = {e["id"]: e for e in intake.report()["entities"]}
    assert (entities["TH-55"]["status"], entities["TH-55"]["late"]) == ("accepted", True)
    assert entities["TH-55"]["last_received_at"] == "2024-01-23T08:00:00+07:00"
    assert (entities["TH-54"]["status"], entities["TH-54"]["late"]) == ("accepted", False)
    assert result.stderr.count("import.no_received_time") == 1
    assert "Date:" in result.stderr


def test_two_mails_with_the_same_sender_and_subject_stay_two(env):
    """Dedup is by message identity (bytes, or Message-ID with From and Date), never by subject:
    a province sending twice under the same subject and Date has two versions."""
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    verified(intake)
    for n, phone in ((1, "053-111-222"), (2, "053-111-333")):  # two different forms
        user.append(build_submission(
            subject="ส่งแบบฟอร์มข้อมูล", from_="saraban@chiangmai.go.th",
            to="jpp.moi9999@gmail.com", body="เรียน ผู้ประสานงาน\n",
            attachments=[("แบบฟอร์ม.xlsx", filled_form_bytes("เชียงใหม่", phone=phone), XLSX)],
            message_id=f"<same{n}@chiangmai.go.th>", date="Fri, 19 Jan 2024 09:00:00 +0700",
        ), ON_TIME)  # fmt: skip
    assert "fetched 2 (new 2)" in intake("poll", "--once").stdout
    assert len(rows(url, "select id from message")) == 2
    chiangmai = next(e for e in intake.report()["entities"] if e["id"] == "TH-50")
    assert chiangmai["versions"] == 2
    assert acknowledged(smtp) == ["saraban@chiangmai.go.th"] * 2


def test_the_whole_hostile_corpus_over_imap_in_one_poll(env):
    """Every nasty case in one mailbox between good mails: one `poll --once` exits 0, the cursor
    passes all of them, each is a row that is decided and filed, the good ones are answered."""
    intake, user, smtp, url, _ = env
    intake("db", "upgrade")
    verified(intake)
    user.append(good(1, "เชียงใหม่", "saraban@chiangmai.go.th"), ON_TIME)
    appended = 1
    for path in sorted(HOSTILE.glob("*.eml")):
        raw = path.read_bytes()
        if b"\x00" in raw:  # IMAP cannot carry a raw NUL (RFC 3501 literals); Gmail drops it
            continue
        user.append(raw, ON_TIME)
        appended += 1
    user.append(good(2, "ลำพูน", "lamphun.office@gmail.com"), ON_TIME)
    appended += 1
    result = intake("poll", "--once")
    assert f"fetched {appended}" in result.stdout
    states = [s for (s,) in rows(url, "select state from message")]
    assert len(states) == appended and set(states) == {"done"}
    assert acknowledged(smtp) == GOOD_SENDERS
    assert "fetched 0" in intake("poll", "--once").stdout
