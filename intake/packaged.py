"""Where the built-in configuration is: package data in a wheel, `config/` in a checkout.

The editable sources stay at the repository's top (`config/`, `alembic/`); the wheel carries
copies as package data (`intake/_defaults/`, `storage/_alembic/`: the `sources` mapping in
pyproject.toml), so an installed `intake` runs from any directory. Both are read through
`importlib.resources`; a checkout (editable install, `PYTHONPATH`) has no `_defaults` folder and
falls back to the top-level one. The files are used in place, as paths (Jinja2's loader, the CSV
reader and Alembic all want real files): a wheel is always installed unpacked.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from intake.errors import ConfigError

CHECKOUT = Path(__file__).resolve().parent.parent


def _on_disk(package: str, packaged: str, checkout: str) -> Path:
    resource = files(package) / packaged
    if resource.is_dir():
        if not isinstance(resource, Path):  # a zip import: nothing here is a real file
            raise ConfigError(f"{package} must be installed unpacked (found {resource})")
        return resource
    return CHECKOUT / checkout


def default_config_dir() -> Path:
    """The built-in configuration: roster (`senders/`), form description (`form.toml`), mail
    templates (`templates/`) and the settings file (`intake.toml`)."""
    return _on_disk("intake", "_defaults", "config")


def is_default_config(path: Path) -> bool:
    """True when `path` is the built-in configuration (what `intake config` says of it)."""
    try:
        return path.resolve() == default_config_dir().resolve()
    except OSError:
        return False


# Put at the top of the settings file `intake init` writes (before the first [table]).
_INIT_HEADER = """\
# Written by `intake init`: an editable copy of intake's built-in configuration. Beside this file:
#   senders/provinces.csv, senders/clusters.csv   the expected senders (reference data)
#   senders/addresses.csv                         their known addresses: sender_id,address
#   form.toml                                     the form description (labels, rules, messages)
#   templates/*.j2                                the Thai mail (plain text and HTML)
# Use it with   intake --config {settings} COMMAND
#          or   INTAKE_CONFIG={settings} intake COMMAND
# (run from the folder that holds config/intake.toml, intake finds it without either).

# The folder of the roster, form description and mail templates. A relative path is read from
# this file's folder, so "." keeps working when the folder is moved or mounted elsewhere.
config_dir = "."

"""


def write_config_copy(target: Path, force: bool = False) -> list[Path]:
    """Copy the built-in configuration into `target` for a coordinator to adapt (`intake
    init`); the settings file gets a header saying what is where and `config_dir = "."`.

    Nothing is written when a file exists and `force` is not set: ConfigError lists them, so a
    coordinator's edited roster is never overwritten by a second `init`. Returns the files
    written."""
    source = default_config_dir()
    files_ = sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    plan = [(p, target / p.relative_to(source)) for p in files_]
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} exists and is not a folder")
    existing = [dest for _, dest in plan if dest.exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing[:5])
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise ConfigError(
            f"not overwriting {len(existing)} existing file(s): {shown}{more}; "
            "use --force to replace them"
        )
    for src, dest in plan:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.name == "intake.toml" and src.parent == source:
            header = _INIT_HEADER.format(settings=dest)
            dest.write_text(header + src.read_text(encoding="utf-8"), encoding="utf-8")
        else:
            dest.write_bytes(src.read_bytes())
    return [dest for _, dest in plan]
