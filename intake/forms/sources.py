"""Turn one attachment into grids of cell values, one per sheet, within hard limits.

Each format has its own small reader (a plain xlsx/xlsm with python-calamine behind a byte
scan, `calamine.py`; any other in one pass over the sheet XML, `xlsx.py`, with openpyxl as the
reference and the fallback; .ods with python-calamine after a counting
pass, `ods.py`; xls with xlrd; docx with python-docx); they
all produce `Grid`s so one parser (`reader.py`) reads every format the same
way. Anything that cannot or must not be read raises `SourceProblem` with a message code from
the form description; nothing else escapes `open_source`.

Safety: an .xlsx/.docx is a zip. Its central directory is checked first (member count, total
uncompressed size, the size of each XML part parsed whole, zip encryption) and the start of
every XML member is checked for a DTD (entity bombs) before any XML parser sees it; Python's
zipfile never inflates a member past its declared size, so the size checks bound what is
decompressed and parsed. Sheets are then streamed row by row (lxml without entity resolution,
or openpyxl read-only with defusedxml) and rows/columns are counted as they come.

Work is bounded before memory is spent (every figure is in `spec.Limits`): `xlsx.py` counts
cells, rows and shared strings as they stream; what third-party readers parse whole (openpyxl,
the fallback for what `xlsx.py` does not handle; python-docx) is counted first, at C speed, over
the raw XML (`_markup`); an old .xls is bounded by its size. All files of one message share a
`MessageBudget` of unpacked bytes.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import xlrd
from docx import Document
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from intake.forms import calamine, ods, xlsx
from intake.forms.model import Where
from intake.forms.spec import FormSpec, Limits

log = logging.getLogger(__name__)

MB = 1024 * 1024

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_DTD_MARKERS = (b"<!doctype", b"<!entity")
_PREFIX_BYTES = 64 * 1024
_FORMULA_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")

# What to say for files that are not a form in a readable format.
_KIND_CODES = {
    "pdf": "format_pdf",
    "image": "format_image",
    "doc": "format_doc",
    "ods": "format_ods",
    "tnef": "format_tnef",
    "text": "format_text",
    "zip": "format_zip",
    "encrypted": "encrypted",
}


class SourceProblem(Exception):
    """The attachment cannot be read as a form; `code` is a message code, `detail` is for people."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass
class MessageBudget:
    """The unpacked bytes the files of one message may still cost together
    (`Limits.max_message_bytes`): six bombs in one mail add up, each within its own limit."""

    remaining: int

    @classmethod
    def of(cls, limits: Limits) -> MessageBudget:
        return cls(limits.max_message_bytes)

    def charge(self, size: int, limits: Limits) -> None:
        if size > self.remaining:
            raise SourceProblem(
                "too_large",
                f"ไฟล์ทั้งหมดในอีเมลฉบับนี้เมื่อขยายแล้วรวมกันเกิน {limits.max_message_bytes // MB} MB"
                " ไฟล์นี้จึงไม่ได้เปิดอ่าน",
            )
        self.remaining -= size


@dataclass(frozen=True)
class Uncalculated:
    """A formula cell saved without its result (written by a tool that does not calculate)."""

    formula: str


@dataclass
class Grid:
    """One sheet as rows of plain cell values (0-based here, 1-based "C14" for people)."""

    name: str | None
    rows: list[list[Any]] = field(default_factory=list)
    addressable: bool = True  # False for Word tables: no cell addresses to show
    # Word only: per grid row, (table number, row number in that table), 1-based; (0, 0) for a
    # paragraph. People are told "ตารางที่ 3 แถวที่ 2" instead of a cell address.
    places: list[tuple[int, int]] = field(default_factory=list)

    def get(self, row: int, col: int) -> Any:
        if 0 <= row < len(self.rows) and 0 <= col < len(self.rows[row]):
            return self.rows[row][col]
        return None

    def put(self, row: int, col: int, value: Any) -> None:
        while len(self.rows) <= row:
            self.rows.append([])
        cells = self.rows[row]
        cells.extend([None] * (col + 1 - len(cells)))
        cells[col] = value

    def where(self, row: int, col: int) -> Where:
        if not self.addressable:
            table, table_row = self.places[row] if row < len(self.places) else (0, 0)
            if not table:
                return Where(self.name, None, None)
            return Where(self.name, table_row, None, table)
        return Where(self.name, row + 1, f"{get_column_letter(col + 1)}{row + 1}")


