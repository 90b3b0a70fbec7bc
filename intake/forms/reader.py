"""Read every form in one attachment; the service's only entry point into `forms`.

Format readers (`sources.py`) turn the attachment into grids, one per sheet; one parser
(`parse.py`) finds the labels in each; sheets are grouped into forms (a sheet with part headings
but no header continues the form before it, so a form spread over two sheets is one form), and
each form is normalised and validated (`validate.py`). A sheet with fewer than
`detect.min_labels` labels is not a form. `read_forms` never raises: every failure becomes a
Problem, so an unreadable file still reaches the coordinator with a reason.
"""

from __future__ import annotations

import logging
from typing import Any

from intake.forms.model import FormData, FormResult, Locations, Problem, Severity, Where
from intake.forms.parse import Labels, SheetRead, parse_grid
from intake.forms.sources import Grid, MessageBudget, SourceProblem, open_source
from intake.forms.spec import FormSpec
from intake.forms.validate import check

log = logging.getLogger(__name__)
_OUT_OF_MEMORY = "การอ่านไฟล์นี้ใช้หน่วยความจำเกินขีดจำกัดที่ระบบอ่านได้"


def read_forms(
    filename: str,
    kind: str,
    data: bytes,
    spec: FormSpec,
    budget: MessageBudget | None = None,
) -> list[FormResult]:
    """All forms in one attachment, each read, normalised and validated; never raises.

    `kind` is the sniffed content type (xlsx, xlsm, xls, docx, doc, ods, pdf, zip, image, tnef,
    encrypted, text, other); the file's own bytes win where they say otherwise. `budget` is
    shared by the files of one message (`spec.limits.max_message_bytes` together).
    """
    found: dict[int, Labels] = {}  # per grid, shared by the formula pass and the parser

    def wanted(grid: Grid) -> bool:
        found[id(grid)] = Labels(grid, spec)
        return found[id(grid)].count > 0

    try:
        source = open_source(kind, data, spec, wanted=wanted, budget=budget)
    except SourceProblem as exc:
        return [_refused(filename, spec, exc.code, exc.detail)]
    except MemoryError:  # the process's memory ceiling (intake/memguard.py) was reached
        return [_refused(filename, spec, "too_large", _OUT_OF_MEMORY)]
    except Exception as exc:  # noqa: BLE001 - a broken or hostile file is reported, never raised
        if _out_of_memory(exc):
            return [_refused(filename, spec, "too_large", _OUT_OF_MEMORY)]
        code = "unsafe_file" if _unsafe(exc) else "corrupt"
        log.info("%s refused as %s: %s: %s", filename, code, type(exc).__name__, exc)
        return [_refused(filename, spec, code, "อ่านโครงสร้างภายในไฟล์ไม่สำเร็จ")]
    try:
        sheets = [parse_grid(grid, spec, found.get(id(grid))) for grid in source.grids]
        forms = _group(sheets, spec)
        if not forms:
            return [_refused(filename, spec, "not_a_form", "")]
        return [_result(filename, form, spec, source.template_version) for form in forms]
    except Exception:  # noqa: BLE001 - a parser bug must not lose the attachment
        log.exception("reading %s failed", filename)
        return [_refused(filename, spec, "corrupt", "อ่านโครงสร้างแบบฟอร์มไม่สำเร็จ")]


def _out_of_memory(exc: BaseException) -> bool:
    """libxml2 hit the memory ceiling: lxml reports a failed allocation as a syntax error that
    says "Memory allocation failed", or with no message at all ("unknown error")."""
    text = str(exc).lower()
    return "memory allocation failed" in text or (
        type(exc).__name__ == "XMLSyntaxError" and text.startswith("unknown error")
    )


def _unsafe(exc: BaseException | None) -> bool:
    """An XML parser refused a DTD or entity somewhere in the exception chain (openpyxl wraps)."""
    seen = 0
    while exc is not None and seen < 10:
        text = str(exc).lower()
        if type(exc).__module__.startswith("defusedxml") or "entit" in text and "xml" in text:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def part_refused(filename: str, code: str, text: str) -> FormResult:
    """A part that was refused before any reader saw it (too large, encrypted inside a zip),
    as an unreadable file whose one problem says so: `text` is the Thai sentence."""
    problem = Problem("error", code, text, filename=filename or None)
    return FormResult(filename=filename, sheet=None, data=None, problems=[problem])


