"""The `intake` command: a thin skin over the pipeline, reports and storage (Typer + Rich).

Exit codes: 0 done (bad messages are outcomes, not failures); 1 configuration or database
problem; 2 usage; 3 a mail server could not be used (IMAP or SMTP: unreachable, no AUTH, or the
login was refused); 4 another worker holds the lease (`poll`); 5 the service is unhealthy
(`status`). Every error is one line on stderr, `error: ` and what to fix, naming the setting by
its environment variable; no traceback for a mistake a person can make (the command group below
turns the known failures into that line, whichever command met them).
"""

from __future__ import annotations

import logging
import mailbox as stdlib_mailbox
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from typer.core import TyperGroup, TyperOption

from intake.errors import (
    ConfigError,
    IntakeError,
    LeaseBusy,
    MailboxUnavailable,
    SmtpUnavailable,
)
from intake.settings import Settings, load_settings

_typer_display_type = TyperOption.display_type_rich


def _flag_shows_as_flag(self: TyperOption, ctx: Any) -> str | None:
    """Typer's Rich help prints `<bool>` after every flag, `--help` included, as if it took a
    value (Click's plain help and Typer's own plain path leave flags bare). A flag takes no value,
    so its help names no type."""
    if self.is_flag or self.count:
        return None
    return _typer_display_type(self, ctx)


TyperOption.display_type_rich = _flag_shows_as_flag  # type: ignore[method-assign]


class _OneLineErrors(TyperGroup):
    """Known failures, wherever a command meets them, end as one `error:` line and their exit
    code (Typer would print a 50-line traceback for a database URL with a typo). Bugs are not
    known failures: they keep their traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            known = _known_failure(exc)
            if known is None:
                raise
            _fail(*known)


app = typer.Typer(
    help="รับแบบฟอร์มข้อมูลทางอีเมล — e-mail intake for the MOI city-upgrading data call.",
    no_args_is_help=True,
    add_completion=False,
    cls=_OneLineErrors,
)
db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")

# No emoji codes: a subject holding ":fire:" is printed as written (markup: display.safe_text).
console = Console(emoji=False)
err = Console(stderr=True, emoji=False)

EXIT_CONFIG, EXIT_MAILBOX = 1, 3
EXIT_LEASE, EXIT_UNHEALTHY = 4, 5


class _State:
    config: Path | None = None
    settings: Settings | None = None
    verbose: bool = False


state = _State()


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (default: $INTAKE_CONFIG, else config/intake.toml here, else "
            "the built-in one); a file that does not exist is an error.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every event.")] = False,
) -> None:
    state.config, state.verbose = config, verbose
    _configure_logs("kv", ())  # until the settings say which format (they may fail to load)


def _configure_logs(fmt: str, secrets: Any) -> None:
    """The worker's structured lines (`intake.logs`, `worker.log_format`) for every command: one
    format in every log. Commands log warnings and up (`-v`: info); `intake run` logs info."""
    from intake import logs

    logs.configure(verbose=state.verbose, fmt=fmt, secrets=secrets, stream=_Stderr())
    logging.getLogger().setLevel(logging.INFO if state.verbose else logging.WARNING)


class _Stderr:
    """Whatever sys.stderr is when a line is written (a test runner swaps it per invocation)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _said_by_poll(record: logging.LogRecord) -> bool:
    """Leave out the log lines that `intake poll` prints itself as its result, so a failure is
    said once (`-v` keeps them; `intake run` configures its own handler, which logs them all)."""
    return state.verbose or not record.getMessage().startswith(_SAID_BY_POLL)


_SAID_BY_POLL = ("outbox.unreachable ", "mailbox.file_failed ", "cycle.file_failed ")


def _settings() -> Settings:
    if state.settings is None:
        from intake.logs import settings_secrets
        from intake.settings import check_config_file, settings_error_text

        try:
            check_config_file(state.config)
            state.settings = load_settings(state.config, require_file=True)
        except Exception as exc:  # pydantic ValidationError and TOML errors alike
            _fail(EXIT_CONFIG, settings_error_text(exc, state.config))
        assert state.settings is not None
        _configure_logs(state.settings.worker.log_format, settings_secrets(state.settings))
    return state.settings  # type: ignore[return-value]


