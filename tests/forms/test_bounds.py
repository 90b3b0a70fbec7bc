"""Bounded work per file: every limit of `spec.Limits` is met while the bytes stream, before the
memory is spent, and ends as a `too_large` problem that names the figure in Thai, never as a
crash or an accepted form. Memory and time are measured around each read (`bounded`, which
resets the process's peak resident size first, so C allocations count too)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from io import BytesIO
from zipfile import ZIP_DEFLATED, ZipFile

import docx
import pytest

from intake.forms import FormResult, MessageBudget, read_forms, sources
from intake.forms import xlsx as xlsx_module
from intake.forms.spec import FormSpec
from tests.forms.bombs import SHEET, cell_bomb, shared_strings_bomb
from tests.forms.builders import default_spec, filled_form_bytes, read_member, replace_member
from tests.forms.test_hostile import bounded
from tests.mime_builders import build_cfb

FORM_SHEET = "xl/worksheets/sheet1.xml"


def _spec(**limits: int) -> FormSpec:
    spec = default_spec()
    return dataclasses.replace(spec, limits=dataclasses.replace(spec.limits, **limits))


def _too_large(data: bytes, spec: FormSpec | None = None, kind: str = "xlsx") -> str:
    results = read_forms("แบบฟอร์ม.xlsx", kind, data, spec or default_spec())
    assert len(results) == 1
    (result,) = results
    assert result.data is None, "a form past a limit must never be accepted"
    assert [p.code for p in result.problems] == ["too_large"], result.problems
    return result.problems[0].message_th


@pytest.fixture(params=["whole", "streamed"])
def sheet_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small sheets are parsed whole, big ones streamed: every sheet limit holds on both paths."""
    if request.param == "streamed":
        monkeypatch.setattr(xlsx_module, "WHOLE_SHEET_BYTES", 0)
    return str(request.param)


def _with_rows(rows_xml: str, sheet: str = SHEET) -> bytes:
    base = filled_form_bytes()
    xml = read_member(base, sheet).replace("</sheetData>", rows_xml + "</sheetData>")
    return replace_member(base, sheet, xml)


# ------------------------------------------------------------------ the bombs of the issue


def test_one_row_of_12_million_empty_cells_is_refused_at_once() -> None:
    data = cell_bomb()
    assert len(data) < 100 * 1024  # ~60 KB: 1.5 GB and 25 s before
    with bounded(5, 60):
        text = _too_large(data)
    assert "แถวที่ 1000 ของแผ่นงาน คำแนะนำ มีเซลล์มากกว่า 16,384 เซลล์" in text
    assert "เกินขีดจำกัดที่ระบบอ่านได้" in text and "แบบฟอร์ม.xlsx" in text


def test_9_5_million_empty_shared_strings_under_worksheets_are_refused() -> None:
    data = shared_strings_bomb()
    assert len(data) < 100 * 1024  # 1.3 GB, 30 s and an accepted form before
    with bounded(10, 60):
        text = _too_large(data)
    assert "xl/worksheets/sharedStrings.xml" in text and "500,000 รายการ" in text


def test_the_bombs_still_read_as_forms_when_the_hostile_part_is_small() -> None:
    """The bombs are real forms with one part added: under the limits they are simply read."""
    for data in (cell_bomb(cells=50), shared_strings_bomb(count=50)):
        (result,) = read_forms("แบบฟอร์ม.xlsx", "xlsx", data, default_spec())
        assert result.data is not None and result.valid, result.problems


# ------------------------------------------------------------------ each sheet limit


def test_cells_per_row(sheet_path: str) -> None:
    data = _with_rows('<row r="900">' + "<c/>" * 101 + "</row>")
    text = _too_large(data, _spec(max_row_cells=100))
    assert "แถวที่ 900 ของแผ่นงาน คำแนะนำ มีเซลล์มากกว่า 100 เซลล์" in text


def test_cells_per_sheet_empty_ones_included(sheet_path: str) -> None:
    rows = "".join(f'<row r="{900 + i}">' + "<c/>" * 50 + "</row>" for i in range(30))
    text = _too_large(_with_rows(rows), _spec(max_cells=1_000))
    assert "แผ่นงาน คำแนะนำ มีเซลล์มากกว่า 1,000 เซลล์" in text


