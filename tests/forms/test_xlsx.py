"""The one-pass sheet reader (`intake/forms/xlsx.py`) gives exactly openpyxl's values.

openpyxl is the reference: each test reads the same bytes with both (`_xlsx_direct` and
`_xlsx_openpyxl` in sources.py) and compares sheet names, every cell value with its type, the
formulas saved without a result, and the template version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from io import BytesIO
from typing import Any
from zipfile import ZipFile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from intake.forms import sources, xlsx
from intake.forms.reader import read_forms
from intake.forms.sources import SourceProblem
from intake.forms.template import write_template
from tests.forms.builders import (
    default_spec,
    filled_form_bytes,
    form_with_errors_bytes,
    multi_form_bytes,
    read_member,
    replace_member,
    warning_form_bytes,
    workbook_bytes,
    xlsx_from_rows,
)

SPEC = default_spec()


@pytest.fixture(autouse=True, params=["whole", "streamed"])
def sheet_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test twice: sheets parsed whole (small parts) and streamed row by row (big ones)."""
    if request.param == "streamed":
        monkeypatch.setattr(xlsx, "WHOLE_SHEET_BYTES", 0)


def typed(grids: list[sources.Grid]) -> list[tuple[Any, ...]]:
    """Sheet names and cells with their types (1 == 1.0 == True must not pass as equal)."""
    return [(g.name, [[(type(v).__name__, v) for v in row] for row in g.rows]) for g in grids]


def assert_same(data: bytes) -> sources.Source:
    """The one-pass reader gives openpyxl's values; calamine, when its gate lets the workbook
    through, gives the same again."""
    direct = sources._xlsx_direct(data, SPEC, lambda g: True)
    reference = sources._xlsx_openpyxl(data, SPEC, lambda g: True)
    assert typed(direct.grids) == typed(reference.grids)
    assert direct.template_version == reference.template_version
    fast = sources._xlsx_calamine(data, SPEC)
    if fast is not None:
        assert typed(fast.grids) == typed(direct.grids)
        assert fast.template_version == direct.template_version
    return direct


def template_bytes() -> bytes:
    buffer = BytesIO()
    write_template(SPEC, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        filled_form_bytes,
        lambda: filled_form_bytes("ขอนแก่น", thai_digits=True),
        form_with_errors_bytes,
        warning_form_bytes,
        lambda: multi_form_bytes([("เชียงใหม่", "จังหวัด"), ("ลำพูน", "จังหวัด")]),
        template_bytes,
    ],
    ids=["filled", "thai-digits", "errors", "warnings", "two-forms", "blank-template"],
)
def test_every_built_form_reads_the_same(make: Any) -> None:
    data = make()
    source = assert_same(data)
    assert source.grids and any(any(row) for row in source.grids[0].rows)
    assert sources._xlsx_calamine(data, SPEC) is not None, "a plain form takes the fast path"


@pytest.mark.parametrize(
    "cells",
    [
        '<c r="A1"><f>1+1</f></c>',  # a formula without a result: only xlsx.py reports it
        '<c r="A1"><f>B1</f><v>2</v></c>',  # any formula
        '<c r="A1" t="e"><v>#N/A</v></c>',  # calamine reads an error as empty
        '<c r="A1"><v>2.0</v></c>',  # openpyxl: 2.0, calamine: 2
        '<c r="A1"><v>1E+3</v></c>',
        '<c r="A1"><v>9007199254740993</v></c>',  # past a float's exact whole numbers
        '<c r="XFD1048576"><v>1</v></c>',  # calamine's dense grid would abort the process
        '<c r="CW1"><v>1</v></c>',  # column 101: past max_columns
        "<c><v>1</v></c>",  # a cell that does not say where it is
        '<c r="A1"><v>1</v></c><!-- a comment -->',
        '<c\nr="XFD1048576"><v>1</v></c>',  # a cell the plain counts would not see
        '<c r="A1" s="0"><v>1</v></c><x:c r="XFD1048576"><x:v>1</x:v></x:c>',  # a prefix
    ],
)
def test_what_calamine_would_read_otherwise_goes_to_the_one_pass_reader(cells: str) -> None:
    data = _with_sheet_xml(f'<sheetData><row r="1">{cells}</row></sheetData>')
    assert sources._xlsx_calamine(data, SPEC) is None


