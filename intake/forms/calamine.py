"""The fast path for plain .xlsx forms: python-calamine reads them, once a byte scan has shown
that the file is plain and within every limit; any other file goes to `xlsx.py` as before.

Why a gate and not calamine alone: calamine builds a dense grid up to the farthest cell it
sees (one cell at XFD1048576 aborts the process on an allocation failure), holds every shared
string, cannot say which formulas were saved without a result, and reads an error cell (#N/A)
as empty. So `plain` scans every XML member's raw bytes once, in chunks, with a few regular
expressions (no parser, no tree) and says yes only when, per part, the row and cell tags, the
cells of each row and the farthest cell reference are within `Limits`, every cell and row says
where it is, the shared strings are within their count and size, every other part within
the markup `xlsx.py` allows a part it parses whole, and nothing calamine would read
differently from openpyxl is there: no formula (`<f>`), no error cell, no number written as
"2.0", with an exponent or with 16 digits or more, no DTD, comment or CDATA. Anything else (a bomb, a formula, an
odd writer) is read by `xlsx.py`, which refuses past a limit with the figure, in Thai, and finds
the formulas without a result; so the limits and messages are those of `xlsx.py` in every case.
`bench/readers.py` measures both paths (`bench/RESULTS.md`).
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from intake.forms.spec import Limits

_TAG = re.compile(rb"<(row|c)(?=[\s>/])([^>]*)>")
_ROW_REF = re.compile(rb'\br="(\d+)"')
_CELL_REF = re.compile(rb'\br="([A-Z]{1,3})(\d+)"')
_STRING = re.compile(rb"<si(?=[\s>/])")
# what calamine reads unlike openpyxl, or what needs `xlsx.py` (formulas, markup declarations)
_ODD = re.compile(rb'<f(?=[\s>/])|\bt="e"|<v>-?\d+\.0*</v>|<v>-?\d{16,}|<v>[^<]*[Ee]|<!')
_CHUNK = 256 * 1024
_EXACT_FLOAT = 2**53  # floats below this hold whole numbers exactly


def plain(zf: zipfile.ZipFile, limits: Limits) -> bool:
    """Whether calamine may read this workbook: see the module docstring. The members were
    bounded by `sources._check_zip`, so this reads at most `max_uncompressed_bytes`."""
    strings = 0
    for info in zf.infolist():
        if not info.filename.lower().endswith(".xml"):
            continue
        found = _part(zf, info, limits)
        if found is None:
            return False
        if found:
            strings += found
            if strings > limits.max_shared_strings or info.file_size > limits.max_shared_chars:
                return False
    return True


def _part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> int | None:
    """One member scanned: None when it is not plain, else its shared-string count."""
    rows = cells = row_cells = strings = markup = 0
    with zf.open(info) as fh:
        tail = b""
        while chunk := fh.read(_CHUNK):
            markup += chunk.count(b"<") + chunk.count(b"=")
            text = tail + chunk
            cut = text.rfind(b"<")  # a tag cut by the chunk is read with the next one
            text, tail = text[:cut], text[cut:]
            if _ODD.search(text):
                return None
            strings += len(_STRING.findall(text))
            for tag, attributes in _TAG.findall(text):
                if tag == b"row":
                    ref = _ROW_REF.search(attributes)
                    rows, row_cells = rows + 1, 0
                    if ref is None or int(ref[1]) > limits.max_rows:
                        return None
                    continue
                cell = _CELL_REF.search(attributes)
                cells, row_cells = cells + 1, row_cells + 1
                if cell is None or int(cell[2]) > limits.max_rows:
                    return None
                if _column(cell[1]) > limits.max_columns:
                    return None
                if cells > limits.max_cells or row_cells > limits.max_row_cells:
                    return None
            if rows > min(limits.max_rows, limits.max_cells):  # as `xlsx._Tally` counts rows
                return None
        if _ODD.search(tail):
            return None
    if not (rows or cells or strings) and markup > limits.max_xml_nodes:
        return None  # a part `xlsx.py` parses whole (styles, workbook): its limit, its message
    return strings


def _column(letters: bytes) -> int:
    number = 0
    for char in letters:
        number = number * 26 + char - 64
    return number


def worksheets(data: bytes) -> Iterator[tuple[str, list[list[Any]]]]:
    """Each worksheet (chart sheets left out) in workbook order, as the .xlsx readers give it.
    Raises `python_calamine.CalamineError` on what it cannot read (the caller falls back)."""
    import python_calamine  # imported where read

    book = python_calamine.CalamineWorkbook.from_filelike(BytesIO(data))
    try:
        for meta in book.sheets_metadata:
            if meta.typ != python_calamine.SheetTypeEnum.WorkSheet:
                continue
            rows = book.get_sheet_by_name(meta.name).to_python(skip_empty_area=False)
            yield meta.name, [[value(v) for v in row] for row in rows]
    finally:
        book.close()


def value(cell: Any) -> Any:
    """calamine's value as the .xlsx readers give it: "" is an empty cell, a whole float an
    int (openpyxl reads "2" as 2), a date a datetime at midnight."""
    if cell == "" and isinstance(cell, str):
        return None
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < _EXACT_FLOAT:
        return int(cell)
    if isinstance(cell, dt.date) and not isinstance(cell, dt.datetime):
        return dt.datetime(cell.year, cell.month, cell.day)
    return cell