def test_row_elements_per_sheet(sheet_path: str) -> None:
    rows = "".join(f'<row r="{900 + i}"/>' for i in range(2_000))
    text = _too_large(_with_rows(rows), _spec(max_cells=1_000))
    assert "แผ่นงาน คำแนะนำ มีแถวมากกว่า 1,000 แถว" in text


def test_a_form_within_the_limits_is_read_on_both_paths(sheet_path: str) -> None:
    (result,) = read_forms("ok.xlsx", "xlsx", filled_form_bytes(), default_spec())
    assert result.valid, result.problems


def test_shared_strings_by_characters() -> None:
    data = shared_strings_bomb(count=20)
    sst = read_member(data, "xl/worksheets/sharedStrings.xml")
    data = replace_member(
        data,
        "xl/worksheets/sharedStrings.xml",
        sst.replace("<si/>", "<si><t>" + "ก" * 100 + "</t></si>"),
    )
    text = _too_large(data, _spec(max_shared_chars=1_000))
    assert "มีตัวอักษรรวมกันมากกว่า 1,000 ตัว" in text


def test_markup_inside_one_cell_is_bounded_as_it_streams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No event fires inside a cell: the meter on the bytes stops it before lxml builds it."""
    monkeypatch.setattr(xlsx_module, "WHOLE_SHEET_BYTES", 0)
    data = _with_rows('<row r="900"><c r="A900">' + "<x/>" * 3_000_000 + "</c></row>")
    with bounded(5, 100):
        text = _too_large(data)
    assert "มีโครงสร้างภายในมากกว่า 200,000 ส่วน" in text


def test_markup_between_rows_is_dropped_as_rows_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Junk between rows resets nothing for the attacker: rows read are dropped with all that
    came before them, at every level (here between two sheetData), so memory stays flat."""
    monkeypatch.setattr(xlsx_module, "WHOLE_SHEET_BYTES", 0)
    base = filled_form_bytes()
    xml = read_member(base, SHEET)
    junk = "".join(
        f'<row r="{900 + i}"/></sheetData>' + "<x/>" * 100_000 + "<sheetData>" for i in range(40)
    )
    data = replace_member(base, SHEET, xml.replace("</sheetData>", junk + "</sheetData>", 1))
    with bounded(10, 100):
        (result,) = read_forms("แบบฟอร์ม.xlsx", "xlsx", data, default_spec())
    assert result.valid, result.problems  # 4 million junk elements, the form still read


def test_a_part_parsed_whole_is_counted_before_it_is_parsed() -> None:
    """styles.xml is parsed whole: 2 MB of attributes would be a 500 MB tree."""
    base = filled_form_bytes()
    styles = read_member(base, "xl/styles.xml")
    attrs = " ".join(f'a{i}="1"' for i in range(600_000))
    data = replace_member(
        base, "xl/styles.xml", styles.replace("<numFmts", f"<x {attrs}/><numFmts", 1)
    )
    with bounded(5, 100):
        text = _too_large(data)
    assert "xl/styles.xml" in text and "500,000" in text


# ------------------------------------------------------------------ the openpyxl fallback


def _unsupported(*args: object) -> None:
    raise xlsx_module.Unsupported("as if the one-pass reader did not handle this file")


def test_the_openpyxl_fallback_reads_a_form_within_the_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sources, "_xlsx_direct", _unsupported)
    (result,) = read_forms("ok.xlsx", "xlsx", filled_form_bytes(), default_spec())
    assert result.valid, result.problems


