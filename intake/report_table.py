"""The status report as a Rich table: grouped by region and cluster, Thai order, coloured.

It stays readable at 80 columns (a pipe, a default terminal). Rich wraps a cell only at spaces
and, when the columns do not fit, narrows them below their longest word and cuts it with `…`:
all 18 clusters came out as the same `กลุ่มจังหวัดภ…`. Thai puts no space between words, so a
cut or a fold lands mid-word. Here no column is ever narrower than its longest word
(`fit_columns`); when the full table cannot fit, a compact one drops the kind column (a cluster
is flush left, its provinces indented under it) and breaks a cluster's name after its first
word, กลุ่มจังหวัด, the one place where a break is known to fall between Thai words.
"""

from __future__ import annotations

from collections import Counter
from itertools import groupby

from rich import box
from rich.console import Console
from rich.table import Table

from intake.display import fit_columns, safe_text
from intake.reports import KIND_TH, STATUS_TH, EntityStatus, StatusReport, days_to_deadline
from intake.thai import format_thai_date, format_thai_datetime

STYLE = {"accepted": "green", "needs_correction": "yellow", "missing": "red"}
COLUMNS = ("ชื่อ", "ประเภท", "สถานะ", "ฉบับ", "เลขรับ", "ได้รับล่าสุด", "หมายเหตุ")
CLUSTER_WORD = KIND_TH["cluster"]  # every cluster's name starts with it: a known word boundary


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
    table = _table(report, compact=False)
    if not fit_columns(console, table):
        table = _table(report, compact=True)
        fit_columns(console, table)  # if even this does not fit, Rich narrows it as it can
    console.print(table)
    if report.review:
        console.print(
            f"[bold]รอตรวจสอบโดยเจ้าหน้าที่ {len(report.review)} รายการ[/] — ดูและดำเนินการด้วย "
            "[bold]intake review[/]"
        )


def _table(report: StatusReport, *, compact: bool) -> Table:
    """The full table, or the compact one for a narrow console (see the module docstring)."""
    if compact:
        table = Table(
            header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0),
            pad_edge=False,
        )  # fmt: skip
    else:
        table = Table(show_lines=False, header_style="bold")
    for column in COLUMNS:
        if not (compact and column == "ประเภท"):
            table.add_column(column, no_wrap=column == "ชื่อ")  # a name is never wrapped
    for region, group in groupby(report.entities, key=lambda e: e.region_th):
        entities = list(group)
        table.add_section()
        kind_blank = [] if compact else [""]
        blanks = [""] * (len(table.columns) - 2 - len(kind_blank))
        table.add_row(f"[bold]{safe_text(region)}[/]", *kind_blank, _tally(entities), *blanks)
        for e in entities:
            style = STYLE[e.status]
            status = STATUS_TH[e.status] + (" (หลังกำหนด)" if e.late else "")
            status += " (ผู้ส่งยังไม่ยืนยัน)" if e.verified is False else ""
            name = safe_text(e.name_th)  # names and receipts are shown, never interpreted
            if compact and e.kind == "cluster" and name.startswith(CLUSTER_WORD):
                name = f"{CLUSTER_WORD}\n{name.removeprefix(CLUSTER_WORD)}"
            name = f"[bold]{name}[/]" if e.kind == "cluster" else f"   {name}"
            kind = [] if compact else [KIND_TH[e.kind]]
            table.add_row(
                name,
                *kind,
                f"[{style}]{status}[/]",
                str(e.versions or ""),
                safe_text(e.receipt or ""),
                format_thai_datetime(e.last_received_at) if e.last_received_at else "",
                _remark(e, report),
            )
    return table