def test_a_sheet_part_not_named_xml_is_scanned_too() -> None:
    """calamine reads a sheet wherever the workbook's relationships point, `sheet1.dat` too."""
    data = _with_sheet_xml('<sheetData><row r="1"><c r="XFD1048576"><v>1</v></c></row></sheetData>')
    out = BytesIO()
    with ZipFile(BytesIO(data)) as zin, ZipFile(out, "w") as zout:
        for item in zin.infolist():
            part = zin.read(item.filename)
            name = item.filename.replace("sheet1.xml", "sheet1.dat")
            zout.writestr(name, part.replace(b"sheet1.xml", b"sheet1.dat"))
    assert sources._xlsx_calamine(out.getvalue(), SPEC) is None


def test_rows_and_cells_past_the_limits_go_to_the_one_pass_reader() -> None:
    row = '<row r="1">' + '<c r="A1"><v>1</v></c>' * 20 + "</row>"
    data = _with_sheet_xml(f"<sheetData>{row}</sheetData>")
    limits = dataclasses.replace(SPEC.limits, max_row_cells=19)
    assert sources._xlsx_calamine(data, dataclasses.replace(SPEC, limits=limits)) is None
    limits = dataclasses.replace(SPEC.limits, max_cells=19)
    assert sources._xlsx_calamine(data, dataclasses.replace(SPEC, limits=limits)) is None
    assert sources._xlsx_calamine(data, SPEC) is not None


def test_template_version_is_read_from_the_marker_sheet() -> None:
    source = assert_same(filled_form_bytes())
    assert source.template_version is not None
    assert all(g.name != SPEC.template.marker_sheet for g in source.grids)


def test_values_of_every_type_and_gaps() -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "ข้อมูล"
    ws["A1"] = "ภาษาไทย  มีช่องว่าง "
    ws["C1"] = 12
    ws["D1"] = 12.5
    ws["E1"] = -3e-7
    ws["F1"] = True
    ws["G1"] = False
    ws["A3"] = dt.datetime(2024, 1, 22, 16, 30)
    ws["B3"] = dt.date(2024, 1, 22)
    ws["C3"] = dt.time(9, 15)
    ws["D3"] = Decimal("350000.50")
    ws["E3"] = 45313
    ws["E3"].number_format = "d mmm yyyy"
    ws["F3"] = 1.5
    ws["F3"].number_format = "[h]:mm"
    ws["G3"] = ""
    ws["H3"] = "ท้าย"
    ws["A7"] = "=SUM(C1:D1)"  # saved without a result by openpyxl
    ws["B7"] = "x005F_เครื่องหมาย"
    wb.create_sheet("ว่าง")
    hidden = wb.create_sheet("ซ่อน")
    hidden.sheet_state = "hidden"
    hidden["B2"] = "ในแผ่นที่ซ่อน"
    source = assert_same(workbook_bytes(wb))
    assert source.grids[0].get(6, 0) == sources.Uncalculated("=SUM(C1:D1)")
    assert isinstance(source.grids[0].get(2, 0), dt.datetime)
    assert [g.name for g in source.grids] == ["ข้อมูล", "ว่าง", "ซ่อน"]


def test_1904_dates() -> None:
    wb = Workbook()
    wb.epoch = dt.datetime(1904, 1, 1)
    wb.active["A1"] = dt.date(2024, 1, 22)
    source = assert_same(workbook_bytes(wb))
    assert source.grids[0].get(0, 0) == dt.datetime(2024, 1, 22)


