"""Latency benchmark: with `intake run` idling, append one submission and time until its
acknowledgement reaches the SMTP server; p50 and p95 over --n messages (default 50).

    python bench/latency.py --n 50 [--database postgresql]

The worker is the real command (IMAP IDLE on a real Dovecot, aiosmtpd for the replies); the
safety-net poll stays at its default (120 s), so every figure is the IDLE path.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO, base_forms, intake_args, line, load, submission, vary

from tests.intake_env import settings_env
from tests.servers import DovecotServer, PostgresServer, SmtpServer


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between messages")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    dovecot, smtp, pg = DovecotServer().start(), SmtpServer().start(), None
    worker: subprocess.Popen[bytes] | None = None
    try:
        user = dovecot.user()
        if args.database == "postgresql":
            pg = PostgresServer().start()
            url = pg.url(pg.create_database())
        else:
            url = f"sqlite:///{tmp / 'intake.db'}"
        env = settings_env(tmp, url, user.settings(), smtp.smtp_settings())
        subprocess.run(intake_args("db", "upgrade"), env=env, cwd=REPO, check=True)
        forms = base_forms()
        mails = [submission(i, vary(forms[i % len(forms)], i)) for i in range(args.n + 1)]
        log = (tmp / "worker.log").open("wb")
        worker = subprocess.Popen(intake_args("run"), env=env, cwd=REPO, stdout=log, stderr=log)

        user.append(mails[0])  # warm-up: the worker is up, connected and idling after this
        smtp.wait_for(1, timeout=60)
        time.sleep(1.0)
        line("load_at_start", load())
        times = []
        for i in range(1, args.n + 1):
            start = time.perf_counter()
            user.append(mails[i])
            smtp.wait_for(i + 1, timeout=60)
            times.append(time.perf_counter() - start)
            time.sleep(args.gap)
        line("load_at_end", load())
        p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
        line("latency_min", min(times), "s")
        line("latency_p50", p50, "s (target <= 2)")
        line("latency_p95", p95, "s")
        line("latency_max", max(times), "s")
        line("latency_mean", statistics.fmean(times), "s")
        print(
            f"SUMMARY latency n={args.n} db={args.database}: p50 {p50:.2f} s, p95 {p95:.2f} s, "
            f"max {max(times):.2f} s"
        )
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        smtp.stop()
        dovecot.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # archive and database: up to GBs at N=10,000


if __name__ == "__main__":
    main()
