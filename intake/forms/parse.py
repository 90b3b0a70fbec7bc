"""The one parser: a grid of cell values (any format) -> raw header, parts and their cells.

The form is found by its labels, never by cell addresses: people insert rows, merge cells,
rename and reorder sheets, number headings, and fill the form in Excel, LibreOffice, WPS or
Google Sheets. For a grid the parser

1. normalises every text cell into a label key (see `normalize.normalize_label`);
2. finds the header labels (value: next non-empty cell to the right, else the cell below, or
   "label: value" in one cell) and each part's heading (first match, preferring a cell that
   starts its row, because a table column such as "แนวทาง" may repeat a heading's words);
3. reads each part between its heading and the next heading or header row (the last part ends
   after `detect.max_blank_rows` blank rows): free text and list rows as text, tables through
   their column-label row (order free, variants allowed, a "รวม" total row skipped).

Values stay raw here (cleaned text, numbers as read); `validate.check` normalises them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from intake.forms.model import Locations, Where
from intake.forms.normalize import clean_text, normalize_label
from intake.forms.sources import Grid, Uncalculated
from intake.forms.spec import FormSpec, Part

_ROW_NUMBER = re.compile(r"[(\[]?[0-9๐-๙]{1,3}[.)\]]?")
_LIST_MARK = re.compile(r"^(?:[-•*·▪–—]+\s*|[(\[]?[0-9๐-๙]{1,3}[.)\]](?:\s+|$))")
Pos = tuple[int, int]


@dataclass
class SheetRead:
    """What one grid yielded, raw (not yet normalised), with where each value came from."""

    grid: Grid
    labels: int = 0
    header: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    where: Locations = field(default_factory=Locations)
    formulas: list[tuple[Where, str, str]] = field(default_factory=list)  # where, part, label


class Labels:
    """Label keys of a grid's text cells, and where the spec's labels and headings are.

    Built once per grid with an index from label key to positions (row-major), so finding
    every label costs one pass over the cells, not one per label.
    """

    def __init__(self, grid: Grid, spec: FormSpec) -> None:
        self.grid = grid
        self.keys: dict[Pos, str] = {}
        self.index: dict[str, list[Pos]] = {}
        colons: list[tuple[Pos, str]] = []
        for r, row in enumerate(grid.rows):
            for c, value in enumerate(row):
                if isinstance(value, str) and value.strip() and len(value) < 200:
                    key = normalize_label(value)
                    self.keys[(r, c)] = key
                    self.index.setdefault(key, []).append((r, c))
                    if ":" in value:
                        colons.append(((r, c), normalize_label(value.partition(":")[0])))
        self.header = {f.key: pos for f in spec.header if (pos := self._first(f.label_keys))}
        self.inline = {
            f.key: pos
            for f in spec.header
            if f.key not in self.header
            and (pos := next((p for p, k in colons if f.matches(k)), None))
        }
        self.headings = {p.key: pos for p in spec.parts if (pos := self._heading(p.label_keys))}
        self.count = len(self.header) + len(self.inline) + len(self.headings)
        every = set().union(
            *(f.label_keys for f in spec.header), *(p.label_keys for p in spec.parts)
        )
        self.label_cells = {pos for key in every & self.index.keys() for pos in self.index[key]}

    def _positions(self, keys: frozenset[str]) -> list[Pos]:
        return sorted(pos for key in keys & self.index.keys() for pos in self.index[key])

    def _first(self, keys: frozenset[str]) -> Pos | None:
        found = self._positions(keys)
        return found[0] if found else None

    def _heading(self, keys: frozenset[str]) -> Pos | None:
        """The first match that starts its row, else the first match at all."""
        found = self._positions(keys)
        starts_row = [
            p for p in found if not any(_filled(self.grid.get(p[0], c)) for c in range(p[1]))
        ]
        candidates = starts_row or found
        return candidates[0] if candidates else None


class RowCells(Mapping[str, Where]):
    """Where each value of one table row sits, as a mapping made lazily: a form has thousands
    of cells and a location is wanted only for the few with a problem."""

    __slots__ = ("grid", "row", "places")

    def __init__(self, grid: Grid, row: int, places: dict[str, int]) -> None:
        self.grid, self.row, self.places = grid, row, places

    def __getitem__(self, key: str) -> Where:
        return self.grid.where(self.row, self.places[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self.places)

    def __len__(self) -> int:
        return len(self.places)


def parse_grid(grid: Grid, spec: FormSpec, labels: Labels | None = None) -> SheetRead:
    labels = labels or Labels(grid, spec)
    sheet = SheetRead(grid, labels=labels.count)
    if labels.count == 0:
        return sheet
    _read_header(sheet, labels, spec)
    stops = sorted(
        {pos[0] for pos in labels.headings.values()} | {pos[0] for pos in labels.header.values()}
    )
    for part in spec.parts:
        if part.key in labels.headings:
            _read_part(sheet, labels, part, stops, spec)
    return sheet


def _read_header(sheet: SheetRead, labels: Labels, spec: FormSpec) -> None:
    """Header values; an empty one is located where the other values sit (column C, say)."""
    grid = sheet.grid
    found: dict[str, Pos] = {}
    for spec_field in spec.header:
        key = spec_field.key
        if key in labels.inline:
            pos = labels.inline[key]
            sheet.header[key] = clean_text(str(grid.get(*pos)).partition(":")[2])
            sheet.where.header[key] = grid.where(*pos)
        elif key in labels.header:
            r, c = labels.header[key]
            value_pos = _value_pos(grid, labels, r, c, spec.detect.value_lookahead)
            if value_pos is not None:
                found[key] = value_pos
                sheet.header[key] = _take(sheet, value_pos, "header", spec_field.label)
    columns = [c for key, (r, c) in found.items() if c > labels.header[key][1]]
    usual = max(set(columns), key=columns.count) if columns else None
    for key, (r, c) in labels.header.items():
        guess = (
            usual if usual and usual > c else c + spec.template.label_width
        )  # as in the template
        pos = found.get(key) or (r, guess)
        sheet.where.header[key] = grid.where(*pos)


def _value_pos(grid: Grid, labels: Labels, r: int, c: int, lookahead: int) -> Pos | None:
    """The next filled cell to the right of a label (not past another label), else below."""
    for cc in range(c + 1, c + 1 + lookahead):
        if (r, cc) in labels.label_cells:
            break
        if _filled(grid.get(r, cc)):
            return (r, cc)
    if _filled(grid.get(r + 1, c)) and (r + 1, c) not in labels.label_cells:
        return (r + 1, c)
    return None


def _read_part(
    sheet: SheetRead, labels: Labels, part: Part, stops: list[int], spec: FormSpec
) -> None:
    grid = sheet.grid
    head_r, head_c = labels.headings[part.key]
    sheet.where.parts[part.key] = grid.where(head_r, head_c)
    later = [s for s in stops if s > head_r]
    end = later[0] if later else len(grid.rows)
    max_blank = None if later else spec.detect.max_blank_rows
    if part.kind == "table":
        _read_table(sheet, labels, part, head_r + 1, end, max_blank, spec)
    else:
        _read_text(sheet, part, (head_r, head_c), end, max_blank)


def _read_text(sheet: SheetRead, part: Part, heading: Pos, end: int, max_blank: int | None) -> None:
    """Free text or a list: each non-blank row is one item (text right of the heading too)."""
    grid = sheet.grid
    rows: list[dict[str, Any]] = []
    where: list[Mapping[str, Where]] = []
    head_r, head_c = heading
    for r in _data_rows(grid, head_r, end, max_blank, first_col=0):
        start = head_c + 1 if r == head_r else 0
        cells = [(c, v) for c, v in enumerate(grid.rows[r][start:], start) if _filled(v)]
        texts = _strip_list_numbers([_text(v) for _, v in cells])
        text = " ".join(t for t in texts if t)
        if text:
            rows.append({"text": text})
            where.append({"text": grid.where(r, cells[0][0])})
    sheet.parts[part.key] = rows
    sheet.where.rows[part.key] = where


def _data_rows(
    grid: Grid, first: int, end: int, max_blank: int | None, first_col: int
) -> list[int]:
    """Row numbers from `first` to `end`, stopping after `max_blank` blank rows if given."""
    out, blank = [], 0
    for r in range(first, min(end, len(grid.rows))):
        if any(_filled(v) for v in grid.rows[r][first_col:]):
            out.append(r)
            blank = 0
        else:
            blank += 1
            if max_blank is not None and blank >= max_blank and out:
                break
    return out


def _strip_list_numbers(texts: list[str]) -> list[str]:
    """Drop the row number or bullet ("1", "๑.", "2)", "-", "•") people put before an item.

    A row holding nothing else (a pre-numbered empty line) gives no item at all.
    """
    if texts and _ROW_NUMBER.fullmatch(texts[0]):
        texts = texts[1:]
    if texts:
        texts[0] = _LIST_MARK.sub("", texts[0], count=1)
    return texts


def _read_table(
    sheet: SheetRead,
    labels: Labels,
    part: Part,
    first: int,
    end: int,
    max_blank: int | None,
    spec: FormSpec,
) -> None:
    grid = sheet.grid
    header_r, columns = _column_row(
        labels, part, first, min(end, first + spec.detect.column_header_lookahead)
    )
    sheet.where.columns[part.key] = {key: grid.where(header_r, c) for c, key in columns.items()}
    rows: list[dict[str, Any]] = []
    where: list[Mapping[str, Where]] = []
    start = header_r + 1 if columns else first
    col_min = min(columns, default=0)
    # per column once, not per cell: (sheet column, key, label); the data columns that make a
    # row count (a row holding only its sequence number is an empty pre-numbered line)
    keyed = [(c, key, part.column(key).label) for c, key in columns.items()]
    data_cols = [c for c, key in columns.items() if key != "seq"]
    empty: dict[str, Any] = {c.key: None for c in part.columns}
    places = {key: c for c, key in columns.items()}
    for r in _data_rows(grid, start, end, max_blank, first_col=col_min):
        cells_of_row = grid.rows[r]
        width = len(cells_of_row)
        if not any(c < width and _filled(cells_of_row[c]) for c in data_cols):
            continue
        if _is_total_row(grid, r, spec):
            continue
        row = dict(empty)
        for c, key, label in keyed:
            value = cells_of_row[c] if c < width else None
            if isinstance(value, str):
                value = clean_text(value)
            elif isinstance(value, Uncalculated):
                sheet.formulas.append((grid.where(r, c), part.key, label))
                value = None
            row[key] = value
        rows.append(row)
        where.append(RowCells(grid, r, places))
    sheet.parts[part.key] = rows
    sheet.where.rows[part.key] = where


def _column_row(labels: Labels, part: Part, first: int, last: int) -> tuple[int, dict[int, str]]:
    """The row under a heading that names the most columns: sheet column -> column key."""
    best_r, best = first, dict[int, str]()
    for r in range(first, max(last, first + 1)):
        found: dict[int, str] = {}
        for c, _ in enumerate(labels.grid.rows[r] if r < len(labels.grid.rows) else []):
            key = labels.keys.get((r, c))
            column = next((col for col in part.columns if key and col.matches(key)), None)
            if column and column.key not in found.values():
                found[c] = column.key
        if len(found) > len(best):
            best_r, best = r, found
    return best_r, best


def _is_total_row(grid: Grid, r: int, spec: FormSpec) -> bool:
    first = next((v for v in grid.rows[r] if _filled(v) and isinstance(v, str)), None)
    return first is not None and normalize_label(first) in spec.detect.total_row_labels


def _take(sheet: SheetRead, pos: Pos, part: str, label: str) -> Any:
    """The value at `pos`, cleaned; an uncalculated formula is remembered and read as empty."""
    value = sheet.grid.get(*pos)
    if isinstance(value, Uncalculated):
        sheet.formulas.append((sheet.grid.where(*pos), part, label))
        return None
    if isinstance(value, str):
        return clean_text(value)
    return value


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and clean_text(value) is None)


def _text(value: Any) -> str:
    return "" if isinstance(value, Uncalculated) else (clean_text(value) or "")
