"""The package as a user gets it: the wheel installed into a fresh venv outside the checkout and
run from an empty directory (no PYTHONPATH, no config/, no alembic/ at hand).

The venv sees the machine's site-packages (`--system-site-packages`) for the dependencies, so
nothing is downloaded; the wheel is installed into the venv itself, whose site-packages come
first, and the test checks that `intake`, `storage`, the migrations and the configuration are
all read from there and never from the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.forms.builders import filled_form_bytes
from tests.intake_env import REPO, settings_env
from tests.mime_builders import build_submission

pytestmark = pytest.mark.slow

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MARKER = "ข้อความนี้มาจากโฟลเดอร์ที่ intake init เขียน"


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path

    @property
    def intake(self) -> Path:
        return self.venv / "bin" / "intake"


def _run(
    args: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """`pip wheel` of the checkout, then a venv outside it with only that wheel installed."""
    root = tmp_path_factory.mktemp("package")
    dist = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--quiet", "--wheel-dir", dist, REPO])  # fmt: skip
    (wheel,) = dist.glob("intake-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv])
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
          "--quiet", "--no-deps", "--force-reinstall", wheel])  # fmt: skip
    yield Installed(venv, wheel)


def test_the_wheel_carries_the_migrations_and_the_configuration(installed: Installed) -> None:
    import zipfile

    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for source, packaged in (("alembic", "storage/_alembic"), ("config", "intake/_defaults")):
        for path in (REPO / source).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert f"{packaged}/{path.relative_to(REPO / source)}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "intake/web_templates/index.html" in names


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INTAKE_", "PYTHON", "VIRTUAL_ENV", "COLUMNS"))
    }
    env.update(extra)
    return env


def test_installed_intake_runs_from_an_empty_directory(  # type: ignore[no-untyped-def]
    installed: Installed, tmp_path: Path, imap_user, smtp_server, postgres
) -> None:
    """db upgrade, template, report, import, init and a command with that copy, and poll
    --once against Dovecot and SMTP: the built-in defaults do everything the checkout's
    config/ and alembic/ did."""
    imap, user = imap_user
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    servers = settings_env(scratch, "unused", imap, smtp_server.smtp_settings())
    for key in ("INTAKE_CONFIG", "INTAKE_DATABASE_URL", "INTAKE_DATA_DIR"):
        servers.pop(key)
    env = _clean_env({k: v for k, v in servers.items() if k.startswith("INTAKE_")})
    env["PATH"] = f"{installed.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "empty"
    work.mkdir()

    def intake(*args: str | Path, **more: str) -> subprocess.CompletedProcess[str]:
        return _run([installed.intake, *args], cwd=work, env={**env, **more})

    where = _run(
        [installed.venv / "bin" / "python", "-c",
         "import intake, storage.session as s, intake.packaged as p; "
         "print(intake.__file__, s.ALEMBIC_DIR, p.default_config_dir(), sep='\\n')"],
        cwd=work, env=env,
    ).stdout.split()  # fmt: skip
    assert all(Path(w).is_relative_to(installed.venv) for w in where), where
    assert not any(Path(w).is_relative_to(REPO) for w in where), where

    shown = json.loads(intake("config").stdout)
    assert shown["config_dir"].endswith("intake/_defaults (built-in defaults)")
    assert shown["imap"]["host"] == "127.0.0.1"  # the environment over the built-in file

    assert "is at head" in intake("db", "upgrade").stdout
    assert (work / "var" / "intake.db").is_file()  # data_dir ./var, from the built-in file
    pg = postgres.url(postgres.create_database())
    intake("db", "upgrade", INTAKE_DATABASE_URL=pg)  # the packaged migrations, on PostgreSQL too

    intake("template", "--output", "form.xlsx")
    assert load_workbook(work / "form.xlsx").sheetnames

    report = json.loads(intake("report", "--format", "json").stdout)
    assert report["summary"]["expected"] == 94 and report["summary"]["missing"] == 94

    (work / "sample.eml").write_bytes(
        build_submission(
            subject="ส่งแบบฟอร์มข้อมูล จังหวัดเชียงใหม่",
            from_="สนจ.เชียงใหม่ <saraban@chiangmai.go.th>",
            attachments=[("แบบฟอร์ม_เชียงใหม่.xlsx", filled_form_bytes("เชียงใหม่"), XLSX)],
            message_id="<package-1@chiangmai.go.th>",
            date="Fri, 19 Jan 2024 10:00:00 +0700",
        )
    )
    assert "processed 1" in intake("import", "sample.eml").stdout
    report = json.loads(intake("report", "--format", "json").stdout)
    assert report["summary"]["accepted"] == 1
    (ack,) = smtp_server.wait_for(1)
    assert ack.rcpt_tos == ["saraban@chiangmai.go.th"]

    refused = subprocess.run(
        [installed.intake, "--config", "nope.toml", "report"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "nope.toml" in refused.stderr

    shipped = sum(1 for f in (REPO / "config").rglob("*") if f.is_file())  # every file, README too
    assert f"wrote {shipped} files to coordinator" in intake("init", "coordinator").stdout
    template = work / "coordinator" / "templates" / "acknowledgement.txt.j2"
    template.write_text(f"{MARKER}\n{template.read_text(encoding='utf-8')}", encoding="utf-8")
    mine = {"INTAKE_CONFIG": str(work / "coordinator" / "intake.toml")}
    shown = json.loads(intake("config", **mine).stdout)
    assert shown["config_dir"] == str(work / "coordinator")

    smtp_server.clear()
    user.append(
        build_submission(
            subject="ข้อมูลจังหวัดน่าน",
            from_="saraban@nan.go.th",
            attachments=[("nan.xlsx", filled_form_bytes("น่าน"), XLSX)],
            message_id="<package-2@nan.go.th>",
            date="Fri, 19 Jan 2024 11:00:00 +0700",
        )
    )
    polled = intake("poll", "--once", **mine).stdout
    assert "fetched 1" in polled and "replies sent 1" in polled
    (reply,) = smtp_server.wait_for(1)
    assert reply.rcpt_tos == ["saraban@nan.go.th"]
    body = reply.message.get_body(("plain",))
    assert body is not None and MARKER in body.get_content()  # the coordinator's copy in force
    report = json.loads(intake("report", "--format", "json", **mine).stdout)
    assert report["summary"]["accepted"] == 2


def _invoke(args: list[str], cwd: Path) -> tuple[int, str]:
    from typer.testing import CliRunner

    from intake import cli

    cli.state.settings, cli.state.config = None, None
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli.app, args, env={"COLUMNS": "200"})
    finally:
        os.chdir(old)
    return result.exit_code, result.output


def test_init_writes_an_editable_copy_and_never_overwrites_without_force(tmp_path: Path) -> None:
    from intake.packaged import default_config_dir

    code, out = _invoke(["init"], tmp_path)
    assert code == 0, out
    made = tmp_path / "config"  # the default: found from this folder without any setting
    source = default_config_dir()
    for path in source.rglob("*"):
        if path.is_file() and path.name != "intake.toml" and "__pycache__" not in path.parts:
            assert (made / path.relative_to(source)).read_bytes() == path.read_bytes()
    settings = (made / "intake.toml").read_text(encoding="utf-8")
    assert settings.endswith((source / "intake.toml").read_text(encoding="utf-8"))
    assert '\nconfig_dir = "."\n' in settings and "# Written by `intake init`" in settings

    roster = made / "senders" / "addresses.csv"
    roster.write_text("sender_id,address\nTH-50,saraban@chiangmai.go.th\n", encoding="utf-8")
    code, out = _invoke(["init"], tmp_path)
    assert code == 1 and "use --force" in out and "addresses.csv" in out
    assert "TH-50" in roster.read_text(encoding="utf-8")  # the coordinator's edit is kept
    code, out = _invoke(["init", "--force"], tmp_path)
    assert code == 0, out
    assert "TH-50" not in roster.read_text(encoding="utf-8")

    other = tmp_path / "elsewhere"
    assert _invoke(["init", str(other)], tmp_path)[0] == 0
    code, out = _invoke(["--config", str(other / "intake.toml"), "config"], tmp_path)
    assert code == 0 and json.loads(out)["config_dir"] == str(other)


def test_the_checkout_reads_its_own_alembic_and_config_folders() -> None:
    """No `_defaults` in a checkout: the editable sources at the top are the ones in force."""
    from intake.packaged import default_config_dir
    from storage.session import ALEMBIC_DIR, head_revision

    assert ALEMBIC_DIR == REPO / "alembic" and default_config_dir() == REPO / "config"
    assert not (REPO / "intake" / "_defaults").exists()
    heads = _run([sys.executable, "-m", "alembic", "-c", REPO / "alembic.ini", "heads"], cwd=REPO)
    assert heads.stdout.split()[0] == head_revision()  # the alembic command, as before
