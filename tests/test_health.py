"""Health, status, the watchdog on a hung cycle, and the coordinator's daily summary."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from intake import health
from intake.bootstrap import open_services
from intake.clock import Clock
from intake.settings import load_settings
from intake.summary import queue_daily_summary
from intake.worker import EXIT_WEDGED, Worker
from storage.session import migrate
from tests.intake_env import CONFIG_DIR, IntakeRunner, settings_env
from tests.servers import StubTcpServer
from tests.test_pipeline_e2e import _fill_mailbox, _roster
from tests.worker_env import rows

NOW = datetime(2024, 1, 20, 3, 0, tzinfo=UTC)


def test_assess_healthy_only_with_a_recent_successful_poll():
    five_min = timedelta(minutes=5)
    assert health.assess(NOW - five_min, None, NOW, 900)[:2] == (True, "ok")
    assert health.assess(NOW - 4 * five_min, NOW, NOW, 900)[:2] == (False, "stale")
    assert health.assess(None, NOW - five_min, NOW, 900)[:2] == (True, "starting")
    assert health.assess(None, NOW - 4 * five_min, NOW, 900)[:2] == (False, "never")
    assert health.assess(None, None, NOW, 900)[:2] == (False, "never")


def test_status_is_unhealthy_until_a_poll_succeeds_and_reads_the_health_file(
    tmp_path, imap_user, smtp_server
):
    imap, user = imap_user
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    intake = IntakeRunner(settings_env(tmp_path, url, imap, smtp_server.smtp_settings()))
    intake("db", "upgrade")
    never = intake("status", check=False)
    assert never.returncode == 5 and "no poll has ever completed" in never.stdout
    no_file = intake("status", "--file", check=False)
    assert no_file.returncode == 5 and "no health file" in no_file.stderr
    _roster(intake)  # verified senders: only the question from an unknown address waits
    _fill_mailbox(user)
    intake("poll", "--once")
    ok = intake("status")
    assert "HEALTHY" in ok.stdout and "waiting for review    1" in ok.stdout
    data = json.loads(intake("status", "--file", "--json").stdout)
    assert data["healthy"] is True and data["outbox"] == {"sent": 5} and data["review_open"] == 1
    # the same file read later, when the last success is older than alert_after: unhealthy
    stale = intake("status", "--file", check=False, INTAKE_WORKER__ALERT_AFTER="0.01")
    assert stale.returncode == 5 and "no successful poll for" in stale.stdout


def test_a_poll_waits_for_the_lease_of_a_running_worker_then_refuses_with_4(
    tmp_path, imap_user, smtp_server
):
    from intake.lease import Lease

    imap, _ = imap_user
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    intake = IntakeRunner(settings_env(tmp_path, url, imap, smtp_server.smtp_settings()))
    intake("db", "upgrade")
    svc = open_services(intake.settings())
    other = Lease(svc.factory, 60, holder="other-host:1:abc")
    assert other.try_acquire()
    refused = intake("poll", "--once", check=False, INTAKE_WORKER__LEASE_WAIT="1")
    assert refused.returncode == 4
    assert "other-host:1:abc" in refused.stderr and "holds the lease" in refused.stderr
    other.release()
    intake("poll", "--once", INTAKE_WORKER__LEASE_WAIT="1")


def _settings(tmp_path, imap, smtp, **worker):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    return load_settings(
        tmp_path / "none.toml", database_url=url, data_dir=tmp_path / "var", config_dir=CONFIG_DIR,
        imap=imap, smtp=smtp, now=datetime.fromisoformat("2024-01-20T10:00:00+07:00"),
        worker=worker,
    )  # fmt: skip


def test_a_hung_cycle_is_abandoned_the_next_runs_and_a_wedged_worker_exits_70(
    tmp_path, smtp_server, caplog
):
    """The IMAP server accepts the connection, greets, and never answers again: each cycle hangs
    in a read (socket timeout 30 s); the watchdog abandons it after 1 s."""
    with StubTcpServer(greeting=b"* OK IMAP4rev1 ready\r\n") as stub:
        imap = load_settings().imap.model_copy(
            update={
                "host": "127.0.0.1",
                "port": stub.port,
                "security": "none",
                "username": "u",
                "timeout": 30.0,
            }  # fmt: skip
        )
        settings = _settings(
            tmp_path, imap, smtp_server.smtp_settings(), cycle_timeout=1.0, poll_interval=1.0,
            idle=False, shutdown_grace=0.5,
        )  # fmt: skip
        from pydantic import SecretStr

        settings.imap.password = SecretStr("stub-password")
        worker = Worker(open_services(settings))
        caplog.set_level(logging.INFO)
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(worker.run(install_signals=False)))
        thread.start()
        thread.join(30)
        if thread.is_alive():
            worker.request_stop()
            thread.join(10)
    assert result == [EXIT_WEDGED]
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("cycle.abandoned after=") for m in messages) == 3
    assert sum(m.startswith("cycle.start") for m in messages) >= 3  # it went on after each
    assert any(m.startswith("worker.wedged") for m in messages)
    [(error, failures)] = rows(
        settings.effective_database_url,
        "select last_error, consecutive_failures from worker_status",
    )
    assert "abandoned" in error and failures >= 3


@pytest.mark.parametrize("configured", [True, False])
def test_the_daily_summary_goes_to_the_coordinator_once_a_day(
    tmp_path, imap_user, smtp_server, configured
):
    imap, user = imap_user
    address = "coordinator@moi.example" if configured else None
    settings = _settings(tmp_path, imap, smtp_server.smtp_settings(), coordinator_address=address)
    svc = open_services(settings)
    _fill_mailbox(user)
    from intake.cycle import run_cycle

    run_cycle(svc)
    before = len(smtp_server.messages)
    morning = datetime(2024, 1, 20, 1, 0, tzinfo=UTC)  # 08:00 in Bangkok
    svc.clock = Clock(morning)  # the service's clock (INTAKE_NOW) decides the day, not the real one
    assert queue_daily_summary(svc) is configured
    svc.clock = Clock(morning + timedelta(hours=3))
    assert queue_daily_summary(svc) is False  # same day
    summaries = smtp_server.messages[before:]
    if not configured:
        assert summaries == []
        return
    [mail] = summaries
    assert (
        mail.rcpt_tos == ["coordinator@moi.example"] and mail.message["X-Intake-Kind"] == "summary"
    )
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    assert "รับแล้ว 3 หน่วย" in text and "รอแก้ไข 1 หน่วย" in text and "ยังไม่ส่ง 90 หน่วย" in text
    assert "แม่ฮ่องสอน" in text  # a missing province, by name
    assert "curious@gmail.com" in text  # what waits for review
    svc.clock = Clock(morning + timedelta(days=1))
    assert queue_daily_summary(svc) is True  # the next day


def test_every_job_coalesces_runs_alone_and_has_an_explicit_misfire_grace():
    from intake.schedule import SUMMARY_MISFIRE, build_scheduler

    class Jobs:
        def poll_job(self) -> None: ...
        def heartbeat_job(self) -> None: ...
        def health_job(self) -> None: ...
        def reminders_job(self) -> None: ...
        def summary_job(self) -> None: ...

    settings = load_settings(
        "none.toml", worker={"coordinator_address": "c@moi.example", "summary_time": "07:30"}
    )
    scheduler = build_scheduler(Jobs(), settings)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"poll", "heartbeat", "health", "reminders", "summary"}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time and job.misfire_grace_time >= 1
    assert jobs["poll"].misfire_grace_time == 300
    assert jobs["summary"].misfire_grace_time == SUMMARY_MISFIRE
    assert str(jobs["summary"].trigger.fields[5]) == "7"  # hour, Bangkok
    no_coordinator = build_scheduler(Jobs(), load_settings("none.toml"))
    assert "summary" not in {job.id for job in no_coordinator.get_jobs()}


def test_the_daily_summary_key_is_the_date_its_mail_speaks_of(tmp_path, imap_user, smtp_server):
    """Under INTAKE_NOW (the demo's 20 January 2024) the dedupe key names that day, not today."""
    imap, _ = imap_user
    settings = _settings(
        tmp_path, imap, smtp_server.smtp_settings(), coordinator_address="coordinator@moi.example"
    )
    assert queue_daily_summary(open_services(settings)) is True
    [(key, subject, raw)] = rows(
        settings.effective_database_url,
        "select dedupe_key, subject, raw from outbox where kind = 'summary'",
    )
    assert key == "summary:2024-01-20" and "20 มกราคม 2567" in subject
    # no roster address yet: the coordinator reads that no reminder reaches anyone, and the fix
    text = (
        email.message_from_bytes(bytes(raw), policy=email.policy.default)
        .get_body(preferencelist=("plain",))
        .get_content()
    )
    assert "หน่วยที่ยังไม่มีอีเมลที่ยืนยันแล้ว 94 หน่วย" in text
    assert "senders/addresses.csv" in text and "intake review add-address SENDER ADDRESS" in text
