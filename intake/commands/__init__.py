"""Command groups kept out of `intake/cli.py`, each in its own module with a `register(app)`.

`cli.py` holds the spine's commands (db, poll, import, reprocess, report, template, config); the
worker, the coordinator's review actions, reminders, exports and the web page register here.
"""

from __future__ import annotations

import typer

from intake.commands import auth, export, init_config, reminders, review, roster, web, worker

MODULES = (worker, reminders, review, export, web, init_config, auth, roster)


def register_all(app: typer.Typer) -> None:
    for module in MODULES:
        module.register(app)