def _refused(filename: str, spec: FormSpec, code: str, detail: str) -> FormResult:
    message = spec.render(code, filename=filename, detail=detail)
    problem = Problem("error", code, message.text, filename=filename)
    return FormResult(filename=filename, sheet=None, data=None, problems=[problem])


def _group(sheets: list[SheetRead], spec: FormSpec) -> list[list[SheetRead]]:
    """Forms as groups of sheets, the sheet with the header first.

    A sheet with part headings but no header continues the form before it (or the first form,
    if it comes first); without any headed sheet, every sheet with enough labels stands alone.
    """
    minimum = spec.detect.min_labels
    headed = [s for s in sheets if s.where.header and s.labels >= minimum]
    if not headed:
        return [[s] for s in sheets if s.labels >= minimum]
    groups: list[list[SheetRead]] = []
    pending: list[SheetRead] = []
    for sheet in sheets:
        if any(sheet is h for h in headed):
            groups.append([sheet, *pending])
            pending = []
        elif sheet.where.parts and not sheet.where.header:
            (groups[-1] if groups else pending).append(sheet)
    return groups


def _merge(group: list[SheetRead], spec: FormSpec) -> tuple[FormData, Locations]:
    main = group[0]
    where = Locations(sheet=main.grid.name, header=dict(main.where.header))
    parts: dict[str, list[dict[str, Any]]] = {}
    for sheet in group:
        for key, rows in sheet.parts.items():
            if key in parts and (parts[key] or not rows):
                continue
            parts[key] = rows
            where.parts[key] = sheet.where.parts[key]
            where.rows[key] = sheet.where.rows.get(key, [])
            where.columns[key] = sheet.where.columns.get(key, {})
    header = {f.key: main.header.get(f.key) for f in spec.header}
    data = FormData(header=header, parts={p.key: parts.get(p.key, []) for p in spec.parts})
    return data, where


def _result(
    filename: str, group: list[SheetRead], spec: FormSpec, version: str | None
) -> FormResult:
    data, where = _merge(group, spec)
    problems = [
        _formula_problem(filename, spec, place, part, label)
        for sheet in group
        for place, part, label in sheet.formulas
    ]
    normalised, found = check(data, spec, locations=where, filename=filename)
    return FormResult(
        filename=filename,
        sheet=group[0].grid.name,
        data=normalised,
        problems=_cap(_dedupe(problems + found), spec, filename),
        template_version=version,
    )


def _formula_problem(filename: str, spec: FormSpec, place: Where, part: str, label: str) -> Problem:
    message = spec.render("formula_no_value", label=label, filename=filename)
    return Problem(
        "warning" if message.severity == "warning" else "error",
        "formula_no_value",
        message.text,
        filename=filename,
        sheet=place.sheet,
        part=part,
        row=place.row,
        column=label,
        cell=place.cell,
        table=place.table,
    )


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One error per cell (an uncalculated formula is not also "missing"), no repeats."""
    seen: set[Any] = set()
    out = []
    for problem in problems:
        key: Any = (
            (problem.sheet, problem.cell)
            if problem.cell and problem.severity == "error"
            else problem
        )
        if key in seen:
            continue
        seen.add(key)
        out.append(problem)
    return out


def _cap(problems: list[Problem], spec: FormSpec, filename: str) -> list[Problem]:
    """At most `limits.max_problems` problems: a sheet of junk must not become a 20,000-line reply."""
    limit = spec.limits.max_problems
    if len(problems) <= limit:
        return problems
    kept, rest = problems[: limit - 1], problems[limit - 1 :]
    severity: Severity = "error" if any(p.severity == "error" for p in rest) else "warning"
    text = spec.render("more_problems", count=f"{len(rest):,}", filename=filename).text
    return [*kept, Problem(severity, "more_problems", text, filename=filename)]
