"""Shared pieces of the benchmarks: servers, a realistic corpus, timing a child process.

Scripts, not tests: they print plain `name: value unit` lines. Run from the repository root
(`python bench/ingest.py`), which puts the repository on sys.path for `tests.servers`.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.forms.builders import filled_form_bytes, replace_member, sample_parts  # noqa: E402
from tests.mime_builders import build_submission  # noqa: E402

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PROVINCES = ["เชียงใหม่", "ลำพูน", "เชียงราย", "ขอนแก่น", "ภูเก็ต", "สงขลา", "นครราชสีมา", "ชลบุรี"]
WORDS = [
    "พัฒนา", "ส่งเสริม", "ยกระดับ", "โครงสร้างพื้นฐาน", "ชุมชน", "การท่องเที่ยว", "เกษตรกร",
    "แหล่งน้ำ", "ถนน", "สุขภาพ", "การศึกษา", "ดิจิทัล", "ผู้สูงอายุ", "เศรษฐกิจ", "สิ่งแวดล้อม",
]  # fmt: skip
PHONE = "0812345678"  # in every form (inline string): varied per message so every file differs
COVER_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
    b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >> endobj\n"
    b"4 0 obj << /Length 60 >> stream\nBT /F1 12 Tf 72 770 Td (Cover letter / nangsue nam song) Tj ET\n"
    b"endstream endobj\n" + b"% padding\n" * 400 + b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


def line(name: str, value: Any, unit: str = "") -> None:
    """One figure, as `name: value unit`."""
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    print(f"{name}: {text} {unit}".rstrip(), flush=True)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def base_forms(count: int = 6, seed: int = 7) -> list[bytes]:
    """`count` distinct filled forms of 30-60 KB (300-450 project rows, Thai text)."""
    rnd = random.Random(seed)
    parts = sample_parts()
    forms = []
    for k in range(count):
        n = 300 + (k * 150) // max(count - 1, 1)
        projects = [
            dict(parts["projects"][0], seq=i + 1,
                 name="โครงการ" + "".join(rnd.sample(WORDS, 4)) + f" {i + 1}",
                 budget=Decimal(rnd.randint(100_000, 90_000_000)),
                 agency=rnd.choice(["สำนักงานจังหวัด", "พาณิชย์จังหวัด", "เกษตรจังหวัด"]))
            for i in range(n)
        ]  # fmt: skip
        indicators = [
            dict(parts["indicators"][0], seq=i + 1,
                 indicator="ตัวชี้วัด" + "".join(rnd.sample(WORDS, 3)), target=str(rnd.randint(1, 999)))
            for i in range(n // 3)
        ]  # fmt: skip
        name = PROVINCES[k % len(PROVINCES)]
        forms.append(filled_form_bytes(name, projects=projects, indicators=indicators))
    return forms


def vary(form: bytes, i: int) -> bytes:
    """The same form with another phone number: a different file, rebuilt in a few ms."""
    from tests.forms.builders import read_member

    strings = read_member(form, "xl/worksheets/sheet1.xml")
    return replace_member(form, "xl/worksheets/sheet1.xml", strings.replace(PHONE, f"08{i:08d}", 1))


def submission(i: int, form: bytes) -> bytes:
    return build_submission(
        subject=f"ส่งแบบฟอร์มข้อมูล ครั้งที่ {i}",
        from_=f"saraban{i}@province{i % 97}.go.th",
        to="jpp.moi9999@gmail.com",
        body="เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n",
        attachments=[("แบบฟอร์ม.xlsx", form, XLSX), ("หนังสือนำส่ง.pdf", COVER_PDF, "application/pdf")],
        message_id=f"<bench{i}@province.example>",
    )


@dataclass
class ChildRun:
    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_child(args: list[str], env: dict[str, str], profile: str | None = None) -> ChildRun:
    """Run a command: wall time and the peak RSS of that one process (VmHWM)."""
    if profile:
        args = ["py-spy", "record", "-o", profile, "-f", "speedscope", "--", *args]
    out, err = Path(f"/tmp/bench-{os.getpid()}.out"), Path(f"/tmp/bench-{os.getpid()}.err")
    with out.open("wb") as o, err.open("wb") as e:
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=o, stderr=e)
        peak = [0]
        watcher = threading.Thread(target=_watch_hwm, args=(proc, peak), daemon=True)
        watcher.start()
        proc.wait()
        seconds = time.perf_counter() - start
        watcher.join()
    return ChildRun(seconds, peak[0] / 1024, proc.returncode, out.read_text(), err.read_text())


def _watch_hwm(proc: subprocess.Popen[bytes], peak: list[int]) -> None:
    """The child's VmHWM (peak RSS since its exec) every 20 ms until it exits.

    Not getrusage/wait4: a child's ru_maxrss starts from the parent's RSS at fork (Linux keeps
    the old address space's high-water mark across exec), and this parent holds the corpus.
    """
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status", encoding="ascii") as fh:
                for text in fh:
                    if text.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(text.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)


def intake_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "intake", *args]


def interpreter_start(repeat: int = 5) -> float:
    """Median wall time of `python -c "import intake.cli"`: the fixed cost of any command."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import intake.cli"], cwd=REPO, check=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
