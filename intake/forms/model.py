"""Plain data that the form readers produce and the pipeline stores.

A form is read into `FormData`: the header fields and, per part, a list of rows. Keys are the
field/column keys of the declarative description (`config/form.toml`), so adding a column there
needs no code change; storage keeps well-known keys in typed columns and the rest in `extra`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    code: str  # stable machine code, e.g. "missing_field", "bad_axis", "not_a_form"
    message_th: str  # one plain Thai sentence: what is wrong and what is expected
    filename: str | None = None
    sheet: str | None = None
    part: str | None = None  # part key from the description ("header", "projects", ...)
    row: int | None = None  # 1-based sheet row
    column: str | None = None  # column label as printed on the form
    cell: str | None = None  # "B12"
    table: int | None = None  # Word: 1-based table of the document (`row` is then in that table)

    def where_th(self) -> str:
        """Location in Thai for a person: file, sheet, part, cell (Word: table, row, column)."""
        bits = []
        if self.filename:
            bits.append(f"ไฟล์ {self.filename}")
        if self.table is not None:
            bits.append(f"ตารางที่ {self.table}")
            if self.row is not None:
                bits.append(f"แถวที่ {self.row}")
            if self.column:
                bits.append(f"{'ช่อง' if self.part == 'header' else 'คอลัมน์'} {self.column}")
            return " ".join(bits)
        if self.sheet:
            bits.append(f"แผ่นงาน {self.sheet}")
        if self.cell:
            bits.append(f"เซลล์ {self.cell}")
        elif self.row is not None:
            bits.append(f"แถวที่ {self.row}")
        if self.column and not self.cell:
            bits.append(f"คอลัมน์ {self.column}")
        return " ".join(bits)


@dataclass
class FormData:
    header: dict[str, Any]  # e.g. {"kind": "จังหวัด", "entity_name": "เชียงใหม่", "contact_name": ..., "phone": ...}
    parts: dict[str, list[dict[str, Any]]]  # part key -> rows; free-text parts have rows {"text": ...}


@dataclass
class FormResult:
    """One form found in one attachment (a workbook may hold several, one per sheet)."""

    filename: str
    sheet: str | None
    data: FormData | None  # None when nothing could be read
    problems: list[Problem] = field(default_factory=list)
    template_version: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def valid(self) -> bool:
        return self.data is not None and not self.errors


class Where(NamedTuple):
    """Where a value sits in the file, for a person: sheet, 1-based row and cell ("C14").

    Word tables have no cell addresses: there `table` is the 1-based table of the document,
    `row` the 1-based row within it and `cell` None (None all three for a paragraph).
    A named tuple, not a frozen dataclass: one is made for every cell read (thousands per
    form), and a tuple is made three times faster.
    """

    sheet: str | None = None
    row: int | None = None
    cell: str | None = None
    table: int | None = None


@dataclass
class Locations:
    """Where each value of a `FormData` came from, kept beside it rather than inside it.

    `FormData` stays plain data for storage; validation takes these to point every problem at
    a cell. Row lists run parallel to `FormData.parts[part]`.
    """

    sheet: str | None = None  # the form's (main) sheet, for problems with no cell of their own
    header: dict[str, Where] = field(default_factory=dict)  # field key -> value cell
    parts: dict[str, Where] = field(default_factory=dict)  # part key -> heading cell
    columns: dict[str, dict[str, Where]] = field(default_factory=dict)  # part -> column key -> label cell
    rows: dict[str, list[Mapping[str, Where]]] = field(default_factory=dict)  # part -> rows -> key -> cell
