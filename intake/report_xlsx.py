"""The status report as a workbook for sending upwards (`intake report --format xlsx`).

One sheet with the summary on top and one row per expected sender below (Thai headers, status
colours, a frozen header row and filters), and a second sheet with what waits for review. Every
text cell is written as text: a subject line starting with `=` stays a string, never a formula;
and passes `display.xlsx_text`, so a control character in a subject cannot break the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from intake.display import xlsx_value
from intake.report_table import countdown_th
from intake.reports import KIND_TH, STATUS_TH, StatusReport, days_to_deadline
from intake.review import reason_th
from intake.thai import format_thai_date, format_thai_datetime

FONT = "Tahoma"  # has Thai glyphs on every office PC
# Excel's own good / neutral / bad cell styles
STATUS_FILL = {"accepted": "C6EFCE", "needs_correction": "FFEB9C", "missing": "FFC7CE"}
STATUS_FONT = {"accepted": "006100", "needs_correction": "9C5700", "missing": "9C0006"}
HEADER_FILL = "1F3864"
THIN = Side(style="thin", color="BFBFBF")

COLUMNS = (
    ("ลำดับ", 7), ("ภาค", 16), ("กลุ่มจังหวัด", 30), ("ชื่อ", 30), ("ประเภท", 12),
    ("รหัส", 15), ("สถานะ", 14), ("ส่งหลังกำหนด", 13), ("จำนวนฉบับ", 11), ("เลขรับ", 12),
    ("ได้รับล่าสุด", 28), ("กำหนดส่งของหน่วย", 20),
)  # fmt: skip
REVIEW_COLUMNS = (
    ("ลำดับ", 7), ("เรื่อง", 40), ("จาก", 30), ("หัวเรื่องอีเมล", 40), ("ได้รับเมื่อ", 28),
    ("รายละเอียด", 60),
)  # fmt: skip


def _put(ws: Worksheet, row: int, col: int, value: Any, **style: Any) -> Any:
    cell = ws.cell(row=row, column=col, value=xlsx_value(value))
    if isinstance(value, str):
        cell.data_type = "s"  # never a formula, whatever the text starts with
    cell.font = Font(name=FONT, **style.pop("font", {}))
    for key, val in style.items():
        setattr(cell, key, val)
    return cell


def _summary(ws: Worksheet, report: StatusReport) -> int:
    """Title, date line and the counts; returns the row where the table header goes."""
    s = report.summary
    days = days_to_deadline(report.deadline, report.generated_at)
    _put(ws, 1, 1, "สถานะการส่งข้อมูลการยกระดับเมืองและการกระตุ้นเศรษฐกิจท้องถิ่นอย่างยั่งยืน",
         font={"bold": True, "size": 14})  # fmt: skip
    _put(ws, 2, 1, f"ข้อมูล ณ {format_thai_datetime(report.generated_at)} · กำหนดส่ง "
         f"{format_thai_date(report.deadline)} ({countdown_th(days)})")  # fmt: skip
    boxes = (
        ("ทั้งหมด", s["expected"], "D9E1F2", "1F3864"),
        (STATUS_TH["accepted"], s["accepted"], STATUS_FILL["accepted"], STATUS_FONT["accepted"]),
        (STATUS_TH["needs_correction"], s["needs_correction"],
         STATUS_FILL["needs_correction"], STATUS_FONT["needs_correction"]),
        (STATUS_TH["missing"], s["missing"], STATUS_FILL["missing"], STATUS_FONT["missing"]),
        ("ส่งหลังกำหนด", s["late"], "EDEDED", "404040"),
        ("รอตรวจสอบ", len(report.review), "EDEDED", "404040"),
    )  # fmt: skip
    for i, (label, value, fill, colour) in enumerate(boxes):
        col = 2 + i * 2
        for row, val, size in ((4, label, 10), (5, value, 16)):
            ws.merge_cells(start_row=row, start_column=col, end_row=row, end_column=col + 1)
            _put(ws, row, col, val, font={"bold": True, "size": size, "color": colour},
                 fill=PatternFill("solid", fgColor=fill),
                 alignment=Alignment(horizontal="center", vertical="center"))  # fmt: skip
    ws.row_dimensions[5].height = 28
    return 7


def _header(ws: Worksheet, row: int, columns: tuple[tuple[str, int], ...]) -> None:
    for col, (title, width) in enumerate(columns, start=1):
        _put(ws, row, col, title, font={"bold": True, "color": "FFFFFF"},
             fill=PatternFill("solid", fgColor=HEADER_FILL),
             alignment=Alignment(horizontal="center", vertical="center", wrap_text=True),
             border=Border(top=THIN, bottom=THIN, left=THIN, right=THIN))  # fmt: skip
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.row_dimensions[row].height = 24


def _status_sheet(ws: Worksheet, report: StatusReport) -> None:
    ws.title = "สถานะการส่งข้อมูล"
    top = _summary(ws, report)
    _header(ws, top, COLUMNS)
    clusters = {e.id: e.name_th for e in report.entities if e.kind == "cluster"}
    row = top
    for n, e in enumerate(report.entities, start=1):
        row = top + n
        cluster = e.name_th if e.kind == "cluster" else clusters.get(e.cluster_id or "", "")
        own = format_thai_datetime(e.deadline_override) if e.deadline_override else ""
        values = (
            n, e.region_th, cluster, e.name_th, KIND_TH[e.kind], e.id,
            STATUS_TH[e.status], "ใช่" if e.late else "", e.versions or None, e.receipt or "",
            format_thai_datetime(e.last_received_at) if e.last_received_at else "", own,
        )  # fmt: skip
        for col, value in enumerate(values, start=1):
            cell = _put(ws, row, col, value, border=Border(bottom=THIN),
                        font={"bold": e.kind == "cluster"})  # fmt: skip
            if col == 7:
                cell.fill = PatternFill("solid", fgColor=STATUS_FILL[e.status])
                cell.font = Font(name=FONT, bold=True, color=STATUS_FONT[e.status])
                cell.alignment = Alignment(horizontal="center")
    ws.freeze_panes = ws.cell(row=top + 1, column=1)
    ws.auto_filter.ref = f"A{top}:{get_column_letter(len(COLUMNS))}{max(row, top + 1)}"
    ws.print_title_rows = f"{top}:{top}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToHeight = 0


def _review_sheet(ws: Worksheet, report: StatusReport) -> None:
    _put(ws, 1, 1, f"รายการรอตรวจสอบโดยเจ้าหน้าที่ {len(report.review)} รายการ",
         font={"bold": True, "size": 14})  # fmt: skip
    _header(ws, 3, REVIEW_COLUMNS)
    row = 3
    for n, r in enumerate(report.review, start=1):
        row = 3 + n
        values = (
            n, reason_th(r.reason), r.from_address or "", r.subject or "",
            format_thai_datetime(r.received_at) if r.received_at else "", r.detail or "",
        )  # fmt: skip
        for col, value in enumerate(values, start=1):
            _put(ws, row, col, value, alignment=Alignment(wrap_text=True, vertical="top"))
    ws.freeze_panes = "A4"
    ws.auto_filter.ref = f"A3:{get_column_letter(len(REVIEW_COLUMNS))}{max(row, 4)}"


def write_report_xlsx(report: StatusReport, target: str | Path | IO[bytes]) -> None:
    """Write the status workbook to a path or a binary stream."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    _status_sheet(ws, report)
    _review_sheet(wb.create_sheet("รอตรวจสอบ"), report)
    wb.save(target)  # type: ignore[arg-type]
