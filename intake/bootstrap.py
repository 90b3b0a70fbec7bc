"""Build the services a command needs from the settings: the edge where config files are read."""

from __future__ import annotations

from intake.archive import Archive
from intake.clock import Clock
from intake.errors import ConfigError
from intake.forms import load_spec
from intake.pipeline import Services
from intake.replies import Renderer
from intake.roster import Roster, load_roster
from intake.settings import Settings, redact_url
from storage import queries
from storage.session import (
    ALEMBIC_DIR,
    current_revision,
    make_engine,
    session_factory,
    session_scope,
)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    from storage.session import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def open_services(settings: Settings, check_schema: bool = True) -> Services:
    url = settings.effective_database_url
    if check_schema:
        current = current_revision(url)
        if current != head_revision():
            raise ConfigError(
                f"the database {redact_url(url)} is at schema {current or 'none'}, not "
                f"{head_revision()}: run `intake db upgrade` first"
            )
    engine = make_engine(url)
    factory = session_factory(engine)
    roster = load_roster(settings.config_dir / "senders", settings.include_bangkok)
    with session_scope(factory) as session:
        sync_roster(session, roster)
    spec_path = settings.config_dir / "form.toml"
    if not spec_path.exists():
        raise ConfigError(f"form description not found: {spec_path}")
    return Services(
        settings=settings,
        factory=factory,
        archive=Archive(settings.archive_dir),
        roster=roster,
        spec=load_spec(spec_path),
        renderer=Renderer(settings.config_dir / "templates"),
        clock=Clock(settings.now),
    )


def sync_roster(session: object, roster: Roster) -> None:
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
    queries.sync_senders(session, rows)  # type: ignore[arg-type]


__all__ = ["ALEMBIC_DIR", "open_services", "sync_roster"]
