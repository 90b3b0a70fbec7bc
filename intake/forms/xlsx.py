"""Read the sheets of an .xlsx/.xlsm straight from their XML, in one streaming pass.

Why not openpyxl for this: openpyxl builds an object per shared string and per cell and
needs a second full pass to see which formulas were saved without a result. For a filled
form that is ~30 ms, most of intake's time per message. This reader walks each sheet's XML
once with lxml and gives exactly the values openpyxl's read-only, data-only mode gives
(`tests/forms/test_xlsx.py` compares the two on every form the tests build and on generated
workbooks), plus the formulas that have no cached value, from the same pass.

It reads only what a form needs: shared strings, the date styles, the 1900/1904 epoch, sheet
names and order. Anything it does not understand raises `Unsupported`, and the caller reads
the file with openpyxl instead; so openpyxl stays the reference reader.

Safety is the caller's as well as ours: `sources._check_zip` has bounded every member and
refused DTDs; the parser here resolves no entities, loads no DTD and uses no network. Work is
bounded as the bytes stream, before memory is spent (`Limits` in `spec.py`): cells are counted
per row and per sheet as each one is parsed, shared strings by number and characters, and
markup no event reports (junk inside a cell, between rows, around sheetData) by a meter on the
bytes lxml reads (`_Metered`). A part parsed whole is counted before it is parsed. Rows already
read are dropped from the tree, with everything parsed before them.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, WINDOWS_EPOCH, from_excel, from_ISO8601

from intake.forms.spec import Limits

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRICT = "http://purl.oclc.org/ooxml/spreadsheetml/main"
DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
SHARED_STRINGS_TYPE = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
)
WORKBOOK_TYPES = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
    "application/vnd.ms-excel.template.macroEnabled.main+xml",
)

# A sheet part up to this size and markup is parsed whole (faster: a form's sheet is ~0.3 MB,
# ~3,000 tags and attributes, its tree a few MB); a bigger one is streamed row by row.
WHOLE_SHEET_BYTES = 2 * 1024 * 1024
WHOLE_SHEET_NODES = 200_000
# Markup (each "<" and "=") the stream may hold between two rows or two shared strings: a row
# of 16,384 full cells is ~120,000. In lxml's tree each costs ~120-250 bytes, so ~50 MB at most.
WINDOW_NODES = 200_000
_READ_BYTES = 64 * 1024

_ROW, _C, _V, _F, _IS = (f"{{{MAIN}}}{t}" for t in ("row", "c", "v", "f", "is"))
_T, _R, _SI = (f"{{{MAIN}}}{t}" for t in ("t", "r", "si"))
_DIGITS = "0123456789"


class Unsupported(Exception):
    """Something this reader does not handle; openpyxl reads the file instead."""


class UnsafeXml(Exception):
    """A part declares a DTD (entities): refused, as defusedxml refuses it for openpyxl."""


class TooLarge(Exception):
    """A part past one of the limits; `detail` says which and the figure, in Thai."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def nodes(data: bytes) -> int:
    """Tags and attributes in XML bytes, counted at C speed: each element has a "<" and each
    attribute a "=", so this bounds what a parser would build from them (text aside)."""
    return data.count(b"<") + data.count(b"=")


_BEYOND = "เกินขีดจำกัดที่ระบบอ่านได้"


class _Metered:
    """A zip member as lxml reads it, chunk by chunk: the markup of each chunk is counted, and
    more than `WINDOW_NODES` since the last `mark()` (a row or a string read) stops the parse.
    That bounds what no event reports: markup inside one cell, between rows, around sheetData."""

    def __init__(self, fh: Any, name: str) -> None:
        self._fh = fh
        self.name = name
        self.since_mark = 0

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._fh.read(size if size and size > 0 else _READ_BYTES)
        self.since_mark += nodes(chunk)
        if self.since_mark > WINDOW_NODES:
            raise TooLarge(
                f"ส่วนข้อมูล {self.name} มีโครงสร้างภายในมากกว่า {WINDOW_NODES:,} ส่วน"
                f"โดยไม่มีข้อมูลแถวคั่น {_BEYOND}"
            )
        return chunk

    def mark(self) -> None:
        self.since_mark = 0


