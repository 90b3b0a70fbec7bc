"""Smoke tests of the test servers themselves (tests/servers.py)."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.servers import PostgresServer, SmtpServer

ROOT = Path(__file__).resolve().parent.parent


def thai_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "ศูนย์ประสานข้อมูล <intake@example.test>"
    msg["To"] = "จังหวัดน่าน <nan@example.go.th>"
    msg["Subject"] = "ได้รับแบบรายงานแล้ว รหัส ABC-123"
    msg.set_content("เรียน จังหวัดน่าน\n\nได้รับแบบรายงานของท่านแล้ว\n", cte="8bit")
    return msg


def test_smtp_server_receives_a_thai_utf8_message(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        client.send_message(thai_message())
    (mail,) = smtp_server.wait_for(1)
    assert mail.mail_from == "intake@example.test"
    assert mail.rcpt_tos == ["nan@example.go.th"]
    assert mail.message["Subject"] == "ได้รับแบบรายงานแล้ว รหัส ABC-123"
    assert str(mail.message["To"]) == "จังหวัดน่าน <nan@example.go.th>"
    assert "ได้รับแบบรายงานของท่านแล้ว" in mail.message.get_content()
    assert "ได้รับแบบรายงานของท่านแล้ว".encode() in mail.raw


def test_smtp_fail_next_answers_the_next_data_then_accepts(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next("451 4.3.0 try later")
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.send_message(thai_message())
        assert caught.value.smtp_code == 451
        assert smtp_server.messages == []
        client.send_message(thai_message())
    assert len(smtp_server.wait_for(1)) == 1
    assert smtp_server.data_attempts == 2


def test_smtp_fail_next_permanent_failure_several_times(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next("550 5.1.1 no such user", times=2)
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as caught:
                client.send_message(thai_message())
            assert caught.value.smtp_code == 550
        client.send_message(thai_message())
    assert len(smtp_server.wait_for(1)) == 1
    settings = smtp_server.smtp_settings()
    assert (settings.host, settings.effective_port(), settings.security) == (
        "127.0.0.1",
        smtp_server.port,
        "none",
    )


def test_smtp_wait_for_fails_when_nothing_arrives(smtp_server: SmtpServer) -> None:
    with pytest.raises(AssertionError, match="expected 1 message"):
        smtp_server.wait_for(1, timeout=0.2)


def test_postgres_accepts_a_psycopg_connection(postgres: PostgresServer) -> None:
    name = postgres.create_database()
    try:
        with postgres.connect(name) as conn:
            row = conn.execute("SELECT current_database(), current_setting('server_encoding')")
            assert row.fetchone() == (name, "UTF8")
        engine = sa.create_engine(postgres.url(name))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 'กรุงเทพ'::text")).scalar() == "กรุงเทพ"
        engine.dispose()
    finally:
        postgres.drop_database(name)


@pytest.mark.parametrize("round_", [1, 2])
def test_database_url_is_a_fresh_database_each_time(database_url: str, round_: int) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            assert not sa.inspect(conn).has_table("fixture_probe")  # nothing from other tests
            conn.execute(sa.text("CREATE TABLE fixture_probe (n INTEGER)"))
            conn.execute(sa.text("INSERT INTO fixture_probe VALUES (:n)"), {"n": round_})
    finally:
        engine.dispose()


_HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.servers import {cls}
server = {cls}().start()
print(server.port, server.dir, server._proc.pid, flush=True)
time.sleep(120)
"""


def _live_pids(pgid: int | None = None, pid: int | None = None) -> list[int]:
    """Processes (zombies excluded) in process group `pgid`, or `pid` itself if alive."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state ppid pgrp ...
        state, pgrp = fields[0], int(fields[2])
        if state == "Z":
            continue
        if (pgid is not None and pgrp == pgid) or (pid is not None and int(entry.name) == pid):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("cls", ["DovecotServer", "PostgresServer"])
def test_servers_die_with_the_process_that_started_them(cls: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER.format(root=str(ROOT), cls=cls)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    directory = ""
    try:
        assert holder.stdout is not None
        port_text, directory, pid_text = holder.stdout.readline().split()
        port, pid = int(port_text), int(pid_text)
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # it is up
        # Dovecot runs in a process group of its own (master, login, imap, ...)
        group = pid if cls == "DovecotServer" else None
        assert pid in _live_pids(group, pid)
        holder.send_signal(signal.SIGKILL)  # no cleanup code runs in the holder
        holder.wait(5)
        deadline = time.monotonic() + 15
        while _live_pids(group, pid):
            if time.monotonic() > deadline:
                pytest.fail(f"{cls}: processes {_live_pids(group, pid)} outlived their parent")
            time.sleep(0.1)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
        if directory.startswith("/tmp/"):
            shutil.rmtree(directory, ignore_errors=True)