@dataclass
class Source:
    grids: list[Grid]
    template_version: str | None = None


def open_source(
    kind: str,
    data: bytes,
    spec: FormSpec,
    wanted: Callable[[Grid], bool] = lambda g: True,
    budget: MessageBudget | None = None,
) -> Source:
    """Grids of the attachment; `wanted` picks the grids worth a second (formula) pass;
    `budget` is what the message's files may still unpack (one file alone when None)."""
    budget = budget if budget is not None else MessageBudget.of(spec.limits)
    if data.startswith(OLE_MAGIC):
        return _from_cfb(kind, data, spec, budget)
    if data.startswith(ZIP_MAGIC):
        return _from_zip(kind, data, spec, wanted, budget)
    if kind in ("xlsx", "xlsm", "xls", "docx"):
        raise SourceProblem("corrupt", "ไม่ใช่ไฟล์ Office ที่สมบูรณ์")
    raise SourceProblem(_KIND_CODES.get(kind, "format_other"))


def _from_cfb(kind: str, data: bytes, spec: FormSpec, budget: MessageBudget) -> Source:
    """An OLE container: a password-protected .xlsx/.docx, an old .xls, or an old .doc."""
    if "EncryptedPackage".encode("utf-16-le") in data or kind == "encrypted":
        raise SourceProblem("encrypted")
    if kind == "doc" or (
        "WordDocument".encode("utf-16-le") in data and "Workbook".encode("utf-16-le") not in data
    ):
        raise SourceProblem("format_doc")
    limits = spec.limits
    if len(data) > limits.max_xls_bytes:
        raise SourceProblem(
            "too_large",
            f"ไฟล์ Excel แบบเก่า (.xls) มีขนาด {_mb(len(data))} เกินกำหนด {_mb(limits.max_xls_bytes)}",
        )
    budget.charge(len(data), limits)
    return Source(_xls_grids(data, limits))


def _mb(size: int) -> str:
    """A size as people say it: "30 MB", "2.5 MB"."""
    return f"{size / MB:,.1f}".removesuffix(".0") + " MB"


def _from_zip(
    kind: str,
    data: bytes,
    spec: FormSpec,
    wanted: Callable[[Grid], bool],
    budget: MessageBudget,
) -> Source:
    try:
        names = _check_zip(data, spec.limits, budget)
    except SourceProblem as exc:
        if exc.code == "corrupt" and kind == "zip":  # a broken archive, not a broken workbook
            raise SourceProblem("format_zip") from exc
        raise
    if "xl/workbook.bin" in names:
        raise SourceProblem("format_xlsb")
    if "xl/workbook.xml" in names:
        return _xlsx_source(data, spec, wanted)
    if "word/document.xml" in names:
        _check_markup(data, spec.limits)  # python-docx parses every XML part whole
        return Source([_docx_grid(data, spec.limits)])
    if "mimetype" in names or kind == "ods":
        return _ods_source(data, spec, wanted)
    if kind in ("xlsx", "xlsm", "docx"):
        raise SourceProblem("corrupt", "ไม่พบส่วนข้อมูลของแบบฟอร์มในไฟล์")
    raise SourceProblem("format_zip")  # an archive: the pipeline opens those, we do not


