"""`make demo`: the whole job on this machine, with nothing from outside.

    python -m intake.demo [--data-dir ./var-demo]

1. starts an IMAP server (pymap, in memory) and an SMTP server (aiosmtpd) on loopback ports;
2. puts province mail in the inbox (`intake.demo_mail`: valid forms, mistakes, a cluster lead's
   two forms, a PDF, an auto-reply, an unknown sender);
3. runs the real worker (`intake run`, in-process: lease, scheduler, IMAP IDLE) on a fresh SQLite
   database under the data dir until the inbox is drained;
4. delivers one more mail while the worker waits in IDLE, and times the answer;
5. shows what went out, the coordinator's report and where the consolidated workbook is.

"Now" is 20 January 2567 (`settings.now`), two days before the deadline, so the dates read as
they would have during the campaign.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from intake.bootstrap import open_services
from intake.demo_mail import SampleMail, corrected_lamphun, sample_mail
from intake.devmail import EmbeddedImap, EmbeddedSmtp, Received
from intake.packaged import default_config_dir
from intake.pipeline import Services
from intake.settings import Settings, load_settings
from storage import queries
from storage.session import migrate, session_scope

DEMO_NOW = "2024-01-20T10:00:00+07:00"
COORDINATOR = "coordinator@moi.example"


def demo_settings(data_dir: Path, imap: EmbeddedImap, smtp: EmbeddedSmtp) -> Settings:
    """Settings for the demo only: nothing from config/intake.toml, every server on loopback."""
    return load_settings(
        data_dir / "no-such-file.toml",
        data_dir=data_dir,
        database_url=f"sqlite:///{(data_dir / 'intake.db').resolve()}",
        config_dir=default_config_dir(),  # the built-in configuration, checkout or wheel
        imap=imap.settings(),
        smtp=smtp.settings(),
        now=datetime.fromisoformat(DEMO_NOW),
        worker={"coordinator_address": COORDINATOR, "poll_interval": 60.0, "lease_ttl": 30.0},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m intake.demo", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("var-demo"))
    args = parser.parse_args(argv)
    console = Console(width=None if Console().is_terminal else 120, highlight=False)
    data_dir: Path = args.data_dir
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    _configure_logs(data_dir / "worker.log")
    console.rule("[bold]intake demo — the e-mail intake service, all on this machine")
    with EmbeddedImap("jpp.moi9999@gmail.com", "demo-app-password") as imap, EmbeddedSmtp() as smtp:
        settings = demo_settings(data_dir, imap, smtp)
        console.print(
            f"1. Mail servers on loopback: IMAP 127.0.0.1:{imap.port} (pymap, in memory), "
            f"SMTP 127.0.0.1:{smtp.port} (aiosmtpd). Database: SQLite in {data_dir}/"
        )
        migrate(settings.effective_database_url)
        svc = open_services(settings)
        _roster_addresses(svc)
        mails = sample_mail(svc.spec)
        for mail in mails:
            imap.append(mail.raw, mail.received_at)
        _show_inbox(console, mails)
        _run_worker(console, svc, imap, smtp, len(mails))
        _show_replies(console, smtp.messages)
        _show_report(console, svc)
        _show_files(console, svc, data_dir)
    return 0


# The provinces' official addresses, as an operator puts them in config/senders/addresses.csv:
# their forms are verified. Lamphun writes from a Gmail address that no roster lists, so its
# corrected form counts provisionally and waits for the coordinator's confirmation.
DEMO_ROSTER = (
    ("TH-50", "saraban@chiangmai.go.th"),
    ("TH-57", "saraban@chiangrai.go.th"),
    ("north-upper-2", "saraban@chiangrai.go.th"),
    ("TH-55", "saraban@nan.go.th"),
    ("TH-40", "saraban@khonkaen.go.th"),
    ("TH-90", "saraban@songkhla.go.th"),
)


def _roster_addresses(svc: Services) -> None:
    from storage import queries

    with session_scope(svc.factory) as session:
        for sender_id, address in DEMO_ROSTER:
            queries.add_sender_address(session, sender_id, address, "config")


def _configure_logs(path: Path) -> None:
    import logging

    from intake import logs

    logs.configure(stream=path.open("a", encoding="utf-8"))
    for noisy in ("pymap", "mail.log", "alembic", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _show_inbox(console: Console, mails: list[SampleMail]) -> None:
    table = Table(title=f"2. The inbox: {len(mails)} messages from provinces", title_justify="left")
    for column in ("received", "from", "subject", "what it is"):
        table.add_column(column)
    for mail in mails:
        table.add_row(f"{mail.received_at:%d %b %H:%M}", mail.sender, mail.subject, mail.what)
    console.print(table)


def _run_worker(
    console: Console, svc: Services, imap: EmbeddedImap, smtp: EmbeddedSmtp, count: int
) -> None:
    from intake.summary import queue_daily_summary
    from intake.worker import Worker

    worker = Worker(svc, idle_chunk=2.0)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    started = time.monotonic()
    thread.start()
    drained = _wait(lambda: worker.cycles >= 1 and _handled(svc) >= count and not imap.count())
    took = time.monotonic() - started
    state = "took in" if drained else "did NOT finish (see worker.log):"
    console.print(
        f"3. The worker (`intake run`) {state} {_handled(svc)} messages in {took:.1f} s: each is "
        "archived raw, read, answered, and moved to intake/processed on the server."
    )
    sent_before = len(smtp.messages)
    late = corrected_lamphun(svc.spec)
    _wait(lambda: worker._idle is not None and worker._idle.listening.is_set(), 10)
    arrived = time.monotonic()
    imap.append(late.raw, late.received_at)
    answered = smtp.wait_for(sent_before + 1, 20)
    console.print(
        "4. While the worker waited (IMAP IDLE), Lamphun sent its corrected form: answered "
        + (f"{time.monotonic() - arrived:.1f} s after it arrived." if answered else "not yet (!)")
    )
    _wait(lambda: _handled(svc) >= count + 1, 10)
    queue_daily_summary(svc)  # dated by the demo clock (INTAKE_NOW), as its mail says
    worker.request_stop()
    thread.join(30)


def _wait(condition: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def _handled(svc: Services) -> int:
    with session_scope(svc.factory) as session:
        counts = queries.message_state_counts(session)
        outbox = queries.outbox_counts(session)
    if outbox.get("queued") or outbox.get("sending"):
        return 0
    return counts.get("done", 0) + counts.get("failed", 0)


def _show_replies(console: Console, messages: list[Received]) -> None:
    table = Table(
        title=f"5. What went out: {len(messages)} mails (aiosmtpd received them)",
        title_justify="left",
        show_lines=True,
    )
    for column in ("to", "kind", "subject", "first lines"):
        table.add_column(column, overflow="fold")
    for mail in messages:
        msg = mail.message
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        kind = msg.get("X-Intake-Kind", "-")
        table.add_row(", ".join(mail.rcpt_tos), kind, str(msg["Subject"]), _gist(kind, text))
    console.print(table)


def _gist(kind: str, text: str) -> str:
    """The lines of a mail that say what it is about (receipt, problems, counts)."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    if kind == "acknowledgement":
        chosen = [line for line in lines if " : " in line][:3]
    elif kind == "correction":
        problems = [line for line in lines if re.match(r"^\d+\)", line)]
        chosen = problems[:3] + ([f"… and {len(problems) - 3} more"] if len(problems) > 3 else [])
    elif kind == "summary":
        chosen = [line for line in lines if line.startswith("- ")][:5]
    else:
        chosen = lines[1:4]
    return "\n".join(line if len(line) <= 110 else line[:109] + "…" for line in chosen or lines[:3])


