"""Shared fixtures: real Dovecot, SMTP and PostgreSQL servers (logic in tests/servers.py).

A server that cannot start FAILS the tests that need it (never skips): CI installs everything.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.settings import ImapSettings
from tests.servers import (
    DovecotServer,
    DovecotUser,
    PostgresServer,
    ServerUnavailable,
    SmtpServer,
)


def _started(server):  # type: ignore[no-untyped-def]
    try:
        return server.start()
    except ServerUnavailable as exc:
        pytest.fail(f"{type(server).__name__} could not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One Dovecot for the session; tests get their own user through `imap_user`."""
    try:
        server = DovecotServer()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    _started(server)
    yield server
    server.stop()


@pytest.fixture
def imap_user(dovecot: DovecotServer) -> tuple[ImapSettings, DovecotUser]:
    """A fresh user (empty mailbox) on the session Dovecot: (ImapSettings, DovecotUser)."""
    user = dovecot.user()
    return user.settings(), user


@pytest.fixture(scope="session")
def _smtp_session() -> Iterator[SmtpServer]:
    server = _started(SmtpServer())
    yield server
    server.stop()


@pytest.fixture
def smtp_server(_smtp_session: SmtpServer) -> SmtpServer:
    """The session SMTP server, emptied (messages and queued failures) for this test."""
    _smtp_session.clear()
    return _smtp_session


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (or the server in TEST_DATABASE_URL)."""
    server = _started(PostgresServer())
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test, migrated to head when storage.session.migrate exists."""
    server: PostgresServer | None = None
    name = ""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'intake.db'}"
    else:
        server = request.getfixturevalue("postgres")
        name = server.create_database()
        url = server.url(name)
    # TODO: drop the guard once storage/session.py with migrate() is settled.
    migrate = None
    if importlib.util.find_spec("storage.session") is not None:
        migrate = getattr(importlib.import_module("storage.session"), "migrate", None)
    if migrate is not None:
        migrate(url)
    yield url
    if server is not None:
        server.drop_database(name)