def _check_zip(data: bytes, limits: Limits, budget: MessageBudget) -> set[str]:
    """Refuse oversized, encrypted or DTD-carrying zips before any member is parsed."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > limits.max_members:
                raise SourceProblem(
                    "too_large",
                    f"มีไฟล์ภายใน {len(infos):,} ไฟล์ เกินกำหนด {limits.max_members:,} ไฟล์",
                )
            total = sum(info.file_size for info in infos)
            if total > limits.max_uncompressed_bytes:
                mb = limits.max_uncompressed_bytes // MB
                raise SourceProblem("too_large", f"ข้อมูลเมื่อขยายแล้วเกิน {mb} MB")
            if any(info.flag_bits & 0x1 for info in infos):
                raise SourceProblem("encrypted")
            budget.charge(total, limits)
            for info in infos:
                if info.filename.lower().endswith(_XML_SUFFIXES):
                    _check_whole_part(info, limits)
                    _check_xml_prefix(zf, info)
            return {info.filename for info in infos}
    except SourceProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - any zip damage is the sender's file, not our bug
        raise SourceProblem("corrupt", "ไฟล์บีบอัดภายในไม่สมบูรณ์ อาจส่งมาไม่ครบ") from exc


def _check_whole_part(info: zipfile.ZipInfo, limits: Limits) -> None:
    """Sheets are streamed row by row; every other XML part (shared strings, a Word document)
    is parsed whole, so its size bounds the memory and time a file can cost."""
    if info.filename.startswith("xl/worksheets/"):
        return
    if info.file_size > limits.max_xml_part_bytes:
        mb = limits.max_xml_part_bytes // (1024 * 1024)
        raise SourceProblem("too_large", f"ส่วนข้อมูล {info.filename} มีขนาดเกิน {mb} MB")


def _markup(data: bytes, limit: int) -> int:
    """Tags and attributes in all XML members together, counted while they stream (C speed);
    stops once past `limit`. `_check_zip` has bounded the bytes this inflates."""
    total = 0
    with zipfile.ZipFile(BytesIO(data)) as zf:
        for info in zf.infolist():
            if not info.filename.lower().endswith(_XML_SUFFIXES):
                continue
            with zf.open(info) as fh:
                while chunk := fh.read(_PREFIX_BYTES):
                    total += xlsx.nodes(chunk)
                    if total > limit:
                        return total
    return total


def _check_markup(data: bytes, limits: Limits) -> None:
    """For readers that build a tree of every part they read (python-docx; openpyxl, whose
    read-only sheets keep each parsed row): the file's whole markup within `max_xml_nodes`."""
    if _markup(data, limits.max_xml_nodes) > limits.max_xml_nodes:
        raise SourceProblem(
            "too_large",
            f"มีโครงสร้างภายใน (แท็กและค่ากำกับของ XML) มากกว่า {limits.max_xml_nodes:,} ส่วน "
            "เกินขีดจำกัดที่ระบบอ่านได้",
        )