@dataclass
class _Tally:
    """Cells and rows of one sheet, counted as they arrive, against the sheet limits."""

    sheet: str
    limits: Limits
    cells: int = 0
    rows: int = 0
    row_cells: int = 0

    def cell(self, row: Any) -> None:
        self.cells += 1
        self.row_cells += 1
        if self.row_cells > self.limits.max_row_cells:
            self._row_too_wide(row)
        if self.cells > self.limits.max_cells:
            self._too_many_cells()

    def row(self, row: Any, width: int | None = None) -> None:
        """A row ended; `width` is its cell count when its cells were not counted one by one."""
        self.rows += 1
        if width is not None:
            self.cells += width
            if width > self.limits.max_row_cells:
                self._row_too_wide(row)
            if self.cells > self.limits.max_cells:
                self._too_many_cells()
        self.row_cells = 0
        if self.rows > self.limits.max_cells:
            raise TooLarge(
                f"แผ่นงาน {self.sheet} มีแถวมากกว่า {self.limits.max_cells:,} แถว {_BEYOND}"
            )

    def _row_too_wide(self, row: Any) -> None:
        number = row.get("r") if row is not None else None
        where = f"แถวที่ {number} ของแผ่นงาน" if number else "แถวหนึ่งของแผ่นงาน"
        raise TooLarge(
            f"{where} {self.sheet} มีเซลล์มากกว่า {self.limits.max_row_cells:,} เซลล์ {_BEYOND}"
        )

    def _too_many_cells(self) -> None:
        raise TooLarge(f"แผ่นงาน {self.sheet} มีเซลล์มากกว่า {self.limits.max_cells:,} เซลล์ {_BEYOND}")


@dataclass
class SheetValues:
    """One worksheet: rows of values (trailing blanks dropped) and formulas with no result."""

    name: str
    rows: list[list[Any]] = field(default_factory=list)
    uncalculated: list[tuple[int, int, str]] = field(default_factory=list)  # 0-based row, col


@dataclass(frozen=True)
class _Book:
    strings: list[str]
    dates: frozenset[int]  # cell style indexes whose number format is a date
    durations: frozenset[int]  # ... or a duration ([h]:mm)
    epoch: Any


def _parser_options() -> dict[str, Any]:
    return {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}


def _parse(zf: zipfile.ZipFile, name: str, limit: int) -> Any:
    """One small part (workbook, relationships, styles) parsed whole: `_check_zip` bounded its
    size; its markup is counted here, before lxml builds a tree from it."""
    data = zf.read(name)
    if nodes(data) > limit:
        raise TooLarge(f"ส่วนข้อมูล {name} มีโครงสร้างภายในมากกว่า {limit:,} ส่วน {_BEYOND}")
    parser = etree.XMLParser(**_parser_options())
    root = etree.fromstring(data, parser)
    _refuse_dtd(root, name)
    return root


def _refuse_dtd(node: Any, name: str) -> None:
    """`sources._check_xml_prefix` sees a DTD in the first 64 KB; this sees one anywhere."""
    if node.getroottree().docinfo.doctype:
        raise UnsafeXml(name)


@dataclass(frozen=True)
class Package:
    """What [Content_Types].xml and the workbook part say, each parsed once."""

    sheets: list[tuple[str, str]]  # (name, part path) of every worksheet, in workbook order
    epoch: Any  # 1900 or 1904 date system
    shared_strings: str | None  # part path, if the workbook has one