def _fail(code: int, message: str) -> None:
    """`error: ` and the message on one line of stderr (never wrapped, whatever the width), then
    exit with `code`."""
    from intake.display import safe_text

    line = " ".join(safe_text(message, multiline=True).split())
    err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _known_failure(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, message) for a failure a person can fix; None for a bug."""
    from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError

    if isinstance(exc, LeaseBusy):
        return EXIT_LEASE, f"{exc}; `intake status` shows it"
    if isinstance(exc, MailboxUnavailable | SmtpUnavailable):
        return EXIT_MAILBOX, str(exc)
    if isinstance(exc, IntakeError):
        return EXIT_CONFIG, str(exc)
    # the database cannot be reached, or its URL is not one (any other database error is a bug)
    if isinstance(exc, ArgumentError | NoSuchModuleError | OperationalError | InterfaceError):
        url = state.settings.effective_database_url if state.settings else ""
        return EXIT_CONFIG, database_problem(exc, url)
    return None


def database_problem(exc: BaseException, url: str) -> str:
    """What went wrong with the database, in one line that names INTAKE_DATABASE_URL and shows
    the URL without its password (SQLAlchemy's text spans lines and ends in a link)."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from intake.settings import database_passwords, redact_url

    if isinstance(exc, ArgumentError | NoSuchModuleError):
        detail = f"not a database URL this service can use ({str(exc).splitlines()[0]}); " \
            "e.g. postgresql+psycopg://user:password@host/intake or sqlite:///var/intake.db"
        text = f"INTAKE_DATABASE_URL: {detail}"
    else:
        orig = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
        detail = lines[0] if lines else type(orig).__name__
        text = f"database {redact_url(url)} (INTAKE_DATABASE_URL): {detail}"
        if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
            text += " (run `intake db upgrade`)"
    for secret in database_passwords(url):
        text = text.replace(secret, "***")
    return text


def _services() -> Any:
    from intake.bootstrap import open_services

    try:
        return open_services(_settings())
    except IntakeError as exc:
        _fail(EXIT_CONFIG, str(exc))


def _guarded_services() -> Any:
    """`_services` for the commands that read mail (poll, import, reprocess, run), with the
    last-resort memory ceiling `worker.memory_limit_mb` set first (intake/memguard.py)."""
    from intake import memguard

    memguard.apply(_settings().worker.memory_limit_mb)
    return _services()


def _store() -> Any:
    """The database and clock only (`intake.bootstrap.open_store`): for commands that read or
    hand-edit the data, which then start without the form reader, pipeline and mail code."""
    from intake.bootstrap import open_store

    try:
        return open_store(_settings())
    except IntakeError as exc:
        _fail(EXIT_CONFIG, str(exc))


def _progress() -> tuple[Progress, Any]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return progress, update


def _print_cycle(report: Any, before_error: bool = False) -> None:
    """The cycle's counts on stdout; `before_error`: the error that follows says why it stopped
    (and why the replies wait), so the send errors are not repeated."""
    from intake.display import safe_text

    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "none"
    console.print(
        f"{'before the error: ' if before_error else ''}"
        f"fetched {report.fetched} (new {report.new}), processed {report.processed} "
        f"\\[{safe_text(outcomes)}], failed {report.failed}, filed {report.marked}, "
        f"replies sent {report.sent}",
        highlight=False,
        soft_wrap=True,  # one line, whatever the width: scripts read it
    )
    if before_error:
        return
    for error in report.send_errors[:5]:
        err.print(f"[yellow]reply not sent yet:[/] {safe_text(error)}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the database schema (the only way tables are made)."""
    from intake.settings import redact_url
    from storage.session import migrate

    settings = _settings()
    url = settings.effective_database_url
    try:
        migrate(url, revision)
    except Exception as exc:  # noqa: BLE001 - shown without the URL's password
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(exc, SQLAlchemyError):
            _fail(EXIT_CONFIG, f"migration of {redact_url(url)} failed: {type(exc).__name__}: {exc}")
        problem = database_problem(exc, url)
        _, found, detail = problem.partition("(INTAKE_DATABASE_URL): ")
        _fail(EXIT_CONFIG, f"migration of {redact_url(url)} failed: {detail}" if found else problem)
    console.print(f"database {redact_url(url)} is at {revision}", highlight=False, markup=False)


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and exit.")] = False,
) -> None:
    """Fetch new mail, process it, file it on the server and send the replies: one cycle.

    Without --once the cycle repeats every 2 minutes until interrupted (`intake run`, with IDLE
    and the scheduler, is the long-running worker). Each cycle holds the worker lease: while
    another worker holds it, this waits up to `worker.lease_wait` seconds, then exits with 4.
    """
    import time

    from rich.markup import escape

    from intake.cycle import poll_with_lease

    svc = _guarded_services()
    for handler in logging.getLogger().handlers:
        handler.addFilter(_said_by_poll)
    while True:
        progress, update = _progress()
        try:
            with progress:
                report = poll_with_lease(svc, update)
        except MailboxUnavailable as exc:
            done: Any = exc.cycle_report  # mail it took in and answered stays so: say it
            if done is not None and (done.fetched or done.processed or done.marked or done.sent):
                _print_cycle(done, before_error=True)
            _fail(EXIT_MAILBOX, f"mailbox: {exc}")
        except LeaseBusy as exc:
            _fail(EXIT_LEASE, f"{exc}; `intake status` shows it (it polls already)")
        _print_cycle(report, before_error=report.smtp_unusable is not None)
        for error in report.file_errors[:1]:  # an outcome, not a failure: the next cycle files
            err.print(f"[yellow]not filed on the server yet:[/] {escape(error)}", highlight=False)
        if report.smtp_unusable is not None:
            _fail(EXIT_MAILBOX, f"{report.smtp_unusable}; the replies wait in the outbox")
        if once:
            return
        time.sleep(120)


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(help=".eml files, mbox files (Gmail Takeout) or Maildir folders."),
    ],
) -> None:
    """Take mail from files through the same path as the mailbox (offline use, recovery)."""
    from intake.pipeline import import_files

    for path in paths:
        if not path.exists():
            _fail(2, f"no such file or folder: {path}")
    svc = _guarded_services()
    progress, update = _progress()
    with progress:
        report = import_files(svc, _read_mail_files(paths), update)
    _print_cycle(report)


