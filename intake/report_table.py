"""The status report as a Rich table: grouped by region and cluster, Thai order, coloured."""

from __future__ import annotations

from itertools import groupby

from rich.console import Console
from rich.table import Table

from intake.reports import KIND_TH, STATUS_TH, StatusReport, days_to_deadline
from intake.thai import format_thai_date, format_thai_datetime

STYLE = {"accepted": "green", "needs_correction": "yellow", "missing": "red"}


def render_table(console: Console, report: StatusReport) -> None:
    summary = report.summary
    days = days_to_deadline(report.deadline, report.generated_at)
    when = (
        f"อีก {days} วันถึงกำหนดส่ง"
        if days > 0
        else "วันนี้เป็นวันกำหนดส่ง"
        if days == 0
        else f"เลยกำหนดส่งมาแล้ว {-days} วัน"
    )
    console.print(
        f"[bold]สถานะการส่งข้อมูล[/] ณ {format_thai_datetime(report.generated_at)} — "
        f"กำหนดส่ง {format_thai_date(report.deadline)} ({when})",
        highlight=False,
    )
    console.print(
        f"ทั้งหมด {summary['expected']} | [green]รับแล้ว {summary['accepted']}[/] | "
        f"[yellow]รอแก้ไข {summary['needs_correction']}[/] | [red]ยังไม่ส่ง {summary['missing']}[/] | "
        f"ส่งหลังกำหนด {summary['late']} | รอตรวจสอบโดยเจ้าหน้าที่ {len(report.review)}",
        highlight=False,
    )
    table = Table(show_lines=False, header_style="bold")
    for column in ("ภาค / กลุ่มจังหวัด", "ชื่อ", "ประเภท", "สถานะ", "ฉบับ", "เลขรับ", "ได้รับล่าสุด"):
        table.add_column(column)
    for region, entities in groupby(report.entities, key=lambda e: e.region_th):
        table.add_section()
        table.add_row(f"[bold]{region}[/]", "", "", "", "", "", "")
        for e in entities:
            style = STYLE[e.status]
            status = STATUS_TH[e.status] + (" (หลังกำหนด)" if e.late else "")
            table.add_row(
                "" if e.kind == "province" else "กลุ่ม",
                ("  " if e.kind == "province" else "") + e.name_th,
                KIND_TH[e.kind],
                f"[{style}]{status}[/]",
                str(e.versions or ""),
                e.receipt or "",
                format_thai_datetime(e.last_received_at) if e.last_received_at else "",
            )
    console.print(table)
    if report.review:
        console.print(
            f"[bold]รอตรวจสอบ {len(report.review)} รายการ[/] (intake report --format json)"
        )
