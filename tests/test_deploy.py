"""Deployment files, checked offline: the compose file against the Compose specification, and what
the service relies on in it, the Dockerfile, .env.example and the Makefile's demo target. The
stack itself is built and run for real by deploy/compose-test.sh (`make compose-test`, run by
.ci/run after this suite, as root with its own dockerd); here only what that script and
Debian 12's docker-compose 1.29 rely on in the files."""

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
    # the wheel is built in one stage and installed in the other: no source tree, no PYTHONPATH
    assert re.search(r"^RUN pip wheel --no-deps --wheel-dir /wheels \.$", text, re.M)
    assert re.search(r"^RUN pip install /wheels/\*\.whl", text, re.M)
    assert "PYTHONPATH=" not in text and "INTAKE_CONFIG=" not in text
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


def _tagged_by_compose_test() -> set[str]:
    script = (REPO / "deploy" / "compose-test.sh").read_text(encoding="utf-8")
    return set(re.findall(r"docker build .*-t (\S+)", script))


def test_compose_test_builds_every_image_the_files_name_so_nothing_is_pulled():
    """No registry is reachable: every image the Dockerfile starts from and every image a
    service runs without building it must be a local stand-in the script tags by that name."""
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M | re.I))
    bases = set(re.findall(r"^FROM (\S+)", dockerfile, re.M)) - stages
    pulled = {s["image"] for s in _compose()["services"].values() if "build" not in s}
    assert bases == {"python:3.11-slim"} and pulled == {"postgres:15"}
    assert bases | pulled <= _tagged_by_compose_test()
    # the stand-ins start only from the debootstrapped base the script imports
    for standin in (REPO / "deploy" / "standin").glob("*/Dockerfile"):
        text = standin.read_text(encoding="utf-8")
        assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE}"], standin
    script = (REPO / "deploy" / "compose-test.sh").read_text(encoding="utf-8")
    assert "docker pull" not in script and "--pull" not in script
    assert "docker import" in script and "debootstrap --variant=minbase" in script


def test_compose_file_suits_docker_compose_1_29_too():
    """Debian 12's docker-compose 1.29 rejects a top-level `name:` (and needs no `version:`);
    the project's name comes from COMPOSE_PROJECT_NAME in .env instead."""
    compose = _compose()
    assert set(compose) - {"services", "volumes"} == {"x-intake"}
    assert re.search(r"^COMPOSE_PROJECT_NAME=intake$", (REPO / ".env.example").read_text(), re.M)
    # `docker-compose --profile dev` needs 1.28+, `service_completed_successfully` 1.29
    for service in compose["services"].values():
        for condition in (service.get("depends_on") or {}).values():
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"}


def test_env_example_dev_block_points_the_worker_at_the_dev_mail_server():
    """compose-test.sh makes its .env by uncommenting this block: the worker must then read the
    devmail service (a later line wins over the Gmail lines above it)."""
    env: dict[str, str] = {}
    dev = False
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        dev = dev or line.startswith('# --- profile "dev"')
        if dev and line.startswith("# INTAKE_"):
            line = line.removeprefix("# ")
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            name, _, value = line.partition("=")
            env[name] = value
    assert env["INTAKE_IMAP__HOST"] == env["INTAKE_SMTP__HOST"] == "devmail"
    devmail = _compose()["services"]["devmail"]["command"]
    assert env["INTAKE_IMAP__PORT"] == devmail[devmail.index("--imap-port") + 1]
    assert env["INTAKE_SMTP__PORT"] == devmail[devmail.index("--smtp-port") + 1]
    assert env["INTAKE_IMAP__SECURITY"] == env["INTAKE_SMTP__SECURITY"] == "none"
    assert env["INTAKE_IMAP__MARK"] == "move"  # pymap keeps no custom keywords


def test_ci_runs_the_compose_test_before_the_suite():
    """Before: the suite's summary stays the last thing CI prints."""
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    suite = next(i for i, line in enumerate(ci) if re.search(r"-m pytest\b", line))
    assert any(line.startswith("bash deploy/compose-test.sh") for line in ci[:suite])
    result = subprocess.run(
        ["make", "-n", "compose-test"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "bash deploy/compose-test.sh"
    for script in ("deploy/compose-test.sh", "deploy/standin/postgres/docker-entrypoint.sh"):
        check = subprocess.run(["bash", "-n", script], cwd=REPO, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
