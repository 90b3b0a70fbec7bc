"""Guarantees that held before anything proved them, now proved over a real Dovecot and the real
`intake poll --once`, on SQLite and PostgreSQL:
- a message whose processing fails is never filed on the server (keyword, move or Gmail label);
- after a UIDVALIDITY change, a new message at a UID the old mailbox had used is taken in;
- two mails with the same sender, subject and Date stay two messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.forms.builders import filled_form_bytes, form_with_errors_bytes
from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_submission
from tests.servers import GmailLabelProxy
from tests.worker_env import rows

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ON_TIME = datetime.fromisoformat("2024-01-19T10:00:00+07:00")
DONE = "intake/processed"  # imap.done_folder: the label, or the folder `move` files into


def _mail(n: int, sender: str, subject: str, form: bytes | None = None, **kw: Any) -> bytes:
    return build_submission(
        subject=subject,
        from_=sender,
        to="jpp.moi9999@gmail.com",
        body=kw.pop("body", "เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n"),
        attachments=[(f"form{n}.xlsx", form, XLSX)] if form is not None else [],
        message_id=f"<r{n}@province.example>",
        **kw,
    )


@pytest.fixture
def server(imap_user) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """(settings for a mode, the Dovecot user, the Gmail proxy) made per test."""
    base, user = imap_user
    with GmailLabelProxy(user.server.port) as proxy:
        yield base, user, proxy


def _runner(tmp: Path, url: str, imap: Any, smtp: Any) -> IntakeRunner:
    runner = IntakeRunner(settings_env(tmp, url, imap, smtp.smtp_settings()))
    runner("db", "upgrade")
    return runner


def _filed(mode: str, user: Any, proxy: GmailLabelProxy, uid: int) -> bool:
    """Whether the message at `uid` in INBOX carries any sign of being filed, by the mode."""
    if mode == "move":
        return uid not in user.uids()
    if mode == "gmail-label":
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=proxy.port, ssl=False, timeout=10) as client:
            client.login(user.name, user.password)
            client.select_folder("INBOX", readonly=True)
            return DONE in client.get_gmail_labels([uid]).get(uid, [])
    return "$IntakeDone" in user.flags(uid)


@pytest.mark.parametrize("mode", ["keyword", "move", "gmail-label"])
def test_a_message_whose_processing_fails_is_never_filed(
    tmp_path, database_url, server, smtp_server, mode
):
    base, user, proxy = server
    imap = (
        proxy.imap_settings(base)
        if mode == "gmail-label"
        else base.model_copy(update={"mark": mode})
    )
    intake = _runner(tmp_path, database_url, imap, smtp_server)
    intake("review", "add-address", "TH-50", "saraban@chiangmai.go.th")  # verified senders
    intake("review", "add-address", "TH-55", "saraban@nan.go.th")
    bad = user.append(
        _mail(1, "saraban@chiangmai.go.th", "แบบฟอร์ม จังหวัดเชียงใหม่", filled_form_bytes("เชียงใหม่")),
        ON_TIME,
    )
    good = user.append(
        _mail(2, "saraban@nan.go.th", "แบบฟอร์ม จังหวัดน่าน", filled_form_bytes("น่าน")), ON_TIME
    )
    # the first message is archived and recorded, then the process dies; its archived copy is
    # then lost, so every processing attempt of it fails (a real failure, not a simulated one)
    assert intake("poll", "--once", check=False, INTAKE_FAULT="after_archive").returncode == 137
    [(path,)] = rows(database_url, "select archive_path from message")
    (tmp_path / "var" / "archive" / path).unlink()

    for attempt in (1, 2, 3):
        intake("poll", "--once")  # exit 0: a failing message is an outcome
        [(state, attempts)] = rows(
            database_url,
            "select state, attempts from message where message_id_header = 'r1@province.example'",
        )
        assert attempts == attempt
        assert state == ("failed" if attempt == 3 else "received")
        assert not _filed(mode, user, proxy, bad), f"filed after attempt {attempt}"
        assert _filed(mode, user, proxy, good)  # the good one in the same cycles is filed

    assert rows(database_url, "select reason from review_item") == [("processing_error",)]
    assert [m.rcpt_tos for m in smtp_server.messages] == [["saraban@nan.go.th"]]
    [(marked,)] = rows(
        database_url,
        "select l.marked_at from message_location l join message m on m.id = l.message_id "
        "where m.message_id_header = 'r1@province.example'",
    )
    assert marked is None
    if mode == "move":
        assert user.uids() == [bad] and len(user.uids(DONE)) == 1


def test_after_a_uidvalidity_change_a_new_message_at_a_reused_uid_is_taken_in(
    tmp_path, database_url, imap_user, smtp_server
):
    base, user = imap_user
    folder = "Intake"  # a folder that is deleted and made again: UIDs start over at 1
    intake = _runner(
        tmp_path, database_url, base.model_copy(update={"folder": folder}), smtp_server
    )
    for sender_id, address in (
        ("TH-50", "saraban@chiangmai.go.th"),
        ("TH-55", "saraban@nan.go.th"),
        ("TH-54", "saraban@phrae.go.th"),
    ):
        intake("review", "add-address", sender_id, address)  # verified senders
    old = _mail(1, "saraban@chiangmai.go.th", "แบบฟอร์ม จังหวัดเชียงใหม่", filled_form_bytes("เชียงใหม่"))
    first_uid = user.append(old, ON_TIME, folder=folder)
    user.append(
        _mail(2, "saraban@nan.go.th", "แบบฟอร์ม จังหวัดน่าน", filled_form_bytes("น่าน")),
        ON_TIME,
        folder=folder,
    )
    intake("poll", "--once")
    [(validity_before, last_uid)] = rows(
        database_url, "select uidvalidity, last_uid from mailbox_cursor"
    )
    assert last_uid == 2

    with user.client() as client:
        client.delete_folder(folder)
        client.create_folder(folder)
    new = _mail(3, "saraban@phrae.go.th", "แบบฟอร์ม จังหวัดแพร่", filled_form_bytes("แพร่"))
    reused_uid = user.append(new, ON_TIME, folder=folder)
    again_uid = user.append(old, ON_TIME, folder=folder)  # an old one put back: the same mail
    assert reused_uid == first_uid == 1 and again_uid == 2  # the old mailbox's UIDs, reused

    result = intake("poll", "--once")
    assert "fetched 2 (new 1)" in result.stdout
    [(validity_after, last_uid)] = rows(
        database_url, "select uidvalidity, last_uid from mailbox_cursor"
    )
    assert validity_after != validity_before and last_uid == 2
    assert rows(database_url, "select count(*) from message") == [(3,)]
    phrae = next(e for e in intake.report()["entities"] if e["id"] == "TH-54")
    assert phrae["status"] == "accepted"
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "saraban@chiangmai.go.th",
        "saraban@nan.go.th",
        "saraban@phrae.go.th",
    ]  # the new one answered, the old one not twice
    with user.client() as client:
        client.select_folder(folder, readonly=True)
        flags = client.get_flags([reused_uid, again_uid])
    assert all(b"$IntakeDone" in f for f in flags.values())


def test_two_mails_with_the_same_sender_subject_and_date_stay_two(
    tmp_path, database_url, imap_user, smtp_server
):
    base, user = imap_user
    intake = _runner(tmp_path, database_url, base, smtp_server)
    same = {"date": "Fri, 19 Jan 2024 10:00:00 +0700"}
    sender, subject = "lamphun.office@gmail.com", "ข้อมูลจังหวัดลำพูน"
    intake("review", "add-address", "TH-51", sender)  # a verified sender
    user.append(_mail(1, sender, subject, form_with_errors_bytes("ลำพูน"), **same), ON_TIME)
    user.append(_mail(2, sender, subject, filled_form_bytes("ลำพูน"), **same), ON_TIME)
    intake("poll", "--once")
    assert rows(database_url, "select count(*) from message") == [(2,)]
    assert rows(database_url, "select count(*) from submission") == [(2,)]
    lamphun = next(e for e in intake.report()["entities"] if e["id"] == "TH-51")
    assert (lamphun["status"], lamphun["versions"]) == ("accepted", 2)
    assert [m.message["X-Intake-Kind"] for m in smtp_server.messages] == [
        "correction",
        "acknowledgement",
    ]
