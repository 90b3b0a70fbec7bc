"""The form description (`config/form.toml`) as frozen dataclasses.

The real form of the letter is not available to us, so the service reads forms through this
description: a coordinator can rename a label, accept a new wording or add a column without
touching code. `load_spec` checks the file thoroughly and fails with one message naming the
entry at fault, because a broken description would otherwise surface as every form "invalid".
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from intake.errors import ConfigError
from intake.forms.normalize import normalize_label

FIELD_TYPES = frozenset(
    {"text", "int", "axis", "term", "choice", "budget", "fiscal_year", "target", "phone", "email"}
)
PART_KINDS = frozenset({"text", "list", "table"})
SEVERITIES = frozenset({"error", "warning"})
# Codes the code can raise; each needs a message in the description.
MESSAGE_CODES = frozenset(
    {
        "not_a_form", "format_pdf", "format_image", "format_doc", "format_ods", "format_tnef",
        "format_text", "format_zip", "format_other", "encrypted", "corrupt", "too_large",
        "unsafe_file", "formula_no_value", "missing_label", "missing_field", "missing_part",
        "missing_column", "empty_part", "too_short", "bad_choice", "bad_axis", "bad_budget",
        "budget_words", "negative_budget", "bad_fiscal_year", "fiscal_year_ce",
        "fiscal_year_short", "fiscal_year_range", "bad_phone", "bad_email", "bad_int", "too_long",
        "more_problems", "format_xlsb",
    }
)  # fmt: skip
DEFAULT_PATH = Path("config/form.toml")


class SpecError(ConfigError):
    """The form description is wrong; the message says which entry and why."""


@dataclass(frozen=True)
class Field:
    """A header field or a table column: a label people see and a key the service stores."""

    key: str
    label: str
    variants: tuple[str, ...] = ()
    type: str = "text"
    required: bool = False
    help: str = ""
    choices: str | None = None  # name of a [choices.NAME] table, for type choice/term
    width: float = 14.0
    label_keys: frozenset[str] = frozenset()  # normalised label + variants, for matching

    def matches(self, key: str) -> bool:
        return key in self.label_keys


@dataclass(frozen=True)
class Part:
    key: str
    heading: str
    variants: tuple[str, ...]
    kind: str  # "text" | "list" | "table"
    required: bool
    min_rows: int
    min_chars: int = 0
    columns: tuple[Field, ...] = ()
    help: str = ""
    template_rows: int = 5
    template_column: int = 1
    label_keys: frozenset[str] = frozenset()

    def matches(self, key: str) -> bool:
        return key in self.label_keys

    def column(self, key: str) -> Field:
        """The column `key`; StopIteration when there is none (as callers expect)."""
        found = self._columns_by_key.get(key)
        if found is None:
            raise StopIteration(key)
        return found

    @cached_property
    def _columns_by_key(self) -> dict[str, Field]:
        # looked up for every cell of every table row: a scan of the columns each time showed
        return {c.key: c for c in self.columns}


@dataclass(frozen=True)
class Message:
    severity: str
    text: str


@dataclass(frozen=True)
class Limits:
    """Every bound on the work one attachment (and one message) may cost, in one place.

    A filled form is ~100 rows, a few thousand cells and strings, well under 1 MB unpacked; the
    defaults leave that room a hundredfold and keep the reader under ~150 MB whatever the bytes
    (`tests/forms/test_bounds.py`). Everything is counted while the file streams, before the
    memory is spent; past a limit the file is refused with a `too_large` problem that names the
    figure. `config/form.toml` [limits] may change any of them. The MIME-level caps (attachment
    size and count, zip archives inside a mail) are `intake.message.Limits`.
    """

    max_rows: int = 5000  # rows with values in one sheet
    max_columns: int = 100  # columns with values in one sheet
    max_sheets: int = 50
    max_uncompressed_bytes: int = 50 * 1024 * 1024  # all members of one .xlsx/.docx zip
    max_xml_part_bytes: int = 10 * 1024 * 1024  # one XML part parsed whole (not a sheet)
    max_members: int = 2000
    max_text_chars: int = 5000
    max_problems: int = 100
    max_cells: int = 500_000  # cell elements in one sheet, empty ones included (5,000 x 100)
    max_row_cells: int = 16_384  # cell elements in one row: Excel's own last column, XFD
    max_shared_strings: int = 500_000  # entries of the shared-strings part
    max_shared_chars: int = 20_000_000  # their characters together
    # Tags and attributes (each "<" and "=") of all the XML parts of one file that are parsed
    # whole (everything but sheets and shared strings, which stream); ~250 bytes each in memory.
    max_xml_nodes: int = 500_000
    max_xls_bytes: int = 10 * 1024 * 1024  # an old .xls is read whole by xlrd
    max_message_bytes: int = 100 * 1024 * 1024  # unpacked size of all files of one message


@dataclass(frozen=True)
class Detect:
    min_labels: int = 3
    max_blank_rows: int = 3
    value_lookahead: int = 6
    column_header_lookahead: int = 4
    total_row_labels: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TemplateLayout:
    sheet: str = "แบบฟอร์ม"
    instructions_sheet: str = "คำแนะนำ"
    marker_sheet: str = "_intake"
    marker: str = "intake-form"
    label_width: int = 2
    value_width: int = 6
    text_width: int = 8


@dataclass(frozen=True)
class FormSpec:
    version: str
    title: str
    header: tuple[Field, ...]
    parts: tuple[Part, ...]
    messages: Mapping[str, Message]
    choices: Mapping[str, Mapping[str, tuple[str, ...]]]
    rules: Mapping[str, Mapping[str, Any]]
    limits: Limits = field(default_factory=Limits)
    detect: Detect = field(default_factory=Detect)
    template: TemplateLayout = field(default_factory=TemplateLayout)
    source: str = ""

    def part(self, key: str) -> Part:
        return next(p for p in self.parts if p.key == key)

    def header_field(self, key: str) -> Field:
        return next(f for f in self.header if f.key == key)

    def rule(self, name: str, key: str, default: Any) -> Any:
        return self.rules.get(name, {}).get(key, default)

    def choices_for(self, spec_field: Field) -> Mapping[str, tuple[str, ...]]:
        name = spec_field.choices or ("term" if spec_field.type == "term" else "")
        return self.choices.get(name, {})

    def render(self, code: str, **values: Any) -> Message:
        """The message for `code` with its placeholders filled; unknown ones are left blank."""
        message = self.messages[code]
        return Message(message.severity, message.text.format_map(_Blank(values)))


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def load_spec(path: str | Path = DEFAULT_PATH) -> FormSpec:
    """Read and check the form description; raise SpecError saying what is wrong and where."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the form description: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return _build(raw, str(path))
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"{path}: malformed entry ({type(exc).__name__}: {exc})") from exc


