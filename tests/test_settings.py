"""The configuration contract: TOML file, INTAKE_ environment variables with __, env wins."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from intake.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("INTAKE_"):
            monkeypatch.delenv(key)


def test_defaults_without_a_file(tmp_path):
    s = load_settings(tmp_path / "absent.toml")
    assert s.imap.host == "imap.gmail.com" and s.imap.security == "ssl"
    assert s.imap.effective_port() == 993 and s.imap.folder == "INBOX"
    assert s.deadline == datetime.fromisoformat("2024-01-22T23:59:59+07:00")
    assert s.now is None
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("/var/intake.db")


def test_toml_then_environment_wins(tmp_path, monkeypatch):
    cfg = tmp_path / "intake.toml"
    cfg.write_text(
        'data_dir = "/srv/intake"\n[imap]\nhost = "mail.example"\nport = 1993\n'
        '[smtp]\nfrom_address = "a@example.test"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("INTAKE_IMAP__HOST", "imap.override")
    monkeypatch.setenv("INTAKE_IMAP__SECURITY", "starttls")
    monkeypatch.setenv("INTAKE_SMTP__FROM_ADDRESS", "b@example.test")
    monkeypatch.setenv("INTAKE_DATABASE_URL", "postgresql+psycopg://u:pw@db/intake")
    monkeypatch.setenv("INTAKE_NOW", "2024-01-21T09:00:00+07:00")
    s = load_settings(cfg)
    assert s.imap.host == "imap.override"  # environment beats the file
    assert s.imap.port == 1993  # the file beats the default
    assert s.imap.security == "starttls"
    assert str(s.data_dir) == "/srv/intake"
    assert s.smtp.from_address == "b@example.test"
    assert s.database_url == "postgresql+psycopg://u:pw@db/intake"
    assert s.now == datetime.fromisoformat("2024-01-21T09:00:00+07:00")


def test_intake_config_variable_names_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "other.toml"
    cfg.write_text('[imap]\nfolder = "Submissions"\n', encoding="utf-8")
    monkeypatch.setenv("INTAKE_CONFIG", str(cfg))
    s = load_settings()
    assert s.imap.folder == "Submissions"
    assert s.config_dir == tmp_path  # roster, form and templates are read beside the file


def test_secrets_are_masked_everywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("INTAKE_IMAP__PASSWORD", "app-password-123")
    monkeypatch.setenv("INTAKE_SMTP__PASSWORD", "app-password-123")
    monkeypatch.setenv("INTAKE_DATABASE_URL", "postgresql+psycopg://u:dbsecret@db/intake")
    s = load_settings(tmp_path / "absent.toml")
    shown = repr(s) + str(s.describe())
    assert "app-password-123" not in shown
    assert "dbsecret" not in shown
    assert s.imap.password.get_secret_value() == "app-password-123"


def test_deadline_without_offset_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("INTAKE_DEADLINE", "2024-01-22T23:59:59")
    with pytest.raises(ValueError, match="UTC offset"):
        load_settings(tmp_path / "absent.toml")


def test_shipped_example_targets_gmail():
    from pathlib import Path

    s = load_settings(Path(__file__).resolve().parent.parent / "config" / "intake.toml")
    assert (s.imap.host, s.imap.security, s.imap.effective_port()) == ("imap.gmail.com", "ssl", 993)
    assert s.imap.username.lower() == "jpp.moi9999@gmail.com"
    assert s.imap.password.get_secret_value() == ""  # the app password comes from the environment


PASSWORDS = ["SEKa@SEKb", "SEKa@SEKb@SEKc", "SEKa:SEKb", "SEKa/SEKb", "SEKa%SEKb", "SEKa#SEKb",
             "SEK@a:/%#SEKb"]  # fmt: skip


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_database_password_is_masked_whole_whatever_it_holds(
    password: str, tmp_path: Path
) -> None:
    """Written into the URL as an operator would, unencoded: `intake config` and the error of
    `intake db upgrade` (a closed port) show none of it, and the log redaction knows it whole."""
    from typer.testing import CliRunner

    from intake import cli
    from intake.logs import settings_secrets
    from intake.settings import redact_url

    url = f"postgresql+psycopg://intake:{password}@127.0.0.1:1/intake"
    assert redact_url(url) == "postgresql+psycopg://intake:***@127.0.0.1:1/intake"
    (tmp_path / "empty.toml").write_text("", encoding="utf-8")
    env = {"INTAKE_DATABASE_URL": url, "INTAKE_CONFIG": str(tmp_path / "empty.toml"),
           "COLUMNS": "200"}  # fmt: skip
    shown = []
    for args, code in ((["config"], 0), (["db", "upgrade"], cli.EXIT_CONFIG)):
        cli.state.settings, cli.state.config = None, None
        result = CliRunner().invoke(cli.app, args, env=env)
        assert result.exit_code == code, (args, result.output)
        shown.append(result.output)
    assert "intake:***@127.0.0.1:1/intake" in shown[0]
    assert "migration of postgresql+psycopg://intake:***@127.0.0.1:1/intake failed" in shown[1]
    assert "127.0.0.1" in shown[1] and "SEK" not in "".join(shown)  # the right host was tried
    settings = load_settings(tmp_path / "absent.toml", database_url=url)
    assert password in settings_secrets(settings)
    assert not [s for s in settings_secrets(settings) if s != password and s in password]
