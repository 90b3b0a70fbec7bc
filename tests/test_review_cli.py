"""`intake review …`, `intake report --format table|xlsx` and `intake web`'s refusal, through the
real Typer app in-process (CliRunner), on a database seeded through the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from intake import cli
from storage.models import AuditEvent, Outbox, OutboxState, Submission
from storage.session import session_scope
from tests.coordinator_seed import EXPECTED_SUMMARY, Seeded, seed
from tests.intake_env import settings_env


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> tuple[Seeded, dict[str, str]]:
    db = seed(tmp_path, database_url)
    variables = settings_env(tmp_path, database_url)
    variables.update(COLUMNS="220", USER="coordinator-on-duty")
    return db, variables


def run(variables: dict[str, str], *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    cli.state.settings, cli.state.config = None, None  # a fresh process each time, as in use
    result = CliRunner().invoke(cli.app, list(args), env=variables)
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


def test_review_lists_and_each_command_acts_with_an_audit_trail(env) -> None:  # type: ignore[no-untyped-def]
    db, variables = env
    listing = run(variables, "review").output
    assert "รายการรอตรวจสอบ 4 รายการ" in listing
    assert "ไม่ทราบผู้ส่ง" in listing and "ไม่ทราบผลการส่งอีเมลตอบกลับ" in listing
    assert f"assign {db.unknown_form_message} SENDER" in listing
    assert f"resend {db.held_outbox}" in listing

    out = run(variables, "review", "assign", str(db.unknown_form_message), "TH-53",
              "--by", "somchai", "--note", "โทรยืนยันแล้ว").output  # fmt: skip
    assert "อุตรดิตถ์" in out
    report = json.loads(run(variables, "report", "--format", "json").stdout)
    assert {e["id"]: e["status"] for e in report["entities"]}["TH-53"] == "accepted"

    run(variables, "review", "received", "TH-52", "--channel", "paper", "--note", "หนังสือ")
    run(variables, "review", "extend", "TH-51", "2024-01-25T23:59:59+07:00", "--note", "ขอขยาย")
    run(variables, "review", "resend", str(db.held_outbox))
    run(variables, "review", "cancel", str(db.failed_outbox), "--note", "ที่อยู่ผิด")
    with session_scope(db.svc.factory) as session:
        lamphun = session.scalars(
            select(Submission.id).where(Submission.sender_id == "TH-51")
        ).one()
    run(variables, "review", "accept", str(lamphun), "--note", "ยืนยันทางโทรศัพท์")
    item = run(variables, "review").output
    assert "รายการรอตรวจสอบ 1 รายการ" in item  # only the mail with no form is left

    with session_scope(db.svc.factory) as session:
        events = {(e.action, e.actor) for e in session.scalars(select(AuditEvent))}
        states = {o.id: o.state for o in session.scalars(select(Outbox))}
    assert events == {
        ("assign_message", "somchai"),
        ("mark_received", "coordinator-on-duty"),  # $USER when --by is not given
        ("extend_deadline", "coordinator-on-duty"),
        ("resend_reply", "coordinator-on-duty"),
        ("cancel_reply", "coordinator-on-duty"),
        ("accept_submission", "coordinator-on-duty"),
    }
    assert states[db.held_outbox] == OutboxState.QUEUED
    assert states[db.failed_outbox] == OutboxState.CANCELLED


def test_review_refuses_what_it_cannot_do(env) -> None:  # type: ignore[no-untyped-def]
    _, variables = env
    out = run(variables, "review", "extend", "TH-51", "2024-01-25", code=2).output
    assert "offset" in out
    assert "ไม่พบรายการตรวจสอบ" in run(variables, "review", "resolve", "999", "--note", "x",
                                       code=2).output  # fmt: skip
    assert "ไม่พบผู้ส่ง" in run(variables, "review", "add-address", "TH-999", "a@b.go.th",
                                code=2).output  # fmt: skip
    assert "เหตุผล" in run(variables, "review", "resolve", "1", code=2).output


def test_report_table_and_xlsx_for_sending_upwards(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, variables = env
    table = run(variables, "report").output
    assert "อีก 2 วันถึงกำหนดส่ง" in table
    assert "รับแล้ว 3 (3%)" in table and "รอตรวจสอบโดยเจ้าหน้าที่ 4" in table
    assert "intake review" in table
    assert "ภาคเหนือ" in table and "รับแล้ว 3 รอแก้ไข 1 ยังไม่ส่ง 17 จาก 21" in table

    run(variables, "report", "--format", "xlsx", code=2)  # needs --output
    path = tmp_path / "out" / "สถานะ.xlsx"
    run(variables, "report", "--format", "xlsx", "--output", str(path))
    wb = load_workbook(path)
    assert wb.sheetnames == ["สถานะการส่งข้อมูล", "รอตรวจสอบ"]
    ws = wb["สถานะการส่งข้อมูล"]
    assert ws["A1"].value.startswith("สถานะการส่งข้อมูล")
    numbers = [ws.cell(row=5, column=c).value for c in (2, 4, 6, 8, 10, 12)]
    assert numbers == [94, 3, 1, 90, 0, 4]
    assert [c.value for c in ws[7]][:7] == [
        "ลำดับ",
        "ภาค",
        "กลุ่มจังหวัด",
        "ชื่อ",
        "ประเภท",
        "รหัส",
        "สถานะ",
    ]
    assert ws.freeze_panes == "A8" and ws.auto_filter.ref == "A7:L101"
    rows = {r[5]: r for r in ws.iter_rows(min_row=8, values_only=True)}
    assert len(rows) == EXPECTED_SUMMARY["expected"]
    assert rows["TH-50"][6] == "รับแล้ว" and rows["TH-51"][6] == "รอแก้ไข"
    assert rows["TH-50"][2] == "กลุ่มจังหวัดภาคเหนือตอนบน 1"
    status_cell = next(ws.iter_rows(min_row=8, max_row=8))[6]
    assert status_cell.fill.fgColor.rgb.endswith(("C6EFCE", "FFEB9C", "FFC7CE"))
    review_sheet = wb["รอตรวจสอบ"]
    assert review_sheet["B4"].value.startswith("ไม่ทราบผู้ส่ง")


def test_web_refuses_to_serve_beyond_loopback_without_a_token(env) -> None:  # type: ignore[no-untyped-def]
    _, variables = env
    out = run(variables, "web", "--host", "0.0.0.0", code=1).output
    assert "refusing to serve on 0.0.0.0 without a token" in out


def _narrow(variables: dict[str, str]) -> dict[str, str]:
    return {**variables, "COLUMNS": "80"}  # a pipe, a default terminal


def _fits(output: str, width: int = 80) -> None:
    from rich.cells import cell_len

    too_wide = [line for line in output.splitlines() if cell_len(line) > width]
    assert not too_wide, too_wide
    assert "…" not in output  # nothing cut with an ellipsis


def test_report_table_at_80_columns_shows_every_name_whole(env) -> None:  # type: ignore[no-untyped-def]
    import csv

    from intake.reports import KIND_TH

    _, variables = env
    word = KIND_TH["cluster"]
    with open("config/senders/clusters.csv", encoding="utf-8") as f:
        clusters = [row["name_th"] for row in csv.DictReader(f)]
    assert len(clusters) == 18 and all(name.startswith(word) for name in clusters)
    entities = json.loads(run(variables, "report", "--format", "json").stdout)["entities"]
    provinces = [e["name_th"] for e in entities if e["kind"] == "province"]

    wide = run(variables, "report").output
    for name in clusters:  # a wide console: the full table, each name whole on its line
        assert sum(f" {name} " in line for line in wide.splitlines()) == 1, name
    assert "…" not in wide

    table = run(_narrow(variables), "report").output
    _fits(table)
    lines = table.splitlines()
    shown = []
    for above, line in zip(lines, lines[1:], strict=False):  # a cluster: first word, rest below
        if above.startswith(word + " "):
            rest = next(n[len(word) :] for n in clusters if line.startswith(n[len(word) :] + " "))
            shown.append(word + rest)
    assert sorted(shown) == sorted(clusters) and len(set(shown)) == 18
    for name in provinces:  # indented under its cluster, whole
        assert sum(line.startswith(f"   {name} ") for line in lines) == 1, name
    assert "รับแล้ว 3" in table and "2567-0001" in table and "intake review" in table


def test_review_at_80_columns_prints_each_command_whole_on_its_line(env) -> None:  # type: ignore[no-untyped-def]
    from intake.review import reason_th

    db, variables = env
    listing = run(_narrow(variables), "review").output
    lines = listing.splitlines()
    for command in (
        f"intake review assign {db.unknown_form_message} SENDER",
        "intake review add-address SENDER staff.somchai@gmail.com",
        f"intake review resend {db.held_outbox}",
        f"intake review cancel {db.failed_outbox}",
        "intake review resolve 1 --note …",
    ):
        assert f"  {command}" in lines, command
    commands = [line for line in lines if line.startswith("  intake review ")]
    assert len(commands) == 12
    text = [line for line in lines if line not in commands]
    _fits("\n".join(text))
    # Thai is not broken inside a word: each reason stands whole on its item's first line
    for reason in ("unknown_sender", "outbox_unknown", "reply_failed"):
        assert any(line.endswith(f"— {reason_th(reason)}") for line in text), reason


def test_status_at_80_columns_fits(env) -> None:  # type: ignore[no-untyped-def]
    _, variables = env
    cli.state.settings, cli.state.config = None, None
    result = CliRunner().invoke(cli.app, ["status"], env=_narrow(variables))
    assert result.exit_code == 5, result.output  # no worker has run: unhealthy
    _fits(result.output)
    assert any(line.startswith("last successful poll  ") for line in result.output.splitlines())
