"""The published template: its shape, and that a filled copy reads back to the same records."""

from __future__ import annotations

from decimal import Decimal
from io import BytesIO

import pytest
from openpyxl import load_workbook

from intake.forms import read_forms, write_template
from intake.forms.template import BUDGET_FORMAT
from tests.forms.builders import (
    default_spec,
    expected_records,
    filled_form_bytes,
    libreoffice_convert,
    multi_form_bytes,
)


def _template() -> tuple[bytes, object]:
    buffer = BytesIO()
    plan = write_template(default_spec(), buffer)
    return buffer.getvalue(), plan


def test_template_has_labels_title_validations_and_version_marker() -> None:
    spec = default_spec()
    data, plan = _template()
    wb = load_workbook(BytesIO(data))
    ws = wb[spec.template.sheet]
    assert ws["A1"].value == spec.title
    assert ws.freeze_panes == "A2"
    assert wb.sheetnames == [spec.template.sheet, spec.template.instructions_sheet, "_intake"]
    marker = wb["_intake"]
    assert marker.sheet_state == "veryHidden"
    assert (marker["A1"].value, marker["B1"].value) == ("intake-form", spec.version)
    texts = {str(c.value) for row in ws.iter_rows() for c in row if c.value}
    assert "๕. แผนงาน/โครงการสำคัญ" in texts
    assert "งบประมาณ (บาท) *" in texts and "ปีงบประมาณ *" in texts
    lists = {dv.formula1 for dv in ws.data_validations.dataValidation if dv.type == "list"}
    assert {'"กลุ่มจังหวัด,จังหวัด"', '"1,2,3"', '"ระยะสั้น,ระยะยาว"'} <= lists
    budget_col = plan.columns["projects"]["budget"]  # type: ignore[attr-defined]
    first = plan.rows["projects"][0]  # type: ignore[attr-defined]
    assert ws.cell(first, budget_col).number_format == BUDGET_FORMAT
    assert ws.cell(*plan.header["phone"]).number_format == "@"  # type: ignore[attr-defined]
    assert ws.column_dimensions["B"].width >= 40
    assert ws.cell(first, 2).alignment.wrap_text


def test_blank_template_is_a_form_with_only_missing_values() -> None:
    data, _ = _template()
    (result,) = read_forms("แบบฟอร์ม.xlsx", "xlsx", data, default_spec())
    assert result.template_version == default_spec().version
    assert result.sheet == default_spec().template.sheet
    assert {p.code for p in result.problems} == {"missing_field", "empty_part"}


def test_round_trip_reads_back_identical_records() -> None:
    (result,) = read_forms("form.xlsx", "xlsx", filled_form_bytes(), default_spec())
    header, parts = expected_records()
    assert result.valid, result.problems
    assert result.problems == []
    assert result.data is not None
    assert result.data.header == header
    assert result.data.parts == parts
    assert isinstance(result.data.parts["projects"][0]["budget"], Decimal)


def test_round_trip_with_thai_digits_everywhere() -> None:
    (result,) = read_forms("form.xlsx", "xlsx", filled_form_bytes(thai_digits=True), default_spec())
    header, parts = expected_records()
    assert result.valid, result.problems
    assert result.data is not None
    assert (result.data.header, result.data.parts) == (header, parts)


def test_round_trip_for_a_cluster_with_many_projects() -> None:
    projects = [
        {
            "seq": i, "name": f"โครงการที่ {i}", "axis": 1 + i % 3, "term": "ระยะยาว",
            "budget": Decimal(i * 1000), "source": None, "agency": "กลุ่มจังหวัด",
            "fiscal_year": 2567 + i % 10,
        }
        for i in range(1, 41)
    ]  # fmt: skip
    name = "กลุ่มจังหวัดภาคเหนือตอนบน 1"
    data = filled_form_bytes(name, kind="กลุ่มจังหวัด", projects=projects)
    (result,) = read_forms("form.xlsx", "xlsx", data, default_spec())
    assert result.valid, result.problems
    assert result.data is not None
    assert result.data.header["kind"] == "กลุ่มจังหวัด"
    assert result.data.parts["projects"] == projects


