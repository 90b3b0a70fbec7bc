"""Finding the form by its labels in workbooks people have changed (form.md, failure modes 43-47)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from io import BytesIO
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from intake.forms import FormResult, read_forms
from intake.forms.template import layout
from tests.forms.builders import (
    default_spec,
    expected_records,
    filled_form_bytes,
    filled_workbook,
    handmade_rows,
    read_member,
    replace_member,
    workbook_bytes,
    xlsx_from_rows,
)


def _read(data: bytes, kind: str = "xlsx") -> list[FormResult]:
    return read_forms("form.xlsx", kind, data, default_spec())


def _one(data: bytes, kind: str = "xlsx") -> FormResult:
    results = _read(data, kind)
    assert len(results) == 1, results
    return results[0]


def _valid(data: bytes, kind: str = "xlsx") -> FormResult:
    result = _one(data, kind)
    assert result.valid, [p.message_th for p in result.problems]
    return result


def _project(result: FormResult) -> dict[str, Any]:
    assert result.data is not None
    return result.data.parts["projects"][0]


def test_handmade_form_is_read() -> None:
    result = _valid(xlsx_from_rows({"Sheet1": handmade_rows()}))
    assert result.data is not None
    assert result.data.header["phone"] == "0812345678"
    assert result.data.parts["goals"] == [{"text": "ยกระดับเมืองน่าอยู่"}]  # row number dropped
    assert _project(result)["budget"] == Decimal("12500000")


def test_renamed_sheet_and_form_on_a_later_sheet() -> None:
    data = xlsx_from_rows(
        {"หนังสือนำส่ง": [["ที่ ชม 0017/123"], ["เรื่อง ส่งข้อมูล"]], "Sheet1 (2)": handmade_rows()}
    )
    result = _valid(data)
    assert result.sheet == "Sheet1 (2)"


def test_inserted_title_and_blank_rows_shift_the_cells_reported() -> None:
    rows = handmade_rows(axis=7)
    rows = [["จังหวัดเชียงใหม่"], [], ["ข้อมูล ณ วันที่ 15 มกราคม 2567"], [], *rows[:7], [], [], *rows[7:]]
    result = _one(xlsx_from_rows({"ข้อมูล": rows}))
    (problem,) = result.problems
    assert problem.code == "bad_axis"
    project_row = next(i for i, r in enumerate(rows, 1) if r and r[0] == 1 and len(r) == 8)
    assert (problem.sheet, problem.cell, problem.row) == ("ข้อมูล", f"C{project_row}", project_row)


def test_merged_label_and_value_cells_are_read_from_top_left() -> None:
    rows = handmade_rows()
    kind, name = rows[1], rows[2]
    identity = rows[8]
    # "ประเภท" label merged over two rows (A2:A3), its value in B2; the name row moves down
    rows[1:3] = [kind, [None, None], name]
    # the identity text sits in a block merged over A10:H11 (top-left A10)
    index = rows.index(identity)
    rows[index : index + 1] = [identity, []]
    merges = ["A2:A3", f"A{index + 1}:H{index + 2}", "B4:D4"]
    result = _valid(xlsx_from_rows({"S": rows}, merges={"S": merges}))
    assert result.data is not None
    assert result.data.header["kind"] == "จังหวัด"
    assert result.data.header["entity_name"] == "เชียงใหม่"
    assert result.data.parts["identity"] == [{"text": identity[0]}]


def test_template_merges_survive() -> None:
    # the template merges label cells (A:B), value cells (C:H) and free-text rows (A:H)
    _valid(filled_form_bytes())


def test_labels_with_zero_width_and_odd_spaces() -> None:
    def noisy(label: str) -> str:
        return " \u200b".join(label[i : i + 3] for i in range(0, len(label), 3)) + "\u00a0:"

    result = _valid(xlsx_from_rows({"S": handmade_rows(label=noisy)}))
    assert _project(result)["agency"] == "สำนักงานจังหวัด"


def test_numbered_labels_arabic_thai_or_none() -> None:
    def renumber(label: str) -> str:
        return re.sub(r"^([๐-๙])\.", lambda m: str("๐๑๒๓๔๕๖๗๘๙".index(m.group(1))) + ")", label)

    def unnumber(label: str) -> str:
        return re.sub(r"^[๐-๙]\.\s*", "", label)

    for relabel in (renumber, unnumber, lambda text: "ข้อ " + text if text[0] in "๑๒๓๔๕" else text):
        _valid(xlsx_from_rows({"S": handmade_rows(label=relabel)}))


def test_thai_digits_and_numbers_stored_as_text() -> None:
    rows = handmade_rows(
        budget="๑๒,๕๐๐,๐๐๐", axis="๑", fiscal_year="๒๕๖๗", phone="๐๘๑-๒๓๔-๕๖๗๘", target="๑๕%"
    )
    thai = _valid(xlsx_from_rows({"S": rows}))
    text = _valid(
        xlsx_from_rows({"S": handmade_rows(budget="12500000", axis="1", fiscal_year="2567")})
    )
    number = _valid(xlsx_from_rows({"S": handmade_rows()}))
    assert _project(thai) == _project(text) == _project(number)
    assert thai.data is not None and thai.data.parts["indicators"][0]["target"] == "15%"


def test_columns_in_another_order_with_an_extra_column() -> None:
    rows = handmade_rows()
    header, values = rows[-2], rows[-1]
    order = [7, 6, 4, 3, 2, 1, 0, 5]
    rows[-2] = [header[i] for i in order] + ["หมายเหตุ"]
    rows[-1] = [values[i] for i in order] + ["ดำเนินการแล้ว"]
    result = _valid(xlsx_from_rows({"S": rows}))
    assert _project(result)["fiscal_year"] == 2567
    assert "หมายเหตุ" not in _project(result)


def test_total_row_and_signature_block_are_not_projects() -> None:
    rows = handmade_rows()
    rows += [[None, "รวม", None, None, 12500000], [], [], [], ["ลงชื่อ ............ ผู้รายงาน"]]
    result = _valid(xlsx_from_rows({"S": rows}))
    assert result.data is not None and len(result.data.parts["projects"]) == 1


def test_form_spread_over_two_sheets_is_one_form() -> None:
    rows = handmade_rows(axis=9)
    cut = next(i for i, r in enumerate(rows) if r and r[0] == "๕. แผนงาน/โครงการสำคัญ")
    result = _one(xlsx_from_rows({"ข้อมูลทั่วไป": rows[:cut], "โครงการ": rows[cut:]}))
    assert result.sheet == "ข้อมูลทั่วไป"
    (problem,) = result.problems
    assert (problem.code, problem.sheet, problem.cell) == ("bad_axis", "โครงการ", "C3")


def test_sheet_without_labels_is_skipped_and_no_form_is_reported() -> None:
    data = xlsx_from_rows({"a": [["สวัสดี"], [1, 2, 3]], "b": [["ลำดับ", "ชื่อ"]]})
    (result,) = _read(data)
    assert result.data is None
    assert [p.code for p in result.problems] == ["not_a_form"]
    assert "Excel (.xlsx)" in result.problems[0].message_th


def _with_formula(data: bytes, cached: str | None) -> bytes:
    """Put a formula into the first project's budget, with or without a cached result."""
    spec = default_spec()
    wb = load_workbook(BytesIO(data))
    plan = layout(spec, {"projects": 2})
    r, c = plan.rows["projects"][0], plan.columns["projects"]["budget"]
    ws = wb[spec.template.sheet]
    ws.cell(r, c, "=10000000+2500000")
    patched = workbook_bytes(wb)
    if cached is None:
        return patched
    xml = read_member(patched, "xl/worksheets/sheet1.xml")
    ref = ws.cell(r, c).coordinate
    xml, count = re.subn(
        rf'(<c r="{ref}"[^>]*>\s*<f>[^<]*</f>)\s*(<v\s*/>|<v></v>)?', rf"\1<v>{cached}</v>", xml
    )
    assert count == 1
    return replace_member(patched, "xl/worksheets/sheet1.xml", xml)


