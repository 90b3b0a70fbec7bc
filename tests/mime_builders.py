"""Realistic raw e-mails and attachment files for tests, built byte by byte.

Raw bytes rather than `EmailMessage` so a test can produce exactly what real clients send,
including what the stdlib would refuse to write: windows-874 words, encoded words inside quoted
filenames (Gmail, Outlook), raw 8-bit headers, zips with CP874 names.

Main entry points:
    build_submission(subject=..., from_=..., body=..., attachments=[(filename, bytes, type)], charset=...)
    attachment_part(filename, data, content_type, disposition=..., filename_style=...)
    build_multipart(headers, parts), build_forward(inner), build_bounce(original_message_id)
    build_xlsx(), build_xlsm(), build_docx(), build_ods(), build_cfb(names), build_zip(members)
"""

from __future__ import annotations

import base64
import io
import quopri
import re
import struct
import urllib.parse
import zipfile
from collections.abc import Callable, Iterable, Sequence

THAI_SUBJECT = "แบบฟอร์มข้อมูล จังหวัดเชียงใหม่"
THAI_BODY = "เรียน ผู้ประสานงาน\nส่งแบบฟอร์มข้อมูลโครงการ จังหวัดเชียงใหม่ ตามที่แนบมา\nขอบคุณครับ"
THAI_FILENAME = "แบบฟอร์ม เชียงใหม่.xlsx"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CRLF = "\r\n"

# Label on the wire -> Python codec that writes it (Python has no "windows-874" name).
_WRITE_CODEC = {"windows-874": "cp874", "x-windows-874": "cp874", "tis-620": "tis-620"}

Attach = tuple[str | None, bytes, str]  # (filename or None, data, declared content type)


def _codec(charset: str) -> str:
    return _WRITE_CODEC.get(charset.lower(), charset)


def encode_word(text: str, charset: str = "utf-8", encoding: str = "B") -> str:
    """One RFC 2047 encoded word for `text` (no line-length splitting)."""
    data = text.encode(_codec(charset))
    if encoding.upper() == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    q = quopri.encodestring(data, header=True).decode().replace("=\n", "")
    return f"=?{charset}?Q?{q}?="


def encode_words_split(text: str, charset: str = "utf-8", chunk: int = 6) -> str:
    """Several B words separated by folding whitespace, as Outlook writes long names."""
    words = [encode_word(text[i : i + chunk], charset) for i in range(0, len(text), chunk)]
    return (CRLF + " ").join(words)


def filename_params(filename: str | None, style: str = "rfc2231", charset: str = "utf-8") -> str:
    """The `; filename...` parameter text for Content-Disposition in the given client style.

    rfc2231            filename*=UTF-8''%E0%B9...
    rfc2231-continued  filename*0*=UTF-8''...; filename*1*=...
    rfc2047-quoted     filename="=?UTF-8?B?...?=" (Gmail, Outlook)
    mixed              filename="plain =?UTF-8?B?...?= plain" (only non-ASCII runs encoded)
    raw8bit            filename="<raw bytes in charset>" (no encoding at all)
    plain              filename="..." as given
    """
    if filename is None:
        return ""
    if style == "rfc2231":
        quoted = urllib.parse.quote(filename.encode(_codec(charset)), safe="")
        return f"; filename*={charset}''{quoted}"
    if style == "rfc2231-continued":
        quoted = urllib.parse.quote(filename.encode(_codec(charset)), safe="")
        # split on whole %XX triplets so every section stays valid
        cells = [quoted[i : i + 3] if quoted[i] == "%" else quoted[i] for i in _cells(quoted)]
        sections = ["".join(cells[i : i + 8]) for i in range(0, len(cells), 8)]
        first = f";{CRLF} filename*0*={charset}''{sections[0]}"
        rest = "".join(f";{CRLF} filename*{n}*={s}" for n, s in enumerate(sections[1:], 1))
        return first + rest
    if style == "rfc2047-quoted":
        return f'; filename="{encode_word(filename, charset)}"'
    if style == "mixed":
        return f'; filename="{_encode_non_ascii_runs(filename, charset)}"'
    if style in ("raw8bit", "plain"):
        return f'; filename="{filename}"'
    raise ValueError(style)


def _cells(quoted: str) -> list[int]:
    starts, i = [], 0
    while i < len(quoted):
        starts.append(i)
        i += 3 if quoted[i] == "%" else 1
    return starts


