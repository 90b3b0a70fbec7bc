"""The words we send: acknowledgement, correction request and reminder, from Jinja2 templates.

Pure: data in, subject and MIME bytes out. Templates live in `config/templates/` so the
coordinator can change the wording without touching code. Every reply carries the RFC 3834
markers (`Auto-Submitted`), threading headers and its own Message-ID fixed before it is stored,
which is what makes sending it at most once possible.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from intake.clock import BANGKOK, as_utc
from intake.forms.model import Problem
from intake.thai import format_thai_date, format_thai_datetime

PART_TITLES_TH = {
    "header": "ส่วนหัว (ข้อมูลผู้ส่ง)",
    "identity": "๑. เอกลักษณ์ที่โดดเด่น",
    "goals": "๒. เป้าหมาย",
    "approaches": "๓. แนวทาง",
    "indicators": "๔. ตัวชี้วัดความสำเร็จ",
    "projects": "๕. แผนงาน/โครงการสำคัญ",
    "partners": "๖. ภาคีเครือข่าย",
}


@dataclass(frozen=True)
class ProblemGroup:
    title: str
    problems: list[Problem]


def group_problems(problems: list[Problem]) -> list[ProblemGroup]:
    """Problems grouped by part, in the form's order, errors before warnings."""
    order = list(PART_TITLES_TH)
    buckets: dict[str, list[Problem]] = {}
    for problem in problems:
        buckets.setdefault(problem.part or "", []).append(problem)
    keys = sorted(buckets, key=lambda k: order.index(k) if k in order else -1)
    return [
        ProblemGroup(
            PART_TITLES_TH.get(k, "ไฟล์และข้อความ"),
            sorted(buckets[k], key=lambda p: (p.severity != "error", p.row or 0)),
        )
        for k in keys
    ]


def sender_title(kind: str, name_th: str) -> str:
    """How a letter names a sender: `จังหวัดเชียงใหม่`, `กลุ่มจังหวัดภาคเหนือตอนบน 1`."""
    if kind == "province" and not name_th.startswith(("จังหวัด", "กรุงเทพ")):
        return f"จังหวัด{name_th}"
    return name_th


@dataclass
class ReplyData:
    """Everything a template may show; plain values only."""

    kind: str  # acknowledgement | correction
    to_address: str
    original_subject: str
    original_message_id: str | None
    references: list[str]
    received_at: datetime
    on_time: bool
    sender_name: str | None = None
    receipt: str | None = None
    version: int | None = None
    replaces_version: int | None = None
    resend_of_version: int | None = None
    counts: dict[str, int] = field(default_factory=dict)  # Thai part title -> rows read
    total_budget: str | None = None
    problems: list[Problem] = field(default_factory=list)
    filename: str | None = None
    form_read: bool = True  # False: no readable form at all (say what to send instead)

    @property
    def received_th(self) -> str:
        return format_thai_datetime(self.received_at)

    @property
    def groups(self) -> list[ProblemGroup]:
        return group_problems(self.problems)


@dataclass
class ReminderData:
    """What a reminder may show: who, what is still owed, and how long is left."""

    to_address: str
    sender_title: str  # `จังหวัดเชียงใหม่`
    status: str  # missing | needs_correction
    deadline: datetime
    now: datetime
    overdue: bool  # an overdue notice (after the deadline) rather than a reminder before it
    mailbox: str  # where to send the form (our own address)
    problems: list[Problem] = field(default_factory=list)  # of the latest version (corrections)
    last_received_at: datetime | None = None
    kind: str = "reminder"

    @property
    def deadline_th(self) -> str:
        """`22 มกราคม 2567`, with the time only when it is not the end of the day."""
        local = as_utc(self.deadline).astimezone(BANGKOK)
        day = format_thai_date(self.deadline)
        return day if (local.hour, local.minute) == (23, 59) else f"{day} เวลา {local:%H:%M} น."

    @property
    def now_th(self) -> str:
        return format_thai_datetime(self.now)

    @property
    def last_received_th(self) -> str:
        return format_thai_datetime(self.last_received_at) if self.last_received_at else ""

    @property
    def days_left(self) -> int:
        """Whole Bangkok calendar days from today to the deadline's date (negative once past)."""
        today = as_utc(self.now).astimezone(BANGKOK).date()
        return (as_utc(self.deadline).astimezone(BANGKOK).date() - today).days

    @property
    def days_overdue(self) -> int:
        return max(-self.days_left, 0)

    @property
    def groups(self) -> list[ProblemGroup]:
        return group_problems(self.problems)


class Renderer:
    def __init__(self, templates_dir: Path) -> None:
        self.env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def subject(self, data: ReplyData) -> str:
        """The sender's own subject (our earlier tags removed), `Re: ` once, and our tag."""
        original = " ".join(_OUR_TAGS.sub(" ", data.original_subject).split())
        original = original or "(ไม่มีชื่อเรื่อง)"
        if not original.lower().startswith("re:"):
            original = f"Re: {original}"
        if data.kind == "acknowledgement" and data.receipt:
            return f"{original} [เลขรับ {data.receipt}]"
        return f"{original} [ขอให้แก้ไขข้อมูล]"

    def render(self, data: ReplyData) -> tuple[str, str, str]:
        text = self.env.get_template(f"{data.kind}.txt.j2").render(r=data)
        html = self.env.get_template(f"{data.kind}.html.j2").render(r=data)
        return self.subject(data), text, html

    def reminder_subject(self, data: ReminderData) -> str:
        what = (
            "การจัดส่งแบบฟอร์มข้อมูลฉบับแก้ไข"
            if data.status == "needs_correction"
            else "การจัดส่งข้อมูลการยกระดับเมืองฯ "
        )
        if data.overdue:
            return f"แจ้งเตือน: เลยกำหนด{what}ของ{data.sender_title} (กำหนดส่ง {data.deadline_th})"
        return f"แจ้งเตือน{what}ของ{data.sender_title} (กำหนดส่งภายในวันที่ {data.deadline_th})"

    def render_reminder(self, data: ReminderData) -> tuple[str, str, str]:
        text = self.env.get_template("reminder.txt.j2").render(r=data)
        html = self.env.get_template("reminder.html.j2").render(r=data)
        return self.reminder_subject(data), text, html


# Tags of ours that a reply to our reply carries back in its subject: never stack them.
_OUR_TAGS = re.compile(r"\[(?:เลขรับ [^\]]*|ขอให้แก้ไขข้อมูล)\]")


def new_message_id(domain: str) -> str:
    return f"<intake.{uuid.uuid4().hex}@{domain}>"


def build_mime(
    *,
    from_address: str,
    from_name: str,
    to_address: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    kind: str,
    in_reply_to: str | None,
    references: list[str],
    date: datetime,
    auto_submitted: str = "auto-replied",
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((from_name, from_address))
    msg["To"] = to_address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to.strip('<>')}>"
    refs = [f"<{r.strip('<>')}>" for r in references if r]
    if in_reply_to and f"<{in_reply_to.strip('<>')}>" not in refs:
        refs.append(f"<{in_reply_to.strip('<>')}>")
    if refs:
        msg["References"] = " ".join(refs)
    msg["Auto-Submitted"] = auto_submitted
    msg["X-Auto-Response-Suppress"] = "All"  # asks Exchange/Outlook not to answer us back
    msg["X-Intake-Kind"] = kind
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    return msg.as_bytes()
