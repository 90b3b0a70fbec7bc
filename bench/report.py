"""Report benchmark: `intake report --format json` with the letter's 94 senders and with a
synthetic roster of 10,000 senders and 30,000 submissions.

    python bench/report.py [--database postgresql] [--senders 10000] [--per-sender 3]

Figures: the command's wall time (median of --repeat runs) and the same minus interpreter and
import start-up (`python -c "import intake.cli"`, measured here too); in-process, the roster
sync done at every start (`open_services`) and `build_report` + JSON dump. The database is
seeded directly with SQLAlchemy bulk inserts (message, submission).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import REPO, intake_args, interpreter_start, line, load, run_child
from sqlalchemy import create_engine, insert, select

from storage.models import Message, MessageOutcome, MessageState, Sender, Submission
from tests.intake_env import settings_env
from tests.servers import PostgresServer

STATUSES = ("valid", "invalid")


def synthetic_config(tmp: Path, senders: int) -> Path:
    """A copy of config/ whose provinces.csv names `senders` senders in the real clusters."""
    config = tmp / "config"
    shutil.copytree(REPO / "config", config)
    clusters = [
        row["cluster_id"] for row in csv.DictReader((config / "senders/clusters.csv").open())
    ]
    with (config / "senders/provinces.csv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["code", "name_th", "name_en", "cluster_id", "aliases_th", "aliases_en"])
        for i in range(senders - len(clusters)):
            out.writerow([f"X-{i:05d}", f"องค์การบริหารส่วนตำบลที่ {i}", f"Local government {i}",
                          clusters[i % len(clusters)], f"อบต.{i}", ""])  # fmt: skip
    return config


def seed(url: str, per_sender: int) -> int:
    """About per_sender submissions per sender (one in ten sends none, one in ten twice as many;
    the last version valid for two thirds), each with its message."""
    engine = create_engine(url)
    base = datetime(2024, 1, 10, 3, 0, tzinfo=UTC)
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(select(Sender.id).where(Sender.expected.is_(True)))]
        messages, submissions = [], []
        n = 0
        for k, sender_id in enumerate(ids):
            if k % 10 == 9:
                continue  # missing
            versions = per_sender * (2 if k % 10 == 0 else 1)  # makes up for the missing ones
            for v in range(1, versions + 1):
                n += 1
                at = base + timedelta(minutes=n)
                messages.append({
                    "id": n, "sha256": f"{n:064x}", "message_id_header": f"m{n}@bench",
                    "archive_path": f"x/{n}.eml", "size": 40_000, "source": "imap",
                    "received_at": at, "state": MessageState.DONE,
                    "outcome": MessageOutcome.SUBMISSION, "from_address": f"s{k}@bench.go.th",
                    "subject": "ส่งแบบฟอร์ม", "attempts": 0,
                })  # fmt: skip
                valid = v == versions and k % 3 != 2
                submissions.append({
                    "sender_id": sender_id, "message_id": n, "version": v,
                    "status": "valid" if valid else "invalid", "received_at": at, "late": False,
                    "receipt": f"2567-{n:06d}" if valid else None, "entity_name": sender_id,
                    "header_extra": {},
                })  # fmt: skip
        conn.execute(insert(Message), messages)
        conn.execute(insert(Submission), submissions)
    engine.dispose()
    return n


def in_process(env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median seconds of open_services (roster sync) and of build_report + to_json."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        from intake import reports
        from intake.bootstrap import open_services
        from intake.settings import load_settings
        from storage.session import session_scope

        opens, builds = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            svc = open_services(load_settings())
            opens.append(time.perf_counter() - start)
            start = time.perf_counter()
            with session_scope(svc.factory) as session:
                data = reports.build_report(session, svc.settings.deadline, svc.clock.now())
            reports.to_json(data)
            builds.append(time.perf_counter() - start)
            svc.factory.kw["bind"].dispose()
        return sorted(opens)[repeat // 2], sorted(builds)[repeat // 2]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def scenario(name: str, url: str, tmp: Path, config: Path | None, args: argparse.Namespace,
             startup: float) -> None:  # fmt: skip
    env = settings_env(tmp, url)
    if config is not None:
        (tmp / "intake.toml").write_text(f'config_dir = "{config}"\n', encoding="utf-8")
    assert run_child(intake_args("db", "upgrade"), env).returncode == 0
    first = run_child(intake_args("report", "--format", "json"), env)  # syncs the roster
    assert first.returncode == 0, first.stderr
    count = seed(url, args.per_sender)
    runs = []
    for _ in range(args.repeat):
        run = run_child(intake_args("report", "--format", "json"), env)
        assert run.returncode == 0, run.stderr
        runs.append(run)
    wall = sorted(r.seconds for r in runs)[len(runs) // 2]
    opened, built = in_process(env, args.repeat)
    target = 0.05 if name == "94" else 1.0
    line(f"{name}_submissions", count)
    line(f"{name}_command_wall", wall, f"s ({load()})")
    line(f"{name}_command_own_work", wall - startup, f"s (wall - start-up; target < {target})")
    line(f"{name}_open_services_with_roster_sync", opened, "s")
    line(f"{name}_build_report_and_json", built, "s")
    line(f"{name}_peak_rss", max(r.max_rss_mb for r in runs), "MB")
    print(f"SUMMARY report {name} senders db={args.database}: command {wall * 1000:.0f} ms, "
          f"own work {(wall - startup) * 1000:.0f} ms (target < {target * 1000:.0f}), "
          f"sync {opened * 1000:.0f} ms, build+json {built * 1000:.0f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--senders", type=int, default=10_000)
    parser.add_argument("--per-sender", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    startup = interpreter_start()
    line("interpreter_start_import_intake_cli", startup, f"s ({load()})")
    pg = PostgresServer().start() if args.database == "postgresql" else None
    try:
        for name, senders in (("94", None), (str(args.senders), args.senders)):
            tmp = Path(tempfile.mkdtemp(prefix=f"bench-report-{name}-"))
            url = pg.url(pg.create_database()) if pg else f"sqlite:///{tmp / 'intake.db'}"
            config = synthetic_config(tmp, senders) if senders else None
            scenario(name, url, tmp, config, args, startup)
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
