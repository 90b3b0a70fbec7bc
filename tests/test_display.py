"""What the coordinator reads is safe to show: hostile subjects, addresses, details and form cells
(Rich markup, ESC and other control characters) through the real commands (`intake review`,
`intake report` as table and xlsx, `intake export`, `intake status`, `intake remind --dry-run`)
and the page's downloads, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from intake import cli
from intake.display import XLSX_CELL_MAX, safe_text, visible, xlsx_text
from intake.pipeline import import_files
from storage.models import Message, Project, ReviewItem, WorkerStatus
from storage.session import session_scope
from tests.coordinator_seed import Seeded, seed
from tests.intake_env import settings_env
from tests.mime_builders import build_submission, encode_word
from tests.test_review_cli import run

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SUBJECT = "hello [/x] world \x1b[31mred\x1b]0;pwned\x07 \x01end"
DETAIL = "[link=https://evil.example/]click[/link] [bold]b[/bold] \x9b31m"
ADDRESS = "x[/y]@evil.example"
CELL = '=HYPERLINK("https://evil.example","\x01\x1bclick")'


def test_safe_text_escapes_markup_and_shows_controls() -> None:
    assert safe_text("hello [/x] world") == "hello \\[/x] world"
    assert visible("a\x1b[31mb\x01\x7f\x9b") == "a\u241b[31mb\u2401\u2421\\x9b"
    assert visible("one\ntwo\tthree") == "one\u240atwo\u2409three"  # no fake table rows
    assert visible("one\ntwo", multiline=True) == "one\ntwo"
    assert visible("abc\u202eevil") == "abc\\u202eevil"  # no right-to-left override
    assert visible("ภาษาไทย ok") == "ภาษาไทย ok"
    assert safe_text(None) == ""


def test_xlsx_text_keeps_only_what_xml_allows() -> None:
    assert xlsx_text("a\x01b\x1bc\x00") == "a\u2401b\u241bc\u2400"
    assert xlsx_text("tab\tline\ncr\r") == "tab\tline\ncr\r"  # XML allows these three
    assert xlsx_text("\ud800x\uffff") == "\ufffdx\ufffd"
    assert len(xlsx_text("ก" * 40_000)) == XLSX_CELL_MAX


@pytest.fixture
def hostile(tmp_path: Path, database_url: str) -> tuple[Seeded, dict[str, str]]:
    """The coordinator's seeded database, plus a real mail with a hostile encoded subject, and
    hostile text written where mail text ends up (subject, address, detail, a form cell, the
    worker's last error), whatever the intake stages keep of it."""
    db = seed(tmp_path, database_url)
    raw = build_submission(
        subject=encode_word(SUBJECT), from_="staff@evil.example", to="jpp.moi9999@gmail.com",
        body="no form", attachments=[], message_id="<hostile@evil.example>",
    )  # fmt: skip
    import_files(db.svc, [(raw, datetime(2024, 1, 19, 9, tzinfo=UTC))])
    with session_scope(db.svc.factory) as session:
        message = session.get(Message, db.no_form_message)
        assert message is not None
        message.subject, message.from_address = SUBJECT, ADDRESS
        for item in session.scalars(select(ReviewItem)):
            item.detail = DETAIL
        project = session.scalars(select(Project).order_by(Project.id)).first()
        assert project is not None
        project.name = CELL
        session.add(
            WorkerStatus(name="worker", mode="active", holder="h[/z]",
                         last_error=SUBJECT, last_error_at=datetime(2024, 1, 19, tzinfo=UTC))
        )  # fmt: skip
    variables = settings_env(tmp_path, database_url)
    variables.update(COLUMNS="250")
    return db, variables


def _flat(text: str) -> str:
    """Rich tables wrap and frame cells: compare without whitespace and box characters."""
    return "".join(c for c in text if not c.isspace() and c not in "│┃┆┊║─━═┼╋┏┓┗┛┡┩└┘┌┐├┤")


def _shown_safely(output: str) -> None:
    assert "\x1b" not in output and "\x01" not in output and "\x9b" not in output
    assert "\x1b]8;" not in output  # no OSC 8 hyperlink


def test_review_prints_hostile_text_literally(hostile) -> None:  # type: ignore[no-untyped-def]
    _, variables = hostile
    output = run(variables, "review").output
    _shown_safely(output)
    flat = _flat(output)
    assert _flat("hello [/x] world \u241b[31mred") in flat
    assert _flat("[link=https://evil.example/]click[/link] [bold]b[/bold]") in flat
    assert _flat(f"add-address SENDER {ADDRESS}") in flat


def test_report_table_and_status_print_hostile_text_literally(hostile) -> None:  # type: ignore[no-untyped-def]
    _, variables = hostile
    _shown_safely(run(variables, "report").output)
    status = run(variables, "status", code=cli.EXIT_UNHEALTHY).output
    _shown_safely(status)
    assert "hello [/x] world" in status and "h[/z]" in status
    _shown_safely(run(variables, "remind", "--dry-run").output)


def test_errors_are_printed_literally(hostile) -> None:  # type: ignore[no-untyped-def]
    _, variables = hostile
    out = run(variables, "review", "add-address", "TH-999[/x]\x1b", "a@b.go.th", code=2).output
    _shown_safely(out)
    assert "TH-999[/x]" in out


def test_workbooks_carry_hostile_cells(hostile, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, variables = hostile
    report = tmp_path / "report.xlsx"
    run(variables, "report", "--format", "xlsx", "--output", str(report))
    review = load_workbook(report)["รอตรวจสอบ"]
    texts = [c.value for row in review.iter_rows(min_row=4) for c in row if c.value]
    assert "hello [/x] world \u241b[31mred\u241b]0;pwned\u2407 \u2401end" in texts

    export = tmp_path / "export.xlsx"
    run(variables, "export", "--output", str(export))
    cells = [
        c for ws in load_workbook(export).worksheets for row in ws.iter_rows() for c in row
        if isinstance(c.value, str) and "HYPERLINK" in c.value
    ]  # fmt: skip
    assert [c.value for c in cells] == [CELL.replace("\x01", "\u2401").replace("\x1b", "\u241b")]
    assert cells[0].data_type == "s"  # still text, never a formula

    from intake.web import create_app

    client = TestClient(create_app(db.svc), base_url="http://127.0.0.1:8080")
    for path in ("/report.xlsx", "/export.xlsx"):
        response = client.get(path)
        assert response.status_code == 200, path
        load_workbook(io.BytesIO(response.content))