def test_formula_with_cached_value_is_read() -> None:
    result = _valid(_with_formula(filled_form_bytes(), "12500000"))
    assert _project(result)["budget"] == Decimal("12500000")


def test_formula_without_cached_value_is_a_problem_not_an_empty_cell() -> None:
    result = _one(_with_formula(filled_form_bytes(), None))
    assert [p.code for p in result.problems] == ["formula_no_value"]
    (problem,) = result.problems
    assert problem.column == "งบประมาณ (บาท)" and problem.cell and problem.cell.startswith("E")
    assert "สูตร" in problem.message_th and "Excel" in problem.message_th


def test_wrong_declared_dimensions_do_not_truncate() -> None:
    data = filled_form_bytes()
    xml = read_member(data, "xl/worksheets/sheet1.xml")
    xml = re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:A1"/>', xml)
    assert '<dimension ref="A1:A1"/>' in xml
    result = _valid(replace_member(data, "xl/worksheets/sheet1.xml", xml))
    header, parts = expected_records()
    assert result.data is not None and result.data.parts == parts


def test_xlsm_is_read_without_macros() -> None:
    data = filled_form_bytes()
    types = read_member(data, "[Content_Types].xml").replace(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    )
    data = replace_member(data, "[Content_Types].xml", types)
    data = replace_member(data, "xl/vbaProject.bin", b"\xd0\xcf\x11\xe0 not run")
    _valid(data, kind="xlsm")


