"""Text out of MIME: charsets (Thai ones above all), RFC 2047 words, parameters, payloads, HTML.

Split from `message.py`, which walks the part tree; everything here turns one header value or one
part's bytes into text, trusting labels only as far as the bytes agree with them. Importing this
module registers the `windows-874` codec name (see `_register_thai_codecs`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.utils
import quopri
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from html.parser import HTMLParser

# --------------------------------------------------------------------------- charsets

_THAI_NAMES = {"windows-874", "x-windows-874", "windows874", "tis-620", "tis620", "iso-8859-11",
               "iso8859-11", "iso-8859-11:2001", "cp874", "ms874", "x-cp874", "ibm874"}
_SUPERSETS = {"gb2312": "gb18030", "ks_c_5601-1987": "cp949", "iso-8859-8-i": "iso-8859-8"}
_LATIN_CODECS = {"ascii", "iso8859-1", "cp1252"}  # canonical names, as codecs.lookup() gives them
# Codecs a sender may name but that are not charsets; raw-unicode-escape is how mail-parser #152
# mojibaked 8-bit bodies.
_NOT_CHARSETS = {"undefined", "unicode-escape", "raw-unicode-escape", "rot-13", "idna", "punycode"}


def _thai_codec_search(name: str) -> codecs.CodecInfo | None:
    return codecs.lookup("cp874") if name in ("windows_874", "x_windows_874") else None


def _register_thai_codecs() -> None:
    """Make `windows-874` a codec name for every decoder in the process, the stdlib's included.

    A process-wide lookup alias is acceptable: cp874 is the codec Windows means by that name, and
    the stdlib otherwise raises LookupError deep inside `email`. Registered only when missing, so a
    reload does not stack search functions. `tis-620` and `iso-8859-11` already resolve to
    stricter built-in tables (no 0x80-0x9F punctuation that Thai Windows writes), so `_codec()`
    maps those names to cp874 itself instead of overriding the built-ins for everyone.
    """
    try:
        codecs.lookup("windows-874")
    except LookupError:
        codecs.register(_thai_codec_search)


_register_thai_codecs()


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower().split("*", 1)[0]
    if name.replace("_", "-") in _THAI_NAMES:
        return "cp874"
    try:
        canonical = codecs.lookup(_SUPERSETS.get(name, name)).name
    except LookupError:
        return None
    return None if canonical in _NOT_CHARSETS else canonical


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Text from bytes under a declared charset that may be wrong, unknown or missing.

    Order: the declared charset (unless it is an ASCII/Latin-1 label on valid UTF-8, the usual
    mislabel), then UTF-8, then cp874; never Latin-1 mojibake of Thai.
    """
    codec = _codec(charset)
    if codec and (codec not in _LATIN_CODECS or not _is_utf8(data)):
        try:
            return data.decode(codec)
        except (ValueError, LookupError):  # UnicodeError; LookupError for base64, zlib, ...
            pass
    for fallback in ("utf-8", "cp874"):
        try:
            return data.decode(fallback)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8" if _mostly_utf8(data) else "cp874", "replace")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _mostly_utf8(data: bytes) -> bool:
    return data.decode("utf-8", "replace").count("\ufffd") * 4 < len(data)


# --------------------------------------------------------------------------- header text

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def raw_text(raw: str) -> str:
    """A header value as read (ASCII plus surrogate-escaped 8-bit bytes) to text, unfolded."""
    data = raw.encode("utf-8", "surrogateescape")
    text = data.decode("ascii") if data.isascii() else decode_bytes(data)
    return _FOLD.sub("", text).replace("\r", "").replace("\n", "")


def decode_words(text: str) -> str:
    """RFC 2047 words anywhere in `text`, keeping plain fragments between them.

    Adjacent words are joined before decoding, as some encoders split a UTF-8 character across
    two words; whitespace between adjacent words is dropped, as RFC 2047 section 6.2 requires.
    """
    out: list[str] = []
    pending: list[tuple[str | None, bytes]] = []
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        if gap and (gap.strip() or not pending):
            _flush(pending, out)
            out.append(gap)
        pos = match.end()
        charset, enc, payload = match.groups()
        data = _word_bytes(enc.lower(), payload)
        if pending and pending[-1][0] == charset.lower():
            pending[-1] = (charset.lower(), pending[-1][1] + data)
        else:
            pending.append((charset.lower(), data))
    _flush(pending, out)
    out.append(text[pos:])
    return "".join(out)


def _flush(pending: list[tuple[str | None, bytes]], out: list[str]) -> None:
    out.extend(decode_bytes(data, charset) for charset, data in pending)
    pending.clear()


