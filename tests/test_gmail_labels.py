"""The filing mode config/intake.toml ships (`imap.mark = "gmail-label"`) against a server that
speaks Gmail's X-GM-EXT-1: Dovecot behind tests.servers.GmailLabelProxy, driven by the real
`intake poll --once`. Labels are read back the way a Gmail client reads them (X-GM-LABELS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from imapclient import IMAPClient

from tests.forms.builders import filled_form_bytes, form_with_errors_bytes
from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_submission
from tests.servers import GmailLabelProxy
from tests.worker_env import rows

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ON_TIME = datetime.fromisoformat("2024-01-19T10:00:00+07:00")
LABEL = "intake/processed"  # imap.done_folder: the label the shipped configuration files with


def _mail(n: int, sender: str, province: str, form: bytes) -> bytes:
    return build_submission(
        subject=f"แบบฟอร์มข้อมูล จังหวัด{province}",
        from_=sender,
        to="jpp.moi9999@gmail.com",
        body="เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n",
        attachments=[(f"form{n}.xlsx", form, XLSX)],
        message_id=f"<g{n}@province.example>",
    )


@pytest.fixture
def gmail(tmp_path, database_url, imap_user, smtp_server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    base, user = imap_user
    with GmailLabelProxy(user.server.port) as proxy:
        imap = proxy.imap_settings(base)
        runner = IntakeRunner(
            settings_env(tmp_path, database_url, imap, smtp_server.smtp_settings())
        )
        runner("db", "upgrade")
        runner("review", "add-address", "TH-50", "saraban@chiangmai.go.th")  # verified senders
        runner("review", "add-address", "TH-51", "lamphun.office@gmail.com")
        uids = [
            user.append(_mail(1, "saraban@chiangmai.go.th", "เชียงใหม่",
                              filled_form_bytes("เชียงใหม่")), ON_TIME),
            user.append(_mail(2, "lamphun.office@gmail.com", "ลำพูน",
                              form_with_errors_bytes("ลำพูน")), ON_TIME),
        ]  # fmt: skip
        yield runner, proxy, user, smtp_server, database_url, uids


def _labels(proxy: GmailLabelProxy, user: Any, uids: list[int]) -> dict[int, list[str]]:
    """X-GM-LABELS of each message, asked as a Gmail client asks."""
    with IMAPClient("127.0.0.1", port=proxy.port, ssl=False, timeout=10) as client:
        client.login(user.name, user.password)
        assert client.has_capability("X-GM-EXT-1")
        client.select_folder("INBOX", readonly=True)
        found = client.get_gmail_labels(uids)
    return {uid: sorted(found[uid]) for uid in uids}


def test_poll_files_with_the_gmail_label_and_a_second_poll_changes_nothing(gmail):
    intake, proxy, user, smtp, url, uids = gmail
    first = intake("poll", "--once")
    assert "filed 2" in first.stdout
    assert _labels(proxy, user, uids) == {uid: ["\\Inbox", LABEL] for uid in uids}
    assert not any("$IntakeDone" in user.flags(uid) for uid in uids)  # a label, not the keyword
    assert {r[0] for r in rows(url, "select state from message")} == {"done"}
    assert sorted(m.message["X-Intake-Kind"] for m in smtp.messages) == [
        "acknowledgement",
        "correction",
    ]
    stores = proxy.label_stores
    assert stores >= 1

    second = intake("poll", "--once")
    assert "fetched 0" in second.stdout and "filed 0" in second.stdout
    assert proxy.label_stores == stores  # nothing filed twice
    assert _labels(proxy, user, uids) == {uid: ["\\Inbox", LABEL] for uid in uids}
    assert len(smtp.messages) == 2
    assert len(user.uids()) == 2  # nothing moved or deleted


def test_a_refused_label_neither_stops_the_replies_nor_loses_the_filing(gmail):
    intake, proxy, user, smtp, url, uids = gmail
    proxy.fail_labels = True
    refused = intake("poll", "--once")  # exit 0: the cycle's work is done, filing waits
    assert "filed 0" in refused.stdout
    assert "not filed on the server yet" in refused.stderr and "Failure" in refused.stderr
    assert proxy.label_stores >= 1
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
        "lamphun.office@gmail.com",
        "saraban@chiangmai.go.th",
    ]  # every reply went
    assert {r[0] for r in rows(url, "select state from message")} == {"processed"}
    assert all(r[0] is None for r in rows(url, "select marked_at from message_location"))
    assert _labels(proxy, user, uids) == {uid: ["\\Inbox"] for uid in uids}
    status = json.loads(intake("status", "--json").stdout)
    assert "filing" in status["last_error"] and status["consecutive_failures"] == 0

    proxy.fail_labels = False
    again = intake("poll", "--once")
    assert "fetched 0" in again.stdout and "filed 2" in again.stdout
    assert "not filed" not in again.stderr
    assert _labels(proxy, user, uids) == {uid: ["\\Inbox", LABEL] for uid in uids}
    assert {r[0] for r in rows(url, "select state from message")} == {"done"}
    assert len(smtp.messages) == 2  # filing again sent nothing again
