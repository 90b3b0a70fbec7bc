"""A seeded database for the coordinator's tests (review actions, report, web page): real mail run
through the real pipeline in-process (`import_files`), plus two replies put in the states a crash
or an SMTP refusal leaves them in.

What it holds (expected senders: 94):
- accepted: Chiang Mai (TH-50), Chiang Rai (TH-57) and its cluster (north-upper-2) = 3;
- needs correction: Lamphun (TH-51) = 1; missing: 90;
- roster addresses (verified): saraban@chiangmai.go.th (TH-50), saraban@chiangrai.go.th (TH-57
  and north-upper-2), so their forms wait for no confirmation;
- review: mail with no form from an unknown address; a form naming a place that does not exist
  (from an unknown address); Chiang Mai's acknowledgement HELD (`outbox_unknown`); Lamphun's
  correction FAILED (`reply_failed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from intake.bootstrap import open_services
from intake.pipeline import Services, import_files
from intake.settings import RepliesSettings, load_settings
from storage import queries
from storage.models import Message, Outbox, OutboxState
from storage.session import session_scope
from tests.forms.builders import filled_form_bytes, form_with_errors_bytes, multi_form_bytes
from tests.intake_env import CONFIG_DIR
from tests.mime_builders import XLSX_TYPE, build_submission

NOW = datetime.fromisoformat("2024-01-20T10:00:00+07:00")
DEADLINE = datetime.fromisoformat("2024-01-22T23:59:59+07:00")
EXPECTED_SUMMARY = {
    "expected": 94, "accepted": 3, "needs_correction": 1, "missing": 90, "late": 0,
}  # fmt: skip


def services(tmp: Path, url: str, **overrides: object) -> Services:
    toml = tmp / "intake.toml"
    toml.write_text(f'config_dir = "{CONFIG_DIR}"\n', encoding="utf-8")
    settings = load_settings(
        toml, database_url=url, data_dir=tmp / "var", now=NOW,
        replies=RepliesSettings(dry_run=True), **overrides,
    )  # fmt: skip
    return open_services(settings)


def _mail(key: str, sender: str, subject: str, attachments: list[tuple[str, bytes, str]]) -> bytes:
    return build_submission(
        subject=subject,
        from_=sender,
        to="jpp.moi9999@gmail.com",
        body="เรียน ผู้ประสานงาน\nขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n",
        attachments=attachments,
        message_id=f"<{key}@province.example>",
    )


@dataclass
class Seeded:
    svc: Services
    url: str
    tmp: Path
    no_form_message: int  # unknown address, no attachment
    unknown_form_message: int  # a form naming "เมืองลับแล", from an unknown address
    held_outbox: int  # Chiang Mai's acknowledgement, HELD
    failed_outbox: int  # Lamphun's correction, FAILED


def seed(tmp: Path, url: str, **overrides: object) -> Seeded:
    svc = services(tmp, url, **overrides)
    with session_scope(svc.factory) as session:
        for sender_id, address in (
            ("TH-50", "saraban@chiangmai.go.th"),
            ("TH-57", "saraban@chiangrai.go.th"),
            ("north-upper-2", "saraban@chiangrai.go.th"),
        ):
            queries.add_sender_address(session, sender_id, address, "config")
    mails = [
        ("cm", "saraban@chiangmai.go.th", "ส่งแบบฟอร์ม จ.เชียงใหม่",
         [("เชียงใหม่.xlsx", filled_form_bytes("เชียงใหม่"), XLSX_TYPE)], "2024-01-10T09:00"),
        ("lp", "lamphun.office@gmail.com", "ข้อมูลจังหวัดลำพูน",
         [("lamphun.xlsx", form_with_errors_bytes("ลำพูน"), XLSX_TYPE)], "2024-01-12T10:00"),
        ("cr", "saraban@chiangrai.go.th", "แบบฟอร์ม จ.เชียงราย และกลุ่มจังหวัด",
         [("forms.xlsx", multi_form_bytes([("เชียงราย", "จังหวัด"),
                                           ("ภาคเหนือตอนบน 2", "กลุ่มจังหวัด")]), XLSX_TYPE)],
         "2024-01-16T11:00"),
        ("q", "curious@gmail.com", "สอบถามรายละเอียด", [], "2024-01-17T08:00"),
        ("x", "staff.somchai@gmail.com", "ส่งข้อมูลครับ",
         [("data.xlsx", filled_form_bytes("เมืองลับแล"), XLSX_TYPE)], "2024-01-18T15:30"),
    ]  # fmt: skip
    for key, sender, subject, attachments, when in mails:
        raw = _mail(key, sender, subject, attachments)
        import_files(svc, [(raw, datetime.fromisoformat(when + ":00+07:00"))])
    with session_scope(svc.factory) as session:
        ids = {
            m.message_id_header.split("@")[0]: m.id
            for m in session.scalars(select(Message))
            if m.message_id_header
        }
        held = _outbox_for(session, ids["cm"])
        held.state, held.last_error = OutboxState.HELD, "outcome unknown after a crash"
        queries.add_review(session, "outbox_unknown", "ไม่ทราบผลการส่ง", outbox_id=held.id)
        failed = _outbox_for(session, ids["lp"])
        failed.state, failed.last_error = OutboxState.FAILED, "550 mailbox unavailable"
        queries.add_review(session, "reply_failed", "550 mailbox unavailable", outbox_id=failed.id)
        return Seeded(svc, url, tmp, ids["q"], ids["x"], held.id, failed.id)


def _outbox_for(session: object, message_id: int) -> Outbox:
    return session.scalars(  # type: ignore[attr-defined,no-any-return]
        select(Outbox).where(Outbox.answers_message_id == message_id).order_by(Outbox.id)
    ).first()
