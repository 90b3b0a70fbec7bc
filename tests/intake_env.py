"""Run the real `intake` command against the test servers: environment and helpers.

The settings reach the command exactly as an operator's would: INTAKE_* environment variables and a
TOML file named by INTAKE_CONFIG (which points config_dir at the repository's own config/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake.settings import ImapSettings, SmtpSettings, load_settings

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "config"


def services(tmp_path: Path, database_url: str) -> Any:
    """In-process `pipeline.Services` on the repository's configuration, with the campaign's
    frozen "now" (2024-01-20 10:00 Bangkok), for tests that drive the pipeline directly."""
    from datetime import datetime

    from intake.bootstrap import open_services

    settings = load_settings(
        tmp_path / "absent.toml",
        config_dir=CONFIG_DIR,
        data_dir=tmp_path / "var",
        database_url=database_url,
        now=datetime.fromisoformat("2024-01-20T10:00:00+07:00"),
    )
    return open_services(settings)


def settings_env(
    tmp: Path,
    database_url: str,
    imap: ImapSettings | None = None,
    smtp: SmtpSettings | None = None,
    now: str | None = "2024-01-20T10:00:00+07:00",
) -> dict[str, str]:
    toml = tmp / "intake.toml"
    toml.write_text(f'config_dir = "{CONFIG_DIR}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(
        {
            "INTAKE_CONFIG": str(toml),
            "INTAKE_DATA_DIR": str(tmp / "var"),
            "INTAKE_DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if now:
        env["INTAKE_NOW"] = now
    if imap is not None:
        env.update(
            {
                "INTAKE_IMAP__HOST": imap.host,
                "INTAKE_IMAP__PORT": str(imap.effective_port()),
                "INTAKE_IMAP__USERNAME": imap.username,
                "INTAKE_IMAP__PASSWORD": imap.password.get_secret_value(),
                "INTAKE_IMAP__SECURITY": imap.security,
                "INTAKE_IMAP__FOLDER": imap.folder,
                "INTAKE_IMAP__MARK": imap.mark,
                "INTAKE_IMAP__TIMEOUT": "10",
            }
        )
    if smtp is not None:
        env.update(
            {
                "INTAKE_SMTP__HOST": smtp.host,
                "INTAKE_SMTP__PORT": str(smtp.effective_port()),
                "INTAKE_SMTP__SECURITY": smtp.security,
                "INTAKE_SMTP__USERNAME": smtp.username,
                "INTAKE_SMTP__FROM_ADDRESS": smtp.from_address,
                "INTAKE_SMTP__TIMEOUT": "10",
            }
        )
    return env


@dataclass
class IntakeRunner:
    env: dict[str, str]
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def __call__(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "intake", *args],
            env={**self.env, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.runs.append(proc)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"intake {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "intake", *args],
            env={**self.env, **env},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def report(self) -> dict[str, Any]:
        return json.loads(self("report", "--format", "json").stdout)

    def settings(self) -> Any:
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(self.env)
            return load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
