"""Filled forms for tests: the published template, filled programmatically.

Other test modules attach these to e-mails, so the entry point is one call:

    data = filled_form_bytes("เชียงใหม่")                      # a valid province form (.xlsx bytes)
    data = filled_form_bytes("กลุ่มจังหวัดภาคเหนือตอนบน 1", kind="กลุ่มจังหวัด")
    data = filled_form_bytes(phone="", projects=[...])          # override header fields or parts
    data = filled_form_bytes(thai_digits=True)                  # numbers typed in Thai digits
    data = form_with_errors_bytes()                             # ERRORS_EXPECTED problem codes
    data = warning_form_bytes()                                 # valid, with a C.E.-year warning
    data = multi_form_bytes([("เชียงใหม่", "จังหวัด"), ("กลุ่มจังหวัดภาคเหนือตอนบน 1", "กลุ่มจังหวัด")])
    data = docx_form_bytes(projects=[...])                      # the form retyped in Word
    data = docx_pasted_bytes()                                  # the sheet pasted into Word

Values are written where `intake.forms.template.layout` says; `sample_header`/`sample_parts`
give the records a valid form holds, normalised as `read_forms` returns them.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile

import docx
from openpyxl import load_workbook
from openpyxl.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from intake.forms import FormSpec, load_spec, write_template
from intake.forms.normalize import format_baht, to_thai_digits
from intake.forms.template import Layout, layout
from intake.forms.template import fill as template_fill

SPEC_PATH = Path(__file__).resolve().parents[2] / "config" / "form.toml"
ERRORS_EXPECTED = {
    "bad_axis",
    "budget_words",
    "bad_phone",
    "bad_fiscal_year",
    "missing_field",
    "bad_choice",
}


@lru_cache(maxsize=1)
def default_spec() -> FormSpec:
    return load_spec(SPEC_PATH)


def sample_header(entity_name: str = "เชียงใหม่", kind: str = "จังหวัด") -> dict[str, Any]:
    return {
        "kind": kind,
        "entity_name": entity_name,
        "contact_name": "นางสาวสมใจ ใจดี",
        "position": "นักวิเคราะห์นโยบายและแผนชำนาญการ",
        "phone": "0812345678",
        "email": "somjai@example.go.th",
    }


def sample_parts() -> dict[str, list[dict[str, Any]]]:
    return {
        "identity": [
            {"text": "เมืองแห่งวัฒนธรรมล้านนา ศูนย์กลางการท่องเที่ยวเชิงสร้างสรรค์ของภาคเหนือ"},
            {"text": "หัตถกรรมและอาหารพื้นถิ่นที่มีชื่อเสียงระดับโลก"},
        ],
        "goals": [
            {"text": "ยกระดับเมืองสู่เมืองน่าอยู่อย่างยั่งยืน"},
            {"text": "เพิ่มรายได้ชุมชนจากการท่องเที่ยวเชิงสร้างสรรค์"},
        ],
        "approaches": [
            {"seq": 1, "approach": "พัฒนาโครงสร้างพื้นฐานเมือง", "axis": 1},
            {"seq": 2, "approach": "ส่งเสริมเศรษฐกิจสร้างสรรค์ในชุมชน", "axis": 3},
        ],
        "indicators": [
            {"seq": 1, "indicator": "รายได้จากการท่องเที่ยวเพิ่มขึ้น", "target": "15%", "unit": "ร้อยละ"},
            {"seq": 2, "indicator": "จำนวนผู้ประกอบการสร้างสรรค์", "target": "1200", "unit": "ราย"},
        ],
        "projects": [
            {
                "seq": 1,
                "name": "โครงการพัฒนาย่านเมืองเก่า",
                "axis": 1,
                "term": "ระยะสั้น",
                "budget": Decimal("12500000"),
                "source": "งบจังหวัด",
                "agency": "สำนักงานจังหวัด",
                "fiscal_year": 2567,
            },
            {
                "seq": 2,
                "name": "โครงการตลาดสร้างสรรค์ชุมชน",
                "axis": 3,
                "term": "ระยะยาว",
                "budget": Decimal("350000.50"),
                "source": None,
                "agency": "พาณิชย์จังหวัด",
                "fiscal_year": 2568,
            },
        ],  # fmt: skip
        "partners": [
            {"name": "หอการค้าจังหวัด", "role": "ร่วมออกแบบโครงการ"},
            {"name": "มหาวิทยาลัยในพื้นที่", "role": None},
        ],
    }


def filled_workbook(
    entity_name: str = "เชียงใหม่",
    kind: str = "จังหวัด",
    *,
    thai_digits: bool = False,
    spec: FormSpec | None = None,
    **overrides: Any,
) -> Workbook:
    """The template filled with a valid form; keyword overrides replace header fields or parts."""
    spec = spec or default_spec()
    header, parts = records(entity_name, kind, spec, **overrides)
    buffer = BytesIO()
    plan = write_template(spec, buffer, rows={k: len(v) for k, v in parts.items()})
    wb = load_workbook(BytesIO(buffer.getvalue()))
    fill(wb[plan.sheet], plan, header, parts, spec, thai_digits=thai_digits)
    return wb


def filled_form_bytes(
    entity_name: str = "เชียงใหม่",
    kind: str = "จังหวัด",
    *,
    thai_digits: bool = False,
    spec: FormSpec | None = None,
    **overrides: Any,
) -> bytes:
    """A filled form as .xlsx bytes, ready to attach to an e-mail."""
    wb = filled_workbook(entity_name, kind, thai_digits=thai_digits, spec=spec, **overrides)
    return workbook_bytes(wb)


def workbook_bytes(wb: Workbook) -> bytes:
    buffer = BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def records(
    entity_name: str, kind: str, spec: FormSpec, **overrides: Any
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Header and parts of the sample form with `overrides` applied (unknown keys refused)."""
    header, parts = sample_header(entity_name, kind), sample_parts()
    part_keys = {p.key for p in spec.parts}
    for key, value in overrides.items():
        if key in part_keys:
            parts[key] = copy.deepcopy(value)
        elif key in {f.key for f in spec.header}:
            header[key] = value
        else:
            raise TypeError(f"filled_form_bytes: unknown field or part {key!r}")
    return header, parts


