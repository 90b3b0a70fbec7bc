"""A reply cut off by a crash mid-send is settled when the service starts again, at once, with the
campaign clock frozen (`INTAKE_NOW`, as in every demo): the claim names the process that made it,
and that process is gone. Real crashes (`INTAKE_FAULT`, os._exit in a real `intake poll --once`)
over Dovecot and a real SMTP server, on SQLite and PostgreSQL; then the rule itself, in process.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

import pytest

from intake.lease import process_holder
from intake.outbox import recover_sending
from storage.models import Outbox, OutboxState
from storage.session import make_engine, session_factory, session_scope
from tests.forms.builders import filled_form_bytes
from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_submission
from tests.worker_env import WorkerProcess, rows, wait_until

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ON_TIME = datetime.fromisoformat("2024-01-19T10:00:00+07:00")
FROZEN = "2024-01-20T10:00:00+07:00"  # every run of a test sees this same "now"


@pytest.fixture
def env(tmp_path, database_url, imap_user, smtp_server):  # type: ignore[no-untyped-def]
    imap, user = imap_user
    environ = settings_env(tmp_path, database_url, imap, smtp_server.smtp_settings(), now=FROZEN)
    intake = IntakeRunner(environ)
    intake("db", "upgrade")
    intake("review", "add-address", "TH-50", "saraban@chiangmai.go.th")  # a verified sender
    user.append(
        build_submission(
            subject="แบบฟอร์มข้อมูล จังหวัดเชียงใหม่",
            from_="saraban@chiangmai.go.th",
            to="jpp.moi9999@gmail.com",
            body="เรียน ผู้ประสานงาน\nขอส่งข้อมูล\n",
            attachments=[("cm.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)],
            message_id="<cut@chiangmai.go.th>",
        ),
        ON_TIME,
    )
    return intake, user, smtp_server, database_url, tmp_path


def _outbox(url: str) -> list[tuple[str, str | None]]:
    return rows(url, "select state, sending_by from outbox")


def test_a_send_cut_off_before_smtp_is_held_at_the_restart_with_the_clock_frozen(env):
    intake, user, smtp, url, _ = env
    crashed = intake("poll", "--once", check=False, INTAKE_FAULT="before_smtp")
    assert crashed.returncode == 137
    [(state, claimant)] = _outbox(url)
    assert state == "sending" and claimant and claimant.split(":")[0] == socket.gethostname()

    intake("poll", "--once")  # the same INTAKE_NOW: no ten minutes pass on that clock
    assert [s for s, _ in _outbox(url)] == [OutboxState.HELD.value]
    assert [r["reason"] for r in intake.report()["review"]] == ["outbox_unknown"]
    assert smtp.messages == [] and smtp.data_attempts == 0  # never resent blindly
    intake("poll", "--once")
    assert smtp.messages == [] and [s for s, _ in _outbox(url)] == ["held"]


def test_a_send_cut_off_after_smtp_is_found_in_sent_at_the_restart(env):
    intake, user, smtp, url, _ = env
    crashed = intake("poll", "--once", check=False, INTAKE_FAULT="after_smtp")
    assert crashed.returncode == 137
    [reply] = smtp.messages
    user.append(reply.raw, folder="Sent")  # as Gmail keeps what its SMTP server sent
    intake("poll", "--once")
    assert [s for s, _ in _outbox(url)] == [OutboxState.SENT.value]
    assert intake.report()["review"] == []
    assert len(smtp.messages) == 1


def test_the_worker_settles_a_cut_off_send_in_its_first_cycle(env, tmp_path):
    intake, user, smtp, url, _ = env
    assert intake("poll", "--once", check=False, INTAKE_FAULT="before_smtp").returncode == 137
    worker = WorkerProcess.start(intake.env, tmp_path / "worker.log")
    try:
        worker.wait_for_log(r"cycle\.done", timeout=60)
        wait_until(lambda: [s for s, _ in _outbox(url)] == ["held"], 10, "the row held")
    finally:
        assert worker.terminate() == 0
    assert [r["reason"] for r in intake.report()["review"]] == ["outbox_unknown"]
    assert smtp.messages == []


# --- the rule, in process -----------------------------------------------------------------------


def _row(factory, n: int, claimant: str | None, claimed: datetime) -> int:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        row = Outbox(
            message_id_header=f"<o{n}@intake.test>", kind="acknowledgement",
            to_address="x@example.test", subject="s", raw=b"Subject: s\r\n\r\nx\r\n",
            state=OutboxState.SENDING, attempts=1, sending_at=claimed, sending_by=claimant,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def test_only_claims_nobody_can_still_be_sending_are_settled(database_url):
    factory = session_factory(make_engine(database_url))
    host, wall = socket.gethostname(), datetime.now(UTC)
    frozen = datetime(2024, 1, 20, 3, 0, tzinfo=UTC)  # the service clock: irrelevant here
    alive = f"{host}:{os.getppid()}:abc"  # a live process on this host (our parent)
    rows_by_case = {
        "ours, not in flight": _row(factory, 1, process_holder(), wall),
        "a dead process here": _row(factory, 2, f"{host}:999999999:abc", wall),
        "alive, just now": _row(factory, 3, alive, wall - timedelta(seconds=5)),
        "alive, long ago": _row(factory, 4, alive, wall - timedelta(minutes=11)),
        "another host, just now": _row(factory, 5, "elsewhere:1:abc", wall),
        "before the claim column": _row(factory, 6, None, wall - timedelta(minutes=11)),
    }
    report = recover_sending(factory, frozen, lambda message_id: message_id == "<o1@intake.test>")
    with session_scope(factory) as session:
        found = {case: session.get(Outbox, outbox_id) for case, outbox_id in rows_by_case.items()}
        states = {case: row.state for case, row in found.items() if row is not None}
    assert states == {
        "ours, not in flight": OutboxState.SENT,  # found in Sent
        "a dead process here": OutboxState.HELD,
        "alive, just now": OutboxState.SENDING,  # it may still be talking to SMTP
        "alive, long ago": OutboxState.HELD,  # by the real clock, whatever INTAKE_NOW says
        "another host, just now": OutboxState.SENDING,
        "before the claim column": OutboxState.HELD,
    }
    assert (report.sent, report.held) == (1, 3)


def test_a_reply_this_process_is_sending_right_now_is_left_alone(database_url):
    """A cycle starting while another thread of the same worker (reminders, say) is mid-send."""
    from intake.outbox import SmtpTransport, send_outbox
    from intake.settings import RepliesSettings, SmtpSettings

    factory = session_factory(make_engine(database_url))
    with session_scope(factory) as session:
        session.add(
            Outbox(
                message_id_header="<busy@intake.test>", kind="reminder", to_address="x@example.test",
                subject="s", raw=b"Subject: s\r\n\r\nx\r\n", state=OutboxState.QUEUED, attempts=0,
            )
        )  # fmt: skip
    seen: list[tuple[OutboxState, int]] = []

    class Transport(SmtpTransport):
        def send(self, mail_from: str, to: str, raw: bytes) -> str:
            report = recover_sending(factory, datetime.now(UTC), lambda _message_id: False)
            with session_scope(factory) as session:
                [row] = session.query(Outbox).all()
                seen.append((row.state, report.held))
            return "250 ok"

        def close(self) -> None:
            pass

    smtp = SmtpSettings()
    sent = send_outbox(factory, smtp, RepliesSettings(), lambda: datetime.now(UTC), Transport(smtp))
    assert seen == [(OutboxState.SENDING, 0)]  # mid-send: not taken for a leftover
    assert sent.sent == 1
    with session_scope(factory) as session:
        [row] = session.query(Outbox).all()
        assert (row.state, row.sending_by) == (OutboxState.SENT, process_holder())
