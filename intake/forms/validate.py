"""The form's rules, in Thai, pointed at cells.

`check` normalises every value through `normalize.py` (budget -> Decimal, axis -> int, phone
-> digits, ...) and returns the normalised `FormData` with the problems found; `validate` is the
same, problems only. Locations come beside the data (`Locations`), so every problem can name the
sheet and cell a civil servant has to fix, while `FormData` stays plain data. Wording and
severity of each problem come from the form description, never from here.

The sender's name is only checked for presence: resolving it against the roster is the
pipeline's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from intake.forms import normalize as norm
from intake.forms.model import FormData, Locations, Problem, Where
from intake.forms.spec import Field, FormSpec, Part

_NOWHERE = Where()
_DISPLAY_CHARS = 60


def validate(
    data: FormData,
    spec: FormSpec,
    *,
    locations: Locations | None = None,
    filename: str | None = None,
) -> list[Problem]:
    """Every problem of a read form: errors (the form must be corrected) and warnings."""
    return check(data, spec, locations=locations, filename=filename)[1]


def check(
    data: FormData,
    spec: FormSpec,
    *,
    locations: Locations | None = None,
    filename: str | None = None,
) -> tuple[FormData, list[Problem]]:
    """Normalised copy of `data` plus its problems; invalid values are kept as received."""
    ctx = _Checker(spec, locations, filename)
    header = {f.key: ctx.header_value(f, data.header.get(f.key)) for f in spec.header}
    for key, value in data.header.items():
        header.setdefault(key, value)
    parts: dict[str, list[dict[str, Any]]] = {}
    for part in spec.parts:
        parts[part.key] = ctx.part_rows(part, data.parts.get(part.key, []))
    for key, rows in data.parts.items():
        parts.setdefault(key, rows)
    return FormData(header=header, parts=parts), ctx.problems


@dataclass
class _Checker:
    spec: FormSpec
    locations: Locations | None
    filename: str | None
    problems: list[Problem] = field(default_factory=list)

    # -- header ---------------------------------------------------------------------------
    def header_value(self, spec_field: Field, raw: Any) -> Any:
        where = self.locations.header.get(spec_field.key) if self.locations else None
        if self.locations and where is None:
            if spec_field.required:
                self.report("missing_label", "header", self.sheet_only(), spec_field.label)
            return None
        return self.value(spec_field, raw, "header", where or _NOWHERE)

    def sheet_only(self) -> Where:
        return Where(self.locations.sheet) if self.locations else _NOWHERE

    # -- parts ----------------------------------------------------------------------------
    def part_rows(self, part: Part, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        heading = self.locations.parts.get(part.key) if self.locations else None
        if self.locations and heading is None:
            if part.required:
                self.report("missing_part", part.key, self.sheet_only(), part=part.heading)
            return list(rows)
        heading = heading or _NOWHERE
        row_where = self.locations.rows.get(part.key, []) if self.locations else []
        missing = self.missing_columns(part, heading)
        out = []
        for index, row in enumerate(rows):
            where = row_where[index] if index < len(row_where) else {}
            out.append(self.row(part, row, where, missing))
        if len(out) < part.min_rows and not any(
            c.required for c in part.columns if c.key in missing
        ):
            self.report("empty_part", part.key, heading, part=part.heading, min=part.min_rows)
        elif part.kind == "text":
            self.text_length(part, out, row_where, heading)
        return out

    def missing_columns(self, part: Part, heading: Where) -> set[str]:
        """Columns whose label is absent: reported once here, not once per row."""
        if part.kind != "table" or self.locations is None:
            return set()
        found = self.locations.columns.get(part.key, {})
        missing = {c.key for c in part.columns if c.key not in found}
        for column in part.columns:
            if column.key in missing and column.required:
                self.report("missing_column", part.key, heading, column.label, part=part.heading)
        return missing

    def row(
        self, part: Part, row: dict[str, Any], where: Mapping[str, Where], missing: set[str]
    ) -> dict[str, Any]:
        if part.kind != "table":
            text, _ = norm.normalize_text(row.get("text"), self.spec.limits.max_text_chars)
            return {**row, "text": text}
        out = dict(row)
        for column in part.columns:
            if column.key in missing:
                out[column.key] = row.get(column.key)
                continue
            cell = _Spot(where, column.key)  # resolved only if a problem needs it
            out[column.key] = self.value(column, row.get(column.key), part.key, cell)
        return out

    def text_length(
        self,
        part: Part,
        rows: list[dict[str, Any]],
        row_where: list[Mapping[str, Where]],
        heading: Where,
    ) -> None:
        count = sum(len(re.sub(r"\s", "", row.get("text") or "")) for row in rows)
        if count < part.min_chars:
            where = row_where[0].get("text", heading) if row_where else heading
            self.report(
                "too_short", part.key, where, part=part.heading, min=part.min_chars, count=count
            )

    # -- one value ------------------------------------------------------------------------
    def value(self, spec_field: Field, raw: Any, part: str, where: Where | _Spot) -> Any:
        if raw is None or (isinstance(raw, str) and norm.clean_text(raw) is None):
            if spec_field.required:
                self.report("missing_field", part, where, spec_field.label)
            return None
        value, code = self.normalise(spec_field, raw)
        if code:
            self.report(
                code,
                part,
                where,
                spec_field.label,
                value=_display(raw),
                converted=value,
                expected=self.expected(spec_field),
                min=self.bounds(spec_field)[0],
                max=self.bounds(spec_field)[1],
            )
        return raw if value is None else value

    def normalise(self, spec_field: Field, raw: Any) -> tuple[Any, str | None]:
        kind = spec_field.type
        low, high = self.bounds(spec_field)
        if kind == "text":
            return norm.normalize_text(raw, self.spec.limits.max_text_chars)
        if kind in ("choice", "term"):
            return norm.normalize_choice(raw, self.spec.choices_for(spec_field))
        if kind == "axis":
            return norm.normalize_axis(raw, low, high)
        if kind == "fiscal_year":
            return norm.normalize_fiscal_year(raw, low, high)
        simple = {
            "int": norm.normalize_int,
            "budget": norm.normalize_budget,
            "target": norm.normalize_target,
            "phone": norm.normalize_phone,
            "email": norm.normalize_email,
        }
        return simple[kind](raw)

    def bounds(self, spec_field: Field) -> tuple[Any, Any]:
        if spec_field.type == "axis":
            return self.spec.rule("axis", "min", 1), self.spec.rule("axis", "max", 3)
        if spec_field.type == "fiscal_year":
            return self.spec.rule("fiscal_year", "min", 2567), self.spec.rule(
                "fiscal_year", "max", 2580
            )
        if spec_field.type == "text":
            return 0, self.spec.limits.max_text_chars
        return "", ""

    def expected(self, spec_field: Field) -> str:
        names = [f"‘{name}’" for name in self.spec.choices_for(spec_field)]
        return " หรือ ".join(names)

    def report(
        self,
        code: str,
        part_key: str,
        where: Where | _Spot,
        column: str | None = None,
        **values: Any,
    ) -> None:
        message = self.spec.render(code, label=column or "", filename=self.filename or "", **values)
        if isinstance(where, _Spot):
            where = where.resolve()
        self.problems.append(
            Problem(
                severity="warning" if message.severity == "warning" else "error",
                code=code,
                message_th=message.text,
                filename=self.filename,
                sheet=where.sheet,
                part=part_key,
                row=where.row,
                column=column,
                cell=where.cell,
                table=where.table,
            )
        )


class _Spot:
    """A table cell's location, made into a `Where` only when a problem is reported there:
    most cells are fine, and a form has thousands."""

    __slots__ = ("cells", "key")

    def __init__(self, cells: Mapping[str, Where], key: str) -> None:
        self.cells, self.key = cells, key

    def resolve(self) -> Where:
        found = self.cells.get(self.key)
        if found is not None:
            return found
        return _row_only(next(iter(self.cells.values()), _NOWHERE))


def _row_only(where: Where) -> Where:
    """A missing cell's location when only another cell of its row is known."""
    return Where(where.sheet, where.row, None, where.table)


def _display(raw: Any) -> str:
    text = norm.clean_text(raw) or ""
    text = text.replace("\n", " ")
    return text if len(text) <= _DISPLAY_CHARS else text[: _DISPLAY_CHARS - 1] + "…"
