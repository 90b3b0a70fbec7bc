"""Helpers for the worker tests: `intake run` as a real process with its log in a file."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.forms.builders import filled_form_bytes
from tests.intake_env import REPO
from tests.mime_builders import build_submission

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ON_TIME = datetime.fromisoformat("2024-01-19T10:00:00+07:00")
# Fast timings for tests: IDLE and start-up trigger polls; the interval poll is out of the way.
FAST = {
    "INTAKE_WORKER__POLL_INTERVAL": "300",
    "INTAKE_WORKER__LEASE_TTL": "6",
    "INTAKE_WORKER__LEASE_RENEW": "1",
    "INTAKE_WORKER__STANDBY_CHECK": "0.3",
    "INTAKE_WORKER__SHUTDOWN_GRACE": "10",
}
PROVINCES = [
    ("เชียงใหม่", "chiangmai"), ("ลำพูน", "lamphun"), ("ลำปาง", "lampang"), ("แพร่", "phrae"),
    ("น่าน", "nan"), ("พะเยา", "phayao"), ("เชียงราย", "chiangrai"), ("ตาก", "tak"),
    ("สุโขทัย", "sukhothai"), ("พิษณุโลก", "phitsanulok"), ("ขอนแก่น", "khonkaen"),
    ("สงขลา", "songkhla"),
]  # fmt: skip


def province_mail(n: int) -> bytes:
    """A valid form from the n-th province of PROVINCES, with its own Message-ID."""
    name, slug = PROVINCES[n % len(PROVINCES)]
    return build_submission(
        subject=f"แบบฟอร์มข้อมูล จังหวัด{name}",
        from_=f"saraban@{slug}.go.th",
        to="jpp.moi9999@gmail.com",
        body="เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n",
        attachments=[(f"{slug}.xlsx", filled_form_bytes(name), XLSX)],
        message_id=f"<w{n}@{slug}.go.th>",
    )


@dataclass
class WorkerProcess:
    """`intake -v run` with stdout+stderr in a log file that the test reads."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, env: dict[str, str], log_path: Path, **extra: str) -> WorkerProcess:
        out = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "intake", "-v", "run"],
            env={**env, **FAST, **extra},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        return cls(proc, log_path)

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 20.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.log)) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} (x{count}) in the worker log:\n{self.log[-4000:]}")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def wait_until(condition: Any, timeout: float = 20.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{message} not met within {timeout} s")
