"""Reminders: the times they are due (pure), who gets one and what it says (the real pipeline,
database and SMTP server, with the clock set before and after the deadline), and `intake remind`."""

from __future__ import annotations

import re
from datetime import datetime, time

import pytest
from sqlalchemy import create_engine, text

from intake.reminders import Contact, due_slot, plan, queue_due_reminders, reminder_slots
from intake.replies import ReminderData, Renderer
from intake.settings import RemindersSettings
from storage import queries
from tests.intake_env import CONFIG_DIR, IntakeRunner, settings_env
from tests.replies_env import body_of, invalid_form, mail, make_harness, parse, valid_form

DEADLINE = datetime.fromisoformat("2024-01-22T23:59:59+07:00")
BEFORE = datetime.fromisoformat("2024-01-18T10:00:00+07:00")


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


# --- pure: slots and plan --------------------------------------------------------------------------


def test_default_slots_are_3_and_1_days_before_at_9_bangkok():
    slots = reminder_slots(RemindersSettings(), DEADLINE)
    assert [(s.kind, s.days, s.at.isoformat()) for s in slots] == [
        ("before", 3, "2024-01-19T09:00:00+07:00"),
        ("before", 1, "2024-01-21T09:00:00+07:00"),
    ]
    assert [s.key for s in slots] == ["before-3d-2024-01-19", "before-1d-2024-01-21"]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2024-01-19T08:59:59+07:00", None),
        ("2024-01-19T02:00:00+00:00", "before-3d-2024-01-19"),  # 09:00 Bangkok
        ("2024-01-20T18:00:00+07:00", "before-3d-2024-01-19"),
        ("2024-01-21T09:00:00+07:00", "before-1d-2024-01-21"),
        ("2024-01-22T23:59:00+07:00", "before-1d-2024-01-21"),
        ("2024-01-23T09:05:00+07:00", None),  # after the deadline: no "before" reminder
    ],
)
def test_due_slot_is_the_latest_that_has_come(now, expected):
    slot = due_slot(RemindersSettings(), DEADLINE, at(now))
    assert (slot.key if slot else None) == expected


def test_overdue_notices_only_when_configured():
    cfg = RemindersSettings(overdue_days_after=[1, 3])
    assert due_slot(cfg, DEADLINE, at("2024-01-23T08:00:00+07:00")) is None
    assert due_slot(cfg, DEADLINE, at("2024-01-23T09:05:00+07:00")).key == "overdue-1d-2024-01-23"
    assert due_slot(cfg, DEADLINE, at("2024-02-01T09:05:00+07:00")).key == "overdue-3d-2024-01-25"
    custom = RemindersSettings(days_before=[2], at=time(14, 30))
    assert [s.at.isoformat() for s in reminder_slots(custom, DEADLINE)] == [
        "2024-01-20T14:30:00+07:00"
    ]


def test_plan_skips_the_accepted_and_those_without_an_address():
    def contact(sid: str, status: str, *addresses: str) -> Contact:
        return Contact(sid, sid, status, DEADLINE, tuple(addresses))

    contacts = [
        contact("A", "accepted", "a@x.go.th"),
        contact("B", "missing", "b@x.go.th", "b2@x.go.th"),
        contact("C", "needs_correction", "c@x.go.th"),
        contact("D", "missing"),
    ]
    planned = plan(contacts, RemindersSettings(), at("2024-01-19T09:05:00+07:00"))
    assert [(p.contact.sender_id, p.address, p.dedupe_key) for p in planned] == [
        ("B", "b@x.go.th", "reminder:B:before-3d-2024-01-19"),
        ("C", "c@x.go.th", "reminder:C:before-3d-2024-01-19"),
    ]


def test_reminder_wording_days_left_and_a_deadline_with_a_time():
    renderer = Renderer(CONFIG_DIR / "templates")
    data = ReminderData("a@x", "จังหวัดน่าน", "missing", at("2024-01-22T16:30:00+07:00"),
                        at("2024-01-22T09:00:00+07:00"), False, "jpp@example.test")
    subject, text_, html = renderer.render_reminder(data)
    assert subject == (
        "แจ้งเตือนการจัดส่งข้อมูลการยกระดับเมืองฯ ของจังหวัดน่าน "
        "(กำหนดส่งภายในวันที่ 22 มกราคม 2567 เวลา 16:30 น.)"
    )
    assert "วันนี้เป็นวันครบกำหนดส่ง" in text_ and "วันนี้เป็นวันครบกำหนดส่ง" in html
    assert "jpp@example.test" in text_


