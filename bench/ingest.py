"""Ingest benchmark: `intake poll --once` over a backlog of N submissions vs the floor.

    python bench/ingest.py --n 2000 [--database postgresql] [--profile ingest.speedscope.json]

The floor is what any reader of this mailbox must do at least: a plain imapclient
`UID FETCH BODY.PEEK[]` of the same messages (same batch size) plus an openpyxl load
(read_only, data_only, every row iterated) of the same forms, what a user's own script would
cost. A second floor takes python-calamine for the reading instead (every sheet to Python
lists, no checks): what the hardware allows. The ratio to both is printed. The run is end to end: the
real command against a real Dovecot, an aiosmtpd server and SQLite or PostgreSQL.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from io import BytesIO
from pathlib import Path

from common import (
    base_forms,
    intake_args,
    line,
    load,
    run_child,
    submission,
    vary,
)
from openpyxl import load_workbook
from readers import calamine_values
from sqlalchemy import create_engine, func, select

from storage.models import Submission
from tests.intake_env import settings_env
from tests.servers import DovecotServer, PostgresServer, SmtpServer


def fill(user, n: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Append n submissions over one IMAP connection; returns the forms (for the floor)."""
    bases = base_forms()
    forms = []
    with user.client(timeout=60) as client:
        for i in range(n):
            form = vary(bases[i % len(bases)], i)
            client.append("INBOX", submission(i, form))
            forms.append(form)
    return forms


def floor(user, forms: list[bytes], batch: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Seconds for the plain fetch, the plain openpyxl reading and the plain calamine one."""
    start = time.perf_counter()
    with user.client(timeout=60) as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        size = 0
        for at in range(0, len(uids), batch):
            data = client.fetch(uids[at : at + batch], ["BODY.PEEK[]", "INTERNALDATE"])
            size += sum(len(item[b"BODY[]"]) for item in data.values())
    fetch_s = time.perf_counter() - start
    start = time.perf_counter()
    cells = 0
    for form in forms:
        wb = load_workbook(BytesIO(form), read_only=True, data_only=True)
        for ws in wb.worksheets:
            for row in ws.iter_rows(values_only=True):
                cells += len(row)
        wb.close()
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    for form in forms:
        cells += calamine_values(form)
    calamine_s = time.perf_counter() - start
    line("floor_bytes_fetched", size, "B")
    return fetch_s, read_s, calamine_s


def measure_floor(user, forms: list[bytes], batch: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(openpyxl floor, calamine floor) in seconds, each with the same fetch."""
    fetch_s, read_s, calamine_s = floor(user, forms, batch)
    line("floor_fetch", fetch_s, f"s ({load()})")
    line("floor_openpyxl", read_s, "s")
    line("floor_total", fetch_s + read_s, "s")
    line("floor_rate", len(forms) / (fetch_s + read_s), "messages/s")
    line("floor_calamine", calamine_s, "s")
    line("floor_calamine_total", fetch_s + calamine_s, "s")
    return fetch_s + read_s, fetch_s + calamine_s


def count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(Submission)).scalar_one()
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--batch", type=int, default=50, help="imap.batch_size, floor too")
    parser.add_argument("--profile", help="record the poll under py-spy to this file instead")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (memory runs)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    dovecot, smtp, pg = DovecotServer().start(), SmtpServer().start(), None
    try:
        user = dovecot.user()
        if args.database == "postgresql":
            pg = PostgresServer().start()
            url = pg.url(pg.create_database())
        else:
            url = f"sqlite:///{tmp / 'intake.db'}"
        env = settings_env(tmp, url, user.settings(), smtp.smtp_settings())
        env["INTAKE_IMAP__BATCH_SIZE"] = str(args.batch)
        env["INTAKE_IMAP__TIMEOUT"] = "120"

        start = time.perf_counter()
        forms = fill(user, args.n)
        line("append_seconds", time.perf_counter() - start, "s")
        form_kb = sum(len(f) for f in forms) / len(forms) / 1024
        line("form_size_mean", form_kb, "KB")

        floor_s, calamine_s = (
            (None, None) if args.no_floor else measure_floor(user, forms, args.batch)
        )
        del forms

        upgrade = run_child(intake_args("db", "upgrade"), env)
        assert upgrade.returncode == 0, upgrade.stderr
        before = load()
        run = run_child(intake_args("poll", "--once"), env, args.profile)
        if run.returncode != 0:
            raise SystemExit(f"intake poll failed ({run.returncode}):\n{run.stderr[-3000:]}")
        stored = count(url)
        replies = len(smtp.messages)
        line("poll_output", " ".join(run.stdout.split()))
        line("intake_poll", run.seconds, f"s ({before} before, {load()} after)")
        line("intake_rate", args.n / run.seconds, "messages/s")
        line("submissions_stored", stored)
        line("replies_received_by_smtp", replies)
        vs_floor = "no floor"
        if floor_s and calamine_s:
            line("ratio_to_floor", run.seconds / floor_s, "(target <= 1.3)")
            line("ratio_to_calamine_floor", run.seconds / calamine_s, "(aim <= 2)")
            vs_floor = (
                f"floor {args.n / floor_s:.1f} msg/s, ratio {run.seconds / floor_s:.2f}, "
                f"calamine floor {args.n / calamine_s:.1f} msg/s, "
                f"ratio {run.seconds / calamine_s:.2f}"
            )
        if not args.profile:
            line("peak_rss", run.max_rss_mb, "MB (target < 150)")
        print(
            f"SUMMARY ingest n={args.n} db={args.database}: {args.n / run.seconds:.1f} msg/s, "
            f"{vs_floor}, peak RSS {run.max_rss_mb:.0f} MB, stored {stored}, replies {replies}"
        )
    finally:
        smtp.stop()
        dovecot.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # archive and database: up to GBs at N=10,000


if __name__ == "__main__":
    main()
