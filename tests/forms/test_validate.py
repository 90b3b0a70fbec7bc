"""Each rule of form.md gives one Problem, at the right cell, in plain Thai."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from openpyxl.utils import get_column_letter

from intake.forms import FormData, FormResult, Problem, read_forms, validate
from intake.forms.template import layout
from tests.forms.builders import (
    ERRORS_EXPECTED,
    default_spec,
    expected_records,
    filled_form_bytes,
    form_with_errors_bytes,
    handmade_rows,
    sample_parts,
    warning_form_bytes,
    xlsx_from_rows,
)

SHEET = "แบบฟอร์ม"


def _read(data: bytes) -> FormResult:
    (result,) = read_forms("form.xlsx", "xlsx", data, default_spec())
    return result


def _only(result: FormResult) -> Problem:
    assert len(result.problems) == 1, [p.message_th for p in result.problems]
    return result.problems[0]


def _cell(part: str, key: str, index: int = 0) -> str:
    plan = layout(default_spec(), {"projects": 2})
    return f"{get_column_letter(plan.columns[part][key])}{plan.rows[part][index]}"


def _header_cell(key: str) -> str:
    r, c = layout(default_spec()).header[key]
    return f"{get_column_letter(c)}{r}"


def _projects(index: int = 0, **changes: Any) -> list[dict[str, Any]]:
    projects = sample_parts()["projects"]
    projects[index] |= changes
    return projects


def test_valid_form_has_no_problems() -> None:
    result = _read(filled_form_bytes())
    assert result.valid and result.problems == []


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("kind", "ประเภท"),
        ("entity_name", "ชื่อกลุ่มจังหวัด/จังหวัด"),
        ("contact_name", "ผู้ประสานงาน"),
        ("phone", "โทรศัพท์"),
    ],
)
def test_required_header_field(key: str, label: str) -> None:
    overrides: dict[str, Any] = {key: None}
    problem = _only(_read(filled_form_bytes(**overrides)))
    assert (problem.code, problem.severity, problem.part) == ("missing_field", "error", "header")
    assert (problem.sheet, problem.cell, problem.column) == (SHEET, _header_cell(key), label)
    assert problem.message_th == f"ยังไม่ได้กรอกช่อง ‘{label}’ กรุณากรอกข้อมูลช่องนี้"


def test_optional_header_fields_may_be_empty() -> None:
    assert _read(filled_form_bytes(position=None, email=None)).problems == []


def test_kind_must_be_cluster_or_province() -> None:
    problem = _only(_read(filled_form_bytes(kind="อำเภอ")))
    assert problem.code == "bad_choice" and problem.cell == _header_cell("kind")
    assert problem.message_th == "ช่อง ‘ประเภท’ ต้องเป็น ‘กลุ่มจังหวัด’ หรือ ‘จังหวัด’ (ได้รับ ‘อำเภอ’)"


def test_phone_and_email() -> None:
    result = _read(filled_form_bytes(phone="081-234", email="somjai.go.th"))
    assert {(p.code, p.cell) for p in result.problems} == {
        ("bad_phone", _header_cell("phone")),
        ("bad_email", _header_cell("email")),
    }
    phone = next(p for p in result.problems if p.code == "bad_phone")
    assert "081-234-5678" in phone.message_th and "(ได้รับ ‘081-234’)" in phone.message_th


def test_identity_needs_twenty_characters() -> None:
    problem = _only(_read(filled_form_bytes(identity=[{"text": "เมืองน่าอยู่"}])))
    assert (problem.code, problem.part, problem.cell) == (
        "too_short",
        "identity",
        _cell("identity", "text"),
    )
    assert "อย่างน้อย 20 ตัวอักษร (ได้รับ 12 ตัวอักษร)" in problem.message_th


@pytest.mark.parametrize("part", ["goals", "approaches", "indicators", "projects", "identity"])
def test_each_required_part_needs_a_row(part: str) -> None:
    overrides: dict[str, Any] = {part: []}
    problem = _only(_read(filled_form_bytes(**overrides)))
    plan = layout(default_spec())
    assert (problem.code, problem.part, problem.cell) == (
        "empty_part",
        part,
        f"A{plan.headings[part]}",
    )
    assert "อย่างน้อย 1 รายการ" in problem.message_th


def test_partners_are_optional() -> None:
    assert _read(filled_form_bytes(partners=[])).valid


def test_axis_message_matches_the_brief() -> None:
    problem = _only(_read(filled_form_bytes(projects=_projects(axis=4))))
    assert problem.message_th == "ช่อง ‘แกนหลัก’ ต้องเป็นเลข 1, 2 หรือ 3 (ได้รับ ‘4’)"
    assert (problem.part, problem.column, problem.cell) == (
        "projects",
        "แกนหลัก",
        _cell("projects", "axis"),
    )
    assert problem.row == int(_cell("projects", "axis")[1:])


def test_axis_required_in_approaches() -> None:
    approaches = sample_parts()["approaches"]
    approaches[1]["axis"] = None
    problem = _only(_read(filled_form_bytes(approaches=approaches)))
    assert (problem.code, problem.cell) == ("missing_field", _cell("approaches", "axis", 1))


def test_indicator_and_target_required() -> None:
    indicators = sample_parts()["indicators"]
    indicators[0] |= {"indicator": None, "target": None}
    result = _read(filled_form_bytes(indicators=indicators))
    assert {(p.code, p.column) for p in result.problems} == {
        ("missing_field", "ตัวชี้วัด"),
        ("missing_field", "ค่าเป้าหมาย"),
    }


@pytest.mark.parametrize(
    ("key", "value", "code", "snippet"),
    [
        ("term", "กลาง", "bad_choice", "ต้องเป็น ‘ระยะสั้น’ หรือ ‘ระยะยาว’ (ได้รับ ‘กลาง’)"),
        ("budget", "สิบล้าน", "budget_words", "เป็นตัวเลข ไม่ใช่ตัวหนังสือ"),
        ("budget", "ประมาณสิบล้าน 5", "bad_budget", "12,500,000 หรือ 12.5 ล้านบาท"),
        ("budget", -5000, "negative_budget", "ตั้งแต่ 0 บาทขึ้นไป (ได้รับ ‘-5000’)"),
        ("fiscal_year", 2590, "bad_fiscal_year", "พ.ศ. 2567 ถึง 2580 (ได้รับ ‘2590’)"),
        ("agency", None, "missing_field", "‘หน่วยงานรับผิดชอบ’"),
        ("name", None, "missing_field", "‘ชื่อแผนงาน/โครงการ’"),
    ],
)
def test_project_rules(key: str, value: Any, code: str, snippet: str) -> None:
    problem = _only(_read(filled_form_bytes(projects=_projects(1, **{key: value}))))
    assert (problem.code, problem.severity, problem.part) == (code, "error", "projects")
    assert problem.cell == _cell("projects", key, 1)
    assert snippet in problem.message_th
    assert problem.where_th() == f"ไฟล์ form.xlsx แผ่นงาน {SHEET} เซลล์ {problem.cell}"


def test_ce_year_is_a_warning_and_the_form_stays_valid() -> None:
    result = _read(warning_form_bytes())
    problem = _only(result)
    assert (problem.code, problem.severity) == ("fiscal_year_ce", "warning")
    assert "ค.ศ. ‘2024’" in problem.message_th and "พ.ศ. 2567" in problem.message_th
    assert result.valid and result.errors == []
    assert result.data is not None and result.data.parts["projects"][0]["fiscal_year"] == 2567


def test_errors_helper_gives_the_documented_codes() -> None:
    result = _read(form_with_errors_bytes())
    assert {p.code for p in result.problems} == ERRORS_EXPECTED
    assert not result.valid
    assert all(p.cell and p.sheet == SHEET for p in result.problems)


def test_invalid_values_are_kept_as_received() -> None:
    result = _read(filled_form_bytes(projects=_projects(0, budget="สิบล้าน", axis="๔")))
    assert result.data is not None
    assert result.data.parts["projects"][0]["budget"] == "สิบล้าน"
    assert result.data.parts["projects"][0]["axis"] == "๔"


def test_missing_label_part_and_column() -> None:
    rows = handmade_rows()
    rows = [r for r in rows if not r or r[0] not in ("ผู้ประสานงาน", "๒. เป้าหมาย")]
    goals = next(i for i, r in enumerate(rows) if r and r[0] == 1 and r[1] == "ยกระดับเมืองน่าอยู่")
    del rows[goals]
    rows[-2][6] = "หมายเหตุ"  # the agency column lost its label
    (result,) = read_forms("f.xlsx", "xlsx", xlsx_from_rows({"S": rows}), default_spec())
    assert {(p.code, p.part, p.column) for p in result.problems} == {
        ("missing_label", "header", "ผู้ประสานงาน"),
        ("missing_part", "goals", None),
        ("missing_column", "projects", "หน่วยงานรับผิดชอบ"),
    }
    part = next(p for p in result.problems if p.code == "missing_part")
    assert part.message_th.startswith("ไม่พบหัวข้อ ‘๒. เป้าหมาย’")
    assert (part.sheet, part.cell) == ("S", None)


def test_validate_works_on_plain_data_without_locations() -> None:
    header, parts = expected_records()
    parts["projects"][0]["budget"] = "12.5 ล้านบาท"
    assert validate(FormData(header, parts), default_spec()) == []
    header["phone"] = "12"
    (problem,) = validate(FormData(header, parts), default_spec(), filename="x.xlsx")
    assert (problem.code, problem.cell, problem.filename) == ("bad_phone", None, "x.xlsx")


def test_budget_is_normalised_to_decimal() -> None:
    result = _read(filled_form_bytes(projects=_projects(0, budget="๑๒.๕ ล้านบาท")))
    assert result.valid
    assert result.data is not None
    assert result.data.parts["projects"][0]["budget"] == Decimal("12500000")