def _read_mail_files(paths: list[Path]) -> Iterator[tuple[bytes, datetime | None]]:
    for path in paths:
        if path.is_dir() and (path / "cur").is_dir():
            box: Any = stdlib_mailbox.Maildir(path, factory=None, create=False)
            for key in box.iterkeys():
                yield box.get_bytes(key), None
        elif path.is_dir():
            for child in sorted(path.rglob("*.eml")):
                yield child.read_bytes(), None
        elif _is_mbox(path):
            for raw in _mbox_messages(path):
                yield raw, None
        else:
            yield path.read_bytes(), None


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def _mbox_messages(path: Path) -> Iterator[bytes]:
    box = stdlib_mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()


@app.command()
def reprocess(
    message: Annotated[
        list[int] | None, typer.Option("--message", "-m", help="Message row id (repeatable).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every message in the archive.")] = False,
) -> None:
    """Run parsing, reading and deciding again from the archive (no mailbox needed)."""
    from intake.pipeline import reprocess as run_reprocess

    if not message and not all_:
        _fail(2, "name messages with --message ID, or use --all")
    svc = _guarded_services()
    report = run_reprocess(svc, list(message) if message else None)
    _print_cycle(report)


@app.command()
def report(
    format_: Annotated[
        str, typer.Option("--format", "-f", help="json, table, csv or xlsx (needs --output).")
    ] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Who has sent a usable form, who must correct, who is missing; and what waits for review."""
    from intake import reports
    from storage.session import session_scope

    if format_ not in {"json", "table", "csv", "xlsx"}:
        _fail(2, f"unknown format {format_!r}: use json, table, csv or xlsx")
    if format_ == "xlsx" and output is None:
        _fail(2, "--format xlsx needs --output PATH")
    svc = _store()
    with session_scope(svc.factory) as session:
        data = reports.build_report(session, svc.settings.deadline, svc.clock.now())
    if format_ == "xlsx":
        from intake.report_xlsx import write_report_xlsx

        assert output is not None
        output.parent.mkdir(parents=True, exist_ok=True)
        write_report_xlsx(data, output)
        err.print(f"written to {output}", highlight=False, markup=False)
        return
    if format_ == "json":
        text = reports.to_json(data)
    elif format_ == "csv":
        text = reports.to_csv(data)
    else:
        from intake.report_table import render_table

        if output is None:
            render_table(console, data)
            return
        buffer = Console(record=True, width=140, file=open(_devnull(), "w"))  # noqa: SIM115
        render_table(buffer, data)
        text = buffer.export_text()
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        err.print(f"written to {output}", highlight=False, markup=False)


def _devnull() -> str:
    import os

    return os.devnull


@app.command()
def template(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the .xlsx.")
    ] = Path("form.xlsx"),
) -> None:
    """Write the blank form that provinces fill in, from form.toml in the configuration folder."""
    from intake.forms import load_spec, write_template

    settings = _settings()
    spec = load_spec(settings.config_dir / "form.toml")
    write_template(spec, output)
    console.print(f"blank form written to {output}", highlight=False, markup=False)


@app.command("config")
def show_config() -> None:
    """Show the settings in force, secrets masked, and the configuration folder in force."""
    import json

    console.print_json(json.dumps(_settings().describe(), ensure_ascii=False, default=str))


def run() -> None:  # pragma: no cover - console-script convenience
    try:
        app()
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))


def _register_command_groups() -> None:
    from intake.commands import register_all

    register_all(app)


_register_command_groups()
