"""The blank .xlsx the service publishes, built from the form description.

The template and the reader share one description, so a label renamed in `config/form.toml`
appears in the next template and is read back without code changes. `layout` says where every
value goes; tests and `tests/forms/builders.py` fill the template through it.

The workbook carries a very hidden sheet (`_intake`: A1 = "intake-form", B1 = version) so the
reader can tell which template version a province filled in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from intake.forms.spec import Field, FormSpec, Part

FONT = "TH SarabunPSK"  # the Thai government's standard typeface
BUDGET_FORMAT = "#,##0.00"
_THIN = Side(style="thin", color="808080")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_WRAP = Alignment(wrap_text=True, vertical="top")
_HEADING_FILL = PatternFill("solid", fgColor="1F4E79")
_LABEL_FILL = PatternFill("solid", fgColor="DDEBF7")


@dataclass
class Layout:
    """Where things go in the blank template (1-based rows and columns)."""

    sheet: str
    header: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> value cell
    labels: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> label cell
    headings: dict[str, int] = field(default_factory=dict)  # part -> heading row
    columns: dict[str, dict[str, int]] = field(default_factory=dict)  # part -> key -> column
    rows: dict[str, list[int]] = field(default_factory=dict)  # part -> data rows
    column_rows: dict[str, int] = field(default_factory=dict)  # table part -> column-label row
    last_column: int = 1


def layout(spec: FormSpec, rows: Mapping[str, int] | None = None) -> Layout:
    """Positions of the template; `rows` asks for more data rows in some parts."""
    t = spec.template
    out = Layout(sheet=t.sheet)
    r = 3
    for f in spec.header:
        out.labels[f.key] = (r, 1)
        out.header[f.key] = (r, t.label_width + 1)
        r += 1
    r += 1
    for part in spec.parts:
        out.headings[part.key] = r
        r += 1
        if part.kind == "table":
            out.column_rows[part.key] = r
            out.columns[part.key] = {
                c.key: part.template_column + i for i, c in enumerate(part.columns)
            }
            r += 1
        else:
            out.columns[part.key] = {"text": 1}
        count = max(part.template_rows, (rows or {}).get(part.key, 0))
        out.rows[part.key] = list(range(r, r + count))
        r += count + 1
    table_ends = [max(cols.values()) for cols in out.columns.values()]
    out.last_column = max(t.text_width, t.label_width + t.value_width, *table_ends)
    return out


def write_template(
    spec: FormSpec, target: str | Path | IO[bytes], *, rows: Mapping[str, int] | None = None
) -> Layout:
    """Write the blank form to a path or binary stream; returns its layout."""
    plan = layout(spec, rows)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = plan.sheet
    _title(ws, spec, plan)
    _header(ws, spec, plan)
    for part in spec.parts:
        _part(ws, spec, part, plan)
    _widths(ws, spec, plan)
    ws.freeze_panes = "A2"
    ws.page_setup.orientation = "landscape"
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToHeight = 0
    _instructions(wb.create_sheet(spec.template.instructions_sheet), spec)
    marker = wb.create_sheet(spec.template.marker_sheet)
    marker["A1"], marker["B1"] = spec.template.marker, spec.version
    marker.sheet_state = "veryHidden"
    wb.properties.title = spec.title
    wb.save(target)
    return plan


def _font(bold: bool = False, size: int = 16, color: str | None = None) -> Font:
    return Font(name=FONT, size=size, bold=bold, color=color)


def _title(ws: Worksheet, spec: FormSpec, plan: Layout) -> None:
    ws.cell(1, 1, spec.title).font = _font(True, 20)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=plan.last_column)
    ws.row_dimensions[1].height = 36
    note = f"แบบฟอร์มรุ่น {spec.version} กรุณาอย่าแก้ไขหรือลบหัวข้อ เพิ่มแถวได้ตามต้องการ"
    ws.cell(2, 1, note).font = _font(size=12, color="595959")


def _header(ws: Worksheet, spec: FormSpec, plan: Layout) -> None:
    t = spec.template
    for f in spec.header:
        lr, lc = plan.labels[f.key]
        label = ws.cell(lr, lc, f.label + (" *" if f.required else ""))
        label.font, label.fill, label.border = _font(True), _LABEL_FILL, _BOX
        ws.merge_cells(start_row=lr, start_column=lc, end_row=lr, end_column=lc + t.label_width - 1)
        vr, vc = plan.header[f.key]
        value = ws.cell(vr, vc)
        value.font, value.border, value.alignment = _font(), _BOX, _WRAP
        if f.type == "phone":
            value.number_format = "@"  # keep the leading zero of a phone number
        ws.merge_cells(start_row=vr, start_column=vc, end_row=vr, end_column=vc + t.value_width - 1)
        _validation(ws, spec, f, [value.coordinate])


def _part(ws: Worksheet, spec: FormSpec, part: Part, plan: Layout) -> None:
    head = ws.cell(plan.headings[part.key], 1, part.heading)
    head.font, head.fill = _font(True, 18, "FFFFFF"), _HEADING_FILL
    ws.merge_cells(
        start_row=head.row, start_column=1, end_row=head.row, end_column=plan.last_column
    )
    if part.kind != "table":
        for r in plan.rows[part.key]:
            cell = ws.cell(r, 1)
            cell.font, cell.alignment, cell.border = _font(), _WRAP, _BOX
            ws.merge_cells(
                start_row=r, start_column=1, end_row=r, end_column=spec.template.text_width
            )
            ws.row_dimensions[r].height = 42 if part.kind == "text" else 24
        return
    header_row = plan.column_rows[part.key]
    for column in part.columns:
        c = plan.columns[part.key][column.key]
        cell = ws.cell(header_row, c, column.label + (" *" if column.required else ""))
        cell.font, cell.fill, cell.border = _font(True), _LABEL_FILL, _BOX
        cell.alignment = Alignment(wrap_text=True, horizontal="center", vertical="center")
        refs = []
        for r in plan.rows[part.key]:
            data = ws.cell(r, c)
            data.font, data.alignment, data.border = _font(), _WRAP, _BOX
            if column.type == "budget":
                data.number_format = BUDGET_FORMAT
            refs.append(data.coordinate)
        _validation(ws, spec, column, refs)


def _validation(ws: Worksheet, spec: FormSpec, spec_field: Field, refs: list[str]) -> None:
    """A dropdown or range check where the rule allows one, and the help text as a prompt."""
    if not refs:
        return
    dv = _rule(spec, spec_field)
    dv.showInputMessage = True
    dv.promptTitle = spec_field.label[:32]
    dv.prompt = spec_field.help[:255] or None
    ws.add_data_validation(dv)
    dv.add(f"{refs[0]}:{refs[-1]}" if len(refs) > 1 else refs[0])


def _rule(spec: FormSpec, spec_field: Field) -> DataValidation:
    kind = spec_field.type
    if kind in ("choice", "term"):
        names = ",".join(spec.choices_for(spec_field))
        return DataValidation(type="list", formula1=f'"{names}"', allow_blank=True)
    if kind == "axis":
        low, high = spec.rule("axis", "min", 1), spec.rule("axis", "max", 3)
        values = ",".join(str(n) for n in range(low, high + 1))
        return DataValidation(type="list", formula1=f'"{values}"', allow_blank=True)
    if kind == "fiscal_year":
        low, high = spec.rule("fiscal_year", "min", 2567), spec.rule("fiscal_year", "max", 2580)
        return DataValidation(
            type="whole", operator="between", formula1=str(low), formula2=str(high),
            allow_blank=True, errorStyle="warning", showErrorMessage=True,
            error=f"ปีงบประมาณ พ.ศ. {low} ถึง {high}",
        )  # fmt: skip
    if kind == "budget":
        return DataValidation(
            type="decimal", operator="greaterThanOrEqual", formula1="0", allow_blank=True,
            errorStyle="warning", showErrorMessage=True, error="จำนวนเงินบาทเป็นตัวเลข ตั้งแต่ 0 ขึ้นไป",
        )  # fmt: skip
    return DataValidation(allow_blank=True)


def _widths(ws: Worksheet, spec: FormSpec, plan: Layout) -> None:
    widths = {c: 14.0 for c in range(1, plan.last_column + 1)}
    for part in spec.parts:
        for column in part.columns:
            c = plan.columns[part.key][column.key]
            widths[c] = max(widths[c], column.width)
    for c, width in widths.items():
        ws.column_dimensions[get_column_letter(c)].width = width


def _instructions(ws: Worksheet, spec: FormSpec) -> None:
    """How to fill the form, in Thai. Sentences only, never a bare label, so it is no form."""
    lines = [
        (f"คำแนะนำการกรอก{spec.title}", True),
        (
            "กรอกข้อมูลในแผ่นงาน ‘" + spec.template.sheet + "’ แล้วส่งไฟล์ Excel (.xlsx) นี้กลับทางอีเมล",
            False,
        ),
        ("ห้ามแก้ไขหรือลบหัวข้อและชื่อคอลัมน์ เพิ่มแถวได้ ช่องที่มีเครื่องหมาย * ต้องกรอก", False),
        ("ส่งเป็นไฟล์ PDF หรือรูปถ่ายไม่ได้ เพราะระบบอ่านข้อมูลจากไฟล์ Excel เท่านั้น", False),
        ("ส่วนหัวของแบบฟอร์ม", True),
    ]
    lines += [(f"• {f.label} – {f.help}", False) for f in spec.header]
    for part in spec.parts:
        lines.append((f"{part.heading} – {part.help}", True))
        lines += [(f"    • คอลัมน์ ‘{c.label}’ – {c.help}", False) for c in part.columns]
    ws.column_dimensions["A"].width = 120
    for r, (text, bold) in enumerate(lines, start=1):
        cell = ws.cell(r, 1, text)
        cell.font, cell.alignment = _font(bold), Alignment(wrap_text=True, vertical="top")


def fill(
    ws: Worksheet,
    plan: Layout,
    header: Mapping[str, object],
    parts: Mapping[str, list[dict[str, object]]],
    convert: Callable[[object], object] = lambda value: value,
) -> None:
    """Write records into a template sheet at the layout's positions (demo data, tests)."""
    for key, value in header.items():
        if key in plan.header:
            ws.cell(*plan.header[key], convert(value))
    for key, rows in parts.items():
        columns = plan.columns.get(key, {})
        for r, row in zip(plan.rows.get(key, []), rows, strict=False):
            for column_key, value in row.items():
                if column_key in columns:
                    ws.cell(r, columns[column_key], convert(value))


def filled_form(
    spec: FormSpec,
    header: Mapping[str, object],
    parts: Mapping[str, list[dict[str, object]]],
) -> bytes:
    """The published template with these records typed in, as .xlsx bytes."""
    from io import BytesIO

    from openpyxl import load_workbook

    buffer = BytesIO()
    plan = write_template(spec, buffer, rows={k: len(v) for k, v in parts.items()})
    wb = load_workbook(BytesIO(buffer.getvalue()))
    fill(wb[plan.sheet], plan, header, parts)
    out = BytesIO()
    wb.save(out)
    return out.getvalue()
