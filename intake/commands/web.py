"""Commands: `intake web`, the coordinator's page (thin over intake/web.py)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `intake` app."""
    app.command("web")(web)


def web(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default: web.host, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: web.port).")] = None,
) -> None:
    """Serve the status page, sender histories and the review queue in a browser.

    Beyond 127.0.0.1 it needs `web.token` (INTAKE_WEB__TOKEN) and refuses to start without one.
    """
    from intake import cli
    from intake.errors import ConfigError
    from intake.web import check_bind, serve

    settings = cli._settings()
    host = host or settings.web.host
    try:
        check_bind(host, settings.web.token.get_secret_value())
    except ConfigError as exc:
        cli._fail(cli.EXIT_CONFIG, str(exc))
    svc = cli._services()
    cli.err.print(
        f"serving on http://{host}:{port or settings.web.port}/", highlight=False, markup=False
    )
    serve(svc, host, port or settings.web.port)