def _with_sheet_xml(body: str, strings: str | None = None) -> bytes:
    """A workbook whose first sheet's <sheetData> (and shared strings) are written by hand."""
    data = xlsx_from_rows({"แผ่น1": [["x"]]})
    sheet = read_member(data, "xl/worksheets/sheet1.xml")
    start, end = sheet.index("<sheetData>"), sheet.index("</sheetData>") + len("</sheetData>")
    data = replace_member(data, "xl/worksheets/sheet1.xml", sheet[:start] + body + sheet[end:])
    if strings is not None:  # openpyxl writes inline strings: add a shared-string part
        types = read_member(data, "[Content_Types].xml").replace(
            "</Types>",
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        )
        data = replace_member(data, "[Content_Types].xml", types)
        data = replace_member(data, "xl/sharedStrings.xml", strings)
    return data


SST = (
    '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    "<si><t>ธรรมดา</t></si>"
    '<si><r><t>ตัว</t></r><r><rPr><b/></rPr><t xml:space="preserve">หนา </t></r>'
    '<rPh sb="0" eb="1"><t>phonetic</t></rPh></si>'
    "<si><t/></si>"
    "</sst>"
)


def test_hand_written_cells_read_as_openpyxl_reads_them() -> None:
    body = (
        "<sheetData>"
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="C1" t="s"><v>1</v></c>'
        '<c r="D1" t="s"><v>2</v></c></row>'
        '<row r="2"><c t="inlineStr"><is><t>ไม่มีที่อยู่</t></is></c>'
        '<c t="inlineStr"><is><r><t>หลาย</t></r><r><t>ช่วง</t></r></is></c>'
        '<c t="str"><f>A1</f><v>ผลสูตร</v></c><c t="e"><f>1/0</f><v>#DIV/0!</v></c>'
        '<c t="b"><v>1</v></c><c t="n"><v></v></c><c><v>7</v></c></row>'
        '<row><c r="B3" t="d"><v>2024-01-22T09:30:00</v></c></row>'
        '<row r="5"><c r="A5"><f t="shared" ref="A5:A7" si="0">B5*2</f><v>4</v></c>'
        '<c r="B5"><v>2</v></c></row>'
        '<row r="6"><c r="A6"><f t="shared" si="0"/></c><c r="B6"><v>3</v></c></row>'
        '<row r="7.0"><c r="A7"><f t="array" ref="A7">SUM(B5:B6)</f></c>'
        '<c r="B7"><f t="dataTable" ref="B7" dt2D="0" dtr="0" r1="A1"/></c></row>'
        '<row r="4"><c r="A4"><v>99</v></c></row>'
        "</sheetData>"
    )
    source = assert_same(_with_sheet_xml(body, SST))
    grid = source.grids[0]
    assert grid.rows[0] == ["ธรรมดา", None, "ตัวหนา "]  # a trailing "" is a blank
    assert grid.get(5, 0) == sources.Uncalculated("=B6*2")
    assert grid.get(6, 0) == sources.Uncalculated("=SUM(B5:B6)")


def test_blank_cells_past_the_column_limit_are_ignored_but_values_refused() -> None:
    blank = '<sheetData><row r="1"><c r="A1"><v>1</v></c><c r="ZZ1" t="inlineStr"><is><t></t></is></c></row></sheetData>'
    assert assert_same(_with_sheet_xml(blank)).grids[0].rows == [[1]]
    full = '<sheetData><row r="1"><c r="A1"><v>1</v></c><c r="ZZ1"><v>2</v></c></row></sheetData>'
    with pytest.raises(SourceProblem) as direct:
        sources._xlsx_direct(_with_sheet_xml(full), SPEC, lambda g: True)
    with pytest.raises(SourceProblem) as reference:
        sources._xlsx_openpyxl(_with_sheet_xml(full), SPEC, lambda g: True)
    assert direct.value.code == reference.value.code == "too_large"