def _word_bytes(enc: str, payload: str) -> bytes:
    if enc == "q":
        return quopri.decodestring(payload.encode("ascii", "replace"), header=True)
    return _b64(payload.encode("ascii", "replace"))


def _b64(data: bytes | memoryview) -> bytes:
    """Base64 as mailers really write it: stray characters, missing or misplaced padding.

    `a2b_base64` skips characters outside the alphabet (line breaks, stray junk) exactly as if
    they had been stripped first, errors included, so the cleaning runs only for bad padding."""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        bare = re.sub(rb"[^A-Za-z0-9+/]", b"", bytes(data))
        bare = bare[: len(bare) - 1] if len(bare) % 4 == 1 else bare
        return base64.b64decode(bare + b"=" * (-len(bare) % 4))


def header_text(raw: str) -> str:
    return " ".join(decode_words(raw_text(raw)).split())


def raw_header(part: Message, name: str) -> str | None:
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def addresses(raw_values: list[str]) -> list[tuple[str, str]]:
    """(name, lowercased address) pairs; addresses are split before names are decoded, so a
    decoded name holding a comma cannot split one address in two."""
    pairs = email.utils.getaddresses([raw_text(v) for v in raw_values])
    return [(" ".join(decode_words(n).split()), a.strip().lower()) for n, a in pairs
            if is_address(a.strip())]


# local@domain, nothing around it: `<script>`, a bare name or a value with spaces or controls in
# it is never an address (it would be learned for a sender, or replied to).
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\\\x00-\x1f\x7f]+@[^\s@<>()\[\],;:\\\x00-\x1f\x7f\"]+")


def is_address(value: str) -> bool:
    return len(value) <= 320 and _ADDRESS.fullmatch(value) is not None


_MSGID = re.compile(r"<([^<>\s]+)>")


def msg_ids(value: str) -> list[str]:
    found = _MSGID.findall(value)
    return found or [t.strip("<>") for t in value.split() if t.strip("<>")]


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- part payloads

_UU_CTE = {"x-uuencode", "uuencode", "uue", "x-uue"}
UU_BLOCK = re.compile(r"^begin [0-7]{3,4} ([^\r\n]+)\r?\n(.*?)^end[ \t\r]*$", re.M | re.S)


def _cte(part: Message) -> str:
    raw = raw_header(part, "content-transfer-encoding") or ""
    return (raw.strip().split() or [""])[0].strip(";").lower()


# --------------------------------------------------------------------------- long bodies set aside
#
# The stdlib parser keeps every line of a mail as a str object: about 8 bytes of memory for each
# byte of mail (263 MB for one 24 MB attachment). Every attached file travels as a run of base64
# lines, and such a run can hold neither a MIME boundary (which starts with "-") nor a header
# (which needs ":"), so replacing each long run by one marker line leaves the structure the parser
# sees unchanged. `payload_bytes` swaps the run back in, only for the part being read, straight
# from the original bytes. The marker holds a random token per parse: a sender cannot forge one.

_SET_ASIDE_MIN = 64 * 1024  # shorter runs cost the parser little
# possessive: a plain "+" keeps backtracking state for every line (150 MB for a 40 MB run)
_BASE64_RUN = re.compile(rb"(?:^[A-Za-z0-9+/=]{4,998}\r?\n)++", re.MULTILINE)


@dataclass(frozen=True)
class _SetAside:
    raw: bytes
    marker: re.Pattern[bytes]  # PREFIX<index> and the line end the parser may have left
    spans: list[tuple[int, int]]


_SET_ASIDE: ContextVar[_SetAside | None] = ContextVar("intake_set_aside", default=None)


@contextmanager
def long_bodies_set_aside(raw: bytes) -> Iterator[bytes]:
    """The bytes for the parser, long base64 runs replaced by markers; within the block,
    `payload_bytes` and `restore_set_aside` give the original bytes back."""
    spans = [m.span() for m in _BASE64_RUN.finditer(raw) if m.end() - m.start() >= _SET_ASIDE_MIN]
    if not spans:
        yield raw
        return
    prefix = b"XINTAKESETASIDE" + secrets.token_hex(8).upper().encode() + b"N"
    out: list[bytes] = []
    pos = 0
    for index, (start, end) in enumerate(spans):
        eol = b"\r\n" if raw[end - 2 : end] == b"\r\n" else b"\n"
        out += [raw[pos:start], prefix, str(index).encode(), eol]
        pos = end
    out.append(raw[pos:])
    state = _SetAside(raw, re.compile(re.escape(prefix) + rb"(\d+)(\r?\n)?"), spans)
    token = _SET_ASIDE.set(state)
    try:
        yield b"".join(out)
    finally:
        _SET_ASIDE.reset(token)


