"""The words we send: acknowledgement, correction request, reminder and notice (neither a receipt
nor a correction: not a sender of this letter, awaiting confirmation, a form in your name came
from another address), from Jinja2 templates. Every mail says which in `X-Intake-Kind`.

Pure: data in, subject and MIME bytes out. Templates live in `config/templates/` so the
coordinator can change the wording without touching code. Every reply carries the RFC 3834
markers (`Auto-Submitted`), threading headers and its own Message-ID fixed before it is stored,
which is what makes sending it at most once possible.
"""

from __future__ import annotations

import binascii
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
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

    kind: str  # acknowledgement | correction | notice
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
    notice: str | None = None  # kind "notice": unexpected | awaiting | copy | question (record.py)
    from_address: str = ""  # who sent the mail answered (a `copy` notice names it)
    provisional: bool = False  # the form came from an address not yet verified for its sender

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
        if data.kind == "notice" and data.notice == "copy":  # a new mail, not an answer
            who = data.sender_name or "หน่วยงานของท่าน"
            return f"แจ้งเพื่อทราบ: ได้รับแบบฟอร์มข้อมูลของ{who} จาก {data.from_address}"
        original = " ".join(_OUR_TAGS.sub(" ", data.original_subject).split())
        original = original or "(ไม่มีชื่อเรื่อง)"
        if not original.lower().startswith("re:"):
            original = f"Re: {original}"
        if data.kind == "notice":
            return f"{original} [แจ้งเพื่อทราบ]"
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
_OUR_TAGS = re.compile(r"\[(?:เลขรับ [^\]]*|ขอให้แก้ไขข้อมูล|แจ้งเพื่อทราบ)\]")


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
    """The reply as MIME bytes: 7-bit headers (RFC 2047 for Thai), text and HTML alternatives.

    Written out directly rather than through `EmailMessage`: the policy's folding of a Thai
    Subject or From alone cost ~2 ms each (it re-measures every candidate encoded word), the
    largest single cost of deciding a message. Thai goes into encoded words of at most 75
    characters on lines of at most 78 (stdlib `Header`); anything unusual (a long ASCII subject,
    an address that needs quoting) still goes through the stdlib policy's folding.
    """
    headers = [
        _header("From", _address_value(from_name, from_address)),
        _header("To", to_address, verbatim=_PLAIN_ADDRESS.fullmatch(to_address) is not None),
        _header("Subject", _words_value("Subject", subject)),
        _header("Date", format_datetime(date)),
        _header("Message-ID", message_id),
    ]
    if in_reply_to:
        headers.append(_header("In-Reply-To", f"<{in_reply_to.strip('<>')}>"))
    refs = [f"<{r.strip('<>')}>" for r in references if r]
    if in_reply_to and f"<{in_reply_to.strip('<>')}>" not in refs:
        refs.append(f"<{in_reply_to.strip('<>')}>")
    if refs:
        headers.append(_header("References", " ".join(refs)))
    headers.append(_header("Auto-Submitted", auto_submitted))
    # asks Exchange/Outlook not to answer us back
    headers.append(_header("X-Auto-Response-Suppress", "All"))
    headers.append(_header("X-Intake-Kind", kind))
    parts = [_text_part("plain", text), _text_part("html", html)]
    boundary = _boundary()
    while any(boundary.encode("ascii") in part for part in parts):
        boundary = _boundary()
    out = [
        "".join(headers).encode("ascii"),
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii"),
    ]
    for part in parts:
        out += [f"--{boundary}\r\n".encode("ascii"), part, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


# A value that may be written as given: printable ASCII, folded lines of at most 78 characters.
_VERBATIM = re.compile(r"[\x21-\x7e][\x20-\x7e]*(?:\n [\x20-\x7e]+)*")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_MAX_LINE = 78
# Lines of encoded words: 76, so that no word passes RFC 2047's 75 characters (the stdlib's own
# folding writes 76-character words)
_WORDS_LINE = 76
_BASE64_CHUNK = _MAX_LINE // 4 * 3  # 57 bytes -> 76 characters a line, as the stdlib writes


def _header(name: str, value: str, *, verbatim: bool = True) -> str:
    """`Name: value` lines with CRLF: as given when the value is already safe folded 7-bit text,
    else folded by the stdlib SMTP policy (which also refuses a stray line break, as before)."""
    lines = value.split("\n")
    if (
        verbatim
        and _VERBATIM.fullmatch(value)
        and len(name) + 2 + len(lines[0]) <= _MAX_LINE
        and all(len(line) <= _MAX_LINE for line in lines[1:])
    ):
        return f"{name}: " + "\r\n".join(lines) + "\r\n"
    if _VERBATIM.fullmatch(value):
        value = value.replace("\n ", " ")
    return SMTP.fold(*SMTP.header_store_parse(name, value))


def _words_value(name: str, text: str) -> str:
    """Unstructured text as RFC 2047 encoded words when it is not ASCII, folded to fit a line."""
    if text.isascii():
        return text
    return Header(text, "utf-8", header_name=name, maxlinelen=_WORDS_LINE).encode()


def _address_value(name: str, address: str) -> str:
    """`Name <address>`: a Thai name as encoded words; a plain name quoted as needed."""
    if name.isascii() or not _PLAIN_ADDRESS.fullmatch(address):
        return formataddr((name, address))
    header = Header(header_name="From", maxlinelen=_WORDS_LINE)
    header.append(name, "utf-8")
    header.append(f"<{address}>", "us-ascii")
    return header.encode()


def _boundary() -> str:
    return f"=_intake_{uuid.uuid4().hex}"


def _text_part(subtype: str, body: str) -> bytes:
    """One UTF-8 text part, encoded as `set_content` would: as is (7bit/8bit) when every line
    fits in 78 bytes, else base64 (Thai is 3 bytes a character; quoted-printable would be longer)."""
    lines = body.encode("utf-8").splitlines()
    data = b"\r\n".join(lines) + b"\r\n"
    if max((len(line) for line in lines), default=0) <= _MAX_LINE:
        cte = "7bit" if data.isascii() else "8bit"
    else:
        cte = "base64"
        data = b"".join(
            binascii.b2a_base64(data[i : i + _BASE64_CHUNK]).replace(b"\n", b"\r\n")
            for i in range(0, len(data), _BASE64_CHUNK)
        )
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    )
    return head.encode("ascii") + data
