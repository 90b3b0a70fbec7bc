"""`intake run` as a real process against real Dovecot and aiosmtpd: IDLE answers within seconds,
the IMAP server going away loses nothing, two workers never both act, SIGTERM mid-cycle then a
restart handles every message exactly once, a refused login never shows the password."""

from __future__ import annotations

import json
import time

import pytest

from intake.bootstrap import open_services
from intake.cycle import run_cycle
from intake.errors import MailboxUnavailable
from intake.settings import load_settings
from storage.session import migrate
from tests.intake_env import CONFIG_DIR, IntakeRunner, settings_env
from tests.test_pipeline_e2e import _fill_mailbox
from tests.worker_env import ON_TIME, WorkerProcess, province_mail, rows, wait_until


@pytest.fixture
def sqlite_env(tmp_path, imap_user, smtp_server):  # type: ignore[no-untyped-def]
    imap, user = imap_user
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    env = settings_env(tmp_path, url, imap, smtp_server.smtp_settings())
    return env, user, smtp_server, url, tmp_path


def test_mail_appended_while_the_worker_idles_is_answered_within_seconds(sqlite_env):
    env, user, smtp, url, tmp = sqlite_env
    worker = WorkerProcess.start(env, tmp / "worker.log")
    try:
        worker.wait_for_log(r"event=idle\.listening")
        worker.wait_for_log(r"event=cycle\.done")
        time.sleep(0.5)  # well inside IDLE now; the interval poll is 300 s away
        appended = time.monotonic()
        user.append(province_mail(0), ON_TIME)
        [reply] = smtp.wait_for(1, timeout=10)
        elapsed = time.monotonic() - appended
        assert elapsed < 10, elapsed
        assert reply.rcpt_tos == ["saraban@chiangmai.go.th"]
        worker.wait_for_log(r"event=message\.handled id=1 message_id=w0@chiangmai\.go\.th")
        assert "senders=TH-50" in worker.log
    finally:
        code = worker.terminate()
    assert code == 0
    assert "event=worker.stopped" in worker.log
    assert rows(url, "select count(*) from lease") == [(0,)]  # released on the way out
    health = json.loads((tmp / "var" / "health.json").read_text())
    assert health["last_success_at"] and health["outbox"] == {"sent": 1}


def test_the_imap_server_going_away_loses_nothing_and_the_worker_recovers(sqlite_env, dovecot):
    env, user, smtp, url, tmp = sqlite_env
    worker = WorkerProcess.start(env, tmp / "worker.log")
    try:
        worker.wait_for_log(r"event=idle\.listening")
        user.append(province_mail(0), ON_TIME)
        smtp.wait_for(1, timeout=10)
        dovecot.crash()  # connections drop without a BYE
        worker.wait_for_log(r"event=idle\.disconnected")
        time.sleep(1.0)
        dovecot.start()
        user.append(province_mail(1), ON_TIME)  # arrives while the worker reconnects
        smtp.wait_for(2, timeout=30)
        worker.wait_for_log(r"event=idle\.reconnected")
        time.sleep(0.5)
    finally:
        assert worker.terminate() == 0
    assert len(smtp.messages) == 2
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
        "saraban@chiangmai.go.th", "saraban@lamphun.go.th",
    ]  # fmt: skip
    assert rows(url, "select state, count(*) from message group by state") == [("done", 2)]


def test_a_fetch_failing_mid_batch_resumes_from_the_cursor_without_loss(
    tmp_path, dovecot, imap_user, smtp_server
):
    """The server dies after two of five messages were fetched (one UID FETCH per message):
    the next cycle starts from the cursor; every message is taken in and answered once."""
    imap, user = imap_user
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    settings = load_settings(
        tmp_path / "none.toml", database_url=url, data_dir=tmp_path / "var",
        config_dir=CONFIG_DIR,
        imap=imap.model_copy(update={"batch_size": 1}), smtp=smtp_server.smtp_settings(),
    )  # fmt: skip
    svc = open_services(settings)
    _fill_mailbox(user)

    def crash_after_two(stage: str, done: int, total: int) -> None:
        if stage == "fetch" and done == 2:
            dovecot.crash()

    try:
        with pytest.raises(MailboxUnavailable):
            run_cycle(svc, progress=crash_after_two)
    finally:
        dovecot.start()
    assert rows(url, "select last_uid from mailbox_cursor") == [(2,)]
    assert rows(url, "select count(*), max(state) from message") == [(2, "received")]
    assert len(smtp_server.messages) == 0
    report = run_cycle(svc)
    assert report.fetched == 3 and report.processed == 5
    assert len(smtp_server.messages) == 5
    assert rows(url, "select state, count(*) from message group by state") == [("done", 5)]
    assert rows(url, "select consecutive_failures from worker_status") == [(0,)]
    assert all("$IntakeDone" in user.flags(uid) for uid in user.uids())


