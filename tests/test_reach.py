"""Who the service can write to: expected senders without a verified address (`intake roster
check`, and the count in `intake remind`, `intake status`), and a question from the public, which
gets one neutral notice instead of a request to "correct" a form it never had. Real commands on
SQLite and PostgreSQL."""

from __future__ import annotations

import email
from email.policy import default as default_policy
from pathlib import Path

import pytest

from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_submission
from tests.replies_env import invalid_form, valid_form
from tests.worker_env import rows as _rows

QUESTION_FROM = "curious@gmail.com"


@pytest.fixture
def intake(tmp_path: Path, database_url: str, smtp_server) -> IntakeRunner:  # type: ignore[no-untyped-def]
    env = settings_env(
        tmp_path, database_url, smtp=smtp_server.smtp_settings(), now="2024-01-19T09:05:00+07:00"
    )
    runner = IntakeRunner(env)
    runner("db", "upgrade")
    return runner


def _eml(tmp: Path, n: int, sender: str, subject: str, body: str, attachments=()) -> str:  # type: ignore[no-untyped-def]
    raw = build_submission(
        subject=subject, from_=sender, to="jpp.moi9999@gmail.com", body=body,
        attachments=attachments, message_id=f"<reach-{n}@example.test>",
        date="Thu, 18 Jan 2024 10:00:00 +0700",
    )  # fmt: skip
    path = tmp / f"{n}.eml"
    path.write_bytes(raw)
    return str(path)


def _body(raw: bytes) -> str:
    message = email.message_from_bytes(bytes(raw), policy=default_policy)
    return message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def test_roster_check_remind_and_status_name_the_senders_no_reminder_reaches(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    before = intake("roster", "check").stdout
    assert "94 of 94 expected senders have no verified address" in before
    assert (
        "senders/addresses.csv" in before and "intake review add-address SENDER ADDRESS" in before
    )
    assert "seen in mail:" not in before  # no mail yet, nothing to suggest

    intake(
        "import",
        _eml(tmp_path, 1, "saraban@chiangmai.go.th", "ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่",
             "ขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒", [valid_form("เชียงใหม่")]),
        _eml(tmp_path, 2, "lamphun.office@gmail.com", "ส่งแบบฟอร์มข้อมูล จังหวัดลำพูน",
             "ขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒", [invalid_form("ลำพูน")]),
    )  # fmt: skip
    seen = intake("roster", "check").stdout
    assert "94 of 94 expected senders" in seen  # a mail verifies nothing by itself (issue 11)
    assert "seen in mail: saraban@chiangmai.go.th" in seen
    assert "intake review add-address TH-50 saraban@chiangmai.go.th" in seen
    assert "intake review add-address TH-51 lamphun.office@gmail.com" in seen
    assert "jpp.moi9999" not in seen  # never our own address

    intake("review", "add-address", "TH-50", "saraban@chiangmai.go.th")
    after = intake("roster", "check").stdout
    assert "93 of 94 expected senders" in after and "TH-50" not in after

    # the reminder goes to Lamphun (the From of its version needing correction); the 92 missing
    # senders without any address are counted, not passed over in silence
    for args in (("remind", "--dry-run"), ("remind",)):
        out = intake(*args).stdout
        assert "92 senders still owing a form have no address and get no reminder" in out, out
        assert "93 expected senders have no verified address" in out
        assert "intake review add-address SENDER ADDRESS" in out and "intake roster check" in out
    assert "reminders queued 1" in out
    assert _rows(database_url, "select to_address from outbox where kind = 'reminder'") == [
        ("lamphun.office@gmail.com",)
    ]

    status = intake("status", check=False)  # unhealthy: no poll has run; the count is still said
    assert "93 expected senders have no verified address" in status.stdout
    assert "intake review add-address SENDER ADDRESS" in status.stdout


def test_a_question_gets_one_notice_a_province_without_its_file_a_correction(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    intake(
        "import",
        _eml(tmp_path, 1, f"ผู้สนใจ <{QUESTION_FROM}>", "สอบถามรายละเอียด",
             "ขอสอบถามว่าโครงการนี้ประชาชนทั่วไปเสนอความเห็นได้หรือไม่"),
        _eml(tmp_path, 2, "สนจ.ลำปาง <saraban@lampang.go.th>",
             "ส่งแบบฟอร์มข้อมูล จังหวัดลำปาง",
             "เรียน ผู้ประสานงาน\nจังหวัดลำปางขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒"),
    )  # fmt: skip
    # the same person asks again: a person answers, not a second automatic mail
    intake("import", _eml(tmp_path, 3, QUESTION_FROM, "สอบถามอีกครั้ง", "ยังไม่ได้รับคำตอบ"))

    replies = _rows(database_url, "select kind, to_address, subject, raw from outbox order by id")
    assert [(k, to) for k, to, _, _ in replies] == [
        ("notice", QUESTION_FROM),
        ("correction", "saraban@lampang.go.th"),
    ]
    _, _, subject, raw = replies[0]
    assert subject == "Re: สอบถามรายละเอียด [แจ้งเพื่อทราบ]" and "แก้ไข" not in subject
    message = email.message_from_bytes(bytes(raw), policy=default_policy)
    assert message["X-Intake-Kind"] == "notice"
    notice = _body(raw)
    assert "มท ๐๒๑๒.๓/ว ๓๐๒" in notice and "เจ้าหน้าที่จะพิจารณาตอบกลับท่าน" in notice
    assert "แนบ" not in notice and "แก้ไข" not in notice  # nothing to attach or correct
    correction = _body(replies[1][3])
    assert "ไม่พบไฟล์แนบ" in correction and "จังหวัดลำปาง" in correction
    # both questions wait for a person, and so does Lampang's mail without its form
    review = _rows(database_url, "select reason, detail from review_item order by id")
    assert [r for r, _ in review] == ["unknown_sender", "no_form", "unknown_sender"]
    assert all("คำถาม" in d for r, d in review if r == "unknown_sender")
