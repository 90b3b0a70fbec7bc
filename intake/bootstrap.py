"""Build what a command needs from the settings: the edge where config files are read.

Two levels, so that a command pays at start only for what it uses:
- `open_store(settings)`: the database (schema checked, roster synced) and the clock. Enough for
  the commands that read or hand-edit the data (`report`, `review` and its actions). It imports
  no form reader (openpyxl, numpy), no pipeline or mail code and no Alembic: those cost ~300 ms
  of a ~0.5 s start.
- `open_services(settings)`: everything a mail cycle needs besides (form description, reply
  templates, archive, the roster in memory), for `poll`, `run`, `import`, `reprocess`.

The schema check reads `alembic_version` with one SELECT and compares it with the head found by
scanning alembic/versions (storage.session.head_revision). The roster sync is skipped when the
roster files are the ones the sender table was last synced from (`roster_fingerprint`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from intake.clock import Clock
from intake.errors import ConfigError
from intake.settings import Settings, redact_url
from storage import queries
from storage.session import (
    ALEMBIC_DIR,
    head_revision,
    make_engine,
    schema_revision,
    session_factory,
    session_scope,
)

if TYPE_CHECKING:
    from intake.pipeline import Services
    from intake.roster import Roster

ROSTER_FILES = ("clusters.csv", "provinces.csv", "addresses.csv")
FINGERPRINT_KEY = "roster_fingerprint"


@dataclass(frozen=True)
class Store:
    """The database and the clock: what a command that reads or hand-edits the data needs.
    `Services` has the same three attributes, so code written for a Store takes either."""

    settings: Settings
    factory: sessionmaker[Session]
    clock: Clock


def open_store(settings: Settings, check_schema: bool = True) -> Store:
    """Engine and sessions for the configured database, its schema checked and its sender table
    synced with the roster files."""
    engine = make_engine(settings.effective_database_url)
    if check_schema:
        _check_schema(engine, settings.effective_database_url)
    factory = session_factory(engine)
    ensure_roster(factory, settings)
    return Store(settings=settings, factory=factory, clock=Clock(settings.now))


def open_services(settings: Settings, check_schema: bool = True) -> Services:
    """Everything a mail cycle needs; imports the form reader, replies and pipeline."""
    from intake.archive import Archive
    from intake.forms import load_spec
    from intake.pipeline import Services
    from intake.replies import Renderer
    from intake.roster import load_roster

    store = open_store(settings, check_schema)
    roster = load_roster(settings.config_dir / "senders", settings.include_bangkok)
    spec_path = settings.config_dir / "form.toml"
    if not spec_path.exists():
        raise ConfigError(f"form description not found: {spec_path}")
    return Services(
        settings=settings,
        factory=store.factory,
        archive=Archive(settings.archive_dir),
        roster=roster,
        spec=load_spec(spec_path),
        renderer=Renderer(settings.config_dir / "templates"),
        clock=store.clock,
    )


def _check_schema(engine: Engine, url: str) -> None:
    current, head = schema_revision(engine), head_revision()
    if current != head:
        raise ConfigError(
            f"the database {redact_url(url)} is at schema {current or 'none'}, not "
            f"{head}: run `intake db upgrade` first"
        )


def roster_fingerprint(settings: Settings) -> str:
    """SHA-256 of everything the sender table is derived from: the roster files, whether
    Bangkok is expected, and the source of the two modules that turn the files into rows (so a
    code change that alters the rows resyncs once, with no version number to remember)."""
    digest = hashlib.sha256(f"include_bangkok={settings.include_bangkok}\n".encode())
    here = Path(__file__)
    for source in (here.with_name("roster.py"), here):
        digest.update(source.read_bytes())
    senders = settings.config_dir / "senders"
    for name in ROSTER_FILES:
        path = senders / name
        digest.update(f"\n{name}\n".encode())
        digest.update(path.read_bytes() if path.exists() else b"\0absent")
    return digest.hexdigest()


def ensure_roster(factory: sessionmaker[Session], settings: Settings) -> bool:
    """Sync the sender table with the roster files unless it was synced from these very files
    (one SELECT instead of reading the files and two tables: ~230 ms at every start with 10,000
    senders). True when it synced. The fingerprint is taken before the files are read and
    written in the sync's transaction, so a file edited meanwhile is synced at the next start."""
    fingerprint = roster_fingerprint(settings)
    with session_scope(factory) as session:
        if queries.get_meta(session, FINGERPRINT_KEY) == fingerprint:
            return False
        from intake.roster import load_roster  # only when a sync is due

        roster = load_roster(settings.config_dir / "senders", settings.include_bangkok)
        sync_roster(session, roster)
        queries.set_meta(session, FINGERPRINT_KEY, fingerprint)
    return True


def sync_roster(session: Session, roster: Roster) -> None:
    """The roster as sender rows; `sort_key` puts each region's clusters, each cluster before
    its provinces, and names in Thai dictionary order, so reports need no roster to sort."""
    rows = []
    for e in roster.entries:
        order = f"{e.region_order:02d}.{e.cluster_order:02d}.{0 if e.kind == 'cluster' else 1}."
        rows.append(
            {
                "id": e.id,
                "kind": e.kind,
                "name_th": e.name_th,
                "name_en": e.name_en,
                "region_th": e.region_th,
                "region_en": e.region_en,
                "cluster_id": e.cluster_id,
                "aliases": list(e.aliases),
                "expected": e.expected,
                "sort_key": order + e.sort_key,
                "addresses": list(e.addresses),
            }
        )
    queries.sync_senders(session, rows)


__all__ = [
    "ALEMBIC_DIR",
    "Store",
    "ensure_roster",
    "head_revision",
    "open_services",
    "open_store",
    "roster_fingerprint",
    "sync_roster",
]