def open_package(zf: zipfile.ZipFile, limits: Limits) -> Package:
    """The worksheets (chart sheets left out), the date system and where the strings are."""
    types = _content_types(zf, limits)
    workbook = next((types[t] for t in WORKBOOK_TYPES if t in types), "xl/workbook.xml")
    root = _parse(zf, workbook, limits.max_xml_nodes)
    if root.tag.startswith(f"{{{STRICT}}}"):
        raise Unsupported("strict Open XML")
    rels = _relationships(zf, workbook, limits)
    sheets = []
    for sheet in root.iter(f"{{{MAIN}}}sheet"):
        rel_id = sheet.get(f"{{{DOC_REL}}}id")
        if not rel_id:
            continue
        if rel_id not in rels:
            raise Unsupported(f"sheet {sheet.get('name')!r} has no relationship")
        kind, target = rels[rel_id]
        if "chartsheet" in kind or target not in zf.NameToInfo:
            continue
        sheets.append((sheet.get("name") or "", target))
    props = root.find(f"{{{MAIN}}}workbookPr")
    date1904 = props is not None and props.get("date1904") in ("1", "true")
    epoch = CALENDAR_MAC_1904 if date1904 else WINDOWS_EPOCH
    return Package(sheets, epoch, types.get(SHARED_STRINGS_TYPE))


def read_sheets(zf: zipfile.ZipFile, package: Package, limits: Limits) -> Iterator[SheetValues]:
    """The values of each sheet, one sheet at a time."""
    dates, durations = _date_styles(zf, limits)
    strings = _shared_strings(zf, package.shared_strings, limits)
    book = _Book(strings, dates, durations, package.epoch)
    max_rows, max_columns = limits.max_rows, limits.max_columns
    for name, path in package.sheets:
        tally = _Tally(name, limits)
        if zf.getinfo(path).file_size <= WHOLE_SHEET_BYTES:
            data = zf.read(path)
            if nodes(data) <= WHOLE_SHEET_NODES:
                root = etree.fromstring(data, etree.XMLParser(**_parser_options()))
                _refuse_dtd(root, path)
                del data
                rows = _counted(root.iter(_ROW), tally)
                yield _read_sheet(rows, name, book, max_rows, max_columns)
                continue
            del data
        yield _read_sheet(_stream_rows(zf, path, tally), name, book, max_rows, max_columns)


def _counted(rows: Iterator[Any], tally: _Tally) -> Iterator[Any]:
    for row in rows:
        tally.row(row, len(row))
        yield row


def _stream_rows(zf: zipfile.ZipFile, path: str, tally: _Tally) -> Iterator[Any]:
    """Rows of a sheet as they are parsed, each cell counted as it ends and each row dropped
    from the tree once read (with everything before it), so memory stays flat."""
    with zf.open(path) as fh:
        source = _Metered(fh, path)
        events = etree.iterparse(source, events=("end",), tag=(_C, _ROW), **_parser_options())
        first = True
        for _, element in events:
            if first:
                _refuse_dtd(element, path)
                first = False
            if element.tag == _C:
                tally.cell(element.getparent())
                continue
            tally.row(element)
            yield element
            source.mark()
            _free(element)


def _content_types(zf: zipfile.ZipFile, limits: Limits) -> dict[str, str]:
    """Content type -> path of the first part declared with it."""
    if "[Content_Types].xml" not in zf.NameToInfo:
        return {}
    found: dict[str, str] = {}
    root = _parse(zf, "[Content_Types].xml", limits.max_xml_nodes)
    for override in root.iter(f"{{{CONTENT_TYPES}}}Override"):
        found.setdefault(
            override.get("ContentType") or "", (override.get("PartName") or "").lstrip("/")
        )
    return found


def _relationships(zf: zipfile.ZipFile, part: str, limits: Limits) -> dict[str, tuple[str, str]]:
    """Relationship id -> (type, target path inside the zip), as openpyxl resolves them."""
    folder, base = posixpath.split(part)
    rels_name = posixpath.join(folder, "_rels", f"{base}.rels")
    if rels_name not in zf.NameToInfo:
        return {}
    out = {}
    for rel in _parse(zf, rels_name, limits.max_xml_nodes).iter(f"{{{PKG_REL}}}Relationship"):
        target = rel.get("Target") or ""
        if rel.get("TargetMode") == "External":
            continue
        target = (
            target[1:]
            if target.startswith("/")
            else posixpath.normpath(posixpath.join(folder, target))
        )
        out[rel.get("Id") or ""] = (rel.get("Type") or "", target)
    return out