# --- against the real servers ----------------------------------------------------------------------


@pytest.fixture
def harness(tmp_path, database_url, imap_user, smtp_server):
    h = make_harness(tmp_path, database_url, imap_user, smtp_server)
    yield h
    h.close()


def _seed(h) -> None:  # type: ignore[no-untyped-def]
    """Chiang Mai accepted, Lamphun needs correction, Lampang/Uttaradit/Phrae/Nan missing."""
    h.user.append(mail(1, "saraban@chiangmai.go.th", "เชียงใหม่", [valid_form("เชียงใหม่")]), BEFORE)
    h.user.append(mail(2, "lamphun.office@gmail.com", "ลำพูน", [invalid_form("ลำพูน")]), BEFORE)
    h.poll("2024-01-18T10:05:00+07:00")
    h.smtp.clear()
    with h.svc.factory.begin() as session:
        queries.add_sender_address(session, "TH-50", "governor@chiangmai.go.th", "coordinator")
        queries.add_sender_address(session, "TH-52", "saraban@lampang.go.th", "config")
        queries.add_sender_address(session, "TH-53", "old@uttaradit.go.th", "config")
        queries.add_sender_address(session, "TH-55", "saraban@nan.go.th", "config")
        session.execute(text("update sender_address set bounced_at = :t where address = :a"),
                        {"t": BEFORE, "a": "old@uttaradit.go.th"})
        session.execute(text("update sender set deadline_override = :d where id = 'TH-55'"),
                        {"d": at("2024-01-29T23:59:59+07:00")})


def _by_recipient(h) -> dict[str, tuple[dict[str, str], str]]:  # type: ignore[no-untyped-def]
    out = {}
    for m in h.smtp.messages:
        msg = parse(m.raw)
        out[m.rcpt_tos[0]] = ({k.lower(): str(v) for k, v in msg.items()}, body_of(msg))
    return out


def _remind(h, iso: str) -> list[str]:  # type: ignore[no-untyped-def]
    h.at(iso)
    queued = queue_due_reminders(h.svc)
    h.send()
    return sorted(q.sender_id for q in queued)


def test_reminders_before_the_deadline_each_once(harness):
    h = harness
    _seed(h)
    assert _remind(h, "2024-01-19T08:59:00+07:00") == []
    assert _remind(h, "2024-01-19T09:05:00+07:00") == ["TH-51", "TH-52"]
    mails = _by_recipient(h)
    assert set(mails) == {"lamphun.office@gmail.com", "saraban@lampang.go.th"}
    headers, missing = mails["saraban@lampang.go.th"]
    assert headers["auto-submitted"] == "auto-generated"
    assert headers["x-intake-kind"] == "reminder"
    assert "in-reply-to" not in headers
    assert re.fullmatch(r"<intake\.[0-9a-f]{32}@intake\.moi\.local>", headers["message-id"])
    assert headers["subject"] == (
        "แจ้งเตือนการจัดส่งข้อมูลการยกระดับเมืองฯ ของจังหวัดลำปาง "
        "(กำหนดส่งภายในวันที่ 22 มกราคม 2567)"
    )
    assert missing.startswith("เรียน ผู้ประสานงานจังหวัดลำปาง")
    assert "จนถึงขณะนี้ (19 มกราคม 2567 เวลา 09:05 น.) กระทรวงมหาดไทยยังไม่ได้รับแบบฟอร์มข้อมูลของจังหวัดลำปาง" in missing
    assert "ขณะนี้เหลือเวลาอีก 3 วันก่อนถึงกำหนดส่ง" in missing
    assert "ไฟล์ Excel (.xlsx)" in missing and "จึงเรียนมาเพื่อโปรดพิจารณาดำเนินการ" in missing
    _, fix = mails["lamphun.office@gmail.com"]
    assert "แบบฟอร์มข้อมูลของจังหวัดลำพูน ฉบับล่าสุดเมื่อวันที่ 18 มกราคม 2567 เวลา 10:00 น." in fix
    assert "ยังไม่ได้รับฉบับที่แก้ไขแล้ว" in fix and "รายการที่ต้องแก้ไขจากฉบับล่าสุด" in fix
    assert "๕. แผนงาน/โครงการสำคัญ" in fix and "เซลล์" in fix
    assert h.rows("select dedupe_key from outbox where kind = 'reminder' order by dedupe_key") == [
        ("reminder:TH-51:before-3d-2024-01-19",), ("reminder:TH-52:before-3d-2024-01-19",),
    ]

    # again at once, later the same day, the next day: nothing more
    for later in ("2024-01-19T09:06:00+07:00", "2024-01-20T15:00:00+07:00"):
        assert _remind(h, later) == []
    assert len(h.smtp.messages) == 2

    # the second reminder time; Lampang sends its form in the meantime
    h.user.append(mail(3, "saraban@lampang.go.th", "ลำปาง", [valid_form("ลำปาง")]), BEFORE)
    h.poll("2024-01-20T16:00:00+07:00")
    h.smtp.clear()
    assert _remind(h, "2024-01-21T09:05:00+07:00") == ["TH-51"]
    assert _remind(h, "2024-01-21T12:00:00+07:00") == []
    [(_, body)] = _by_recipient(h).values()
    assert "ขณะนี้เหลือเวลาอีก 1 วันก่อนถึงกำหนดส่ง" in body

    # after the deadline: no overdue notice unless configured
    assert _remind(h, "2024-01-23T09:05:00+07:00") == []