def _build(raw: Mapping[str, Any], source: str) -> FormSpec:
    _need(
        isinstance(raw.get("version"), str) and raw["version"],
        "top-level 'version' (a string) is required",
    )
    _need(
        isinstance(raw.get("title"), str) and raw["title"],
        "top-level 'title' (a string) is required",
    )
    choices = {
        name: {str(k): tuple(map(str, v)) for k, v in table.items()}
        for name, table in raw.get("choices", {}).items()
    }
    header = tuple(_field(f, f"header[{i}]", choices) for i, f in enumerate(raw.get("header", [])))
    parts = tuple(_part(p, i, choices) for i, p in enumerate(raw.get("parts", [])))
    _need(header, "at least one [[header]] field is required")
    _need(parts, "at least one [[parts]] entry is required")
    _unique([f.key for f in header], "header keys")
    _unique([p.key for p in parts], "part keys")
    messages = {code: _message(code, m) for code, m in raw.get("messages", {}).items()}
    missing = sorted(MESSAGE_CODES - messages.keys())
    _need(not missing, f"[messages] lacks {', '.join(missing)}")
    detect = dict(raw.get("detect", {}))
    detect["total_row_labels"] = frozenset(map(normalize_label, detect.get("total_row_labels", [])))
    return FormSpec(
        version=raw["version"],
        title=raw["title"],
        header=header,
        parts=parts,
        messages=messages,
        choices=choices,
        rules={k: dict(v) for k, v in raw.get("rules", {}).items()},
        limits=_positive(Limits(**raw.get("limits", {})), "limits"),
        detect=_positive(Detect(**detect), "detect"),
        template=TemplateLayout(**raw.get("template", {})),
        source=source,
    )


