"""Command: `intake init [DIR]`, an editable copy of the built-in configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `intake` app."""
    app.command("init")(init)


def init(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Folder to write. The default, ./config, is found without any setting when "
            "intake runs from this directory."
        ),
    ] = Path("config"),
    force: Annotated[
        bool, typer.Option("--force", help="Replace files that already exist.")
    ] = False,
) -> None:
    """Write an editable copy of the configuration: roster, addresses, form description, mail
    templates and a commented intake.toml. Refuses to overwrite existing files (exit 1)."""
    from intake import cli
    from intake.errors import ConfigError
    from intake.packaged import write_config_copy

    try:
        written = write_config_copy(directory, force=force)
    except ConfigError as exc:
        cli._fail(cli.EXIT_CONFIG, str(exc))
    settings = directory / "intake.toml"
    for line in (
        f"wrote {len(written)} files to {directory}",
        f"next: add the senders' known addresses to {directory / 'senders' / 'addresses.csv'}",
        f"      and check {settings}; `intake --config {settings} config` shows it in force",
    ):
        cli.console.print(line, highlight=False, markup=False, soft_wrap=True)
