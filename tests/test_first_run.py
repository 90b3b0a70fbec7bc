"""A first run without surprises: each mistake a new operator makes, through the real `intake`
command (a subprocess, as a shell runs it), ends in exactly one line on stderr that says what to
fix (naming the setting by its INTAKE_ variable), no traceback, and the exit code the README
documents. Real Dovecot and aiosmtpd where the mistake is about a server."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest

from intake.cli import EXIT_CONFIG, EXIT_MAILBOX
from tests.forms.builders import filled_form_bytes
from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_submission
from tests.servers import DovecotServer, free_port

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def one_error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line on stderr, after checking the exit code and that nothing else was said."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "pydantic.dev" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def intake(tmp_path) -> IntakeRunner:
    return IntakeRunner(settings_env(tmp_path, f"sqlite:///{tmp_path}/intake.db"))


def test_a_bad_deadline_names_its_variable(intake):
    line = one_error_line(intake("db", "upgrade", check=False, INTAKE_DEADLINE="tomorrow"),
                          EXIT_CONFIG)  # fmt: skip
    assert line.startswith("error: INTAKE_DEADLINE: expected an ISO 8601 date-time with offset")
    assert line.endswith("got 'tomorrow'")


def test_a_bad_imap_port_names_its_variable(intake):
    line = one_error_line(intake("poll", "--once", check=False, INTAKE_IMAP__PORT="imap"),
                          EXIT_CONFIG)  # fmt: skip
    assert line == "error: INTAKE_IMAP__PORT: expected a whole number, got 'imap'"
    line = one_error_line(intake("poll", "--once", check=False, INTAKE_IMAP__PORT="99300"),
                          EXIT_CONFIG)  # fmt: skip
    assert line == "error: INTAKE_IMAP__PORT: expected a port number from 1 to 65535, got '99300'"


def test_a_bad_value_in_the_settings_file_names_the_key_the_file_and_the_variable(intake, tmp_path):
    toml = tmp_path / "intake.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + '[smtp]\nsecurity = "tls"\n', "utf-8")
    line = one_error_line(intake("config", check=False), EXIT_CONFIG)
    assert line == (f"error: smtp.security in {toml} (or INTAKE_SMTP__SECURITY): "
                    "expected 'ssl', 'starttls' or 'none', got 'tls'")  # fmt: skip


def test_a_secret_is_never_echoed_back(intake):
    line = one_error_line(intake("config", check=False, INTAKE_WEB__TOKEN="x", INTAKE_WEB__PORT="p"),
                          EXIT_CONFIG)  # fmt: skip
    assert "INTAKE_WEB__PORT" in line
    bad_url = "postgresql+psycopg://intake:s3cret-pw@127.0.0.1:1/intake"
    line = one_error_line(intake("report", check=False, INTAKE_DATABASE_URL=bad_url), EXIT_CONFIG)
    assert "s3cret-pw" not in line and "intake:***@127.0.0.1:1/intake" in line


def test_a_missing_config_file_is_an_error_not_the_defaults(intake, tmp_path):
    missing = tmp_path / "nope.toml"
    line = one_error_line(intake("--config", str(missing), "config", check=False), EXIT_CONFIG)
    assert line == f"error: --config: no such settings file: {missing}"
    line = one_error_line(intake("config", check=False, INTAKE_CONFIG=str(missing)), EXIT_CONFIG)
    assert line == f"error: INTAKE_CONFIG: no such settings file: {missing}"


def test_a_bad_database_url_is_one_line(intake):
    line = one_error_line(intake("db", "upgrade", check=False, INTAKE_DATABASE_URL="intake.db"),
                          EXIT_CONFIG)  # fmt: skip
    assert line.startswith("error: INTAKE_DATABASE_URL: not a database URL")
    line = one_error_line(intake("report", check=False, INTAKE_DATABASE_URL="nonsense"),
                          EXIT_CONFIG)  # fmt: skip
    assert line.startswith("error: INTAKE_DATABASE_URL: not a database URL")
    refused = f"postgresql+psycopg://intake@127.0.0.1:{free_port()}/intake"
    line = one_error_line(intake("report", check=False, INTAKE_DATABASE_URL=refused), EXIT_CONFIG)
    assert "(INTAKE_DATABASE_URL)" in line and "Connection refused" in line


@pytest.fixture
def mail_env(tmp_path, imap_user, smtp_server):  # type: ignore[no-untyped-def]
    imap, user = imap_user
    runner = IntakeRunner(settings_env(tmp_path, f"sqlite:///{tmp_path}/intake.db", imap,
                                       smtp_server.smtp_settings()))  # fmt: skip
    runner("db", "upgrade")
    return runner, user, imap


def test_a_wrong_imap_password_shows_the_servers_words_decoded(mail_env):
    intake, _, imap = mail_env
    proc = intake("poll", "--once", check=False, INTAKE_IMAP__PASSWORD="wrong-secret-xyz")
    line = one_error_line(proc, EXIT_MAILBOX)
    assert f"refused the login of {imap.username!r}" in line
    assert "Authentication failed" in line
    assert not re.search(r"(^|[\s(:\[])b['\"]", line)  # the reply, not a bytes repr (b'...')
    assert "INTAKE_IMAP__PASSWORD" in line and "wrong-secret-xyz" not in proc.stderr + proc.stdout


def test_an_unreachable_imap_port_is_one_line(mail_env):
    intake, _, _ = mail_env
    port = str(free_port())  # nothing listens: refused at once, tried 3 times, said once
    line = one_error_line(intake("poll", "--once", check=False, INTAKE_IMAP__PORT=port),
                          EXIT_MAILBOX)  # fmt: skip
    assert f"127.0.0.1:{port}" in line and "ConnectionRefusedError" in line


def test_smtp_without_auth_is_said_so_after_what_the_poll_did(mail_env):
    """aiosmtpd as the tests start it offers no AUTH: a username set for it cannot log in. The
    mail was taken in, decided and filed; the poll says that on stdout, then why no reply went."""
    intake, user, _ = mail_env
    user.append(build_submission(
        subject="ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่", from_="saraban@chiangmai.go.th",
        to="jpp.moi9999@gmail.com", body="ขอส่งข้อมูลตามหนังสือ ว ๓๐๒\n",
        attachments=[("form.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)],
        message_id="<first-run-1@chiangmai.go.th>",
    ))  # fmt: skip
    proc = intake("poll", "--once", check=False, INTAKE_SMTP__USERNAME="intake",
                  INTAKE_SMTP__PASSWORD="smtp-secret-1")  # fmt: skip
    line = one_error_line(proc, EXIT_MAILBOX)
    assert "does not offer AUTH" in line and "cannot reach" not in line
    assert "INTAKE_SMTP__SECURITY" in line and "replies wait in the outbox" in line
    assert proc.stdout.startswith("before the error: fetched 1 (new 1), processed 1")
    assert "filed 1" in proc.stdout and "replies sent 0" in proc.stdout


def test_every_command_logs_in_the_configured_format(mail_env):
    intake, user, _ = mail_env
    user.append(build_submission(subject="สอบถาม", from_="citizen@example.test",
                                 to="jpp.moi9999@gmail.com", body="สอบถามครับ\n",
                                 message_id="<first-run-2@example.test>"))  # fmt: skip
    kv = intake("-v", "poll", "--once").stderr.splitlines()
    assert kv and all(line.startswith("ts=") and " level=" in line for line in kv), kv
    assert any("event=cycle.done" in line for line in kv)
    as_json = intake("-v", "poll", "--once", INTAKE_WORKER__LOG_FORMAT="json").stderr.splitlines()
    events = [json.loads(line) for line in as_json]  # every line is one JSON object
    assert "cycle.done" in {e.get("event") for e in events}


@pytest.fixture
def private_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot of this test's own, to crash mid-poll."""
    server = DovecotServer().start()
    yield server
    server.stop()