def _shared_strings(zf: zipfile.ZipFile, path: str | None, limits: Limits) -> list[str]:
    """Each string's plain text (runs joined, phonetic guides left out), as openpyxl has it.

    Counted as they stream: more than `max_shared_strings` strings or `max_shared_chars`
    characters refuse the file before they are held (9.5 million empty strings were 1.3 GB).
    """
    if not path or path not in zf.NameToInfo:
        return []
    strings: list[str] = []
    chars = 0
    with zf.open(path) as fh:
        source = _Metered(fh, path)
        for _, si in etree.iterparse(source, events=("end",), tag=_SI, **_parser_options()):
            if not strings:
                _refuse_dtd(si, path)
            text = _text(si).replace("x005F_", "")
            chars += len(text)
            strings.append(text)
            if len(strings) > limits.max_shared_strings:
                raise TooLarge(
                    f"ส่วนข้อความ {path} มีข้อความมากกว่า {limits.max_shared_strings:,} รายการ "
                    + _BEYOND
                )
            if chars > limits.max_shared_chars:
                raise TooLarge(
                    f"ส่วนข้อความ {path} มีตัวอักษรรวมกันมากกว่า {limits.max_shared_chars:,} ตัว " + _BEYOND
                )
            source.mark()
            _free(si)
    return strings


def _text(node: Any) -> str:
    """A string item's text: its own <t>, then each rich-text run's <t>."""
    parts = []
    for child in node:
        if child.tag == _T:
            if child.text:
                parts.append(child.text)
        elif child.tag == _R:
            run = child.find(_T)
            if run is not None and run.text:
                parts.append(run.text)
    return "".join(parts)


def _date_styles(zf: zipfile.ZipFile, limits: Limits) -> tuple[frozenset[int], frozenset[int]]:
    """Cell styles whose number format shows a date or a duration (openpyxl's own tests)."""
    if "xl/styles.xml" not in zf.NameToInfo:
        return frozenset(), frozenset()
    root = _parse(zf, "xl/styles.xml", limits.max_xml_nodes)
    custom = {}
    formats = root.find(f"{{{MAIN}}}numFmts")
    for fmt in formats if formats is not None else ():
        if fmt.get("numFmtId") is not None:
            custom[int(fmt.get("numFmtId"))] = fmt.get("formatCode")
    dates, durations = set(), set()
    xfs = root.find(f"{{{MAIN}}}cellXfs")
    for index, xf in enumerate(xfs.iterchildren(f"{{{MAIN}}}xf") if xfs is not None else ()):
        number = int(xf.get("numFmtId") or 0)
        code = custom[number] if number in custom else BUILTIN_FORMATS.get(number)
        if is_date_format(code):
            dates.add(index)
        if is_timedelta_format(code):
            durations.add(index)
    return frozenset(dates), frozenset(durations)


