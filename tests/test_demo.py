"""The demo (`make demo` runs `python -m intake.demo`): the real command, nothing from outside."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.intake_env import REPO


def test_the_demo_runs_the_whole_job_and_shows_the_results(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    data_dir = tmp_path / "var-demo"
    result = subprocess.run(
        [sys.executable, "-m", "intake.demo", "--data-dir", str(data_dir)],
        cwd=REPO, env={**env, "COLUMNS": "160"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "The inbox: 8 messages" in out
    assert "took in 8 messages" in out
    assert "answered" in out and "after it arrived" in out  # IMAP IDLE, timed
    assert "What went out: 10 mails" in out  # 6 acks, 3 correction requests, 1 summary
    # waiting: the question from an unknown address, and Lamphun's corrected form from a Gmail
    # address no roster lists (it counts provisionally until the coordinator confirms it)
    assert "Summary: 94 expected · 6 accepted · 1 needs correction · 87 missing · 2 waiting" in out
    assert "ทั้งหมด 94" in out  # the coordinator's Rich table
    assert "2567-0006" in out  # Lamphun's receipt after its correction
    assert (data_dir / "consolidated.xlsx").stat().st_size > 0
    assert (data_dir / "intake.db").exists()
    assert len(list((data_dir / "archive").rglob("*.eml"))) == 9
    log = (data_dir / "worker.log").read_text(encoding="utf-8")
    assert "event=worker.active" in log and "event=idle.new_mail" in log
    assert "demo-app-password" not in log


def test_the_dev_mail_server_serves_the_sample_mail_and_stops_on_sigterm(tmp_path):
    """`python -m intake.devmail --seed` (the compose file's dev profile)."""
    import signal
    import time

    from imapclient import IMAPClient

    from tests.servers import free_port

    imap_port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env |= {"INTAKE_IMAP__USERNAME": "intake", "INTAKE_IMAP__PASSWORD": "dev-secret-1"}
    log = (tmp_path / "devmail.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "intake.devmail", "--imap-port", str(imap_port),
         "--smtp-port", str(smtp_port), "--seed"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "sample messages" not in (tmp_path / "devmail.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "devmail.log"
            ).read_text()
            time.sleep(0.1)
        with IMAPClient("127.0.0.1", port=imap_port, ssl=False, timeout=10) as client:
            client.login("intake", "dev-secret-1")
            assert client.select_folder("INBOX")[b"EXISTS"] == 8
            assert b"IDLE" in client.capabilities() and b"MOVE" in client.capabilities()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        log.close()
    assert code == 0
