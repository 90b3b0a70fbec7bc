"""Attachment bytes: what a file really is, a name that is safe to store, and zip archives opened.

Split from `message.py` because none of this is MIME: it works on one file's bytes. Senders (and
their webmails) mislabel types and names all the time, so every decision here looks at content.
Pure functions; nothing is written to disk.
"""

from __future__ import annotations

import io
import re
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from intake.message import Limits

_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_TNEF_MAGIC = b"\x78\x9f\x3e\x22"
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif"}
_MAX_NAME = 200
_CHUNK = 64 * 1024
# Below this size a member cannot hurt us whatever its ratio (a nearly empty sheet compresses 500:1).
_RATIO_FLOOR = 64 * 1024


# --------------------------------------------------------------------------- kind by content


def sniff_kind(data: bytes, filename: str | None = None, content_type: str = "") -> str:
    """The kind of a file judged by its bytes; the name and declared type only break ties."""
    ext = _extension(filename)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return _sniff_zip(data, ext)
    if data[:8] == _CFB_MAGIC:
        return _sniff_cfb(data, ext)
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if _image_ext(data):
        return "image"
    if data[:4] == _TNEF_MAGIC or content_type in ("application/ms-tnef", "application/vnd.ms-tnef"):
        return "tnef"
    if _looks_like_text(data):
        return "text"
    return "other"


