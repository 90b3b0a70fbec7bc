"""The status report as a Rich table: grouped by region and cluster, Thai order, coloured."""

from __future__ import annotations

from collections import Counter
from itertools import groupby

from rich.console import Console
from rich.table import Table

from intake.display import safe_text
from intake.reports import KIND_TH, STATUS_TH, EntityStatus, StatusReport, days_to_deadline
from intake.thai import format_thai_date, format_thai_datetime

STYLE = {"accepted": "green", "needs_correction": "yellow", "missing": "red"}


def countdown_th(days: int) -> str:
    """`อีก 3 วันถึงกำหนดส่ง` / `วันนี้เป็นวันกำหนดส่ง` / `เลยกำหนดส่งมาแล้ว 2 วัน`."""
    if days > 0:
        return f"อีก {days} วันถึงกำหนดส่ง"
    if days == 0:
        return "วันนี้เป็นวันกำหนดส่ง"
    return f"เลยกำหนดส่งมาแล้ว {-days} วัน"


def _remark(e: EntityStatus, report: StatusReport) -> str:
    """Per sender: an extended deadline, and for those still owing a form, days left or past."""
    parts = []
    if e.deadline_override is not None:
        parts.append(f"ขยายถึง {format_thai_date(e.deadline_override)}")
    if e.status != "accepted":
        days = days_to_deadline(e.deadline_override or report.deadline, report.generated_at)
        if days < 0:
            parts.append(f"[red]เลยกำหนด {-days} วัน[/]")
        elif e.deadline_override is not None:
            parts.append(f"เหลือ {days} วัน")
    return " · ".join(parts)


def _tally(entities: list[EntityStatus]) -> str:
    counts = Counter(e.status for e in entities)
    return (
        f"[green]รับแล้ว {counts['accepted']}[/] [yellow]รอแก้ไข {counts['needs_correction']}[/] "
        f"[red]ยังไม่ส่ง {counts['missing']}[/] จาก {len(entities)}"
    )


def render_table(console: Console, report: StatusReport) -> None:
    summary = report.summary
    days = days_to_deadline(report.deadline, report.generated_at)
    console.print(
        f"[bold]สถานะการส่งข้อมูล[/] ณ {format_thai_datetime(report.generated_at)} — "
        f"กำหนดส่ง {format_thai_date(report.deadline)} ({countdown_th(days)})",
        highlight=False,
    )
    share = round(100 * summary["accepted"] / summary["expected"]) if summary["expected"] else 0
    console.print(
        f"ทั้งหมด {summary['expected']} | [green]รับแล้ว {summary['accepted']} ({share}%)[/] | "
        f"[yellow]รอแก้ไข {summary['needs_correction']}[/] | [red]ยังไม่ส่ง {summary['missing']}[/] | "
        f"ส่งหลังกำหนด {summary['late']} | รอตรวจสอบโดยเจ้าหน้าที่ {len(report.review)}",
        highlight=False,
    )
    table = Table(show_lines=False, header_style="bold")
    for column in ("ชื่อ", "ประเภท", "สถานะ", "ฉบับ", "เลขรับ", "ได้รับล่าสุด", "หมายเหตุ"):
        table.add_column(column)
    for region, group in groupby(report.entities, key=lambda e: e.region_th):
        entities = list(group)
        table.add_section()
        table.add_row(f"[bold]{safe_text(region)}[/]", "", _tally(entities), "", "", "", "")
        for e in entities:
            style = STYLE[e.status]
            status = STATUS_TH[e.status] + (" (หลังกำหนด)" if e.late else "")
            status += " (ผู้ส่งยังไม่ยืนยัน)" if e.verified is False else ""
            name = safe_text(e.name_th)  # names and receipts are shown, never interpreted
            name = f"[bold]{name}[/]" if e.kind == "cluster" else f"   {name}"
            table.add_row(
                name,
                KIND_TH[e.kind],
                f"[{style}]{status}[/]",
                str(e.versions or ""),
                safe_text(e.receipt or ""),
                format_thai_datetime(e.last_received_at) if e.last_received_at else "",
                _remark(e, report),
            )
    console.print(table)
    if report.review:
        console.print(
            f"[bold]รอตรวจสอบโดยเจ้าหน้าที่ {len(report.review)} รายการ[/] — ดูและดำเนินการด้วย "
            "[bold]intake review[/]"
        )