def test_sniffed_kind_is_checked_against_the_bytes() -> None:
    # a real xlsx that the sniffer called "zip" or "other" is still read
    _valid(filled_form_bytes(), kind="zip")
    _valid(filled_form_bytes(), kind="other")


def test_filled_workbook_helper_is_editable() -> None:
    wb = filled_workbook()
    wb.active.title = "ของจังหวัด"  # type: ignore[union-attr]
    assert _valid(workbook_bytes(wb)).sheet == "ของจังหวัด"


def test_a_sheet_of_junk_gives_a_bounded_list_of_problems() -> None:
    rows = handmade_rows() + [[i, f"แถว {i}", 9] for i in range(2, 400)]
    result = _one(xlsx_from_rows({"S": rows}))
    limit = default_spec().limits.max_problems
    assert len(result.problems) == limit
    last = result.problems[-1]
    assert (last.code, last.severity) == ("more_problems", "error")
    assert "อีก" in last.message_th


def test_dates_follow_the_1904_calendar_of_the_workbook() -> None:
    wb = load_workbook(
        BytesIO(xlsx_from_rows({"S": handmade_rows(fiscal_year=datetime(2024, 10, 1))}))
    )
    wb.epoch = CALENDAR_MAC_1904
    result = _one(workbook_bytes(wb))
    assert _project(result)["fiscal_year"] == 2567
    assert [p.code for p in result.problems] == ["fiscal_year_ce"]


def test_old_xls_is_read() -> None:
    import xlwt  # a test extra: the service reads .xls (xlrd) but never writes one

    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    for r, row in enumerate(handmade_rows()):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    buffer = BytesIO()
    book.save(buffer)
    result = _valid(buffer.getvalue(), kind="xls")
    assert _project(result)["budget"] == Decimal("12500000")


def test_pre_numbered_empty_list_rows_are_not_items() -> None:
    rows = handmade_rows()
    goals = next(i for i, r in enumerate(rows) if r and r[0] == "๒. เป้าหมาย")
    rows[goals + 2 : goals + 2] = [[2], ["๓."], ["-"], [4, "  "]]
    result = _valid(xlsx_from_rows({"S": rows}))
    assert result.data is not None
    assert result.data.parts["goals"] == [{"text": "ยกระดับเมืองน่าอยู่"}]
