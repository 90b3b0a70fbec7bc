"""Files that are not forms, broken files and hostile files: a clear problem, never an exception."""

from __future__ import annotations

import os
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import docx
import pytest

from intake.forms import FormResult, read_forms
from tests.forms.builders import default_spec, filled_form_bytes, read_member, replace_member

SHEET = "xl/worksheets/sheet1.xml"
SST = "xl/sharedStrings.xml"
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _refused(data: bytes, kind: str, filename: str = "แนบ.xlsx") -> FormResult:
    (result,) = read_forms(filename, kind, data, default_spec())
    assert result.data is None and not result.valid
    assert len(result.problems) == 1 and result.problems[0].severity == "error"
    assert result.problems[0].filename == filename
    return result


@pytest.mark.parametrize(
    ("kind", "data", "code", "says"),
    [
        ("pdf", b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF", "format_pdf", "ได้รับไฟล์ PDF"),
        ("image", b"\x89PNG\r\n\x1a\n" + bytes(64), "format_image", "รูปภาพ"),
        ("image", b"\xff\xd8\xff\xe0" + bytes(64), "format_image", "รูปภาพ"),
        (
            "doc",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "WordDocument".encode("utf-16-le"),
            "format_doc",
            ".docx",
        ),
        ("ods", b"PK\x03\x04 not really", "corrupt", "เสีย"),
        ("tnef", b"\x78\x9f\x3e\x22" + bytes(32), "format_tnef", "winmail.dat"),
        ("text", "ลำดับ,ชื่อ\n1,ก\n".encode(), "format_text", "ไฟล์ข้อความ"),
        ("other", os.urandom(2048), "format_other", "Excel (.xlsx)"),
        ("xlsx", os.urandom(2048), "corrupt", "เสีย"),
        ("xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(600), "corrupt", "เสีย"),
    ],
)
def test_not_a_readable_form(kind: str, data: bytes, code: str, says: str) -> None:
    problem = _refused(data, kind).problems[0]
    assert problem.code == code
    assert says in problem.message_th


def test_pdf_message_says_what_to_send_instead() -> None:
    problem = _refused(b"%PDF-1.4", "pdf", "แบบฟอร์ม.pdf").problems[0]
    assert "แบบฟอร์ม.pdf" in problem.message_th
    assert "กรุณาส่งแบบฟอร์มเป็นไฟล์ Excel (.xlsx) ตามแบบที่กำหนด" in problem.message_th


def _ods() -> bytes:
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", "<office:document-content/>")
    return out.getvalue()


def test_an_ods_that_cannot_be_read_asks_for_an_xlsx() -> None:
    """A damaged .ods (here: content.xml without its namespaces) gets the .ods message."""
    problem = _refused(_ods(), "ods").problems[0]
    assert problem.code == "format_ods" and "(.xlsx)" in problem.message_th


def test_xlsb_asks_to_save_as_xlsx() -> None:
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.bin", b"\x83\x01\x00")
    problem = _refused(out.getvalue(), "xlsx").problems[0]
    assert problem.code == "format_xlsb" and "(.xlsx)" in problem.message_th


@pytest.mark.parametrize("kind", ["xlsx", "encrypted", "other"])
def test_password_protected_workbook(kind: str) -> None:
    # an encrypted OOXML file is a CFB container holding an "EncryptedPackage" stream
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500) + "EncryptedPackage".encode("utf-16-le")
    problem = _refused(data, kind).problems[0]
    assert problem.code == "encrypted"
    assert "เอารหัสผ่านออก" in problem.message_th and "ส่งใหม่" in problem.message_th


def test_zip_level_encryption_is_reported_as_encrypted() -> None:
    data = bytearray(filled_form_bytes())
    offset = data.index(b"PK\x01\x02")  # first central directory entry: set "encrypted" flag
    data[offset + 8] |= 0x1
    assert _refused(bytes(data), "xlsx").problems[0].code == "encrypted"


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_workbook(cut: float) -> None:
    data = filled_form_bytes()
    assert _refused(data[: int(len(data) * cut)], "xlsx").problems[0].code == "corrupt"


def test_garbage_sheet_xml() -> None:
    data = replace_member(filled_form_bytes(), SHEET, "<worksheet><sheetData><row r=")
    assert _refused(data, "xlsx").problems[0].code == "corrupt"


def test_zip_that_is_no_office_file() -> None:
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("photo.jpg", b"\xff\xd8\xff")
    assert _refused(out.getvalue(), "zip").problems[0].code == "format_zip"
    assert _refused(out.getvalue(), "xlsx").problems[0].code == "corrupt"


_LAUGHS = (
    '<?xml version="1.0"?>{pad}<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(2, 10))
    + '<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    + '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'
    + "</sheetData></worksheet>"
)


@pytest.mark.parametrize(
    "pad", ["", "<!--" + "x" * 100_000 + "-->"], ids=["plain", "dtd-after-100k"]
)
def test_billion_laughs_is_refused_without_blowing_memory(pad: str) -> None:
    # with padding the DTD is past our own prefix check: the XML parser must refuse it then
    data = replace_member(filled_form_bytes(), SHEET, _LAUGHS.format(pad=pad))
    tracemalloc.start()
    try:
        with bounded(5, 100):
            problem = _refused(data, "xlsx").problems[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problem.code == "unsafe_file"
    assert peak < 50 * 1024 * 1024


def test_zip_bomb_member_is_refused_before_decompression(monkeypatch: pytest.MonkeyPatch) -> None:
    out = BytesIO()
    with (
        zipfile.ZipFile(BytesIO(filled_form_bytes())) as zin,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z,
    ):
        for item in zin.infolist():
            z.writestr(item, zin.read(item.filename))
        with z.open("xl/media/huge.xml", "w", force_zip64=True) as fh:
            block = b" " * (1 << 20)
            for _ in range(60):  # 60 MB of spaces, about 60 kB compressed
                fh.write(block)
    data = out.getvalue()
    assert len(data) < 2 * 1024 * 1024

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a member was decompressed")

    monkeypatch.setattr(zipfile.ZipFile, "read", no_reading)
    monkeypatch.setattr(zipfile.ZipFile, "open", no_reading)
    problem = _refused(data, "xlsx").problems[0]
    assert problem.code == "too_large" and "50 MB" in problem.message_th


def _raw_xlsx(rows: int) -> bytes:
    """A minimal workbook whose one sheet has `rows` rows, written as XML straight into a zip."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>",
        )
        z.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'<workbook {ns} xmlns:r="{rel}"><sheets><sheet name="big" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        )
        with z.open("xl/worksheets/sheet1.xml", "w") as fh:
            fh.write(f'<worksheet {ns}><dimension ref="A1:A1"/><sheetData>'.encode())
            row = '<row r="{0}"><c r="A{0}" t="inlineStr"><is><t>ประเภท</t></is></c><c r="B{0}"><v>{0}</v></c></row>'
            for start in range(1, rows + 1, 10_000):
                chunk = "".join(row.format(i) for i in range(start, min(start + 10_000, rows + 1)))
                fh.write(chunk.encode())
            fh.write(b"</sheetData></worksheet>")
    return out.getvalue()


def _status_mb(key: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        line = next(line for line in fh if line.startswith(key + ":"))
    return int(line.split()[1]) / 1024


@contextmanager
def bounded(seconds: float, megabytes: float) -> Iterator[None]:
    """Fail unless the block ends within `seconds` and the process's resident memory never rose
    more than `megabytes` above where it started: the peak (VmHWM) is reset through
    /proc/self/clear_refs first, so it counts C allocations (libxml2, zlib) that tracemalloc
    cannot see, and only this block's."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset the peak resident set size to the current one
    start_rss, started = _status_mb("VmRSS"), time.monotonic()
    yield
    elapsed, peak = time.monotonic() - started, _status_mb("VmHWM") - start_rss
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < megabytes, f"resident memory rose by {peak:.0f} MB"


def test_the_memory_bound_can_fail() -> None:
    with pytest.raises(AssertionError, match="resident memory"), bounded(10, 50):
        hog = bytearray(120 * 1024 * 1024)
        hog[:: 4096] = b"x" * len(hog[:: 4096])  # touch every page


def test_a_200000_row_sheet_is_refused_quickly_and_in_bounded_memory() -> None:
    data = _raw_xlsx(200_000)
    with bounded(10, 200):
        problem = _refused(data, "xlsx").problems[0]
    assert problem.code == "too_large" and "5,000" in problem.message_th


def _sheet_with(rows_xml: str) -> bytes:
    base = _raw_xlsx(3)
    xml = read_member(base, SHEET).replace("</sheetData>", rows_xml + "</sheetData>")
    return replace_member(base, SHEET, xml)


def test_200000_empty_rows_cost_bounded_time_and_memory() -> None:
    empty = '<row r="{0}"><c r="A{0}" t="inlineStr"><is><t></t></is></c></row>'
    data = _sheet_with("".join(empty.format(i) for i in range(4, 200_004)))
    with bounded(10, 200):
        (result,) = read_forms("แนบ.xlsx", "xlsx", data, default_spec())
    assert [p.code for p in result.problems] == ["not_a_form"]


def test_a_cell_at_the_far_corner_of_the_sheet_is_refused() -> None:
    data = _sheet_with('<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')
    with bounded(10, 200):
        assert _refused(data, "xlsx").problems[0].code == "too_large"


def _with_shared_strings(count: int) -> bytes:
    base = filled_form_bytes()
    types = read_member(base, "[Content_Types].xml").replace(
        "</Types>",
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
    )
    sst = "".join(f"<si><t>ข้อความที่ {i:07d}</t></si>" for i in range(count))
    sst = f'<sst xmlns="{_MAIN_NS}" count="{count}" uniqueCount="{count}">{sst}</sst>'
    return replace_member(replace_member(base, "[Content_Types].xml", types), SST, sst)


def test_a_huge_shared_strings_part_is_refused_before_parsing() -> None:
    data = _with_shared_strings(900_000)  # 46 MB of strings: 12 s and 300 MB if parsed
    with bounded(5, 100):
        problem = _refused(data, "xlsx").problems[0]
    assert problem.code == "too_large" and SST in problem.message_th


def test_a_huge_word_document_is_refused_before_parsing() -> None:
    document = docx.Document()
    for _ in range(400):
        table = document.add_table(rows=10, cols=4)
        for cell in table._cells:
            cell.text = "ข้อความ" * 60
    buffer = BytesIO()
    document.save(buffer)
    with zipfile.ZipFile(buffer) as zf:
        assert zf.getinfo("word/document.xml").file_size > default_spec().limits.max_xml_part_bytes
    with bounded(5, 100):
        problem = _refused(buffer.getvalue(), "docx", "แบบฟอร์ม.docx").problems[0]
    assert problem.code == "too_large" and "word/document.xml" in problem.message_th


def test_a_sheet_within_limits_is_read_even_with_a_lying_dimension() -> None:
    (result,) = read_forms("ok.xlsx", "xlsx", _raw_xlsx(300), default_spec())
    assert result.problems[0].code != "too_large"