def _check_xml_prefix(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """A DTD must precede the root element, so the start of a member is enough to see it."""
    with zf.open(info) as fh:
        head = fh.read(_PREFIX_BYTES).lower()
    if any(marker in head for marker in _DTD_MARKERS):
        raise SourceProblem("unsafe_file", info.filename)


def _collect(rows: Iterable[Iterable[Any]], limits: Limits, name: str) -> list[list[Any]]:
    """Rows as lists without trailing blanks, refusing a sheet past the row/column limits."""
    out: list[list[Any]] = []
    for index, row in enumerate(rows):
        values = list(row)
        while values and (values[-1] is None or values[-1] == ""):
            values.pop()
        if not values:
            if index < limits.max_rows:
                out.append(values)
            continue
        if index >= limits.max_rows:
            raise SourceProblem("too_large", f"แผ่นงาน {name} มีเกิน {limits.max_rows:,} แถว")
        if len(values) > limits.max_columns:
            raise SourceProblem("too_large", f"แผ่นงาน {name} มีเกิน {limits.max_columns} คอลัมน์")
        out.append(values)
    while out and not out[-1]:
        out.pop()
    return out


def _ods_source(data: bytes, spec: FormSpec, wanted: Callable[[Grid], bool]) -> Source:
    """An OpenDocument spreadsheet: counted first (`ods.scan`), then read by calamine. What it
    cannot read (damaged, a text document, encrypted parts) asks for an .xlsx, as before."""
    limits = spec.limits
    grids, version = [], None
    with zipfile.ZipFile(BytesIO(data)) as zf:
        if not ods.is_spreadsheet(zf):
            raise SourceProblem("format_ods")
        if ods.is_encrypted(zf):
            raise SourceProblem("encrypted")
        try:
            scans = {scanned.name: scanned for scanned in ods.scan(zf, limits)}
        except xlsx.TooLarge as exc:
            raise SourceProblem("too_large", exc.detail) from exc
        except xlsx.UnsafeXml as exc:
            raise SourceProblem("unsafe_file", str(exc)) from exc
        except (ods.Unreadable, xlsx.etree.XMLSyntaxError) as exc:
            log.info("ods.unreadable reason=%s", exc)
            raise SourceProblem("format_ods") from exc
    try:
        for name, rows in ods.read(data, list(scans.values())):
            if name == spec.template.marker_sheet:
                version = _marker_version(rows[0] if rows else [], spec)
                continue
            grid = Grid(name, _collect(rows, limits, name))
            if scans[name].uncalculated and wanted(grid):
                for row, col, formula in scans[name].uncalculated:
                    if grid.get(row, col) is None:
                        grid.put(row, col, Uncalculated(formula))
            grids.append(grid)
    except ods.Unreadable as exc:
        log.info("ods.unreadable reason=%s", exc)
        raise SourceProblem("format_ods") from exc
    return Source(grids, version)


def _xlsx_source(data: bytes, spec: FormSpec, wanted: Callable[[Grid], bool]) -> Source:
    """python-calamine for a plain workbook within the limits (`calamine.plain`, the common
    case, ~2x faster); else one pass over the sheet XML (`xlsx.py`), which refuses what is past
    a limit and finds formulas without a result; openpyxl for what that reader does not handle."""
    fast = _xlsx_calamine(data, spec)
    if fast is not None:
        return fast
    try:
        return _xlsx_direct(data, spec, wanted)
    except xlsx.Unsupported as exc:
        log.info("xlsx.openpyxl_fallback reason=%s", exc)
        _check_markup(data, spec.limits)  # the limits hold for the fallback too
        return _xlsx_openpyxl(data, spec, wanted)


def _xlsx_calamine(data: bytes, spec: FormSpec) -> Source | None:
    """The workbook read by calamine, or None when it is not plain or calamine fails on it."""
    limits = spec.limits
    with zipfile.ZipFile(BytesIO(data)) as zf:
        if not calamine.plain(zf, limits):
            return None
    grids: list[Grid] = []
    version = None
    try:
        for name, rows in calamine.worksheets(data):
            if len(grids) >= limits.max_sheets:
                return None  # `xlsx.py` says how many sheets
            if name == spec.template.marker_sheet:
                version = _marker_version(rows[0] if rows else [], spec)
                continue
            grids.append(Grid(name, _collect(rows, limits, name)))
    except BaseException as exc:
        if not calamine.broke(exc):
            raise
        log.info("xlsx.calamine_fallback reason=%s", str(exc)[:80])
        return None
    return Source(grids, version)


def _xlsx_direct(data: bytes, spec: FormSpec, wanted: Callable[[Grid], bool]) -> Source:
    limits = spec.limits
    grids, version = [], None
    with zipfile.ZipFile(BytesIO(data)) as zf:
        try:
            package = xlsx.open_package(zf, limits)
            if len(package.sheets) > limits.max_sheets:
                raise SourceProblem("too_large", f"มี {len(package.sheets)} แผ่นงาน")
            for sheet in xlsx.read_sheets(zf, package, limits):
                if sheet.name == spec.template.marker_sheet:
                    version = _marker_version(sheet.rows[0] if sheet.rows else [], spec)
                    continue
                grid = Grid(sheet.name, sheet.rows)
                if sheet.uncalculated and wanted(grid):
                    for row, col, formula in sheet.uncalculated:
                        grid.put(row, col, Uncalculated(formula))
                grids.append(grid)
        except xlsx.TooLarge as exc:
            raise SourceProblem("too_large", exc.detail) from exc
        except xlsx.UnsafeXml as exc:
            raise SourceProblem("unsafe_file", str(exc)) from exc
        except xlsx.etree.XMLSyntaxError as exc:
            text = str(exc).lower()
            if "entit" in text or "amplification" in text:  # libxml2 stopped an entity bomb
                raise SourceProblem("unsafe_file", "") from exc
            raise
    return Source(grids, version)


def _xlsx_openpyxl(data: bytes, spec: FormSpec, wanted: Callable[[Grid], bool]) -> Source:
    """The reference reader: openpyxl read-only, then a formula pass for uncalculated cells."""
    wb = load_workbook(
        BytesIO(data), read_only=True, data_only=True, keep_vba=False, keep_links=False
    )
    try:
        if len(wb.worksheets) > spec.limits.max_sheets:
            raise SourceProblem("too_large", f"มี {len(wb.worksheets)} แผ่นงาน")
        version = _template_version(wb, spec)
        grids = []
        for ws in wb.worksheets:
            if ws.title == spec.template.marker_sheet:
                continue
            ws.reset_dimensions()  # declared dimensions may lie (A1:A1); never trust them
            grids.append(
                Grid(ws.title, _collect(ws.iter_rows(values_only=True), spec.limits, ws.title))
            )
    finally:
        wb.close()
    _mark_uncalculated(data, [g for g in grids if wanted(g)], spec.limits)
    return Source(grids, version)


def _template_version(wb: Any, spec: FormSpec) -> str | None:
    if spec.template.marker_sheet not in wb.sheetnames:
        return None
    ws = wb[spec.template.marker_sheet]
    ws.reset_dimensions()
    first: tuple[Any, ...] = next(ws.iter_rows(min_row=1, max_row=1, values_only=True), ())
    return _marker_version(list(first), spec)


def _marker_version(first: list[Any], spec: FormSpec) -> str | None:
    if len(first) >= 2 and first[0] == spec.template.marker and first[1] is not None:
        return str(first[1])
    return None


def _mark_uncalculated(data: bytes, grids: list[Grid], limits: Limits) -> None:
    """Second pass without data_only: a formula where the first pass saw nothing had no result.

    openpyxl gives either cached values or formulas, never both, hence two streaming passes;
    only sheets that look like forms get the second one.
    """
    if not grids or not _has_formulas(data):
        return
    wb = load_workbook(
        BytesIO(data), read_only=True, data_only=False, keep_vba=False, keep_links=False
    )
    try:
        for grid in grids:
            ws = wb[grid.name]
            ws.reset_dimensions()
            for r, row in enumerate(ws.iter_rows(values_only=True)):
                if r >= limits.max_rows:
                    break
                for c, value in enumerate(row[: limits.max_columns]):
                    formula = _formula_text(value)
                    if formula and grid.get(r, c) is None:
                        grid.put(r, c, Uncalculated(formula))
    finally:
        wb.close()


def _has_formulas(data: bytes) -> bool:
    """Whether any XML part holds a formula element (`<f>`, any prefix): most forms hold none,
    and then the second full parse of every sheet (a third of the reading time) is skipped.
    The members were size-checked by `_check_zip`; decompressing them is cheap next to parsing."""
    with zipfile.ZipFile(BytesIO(data)) as zf:
        for info in zf.infolist():
            # every XML part, not just xl/worksheets/: a workbook may put its sheets anywhere
            if not info.filename.lower().endswith(".xml"):
                continue
            with zf.open(info) as fh:  # in chunks: a sheet may be 50 MB unpacked
                tail = b""
                while chunk := fh.read(_PREFIX_BYTES):
                    if _FORMULA_TAG.search(tail + chunk):
                        return True
                    tail = chunk[-64:]
    return False


def _formula_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value if value.startswith("=") and len(value) > 1 else None
    text = getattr(value, "text", None)  # ArrayFormula / DataTableFormula
    return str(text) if text is not None else None


def _xls_grids(data: bytes, limits: Limits) -> list[Grid]:
    """An old .xls through xlrd; dates follow the workbook's 1900/1904 date mode."""
    try:
        # ragged rows: a single cell at the far corner must not pad every row out to it
        book = xlrd.open_workbook(file_contents=data, on_demand=True, ragged_rows=True)
    except xlrd.XLRDError as exc:
        if "encrypt" in str(exc).lower():
            raise SourceProblem("encrypted") from exc
        raise SourceProblem("corrupt", str(exc)[:80]) from exc
    try:
        if book.nsheets > limits.max_sheets:
            raise SourceProblem("too_large", f"มี {book.nsheets} แผ่นงาน")
        grids = []
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            if sheet.nrows > limits.max_rows or sheet.ncols > limits.max_columns:
                raise SourceProblem("too_large", f"แผ่นงาน {sheet.name} ใหญ่เกินกำหนด")
            rows = (
                [_xls_value(sheet.cell(r, c), book.datemode) for c in range(sheet.row_len(r))]
                for r in range(sheet.nrows)
            )
            grids.append(Grid(sheet.name, _collect(rows, limits, sheet.name)))
            book.unload_sheet(index)
        return grids
    finally:
        book.release_resources()


def _xls_value(cell: Any, datemode: int) -> Any:
    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return None
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell.value
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    return cell.value


def _docx_grid(data: bytes, limits: Limits) -> Grid:
    """A Word document as one grid: a paragraph is a one-cell row, a table row is a row.

    This is what people get when they paste the form from Excel into Word, or retype it there:
    the parser then reads it like a sheet. Merged cells repeat the same cell in python-docx;
    only its first (top-left) occurrence keeps the text, as in a spreadsheet. Tables inside
    content controls (`w:sdt`) count too; each grid row remembers its table and row number.
    """
    document = Document(BytesIO(data))
    grid = Grid(None, addressable=False)
    rows: list[list[Any]] = []
    tables = cells_seen = 0
    for block in _blocks(document.element.body):
        if block.tag == qn("w:p"):
            rows.append([Paragraph(block, document).text])
            grid.places.append((0, 0))
        else:
            tables += 1
            seen: dict[int, Any] = {}  # id -> element, kept alive so ids stay unique
            for number, table_row in enumerate(Table(block, document).rows, start=1):
                # python-docx repeats a cell once per grid column it spans: the spans are
                # added up first, so `w:gridSpan w:val="100000000"` costs nothing
                width = _docx_row_width(table_row, limits, tables, number)
                cells_seen += width
                if cells_seen > limits.max_cells:
                    raise SourceProblem(
                        "too_large",
                        f"ตารางในเอกสารมีเซลล์รวมกันมากกว่า {limits.max_cells:,} เซลล์ "
                        "เกินขีดจำกัดที่ระบบอ่านได้",
                    )
                cells: list[Any] = []
                for cell in table_row.cells:
                    cells.append(None if id(cell._tc) in seen else cell.text)
                    seen[id(cell._tc)] = cell._tc
                rows.append(cells)
                grid.places.append((tables, number))
                if len(rows) > limits.max_rows:
                    raise SourceProblem("too_large", f"เอกสารมีเกิน {limits.max_rows:,} แถว")
        if len(rows) > limits.max_rows:
            raise SourceProblem("too_large", f"เอกสารมีเกิน {limits.max_rows:,} แถว")
    grid.rows = _collect(rows, limits, "Word")
    return grid


def _docx_row_width(table_row: Any, limits: Limits, table: int, number: int) -> int:
    width = 0
    for tc in table_row._tr.tc_lst:
        width += max(1, int(tc.grid_span or 1))
        if width > limits.max_row_cells:
            raise SourceProblem(
                "too_large",
                f"ตารางที่ {table} แถวที่ {number} ในเอกสารมีเซลล์มากกว่า "
                f"{limits.max_row_cells:,} เซลล์ เกินขีดจำกัดที่ระบบอ่านได้",
            )
    return width


def _blocks(parent: Any) -> Iterable[Any]:
    """Paragraphs and tables in document order, looking inside content controls."""
    for child in parent.iterchildren():
        if child.tag in (qn("w:p"), qn("w:tbl")):
            yield child
        elif child.tag == qn("w:sdt"):
            content = child.find(qn("w:sdtContent"))
            if content is not None:
                yield from _blocks(content)
