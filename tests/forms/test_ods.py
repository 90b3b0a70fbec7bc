"""OpenDocument spreadsheets (.ods): a form LibreOffice saved reads exactly like the .xlsx it was
saved from, and a hostile .ods is counted and refused before python-calamine allocates for it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from intake.forms import read_forms, sources
from intake.forms.spec import FormSpec
from tests.forms.bombs import ODS_MIMETYPE, ods_bytes, ods_cell, ods_repeat_bomb
from tests.forms.builders import (
    default_spec,
    expected_records,
    filled_form_bytes,
    libreoffice_convert,
)
from tests.forms.test_hostile import bounded
from tests.forms.test_template import _template
from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_submission

ROW, END = "<table:table-row>", "</table:table-row>"


def _spec(**limits: int) -> FormSpec:
    spec = default_spec()
    return dataclasses.replace(spec, limits=dataclasses.replace(spec.limits, **limits))


@pytest.fixture(scope="module")
def originals() -> dict[str, bytes]:
    return {
        "filled": filled_form_bytes(),
        "thai": filled_form_bytes(thai_digits=True),
        "blank": _template()[0],
    }


@pytest.fixture(scope="module")
def saved_as_ods(
    originals: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, bytes]:
    """The filled form, the same with Thai digits, and the blank template, saved as .ods."""
    return libreoffice_convert(originals, "ods", tmp_path_factory.mktemp("ods"))


def test_a_form_saved_as_ods_reads_back_identical_records(saved_as_ods: dict[str, bytes]) -> None:
    header, parts = expected_records()
    for name in ("filled", "thai"):
        (result,) = read_forms("แบบฟอร์ม.ods", "ods", saved_as_ods[name], default_spec())
        assert result.valid, result.problems
        assert result.problems == []
        assert result.data is not None
        assert (result.data.header, result.data.parts) == (header, parts)
        assert result.template_version == default_spec().version  # the hidden marker survives


def test_ods_and_xlsx_of_the_same_form_give_the_same_cells_and_problems(
    originals: dict[str, bytes], saved_as_ods: dict[str, bytes]
) -> None:
    """Cell for cell, with types (whole numbers int, empty cells None), and the same problems
    at the same cells for the blank template."""
    spec = default_spec()
    for name, data in saved_as_ods.items():
        ods = sources.open_source("ods", data, spec)
        xlsx = sources.open_source("xlsx", originals[name], spec)
        assert [(g.name, g.rows) for g in ods.grids] == [(g.name, g.rows) for g in xlsx.grids]
        assert [[type(v) for v in row] for g in ods.grids for row in g.rows] == [
            [type(v) for v in row] for g in xlsx.grids for row in g.rows
        ]
        assert ods.template_version == xlsx.template_version == spec.version
        (from_ods,) = read_forms("f.ods", "ods", data, spec)
        (from_xlsx,) = read_forms("f.xlsx", "xlsx", originals[name], spec)
        assert [(p.code, p.cell) for p in from_ods.problems] == [
            (p.code, p.cell) for p in from_xlsx.problems
        ]


def test_values_as_the_xlsx_readers_give_them() -> None:
    data = ods_bytes({
        "ข้อมูล": ROW + ods_cell(2) + ods_cell(350000.5) + ods_cell("")
        + '<table:table-cell office:value-type="date" office:date-value="2024-01-22">'
        "<text:p>22/01/2024</text:p></table:table-cell>"
        + '<table:table-cell office:value-type="boolean" office:boolean-value="true"/>'
        + ods_cell("ท้าย") + '<table:table-cell table:number-columns-repeated="1000"/>' + END
    })  # fmt: skip
    (grid,) = sources.open_source("ods", data, default_spec()).grids
    import datetime as dt

    assert grid.rows == [[2, 350000.5, None, dt.datetime(2024, 1, 22), True, "ท้าย"]]
    assert type(grid.rows[0][0]) is int


def test_a_formula_saved_without_a_result_is_seen() -> None:
    """calamine cannot tell such a cell from an empty one; the counting pass can."""
    formula = '<table:table-cell table:formula="of:=SUM([.A1:.B1])"/>'
    data = ods_bytes({"ข้อมูล": ROW + ods_cell(1) + ods_cell(2) + formula + END})
    (grid,) = sources.open_source("ods", data, default_spec()).grids
    assert grid.get(0, 2) == sources.Uncalculated("=SUM(A1:B1)")


def _too_large(data: bytes, spec: FormSpec | None = None) -> str:
    (result,) = read_forms("แบบฟอร์ม.ods", "ods", data, spec or default_spec())
    assert result.data is None, "a form past a limit must never be accepted"
    assert [p.code for p in result.problems] == ["too_large"], result.problems
    return result.problems[0].message_th


def test_a_repeated_cell_bomb_is_refused_before_calamine_allocates() -> None:
    data = ods_repeat_bomb()  # 10 GB in calamine
    assert len(data) < 2048
    with bounded(5, 60):
        text = _too_large(data)
    assert "แผ่นงาน แบบฟอร์ม มีเกิน 5,000 แถว" in text and "แบบฟอร์ม.ods" in text


def test_a_value_past_a_huge_run_of_empty_columns_is_refused_not_dropped() -> None:
    """calamine caps a repeat and would silently lose the value after it."""
    empty = '<table:table-cell table:number-columns-repeated="50000000"/>'
    with bounded(5, 60):
        text = _too_large(ods_bytes({"ก": ROW + ods_cell(1) + empty + ods_cell(2) + END}))
    assert "มีเกิน 100 คอลัมน์" in text


def test_rows_repeated_past_the_row_limit_are_refused() -> None:
    rows = '<table:table-row table:number-rows-repeated="50000000"><table:table-cell/>' + END
    with bounded(5, 60):
        text = _too_large(
            ods_bytes({"ก": ROW + ods_cell(1) + END + rows + ROW + ods_cell(2) + END})
        )
    assert "แผ่นงาน ก มีเกิน 5,000 แถว" in text


def test_trailing_empty_repeats_as_libreoffice_writes_them_cost_nothing() -> None:
    tail = (
        '<table:table-row table:number-rows-repeated="1048570">'
        '<table:table-cell table:number-columns-repeated="16384"/>' + END
    )
    data = ods_bytes({"ก": ROW + ods_cell(1) + END + tail})
    with bounded(5, 60):
        (grid,) = sources.open_source("ods", data, default_spec()).grids
    assert grid.rows == [[1]]


def test_cells_and_characters_of_all_sheets_are_bounded() -> None:
    sheets = {f"s{i}": (ROW + ods_cell(1, 100) + END) * 10 for i in range(3)}
    assert "มีเซลล์รวมกันมากกว่า 2,500 เซลล์" in _too_large(ods_bytes(sheets), _spec(max_cells=2500))
    text = _too_large(
        ods_bytes({"ก": ROW + ods_cell("ก" * 100, 50) + END}), _spec(max_shared_chars=4000)
    )
    assert "ตัวอักษรรวมกันมากกว่า 4,000 ตัว" in text


def test_spaces_written_as_a_count_are_counted_before_calamine_expands_them() -> None:
    spaces = '<text:p>a<text:s text:c="200000000"/>b</text:p>'
    cell = f'<table:table-cell office:value-type="string">{spaces}</table:table-cell>'
    with bounded(5, 60):
        text = _too_large(ods_bytes({"ก": ROW + cell + END}))  # 830 MB in calamine
    assert "ตัวอักษรรวมกันมากกว่า 20,000,000 ตัว" in text
    sheets = {f"s{i}": ROW + ods_cell("ก" * 100, 30) + END for i in range(2)}
    text = _too_large(ods_bytes(sheets), _spec(max_shared_chars=5000))
    assert "แผ่นงานในไฟล์มีตัวอักษรรวมกันมากกว่า 5,000 ตัว" in text


def test_content_xml_is_bounded_by_its_size_before_anything_parses_it() -> None:
    data = ods_bytes({"ก": (ROW + ods_cell("x" * 1000) + END) * 2000})
    assert "content.xml มีขนาดเกิน 1 MB" in _too_large(data, _spec(max_xml_part_bytes=1024 * 1024))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (ods_bytes({"ก": ""}, manifest="<m><manifest:encryption-data/></m>"), "encrypted"),
        (ods_bytes({"ก": '<!DOCTYPE x [<!ENTITY a "b">]>'}), "unsafe_file"),
    ],
)
def test_encrypted_or_unsafe_ods(data: bytes, code: str) -> None:
    (result,) = read_forms("f.ods", "ods", data, default_spec())
    assert [p.code for p in result.problems] == [code]


def test_intake_import_accepts_the_form_saved_as_ods(
    saved_as_ods: dict[str, bytes], tmp_path: Path, database_url: str, smtp_server: Any
) -> None:
    """End to end: the .ods attached to a mail is read, accepted and answered like an .xlsx."""
    intake = IntakeRunner(settings_env(tmp_path, database_url, smtp=smtp_server.smtp_settings()))
    intake("db", "upgrade")
    raw = build_submission(
        attachments=[("แบบฟอร์ม.ods", saved_as_ods["filled"], ODS_MIMETYPE)],
        message_id="<ods-1@chiangmai.example>",
        date="Fri, 19 Jan 2024 10:00:00 +0700",
    )
    (tmp_path / "1.eml").write_bytes(raw)
    intake("import", str(tmp_path / "1.eml"))
    chiangmai = next(e for e in intake.report()["entities"] if e["id"] == "TH-50")
    assert chiangmai["status"] == "accepted", chiangmai
    (reply,) = smtp_server.messages
    assert reply.message["X-Intake-Kind"] == "acknowledgement"