def test_two_workers_started_at_once_one_acts_and_the_other_takes_over(
    tmp_path, database_url, imap_user, smtp_server
):
    imap, user = imap_user
    env = settings_env(tmp_path, database_url, imap, smtp_server.smtp_settings())
    _fill_mailbox(user)
    workers = [WorkerProcess.start(env, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        smtp_server.wait_for(5, timeout=30)
        for w in workers:
            w.wait_for_log(r"event=worker\.(active|standby)")
        active = [w for w in workers if "event=worker.active" in w.log]
        standby = [w for w in workers if "event=worker.standby" in w.log]
        assert len(active) == 1 and len(standby) == 1, [w.log[-2000:] for w in workers]
        assert "event=cycle.start" not in standby[0].log
        [(holder,)] = rows(database_url, "select holder from lease")
        assert f":{active[0].proc.pid}:" in holder
        time.sleep(1.0)
        assert len(smtp_server.messages) == 5  # one reply per message, not two
        active[0].kill()  # crashes: no release; its pid is gone, so the lease is taken at once
        standby[0].wait_for_log(r"event=worker\.active", timeout=15)
        user.append(province_mail(3), ON_TIME)
        smtp_server.wait_for(6, timeout=15)
        time.sleep(0.5)
    finally:
        codes = [w.terminate() for w in workers]
    assert codes[workers.index(standby[0])] == 0
    assert len(smtp_server.messages) == 6
    assert rows(database_url, "select count(*) from outbox") == [(6,)]
    assert "event=lease.taken_over" in standby[0].log


def test_sigterm_mid_cycle_then_a_restart_handles_every_message_exactly_once(sqlite_env):
    env, user, smtp, url, tmp = sqlite_env
    count = 12
    uids = [user.append(province_mail(n), ON_TIME) for n in range(count)]
    first = WorkerProcess.start(env, tmp / "first.log")
    try:
        first.wait_for_log(r"event=cycle\.step stage=process done=1 ")
    finally:
        code = first.terminate()
    assert code == 0
    assert "event=cycle.interrupted" in first.log and "event=worker.stopped" in first.log
    handled = rows(url, "select count(*) from message where state <> 'received'")[0][0]
    assert handled < count  # it really stopped part way
    second = WorkerProcess.start(env, tmp / "second.log")
    try:
        smtp.wait_for(count, timeout=40)
        second.wait_for_log(r"event=cycle\.done")
        time.sleep(0.5)
    finally:
        assert second.terminate() == 0
    assert len(smtp.messages) == count
    assert len({m.rcpt_tos[0] for m in smtp.messages}) == count
    assert rows(url, "select count(*) from message where state = 'done'") == [(count,)]
    assert rows(url, "select count(*) from submission") == [(count,)]
    assert all("$IntakeDone" in user.flags(uid) for uid in uids)


def test_a_refused_login_never_logs_the_password_and_alerts_the_coordinator_once(sqlite_env):
    env, user, smtp, url, tmp = sqlite_env
    secret = "Wrong-Secret-Pw9"
    worker = WorkerProcess.start(
        env, tmp / "worker.log",
        INTAKE_IMAP__PASSWORD=secret, INTAKE_WORKER__ALERT_AFTER="2",
        INTAKE_WORKER__COORDINATOR_ADDRESS="coordinator@moi.example",
    )  # fmt: skip
    try:
        worker.wait_for_log(r"event=cycle\.failed")
        [alert] = smtp.wait_for(1, timeout=15)
        worker.wait_for_log(r"event=worker\.alert", timeout=5)
        time.sleep(2)  # two more health checks: still one alert for this outage
        status = IntakeRunner(env)("status", check=False, INTAKE_WORKER__ALERT_AFTER="2")
    finally:
        assert worker.terminate() == 0
    assert "refused the login" in worker.log
    assert secret not in worker.log and secret not in alert.raw.decode(errors="replace")
    assert len(smtp.messages) == 1
    assert alert.rcpt_tos == ["coordinator@moi.example"]
    assert alert.message["X-Intake-Kind"] == "alert"
    assert alert.message["Auto-Submitted"] == "auto-generated"
    assert "ตรวจกล่องจดหมาย" in alert.message.get_body(preferencelist=("plain",)).get_content()
    assert status.returncode == 5, status.stdout + status.stderr
    assert "UNHEALTHY" in status.stdout and secret not in status.stdout
    wait_until(lambda: rows(url, "select count(*) from lease") == [(0,)], 5, "lease released")
