"""Bounded work per message, through the real `intake import` in a subprocess: the bombs of
issue 11 end as a `too_large` problem and a Thai correction, never an accepted form, with the
command's peak resident memory (its own VmHWM) under 300 MB; a part refused before
reading (an attachment over the size limit, an encrypted zip member, a zip bomb) is named with its
reason in the correction and the review text instead of "no attachment"; and the last-resort
memory ceiling turns a runaway into an outcome for that message while the next one is handled.
SQLite and PostgreSQL."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.forms.bombs import cell_bomb, shared_strings_bomb, styles_bomb
from tests.forms.builders import filled_form_bytes
from tests.intake_env import CONFIG_DIR, REPO, IntakeRunner, settings_env
from tests.mime_builders import build_submission, build_zip

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHIANG_MAI = "saraban@chiangmai.go.th"
PEAK_MB = 300


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float  # the child's own maximum resident set size


# The child's own high-water mark, read by the child as it exits. Not wait4's ru_maxrss: Linux
# keeps that across fork and exec, so it would count this (large, long-lived) pytest process.
_HWM = """
import atexit, runpy, sys
report = sys.argv.pop(1)
def _hwm():
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(status.read())
atexit.register(_hwm)
sys.argv[0] = "intake"
runpy.run_module("intake", run_name="__main__")
"""


def _measured(intake: IntakeRunner, *args: str, **env: str) -> Run:
    """`intake ARGS` with its own peak resident memory (VmHWM of the child's address space)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "status"
        proc = subprocess.run(
            [sys.executable, "-c", _HWM, str(report), *args],
            env={**intake.env, **env},
            cwd=REPO,
            capture_output=True,
            timeout=300,
        )
        hwm = next(
            line for line in report.read_text().splitlines() if line.startswith("VmHWM:")
        )
        run = Run(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            int(hwm.split()[1]) / 1024,
        )
    assert run.returncode == 0, run
    return run


def _rows(url: str, sql: str, **params: object) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _mail(tmp: Path, n: int, attachments: list[tuple[str, bytes, str]], **kw: Any) -> Path:
    raw = build_submission(
        subject=kw.pop("subject", "ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่"),
        from_=kw.pop("from_", CHIANG_MAI),
        to="jpp.moi9999@gmail.com",
        body="เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n",
        attachments=attachments,
        message_id=f"<bounds-{n}@chiangmai.example>",
        date="Fri, 19 Jan 2024 10:00:00 +0700",
    )
    path = tmp / f"{n}.eml"
    path.write_bytes(raw)
    return path


def _body(raw: bytes) -> str:
    mail = email.message_from_bytes(raw, policy=default_policy)
    return mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def _correction(url: str, to: str = CHIANG_MAI) -> str:
    rows = _rows(url, "select kind, raw from outbox where to_address = :to", to=to)
    assert [kind for kind, _ in rows] == ["correction"], rows
    return _body(bytes(rows[0][1]))


@pytest.fixture
def intake(tmp_path: Path, database_url: str, smtp_server) -> IntakeRunner:  # type: ignore[no-untyped-def]
    runner = IntakeRunner(settings_env(tmp_path, database_url, smtp=smtp_server.smtp_settings()))
    runner("db", "upgrade")
    return runner


def _status(intake: IntakeRunner, sender: str = "TH-50") -> str:
    return next(e["status"] for e in intake.report()["entities"] if e["id"] == sender)


BOMBS = {
    "cell": lambda: [("แบบฟอร์ม.xlsx", cell_bomb(), XLSX)],
    "shared-strings": lambda: [("แบบฟอร์ม.xlsx", shared_strings_bomb(), XLSX)],
    "six-in-one-mail": lambda: [
        (f"แบบฟอร์ม{n}.xlsx", (cell_bomb if n % 2 else shared_strings_bomb)(), XLSX)
        for n in range(6)
    ],
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_cell_bomb_is_a_correction_in_bounded_memory(
    bomb: str, intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    attachments = BOMBS[bomb]()
    path = _mail(tmp_path, 1, attachments)
    assert path.stat().st_size < 700 * 1024  # a small mail: 9 GB and 5 minutes before
    run = _measured(intake, "import", str(path))
    assert run.peak_mb < PEAK_MB, f"intake import peaked at {run.peak_mb:.0f} MB"
    assert _status(intake) == "needs_correction"  # never accepted
    problems = _rows(database_url, "select code, filename, message_th from problem")
    assert sorted(f for _, f, _ in problems) == sorted(name for name, _, _ in attachments)
    assert {code for code, _, _ in problems} == {"too_large"}
    assert all("เกิน" in message for _, _, message in problems)
    body = _correction(database_url)
    for _, filename, message in problems:
        assert filename in body and message in body
    assert "เกินขีดจำกัดที่ระบบอ่านได้" in body


def test_an_oversized_attachment_is_named_with_both_sizes(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    big = os.urandom(30 * 1024 * 1024)
    path = _mail(tmp_path, 2, [("แบบฟอร์มเชียงใหม่.xlsx", big, XLSX)])
    del big
    _measured(intake, "import", str(path))
    body = _correction(database_url)
    assert "ไฟล์ แบบฟอร์มเชียงใหม่.xlsx มีขนาด 30 MB ใหญ่เกินกำหนด 25 MB" in body
    assert "ไม่พบไฟล์แนบ" not in body
    assert _status(intake) == "needs_correction"
    [(code, filename)] = _rows(database_url, "select code, filename from problem")
    assert (code, filename) == ("too_large", "แบบฟอร์มเชียงใหม่.xlsx")


def test_an_oversized_file_beside_a_good_form_is_a_warning_in_the_acknowledgement(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    attachments = [
        ("แบบฟอร์ม.xlsx", filled_form_bytes("เชียงใหม่"), XLSX),
        ("ภาพประกอบ.xlsx", os.urandom(26 * 1024 * 1024), XLSX),
    ]
    _measured(intake, "import", str(_mail(tmp_path, 3, attachments)))
    assert _status(intake) == "accepted"
    [(kind, raw)] = _rows(database_url, "select kind, raw from outbox")
    assert kind == "acknowledgement"
    assert "ไฟล์ ภาพประกอบ.xlsx มีขนาด 26 MB ใหญ่เกินกำหนด 25 MB" in _body(bytes(raw))


def test_refused_zip_parts_are_named_with_their_reason(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    form = filled_form_bytes("เชียงใหม่")
    encrypted = build_zip([("แบบฟอร์ม.xlsx", form)], encrypted={"แบบฟอร์ม.xlsx"})
    bomb = build_zip([("แบบฟอร์ม.xlsx", b"\0" * (20 * 1024 * 1024))])
    _mail(tmp_path, 4, [("ส่งข้อมูล.zip", encrypted, "application/zip")])
    _mail(
        tmp_path,
        5,
        [("ข้อมูล.zip", bomb, "application/zip")],
        from_="saraban@lamphun.go.th",
        subject="ส่งแบบฟอร์มข้อมูล จังหวัดลำพูน",
    )
    _measured(intake, "import", str(tmp_path / "4.eml"), str(tmp_path / "5.eml"))
    body = _correction(database_url)
    assert "แบบฟอร์ม.xlsx ใน zip ส่งข้อมูล.zip ตั้งรหัสผ่านไว้" in body
    assert "โดยไม่ต้องบีบอัด" not in body  # the reason, not the generic advice
    body = _correction(database_url, "saraban@lamphun.go.th")
    assert "ข้อมูล.zip มีอัตราการบีบอัดสูงผิดปกติ" in body
    codes = _rows(database_url, "select code from problem order by id")
    assert codes == [("encrypted",), ("too_large",)]


def test_a_refused_part_from_an_unknown_sender_is_in_the_review_text(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    path = _mail(
        tmp_path,
        6,
        [("data.xlsx", os.urandom(26 * 1024 * 1024), XLSX)],
        from_="someone@example.org",
        subject="ส่งข้อมูล",
    )
    _measured(intake, "import", str(path))
    [(reason, detail)] = _rows(database_url, "select reason, detail from review_item")
    assert "data.xlsx มีขนาด 26 MB ใหญ่เกินกำหนด 25 MB" in detail, (reason, detail)


def test_the_memory_ceiling_turns_a_runaway_into_an_outcome(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    """With the form limits opened wide (a description that forgot them), a styles part of
    40 MB would be a 1.6 GB tree: the ceiling makes the allocation fail inside its own message,
    which ends as a problem, and the next message, a good form from another province, is
    handled in the same run."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    form = (config / "form.toml").read_text(encoding="utf-8")
    form = form.replace("max_xml_part_bytes = 10485760", "max_xml_part_bytes = 104857600")
    form = form.replace("max_xml_nodes = 500000", "max_xml_nodes = 100000000")
    assert "max_xml_nodes = 100000000" in form and "max_xml_part_bytes = 104857600" in form
    (config / "form.toml").write_text(form, encoding="utf-8")
    (tmp_path / "intake.toml").write_text(f'config_dir = "{config}"\n', encoding="utf-8")
    _mail(tmp_path, 7, [("แบบฟอร์ม.xlsx", styles_bomb(), XLSX)])
    _mail(
        tmp_path,
        8,
        [("ลำพูน.xlsx", filled_form_bytes("ลำพูน"), XLSX)],
        from_="saraban@lamphun.go.th",
        subject="ส่งแบบฟอร์มข้อมูล จังหวัดลำพูน",
    )
    run = _measured(
        intake,
        "import",
        str(tmp_path / "7.eml"),
        str(tmp_path / "8.eml"),
        INTAKE_WORKER__MEMORY_LIMIT_MB="400",
    )
    assert run.peak_mb < 500, run.peak_mb
    statuses = {e["id"]: e["status"] for e in intake.report()["entities"]}
    assert statuses["TH-51"] == "accepted"
    assert statuses["TH-50"] != "accepted"
    [(code, message)] = _rows(
        database_url, "select code, message_th from problem where filename = 'แบบฟอร์ม.xlsx'"
    )
    assert code == "too_large" and "หน่วยความจำเกินขีดจำกัด" in message


def test_a_mail_near_the_size_limit_is_read_in_bounded_memory(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    """A 24 MB attachment is a 34 MB mail: the stdlib parser alone took 263 MB for it (a str per
    line); its base64 lines are now set aside and decoded straight from the archived bytes."""
    attachments = [
        ("แบบฟอร์ม.xlsx", filled_form_bytes("เชียงใหม่"), XLSX),
        ("ภาพถ่ายโครงการ.pdf", b"%PDF-1.4\n" + os.urandom(24 * 1024 * 1024), "application/pdf"),
    ]
    path = _mail(tmp_path, 7, attachments)
    assert path.stat().st_size > 32 * 1024 * 1024
    run = _measured(intake, "import", str(path))
    assert run.peak_mb < PEAK_MB, f"intake import peaked at {run.peak_mb:.0f} MB"
    assert _status(intake) == "accepted"
    sizes = dict(_rows(database_url, "select filename, size from attachment"))
    assert sizes["ภาพถ่ายโครงการ.pdf"] == len(attachments[1][1])  # every byte came back


def test_a_mail_over_the_message_limit_is_kept_and_its_size_named(
    intake: IntakeRunner, tmp_path: Path, database_url: str
) -> None:
    parts = [(f"ภาพ{n}.pdf", b"%PDF-1.4\n" + os.urandom(20 * 1024 * 1024), "application/pdf")
             for n in range(2)]  # fmt: skip
    path = _mail(tmp_path, 8, [("แบบฟอร์ม.xlsx", filled_form_bytes("เชียงใหม่"), XLSX), *parts])
    size = path.stat().st_size
    assert size > 50 * 1024 * 1024
    run = _measured(intake, "import", str(path))
    assert run.peak_mb < PEAK_MB, f"intake import peaked at {run.peak_mb:.0f} MB"
    body = _correction(database_url)
    assert "อีเมลฉบับนี้มีขนาด" in body and "เกินกำหนด 50 MB" in body
    assert _status(intake) == "needs_correction"
    [(archived,)] = _rows(database_url, "select size from message")
    assert archived == size  # kept whole in the archive for the coordinator