def _encode_non_ascii_runs(text: str, charset: str) -> str:
    # A run keeps its inner spaces: whitespace between two words is dropped by decoders.
    runs = re.split(r"([^\x00-\x7f](?:[^\x00-\x7f]| (?=[^\x00-\x7f]))*)", text)
    return "".join(encode_word(r, charset) if not r.isascii() else r for r in runs)


def attachment_part(
    filename: str | None,
    data: bytes,
    content_type: str = XLSX_TYPE,
    *,
    disposition: str | None = "attachment",
    filename_style: str = "rfc2231",
    charset: str = "utf-8",
    name_param: bool = False,
    cte: str = "base64",
) -> bytes:
    """One MIME leaf part. disposition=None omits Content-Disposition (Apple Mail, webmails);
    name_param=True also puts the name in Content-Type `name=` (then with style rfc2047-quoted)."""
    params = filename_params(filename, filename_style, charset)
    ctype = content_type
    if name_param and filename is not None:
        ctype += filename_params(filename, "rfc2047-quoted" if filename_style.startswith("rfc2231")
                                 else filename_style, charset).replace("filename", "name", 1)
    lines = [f"Content-Type: {ctype}"]
    if disposition is not None:
        lines.append(f"Content-Disposition: {disposition}{params}")
    lines.append(f"Content-Transfer-Encoding: {cte}")
    head = CRLF.join(lines).encode(_codec(charset), "surrogateescape") if filename_style == "raw8bit" \
        else CRLF.join(lines).encode("ascii")
    return head + (CRLF * 2).encode() + _transfer_encode(data, cte)


