"""The README documents the real command and settings (in the style of sqlite-utils'
test_docs.py): every command and subcommand has help text and is in the README's command list,
every option of every command has help text and is named there, every setting (walked from the
`Settings` model, `INTAKE_` and `__` between nested names) is in the settings table, and no help
shows a flag as if it took a value (`<bool>`). A new command, option or setting that nobody
documented fails here, not in a coordinator's hands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from intake import cli
from intake.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        if not sub.hidden:
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(cli.app)))
OPTIONS = [
    (path, param)
    for path, command in COMMANDS
    for param in command.params
    if param.param_type_name == "option" and not param.hidden
]


def _id(path: tuple[str, ...]) -> str:
    return " ".join(("intake", *path))


def _readme_lines_of(path: tuple[str, ...]) -> list[str]:
    """The README lines that speak of this command: they name `intake PATH…`, or, for a
    subcommand, name its group and the subcommand after a backtick or a `\\|` (the command list
    writes `intake review assign …` · `add-address …` · `accept\\|reject …` on one row)."""
    if not path:
        return [line for line in README.splitlines() if "`intake " in line]
    whole = re.compile(rf"`{re.escape(_id(path))}(?![-\w])")
    lines = [line for line in README.splitlines() if whole.search(line)]
    if len(path) > 1:
        group = re.compile(rf"`{re.escape(_id(path[:-1]))} ")
        sub = re.compile(rf"(?:`|\\\|){re.escape(path[-1])}(?![-\w])")
        lines += [line for line in README.splitlines() if group.search(line) and sub.search(line)]
    return lines


@pytest.mark.parametrize("path,command", COMMANDS, ids=[_id(p) for p, _ in COMMANDS])
def test_command_has_help_and_is_in_the_readme(path: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), f"{_id(path)} has no help text"
    if path:
        assert _readme_lines_of(path), f"{_id(path)} is not in README.md"


@pytest.mark.parametrize("path,option", OPTIONS, ids=[f"{_id(p)} {o.opts[0]}" for p, o in OPTIONS])
def test_option_has_help_and_is_in_the_readme(path: tuple[str, ...], option: Any) -> None:
    name = next(o for o in option.opts if o.startswith("--"))
    assert (option.help or "").strip(), f"{_id(path)} {name} has no help text"
    lines = _readme_lines_of(path)
    assert any(re.search(rf"{re.escape(name)}(?![-\w])", line) for line in lines), (
        f"{_id(path)} {name} is not in README.md next to its command"
    )


@pytest.mark.parametrize("path,command", COMMANDS, ids=[_id(p) for p, _ in COMMANDS])
def test_help_shows_flags_as_flags(path: tuple[str, ...], command: Any) -> None:
    cli.state.settings, cli.state.config = None, None
    result = CliRunner().invoke(cli.app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output


def _settings(model: type[BaseModel], prefix: str = "INTAKE_") -> Iterator[str]:
    for name, field in model.model_fields.items():
        if field.exclude:  # set by the program (toml_file), not by users
            continue
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _settings(kind, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}"


def _settings_table() -> set[str]:
    """The variables the README's settings table names. A row's first cell may continue a name
    with `__FIELD` (`INTAKE_IMAP__HOST`, `__PORT`): the continuation takes the group of the
    full name before it."""
    start = README.index("| variable | default |")
    named: set[str] = set()
    for row in README[start:].splitlines()[2:]:
        if not row.startswith("|"):
            break
        group = ""
        for token in re.findall(r"`(INTAKE_[A-Z0-9_]+|__[A-Z0-9_]+)`", row.split(" | ")[0]):
            if token.startswith("INTAKE_"):
                named.add(token)
                group = token[: token.index("__") + 2] if "__" in token else ""
            elif group:
                named.add(group + token[2:])
    return named


SETTINGS = sorted(_settings(Settings))


@pytest.mark.parametrize("variable", SETTINGS)
def test_setting_is_in_the_readme_settings_table(variable: str) -> None:
    assert variable in _settings_table()


def test_settings_table_is_parsed_and_names_only_real_settings() -> None:
    """The walk and the parser agree on what they see: nested groups and `__` continuations are
    read (e.g. `__PORT` after `INTAKE_IMAP__HOST`), and the table names no setting that is gone
    (INTAKE_CONFIG names the settings file, it is not a field)."""
    table = _settings_table()
    assert {"INTAKE_IMAP__PORT", "INTAKE_IMAP__SENT_FOLDER", "INTAKE_WORKER__LOG_FORMAT"} <= table
    assert len(SETTINGS) > 60
    assert table - set(SETTINGS) == {"INTAKE_CONFIG"}
