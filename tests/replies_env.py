"""In-process harness for the reply tests: the real pipeline, outbox and reminders against the real
Dovecot, aiosmtpd and database of the fixtures, with a clock the test moves.

In-process rather than `intake` subprocesses (those are in test_pipeline_e2e.py and for crashes):
the same code path, a fraction of the time.
"""

from __future__ import annotations

import email
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from sqlalchemy import text

from intake.bootstrap import open_services
from intake.clock import Clock
from intake.outbox import SendReport, send_outbox
from intake.pipeline import CycleReport, Services, poll_once
from intake.settings import load_settings
from tests.forms.builders import filled_form_bytes, form_with_errors_bytes
from tests.intake_env import CONFIG_DIR
from tests.mime_builders import build_submission
from tests.servers import DovecotUser, SmtpServer

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ON_TIME = datetime.fromisoformat("2024-01-19T10:00:00+07:00")
LATE = datetime.fromisoformat("2024-01-23T08:00:00+07:00")
NOW = "2024-01-20T10:00:00+07:00"


@dataclass
class Harness:
    svc: Services
    user: DovecotUser
    smtp: SmtpServer
    url: str

    def at(self, iso: str) -> None:
        """Move the service's clock (what INTAKE_NOW does for the command)."""
        self.svc.clock = Clock(datetime.fromisoformat(iso))

    def poll(self, iso: str | None = None) -> CycleReport:
        if iso:
            self.at(iso)
        return poll_once(self.svc)

    def send(self) -> SendReport:
        s = self.svc.settings
        return send_outbox(self.svc.factory, s.smtp, s.replies, self.svc.clock.now)

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.svc.factory() as session:
            return [tuple(r) for r in session.execute(text(sql), params)]

    def review_reasons(self) -> list[str]:
        return [r[0] for r in self.rows("select reason from review_item order by id")]

    def close(self) -> None:
        bind = self.svc.factory.kw.get("bind")
        if bind is not None:
            bind.dispose()


def make_harness(
    tmp_path: Path,
    database_url: str,
    imap_user: tuple[Any, DovecotUser],
    smtp: SmtpServer,
    **overrides: Any,
) -> Harness:
    imap, user = imap_user
    settings = load_settings(
        tmp_path / "absent.toml",
        config_dir=CONFIG_DIR,
        data_dir=tmp_path / "var",
        database_url=database_url,
        imap=imap,
        smtp=smtp.smtp_settings(),
        now=datetime.fromisoformat(NOW),
        **overrides,
    )
    return Harness(open_services(settings), user, smtp, database_url)


def mail(
    n: int,
    sender: str,
    subject: str,
    attachments: Any = (),
    **kw: Any,
) -> bytes:
    """A province's mail with Message-ID <m{n}@province.example>."""
    return build_submission(
        subject=subject,
        from_=sender,
        to="jpp.moi9999@gmail.com",
        body=kw.pop("body", "เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n"),
        attachments=attachments,
        message_id=f"<m{n}@province.example>",
        **kw,
    )


def valid_form(province: str, name: str = "form.xlsx") -> tuple[str, bytes, str]:
    return (name, filled_form_bytes(province), XLSX)


def invalid_form(province: str, name: str = "form.xlsx") -> tuple[str, bytes, str]:
    return (name, form_with_errors_bytes(province), XLSX)


def body_of(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed
