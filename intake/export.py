"""The committee's consolidated workbook and per-part CSV files: every accepted form side by side.

    from intake.export import write_consolidated, write_csv

    with session_scope(svc.factory) as session:          # the caller owns the transaction
        write_consolidated(session, svc.spec, "consolidated.xlsx",
                           deadline=svc.settings.deadline, now=svc.clock.now())
        with open("projects.csv", "w", encoding="utf-8-sig", newline="") as fh:
            write_csv(session, svc.spec, "projects", fh,
                      deadline=svc.settings.deadline, now=svc.clock.now())

The workbook has an overview sheet (every expected sender: status in Thai, receipt, first and last
received dates with the B.E. year, late, versions), one sheet per part of the form description
with every accepted sender's rows from its latest valid version (sender columns first), and a
budget summary by axis, term and region. Headers are the Thai labels of `config/form.toml`, so a
column added there (stored in `extra`) appears with no code change. `tables()` gives the same
content as plain `Table`s for other views (the web page).

Every text cell is written as text, never as a formula, whatever it starts with: a province's
"=HYPERLINK(...)" stays a string. CSV goes one step further (`reports.csv_safe`): cells starting
with = + - @ tab or CR get a leading apostrophe, since CSV has no cell types. Text cells pass
`display.xlsx_text`: a control character in a form cell cannot break the workbook.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, TextIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy.orm import Session

from intake.display import xlsx_text
from intake.forms.spec import Field, FormSpec, Part
from intake.forms.template import BUDGET_FORMAT, FONT
from intake.reports import KIND_TH, STATUS_TH, build_report, csv_safe
from intake.thai import format_thai_datetime
from storage import queries

OVERVIEW, SUMMARY = "overview", "summary"
_INT_TYPES = frozenset({"int", "axis", "fiscal_year"})
_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")
_NUMBERING = re.compile(r"^\s*(?:ข้อ\s*)?[0-9๐-๙]+\s*[.)]\s*")
_HEAD_FONT = Font(name=FONT, bold=True, color="FFFFFF", size=14)
_BODY_FONT = Font(name=FONT, size=14)
_HEAD_FILL = PatternFill("solid", fgColor="1F4E79")
_WRAP = Alignment(wrap_text=True, vertical="top")


class ExportError(ValueError):
    """A request the export cannot answer (an unknown part); the message says what is known."""


@dataclass(frozen=True)
class Column:
    label: str
    kind: str = "text"  # text | int | budget
    width: float = 14.0


@dataclass
class Table:
    """One sheet (or CSV file): Thai column labels, rows of plain values, columns kept frozen."""

    key: str  # overview | summary | a part key
    title: str  # the sheet name (at most 31 characters, as Excel requires)
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    frozen_columns: int = 2  # rows stay frozen under the header; these columns on the left


_SENDER_COLUMNS = [
    Column("รหัส", width=16),
    Column("ชื่อ", width=30),
    Column("ประเภท", width=13),
    Column("ภาค", width=18),
    Column("เลขรับ", width=12),
]


def write_consolidated(
    session: Session,
    spec: FormSpec,
    target: str | Path | IO[bytes],
    *,
    deadline: datetime,
    now: datetime,
) -> None:
    """Write the consolidated .xlsx (overview, one sheet per part, budget summary) to `target`.

    Reads only; the caller's session is left open. Written in openpyxl's write-only mode, so
    memory stays flat however many rows the accepted forms hold.
    """
    wb = Workbook(write_only=True)
    wb.properties.title = spec.title
    wb.properties.subject = f"ข้อมูล ณ {format_thai_datetime(now)}"
    wb.properties.created = now.replace(tzinfo=None)
    stamp = f"ข้อมูล ณ {format_thai_datetime(now)}  กำหนดส่ง {format_thai_datetime(deadline)}"
    for table in tables(session, spec, deadline=deadline, now=now):
        _write_sheet(wb.create_sheet(table.title), table, stamp)
    wb.save(target)


def write_csv(
    session: Session,
    spec: FormSpec,
    key: str,
    target: TextIO,
    *,
    deadline: datetime,
    now: datetime,
) -> int:
    """One table as CSV (`key`: overview, summary or a part key); returns the rows written.

    Every cell passes `reports.csv_safe`. Open `target` with encoding "utf-8-sig" and
    newline="" so Excel shows the Thai text and rows are not doubled.
    """
    table = build_table(session, spec, key, deadline=deadline, now=now)
    writer = csv.writer(target)
    writer.writerow([csv_safe(c.label) for c in table.columns])
    for row in table.rows:
        writer.writerow([csv_safe(_csv_text(v)) for v in row])
    return len(table.rows)


def table_keys(spec: FormSpec) -> list[str]:
    """What `build_table` and `write_csv` accept, in workbook order."""
    return [OVERVIEW, *(p.key for p in spec.parts), SUMMARY]


def tables(session: Session, spec: FormSpec, *, deadline: datetime, now: datetime) -> list[Table]:
    """Every sheet of the workbook, in order, as plain tables."""
    used: set[str] = set()
    out = []
    for key in table_keys(spec):
        table = build_table(session, spec, key, deadline=deadline, now=now)
        table.title = _unique_title(table.title, used)
        out.append(table)
    return out


def build_table(
    session: Session, spec: FormSpec, key: str, *, deadline: datetime, now: datetime
) -> Table:
    if key == OVERVIEW:
        return overview_table(session, deadline=deadline, now=now)
    if key == SUMMARY:
        return budget_summary_table(session, spec)
    part = next((p for p in spec.parts if p.key == key), None)
    if part is None:
        known = ", ".join(table_keys(spec))
        raise ExportError(f"unknown part {key!r}: use one of {known}")
    return part_table(session, part)


# --- the overview: every expected sender ---------------------------------------------------------


def overview_table(session: Session, *, deadline: datetime, now: datetime) -> Table:
    """One row per expected sender, in roster order (region, cluster, name)."""
    report = build_report(session, deadline, now)
    first = queries.first_received_by_sender(session)
    names = {e.id: e.name_th for e in report.entities}
    columns = [
        Column("รหัส", width=16),
        Column("ชื่อ", width=30),
        Column("ประเภท", width=13),
        Column("ภาค", width=18),
        Column("กลุ่มจังหวัด", width=34),
        Column("สถานะ", width=12),
        Column("เลขรับ", width=12),
        Column("ได้รับครั้งแรก", width=30),
        Column("ได้รับล่าสุด", width=30),
        Column("ส่งหลังกำหนด", width=14),
        Column("จำนวนฉบับ", "int", width=12),
    ]
    rows = []
    for e in report.entities:
        cluster = e.cluster_id if e.kind == "province" else e.id
        rows.append(
            [
                e.id,
                e.name_th,
                KIND_TH.get(e.kind, e.kind),
                e.region_th,
                names.get(cluster or "", cluster or ""),
                STATUS_TH.get(e.status, e.status),
                e.receipt,
                _thai_when(first.get(e.id)),
                _thai_when(e.last_received_at),
                "ใช่" if e.late else ("ไม่" if e.status == "accepted" else ""),
                e.versions,
            ]
        )
    return Table(OVERVIEW, "ภาพรวม", columns, rows)


def _thai_when(value: datetime | None) -> str | None:
    return format_thai_datetime(value) if value is not None else None


# --- one sheet per part --------------------------------------------------------------------------


def part_table(session: Session, part: Part) -> Table:
    """The part's rows from every accepted sender's latest valid version, sender columns first.

    Table parts stored in a table of their own get the description's columns (unknown ones are
    read from `extra`); text and list parts, and table parts kept as text, get one text column.
    """
    structured = part.kind == "table" and part.key in queries.PART_TABLES
    fields: list[Field] = list(part.columns) if structured else []
    columns = list(_SENDER_COLUMNS)
    if structured:
        columns += [Column(f.label, _kind(f), f.width) for f in fields]
    else:
        columns += [Column("ลำดับ", "int", 8), Column(_NUMBERING.sub("", part.heading), width=80)]
    rows = []
    for row in queries.accepted_part_rows(session, part.key):
        sender = [
            row.sender_id,
            row.name_th,
            KIND_TH.get(row.kind.value, row.kind.value),
            row.region_th,
            row.receipt,
        ]
        if structured:
            values = [_typed(row.values.get(f.key), _kind(f)) for f in fields]
        else:
            values = [row.row_no, row.values.get("text")]
        rows.append(sender + values)
    return Table(part.key, _sheet_title(part), columns, rows)


def _kind(spec_field: Field) -> str:
    if spec_field.type == "budget":
        return "budget"
    return "int" if spec_field.type in _INT_TYPES else "text"


def _typed(value: Any, kind: str) -> Any:
    """A stored value as the cell should hold it (JSON `extra` keeps numbers as text)."""
    if value is None or value == "":
        return None
    try:
        if kind == "budget":
            return value if isinstance(value, Decimal) else Decimal(str(value))
        if kind == "int":
            return value if isinstance(value, int) else int(str(value))
    except (InvalidOperation, ValueError):
        return str(value)  # kept as received rather than lost
    return value if isinstance(value, str) else str(value)


# --- budget summary ------------------------------------------------------------------------------


def budget_summary_table(session: Session, spec: FormSpec) -> Table:
    """Project budgets of accepted forms summed by axis, by term and by region, then in total."""
    projects = queries.accepted_part_rows(session, "projects")
    axis_label = _label(spec, "axis", "แกนหลัก")
    term_label = _label(spec, "term", "ระยะ")
    by_axis: dict[Any, list[Decimal]] = {}
    by_term: dict[Any, list[Decimal]] = {}
    by_region: dict[Any, list[Decimal]] = {}
    for row in projects:
        budget = _typed(row.values.get("budget"), "budget")
        amount = budget if isinstance(budget, Decimal) else Decimal(0)
        by_axis.setdefault(row.values.get("axis"), []).append(amount)
        by_term.setdefault(row.values.get("term"), []).append(amount)
        by_region.setdefault(row.region_th, []).append(amount)  # roster order: by region
    low, high = spec.rule("axis", "min", 1), spec.rule("axis", "max", 3)
    term_order = list(spec.choices.get("term", {}))
    rows: list[list[Any]] = []
    rows += _sums(axis_label, by_axis, list(range(low, high + 1)), lambda a: f"{axis_label} {a}")
    rows += _sums(term_label, by_term, term_order, str)
    rows += _sums("ภาค", by_region, list(by_region), str)
    every = [a for amounts in by_axis.values() for a in amounts]
    rows.append(["รวมทั้งสิ้น", "", len(every), sum(every, Decimal(0))])
    columns = [
        Column("จำแนกตาม", width=16),
        Column("รายการ", width=30),
        Column("จำนวนโครงการ", "int", 16),
        Column("งบประมาณรวม (บาท)", "budget", 24),
    ]
    return Table(SUMMARY, "สรุปงบประมาณ", columns, rows, frozen_columns=0)


def _sums(
    dimension: str, groups: dict[Any, list[Decimal]], order: list[Any], name: Any
) -> list[list[Any]]:
    keys = order + [k for k in groups if k not in order]  # values outside the rules still count
    return [
        [dimension, name(k) if k is not None else "(ไม่ระบุ)", len(groups.get(k, [])),
         sum(groups.get(k, []), Decimal(0))]
        for k in keys
    ]  # fmt: skip


def _label(spec: FormSpec, key: str, default: str) -> str:
    try:
        return spec.part("projects").column(key).label
    except StopIteration:
        return default


# --- writing -------------------------------------------------------------------------------------


def _write_sheet(ws: WriteOnlyWorksheet, table: Table, stamp: str) -> None:
    """Header row, rows, widths, frozen panes and a filter; write-only sheets take the view and
    widths before the first row, the filter at the end."""
    last = get_column_letter(len(table.columns))
    for index, column in enumerate(table.columns, start=1):
        ws.column_dimensions[get_column_letter(index)].width = column.width
    ws.freeze_panes = f"{get_column_letter(table.frozen_columns + 1)}2"
    ws.oddHeader.center.text = stamp
    ws.append([_head(ws, c.label) for c in table.columns])
    for row in table.rows:
        ws.append(
            [_body(ws, value, column) for value, column in zip(row, table.columns, strict=True)]
        )
    ws.auto_filter.ref = f"A1:{last}{len(table.rows) + 1}"


def _head(ws: WriteOnlyWorksheet, label: str) -> WriteOnlyCell:
    cell = _text_cell(ws, label)
    cell.font, cell.fill, cell.alignment = _HEAD_FONT, _HEAD_FILL, _WRAP
    return cell


def _body(ws: WriteOnlyWorksheet, value: Any, column: Column) -> WriteOnlyCell:
    if isinstance(value, str) or (value is not None and not isinstance(value, int | Decimal)):
        cell = _text_cell(ws, str(value))
        cell.alignment = _WRAP
    else:
        cell = WriteOnlyCell(ws, value=value)
        if column.kind == "budget":
            cell.number_format = BUDGET_FORMAT
    cell.font = _BODY_FONT
    return cell


def _text_cell(ws: WriteOnlyWorksheet, text: str) -> WriteOnlyCell:
    """Text that stays text: openpyxl would make "=..." a formula, so the type is set back."""
    cell = WriteOnlyCell(ws, value=xlsx_text(text))
    cell.data_type = "s"
    return cell


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


def _sheet_title(part: Part) -> str:
    """The part's heading as a sheet name; a long one falls back to its shortest Thai variant."""
    title = _BAD_TITLE.sub("-", part.heading).strip()
    if len(title) <= 31:
        return title
    number = m.group(0) if (m := _NUMBERING.match(part.heading)) else ""
    fitting = [
        v for v in (_BAD_TITLE.sub("-", number + v).strip() for v in part.variants) if len(v) <= 31
    ]
    return fitting[0] if fitting else title[:31]


def _unique_title(title: str, used: set[str]) -> str:
    candidate, n = title, 2
    while candidate.lower() in used:
        suffix = f" ({n})"
        candidate, n = title[: 31 - len(suffix)] + suffix, n + 1
    used.add(candidate.lower())
    return candidate


__all__ = [
    "Column",
    "ExportError",
    "Table",
    "build_table",
    "table_keys",
    "tables",
    "write_consolidated",
    "write_csv",
]