def _transfer_encode(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        encoded = base64.b64encode(data)
        return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"
    if cte == "quoted-printable":
        return quopri.encodestring(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
    if cte == "x-uuencode":
        return uuencode(data, "file.bin")
    return data + b"\r\n"


def uuencode(data: bytes, name: str) -> bytes:
    import binascii

    lines = [f"begin 644 {name}".encode()]
    lines += [binascii.b2a_uu(data[i : i + 45]).rstrip(b"\n") for i in range(0, len(data), 45)]
    lines += [b"`", b"end"]
    return b"\r\n".join(lines) + b"\r\n"


def text_part(body: str, charset: str = "utf-8", cte: str = "base64", subtype: str = "plain") -> bytes:
    head = f"Content-Type: text/{subtype}; charset={charset}{CRLF}Content-Transfer-Encoding: {cte}"
    data = body.replace("\n", "\r\n").encode(_codec(charset))
    return head.encode() + (CRLF * 2).encode() + _transfer_encode(data, cte)


def build_multipart(headers: Iterable[str | bytes], parts: Sequence[bytes],
                    subtype: str = "mixed", boundary: str = "=_b0und4ry_=",
                    extra_params: str = "") -> bytes:
    """A message (or nested part when headers is empty) holding `parts`."""
    head = [h.encode() if isinstance(h, str) else h for h in headers]
    head.append(f'Content-Type: multipart/{subtype}; boundary="{boundary}"{extra_params}'.encode())
    out = b"\r\n".join(head) + b"\r\n\r\n"
    if head[:-1]:
        out += b"This is a multi-part message in MIME format.\r\n"
    for part in parts:
        out += f"--{boundary}\r\n".encode() + part.rstrip(b"\r\n") + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def envelope_headers(
    subject: str = THAI_SUBJECT,
    from_: str = "สำนักงานจังหวัดเชียงใหม่ <saraban@chiangmai.go.th>",
    to: str = "intake.form@gmail.com",
    *,
    charset: str = "utf-8",
    header_encoding: str = "B",
    message_id: str = "<cm-0001@chiangmai.go.th>",
    date: str = "Tue, 02 Jul 2024 09:15:00 +0700",
    extra_headers: Sequence[str] = (),
) -> list[str | bytes]:
    """Top-level headers; non-ASCII subject and display name become encoded words, unless
    header_encoding="raw" which writes them as raw 8-bit bytes in `charset`."""
    name, _, addr = from_.rpartition(" <") if "<" in from_ else ("", "", from_)
    addr = addr.rstrip(">")

    def enc(text: str) -> str | bytes:
        if text.isascii():
            return text
        if header_encoding == "raw":
            return text.encode(_codec(charset))
        return encode_word(text, charset, header_encoding)

    def line(label: str, value: str | bytes) -> str | bytes:
        if isinstance(value, bytes):
            return label.encode() + b": " + value
        return f"{label}: {value}"

    encoded_name = enc(name)
    if isinstance(encoded_name, bytes):
        from_value: str | bytes = encoded_name + f" <{addr}>".encode()
    else:
        from_value = f"{encoded_name} <{addr}>" if name else addr
    return [
        line("From", from_value),
        f"To: {to}",
        line("Subject", enc(subject)),
        f"Date: {date}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        *extra_headers,
    ]


def build_submission(
    subject: str = THAI_SUBJECT,
    from_: str = "สำนักงานจังหวัดเชียงใหม่ <saraban@chiangmai.go.th>",
    to: str = "intake.form@gmail.com",
    body: str = THAI_BODY,
    attachments: Sequence[Attach | bytes] = (),
    *,
    charset: str = "utf-8",
    body_encoding: str = "base64",
    header_encoding: str = "B",
    filename_style: str = "rfc2231",
    message_id: str = "<cm-0001@chiangmai.go.th>",
    date: str = "Tue, 02 Jul 2024 09:15:00 +0700",
    extra_headers: Sequence[str] = (),
) -> bytes:
    """A province's mail: Thai subject and body plus attachments, all in one `charset`.

    Each attachment is (filename, data, content_type) or ready-made part bytes
    (`attachment_part(...)`) for unusual layouts.
    """
    headers = envelope_headers(subject, from_, to, charset=charset, header_encoding=header_encoding,
                               message_id=message_id, date=date, extra_headers=extra_headers)
    parts = [text_part(body, charset, body_encoding)]
    for item in attachments:
        if isinstance(item, bytes):
            parts.append(item)
        else:
            filename, data, ctype = item
            parts.append(attachment_part(filename, data, ctype, filename_style=filename_style,
                                         charset=charset))
    return build_multipart(headers, parts)


def build_forward(inner: bytes, from_: str = "saraban@chiangmai.go.th",
                  subject: str = "Fwd: " + THAI_SUBJECT) -> bytes:
    """A message forwarding `inner` as an attachment (message/rfc822), as Gmail and Outlook do."""
    headers = envelope_headers(subject, from_, message_id="<fwd-0002@chiangmai.go.th>")
    rfc822 = b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" + inner
    # nested forwards need distinct boundaries; derive one from the content to stay deterministic
    boundary = f"=_fwd{len(inner)}_="
    return build_multipart(headers, [text_part("ส่งต่อแบบฟอร์มตามที่แนบ"), rfc822], boundary=boundary)


def build_bounce(original_message_id: str, returned: str = "rfc822-headers",
                 to: str = "intake.form@gmail.com") -> bytes:
    """A Gmail-style delivery failure report (RFC 3464) returning one of our messages.

    returned="rfc822-headers" returns the headers only; "rfc822" the whole message.
    """
    headers = [
        "Return-Path: <>",
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        f"To: {to}",
        "Subject: Delivery Status Notification (Failure)",
        "Date: Wed, 03 Jul 2024 10:00:00 +0000",
        "Message-ID: <bounce-777@mx.google.com>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
    ]
    status = (b"Content-Type: message/delivery-status\r\n\r\n"
              b"Reporting-MTA: dns; googlemail.com\r\n\r\n"
              b"Final-Recipient: rfc822; saraban@nowhere.go.th\r\nAction: failed\r\n"
              b"Status: 5.1.1\r\n")
    original = (f"From: intake.form@gmail.com\r\nTo: saraban@nowhere.go.th\r\n"
                f"Subject: =?utf-8?B?{base64.b64encode('ได้รับแบบฟอร์มแล้ว'.encode()).decode()}?=\r\n"
                f"Message-ID: <{original_message_id}>\r\nAuto-Submitted: auto-replied\r\n").encode()
    if returned == "rfc822":
        tail = b"Content-Type: message/rfc822\r\n\r\n" + original + b"\r\nThank you.\r\n"
    else:
        tail = b"Content-Type: text/rfc822-headers\r\n\r\n" + original
    parts = [text_part("Address not found: saraban@nowhere.go.th", "utf-8", "7bit"), status, tail]
    return build_multipart(headers, parts, subtype="report", boundary="=_report_=",
                           extra_params="; report-type=delivery-status")


# --------------------------------------------------------------------------- attachment files


def build_xlsx(rows: Sequence[Sequence[object]] = (("จังหวัด", "เชียงใหม่"),)) -> bytes:
    """A real, minimal workbook written by openpyxl."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(list(row))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _rewrite_zip(data: bytes, member: str, edit: Callable[[bytes], bytes]) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info)
            dst.writestr(info.filename, edit(content) if info.filename == member else content)
    return buf.getvalue()


def build_xlsm() -> bytes:
    """An xlsx whose workbook part is declared macro-enabled, as Excel saves .xlsm."""
    return _rewrite_zip(build_xlsx(), "[Content_Types].xml", lambda b: b.replace(
        b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        b"application/vnd.ms-excel.sheet.macroEnabled.main+xml"))


def build_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("แบบฟอร์มข้อมูล")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def build_ods() -> bytes:
    """The smallest OpenDocument spreadsheet shape: a stored `mimetype` member first."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", "<office:document-content/>", zipfile.ZIP_DEFLATED)
        zf.writestr("META-INF/manifest.xml", "<manifest:manifest/>", zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def build_cfb(stream_names: Sequence[str]) -> bytes:
    """A valid OLE2 compound file (v3, 512-byte sectors) whose directory holds empty streams
    with these names: ["Workbook"] looks like .xls, ["WordDocument"] like .doc,
    ["EncryptionInfo", "EncryptedPackage"] like a password-protected xlsx. More than three
    names spill the directory into a second sector, chained through the FAT."""
    end, free, fatsect = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    entries = [_cfb_entry("Root Entry", 5, child=1 if stream_names else free)]
    for i, name in enumerate(stream_names, 1):
        entries.append(_cfb_entry(name, 2, right=i + 1 if i < len(stream_names) else free))
    while len(entries) % 4:
        entries.append(b"\x00" * 64 + struct.pack("<HBB3I", 0, 0, 0, free, free, free) + b"\x00" * 52)
    n_dir = len(entries) // 4
    fat = [fatsect] + [i + 1 for i in range(1, n_dir)] + [end]
    fat += [free] * (128 - len(fat))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\x00" * 6
              + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, end, 0, end, 0)
              + struct.pack("<109I", 0, *([free] * 108)))
    assert len(header) == 512
    return header + struct.pack("<128I", *fat) + b"".join(entries)