def fill(
    ws: Worksheet,
    plan: Layout,
    header: dict[str, Any],
    parts: dict[str, list[dict[str, Any]]],
    spec: FormSpec,
    *,
    thai_digits: bool = False,
) -> None:
    """Write records into a template sheet at the layout's positions."""
    template_fill(ws, plan, header, parts, lambda value: _cell(value, thai_digits))


def _cell(value: Any, thai_digits: bool) -> Any:
    if not thai_digits or value is None or isinstance(value, str) and not value[:1].isdigit():
        return value
    if isinstance(value, Decimal):
        return format_baht(value, thai=True)
    return to_thai_digits(str(value))


def form_with_errors_bytes(entity_name: str = "เชียงใหม่", kind: str = "จังหวัด") -> bytes:
    """A form with one of each common mistake: see ERRORS_EXPECTED."""
    projects = sample_parts()["projects"]
    projects[0] |= {"axis": 4, "budget": "สิบล้าน", "fiscal_year": 2590}
    projects[1] |= {"agency": None, "term": "กลาง"}
    return filled_form_bytes(entity_name, kind, phone="12345", projects=projects)


def warning_form_bytes(entity_name: str = "เชียงใหม่", kind: str = "จังหวัด") -> bytes:
    """A valid form whose first project has a C.E. fiscal year (2024): one warning."""
    projects = sample_parts()["projects"]
    projects[0]["fiscal_year"] = 2024
    return filled_form_bytes(entity_name, kind, projects=projects)


def multi_form_bytes(senders: list[tuple[str, str]], spec: FormSpec | None = None) -> bytes:
    """One workbook, one filled form per sheet (named after the sender), e.g. cluster + province."""
    spec = spec or default_spec()
    buffer = BytesIO()
    plan = write_template(spec, buffer)
    wb = load_workbook(BytesIO(buffer.getvalue()))
    first = wb[plan.sheet]
    sheets = [first] + [wb.copy_worksheet(first) for _ in senders[1:]]
    for ws, (name, kind) in zip(sheets, senders, strict=True):
        ws.title = name[:31]
        header, parts = records(name, kind, spec)
        fill(ws, plan, header, parts, spec)
    return workbook_bytes(wb)


