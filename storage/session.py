"""Engines and sessions for SQLite (the default) and PostgreSQL; nothing happens at import.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with BEGIN IMMEDIATE:
the write lock is taken up front, so two workers serialise instead of failing half way with a
stale snapshot. PostgreSQL uses READ COMMITTED; the pipeline's guarded updates (`... WHERE
state = 'received'`) make concurrent workers safe there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker


def _alembic_dir() -> Path:
    """The migrations: package data in a wheel (`storage/_alembic`, mapped from the top-level
    `alembic/` by pyproject.toml), the checkout's `alembic/` otherwise (editable install, tests,
    the `alembic` command with alembic.ini)."""
    from importlib.resources import files

    packaged = files("storage") / "_alembic"
    if packaged.is_dir() and isinstance(packaged, Path):
        return packaged
    return Path(__file__).resolve().parent.parent / "alembic"


ALEMBIC_DIR = _alembic_dir()


def parse_url(url: str) -> URL:
    """`make_url`, except that an unencoded "@" in the password stays in the password.

    SQLAlchemy ends the password at the first "@", so `u:p@ss@host/db` would connect to the host
    `ss@host` (and name it, half the password, in the error). A host never holds "@": what
    comes before its last "@" belongs to the password."""
    parsed = make_url(url)
    host = parsed.host or ""
    if "@" in host and parsed.password is not None:
        extra, _, real_host = host.rpartition("@")
        parsed = parsed.set(password=f"{parsed.password}@{extra}", host=real_host)
    return parsed


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
    else:
        engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
    event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
    return engine


def _without_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool
) -> tuple[str, Any]:
    """Every text value bound to any statement (ORM, Core `insert(...)`, `text()`) loses its NUL
    characters, here and only here: PostgreSQL refuses NUL in text (a DataError that would fail
    the message after every retry), and SQLite keeps the same values so both stores agree. Mail
    is hostile: an encoded NUL in a subject, a file name or a form cell must still be recorded.
    A lone surrogate (undecodable bytes carried through) becomes U+FFFD for the same reason:
    neither driver can encode it. Bytes (LargeBinary columns) are left alone."""
    return statement, storable(parameters)


def storable(parameters: Any) -> Any:
    """The parameters with NUL removed and lone surrogates replaced (see `_without_nul`); the
    same object when nothing needs it. Also for paths that bypass the cursor, such as COPY."""
    return _storable(parameters) if _unstorable(parameters) else parameters


_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return _BAD_TEXT.search(value) is not None
    if isinstance(value, dict):
        return any(_unstorable(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_unstorable(v) for v in value)
    return False


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_storable(v) for v in value)
    return value


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN IMMEDIATE below is the only BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.attributes["database_url"] = url
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision` with Alembic: the only way tables are created."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def schema_revision(engine: Engine) -> str | None:
    """What `alembic_version` holds, read with one SELECT rather than Alembic's
    MigrationContext: every command checks this at start, and importing Alembic costs ~45 ms.
    None when the table is missing or empty; several rows (a branched history) are joined with
    "+" in order, as `head_revision` joins several heads."""
    with engine.connect() as conn:  # a server that cannot be reached raises here, as before
        try:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError:  # no such table: never migrated
            return None
    return "+".join(sorted(rows)) or None


_REVISION = re.compile(r"^revision\b[^=\n]*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The head of alembic/versions, found by reading each file's `revision` and
    `down_revision` assignments (`heads_in`) instead of building Alembic's ScriptDirectory,
    which imports Alembic and every migration module: ~45 ms at every command start.

    tests/test_bootstrap.py checks that this equals Alembic's own answer. Several heads (two
    migrations written against the same parent) are joined with "+": only a database migrated
    to exactly those heads matches, any other is refused with both names shown.
    """
    return "+".join(heads_in(ALEMBIC_DIR / "versions")) or None


def heads_in(versions: Path) -> list[str]:
    """The revisions in `versions` that no other revision names as its parent, sorted."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        down = _DOWN_REVISION.search(source)
        if down is not None:
            parents.update(_QUOTED.findall(down.group(1)))
    return sorted(revisions - parents)