def test_instructions_sheet_is_not_taken_for_a_form() -> None:
    results = read_forms("f.xlsx", "xlsx", filled_form_bytes(), default_spec())
    assert [r.sheet for r in results] == [default_spec().template.sheet]


def test_two_forms_in_one_workbook() -> None:
    data = multi_form_bytes([("กลุ่มจังหวัดภาคเหนือตอนบน 1", "กลุ่มจังหวัด"), ("เชียงใหม่", "จังหวัด")])
    results = read_forms("both.xlsx", "xlsx", data, default_spec())
    assert [(r.sheet, r.data.header["entity_name"]) for r in results if r.data] == [
        ("กลุ่มจังหวัดภาคเหนือตอนบน 1", "กลุ่มจังหวัดภาคเหนือตอนบน 1"),
        ("เชียงใหม่", "เชียงใหม่"),
    ]
    assert all(r.valid for r in results)


@pytest.fixture(scope="module")
def libreoffice_copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The filled and the blank template, each opened and saved again as .xlsx by LibreOffice."""
    sources = {"filled": filled_form_bytes(), "blank": _template()[0]}
    return libreoffice_convert(sources, "xlsx", tmp_path_factory.mktemp("libreoffice"))


def test_libreoffice_round_trip(libreoffice_copies: dict[str, bytes]) -> None:
    (result,) = read_forms("form.xlsx", "xlsx", libreoffice_copies["filled"], default_spec())
    header, parts = expected_records()
    assert result.valid, result.problems
    assert result.data is not None
    assert (result.data.header, result.data.parts) == (header, parts)
    assert result.template_version == default_spec().version  # the hidden marker survives


def test_libreoffice_files_read_the_same_by_both_readers(
    libreoffice_copies: dict[str, bytes],
) -> None:
    """LibreOffice writes shared strings and styles as office suites do (openpyxl writes inline
    strings): the one-pass reader must still give openpyxl's values, cell for cell."""
    from intake.forms import sources

    spec = default_spec()
    for data in libreoffice_copies.values():
        direct = sources._xlsx_direct(data, spec, lambda g: True)
        reference = sources._xlsx_openpyxl(data, spec, lambda g: True)
        assert [(g.name, g.rows) for g in direct.grids] == [
            (g.name, g.rows) for g in reference.grids
        ]
        assert [[type(v) for v in row] for g in direct.grids for row in g.rows] == [
            [type(v) for v in row] for g in reference.grids for row in g.rows
        ]
        assert direct.template_version == reference.template_version == spec.version


def test_blank_template_opens_cleanly_in_libreoffice(libreoffice_copies: dict[str, bytes]) -> None:
    spec = default_spec()
    data = libreoffice_copies["blank"]
    wb = load_workbook(BytesIO(data))
    assert wb.sheetnames == [spec.template.sheet, spec.template.instructions_sheet, "_intake"]
    assert wb["_intake"].sheet_state != "visible"
    ws = wb[spec.template.sheet]
    assert ws["A1"].value == spec.title
    lists = {dv.formula1 for dv in ws.data_validations.dataValidation if dv.type == "list"}
    assert {'"กลุ่มจังหวัด,จังหวัด"', '"1,2,3"', '"ระยะสั้น,ระยะยาว"'} <= lists
    (result,) = read_forms("แบบฟอร์ม.xlsx", "xlsx", data, spec)
    (original,) = read_forms("แบบฟอร์ม.xlsx", "xlsx", _template()[0], spec)
    assert result.template_version == spec.version
    assert [(p.code, p.cell) for p in result.problems] == [
        (p.code, p.cell) for p in original.problems
    ]