def expected_records(
    entity_name: str = "เชียงใหม่", kind: str = "จังหวัด", **overrides: Any
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """What `read_forms` returns for `filled_form_bytes` with the same arguments."""
    return records(entity_name, kind, default_spec(), **overrides)


def layout_for(spec: FormSpec | None = None) -> Layout:
    return layout(spec or default_spec())


# ---------------------------------------------------------------- raw workbooks for edge cases


def xlsx_from_rows(
    sheets: dict[str, list[list[Any]]], merges: dict[str, list[str]] | None = None
) -> bytes:
    """A plain workbook (no template) from rows per sheet, with optional merged ranges."""
    wb = Workbook()
    default = wb.active
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
        for ref in (merges or {}).get(name, []):
            ws.merge_cells(ref)
    if default is not None:
        wb.remove(default)
    return workbook_bytes(wb)


def handmade_rows(label: Any = None, **values: Any) -> list[list[Any]]:
    """A compact form laid out by hand (labels in A, values in B), as provinces retype it.

    `label(text) -> text` rewrites every label and heading (add zero-width spaces, numbering,
    ...); keyword values replace the defaults below.
    """
    relabel = label or (lambda text: text)
    v = {
        "kind": "จังหวัด", "entity_name": "เชียงใหม่", "contact_name": "นายสมชาย ใจดี",
        "phone": "081-234-5678", "email": "somchai@example.go.th",
        "identity": "เมืองแห่งวัฒนธรรมล้านนาและการท่องเที่ยวเชิงสร้างสรรค์",
        "goal": "ยกระดับเมืองน่าอยู่", "approach": "พัฒนาโครงสร้างพื้นฐาน", "approach_axis": 1,
        "indicator": "รายได้การท่องเที่ยว", "target": "15%",
        "project": "โครงการพัฒนาย่านเมืองเก่า", "axis": 1, "term": "ระยะสั้น",
        "budget": 12500000, "agency": "สำนักงานจังหวัด", "fiscal_year": 2567,
    } | values  # fmt: skip
    return [
        ["แบบฟอร์มข้อมูลการยกระดับเมือง"],
        [relabel("ประเภท"), v["kind"]],
        [relabel("ชื่อกลุ่มจังหวัด/จังหวัด"), v["entity_name"]],
        [relabel("ผู้ประสานงาน"), v["contact_name"]],
        [relabel("โทรศัพท์"), v["phone"]],
        [relabel("อีเมล"), v["email"]],
        [],
        [relabel("๑. เอกลักษณ์ที่โดดเด่น")],
        [v["identity"]],
        [relabel("๒. เป้าหมาย")],
        [1, v["goal"]],
        [relabel("๓. แนวทาง")],
        [relabel("ลำดับ"), relabel("แนวทาง"), relabel("แกนหลัก")],
        [1, v["approach"], v["approach_axis"]],
        [relabel("๔. ตัวชี้วัดความสำเร็จ")],
        [relabel("ลำดับ"), relabel("ตัวชี้วัด"), relabel("ค่าเป้าหมาย"), relabel("หน่วยนับ")],
        [1, v["indicator"], v["target"], "ร้อยละ"],
        [relabel("๕. แผนงาน/โครงการสำคัญ")],
        [relabel(t) for t in ("ลำดับ", "ชื่อแผนงาน/โครงการ", "แกนหลัก", "ระยะ", "งบประมาณ (บาท)",
                               "แหล่งงบประมาณ", "หน่วยงานรับผิดชอบ", "ปีงบประมาณ")],
        [1, v["project"], v["axis"], v["term"], v["budget"], None, v["agency"], v["fiscal_year"]],
    ]  # fmt: skip


def replace_member(data: bytes, name: str, content: bytes | str) -> bytes:
    """The same zip with one member's content replaced (or added)."""
    out = BytesIO()
    with ZipFile(BytesIO(data)) as zin, ZipFile(out, "w", ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename != name:
                zout.writestr(item, zin.read(item.filename))
        zout.writestr(name, content)
    return out.getvalue()


def read_member(data: bytes, name: str) -> str:
    with ZipFile(BytesIO(data)) as zf:
        return zf.read(name).decode("utf-8")


# ---------------------------------------------------------------- Word copies of the form


def _shown(value: Any) -> str:
    """A value as Excel shows it, which is what a paste into Word carries."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return str(value)


def docx_form_bytes(**overrides: Any) -> bytes:
    """The form retyped in Word: the header as a two-column table, each part's heading as a
    paragraph followed by its text (paragraphs) or its own table. Overrides as `records`."""
    header, parts = records("เชียงใหม่", "จังหวัด", default_spec(), **overrides)
    spec = default_spec()
    document = docx.Document()
    document.add_paragraph(spec.title)
    table = document.add_table(rows=0, cols=2)
    for f in spec.header:
        cells = table.add_row().cells
        cells[0].text, cells[1].text = f.label, _shown(header[f.key])
    for part in spec.parts:
        document.add_paragraph(part.heading)
        if part.kind != "table":
            for row in parts[part.key]:
                document.add_paragraph(row["text"])
            continue
        table = document.add_table(rows=1, cols=len(part.columns))
        for cell, column in zip(table.rows[0].cells, part.columns, strict=True):
            cell.text = column.label
        for row in parts[part.key]:
            for cell, column in zip(table.add_row().cells, part.columns, strict=True):
                cell.text = _shown(row.get(column.key))
    return _docx_bytes(document)


def docx_pasted_bytes(*, before: int = 0, **overrides: Any) -> bytes:
    """The filled template sheet copied from Excel and pasted into Word: one big table with the
    sheet's merged cells merged, values as Excel shows them (budgets as 12,500,000.00), after
    `before` paragraphs and small tables of the covering text. Overrides as `records`."""
    wb = filled_workbook(**overrides)
    ws = wb[default_spec().template.sheet]
    document = docx.Document()
    for i in range(before):
        document.add_paragraph(f"ที่ มท ๐๒๑๒.๓/ว ๓๐๒ ข้อความนำส่ง {i + 1}")
        document.add_table(rows=1, cols=2).rows[0].cells[0].text = "หมายเหตุ"
    n_rows, n_cols = ws.max_row, ws.max_column
    table = document.add_table(rows=n_rows, cols=n_cols)
    for row in ws.iter_rows(min_row=1, max_row=n_rows, max_col=n_cols):
        for cell in row:
            if cell.value is not None:
                table.cell(cell.row - 1, cell.column - 1).text = _shown(cell.value)
    for merged in ws.merged_cells.ranges:
        top = table.cell(merged.min_row - 1, merged.min_col - 1)
        text = top.text
        top.merge(table.cell(merged.max_row - 1, merged.max_col - 1)).text = text
    return _docx_bytes(document)


def _docx_bytes(document: Any) -> bytes:
    buffer = BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def libreoffice_convert(files: dict[str, bytes], to: str, root: Path) -> dict[str, bytes]:
    """Each .xlsx (name -> bytes) opened and saved as `to` ("xlsx", "ods") by LibreOffice.

    One headless soffice converts them all (startup is most of its time) with a profile of its
    own, so it neither touches nor waits for a user's LibreOffice.
    """
    soffice = shutil.which("soffice")
    assert soffice, "LibreOffice (soffice) is missing: .ci/run installs libreoffice-calc-nogui"
    source = root / "in"
    source.mkdir(parents=True)
    for name, data in files.items():
        (source / f"{name}.xlsx").write_bytes(data)
    done = subprocess.run(
        [soffice, f"-env:UserInstallation={(root / 'profile').as_uri()}", "--headless",
         "--norestore", "--convert-to", to, "--outdir", str(root / "out"),
         *(str(source / f"{name}.xlsx") for name in files)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {name: (root / "out" / f"{name}.{to}").read_bytes() for name in files}