def _extension(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    return filename.rsplit(".", 1)[1].lower()


def _sniff_zip(data: bytes, ext: str) -> str:
    """Office Open XML and OpenDocument files are zips; only their members tell them apart."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            if "mimetype" in names:
                mimetype = _read_capped(zf, "mimetype", 200).decode("ascii", "replace")
                if "opendocument.spreadsheet" in mimetype:
                    return "ods"
            if "[Content_Types].xml" in names:
                types = _read_capped(zf, "[Content_Types].xml", 1 << 20).decode("utf-8", "replace")
                return _ooxml_kind(types.lower(), names)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError,
            NotImplementedError, ValueError, zlib.error):
        # A truncated or damaged Office file still starts with PK; let its name say what it meant
        # to be so the reader can report "damaged workbook" rather than "not a form".
        return ext if ext in ("xlsx", "xlsm", "docx", "ods") else "zip"
    return "zip"


def _ooxml_kind(types: str, names: set[str]) -> str:
    if "ms-excel.sheet.macroenabled" in types or "ms-excel.template.macroenabled" in types:
        return "xlsm"
    if "spreadsheetml" in types and "xl/workbook.xml" in names:
        return "xlsx"
    if "wordprocessingml" in types or "word/document.xml" in names or "ms-word" in types:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    return "other"  # pptx, xlsb, vsdx: Office, but nothing we read


def _read_capped(zf: zipfile.ZipFile, name: str, cap: int) -> bytes:
    with zf.open(name) as fh:
        return fh.read(cap)


def _sniff_cfb(data: bytes, ext: str) -> str:
    """OLE2 holds .xls, .doc and password-protected .xlsx alike; its directory names the content."""
    names = _cfb_entry_names(data)
    if not names:
        # Damaged directory: the entry names are still UTF-16 strings somewhere in the file.
        names = {
            n for n in ("EncryptionInfo", "EncryptedPackage", "Workbook", "Book", "WordDocument")
            if n.encode("utf-16-le") in data
        }
    if "EncryptionInfo" in names or "EncryptedPackage" in names:
        return "encrypted"
    if "Workbook" in names or "Book" in names:
        return "xls"
    if "WordDocument" in names:
        return "doc"
    return ext if ext in ("xls", "doc") else "other"


def _cfb_entry_names(data: bytes) -> set[str]:
    """Names in a compound file's directory (MS-CFB 2.2, 2.6), or an empty set when unreadable."""
    if len(data) < 512:
        return set()
    shift = struct.unpack_from("<H", data, 0x1E)[0]
    if shift not in (9, 12):
        return set()
    size = 1 << shift
    n_fat, first_dir = struct.unpack_from("<II", data, 0x2C)
    difat = struct.unpack_from("<109I", data, 0x4C)
    fat: list[int] = []
    for sector in difat[: min(n_fat, 109)]:
        block = data[(sector + 1) * size : (sector + 2) * size]
        if len(block) == size:
            fat.extend(struct.unpack(f"<{size // 4}I", block))
    names: set[str] = set()
    sector, seen = first_dir, set[int]()
    while sector < 0xFFFFFFFA and sector not in seen and len(seen) < 4096:
        seen.add(sector)
        block = data[(sector + 1) * size : (sector + 2) * size]
        for off in range(0, len(block) - 127, 128):
            length = struct.unpack_from("<H", block, off + 0x40)[0]
            if 2 <= length <= 64 and length % 2 == 0:
                names.add(block[off : off + length - 2].decode("utf-16-le", "replace"))
        sector = fat[sector] if sector < len(fat) else 0xFFFFFFFE
    return names


def _image_ext(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return ".heic"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:2] == b"BM" and len(data) > 26:
        return ".bmp"
    return ""


def _looks_like_text(data: bytes) -> bool:
    head = data[:8192]
    if not head or b"\x00" in head:
        return False
    if any(b < 0x20 and b not in (9, 10, 12, 13, 27) for b in head):
        return False
    if len(data) > len(head):
        head = head[:-3]  # the cut may split a UTF-8 sequence
    for codec in ("utf-8", "cp874"):
        try:
            head.decode(codec)
        except UnicodeDecodeError:
            continue
        return True
    return False


# --------------------------------------------------------------------------- safe names

_KIND_EXT = {
    "xlsx": ".xlsx", "xlsm": ".xlsm", "xls": ".xls", "docx": ".docx", "doc": ".doc",
    "ods": ".ods", "pdf": ".pdf", "zip": ".zip", "tnef": ".dat", "text": ".txt",
}
_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {
    f"lpt{i}" for i in range(10)
}


def safe_filename(name: str | None, index: int, kind: str, data: bytes = b"") -> str:
    """A name that can be shown, stored and joined to a directory without escaping it.

    The archive directory is chosen by the caller; this only guarantees the name is one plain
    path component (paperless #12993: `../` in a filename wrote outside the media root).
    """
    cleaned = _clean_name(name or "")
    if not cleaned:
        ext = _image_ext(data) if kind == "image" else _KIND_EXT.get(kind, ".bin")
        return f"attachment-{index}{ext}"
    return cleaned


def _clean_name(name: str) -> str:
    text = unicodedata.normalize("NFC", name)
    # Control (Cc) and format (Cf) characters: NUL truncates names in C APIs, and bidi overrides
    # can disguise "xlsx.exe" as "exe.xlsx".
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf"))
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = re.sub(r"^[A-Za-z]:", "", text)
    text = _UNSAFE_CHARS.sub("_", text)
    text = text.strip().lstrip(".").strip().rstrip(". ")
    if not text:
        return ""
    stem, dot, ext = text.rpartition(".")
    if not dot or len(ext) > 16:
        stem, ext = text, ""
    if stem.lower() in _WINDOWS_RESERVED:
        stem = "_" + stem
    suffix = "." + ext if ext else ""
    return stem[: _MAX_NAME - len(suffix)] + suffix


# --------------------------------------------------------------------------- refused parts


class Refusal(str):
    """A note on a part that was not opened (a Thai sentence, like every note) that also says
    which file and why, so the pipeline can make it a problem the sender and the coordinator
    see instead of "no attachment": `filename` as people know it ("" for several), `code` a
    problem code (too_large, encrypted, corrupt, format_zip), `archive` the zip it was in."""

    filename: str
    code: str
    archive: str | None

    def __new__(cls, text: str, filename: str, code: str, archive: str | None = None) -> Refusal:
        note = super().__new__(cls, text)
        note.filename = filename
        note.code = code
        note.archive = archive
        return note


def size_th(size: int) -> str:
    """A size as people say it: "30 MB", "2.5 MB", "800 ไบต์"."""
    if size < 1024 * 1024:
        return f"{size:,} ไบต์"
    return f"{size / (1024 * 1024):,.1f}".removesuffix(".0") + " MB"


# --------------------------------------------------------------------------- zip archives


@dataclass
class ZipBudget:
    """What all archives of one message may still unpack: bombs split over many zips add up."""

    remaining_bytes: int
    remaining_slots: int


@dataclass
class ZipOutcome:
    members: list[tuple[str, bytes]] = field(default_factory=list)  # decoded (unsanitised) names
    notes: list[str] = field(default_factory=list)


def expand_zip(data: bytes, archive: str, limits: Limits, budget: ZipBudget) -> ZipOutcome:
    """Open one level of a zip, refusing it whole when its directory already looks like a bomb.

    Checks use the declared sizes first (no byte is inflated before they pass), then reading
    stops at the caps anyway, because declared sizes are written by the sender.
    """
    out = ZipOutcome()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            refusal = _refusal(infos, archive, limits, budget)
            if refusal:
                out.notes.append(Refusal(refusal, archive, "too_large", archive))
                return out
            for info in infos:
                _take_member(zf, info, archive, limits, budget, out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError, zlib.error):
        out.notes.append(f"ไฟล์ zip {archive} เสียหายหรือเปิดไม่ได้ จึงไม่ได้แตกไฟล์")
    return out


def _refusal(infos: list[zipfile.ZipInfo], archive: str, limits: Limits, budget: ZipBudget) -> str:
    if len(infos) > limits.zip_max_members:
        return (f"ไฟล์ zip {archive} มีไฟล์ข้างใน {len(infos)} ไฟล์ เกินกำหนด "
                f"{limits.zip_max_members} ไฟล์ จึงไม่ได้แตกไฟล์")
    total = sum(i.file_size for i in infos)
    if total > min(limits.zip_max_total_bytes, budget.remaining_bytes):
        return (f"ไฟล์ zip {archive} เมื่อแตกไฟล์แล้วมีขนาดรวม {size_th(total)} เกินกำหนด "
                f"{size_th(min(limits.zip_max_total_bytes, budget.remaining_bytes))} "
                "จึงไม่ได้แตกไฟล์")
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= _RATIO_FLOOR and ratio > limits.zip_max_ratio:
            return (f"ไฟล์ zip {archive} มีอัตราการบีบอัดสูงผิดปกติ ({ratio:.0f} เท่า) "
                    "อาจเป็นไฟล์อันตราย จึงไม่ได้แตกไฟล์")
    return ""


def _take_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, limits: Limits,
                 budget: ZipBudget, out: ZipOutcome) -> None:
    name = member_name(info)
    shown = safe_filename(name, 0, "other")

    def refuse(text: str, code: str) -> None:
        out.notes.append(Refusal(text, shown, code, archive))

    if info.flag_bits & 0x1:
        refuse(f"ไฟล์ {shown} ใน zip {archive} ตั้งรหัสผ่านไว้ จึงเปิดอ่านไม่ได้ "
               "กรุณาเอารหัสผ่านออกแล้วส่งใหม่", "encrypted")
        return
    if info.file_size > limits.zip_max_member_bytes:
        refuse(f"ไฟล์ {shown} ใน zip {archive} มีขนาด {size_th(info.file_size)} เกินกำหนด "
               f"{size_th(limits.zip_max_member_bytes)} จึงไม่ได้เปิดอ่าน", "too_large")
        return
    if budget.remaining_slots <= 0:
        refuse(f"ไฟล์แนบมีจำนวนเกินกำหนด ไฟล์ {shown} ใน zip {archive} จึงไม่ได้เปิดอ่าน",
               "too_large")
        return
    cap = min(limits.zip_max_member_bytes, budget.remaining_bytes)
    try:
        content = _read_member(zf, info, cap)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zlib.error):
        refuse(f"ไฟล์ {shown} ใน zip {archive} เสียหายหรือใช้วิธีบีบอัดที่เปิดไม่ได้", "corrupt")
        return
    if content is None:
        refuse(f"ไฟล์ {shown} ใน zip {archive} มีขนาดจริงเกิน {size_th(cap)} จึงไม่ได้เปิดอ่าน",
               "too_large")
        return
    if sniff_kind(content, name) == "zip":
        refuse(f"ไฟล์ {shown} ใน zip {archive} เป็นไฟล์ zip ซ้อนอีกชั้น จึงไม่ได้แตกไฟล์ "
               "กรุณาส่งแบบฟอร์มโดยไม่ต้องบีบอัด", "format_zip")
        return
    budget.remaining_bytes -= len(content)
    budget.remaining_slots -= 1
    out.members.append((name, content))


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes | None:
    """The member's bytes, or None as soon as more than `cap` came out."""
    parts, size = [], 0
    with zf.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            size += len(chunk)
            if size > cap:
                return None
            parts.append(chunk)
    return b"".join(parts)


def member_name(info: zipfile.ZipInfo) -> str:
    """Thai Windows writes member names in CP874 without the UTF-8 flag; zipfile assumes CP437."""
    unicode_path = _unicode_path_extra(info)
    if unicode_path:
        return unicode_path
    if info.flag_bits & 0x800:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    # Valid UTF-8 by accident is very unlikely for CP874 Thai, so UTF-8 first (macOS, Linux zips).
    for codec in ("utf-8", "cp874"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return info.filename


def _unicode_path_extra(info: zipfile.ZipInfo) -> str:
    """The Info-ZIP Unicode Path extra field (0x7075), which some Windows tools add."""
    extra, pos = info.extra, 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if tag == 0x7075 and len(body) > 5 and body[0] == 1:
            try:
                return body[5:].decode("utf-8")
            except UnicodeDecodeError:
                return ""
        pos += 4 + size
    return ""
