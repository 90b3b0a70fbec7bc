"""Word copies of the form (python-docx builds them): retyped with one table per part, or the
whole sheet pasted from Excel as one table. Same records as the spreadsheet; problems name the
part, the column, and the table and row in Thai, since Word has no cell addresses."""

from __future__ import annotations

import email
import io
from datetime import datetime
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import docx
import pytest
from docx.oxml.ns import qn
from sqlalchemy import select

from intake.bootstrap import open_services
from intake.forms import FormResult, Problem, read_forms
from intake.pipeline import import_files
from intake.settings import RepliesSettings, load_settings
from storage.models import Outbox
from storage.models import Problem as ProblemRow
from storage.session import session_scope
from tests.forms.builders import (
    default_spec,
    docx_form_bytes,
    docx_pasted_bytes,
    expected_records,
    layout_for,
    sample_parts,
)
from tests.intake_env import CONFIG_DIR
from tests.mime_builders import build_submission

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _read(data: bytes) -> FormResult:
    (result,) = read_forms("แบบฟอร์ม.docx", "docx", data, default_spec())
    return result


@pytest.mark.parametrize(
    "build",
    [docx_form_bytes, docx_pasted_bytes, lambda **kw: docx_pasted_bytes(before=2, **kw)],
    ids=["retyped", "pasted", "pasted-after-a-letter"],
)
def test_word_copies_give_the_same_records_as_the_sheet(build: Any) -> None:
    result = _read(build())
    header, parts = expected_records()
    assert result.valid, [p.message_th for p in result.problems]
    assert result.data is not None
    assert (result.data.header, result.data.parts) == (header, parts)
    assert result.sheet is None


def _by_code(result: FormResult) -> dict[str, Problem]:
    return {p.code: p for p in result.problems}


def test_problems_in_a_pasted_sheet_name_part_column_table_and_row() -> None:
    projects = sample_parts()["projects"]
    projects[1] |= {"agency": None, "axis": 7}
    result = _read(docx_pasted_bytes(before=2, projects=projects, phone="12345"))
    problems = _by_code(result)
    assert set(problems) == {"missing_field", "bad_axis", "bad_phone"}
    project_row = layout_for().rows["projects"][1]  # pasted 1:1, so table row = sheet row
    agency = problems["missing_field"]
    assert (agency.part, agency.column, agency.table, agency.row, agency.cell) == (
        "projects", "หน่วยงานรับผิดชอบ", 3, project_row, None,
    )  # fmt: skip
    assert agency.where_th() == (
        f"ไฟล์ แบบฟอร์ม.docx ตารางที่ 3 แถวที่ {project_row} คอลัมน์ หน่วยงานรับผิดชอบ"
    )
    assert (problems["bad_axis"].table, problems["bad_axis"].row) == (3, project_row)
    phone = problems["bad_phone"]
    assert (phone.part, phone.column, phone.table) == ("header", "โทรศัพท์", 3)
    assert phone.row == layout_for().header["phone"][0]
    assert "ตารางที่ 3" in phone.where_th() and "ช่อง โทรศัพท์" in phone.where_th()


def test_problems_in_a_retyped_form_point_at_each_parts_own_table() -> None:
    projects = sample_parts()["projects"]
    projects[0]["budget"] = "สิบล้าน"
    result = _read(docx_form_bytes(projects=projects))
    (problem,) = result.problems
    # table 1 is the header; then approaches (2), indicators (3), projects (4); row 1 = labels
    assert (problem.code, problem.part, problem.column) == (
        "budget_words",
        "projects",
        "งบประมาณ (บาท)",
    )
    assert (problem.table, problem.row, problem.cell, problem.sheet) == (4, 2, None, None)
    assert "ตารางที่ 4 แถวที่ 2 คอลัมน์ งบประมาณ (บาท)" in problem.where_th()


def test_a_missing_part_in_word_names_the_part() -> None:
    result = _read(docx_form_bytes(projects=[]))
    (problem,) = result.problems
    assert (problem.code, problem.part) == ("empty_part", "projects")
    assert "๕. แผนงาน/โครงการสำคัญ" in problem.message_th
    assert problem.table is None and problem.row is None  # a paragraph heading: no table


def test_tables_inside_content_controls_are_read() -> None:
    document = docx.Document()
    body = document.element.body
    inner = docx.Document(io.BytesIO(docx_form_bytes())).element.body
    sdt = body.makeelement(qn("w:sdt"), {})
    content = sdt.makeelement(qn("w:sdtContent"), {})
    for child in list(inner.iterchildren()):
        if child.tag != qn("w:sectPr"):
            content.append(child)
    sdt.append(content)
    body.insert(0, sdt)
    buffer = io.BytesIO()
    document.save(buffer)
    result = _read(buffer.getvalue())
    assert result.valid, [p.message_th for p in result.problems]
    assert result.data is not None and result.data.parts == expected_records()[1]


def test_a_word_copy_through_the_pipeline_keeps_table_and_row(
    tmp_path: Path, database_url: str
) -> None:
    toml = tmp_path / "intake.toml"
    toml.write_text(f'config_dir = "{CONFIG_DIR}"\n', encoding="utf-8")
    settings = load_settings(toml, database_url=database_url, data_dir=tmp_path / "var",
                             replies=RepliesSettings(dry_run=True))  # fmt: skip
    svc = open_services(settings)
    projects = sample_parts()["projects"]
    projects[1]["agency"] = None
    raw = build_submission(
        subject="ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่",
        from_="saraban@chiangmai.go.th",
        attachments=[("แบบฟอร์ม.docx", docx_pasted_bytes(before=2, projects=projects), DOCX)],
    )
    import_files(svc, [(raw, datetime.fromisoformat("2024-01-19T10:00:00+07:00"))])
    row = layout_for().rows["projects"][1]
    with session_scope(svc.factory) as session:
        stored = session.scalars(select(ProblemRow)).all()
        assert [(p.part, p.column, p.table_no, p.row, p.cell) for p in stored] == [
            ("projects", "หน่วยงานรับผิดชอบ", 3, row, None)
        ]
        (reply,) = session.scalars(select(Outbox)).all()
        body = email.message_from_bytes(reply.raw, policy=default_policy).get_body(
            preferencelist=("plain",)
        )
    assert body is not None
    assert f"ตารางที่ 3 แถวที่ {row} คอลัมน์ หน่วยงานรับผิดชอบ" in body.get_content()
