"""The consolidated workbook and CSV export, seeded through the real pipeline (in-process import of
.eml files with filled forms), on SQLite and PostgreSQL; read back with openpyxl and csv."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.workbook import Workbook

from intake.bootstrap import open_services
from intake.export import write_consolidated, write_csv
from intake.forms import load_spec
from intake.forms.template import BUDGET_FORMAT
from intake.pipeline import Services, import_files
from intake.settings import RepliesSettings, load_settings
from storage.session import migrate, session_scope
from tests.forms.builders import (
    filled_form_bytes,
    filled_workbook,
    form_with_errors_bytes,
    multi_form_bytes,
    sample_parts,
    workbook_bytes,
)
from tests.intake_env import CONFIG_DIR, IntakeRunner, settings_env
from tests.mime_builders import XLSX_TYPE, build_submission

NOW = datetime.fromisoformat("2024-01-25T09:00:00+07:00")
DEADLINE = datetime.fromisoformat("2024-01-22T23:59:59+07:00")
CM_V2_PROJECTS = [
    {"seq": 1, "name": "โครงการถนนคนเดินวัฒนธรรม", "axis": 2, "term": "ระยะสั้น",
     "budget": Decimal("1000000"), "source": "งบจังหวัด", "agency": "สำนักงานจังหวัด",
     "fiscal_year": 2567},
    {"seq": 2, "name": "โครงการศูนย์หัตถกรรมสร้างสรรค์", "axis": 3, "term": "ระยะยาว",
     "budget": Decimal("2500000.25"), "source": None, "agency": "พาณิชย์จังหวัด",
     "fiscal_year": 2569},
]  # fmt: skip
HOSTILE = {
    "name": '=HYPERLINK("http://evil.example","คลิก")',
    "agency": "@SUM(A1:A9)",
    "source": "-2+3",
    "partner": "+ภาคีเครือข่ายท้องถิ่น",
}
KK_PROJECTS = [
    {"seq": 1, "name": HOSTILE["name"], "axis": 2, "term": "ระยะสั้น", "budget": Decimal("100"),
     "source": HOSTILE["source"], "agency": HOSTILE["agency"], "fiscal_year": 2567},
]  # fmt: skip


def _mail(n: int, sender: str, attachments: list[tuple[str, bytes, str]]) -> bytes:
    return build_submission(
        subject=f"ส่งแบบฟอร์มข้อมูล ฉบับที่ {n}",
        from_=sender,
        to="jpp.moi9999@gmail.com",
        body="เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n",
        attachments=attachments,
        message_id=f"<export-{n}@province.example>",
    )


def _services(tmp: Path, url: str, config_dir: Path = CONFIG_DIR) -> Services:
    toml = tmp / "intake.toml"
    toml.write_text(f'config_dir = "{config_dir}"\n', encoding="utf-8")
    settings = load_settings(
        toml, database_url=url, data_dir=tmp / "var", now=NOW,
        replies=RepliesSettings(dry_run=True),
    )  # fmt: skip
    return open_services(settings)


def _text_cells(wb: Workbook) -> bytes:
    """Cells typed as text even when they start with "=" (as Excel keeps a quoted entry)."""
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"
    return workbook_bytes(wb)


def _import(svc: Services, n: int, when: str, sender: str, name: str, data: bytes) -> None:
    raw = _mail(n, sender, [(name, data, XLSX_TYPE)])
    import_files(svc, [(raw, datetime.fromisoformat(when))])


def _seed(svc: Services) -> None:
    """Chiang Mai: v1 valid, v2 valid (counts), v3 invalid. Lamphun: invalid only. Chiang Rai and
    its cluster in one workbook. Nan: late. Khon Kaen: hostile text in an otherwise valid form."""
    cm = "saraban@chiangmai.go.th"
    _import(svc, 1, "2024-01-10T09:00:00+07:00", cm, "v1.xlsx", filled_form_bytes("เชียงใหม่"))
    _import(svc, 2, "2024-01-15T14:30:00+07:00", cm, "v2.xlsx",
            filled_form_bytes("เชียงใหม่", projects=CM_V2_PROJECTS))  # fmt: skip
    _import(svc, 3, "2024-01-18T08:00:00+07:00", cm, "v3.xlsx", form_with_errors_bytes("เชียงใหม่"))
    _import(svc, 4, "2024-01-12T10:00:00+07:00", "lamphun.office@gmail.com", "l.xlsx",
            form_with_errors_bytes("ลำพูน"))  # fmt: skip
    both = multi_form_bytes([("เชียงราย", "จังหวัด"), ("ภาคเหนือตอนบน 2", "กลุ่มจังหวัด")])
    _import(svc, 5, "2024-01-16T11:00:00+07:00", "saraban@chiangrai.go.th", "f.xlsx", both)
    _import(svc, 6, "2024-01-23T08:00:00+07:00", "saraban@nan.go.th", "n.xlsx",
            filled_form_bytes("น่าน"))  # fmt: skip
    partners = [{"name": HOSTILE["partner"], "role": "ร่วมคิด"}]
    kk = filled_workbook("ขอนแก่น", projects=KK_PROJECTS, partners=partners)
    _import(svc, 7, "2024-01-17T09:00:00+07:00", "saraban@khonkaen.go.th", "kk.xlsx",
            _text_cells(kk))  # fmt: skip


@dataclass
class Seeded:
    svc: Services
    url: str
    tmp: Path

    def workbook(self) -> Any:
        buffer = io.BytesIO()
        with session_scope(self.svc.factory) as session:
            write_consolidated(session, self.svc.spec, buffer, deadline=DEADLINE, now=NOW)
        return load_workbook(io.BytesIO(buffer.getvalue()))

    def csv_rows(self, key: str) -> list[list[str]]:
        out = io.StringIO()
        with session_scope(self.svc.factory) as session:
            write_csv(session, self.svc.spec, key, out, deadline=DEADLINE, now=NOW)
        return list(csv.reader(io.StringIO(out.getvalue())))


@pytest.fixture
def seeded(tmp_path: Path, database_url: str) -> Seeded:
    svc = _services(tmp_path, database_url)
    _seed(svc)
    return Seeded(svc, database_url, tmp_path)


def _records(ws: Any) -> list[dict[str, Any]]:
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


SENDER_HEADERS = ["รหัส", "ชื่อ", "ประเภท", "ภาค", "เลขรับ"]


def test_sheets_headers_filters_and_frozen_panes(seeded: Seeded) -> None:
    wb = seeded.workbook()
    spec = seeded.svc.spec
    assert wb.sheetnames == [
        "ภาพรวม", "๑. เอกลักษณ์ที่โดดเด่น", "๒. เป้าหมาย", "๓. แนวทาง", "๔. ตัวชี้วัดความสำเร็จ",
        "๕. แผนงาน-โครงการสำคัญ", "๖. ภาคีเครือข่าย", "สรุปงบประมาณ",
    ]  # fmt: skip
    for ws in wb.worksheets:
        assert ws.freeze_panes in {"C2", "A2"}, ws.title
        assert ws.auto_filter.ref == f"A1:{ws.cell(1, ws.max_column).column_letter}{ws.max_row}"
    projects = wb["๕. แผนงาน-โครงการสำคัญ"]
    headers = [c.value for c in projects[1]]
    assert headers == SENDER_HEADERS + [c.label for c in spec.part("projects").columns]
    assert [c.value for c in wb["๑. เอกลักษณ์ที่โดดเด่น"][1]] == SENDER_HEADERS + [
        "ลำดับ", "เอกลักษณ์ที่โดดเด่น",
    ]  # fmt: skip
    budget_col = headers.index("งบประมาณ (บาท)") + 1
    assert all(
        projects.cell(r, budget_col).number_format == BUDGET_FORMAT
        for r in range(2, projects.max_row + 1)
    )


def test_overview_lists_every_expected_sender_with_thai_status_and_dates(seeded: Seeded) -> None:
    rows = {r["รหัส"]: r for r in _records(seeded.workbook()["ภาพรวม"])}
    assert len(rows) == 94
    cm = rows["TH-50"]
    assert cm["ชื่อ"] == "เชียงใหม่" and cm["ประเภท"] == "จังหวัด" and cm["ภาค"] == "ภาคเหนือ"
    assert cm["กลุ่มจังหวัด"] == "กลุ่มจังหวัดภาคเหนือตอนบน 1"
    assert cm["สถานะ"] == "รับแล้ว" and cm["จำนวนฉบับ"] == 3 and cm["ส่งหลังกำหนด"] == "ไม่"
    assert cm["ได้รับครั้งแรก"] == "10 มกราคม 2567 เวลา 09:00 น."
    assert cm["ได้รับล่าสุด"] == "18 มกราคม 2567 เวลา 08:00 น."
    assert cm["เลขรับ"] == "2567-0002"  # the receipt of the version that counts (v2)
    assert rows["TH-51"]["สถานะ"] == "รอแก้ไข" and rows["TH-51"]["เลขรับ"] is None
    assert rows["TH-55"]["ส่งหลังกำหนด"] == "ใช่"
    assert rows["TH-52"]["สถานะ"] == "ยังไม่ส่ง" and rows["TH-52"]["ได้รับครั้งแรก"] is None
    cluster = rows["north-upper-2"]
    assert cluster["ประเภท"] == "กลุ่มจังหวัด" and cluster["สถานะ"] == "รับแล้ว"
    assert cluster["กลุ่มจังหวัด"] == "กลุ่มจังหวัดภาคเหนือตอนบน 2"


def test_part_sheets_hold_accepted_senders_latest_valid_version_only(seeded: Seeded) -> None:
    wb = seeded.workbook()
    projects = _records(wb["๕. แผนงาน-โครงการสำคัญ"])
    accepted = {"TH-50", "TH-57", "north-upper-2", "TH-55", "TH-40"}
    assert {r["รหัส"] for r in projects} == accepted  # Lamphun needs correction: no rows
    cm = [r for r in projects if r["รหัส"] == "TH-50"]
    assert [r["ชื่อแผนงาน/โครงการ"] for r in cm] == [p["name"] for p in CM_V2_PROJECTS]
    assert [r["งบประมาณ (บาท)"] for r in cm] == [1000000, 2500000.25]
    assert cm[0]["เลขรับ"] == "2567-0002" and cm[0]["ปีงบประมาณ"] == 2567
    goals = _records(wb["๒. เป้าหมาย"])
    assert {r["รหัส"] for r in goals} == accepted
    assert [r["เป้าหมาย"] for r in goals if r["รหัส"] == "TH-50"] == [
        g["text"] for g in sample_parts()["goals"]
    ]
    assert [r["ลำดับ"] for r in goals if r["รหัส"] == "TH-50"] == [1, 2]
    cluster = next(r for r in _records(wb["๓. แนวทาง"]) if r["รหัส"] == "north-upper-2")
    assert cluster["ประเภท"] == "กลุ่มจังหวัด" and cluster["แกนหลัก"] == 1


def _expected_sums() -> dict[tuple[str, str], tuple[int, Decimal]]:
    sample = sample_parts()["projects"]
    every = [
        (p, region)
        for projects, region in [
            (CM_V2_PROJECTS, "ภาคเหนือ"), (sample, "ภาคเหนือ"), (sample, "ภาคเหนือ"),
            (sample, "ภาคเหนือ"), (KK_PROJECTS, "ภาคตะวันออกเฉียงเหนือ"),
        ]
        for p in projects
    ]  # fmt: skip
    sums: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for p, region in every:
        for key in (("แกนหลัก", f"แกนหลัก {p['axis']}"), ("ระยะ", p["term"]), ("ภาค", region),
                    ("รวมทั้งสิ้น", "")):  # fmt: skip
            n, total = sums.get(key, (0, Decimal(0)))
            sums[key] = (n + 1, total + p["budget"])
    return sums


def test_budget_summary_by_axis_term_and_region(seeded: Seeded) -> None:
    ws = seeded.workbook()["สรุปงบประมาณ"]
    found = {
        (r["จำแนกตาม"], r["รายการ"] or ""): (r["จำนวนโครงการ"], r["งบประมาณรวม (บาท)"])
        for r in _records(ws)
    }
    expected = _expected_sums()
    assert expected[("รวมทั้งสิ้น", "")] == (9, Decimal("42050101.75"))
    assert {k: (n, Decimal(str(v))) for k, (n, v) in found.items()} == expected
    assert all(ws.cell(r, 4).number_format == BUDGET_FORMAT for r in range(2, ws.max_row + 1))


def test_hostile_text_stays_text_in_the_workbook_and_is_neutralised_in_csv(seeded: Seeded) -> None:
    ws = seeded.workbook()["๕. แผนงาน-โครงการสำคัญ"]
    kk = next(r for r in ws.iter_rows(min_row=2) if r[0].value == "TH-40")
    by_header = {h.value: c for h, c in zip(ws[1], kk, strict=True)}
    name = by_header["ชื่อแผนงาน/โครงการ"]
    assert (name.value, name.data_type) == (HOSTILE["name"], "s")  # not a live formula
    rows = seeded.csv_rows("projects")
    assert rows[0] == SENDER_HEADERS + [c.label for c in seeded.svc.spec.part("projects").columns]
    line = dict(zip(rows[0], next(r for r in rows if r[0] == "TH-40"), strict=True))
    assert line["ชื่อแผนงาน/โครงการ"] == "'" + HOSTILE["name"]
    assert line["หน่วยงานรับผิดชอบ"] == "'" + HOSTILE["agency"]
    assert line["แหล่งงบประมาณ"] == "'" + HOSTILE["source"]
    assert line["งบประมาณ (บาท)"] == "100.00"
    partners = seeded.csv_rows("partners")
    assert ["'" + HOSTILE["partner"]] == [r[5] for r in partners if r[0] == "TH-40"]
    every_cell = [c for r in rows + partners + seeded.csv_rows("overview") for c in r]
    assert not [c for c in every_cell if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_export_command_writes_the_workbook_and_a_csv(seeded: Seeded) -> None:
    intake = IntakeRunner(settings_env(seeded.tmp, seeded.url, now=NOW.isoformat()))
    out = seeded.tmp / "out"
    intake("export", "--output", str(out / "consolidated.xlsx"))
    wb = load_workbook(out / "consolidated.xlsx", read_only=True)
    assert wb.sheetnames[0] == "ภาพรวม" and len(wb.sheetnames) == 8
    intake("export", "--format", "csv", "--part", "projects", "--output", str(out / "p.csv"))
    raw = (out / "p.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a BOM, so Excel shows the Thai text
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 1 + 9 and rows[0][0] == "รหัส"
    bad = intake("export", "--format", "csv", "--part", "nonsense", "--output", str(out / "x.csv"),
                 check=False)  # fmt: skip
    assert bad.returncode == 2 and "projects" in bad.stderr and not (out / "x.csv").exists()


def test_a_column_added_to_the_description_appears_in_the_export(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    form = config / "form.toml"
    added = (
        '\n  [[parts.columns]]\n  key = "note"\n  label = "หมายเหตุ"\n  type = "text"\n'
        '  width = 20\n\n[[parts]]\nkey = "partners"'
    )
    form.write_text(
        form.read_text(encoding="utf-8").replace('\n[[parts]]\nkey = "partners"', added, 1),
        encoding="utf-8",
    )
    spec = load_spec(form)
    assert [c.key for c in spec.part("projects").columns][-1] == "note"
    url = f"sqlite:///{tmp_path / 'x.db'}"
    migrate(url)
    svc = _services(tmp_path, url, config)
    projects = [dict(p, note=f"หมายเหตุ {i}") for i, p in enumerate(sample_parts()["projects"])]
    _import(svc, 1, "2024-01-10T09:00:00+07:00", "saraban@chiangmai.go.th", "f.xlsx",
            filled_form_bytes("เชียงใหม่", spec=spec, projects=projects))  # fmt: skip
    buffer = io.BytesIO()
    with session_scope(svc.factory) as session:
        write_consolidated(session, svc.spec, buffer, deadline=DEADLINE, now=NOW)
    rows = _records(load_workbook(buffer)["๕. แผนงาน-โครงการสำคัญ"])
    assert [r["หมายเหตุ"] for r in rows] == ["หมายเหตุ 0", "หมายเหตุ 1"]