@pytest.mark.parametrize("bomb", [cell_bomb, shared_strings_bomb])
def test_the_openpyxl_fallback_cannot_bypass_the_limits(
    bomb: Callable[[], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object) -> None:
        raise AssertionError("openpyxl was given a file past the limits")

    monkeypatch.setattr(sources, "_xlsx_direct", _unsupported)
    monkeypatch.setattr(sources, "_xlsx_openpyxl", never)
    data = bomb()
    with bounded(5, 60):
        text = _too_large(data)
    assert "มากกว่า 500,000 ส่วน เกินขีดจำกัดที่ระบบอ่านได้" in text


def test_a_real_fallback_trigger_before_a_bomb_is_still_bounded() -> None:
    """The form's sheet (read first) has a row number the one-pass reader leaves to openpyxl;
    the bomb is in the next sheet, which that reader never reached."""
    data = cell_bomb()
    xml = read_member(data, FORM_SHEET).replace(
        "</sheetData>", '<row r="990.5"><c r="A990"><v>1</v></c></row></sheetData>'
    )
    data = replace_member(data, FORM_SHEET, xml)
    with bounded(5, 60):
        assert "500,000 ส่วน" in _too_large(data)


# ------------------------------------------------------------------ Word and old Excel


def _docx(document: docx.document.Document) -> bytes:
    out = BytesIO()
    document.save(out)
    return out.getvalue()


def test_a_word_table_cell_spanning_a_hundred_million_columns_is_refused() -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "ชื่อจังหวัด"
    tc_pr = table.cell(1, 0)._tc.get_or_add_tcPr()
    span = docx.oxml.parse_xml(
        '<w:gridSpan xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
        ' w:val="100000000"/>'
    )
    tc_pr.append(span)
    with bounded(5, 60):
        text = _too_large(_docx(document), kind="docx")
    assert "ตารางที่ 1 แถวที่ 2 ในเอกสารมีเซลล์มากกว่า 16,384 เซลล์" in text


def test_a_word_document_with_too_much_markup_is_refused_before_python_docx() -> None:
    document = docx.Document()
    document.add_paragraph("ชื่อจังหวัด")
    data = _docx(document)
    xml = read_member(data, "word/document.xml")
    # 3.6 MB of XML, within the part size; python-docx would hold ~80 MB of tree
    data = replace_member(
        data, "word/document.xml", xml.replace("</w:p>", "<w:r/>" * 600_000 + "</w:p>", 1)
    )
    with bounded(5, 60):
        text = _too_large(data, kind="docx")
    assert "มากกว่า 500,000 ส่วน" in text


def test_a_word_form_is_still_read() -> None:
    from tests.forms.builders import docx_form_bytes

    (result,) = read_forms("แบบฟอร์ม.docx", "docx", docx_form_bytes(), default_spec())
    assert result.valid, result.problems


def test_an_old_xls_is_bounded_by_its_size_before_xlrd_opens_it() -> None:
    data = build_cfb(["Workbook"]) + bytes(11 * 1024 * 1024)
    text = _too_large(data, kind="xls")
    assert "มีขนาด 11 MB เกินกำหนด 10 MB" in text


# ------------------------------------------------------------------ one message, many files


def test_the_files_of_one_message_share_one_budget() -> None:
    form = filled_form_bytes()
    with ZipFile(BytesIO(form)) as zf:
        unpacked = sum(i.file_size for i in zf.infolist())
    budget = MessageBudget(remaining=unpacked * 2 + 10)
    spec = default_spec()
    results: list[FormResult] = []
    for n in range(3):
        results += read_forms(f"{n}.xlsx", "xlsx", form, spec, budget)
    assert [r.valid for r in results] == [True, True, False]
    (problem,) = results[2].problems
    assert problem.code == "too_large" and "รวมกันเกิน 100 MB" in problem.message_th


def test_a_bomb_split_over_zips_inside_one_file_is_still_one_file() -> None:
    """The per-file unpacked size is the sum of members, whatever their number."""
    out = BytesIO()
    with ZipFile(BytesIO(filled_form_bytes())) as zin, ZipFile(out, "w", ZIP_DEFLATED) as z:
        for item in zin.infolist():
            z.writestr(item, zin.read(item.filename))
        for n in range(6):
            with z.open(f"xl/media/pad{n}.bin", "w", force_zip64=True) as fh:
                fh.write(b"\0" * (9 * 1024 * 1024))
    text = _too_large(out.getvalue())
    assert "ข้อมูลเมื่อขยายแล้วเกิน 50 MB" in text