def restore_set_aside(data: bytes) -> bytes:
    """`data` with every marker replaced by the run it stands for (see above)."""
    state = _SET_ASIDE.get()
    if state is None or not data:
        return data

    def run(match: re.Match[bytes]) -> bytes:
        start, end = state.spans[int(match.group(1))]
        original = state.raw[start:end]
        # the parser drops the line end before a boundary: drop the run's last one likewise
        return original if match.group(2) else original.rstrip(b"\r\n")

    return state.marker.sub(run, data)


def _one_set_aside(data: bytes) -> memoryview | None:
    """The original run when `data` is exactly one marker (an attached file's whole body), as a
    view: decoding it then needs no copy of the encoded text."""
    state = _SET_ASIDE.get()
    if state is None or len(data) > 64:
        return None
    match = state.marker.fullmatch(data.strip() + b"\n") or state.marker.fullmatch(data.strip())
    if match is None:
        return None
    start, end = state.spans[int(match.group(1))]
    return memoryview(state.raw)[start:end]


def payload_bytes(part: Message) -> bytes:
    """The decoded bytes of a leaf part; unknown transfer encodings keep the raw bytes.

    Reads `_payload` because compat32's public get_payload() replaces 8-bit bytes it cannot
    decode with U+FFFD (undeclared cp874 bodies) and no public accessor returns them intact.
    """
    payload = getattr(part, "_payload", None)
    if isinstance(payload, bytes):
        data = payload
    elif isinstance(payload, str):
        data = payload.encode("utf-8", "surrogateescape")
    else:
        return b""
    cte = _cte(part)
    whole = _one_set_aside(data)
    if whole is not None and cte == "base64":
        return _b64(whole)
    data = restore_set_aside(data)
    if cte == "base64":
        return _b64(data)
    if cte == "quoted-printable":
        return quopri.decodestring(data)
    if cte in _UU_CTE:
        lines = data.decode("latin-1").splitlines()
        start = next((i + 1 for i, line in enumerate(lines) if line.startswith("begin ")), 0)
        return uudecode(lines[start:])
    return data


def uudecode(lines: list[str]) -> bytes:
    out = bytearray()
    for line in lines:
        if line.strip() == "end":
            break
        if not line:
            continue
        raw = line.encode("latin-1", "replace")
        try:
            out += binascii.a2b_uu(raw)
        except binascii.Error:
            # Some encoders pad lines oddly; the length byte says how much is real (as `uu` does).
            size = (((raw[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(raw[:size])
            except binascii.Error:
                continue
    return bytes(out)


def params_view(part: Message) -> Message:
    """A copy of the part's Content-Type/Disposition with 8-bit bytes decoded, so the stdlib's
    parameter parser (RFC 2231 continuations included) works on real text."""
    view = Message()
    for name in ("content-type", "content-disposition"):
        raw = raw_header(part, name)
        if raw is not None:
            view[name] = raw_text(raw)
    return view


def part_filename(view: Message) -> str | None:
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        values = [v for k, v in (view.get_params(header=header) or [])[1:] if k.lower() == param]
        # Outlook sends both forms; the RFC 2231 one carries the charset, so prefer it.
        values.sort(key=lambda v: not isinstance(v, tuple))
        for value in values:
            text = _param_text(value)
            if text.strip():
                return text
    return None


def _param_text(value: str | tuple[str | None, str | None, str]) -> str:
    if isinstance(value, tuple):
        charset, _lang, text = value
        try:
            return decode_bytes(text.encode("latin-1"), charset)
        except UnicodeEncodeError:
            return decode_words(text)
    return decode_words(value)


def part_charset(view: Message) -> str | None:
    value = view.get_param("charset")
    if isinstance(value, tuple):  # charset*=... (RFC 2231), seen from odd webmails
        value = value[2]
    return value or None


def part_disposition(view: Message) -> str | None:
    value = view.get("content-disposition")
    if not value:
        return None
    return str(value).split(";", 1)[0].strip().lower() or None


# --------------------------------------------------------------------------- HTML to text


class _HtmlText(HTMLParser):
    _BLOCK = {"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5",
              "h6", "blockquote", "pre", "hr", "section", "article", "header", "footer"}
    _HIDDEN = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.hidden = 0
        elif tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BLOCK:
            self.chunks.append("\n")
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient; keep whatever text it got before giving up
        pass
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).splitlines())
    return "\n".join(line for line in lines if line)
