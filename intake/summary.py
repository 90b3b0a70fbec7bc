"""The coordinator's daily summary mail: counts, who is missing, what waits for review (Thai).

Queued through the outbox once per day (dedupe key `summary:YYYY-MM-DD`, Bangkok date), so a
restart, a second worker or a late run after the machine slept never sends two. The key's date is
the service clock's (`INTAKE_NOW` in a demo), the same date the mail's subject and text state: a
key of the real date under a demo's fixed date would name one day and speak of another.
"""

from __future__ import annotations

from itertools import groupby

from intake.clock import BANGKOK
from intake.notices import queue_notice, send_queued
from intake.pipeline import Services
from intake.reminders import ADD_ADDRESS_COMMAND, addresses_csv
from intake.reports import StatusReport, build_report, days_to_deadline
from intake.thai import format_thai_date, format_thai_datetime
from storage import queries
from storage.session import session_scope

MAX_REVIEW_LINES = 20


def queue_daily_summary(svc: Services) -> bool:
    """Build and queue today's summary, then send; False when not configured or already done."""
    if not svc.settings.worker.coordinator_address:
        return False
    now = svc.clock.now()  # one instant for the key, the subject and the text
    with session_scope(svc.factory) as session:
        report = build_report(session, svc.settings.deadline, now)
        outbox = queries.outbox_counts(session)
        unverified = len(queries.unverified_expected_senders(session))
    subject, text = summary_text(report, outbox, unverified, str(addresses_csv(svc.settings)))
    day = now.astimezone(BANGKOK).date().isoformat()
    queued = queue_notice(
        svc.factory, svc.settings, kind="summary", subject=subject, text=text,
        dedupe_key=f"summary:{day}", now=now,
    )  # fmt: skip
    if queued:
        send_queued(svc.factory, svc.settings, now)
    return queued


def summary_text(
    report: StatusReport,
    outbox: dict[str, int],
    unverified: int = 0,
    addresses_file: str = "config/senders/addresses.csv",
) -> tuple[str, str]:
    s = report.summary
    days = days_to_deadline(report.deadline, report.generated_at)
    if days > 0:
        countdown = f"อีก {days} วันถึงกำหนดส่ง"
    elif days == 0:
        countdown = "วันนี้เป็นวันกำหนดส่ง"
    else:
        countdown = f"เลยกำหนดส่งมาแล้ว {-days} วัน"
    subject = f"[intake] สรุปผลการรับแบบฟอร์มข้อมูล ประจำวันที่ {format_thai_date(report.generated_at)}"
    lines = [
        "เรียน ผู้ประสานงาน",
        "",
        f"สรุปผลการรับแบบฟอร์มข้อมูลการยกระดับเมือง ณ {format_thai_datetime(report.generated_at)}",
        f"กำหนดส่ง {format_thai_date(report.deadline)} ({countdown})",
        "",
        f"- หน่วยที่ต้องส่งทั้งหมด {s['expected']} หน่วย",
        f"- รับแล้ว {s['accepted']} หน่วย (ในจำนวนนี้ส่งหลังกำหนด {s['late']} หน่วย)",
        f"- รอแก้ไข {s['needs_correction']} หน่วย",
        f"- ยังไม่ส่ง {s['missing']} หน่วย",
        f"- รายการที่รอเจ้าหน้าที่ตรวจสอบ {len(report.review)} รายการ",
        f"- อีเมลตอบกลับที่ยังไม่ได้ส่ง {outbox.get('queued', 0)} ฉบับ, "
        f"ระงับไว้รอตรวจสอบ {outbox.get('held', 0)} ฉบับ, ส่งไม่สำเร็จ {outbox.get('failed', 0)} ฉบับ",
    ]
    if unverified:  # reminders reach only verified addresses: say who they cannot reach
        lines += [
            f"- หน่วยที่ยังไม่มีอีเมลที่ยืนยันแล้ว {unverified} หน่วย (ระบบส่งอีเมลแจ้งเตือนถึงหน่วยเหล่านี้ไม่ได้)",
            f"  เพิ่มอีเมลได้ในไฟล์ {addresses_file} หรือด้วยคำสั่ง {ADD_ADDRESS_COMMAND} "
            "ดูรายชื่อพร้อมอีเมลที่เคยส่งเข้ามาได้ด้วยคำสั่ง intake roster check",
        ]
    lines += _by_region(report, "missing", f"ยังไม่ส่ง ({s['missing']} หน่วย)")
    lines += _by_region(report, "needs_correction", f"รอแก้ไข ({s['needs_correction']} หน่วย)")
    if report.review:
        lines += ["", f"รายการที่รอตรวจสอบ ({len(report.review)} รายการ)"]
        for item in report.review[:MAX_REVIEW_LINES]:
            when = format_thai_datetime(item.received_at) if item.received_at else "-"
            lines.append(
                f"  - {when} จาก {item.from_address or '-'}: {item.subject or '(ไม่มีชื่อเรื่อง)'}"
                f" — {_reason_th(item.reason)}"
            )
        if len(report.review) > MAX_REVIEW_LINES:
            lines.append(f"  และอีก {len(report.review) - MAX_REVIEW_LINES} รายการ")
    lines += [
        "",
        "ดูรายละเอียดทั้งหมดได้ด้วยคำสั่ง intake report หรือที่หน้าเว็บของระบบ",
        "",
        "ข้อความนี้ส่งโดยอัตโนมัติจากระบบรับแบบฟอร์มข้อมูลทางอีเมล (intake)",
    ]
    return subject, "\n".join(lines)


def _by_region(report: StatusReport, status: str, title: str) -> list[str]:
    chosen = [e for e in report.entities if e.status == status]
    if not chosen:
        return []
    lines = ["", title]
    for region, entities in groupby(chosen, key=lambda e: e.region_th):
        names = ", ".join(e.name_th for e in entities)
        lines.append(f"  {region or '-'}: {names}")
    return lines


def _reason_th(reason: str) -> str:
    try:
        from intake.review import reason_th
    except ImportError:  # the review module is optional here
        return reason
    return reason_th(reason)
