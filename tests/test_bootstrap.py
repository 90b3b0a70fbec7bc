"""How commands start (intake/bootstrap.py, storage/session.py): the schema check without Alembic,
the roster sync skipped while the roster files are unchanged, and read-only commands that load
neither the form reader nor the pipeline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from intake.bootstrap import Store, ensure_roster, open_store
from intake.errors import ConfigError
from intake.settings import Settings, load_settings
from storage.models import Sender
from storage.session import (
    alembic_config,
    head_revision,
    heads_in,
    make_engine,
    migrate,
    schema_revision,
    session_scope,
)
from tests.intake_env import CONFIG_DIR, REPO, settings_env


def _settings(tmp: Path, url: str, config_dir: Path = CONFIG_DIR) -> Settings:
    return load_settings(
        tmp / "absent.toml", database_url=url, data_dir=tmp / "var", config_dir=config_dir
    )


@pytest.fixture
def stores() -> Iterator[list[Store]]:
    """Stores opened by a test, disposed at its end (PostgreSQL drops a database only unused)."""
    opened: list[Store] = []
    yield opened
    for store in opened:
        store.factory.kw["bind"].dispose()


def test_the_scanned_head_is_alembics_own_head() -> None:
    from alembic.script import ScriptDirectory

    expected = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head_revision() == expected


def test_heads_follow_parents_merges_and_report_a_branch(tmp_path: Path) -> None:
    def write(name: str, revision: str, down: str) -> None:
        (tmp_path / f"{name}.py").write_text(
            f'"""{name}\n\nRevision ID: {revision}\nRevises: x\n"""\n'
            f'revision: str = "{revision}"\ndown_revision: str | None = {down}\n',
            encoding="utf-8",
        )

    write("0001_a", "0001", "None")
    write("0002_b", "0002", "'0001'")
    assert heads_in(tmp_path) == ["0002"]
    write("0003_c", "0003", '"0002"')
    write("0004_d", "0004", '"0002"')
    assert heads_in(tmp_path) == ["0003", "0004"]  # two heads: shown as "0003+0004"
    write("0005_merge", "0005", '("0003", "0004")')
    assert heads_in(tmp_path) == ["0005"]


def test_a_database_behind_the_code_or_never_migrated_is_refused(
    database_url: str, tmp_path: Path, stores: list[Store]
) -> None:
    settings = _settings(tmp_path, database_url)
    stores.append(open_store(settings))
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
        with pytest.raises(ConfigError, match=f"at schema 0012, not {head_revision()}: run"):
            open_store(settings)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
        assert schema_revision(engine) is None
        assert schema_revision(engine) is None  # the failed SELECT left the pool usable
        with pytest.raises(ConfigError, match="at schema none, not .*`intake db upgrade`"):
            open_store(settings)
    finally:
        engine.dispose()


def test_the_roster_sync_runs_only_when_the_roster_files_change(
    database_url: str, tmp_path: Path, stores: list[Store]
) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    settings = _settings(tmp_path, database_url, config)
    store = open_store(settings)  # the first start syncs
    stores.append(store)
    with session_scope(store.factory) as session:
        chiang_mai = session.get(Sender, "TH-50")
        assert chiang_mai is not None and chiang_mai.name_en == "Chiang Mai"
        chiang_mai.name_en = "changed by hand"  # a sync would put it back

    assert ensure_roster(store.factory, settings) is False  # same files: skipped
    stores.append(open_store(settings))
    with session_scope(store.factory) as session:
        assert session.get(Sender, "TH-50").name_en == "changed by hand"  # type: ignore[union-attr]

    provinces = config / "senders" / "provinces.csv"
    provinces.write_text(
        provinces.read_text(encoding="utf-8").replace(",Lamphun,", ",Lamphun Province,"),
        encoding="utf-8",
    )
    assert ensure_roster(store.factory, settings) is True
    assert ensure_roster(store.factory, settings) is False
    with session_scope(store.factory) as session:
        assert session.get(Sender, "TH-50").name_en == "Chiang Mai"  # type: ignore[union-attr]
        assert session.get(Sender, "TH-51").name_en == "Lamphun Province"  # type: ignore[union-attr]
        assert session.get(Sender, "TH-10").expected is False  # type: ignore[union-attr]

    with_bangkok = settings.model_copy(update={"include_bangkok": True})
    assert ensure_roster(store.factory, with_bangkok) is True
    with session_scope(store.factory) as session:
        assert session.get(Sender, "TH-10").expected is True  # type: ignore[union-attr]


HEAVY_PACKAGES = {"openpyxl", "numpy", "alembic", "mako", "imapclient", "jinja2", "docx", "lxml"}
HEAVY_MODULES = {"intake.forms", "intake.pipeline", "intake.record", "intake.replies",
                 "intake.mailbox", "intake.outbox", "intake.roster"}  # fmt: skip
READ_ONLY_COMMANDS = """
import sys
from intake import cli

codes = [cli.app(args, standalone_mode=False)
         for args in (["report", "--format", "json"], ["review"], ["status", "--json"])]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY_PACKAGES or m in HEAVY_MODULES)
print("EXIT", codes, "LOADED", heavy, file=sys.stderr)
"""


def test_read_only_commands_load_no_form_reader_pipeline_mail_code_or_alembic(
    tmp_path: Path,
) -> None:
    """A fresh interpreter (this one has loaded everything): report, review list and status,
    called through the real CLI, on a migrated database whose roster is already synced."""
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    open_store(_settings(tmp_path, url)).factory.kw["bind"].dispose()  # roster synced beforehand
    env = settings_env(tmp_path, url)
    script = f"HEAVY_PACKAGES = {HEAVY_PACKAGES!r}\nHEAVY_MODULES = {HEAVY_MODULES!r}\n"
    proc = subprocess.run(
        [sys.executable, "-c", script + READ_ONLY_COMMANDS],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("{\n"), proc.stdout[:300]  # the report's JSON came first
    # status exits 5 (no worker has polled yet): still a read-only command that ran
    assert "EXIT [None, None, 5] LOADED []" in proc.stderr, proc.stderr
