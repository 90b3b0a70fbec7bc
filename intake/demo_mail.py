"""Sample province mail for the demo and the dev mailbox: what the real mailbox will see.

A realistic mix, built with the published template (`intake.forms.template.filled_form`) and the
stdlib email package: valid forms, a form needing correction, a cluster lead's two forms in one
mail, a scanned PDF instead of the Excel file, an out-of-office auto-reply, a question from an
unknown address; and, for later, the corrected form that answers the correction request.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from intake.forms import FormSpec, load_spec
from intake.forms.template import filled_form

XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
TO = "Jpp.moi9999@gmail.com"
GREETING = "เรียน ผู้ประสานงาน\n\nขอส่งข้อมูลตามหนังสือกระทรวงมหาดไทย ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n"


@dataclass(frozen=True)
class SampleMail:
    what: str  # one line for the demo's table
    sender: str
    subject: str
    received_at: datetime  # the INTERNALDATE the mailbox gives it
    raw: bytes


def default_spec() -> FormSpec:
    from intake.packaged import default_config_dir

    return load_spec(default_config_dir() / "form.toml")


def _header(name: str, kind: str = "จังหวัด", **changes: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "entity_name": name,
        "contact_name": "นางสาวสมใจ ใจดี",
        "position": "นักวิเคราะห์นโยบายและแผนชำนาญการ",
        "phone": "053112233",
        "email": "plan@example.go.th",
    } | changes


_PARTS: dict[str, list[dict[str, Any]]] = {
    "identity": [
        {"text": "เมืองแห่งวัฒนธรรมและศูนย์กลางการท่องเที่ยวเชิงสร้างสรรค์"},
        {"text": "หัตถกรรมและอาหารพื้นถิ่นที่มีชื่อเสียง"},
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
        {"seq": 1, "name": "โครงการพัฒนาย่านเมืองเก่า", "axis": 1, "term": "ระยะสั้น",
         "budget": Decimal("12500000"), "source": "งบจังหวัด", "agency": "สำนักงานจังหวัด",
         "fiscal_year": 2567},
        {"seq": 2, "name": "โครงการตลาดสร้างสรรค์ชุมชน", "axis": 3, "term": "ระยะยาว",
         "budget": Decimal("350000.50"), "source": None, "agency": "พาณิชย์จังหวัด",
         "fiscal_year": 2568},
    ],
    "partners": [
        {"name": "หอการค้าจังหวัด", "role": "ร่วมออกแบบโครงการ"},
        {"name": "มหาวิทยาลัยในพื้นที่", "role": None},
    ],
}  # fmt: skip


def _parts(**changes: Any) -> dict[str, list[dict[str, Any]]]:
    return copy.deepcopy(_PARTS) | changes


def _with_errors() -> dict[str, list[dict[str, Any]]]:
    projects = copy.deepcopy(_PARTS["projects"])
    projects[0] |= {"axis": 4, "budget": "สิบล้าน", "fiscal_year": 2590}
    projects[1] |= {"agency": None, "term": "กลาง"}
    return _parts(projects=projects)


def _mail(
    n: int,
    sender: tuple[str, str],
    subject: str,
    body: str = GREETING,
    attachments: Sequence[tuple[str, bytes, tuple[str, str]]] = (),
    headers: dict[str, str] | None = None,
    when: datetime | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = formataddr(sender)
    msg["To"] = TO
    msg["Subject"] = subject
    if when is not None:
        msg["Date"] = format_datetime(when)
    domain = sender[1].rpartition("@")[2]
    msg["Message-ID"] = f"<demo-{n}@{domain}>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, data, (maintype, subtype) in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"2024-01-{day:02d}T{hour:02d}:{minute:02d}:00+07:00")


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def sample_mail(spec: FormSpec | None = None) -> list[SampleMail]:
    """The inbox at the start of the demo, oldest first."""
    spec = spec or default_spec()

    def form(name: str, kind: str = "จังหวัด", parts: Any = None, **header: Any) -> bytes:
        return filled_form(spec, _header(name, kind, **header), parts or _parts())

    rows: list[tuple[str, tuple[str, str], str, datetime, dict[str, Any]]] = [
        ("a valid form", ("สนจ.เชียงใหม่", "saraban@chiangmai.go.th"),
         "ส่งแบบฟอร์มข้อมูลการยกระดับเมือง จังหวัดเชียงใหม่", _at(15, 9, 12),
         {"attachments": [("แบบฟอร์ม_เชียงใหม่.xlsx", form("เชียงใหม่"), XLSX)]}),
        ("a form with mistakes", ("งานยุทธศาสตร์ จ.ลำพูน", "lamphun.office@gmail.com"),
         "ข้อมูลจังหวัดลำพูน", _at(16, 14, 5),
         {"attachments": [("lamphun.xlsx", form("ลำพูน", parts=_with_errors(), phone="12345"),
                           XLSX)]}),
        ("a cluster lead: its own form and the cluster's", ("สนจ.เชียงราย", "saraban@chiangrai.go.th"),
         "แบบฟอร์ม จ.เชียงราย และกลุ่มจังหวัดภาคเหนือตอนบน 2", _at(17, 10, 30),
         {"attachments": [
             ("เชียงราย.xlsx", form("เชียงราย"), XLSX),
             ("กลุ่มจังหวัด.xlsx", form("กลุ่มจังหวัดภาคเหนือตอนบน 2", "กลุ่มจังหวัด"), XLSX)]}),
        ("a scanned PDF instead of the Excel file", ("สนจ.น่าน", "saraban@nan.go.th"),
         "แบบฟอร์มข้อมูล จังหวัดน่าน", _at(17, 16, 45),
         {"attachments": [("scan_nan.pdf", PDF, ("application", "pdf"))]}),
        ("a valid form", ("สนจ.ขอนแก่น", "saraban@khonkaen.go.th"),
         "ส่งข้อมูลการยกระดับเมือง จังหวัดขอนแก่น", _at(18, 8, 50),
         {"attachments": [("ขอนแก่น.xlsx", form("ขอนแก่น", phone="043112233"), XLSX)]}),
        ("an out-of-office auto-reply", ("ผอ.กลุ่มงาน", "director@chiangmai.go.th"),
         "ตอบกลับอัตโนมัติ: ไม่อยู่ที่สำนักงาน", _at(18, 11, 0),
         {"headers": {"Auto-Submitted": "auto-replied"},
          "body": "ขณะนี้ไม่อยู่ที่สำนักงาน จะกลับมาปฏิบัติงานวันที่ 22 มกราคม 2567\n"}),
        ("a question from an unknown address", ("ประชาชน", "curious.citizen@gmail.com"),
         "สอบถามรายละเอียดการส่งข้อมูล", _at(19, 13, 20),
         {"body": "ขอสอบถามว่าต้องส่งข้อมูลภายในวันใด และส่งทางใดได้บ้าง\n"}),
        ("a valid form", ("สนจ.สงขลา", "saraban@songkhla.go.th"),
         "แบบฟอร์มข้อมูลการยกระดับเมือง จังหวัดสงขลา", _at(19, 15, 0),
         {"attachments": [("songkhla.xlsx", form("สงขลา", phone="074112233"), XLSX)]}),
    ]  # fmt: skip
    return [
        SampleMail(what, sender[1], subject, when, _mail(n, sender, subject, when=when, **extra))
        for n, (what, sender, subject, when, extra) in enumerate(rows, start=1)
    ]


def corrected_lamphun(spec: FormSpec | None = None) -> SampleMail:
    """Lamphun answers the correction request with a fixed form (arrives while the worker idles)."""
    spec = spec or default_spec()
    when = _at(20, 9, 45)
    subject = "Re: ข้อมูลจังหวัดลำพูน (แก้ไขแล้ว)"
    sender = ("งานยุทธศาสตร์ จ.ลำพูน", "lamphun.office@gmail.com")
    data = filled_form(spec, _header("ลำพูน", phone="053511234"), _parts())
    raw = _mail(
        20, sender, subject, body="ส่งแบบฟอร์มที่แก้ไขแล้วตามที่แจ้ง\n", when=when,
        attachments=[("lamphun_แก้ไข.xlsx", data, XLSX)],
        headers={"In-Reply-To": "<demo-2@gmail.com>", "References": "<demo-2@gmail.com>"},
    )  # fmt: skip
    return SampleMail("the corrected form, as a reply", sender[1], subject, when, raw)