def _cfb_entry(name: str, kind: int, *, child: int = 0xFFFFFFFF, right: int = 0xFFFFFFFF) -> bytes:
    raw = (name + "\x00").encode("utf-16-le")
    return (raw.ljust(64, b"\x00") + struct.pack("<HBB", len(raw), kind, 1)
            + struct.pack("<III", 0xFFFFFFFF, right, child) + b"\x00" * 36
            + struct.pack("<IQ", 0xFFFFFFFE, 0))


def build_zip(members: Sequence[tuple[str, bytes]], *, name_encoding: str = "utf-8",
              encrypted: Iterable[str] = (), unicode_path_extra: bool = False) -> bytes:
    """A zip archive. name_encoding="cp874" writes names as Thai Windows does (CP874 bytes, no
    UTF-8 flag); "utf-8" sets the UTF-8 flag for non-ASCII names as zipfile does. Names in
    `encrypted` get the "encrypted" flag bit (their content is left readable, which is enough for
    a reader that must refuse them before trying)."""
    placeholders: dict[str, tuple[bytes, str]] = {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for index, (name, data) in enumerate(members):
            stored = name
            if name_encoding != "utf-8" and not name.isascii():
                raw = name.encode(name_encoding)
                stored = f"{index:04d}".ljust(len(raw), "_")
                placeholders[stored] = (raw, name)
            info = zipfile.ZipInfo(stored, date_time=(2024, 7, 1, 9, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if unicode_path_extra:
                body = b"\x01" + b"\x00\x00\x00\x00" + name.encode("utf-8")
                info.extra = struct.pack("<HH", 0x7075, len(body)) + body
            zf.writestr(info, data)
    return _patch_zip(buf.getvalue(), placeholders, set(encrypted))


def _patch_zip(data: bytes, renames: dict[str, tuple[bytes, str]], encrypted: set[str]) -> bytes:
    """Write the real name bytes over the placeholders and set encryption flags, in both the
    local header and the central directory (zipfile itself would always flag non-ASCII as UTF-8)."""
    out = bytearray(data)
    for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
        central = _central_offset(data, info.filename)
        raw, name = renames.get(info.filename, (b"", info.filename))
        if raw:
            for pos in (info.header_offset + 30, central + 46):
                out[pos : pos + len(raw)] = raw
        if name in encrypted:
            for pos in (info.header_offset + 6, central + 8):
                out[pos] |= 0x01
    return bytes(out)


def _central_offset(data: bytes, filename: str) -> int:
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_len] == filename.encode("utf-8"):
            return pos
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise KeyError(filename)