def test_overdue_notice_after_the_deadline_when_configured(harness):
    h = harness
    _seed(h)
    h.svc.settings.reminders.overdue_days_after = [1]
    assert _remind(h, "2024-01-23T08:59:00+07:00") == []
    assert _remind(h, "2024-01-23T09:05:00+07:00") == ["TH-51", "TH-52"]
    assert _remind(h, "2024-01-24T09:05:00+07:00") == []
    headers, body = _by_recipient(h)["saraban@lampang.go.th"]
    assert headers["subject"].startswith("แจ้งเตือน: เลยกำหนดการจัดส่งข้อมูลการยกระดับเมืองฯ")
    assert "บัดนี้ได้พ้นกำหนดส่งข้อมูลมาแล้ว 1 วัน" in body and "โดยเร็วที่สุด" in body
    # Nan's own deadline was extended to 29 January: its slots come later
    assert _remind(h, "2024-01-26T09:05:00+07:00") == ["TH-55"]


def test_nothing_is_queued_when_reminders_or_replies_are_off(harness):
    h = harness
    _seed(h)
    h.svc.settings.reminders.enabled = False
    assert _remind(h, "2024-01-19T09:05:00+07:00") == []
    h.svc.settings.reminders.enabled = True
    h.svc.settings.replies.enabled = False
    assert _remind(h, "2024-01-19T09:05:00+07:00") == []
    assert h.rows("select count(*) from outbox where kind = 'reminder'") == [(0,)]


def test_intake_remind_command_dry_run_then_for_real(tmp_path, database_url, imap_user,
                                                   smtp_server):
    imap, _ = imap_user
    env = settings_env(tmp_path, database_url, imap, smtp_server.smtp_settings(),
                       now="2024-01-19T09:05:00+07:00")
    intake = IntakeRunner({**env, "COLUMNS": "300"})
    intake("db", "upgrade")
    intake("report", "--format", "json")  # loads the roster into the database
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("insert into sender_address (sender_id, address, source) "
                          "values ('TH-52', 'saraban@lampang.go.th', 'config')"))
    dry = intake("remind", "--dry-run").stdout
    assert "TH-52" in dry and "saraban@lampang.go.th" in dry and "before-3d-2024-01-19" in dry
    assert "จังหวัดลำปาง" in dry and "ยังไม่ส่ง" in dry
    narrow = IntakeRunner({**env, "COLUMNS": "80"})("remind", "--dry-run").stdout
    assert "TH-52 จังหวัดลำปาง (ยังไม่ส่ง) → saraban@lampang.go.th · before-3d-2024-01-19" in narrow
    assert "…" not in narrow  # at 80 columns nothing is cut: one block per reminder
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from outbox")).scalar_one() == 0
    assert smtp_server.data_attempts == 0
    assert "reminders queued 1 (held 0), replies sent 1" in intake("remind").stdout
    assert "reminders queued 0" in intake("remind").stdout
    assert [m.rcpt_tos for m in smtp_server.messages] == [["saraban@lampang.go.th"]]
    assert "reminders due now: 0" in intake("remind", "--dry-run").stdout
    engine.dispose()