def test_rows_past_the_limit_are_refused_while_streaming() -> None:
    rows = "".join(f'<row r="{n}"><c r="A{n}"><v>{n}</v></c></row>' for n in range(1, 5003))
    with pytest.raises(SourceProblem) as exc:
        sources._xlsx_direct(
            _with_sheet_xml(f"<sheetData>{rows}</sheetData>"), SPEC, lambda g: True
        )
    assert exc.value.code == "too_large" and "5,000" in exc.value.detail


def test_what_the_reader_does_not_handle_goes_to_openpyxl() -> None:
    data = _with_sheet_xml('<sheetData><row r="1.5"><c r="A1"><v>1</v></c></row></sheetData>')
    with pytest.raises(xlsx.Unsupported):
        sources._xlsx_direct(data, SPEC, lambda g: True)
    # openpyxl refuses a fractional row number too: the file is reported, not lost
    (result,) = read_forms("form.xlsx", "xlsx", data, SPEC)
    assert [p.code for p in result.problems] == ["corrupt"]


def test_an_entity_in_a_sheet_is_not_expanded() -> None:
    body = '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&amp;&#3585;</t></is></c></row></sheetData>'
    assert assert_same(_with_sheet_xml(body)).grids[0].rows == [["&ก"]]


CELL = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from("กขคงจ ๑๒๓abc=_-x005F\t"), max_size=12),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.dates(dt.date(1901, 1, 1), dt.date(2200, 1, 1)),
    st.sampled_from(["=1+1", "=A1", "=SUM(A1:B2)"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(CELL, max_size=8), max_size=12), st.lists(st.integers(0, 11), max_size=3))
def test_generated_workbooks_read_the_same(rows: list[list[Any]], gaps: list[int]) -> None:
    wb = Workbook()
    ws = wb.active
    for r, row in enumerate(rows, start=1):
        if r in gaps:
            continue
        for c, value in enumerate(row, start=1):
            ws.cell(row=r, column=c, value=value)
    assert_same(workbook_bytes(wb))


@pytest.mark.parametrize("expand", [False, True], ids=["one-entity", "entity-bomb"])
def test_a_dtd_after_a_long_comment_is_refused(expand: bool) -> None:
    """The zip check looks for a DTD in each part's first 64 KB; a DTD pushed past that by a
    comment must still be refused, never expanded."""
    data = xlsx_from_rows({"แผ่น1": [["x"]]})
    sheet = read_member(data, "xl/worksheets/sheet1.xml")
    root = sheet.index("<worksheet")
    entities = '<!ENTITY a "' + "ก" * 1000 + '">'
    if expand:
        for name, inner in (("b", "a"), ("c", "b"), ("d", "c")):
            entities += f'<!ENTITY {name} "{f"&{inner};" * 10}">'
    dtd = f"<!--{' ' * 70_000}--><!DOCTYPE worksheet [{entities}]>"
    body = (
        sheet[:root] + dtd + sheet[root:].replace("<t>x</t>", f"<t>&{'d' if expand else 'a'};</t>")
    )
    hostile = replace_member(data, "xl/worksheets/sheet1.xml", body)
    with pytest.raises(SourceProblem) as exc:
        sources._xlsx_direct(hostile, SPEC, lambda g: True)
    assert exc.value.code == "unsafe_file"
    (result,) = read_forms("form.xlsx", "xlsx", hostile, SPEC)
    assert [p.code for p in result.problems] == ["unsafe_file"]


def test_a_calamine_panic_falls_back_instead_of_escaping(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Rust panic reaches Python as pyo3's PanicException, a BaseException: it must end in
    the one-pass reader, not in the worker."""
    from intake.forms import calamine

    class PanicException(BaseException):
        pass

    def panic(data: bytes) -> Any:
        raise PanicException("index out of bounds")
        yield  # pragma: no cover - a generator, like the real one

    monkeypatch.setattr(calamine, "worksheets", panic)
    (result,) = read_forms("f.xlsx", "xlsx", filled_form_bytes(), SPEC)
    assert result.valid, result.problems
