"""Deployment files, checked offline (no Docker engine here): the compose file against the
Compose specification, and what the service relies on in it, the Dockerfile, .env.example and
the Makefile's demo target."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from intake.settings import Settings
from tests.intake_env import REPO


def _compose() -> dict:  # type: ignore[type-arg]
    return YAML(typ="safe").load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_file_is_valid_against_the_compose_specification():
    tool = shutil.which("check-jsonschema") or str(
        Path(sys.executable).with_name("check-jsonschema")
    )
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_migrations_first_and_checks_health():
    services = _compose()["services"]
    assert {"db", "migrate", "worker", "web", "devmail"} <= set(services)
    assert services["db"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "pg_isready" in services["db"]["healthcheck"]["test"][1]
    assert any(v.startswith("pgdata:") for v in services["db"]["volumes"])
    assert services["migrate"]["command"] == ["db", "upgrade"]
    worker = services["worker"]
    assert worker["command"] == ["run"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"
    assert worker["healthcheck"]["test"] == ["CMD", "intake", "status", "--file"]
    assert "intake-archive:/data/archive" in worker["volumes"]
    assert worker["env_file"] == ".env"
    assert services["web"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["devmail"]["profiles"] == ["dev"]
    assert services["devmail"]["entrypoint"] == ["python", "-m", "intake.devmail"]
    assert set(_compose()["volumes"]) == {"pgdata", "intake-data", "intake-archive"}


def test_dockerfile_is_slim_non_root_and_runs_intake():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert 'ENTRYPOINT ["intake"]' in text
    for path in ("intake", "storage", "alembic", "config"):
        assert f"COPY {path} ./{path}" in text


def test_env_example_names_only_real_settings_and_every_secret():
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M)
    assert {"POSTGRES_PASSWORD", "INTAKE_IMAP__PASSWORD", "INTAKE_SMTP__PASSWORD"} <= set(names)
    for name in names:
        if not name.startswith("INTAKE_"):
            continue
        model: Any = Settings
        for part in name.removeprefix("INTAKE_").lower().split("__"):
            assert part in model.model_fields, f"{name}: no setting {part!r}"
            annotation = model.model_fields[part].annotation
            model = annotation if isinstance(annotation, type) else object
    assert not (REPO / ".env").exists() or ".env" in (REPO / ".gitignore").read_text()


def test_make_demo_installs_the_package_then_runs_the_demo(tmp_path):
    """In a venv it makes with `python3 -m venv` (Debian's own Python refuses `pip install`
    outside one), never into the interpreter's own site-packages."""
    result = subprocess.run(
        ["make", "-n", "demo", f"VENV={tmp_path / 'venv'}"], cwd=REPO, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    venv_python = f"{tmp_path / 'venv'}/bin/python"
    assert lines[0] == f"python3 -m venv {tmp_path / 'venv'}"
    assert lines[1].startswith(f"{venv_python} -m pip install") and "-e ." in lines[1]
    assert lines[-1] == f"{venv_python} -m intake.demo"