def _show_report(console: Console, svc: Services) -> None:
    from intake.report_table import render_table
    from intake.reports import build_report

    with session_scope(svc.factory) as session:
        report = build_report(session, svc.settings.deadline, svc.clock.now())
    s = report.summary
    console.rule("6. The coordinator's report (`intake report`)")
    render_table(console, report)
    console.print(
        f"Summary: {s['expected']} expected · {s['accepted']} accepted · "
        f"{s['needs_correction']} needs correction · {s['missing']} missing · "
        f"{len(report.review)} waiting for review",
        style="bold",
    )


def _show_files(console: Console, svc: Services, data_dir: Path) -> None:
    workbook = data_dir / "consolidated.xlsx"
    written = _write_workbook(svc, workbook)
    archived = len(list((data_dir / "archive").rglob("*.eml")))
    console.rule("7. Where things are")
    console.print(f"database            {data_dir / 'intake.db'} (SQLite)")
    console.print(f"raw mail archive    {data_dir / 'archive'} ({archived} .eml files)")
    if written:
        console.print(f"consolidated workbook {workbook}")
    else:
        console.print(
            f"consolidated workbook: run  INTAKE_DATA_DIR={data_dir} intake export "
            f"--output {workbook}"
        )
    console.print(f"worker log          {data_dir / 'worker.log'} (one line per event)")
    console.print(
        f"look around:        INTAKE_DATA_DIR={data_dir} INTAKE_NOW={DEMO_NOW} {_intake()} report"
    )


def _intake() -> str:
    """The `intake` of this interpreter, as a person can type it: `make demo` runs in .venv, whose
    bin directory is not on PATH unless the venv is activated."""
    here = Path(sys.executable).with_name("intake")
    found = shutil.which("intake")
    if found and Path(found).resolve() == here.resolve():
        return "intake"
    try:
        return str(here.relative_to(Path.cwd())) if here.exists() else "intake"
    except ValueError:
        return str(here)


def _write_workbook(svc: Services, path: Path) -> bool:
    """The committee's consolidated workbook, as `intake export` writes it."""
    from intake.export import write_consolidated

    with session_scope(svc.factory) as session:
        write_consolidated(
            session, svc.spec, path, deadline=svc.settings.deadline, now=svc.clock.now()
        )
    return path.exists()


if __name__ == "__main__":
    raise SystemExit(main())
