"""Commands: `intake run` (the long-running worker) and `intake status` (is it working?).

Logic lives in intake/worker.py (lifecycle, lease, jobs) and intake/health.py (the verdict).
"""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `intake` app."""
    app.command("run")(run)
    app.command("status")(status)


def run() -> None:
    """Run the worker until SIGTERM/SIGINT: IMAP IDLE plus a poll every `worker.poll_interval`,
    replies, reminders, the daily summary, health and alerts. A second worker waits (standby) and
    takes over when the first stops. Logs: one line per event on stderr, no secrets."""
    from intake import cli, logs
    from intake.worker import Worker

    settings = cli._settings()
    logs.configure(
        verbose=logging.getLogger().level <= logging.INFO,  # `intake -v run`
        fmt=settings.worker.log_format,
        secrets=logs.settings_secrets(settings),
    )
    svc = cli._guarded_services()
    raise typer.Exit(Worker(svc).run())


def status(
    from_file: Annotated[
        bool,
        typer.Option("--file", help="Read DATA_DIR/health.json only (container health check)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Is the service working? Last successful poll, last error, outbox, review queue, lease.
    Exit 5 when no poll succeeded within `worker.alert_after`."""
    from intake import cli, health
    from intake.lease import real_now
    from storage.session import make_engine, session_factory

    settings = cli._settings()
    now = real_now()
    if from_file:
        path = health.health_path(settings)
        if not path.exists():
            cli._fail(cli.EXIT_UNHEALTHY, f"no health file at {path}: the worker has not run yet")
        result = health.with_signin(
            health.read_file(path, now, settings.worker.alert_after), settings
        )
    else:
        try:
            engine = make_engine(settings.effective_database_url)
            result = health.collect(session_factory(engine), settings, now)
        except Exception as exc:  # noqa: BLE001 - no database, or not migrated: say so
            from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

            if isinstance(exc, ArgumentError | NoSuchModuleError | OperationalError):
                cli._fail(cli.EXIT_CONFIG, cli.database_problem(exc, settings.effective_database_url))
            cli._fail(cli.EXIT_CONFIG, f"database: {type(exc).__name__} (run `intake db upgrade`?)")
    if as_json:
        cli.console.print_json(json.dumps(health.to_json(result), ensure_ascii=False))
    else:
        health.render(cli.console, result)
        if result.unverified_senders:  # not a health matter, but what stops reminders
            from intake.display import safe_text
            from intake.reminders import unreachable_text

            line = unreachable_text(settings, result.unverified_senders)
            cli.console.print(safe_text(line, multiline=True), highlight=False, soft_wrap=True)
    if not result.healthy:
        raise typer.Exit(cli.EXIT_UNHEALTHY)
