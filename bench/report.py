"""Report benchmark: `intake report --format json` with the letter's 94 senders and with a
synthetic roster of 10,000 senders and 30,000 submissions.

    python bench/report.py [--database postgresql] [--senders 10000] [--per-sender 3]

Figures per case, each the median of --repeat runs:
- `command_wall`: `python -m intake report --format json` as a child process;
- `baseline`: `python -c "import intake.cli"`, run alternately with the command (so both see the
  same machine load): the interpreter and the CLI module every command loads;
- `own_work`: wall - baseline, what the target is about (the command's own imports + its body);
- in this process, once the imports are paid: `command_body` (the real command, `intake.cli.app`,
  from settings load to the JSON written), and its parts: `open_store` (schema check, roster
  fingerprint), `build_report` + JSON, and `roster_sync_without_fingerprint` (the fingerprint
  cleared first: the roster read and compared with the tables, as every start did before, and
  as a start does once after the roster files change).
The database is seeded directly with SQLAlchemy bulk inserts (message, submission).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import REPO, intake_args, line, load, run_child
from sqlalchemy import create_engine, delete, insert, select

from storage.models import Message, MessageOutcome, MessageState, Meta, Sender, Submission
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


def _median(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


def _timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return _median(samples)


def in_process(env: dict[str, str], repeat: int) -> dict[str, float]:
    """Median seconds in this process (imports already paid by a first, untimed call): the whole
    command body and its parts."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        from intake import cli, reports
        from intake.bootstrap import ensure_roster, open_store
        from intake.settings import load_settings
        from storage.session import session_scope

        def command() -> None:
            cli.state.settings = None  # settings are loaded by every command: include them
            with contextlib.redirect_stdout(io.StringIO()) as out:
                cli.app(["report", "--format", "json"], standalone_mode=False)
            assert out.getvalue().startswith("{"), out.getvalue()[:200]

        command()  # warm-up: the command's imports, the database's first pages
        body = _timed(command, repeat)
        settings = load_settings()
        stores = []
        opened = _timed(lambda: stores.append(open_store(settings)), repeat)
        store = stores[-1]

        def build() -> None:
            with session_scope(store.factory) as session:
                data = reports.build_report(session, settings.deadline, store.clock.now())
            reports.to_json(data)

        built = _timed(build, repeat)

        def resync() -> None:
            with session_scope(store.factory) as session:
                session.execute(delete(Meta))
            start = time.perf_counter()
            assert ensure_roster(store.factory, settings)
            resyncs.append(time.perf_counter() - start)

        resyncs: list[float] = []
        for _ in range(repeat):
            resync()
        for each in stores:
            each.factory.kw["bind"].dispose()
        return {"command_body": body, "open_store": opened, "build_report_and_json": built,
                "roster_sync_without_fingerprint": _median(resyncs)}  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(saved)


def scenario(name: str, url: str, tmp: Path, config: Path | None, args: argparse.Namespace) -> None:
    env = settings_env(tmp, url)
    if config is not None:
        (tmp / "intake.toml").write_text(f'config_dir = "{config}"\n', encoding="utf-8")
    assert run_child(intake_args("db", "upgrade"), env).returncode == 0
    first = run_child(intake_args("report", "--format", "json"), env)  # syncs the roster
    assert first.returncode == 0, first.stderr
    count = seed(url, args.per_sender)
    runs, baselines = [], []
    for _ in range(args.repeat):  # alternately, so both see the same load
        baselines.append(run_child([sys.executable, "-c", "import intake.cli"], env).seconds)
        run = run_child(intake_args("report", "--format", "json"), env)
        assert run.returncode == 0, run.stderr
        runs.append(run)
    wall, baseline = _median([r.seconds for r in runs]), _median(baselines)
    parts = in_process(env, args.repeat)
    target = 0.05 if name == "94" else 1.0
    line(f"{name}_submissions", count)
    line(f"{name}_command_wall", wall, f"s ({load()})")
    line(f"{name}_baseline_interpreter_and_cli", baseline, 's (python -c "import intake.cli")')
    line(f"{name}_command_own_work", wall - baseline, f"s (wall - baseline; target < {target})")
    for part, seconds in parts.items():
        line(f"{name}_{part}", seconds, "s (in-process)")
    line(f"{name}_peak_rss", max(r.max_rss_mb for r in runs), "MB")
    print(f"SUMMARY report {name} senders db={args.database}: command {wall * 1000:.0f} ms, "
          f"baseline {baseline * 1000:.0f} ms, own work {(wall - baseline) * 1000:.0f} ms "
          f"(target < {target * 1000:.0f}), body in-process {parts['command_body'] * 1000:.0f} ms "
          f"(open_store {parts['open_store'] * 1000:.0f}, build+json "
          f"{parts['build_report_and_json'] * 1000:.0f}; roster sync without fingerprint "
          f"{parts['roster_sync_without_fingerprint'] * 1000:.0f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--senders", type=int, default=10_000)
    parser.add_argument("--per-sender", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    pg = PostgresServer().start() if args.database == "postgresql" else None
    try:
        for name, senders in (("94", None), (str(args.senders), args.senders)):
            tmp = Path(tempfile.mkdtemp(prefix=f"bench-report-{name}-"))
            url = pg.url(pg.create_database()) if pg else f"sqlite:///{tmp / 'intake.db'}"
            config = synthetic_config(tmp, senders) if senders else None
            try:
                scenario(name, url, tmp, config, args)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
