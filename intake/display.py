"""Text from a mail made safe to show: in a terminal (Rich) and in a workbook (xlsx).

Every byte of a mail is hostile, and the coordinator reads its subject, sender, file names and
form cells in `intake review`, `intake report`, `intake status` and in the workbooks the service
writes. Two things go wrong without this module:

- a terminal: Rich reads `[...]` as markup (`hello [/x] world` raises MarkupError and ends the
  command; `[link=...]` becomes a hyperlink), and raw ESC / CSI bytes move the cursor, recolour
  or retitle the terminal. `safe_text` escapes markup and shows every control character as a
  visible picture (U+2400 block, `\\x9b` style for C1 and bidirectional overrides), so what the
  mail said is shown, literally, and nothing acts on the terminal.
- a workbook: XML 1.0 forbids most C0 controls, lone surrogates and U+FFFE/U+FFFF; openpyxl
  raises IllegalCharacterError on them, which killed `intake export`, `intake report --format
  xlsx` and the page's downloads. `xlsx_text` replaces them with the same pictures (or U+FFFD),
  and keeps a cell within Excel's 32,767 characters.

Formula injection is a separate guard kept by the writers (cells typed as strings).

`fit_columns` keeps a Rich table readable at 80 columns: Rich wraps a cell only at spaces, and
when the columns do not fit it narrows them below their longest word and cuts it (`…`). Thai puts
no space between words, so a cut lands mid-word; a fitted table never cuts a word.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

# C0 controls except TAB and LF (shown as they are in multi-line cells only), DEL, C1 controls,
# and the bidirectional overrides/isolates that reorder what a terminal draws ("Trojan source").
_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n]")
# What XML 1.0 does not allow in a document (openpyxl's own check covers only the C0 part).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
XLSX_CELL_MAX = 32_767  # Excel's limit per cell; a longer text makes Excel "repair" the file


def _picture(char: str) -> str:
    """A visible stand-in for one control character: ␛ for ESC, ␡ for DEL, `\\x9b` for C1."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def visible(value: Any, *, multiline: bool = False) -> str:
    """`value` as text with every control character replaced by a visible picture.

    With `multiline`, LF and TAB are kept (a detail written by the service in several lines);
    otherwise they are shown too, so a subject cannot fake extra table rows."""
    text = "" if value is None else str(value)
    text = _TERMINAL_UNSAFE.sub(lambda m: _picture(m.group()), text)
    if not multiline:
        text = _LINE_BREAKS.sub(lambda m: _picture(m.group()), text)
    return text


def safe_text(value: Any, *, multiline: bool = False) -> str:
    """`value` ready to go inside a Rich markup string or table cell: controls shown (see
    `visible`), markup escaped, so `[/x]` and `[link=...]` are printed as written."""
    return escape(visible(value, multiline=multiline))


def xlsx_text(value: str) -> str:
    """A string a workbook cell can hold: characters XML 1.0 forbids become visible pictures
    (U+FFFD for lone surrogates and non-characters), cut to Excel's 32,767 characters."""
    text = _XML_ILLEGAL.sub(
        lambda m: _picture(m.group()) if ord(m.group()) < 0x20 else "\ufffd", value
    )
    if len(text) > XLSX_CELL_MAX:
        text = text[: XLSX_CELL_MAX - 1] + "…"
    return text


def xlsx_value(value: Any) -> Any:
    """`xlsx_text` for strings; numbers, dates and None pass unchanged."""
    return xlsx_text(value) if isinstance(value, str) else value


def fit_columns(console: Console, table: Table) -> bool:
    """Fix each column's width so that none is narrower than its longest word, nor a `no_wrap`
    column than its longest line (Rich, left to itself, cuts words when the table is too wide),
    and the table fits the console; the room left is shared in proportion to what each column
    would need to show its text unwrapped. False, widths untouched, when even the longest
    words do not fit side by side."""
    options = console.options
    _, right, _, left = table.padding
    last = len(table.columns) - 1
    pads = [
        (left if table.pad_edge or i else 0) + (right if table.pad_edge or i < last else 0)
        for i in range(last + 1)
    ]
    lows, highs = [], []
    for column, pad in zip(table.columns, pads, strict=True):
        cells = [Measurement.get(console, options, cell) for cell in [column.header, *column.cells]]
        highs.append(max(m.maximum for m in cells) + pad)
        lows.append(highs[-1] if column.no_wrap else max(m.minimum for m in cells) + pad)
        highs[-1] = max(highs[-1], lows[-1])
    borders = 0
    if table.box is not None:
        borders = last + (2 if table.show_edge else 0)
    room = options.max_width - borders - sum(lows)
    if room < 0:
        return False
    wanted = sum(highs) - sum(lows)
    for column, pad, low, high in zip(table.columns, pads, lows, highs, strict=True):
        extra = high - low if wanted <= room else (high - low) * room // wanted
        column.width = low + extra - pad
    return True