def _read_sheet(
    source: Iterator[Any], name: str, book: _Book, max_rows: int, max_cols: int
) -> SheetValues:
    sheet = SheetValues(name)
    rows = sheet.rows
    shared: dict[str, tuple[str, str]] = {}  # shared formula id -> (master formula, master cell)
    row_number = 0
    for row in source:
        number = _row_number(row.get("r"), row_number)
        if number <= row_number:  # a row that goes backwards: openpyxl drops it too
            continue
        row_number = number
        values: list[Any] = []
        column = 0
        for cell in row:
            if cell.tag != _C:
                continue
            ref = cell.get("r")
            if ref:
                letters = ref.rstrip(_DIGITS)
                column = _COLUMNS.get(letters) or _column(ref)
            else:
                column += 1
            value, formula = _value(cell, book)
            if formula is not None:  # every one: a shared formula's master may have a value
                formula = _formula(formula, ref, shared)
            if value is None:
                if formula and len(formula) > 1 and column <= max_cols and number <= max_rows:
                    sheet.uncalculated.append((number - 1, column - 1, formula))
                continue
            if column > max_cols:
                if value == "":
                    continue  # a blank past the edge is dropped like any trailing blank
                raise TooLarge(f"แผ่นงาน {name} มีเกิน {max_cols} คอลัมน์")
            width = len(values)
            if column == width + 1:
                values.append(value)
            else:
                if column > width:
                    values.extend([None] * (column - width))
                values[column - 1] = value
        while values and (values[-1] is None or values[-1] == ""):
            values.pop()
        if not values:
            continue
        if number > max_rows:
            raise TooLarge(f"แผ่นงาน {name} มีเกิน {max_rows:,} แถว")
        if number > len(rows):
            rows.extend([] for _ in range(number - len(rows)))
        rows[number - 1] = values
    return sheet


def _free(element: Any) -> None:
    """Keep memory flat on long parts: drop the element and everything parsed before it, at
    every level up to the root (markup before sheetData, or between two sheetData, included)."""
    element.clear()
    node, parent = element, element.getparent()
    while parent is not None:
        while node.getprevious() is not None:
            del parent[0]
        node, parent = parent, parent.getparent()


def _row_number(text: str | None, previous: int) -> int:
    if text is None:
        return previous + 1
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise Unsupported(f"row number {text}") from None
        return int(number)


_COLUMNS: dict[str, int] = {}


def _column(ref: str) -> int:
    letters = ref.rstrip(_DIGITS)
    number = _COLUMNS.get(letters)
    if number is None:
        number = 0
        for char in letters.upper():
            if not "A" <= char <= "Z":
                raise Unsupported(f"cell reference {ref}")
            number = number * 26 + ord(char) - 64
        if len(_COLUMNS) < 20_000:
            _COLUMNS[letters] = number
    return number


def _value(cell: Any, book: _Book) -> tuple[Any, Any]:
    """(value as openpyxl's data-only mode gives it, the <f> element or None)."""
    kind = cell.get("t")
    raw = formula = None
    for child in cell:
        tag = child.tag
        if tag == _V:
            raw = child.text
        elif tag == _IS:
            if kind == "inlineStr":
                return _text(child), formula
        elif tag == _F:
            formula = child
    if kind == "inlineStr" or not raw:
        return None, formula
    if kind is None or kind == "n":
        number = float(raw) if ("." in raw or "E" in raw or "e" in raw) else int(raw)
        style = cell.get("s")
        if style and int(style) in book.dates:
            try:
                duration = int(style) in book.durations
                return from_excel(number, book.epoch, timedelta=duration), formula
            except (OverflowError, ValueError):
                return "#VALUE!", formula
        return number, formula
    if kind == "s":
        return book.strings[int(raw)], formula
    if kind == "b":
        return bool(int(raw)), formula
    if kind == "d":
        return from_ISO8601(raw), formula
    return raw, formula  # "str" (a formula's text result) and "e" (an error such as #N/A)


def _formula(element: Any, ref: str | None, shared: dict[str, tuple[str, str]]) -> str | None:
    """The formula as openpyxl shows it ("=..."), shared formulas moved to this cell."""
    kind = element.get("t")
    if kind == "dataTable":
        return None  # openpyxl gives a DataTableFormula without text: nothing to show
    text = "=" + (element.text or "")
    if kind == "shared":
        index = element.get("si")
        if index in shared and ref:
            from openpyxl.formula.translate import Translator

            master, origin = shared[index]
            return Translator(master, origin).translate_formula(ref)
        if text != "=" and ref:
            shared[index] = (text, ref)
    return text
