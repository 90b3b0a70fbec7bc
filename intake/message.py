"""Parse one raw e-mail into plain data: decoded headers, body text and every attachment.

Pure functions over bytes: no I/O, no database, no network. The pipeline calls `parse()` on the
archived bytes (never on the socket), then `noise_reason()` to decide whether the message may be
answered at all.

Built on the stdlib `email` package (compat32 policy, which keeps raw header bytes reachable)
rather than mail-parser: mail-parser decodes through the charset names Python knows, so Thai
`windows-874` comes out garbled, and its attachment list loses the part tree we need for
forwarded mail, bounces and inline forms. Header words, parameters and bodies are decoded in
`intake.mimetext` (which registers the windows-874 codec when this module is imported); file
typing, safe names and zips are in `intake.attachments`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from intake.attachments import Refusal, ZipBudget, expand_zip, safe_filename, size_th, sniff_kind
from intake.mimetext import (
    UU_BLOCK,
    addresses,
    decode_bytes,
    header_text,
    html_to_text,
    long_bodies_set_aside,
    msg_ids,
    params_view,
    parse_date,
    part_charset,
    part_disposition,
    part_filename,
    payload_bytes,
    raw_text,
    restore_set_aside,
    uudecode,
)


@dataclass(frozen=True)
class Limits:
    """Caps that keep a hostile message from exhausting memory or disk: what a mail may carry
    (attachments, zips in it). What reading one file may cost is `intake.forms.spec.Limits`.
    A part refused here is a `Refusal` note that reaches the sender and the coordinator."""

    max_attachment_bytes: int = 25 * 1024 * 1024
    max_attachments: int = 50
    zip_max_members: int = 50
    zip_max_member_bytes: int = 25 * 1024 * 1024
    zip_max_total_bytes: int = 100 * 1024 * 1024
    zip_max_ratio: float = 100.0
    # A whole mail: Gmail delivers up to 50 MB; what is bigger is kept (archive) but not opened.
    max_message_bytes: int = 50 * 1024 * 1024
    # What the stdlib parser may see once attached files are set aside (about 8 bytes of memory
    # a byte): the text of a mail, which real mail keeps far below this.
    max_parsed_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    filename: str  # NFC, sanitised: no path parts, no NUL/control chars, <= 200 chars, never empty
    content_type: str  # as declared by the sender, lowercased ("application/octet-stream")
    kind: str  # typed by CONTENT: xlsx xlsm xls docx doc ods pdf zip image tnef encrypted text other
    data: bytes
    # attachment | inline | forwarded | zip:<archive filename>. An archive that was opened is
    # replaced by its members; one that was refused (or held nothing readable) stays, kind "zip".
    origin: str = "attachment"


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None  # without angle brackets
    subject: str
    from_address: str  # lowercased addr-spec; "" when missing or not an address (`<script>`)
    from_name: str
    reply_to: str | None
    to: list[str]
    cc: list[str]
    date: datetime | None  # the sender's Date: header; NOT used for deadlines
    in_reply_to: str | None
    references: list[str]
    body_text: str  # text/plain, or text stripped from HTML when there is no plain part
    attachments: list[Attachment]
    headers: dict[str, list[str]]  # lowercased header name -> decoded values, in order (topmost first)
    forwarded_from: str | None = None  # From of a forwarded message/rfc822 part, if any
    notes: list[str] = field(default_factory=list)  # Thai sentences: what was refused and why
    # Message-IDs of enclosed messages (message/rfc822, text/rfc822-headers): a bounce names ours.
    enclosed_message_ids: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- walking the parts

_REPORT_PARTS = {"message/delivery-status", "message/disposition-notification",
                 "message/feedback-report", "message/global-delivery-status"}
_MAX_DEPTH = 40
# Characters of a subject or display name kept (RFC 5322's line length): a 20 MB Subject is
# neither stored whole nor quoted whole in a reply; the archive keeps the raw bytes.
MAX_HEADER_TEXT = 998
_TOO_DEEP = "อีเมลมีส่วนประกอบซ้อนกันลึกเกินไป ส่วนที่ลึกกว่านี้ไม่ได้เปิดอ่าน"


@dataclass
class _RawPart:
    filename: str | None
    content_type: str
    data: bytes
    origin: str


@dataclass
class _Walk:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    parts: list[_RawPart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forwarded_from: str | None = None
    enclosed_ids: list[str] = field(default_factory=list)

    def walk(self, part: Message, *, forwarded: bool = False, in_report: bool = False,
             depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            if _TOO_DEEP not in self.notes:
                self.notes.append(_TOO_DEEP)
            return
        ctype = part.get_content_type()
        try:
            if ctype in ("message/rfc822", "message/global"):
                self._enclosed(part, forwarded=forwarded, in_report=in_report, depth=depth)
            elif ctype in _REPORT_PARTS:
                return
            elif part.is_multipart():
                inner_report = in_report or ctype == "multipart/report"
                for sub in part.get_payload():
                    if isinstance(sub, Message):
                        self.walk(sub, forwarded=forwarded, in_report=inner_report, depth=depth + 1)
            elif ctype == "text/rfc822-headers":
                returned = BytesParser(policy=compat32).parsebytes(payload_bytes(part), headersonly=True)
                self.enclosed_ids.extend(msg_ids(raw_text(returned.get("message-id", "") or "")))
            else:
                self._leaf(part, ctype, forwarded)
        except Exception as exc:  # one broken part must not cost the others
            self.notes.append(f"อ่านส่วนประกอบหนึ่งของอีเมล ({ctype}) ไม่ได้: {type(exc).__name__}")

    def _enclosed(self, part: Message, *, forwarded: bool, in_report: bool, depth: int) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(inner, Message):
            return
        self.enclosed_ids.extend(msg_ids(raw_text(str(inner.get("message-id", "") or ""))))
        if in_report:
            return  # the returned copy of our own mail, not a submission
        if forwarded:
            # Only one level is opened; a deeper forward is kept whole so nothing is lost.
            self.notes.append("อีเมลที่ส่งต่อมีอีเมลส่งต่อซ้อนอีกชั้น ชั้นที่ลึกกว่าไม่ได้เปิดอ่าน")
            whole = restore_set_aside(inner.as_bytes())
            self.parts.append(_RawPart("forwarded.eml", "message/rfc822", whole, "forwarded"))
            return
        if self.forwarded_from is None:
            senders = addresses([str(v) for k, v in inner.raw_items() if k.lower() == "from"])
            self.forwarded_from = senders[0][1] if senders else None
        self.walk(inner, forwarded=True, depth=depth + 1)

    def _leaf(self, part: Message, ctype: str, forwarded: bool) -> None:
        view = params_view(part)
        filename = part_filename(view)
        disposition = part_disposition(view)
        data = payload_bytes(part)
        if ctype in ("text/plain", "text/html") and filename is None and disposition != "attachment":
            if forwarded:
                return
            text = decode_bytes(data, part_charset(view))
            if ctype == "text/html":
                self.html.append(text)
            else:
                self.plain.append(self._lift_uuencoded(text))
            return
        if forwarded:
            origin = "forwarded"
        elif disposition == "inline" or (disposition is None and part.get("content-id")):
            origin = "inline"
        else:
            origin = "attachment"
        self.parts.append(_RawPart(filename, ctype, data, origin))

    def _lift_uuencoded(self, text: str) -> str:
        """Old clients (Outlook Express, some scanners) put uuencoded files inside the body."""
        def take(match: re.Match[str]) -> str:
            data = uudecode(match.group(2).splitlines())
            self.parts.append(_RawPart(match.group(1).strip(), "application/octet-stream", data,
                                       "attachment"))
            return ""
        return UU_BLOCK.sub(take, text)


def _attachments(walk: _Walk, limits: Limits) -> tuple[list[Attachment], list[str]]:
    out: list[Attachment] = []
    notes: list[str] = []
    budget = ZipBudget(limits.zip_max_total_bytes, limits.max_attachments)
    dropped = 0
    for raw in walk.parts:
        if len(out) >= limits.max_attachments:
            dropped += 1
            continue
        if len(raw.data) > limits.max_attachment_bytes:
            name = safe_filename(raw.filename, len(out) + 1, "other")
            notes.append(Refusal(
                f"ไฟล์ {name} มีขนาด {size_th(len(raw.data))} ใหญ่เกินกำหนด "
                f"{size_th(limits.max_attachment_bytes)} จึงไม่ได้เปิดอ่าน กรุณาลดขนาดไฟล์ "
                "(เช่น ลบรูปภาพหรือแผ่นงานที่ไม่เกี่ยวข้องออก) แล้วส่งใหม่", name, "too_large"))
            continue
        kind = sniff_kind(raw.data, raw.filename, raw.content_type)
        name = safe_filename(raw.filename, len(out) + 1, kind, raw.data)
        if kind == "zip":
            budget.remaining_slots = limits.max_attachments - len(out)
            outcome = expand_zip(raw.data, name, limits, budget)
            notes.extend(outcome.notes)
            for member, content in outcome.members:
                mkind = sniff_kind(content, member)
                out.append(Attachment(safe_filename(member, len(out) + 1, mkind, content),
                                      "application/octet-stream", mkind, content, f"zip:{name}"))
            if outcome.members:
                continue
        out.append(Attachment(name, raw.content_type, kind, raw.data, raw.origin))
    if dropped:
        notes.append(Refusal(f"อีเมลมีไฟล์แนบเกินกำหนด {limits.max_attachments} ไฟล์ "
                             f"ไฟล์ที่เกินอีก {dropped} ไฟล์จึงไม่ได้เปิดอ่าน", "", "too_large"))
    return out, notes


# --------------------------------------------------------------------------- parse


def parse(raw: bytes, limits: Limits = Limits()) -> ParsedMessage:
    """Everything the pipeline needs from one message; never raises.

    A damaged message still yields what could be read, with Thai `notes` saying what was not.
    """
    try:
        with long_bodies_set_aside(raw) as slim:
            if len(raw) > limits.max_message_bytes or len(slim) > limits.max_parsed_bytes:
                return _headers_only(slim, len(raw), limits)
            return _parse(slim, limits)
    except MemoryError:
        raise  # not "an empty mail": the pipeline records it as a failure of this message
    except Exception as exc:
        return _empty(f"อ่านอีเมลนี้ไม่ได้ ({type(exc).__name__})")


def _headers_only(raw: bytes, size: int, limits: Limits) -> ParsedMessage:
    """A mail too big to open: its headers (who, what, threading) and a refusal that tells the
    sender and the coordinator why nothing in it was read. The raw bytes stay in the archive."""
    ends = [i for sep in (b"\r\n\r\n", b"\n\n") if (i := raw.find(sep)) >= 0]
    head = raw[: min(ends)] if ends else raw[: limits.max_parsed_bytes]
    parsed = _parse(head + b"\n\nbody not read\n", limits)
    if size > limits.max_message_bytes:
        why = f"อีเมลฉบับนี้มีขนาด {size_th(size)} เกินกำหนด {size_th(limits.max_message_bytes)}"
    else:
        why = (f"เนื้อความของอีเมลฉบับนี้ (ไม่รวมไฟล์แนบ) ยาวเกินกำหนด "
               f"{size_th(limits.max_parsed_bytes)}")
    refusal = Refusal(
        f"{why} จึงไม่ได้เปิดอ่านไฟล์แนบ กรุณาส่งแบบฟอร์มฉบับละหนึ่งอีเมล "
        "หรือลดขนาดไฟล์แล้วส่งใหม่",
        "",
        "too_large",
    )
    return replace(parsed, body_text="", attachments=[], notes=[*parsed.notes, refusal])


def _empty(note: str) -> ParsedMessage:
    return ParsedMessage(None, "", "", "", None, [], [], None, None, [], "", [], {}, notes=[note])


# Declarations of a container part (multipart/*, message/*), each one level of recursion in the
# stdlib parser: 20,000 nested multiparts are a RecursionError that costs the whole message.
_CONTAINER = re.compile(rb"^content-type:[ \t]*(?:\r?\n[ \t]+)*(?:multipart|message)/", re.I | re.M)
_MAX_CONTAINERS = 2 * _MAX_DEPTH


def _bound_nesting(raw: bytes) -> tuple[bytes, bool]:
    """The bytes to parse, with every container declaration after the first `_MAX_CONTAINERS`
    turned into an opaque application/octet-stream part, and whether any was.

    The parser recurses once per container, so counting declarations bounds the depth before any
    recursion is spent, whatever the nesting; real mail has a handful. The neutralised part keeps
    its bytes (as one attachment that is not read) and the parts around it are parsed as before.
    """
    found = list(_CONTAINER.finditer(raw))
    if len(found) <= _MAX_CONTAINERS:
        return raw, False
    newline = b"\r\n" if b"\r\n" in raw[:4096] else b"\n"
    out: list[bytes] = []
    pos = 0
    for match in found[_MAX_CONTAINERS:]:
        out += [raw[pos : match.start()], b"Content-Type: application/octet-stream", newline,
                b"X-Intake-Nested-"]
        pos = match.start()
    out.append(raw[pos:])
    return b"".join(out), True


def _parse(raw: bytes, limits: Limits) -> ParsedMessage:
    raw, flattened = _bound_nesting(raw)
    msg = BytesParser(policy=compat32).parsebytes(raw)
    raw_headers = [(str(k).lower(), str(v)) for k, v in msg.raw_items()]
    if not raw_headers:
        return _empty("ไม่พบส่วนหัวของอีเมล ข้อมูลนี้อาจไม่ใช่อีเมล")

    def raw_values(name: str) -> list[str]:
        return [v for k, v in raw_headers if k == name]

    headers: dict[str, list[str]] = {}
    for name, value in raw_headers:
        headers.setdefault(name, []).append(header_text(value))

    def first(name: str) -> str | None:
        values = headers.get(name)
        return values[0] if values else None

    walk = _Walk()
    if flattened:
        walk.notes.append(_TOO_DEEP)
    walk.walk(msg)
    attachments, notes = _attachments(walk, limits)
    senders = addresses(raw_values("from")[:1])
    reply_to = addresses(raw_values("reply-to"))
    body = "\n".join(walk.plain) if any(t.strip() for t in walk.plain) else ""
    if not body and walk.html:
        body = html_to_text("\n".join(walk.html))
    return ParsedMessage(
        message_id=next(iter(msg_ids(first("message-id") or "")), None),
        subject=(first("subject") or "")[:MAX_HEADER_TEXT],
        from_address=senders[0][1] if senders else "",
        from_name=senders[0][0][:MAX_HEADER_TEXT] if senders else "",
        reply_to=reply_to[0][1] if reply_to else None,
        to=[a for _, a in addresses(raw_values("to"))],
        cc=[a for _, a in addresses(raw_values("cc"))],
        date=parse_date(first("date")),
        in_reply_to=next(iter(msg_ids(first("in-reply-to") or "")), None),
        references=msg_ids(" ".join(headers.get("references", []))),
        body_text=body.replace("\r\n", "\n").replace("\r", "\n").strip(),
        attachments=attachments,
        headers=headers,
        forwarded_from=walk.forwarded_from,
        notes=walk.notes + notes,
        enclosed_message_ids=list(dict.fromkeys(walk.enclosed_ids)),
    )


# --------------------------------------------------------------------------- noise and bounces

_DAEMON_LOCALS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}
_NOREPLY_LOCAL = re.compile(r"^(no-?reply|do-?not-?reply|donotreply)([-+._].*)?$")
_PRECEDENCE_ROBOT = {"bulk", "list", "junk", "auto_reply", "auto-reply"}
_GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
# Values of X-Auto-Response-Suppress that ask us, an auto-replier, to stay silent. "DR", "RN",
# "NRN", "NDR" and "None" concern receipts only; Outlook users may send them on real submissions.
_SUPPRESS_TOKENS = {"all", "autoreply", "oof"}


def _local_part(address: str) -> str:
    return address.rsplit("@", 1)[0].strip().lower()


def _daemon(address: str) -> bool:
    """MAILER-DAEMON / postmaster in any spelling: quoted, `_` or `.` for `-`, with a `+tag`."""
    local = _local_part(address).strip('"').split("+", 1)[0].replace("_", "-").replace(".", "-")
    return local in _DAEMON_LOCALS


def mailbox_key(address: str) -> str:
    """The mailbox an address reaches: Gmail ignores dots in the local part, a `+tag` and the
    `googlemail.com` spelling, so `J.P.P.MOI9999+intake@googlemail.com` is `jppmoi9999@gmail.com`.
    A `+tag` is dropped for other domains too (it never names another person's mailbox)."""
    local, at, domain = address.strip().strip("<>").lower().rpartition("@")
    if not at:
        return address.strip().lower()
    local = local.split("+", 1)[0]
    if domain in _GMAIL_DOMAINS:
        return f"{local.replace('.', '')}@gmail.com"
    return f"{local}@{domain}"


def _top_type(msg: ParsedMessage) -> tuple[str, str]:
    """(media type, report-type) of the top-level Content-Type."""
    value = (msg.headers.get("content-type") or [""])[0]
    view = Message()
    view["content-type"] = value
    report = view.get_param("report-type")
    return view.get_content_type() if value else "", str(report or "").lower()


def noise_reason(msg: ParsedMessage, own_addresses: frozenset[str] = frozenset()) -> str | None:
    """Why this message must never get an automatic reply (RFC 3834), or None when it may."""
    h = msg.headers
    if msg.from_address and mailbox_key(msg.from_address) in {mailbox_key(a) for a in own_addresses}:
        return "own-address"
    if _top_type(msg)[0] in ("multipart/report", "message/delivery-status"):
        return "delivery-report"
    auto = (h.get("auto-submitted") or [""])[0].split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        return "auto-submitted"
    if h.get("x-autoreply") or h.get("x-autorespond"):
        return "auto-reply-header"
    precedence = (h.get("precedence") or [""])[0].strip().lower()
    if precedence in _PRECEDENCE_ROBOT:
        return f"precedence:{precedence}"
    if "list-id" in h:
        return "list-id"
    if "list-unsubscribe" in h:
        return "list-unsubscribe"
    suppress = {t.strip().lower() for t in ",".join(h.get("x-auto-response-suppress", [])).split(",")}
    if suppress & _SUPPRESS_TOKENS:
        return "x-auto-response-suppress"
    local = _local_part(msg.from_address)
    if _daemon(msg.from_address):
        return "mailer-daemon"
    if _NOREPLY_LOCAL.match(local):
        return "noreply"
    return_paths = h.get("return-path")
    if return_paths and return_paths[0].replace(" ", "") in ("<>", ""):
        return "empty-return-path"
    return None


def is_bounce(msg: ParsedMessage) -> bool:
    """A delivery failure report (RFC 3464) or a mail-system notice about a message we sent."""
    media, report = _top_type(msg)
    if media == "multipart/report" and report in ("delivery-status", "global-delivery-status", ""):
        return True
    return media == "message/delivery-status" or _daemon(msg.from_address)


_BODY_MSGID = re.compile(r"^[ \t>]*(?:original-)?message-id:\s*<([^<>\s]+)>", re.I | re.M)


def bounced_message_ids(msg: ParsedMessage) -> list[str]:
    """Message-IDs of the mail a bounce returns, so the outbox row it belongs to can be found.

    Structured reports carry them in the returned part; older servers only quote the headers in
    the body text, so that is searched too.
    """
    if not is_bounce(msg):
        return []
    found = msg.enclosed_message_ids + _BODY_MSGID.findall(msg.body_text)
    return [i for i in dict.fromkeys(found) if i != msg.message_id]
