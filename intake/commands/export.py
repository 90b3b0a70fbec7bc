"""Commands: `intake export`, the committee's consolidated workbook (or one table as CSV)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `intake` app."""
    app.command("export")(export)


def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")] = Path(
        "consolidated.xlsx"
    ),
    format_: Annotated[str, typer.Option("--format", "-f", help="xlsx or csv.")] = "xlsx",
    part: Annotated[
        str | None,
        typer.Option("--part", "-p", help="For csv: overview, summary or a part key (projects)."),
    ] = None,
) -> None:
    """Every accepted form in one workbook: overview, one sheet per part, budget summary."""
    from intake import cli
    from intake.export import ExportError, write_consolidated, write_csv
    from storage.session import session_scope

    if format_ not in {"xlsx", "csv"} or (format_ == "csv") != (part is not None):
        cli._fail(
            2, "use --format xlsx, or --format csv with --part (overview, summary, projects…)"
        )
    svc = cli._services()
    when = {"deadline": svc.settings.deadline, "now": svc.clock.now()}
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with session_scope(svc.factory) as session:
            if format_ == "xlsx":
                write_consolidated(session, svc.spec, output, **when)
            else:
                with output.open("w", encoding="utf-8-sig", newline="") as fh:
                    write_csv(session, svc.spec, part or "", fh, **when)
    except ExportError as exc:
        output.unlink(missing_ok=True)
        cli._fail(2, str(exc))
    cli.err.print(f"written to {output}", highlight=False, markup=False)
