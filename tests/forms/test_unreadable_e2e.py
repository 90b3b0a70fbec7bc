"""Files that are not a form, through the whole pipeline: `.eml` files taken in by the real
`intake import` command, each kind from its own province. Every one ends as a located Thai
problem in the database, a sender that needs correction, and a Thai correction mail that says
what to send instead; none is lost, none raises. SQLite and PostgreSQL."""

from __future__ import annotations

import email
from email.policy import default as default_policy
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.forms.builders import filled_form_bytes
from tests.intake_env import IntakeRunner, settings_env
from tests.mime_builders import build_cfb, build_ods, build_submission, build_zip

JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + bytes(200)
    + b"\xff\xd9"
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_good = filled_form_bytes("พะเยา")
_zip = build_zip([("แบบฟอร์ม.xlsx", filled_form_bytes("เชียงราย"))])

# province (its id, its Thai name), attachment (filename, bytes, declared type), problem code,
# and words the Thai message must hold
CASES = [
    ("TH-53", "อุตรดิตถ์", ("แบบฟอร์ม.pdf", b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF", "application/pdf"),
     "format_pdf", "ได้รับไฟล์ PDF"),
    ("TH-54", "แพร่", ("แบบฟอร์ม.jpg", JPEG, "image/jpeg"), "format_image", "รูปภาพ"),
    ("TH-55", "น่าน", ("แบบฟอร์ม.ods", build_ods(), "application/vnd.oasis.opendocument.spreadsheet"),
     "format_ods", "(.xlsx)"),
    ("TH-58", "แม่ฮ่องสอน", ("แบบฟอร์ม.doc", build_cfb(["WordDocument"]), "application/msword"),
     "format_doc", ".docx"),
    ("TH-52", "ลำปาง", ("แบบฟอร์ม.xlsx", build_cfb(["EncryptionInfo", "EncryptedPackage"]), XLSX),
     "encrypted", "รหัสผ่าน"),
    ("TH-51", "ลำพูน", ("winmail.dat", b"\x78\x9f\x3e\x22\x00\x00" + bytes(64), "application/ms-tnef"),
     "format_tnef", "winmail.dat"),
    ("TH-56", "พะเยา", ("แบบฟอร์ม.xlsx", _good[: len(_good) // 2], XLSX), "corrupt", "เสีย"),
    ("TH-57", "เชียงราย", ("ส่งข้อมูล.zip", _zip[: len(_zip) // 2], "application/zip"),
     "format_zip", "โดยไม่ต้องบีบอัด"),
]  # fmt: skip


def _rows(url: str, sql: str, **params: object) -> list[tuple]:  # type: ignore[type-arg]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def test_every_kind_of_not_a_form_gets_a_thai_problem_and_a_correction(
    tmp_path: Path, database_url: str, smtp_server
) -> None:  # type: ignore[no-untyped-def]
    intake = IntakeRunner(settings_env(tmp_path, database_url, smtp=smtp_server.smtp_settings()))
    intake("db", "upgrade")
    files = []
    for n, (sender_id, name, attachment, _, _) in enumerate(CASES, start=1):
        raw = build_submission(
            subject=f"ส่งแบบฟอร์มข้อมูล จังหวัด{name}",
            from_=f"saraban{n}@province{n}.go.th",
            to="jpp.moi9999@gmail.com",
            body=f"เรียน ผู้ประสานงาน\nจังหวัด{name}ขอส่งข้อมูลตามหนังสือ ที่ มท ๐๒๑๒.๓/ว ๓๐๒\n",
            attachments=[attachment],
            message_id=f"<unreadable-{n}@{sender_id.lower()}.example>",
            date="Fri, 19 Jan 2024 10:00:00 +0700",
        )
        files.append(tmp_path / f"{n}.eml")
        files[-1].write_bytes(raw)
    intake("import", *map(str, files))

    status = {e["id"]: e["status"] for e in intake.report()["entities"]}
    sent = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    for n, (sender_id, _name, (filename, _, _), code, says) in enumerate(CASES, start=1):
        assert status[sender_id] == "needs_correction", (sender_id, code)
        problems = _rows(
            database_url,
            "select p.code, p.message_th, p.filename from problem p join submission s "
            "on s.id = p.submission_id where s.sender_id = :sid",
            sid=sender_id,
        )
        assert [(c, f) for c, _, f in problems] == [(code, filename)], sender_id
        assert says in problems[0][1] and "กรุณา" in problems[0][1]
        reply = sent[f"saraban{n}@province{n}.go.th"]
        assert reply.message["X-Intake-Kind"] == "correction"
        mail = email.message_from_bytes(reply.raw, policy=default_policy)
        body = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert problems[0][1] in body, (sender_id, body)
    assert len(smtp_server.messages) == len(CASES)
    assert {s for (s,) in _rows(database_url, "select state from message")} == {"done"}
