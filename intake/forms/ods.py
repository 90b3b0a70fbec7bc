"""Read an OpenDocument spreadsheet (.ods, LibreOffice's own format) with python-calamine,
after a counting pass that keeps every limit of `spec.Limits` before calamine allocates.

Why a counting pass first: calamine builds a dense grid from the first to the last value of a
sheet and copies a repeated cell once per repeat. A 500-byte .ods whose one 100-character cell
carries `table:number-columns-repeated="1000"` in a row repeated 100,000 times costs calamine
10 GB; a value far to the right of a huge repeat of empty columns is silently dropped (calamine
caps the repeat). So `scan` streams content.xml once with lxml (no entities, no DTD, rows freed
as read, the markup between two rows metered as in `xlsx.py`), multiplies each cell by its row
and column repeats, and refuses the file as `too_large` when the used area passes the row,
column or cell limits or its text the character limit. Only then does calamine read it; the
bytes it parses were bounded by `sources._check_zip` (content.xml is a part read whole).

The same pass finds formulas saved without a result (`table:formula` and no value type: a tool
that does not calculate wrote them), which calamine cannot report; they become `Uncalculated`
cells exactly as in the .xlsx readers. Values are given as the .xlsx readers give them
(`calamine.value`), so one parser reads both formats.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from lxml import etree

from intake.forms import calamine, xlsx
from intake.forms.spec import Limits

TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
MIMETYPES = (
    b"application/vnd.oasis.opendocument.spreadsheet",
    b"application/vnd.oasis.opendocument.spreadsheet-template",
)
CONTENT = "content.xml"
_TABLE, _ROW = f"{{{TABLE}}}table", f"{{{TABLE}}}table-row"
_CELLS = (f"{{{TABLE}}}table-cell", f"{{{TABLE}}}covered-table-cell")
_ROWS_REPEATED = f"{{{TABLE}}}number-rows-repeated"
_COLUMNS_REPEATED = f"{{{TABLE}}}number-columns-repeated"
_FORMULA = f"{{{TABLE}}}formula"
_VALUE_TYPE = f"{{{OFFICE}}}value-type"
_NAME = f"{{{TABLE}}}name"
_SPACES, _SPACE_COUNT = f"{{{TEXT}}}s", f"{{{TEXT}}}c"
_BEYOND = "เกินขีดจำกัดที่ระบบอ่านได้"


class Unreadable(Exception):
    """Not an OpenDocument spreadsheet this reader can read (damaged, a text document...)."""


@dataclass
class SheetScan:
    """What the counting pass saw of one table: its used area and formulas with no result."""

    name: str
    rows: int = 0  # last row holding a value, 1-based (0: none)
    columns: int = 0  # last column holding a value, 1-based
    chars: int = 0  # characters of all cells, each repeat counted
    uncalculated: list[tuple[int, int, str]] = field(default_factory=list)  # 0-based row, col


def is_spreadsheet(zf: zipfile.ZipFile) -> bool:
    """The `mimetype` member says an OpenDocument spreadsheet (or its template)."""
    if "mimetype" not in zf.NameToInfo or zf.getinfo("mimetype").file_size > 200:
        return False
    return zf.read("mimetype").strip() in MIMETYPES


def is_encrypted(zf: zipfile.ZipFile) -> bool:
    """ODF encrypts members itself (not with zip flags) and lists how in the manifest."""
    name = "META-INF/manifest.xml"
    return name in zf.NameToInfo and b"encryption-data" in zf.read(name)


def scan(zf: zipfile.ZipFile, limits: Limits) -> list[SheetScan]:
    """Every table of content.xml counted as it streams; `xlsx.TooLarge` past a limit."""
    if CONTENT not in zf.NameToInfo:
        raise Unreadable(f"no {CONTENT}")
    sheets: list[SheetScan] = []
    area = chars = 0
    for sheet in _tables(zf, limits):
        sheets.append(sheet)
        chars += sheet.chars
        if chars > limits.max_shared_chars:  # all sheets' text is held at once too
            raise xlsx.TooLarge(
                f"แผ่นงานในไฟล์มีตัวอักษรรวมกันมากกว่า {limits.max_shared_chars:,} ตัว {_BEYOND}"
            )
        if len(sheets) > limits.max_sheets:
            raise xlsx.TooLarge(f"มีแผ่นงานมากกว่า {limits.max_sheets} แผ่น {_BEYOND}")
        area += sheet.rows * sheet.columns
        if area > limits.max_cells:  # calamine holds every cell of each used area at once
            raise xlsx.TooLarge(f"แผ่นงานในไฟล์มีเซลล์รวมกันมากกว่า {limits.max_cells:,} เซลล์ {_BEYOND}")
    return sheets


def _tables(zf: zipfile.ZipFile, limits: Limits) -> Iterator[SheetScan]:
    with zf.open(CONTENT) as fh:
        source = xlsx._Metered(fh, CONTENT)
        events = etree.iterparse(
            source, events=("end",), tag=(_ROW, _TABLE), **xlsx._parser_options()
        )
        sheet: SheetScan | None = None
        row = 0
        first = True
        for _, element in events:
            if first:
                xlsx._refuse_dtd(element, CONTENT)
                first = False
            if element.tag == _TABLE:
                if _inside_cell(element):
                    continue  # a table inside a cell is that cell's content, not a sheet
                done = sheet or SheetScan(element.get(_NAME) or "")
                done.name = element.get(_NAME) or ""
                sheet, row = None, 0
                source.mark()
                xlsx._free(element)
                yield done
                continue
            if _inside_cell(element):
                continue
            if sheet is None:
                sheet = SheetScan(_table_name(element))
            row += _row(element, row, sheet, limits)
            source.mark()
            xlsx._free(element)


def _inside_cell(element: Any) -> bool:
    parent = element.getparent()
    while parent is not None:
        if parent.tag in _CELLS:
            return True
        parent = parent.getparent()
    return False


def _table_name(row: Any) -> str:
    parent = row.getparent()
    while parent is not None and parent.tag != _TABLE:
        parent = parent.getparent()
    return (parent.get(_NAME) or "") if parent is not None else ""


def _repeat(element: Any, name: str) -> int:
    text = element.get(name)
    if text is None:
        return 1
    try:
        return max(1, int(text[:12]))  # 12 digits bound int(); past that it is refused anyway
    except ValueError as exc:
        raise Unreadable(f"{name}={text[:20]!r}") from exc


def _row(element: Any, row: int, sheet: SheetScan, limits: Limits) -> int:
    """Count one row element (with its repeats) into `sheet`; the number of rows it stands for."""
    repeats = _repeat(element, _ROWS_REPEATED)
    column = 0
    for cell in element:
        if cell.tag not in _CELLS:
            continue
        wide = _repeat(cell, _COLUMNS_REPEATED)
        typed = cell.get(_VALUE_TYPE) is not None
        formula = cell.get(_FORMULA)
        text = _text_length(cell) if len(cell) else 0
        if typed or text or formula:
            sheet.rows = row + repeats
            sheet.columns = max(sheet.columns, column + wide)
            sheet.chars += text * wide * repeats
            _check(sheet, limits)
            if formula and not typed:
                for r in range(row, row + repeats):
                    for c in range(column, column + wide):
                        sheet.uncalculated.append((r, c, _formula_text(formula)))
        column += wide
    return repeats


def _text_length(cell: Any) -> int:
    """The characters calamine makes of a cell: its text, and each `<text:s text:c="N"/>`
    as N spaces (200 million of them were 830 MB in calamine)."""
    spaces = sum(_repeat(s, _SPACE_COUNT) for s in cell.iter(_SPACES))
    return len("".join(cell.itertext())) + spaces


def _check(sheet: SheetScan, limits: Limits) -> None:
    if sheet.rows > limits.max_rows:
        raise xlsx.TooLarge(f"แผ่นงาน {sheet.name} มีเกิน {limits.max_rows:,} แถว")
    if sheet.columns > limits.max_columns:
        raise xlsx.TooLarge(f"แผ่นงาน {sheet.name} มีเกิน {limits.max_columns} คอลัมน์")
    if sheet.chars > limits.max_shared_chars:
        raise xlsx.TooLarge(
            f"แผ่นงาน {sheet.name} มีตัวอักษรรวมกันมากกว่า {limits.max_shared_chars:,} ตัว {_BEYOND}"
        )


def _formula_text(formula: str) -> str:
    """`of:=SUM([.C5:.C9])` as people read it: `=SUM(C5:C9)` (namespace, brackets, dots off)."""
    text = formula.split(":", 1)[1] if formula[:4].lower() in ("of:=", "oooc") else formula
    text = text.replace("[.", "").replace(":.", ":").replace("[", "").replace("]", "")
    return text if text.startswith("=") else "=" + text


def read(data: bytes, scans: list[SheetScan]) -> Iterator[tuple[str, list[list[Any]]]]:
    """Each sheet's rows as the .xlsx readers give them; `scan` has bounded what this costs."""
    import python_calamine  # imported where read: most messages carry no .ods

    try:
        book = python_calamine.CalamineWorkbook.from_filelike(BytesIO(data))
    except BaseException as exc:
        if not calamine.broke(exc):
            raise
        raise Unreadable(str(exc)[:80]) from exc
    counted = {scanned.name: scanned for scanned in scans}
    try:
        for name in book.sheet_names:
            scanned = counted.get(name)
            if scanned is None:  # a sheet the counting pass did not see: nothing unbounded
                raise Unreadable(f"sheet {name!r} not counted")
            if scanned.rows == 0:
                yield name, []
                continue
            sheet = book.get_sheet_by_name(name)
            rows = sheet.to_python(skip_empty_area=False, nrows=scanned.rows)
            yield name, [[calamine.value(v) for v in row[: scanned.columns]] for row in rows]
    except BaseException as exc:
        if not calamine.broke(exc):
            raise
        raise Unreadable(str(exc)[:80]) from exc
    finally:
        book.close()
