"""The fast path for plain .xlsx forms: python-calamine reads them, once a byte scan has shown
that the file is plain and within every limit; any other file goes to `xlsx.py` as before.

Why a gate and not calamine alone: calamine builds a dense grid up to the farthest cell it
sees (one cell at XFD1048576 aborts the process on an allocation failure), holds every shared
string, cannot say which formulas were saved without a result, and reads an error cell (#N/A)
as empty. So `plain` scans every member's raw bytes once, in chunks, with a few regular
expressions (no parser, no tree) and says yes only when, per part, the row and cell tags, the
cells of each row and the farthest cell reference are within `Limits`, every cell and row says
where it is, the shared strings are within their count and size, every other part within
the markup `xlsx.py` allows a part it parses whole, and nothing calamine would read
differently from openpyxl, or that the counts would miss, is there: no namespace prefix
or Strict Open XML, no formula (`<f>`), no error cell, no number written as "2.0", with an
exponent or with 16 digits or more, no DTD, comment or CDATA. Anything else (a bomb, a formula,
an odd writer) is read by `xlsx.py`, which refuses past a limit with the figure, in Thai, and
finds the formulas without a result; so the limits and messages are those of `xlsx.py` always.
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

_ROW_REF = re.compile(rb'<row r="(\d+)"')  # r first, as Excel, LibreOffice and openpyxl write it
_CELL_REF = re.compile(rb'<c r="([A-Z]{1,3})(\d+)"')
# what calamine reads unlike openpyxl, or what needs `xlsx.py`: formulas, numbers written "2.0",
# with 16 digits or more or with an exponent (and, in `_odd`, error cells and "<!" declarations)
_FORMULA = re.compile(rb"<f[\s>/]")
_NUMBER = re.compile(rb"<v>(?:-?\d+\.0*<|-?\d{16}|[^<]*[Ee])")
# the same elements with a namespace prefix (`<x:c>`): calamine reads them, the counts would not
_PREFIXED = re.compile(rb":(?:c|row|si|f|v|is|t)[\s>/]")
_TAG_NAMES = {name: re.compile(re.escape(name) + rb"[\s>/]") for name in (b"<c", b"<row", b"<si")}
_DECLARATION, _ERROR = re.compile(rb"<!"), re.compile(rb' t="e"')  # faster than `in` here
_STRICT = b"purl.oclc.org/ooxml"  # Strict Open XML: xlsx.py hands it to openpyxl
_CHUNK = 256 * 1024
_EXACT_FLOAT = 2**53  # floats below this hold whole numbers exactly


def plain(zf: zipfile.ZipFile, limits: Limits) -> bool:
    """Whether calamine may read this workbook: see the module docstring. The members were
    bounded by `sources._check_zip`, so this reads at most `max_uncompressed_bytes`."""
    strings = 0
    for info in zf.infolist():
        # every member, whatever its name: calamine follows the workbook's relationships, and
        # a sheet part may be called `sheet2.dat` (a picture at worst falls back needlessly)
        if info.is_dir():
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
    """One member scanned: None when it is not plain, else its shared-string count.

    Each regular expression runs over a whole chunk in C; Python only sees the distinct row
    numbers and column letters. A part with more cells than one row may hold is not plain, so
    no row can pass `max_row_cells` (a form's sheet has a few thousand cells)."""
    cells = rows = strings = markup = 0
    far_row = 0
    letters: set[bytes] = set()
    with zf.open(info) as fh:
        tail, last = b"", False
        while not last:
            chunk = fh.read(_CHUNK)
            last = not chunk
            markup += chunk.count(b"<") + chunk.count(b"=")
            text = tail + chunk
            # the last two tags go with the next chunk: neither a tag nor `<v>2.0</v>` is cut;
            # after the last chunk (an empty read) that rest is scanned like the others
            cut = len(text) if last else max(0, text.rfind(b"<", 0, max(0, text.rfind(b"<"))))
            text, tail = text[:cut], text[cut:]
            if _odd(text):
                return None
            strings += _tags(text, b"<si")
            row_refs = _ROW_REF.findall(text)
            refs = _CELL_REF.findall(text)
            if len(row_refs) != _tags(text, b"<row") or len(refs) != _tags(text, b"<c"):
                return None  # a row or cell that does not say where it is (or says it oddly)
            rows, cells = rows + len(row_refs), cells + len(refs)
            if cells > min(limits.max_cells, limits.max_row_cells) or rows > min(
                limits.max_rows,
                limits.max_cells,  # as `xlsx._Tally` counts row elements
            ):
                return None
            numbers = {*row_refs, *(ref[1] for ref in refs)}
            far_row = max(far_row, max(map(int, numbers), default=0))
            letters.update(ref[0] for ref in refs)
    if far_row > limits.max_rows or any(_column(c) > limits.max_columns for c in letters):
        return None
    if not (rows or cells or strings) and markup > limits.max_xml_nodes:
        return None  # a part `xlsx.py` parses whole (styles, workbook): its limit, its message
    return strings


def _tags(text: bytes, start: bytes) -> int:
    """Elements named `start[1:]` (`<c` and not `<cols`), whatever ends the name (so a cell
    written `<c\nr="XFD1048576">` counts and, not matching `_CELL_REF`, makes the part not
    plain). A regular expression each: bytes.count of every ending was six times slower."""
    return len(_TAG_NAMES[start].findall(text))


def _odd(text: bytes) -> bool:
    """Separate searches: one alternation of them all is ten times slower (no literal prefix)."""
    if _STRICT in text or _DECLARATION.search(text) or _ERROR.search(text):
        return True
    return bool(_FORMULA.search(text) or _NUMBER.search(text) or _PREFIXED.search(text))


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


def broke(exc: BaseException) -> bool:
    """calamine could not read the file: its own error, or a Rust panic, which pyo3 raises as
    `PanicException`, a BaseException that `except Exception` would let kill the worker."""
    import python_calamine

    return isinstance(exc, python_calamine.CalamineError) or type(exc).__name__ == "PanicException"


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