def test_a_poll_that_fails_mid_fetch_says_what_it_took_in_first(
    tmp_path, private_dovecot, smtp_server, monkeypatch
):
    """The real app in-process (so the server can be crashed right after the first message is
    archived): the mail already taken in stays taken in, and the poll says so before the error."""
    from typer.testing import CliRunner

    from intake import cli, pipeline

    user = private_dovecot.user()
    for n in (1, 2, 3):
        user.append(build_submission(subject=f"สอบถาม {n}", from_="citizen@example.test",
                                     to="jpp.moi9999@gmail.com", body="สอบถามครับ\n",
                                     message_id=f"<first-run-crash-{n}@example.test>"))  # fmt: skip
    env = settings_env(tmp_path, f"sqlite:///{tmp_path}/intake.db", user.settings(),
                       smtp_server.smtp_settings())  # fmt: skip
    env["INTAKE_IMAP__BATCH_SIZE"] = "1"  # one message per FETCH: the second FETCH meets the crash
    IntakeRunner(env)("db", "upgrade")
    archive = pipeline.archive_message

    def archive_then_crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = archive(*args, **kwargs)
        if private_dovecot.running:
            private_dovecot.crash()
        return result

    monkeypatch.setattr(pipeline, "archive_message", archive_then_crash)
    cli.state.settings, cli.state.config = None, None
    result = CliRunner().invoke(cli.app, ["poll", "--once"], env=env)
    cli.state.settings = None
    assert result.exit_code == EXIT_MAILBOX, (result.stdout, result.stderr)
    assert result.stdout.startswith("before the error: fetched 1 (new 1)"), result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: mailbox: IMAP"), result.stderr
    assert "Traceback" not in result.stderr