def _field(raw: Mapping[str, Any], where: str, choices: Mapping[str, Any]) -> Field:
    for name in ("key", "label"):
        _need(
            isinstance(raw.get(name), str) and raw[name],
            f"{where}: '{name}' (a string) is required",
        )
    kind = raw.get("type", "text")
    _need(
        kind in FIELD_TYPES,
        f"{where} ({raw['key']}): unknown type '{kind}', use one of {sorted(FIELD_TYPES)}",
    )
    choice_name = raw.get("choices") or ("term" if kind == "term" else None)
    if kind in ("choice", "term"):
        _need(
            choice_name in choices, f"{where} ({raw['key']}): needs a [choices.{choice_name}] table"
        )
    variants = tuple(map(str, raw.get("variants", [])))
    return Field(
        key=raw["key"],
        label=raw["label"],
        variants=variants,
        type=kind,
        required=bool(raw.get("required", False)),
        help=str(raw.get("help", "")),
        choices=choice_name,
        width=float(raw.get("width", 14)),
        label_keys=_keys(raw["label"], variants, where),
    )


def _part(raw: Mapping[str, Any], index: int, choices: Mapping[str, Any]) -> Part:
    where = f"parts[{index}]"
    for name in ("key", "heading", "kind"):
        _need(
            isinstance(raw.get(name), str) and raw[name],
            f"{where}: '{name}' (a string) is required",
        )
    kind = raw["kind"]
    _need(kind in PART_KINDS, f"{where} ({raw['key']}): kind must be one of {sorted(PART_KINDS)}")
    columns = tuple(
        _field(c, f"{where}.columns[{i}]", choices) for i, c in enumerate(raw.get("columns", []))
    )
    _need(kind != "table" or columns, f"{where} ({raw['key']}): a table needs [[parts.columns]]")
    _need(kind == "table" or not columns, f"{where} ({raw['key']}): only a table has columns")
    _unique([c.key for c in columns], f"{where} column keys")
    variants = tuple(map(str, raw.get("variants", [])))
    return Part(
        key=raw["key"],
        heading=raw["heading"],
        variants=variants,
        kind=kind,
        required=bool(raw.get("required", False)),
        min_rows=int(raw.get("min_rows", 1 if raw.get("required") else 0)),
        min_chars=int(raw.get("min_chars", 0)),
        columns=columns,
        help=str(raw.get("help", "")),
        template_rows=int(raw.get("template_rows", 5)),
        template_column=int(raw.get("template_column", 1)),
        label_keys=_keys(raw["heading"], variants, where),
    )


def _message(code: str, raw: Any) -> Message:
    _need(isinstance(raw, Mapping), f"[messages.{code}] must be a table with severity and text")
    _need(
        raw.get("severity") in SEVERITIES, f"[messages.{code}]: severity must be error or warning"
    )
    _need(isinstance(raw.get("text"), str) and raw["text"], f"[messages.{code}]: text is required")
    return Message(raw["severity"], raw["text"])


def _keys(label: str, variants: tuple[str, ...], where: str) -> frozenset[str]:
    keys = frozenset(k for k in map(normalize_label, (label, *variants)) if k)
    _need(keys, f"{where}: the label '{label}' is empty after normalisation")
    return keys


def _positive(obj: Any, where: str) -> Any:
    for name, value in vars(obj).items():
        if isinstance(value, int) and not isinstance(value, bool):
            _need(
                value > 0 or name == "max_blank_rows" and value >= 0,
                f"[{where}] {name} must be positive",
            )
    return obj


def _unique(keys: list[str], what: str) -> None:
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    _need(not dupes, f"duplicate {what}: {', '.join(dupes)}")


def _need(condition: Any, message: str) -> None:
    if not condition:
        raise SpecError(message)
