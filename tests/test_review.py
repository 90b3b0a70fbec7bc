"""The coordinator's review actions (intake/review.py), in-process on SQLite and PostgreSQL: each
action changes the database and leaves an audit event naming who acted; decisions survive a
replay and a roster sync."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from intake import review
from intake.bootstrap import sync_roster
from intake.clock import as_utc
from intake.pipeline import reprocess
from intake.reports import build_report
from storage.models import (
    AuditEvent,
    Message,
    Outbox,
    OutboxState,
    ReviewItem,
    ReviewState,
    Sender,
    SenderAddress,
    Submission,
    SubmissionStatus,
)
from storage.session import session_scope
from tests.coordinator_seed import DEADLINE, EXPECTED_SUMMARY, Seeded, seed

ACTOR = "สมศรี ใจดี"


@pytest.fixture
def db(tmp_path: Path, database_url: str) -> Seeded:
    return seed(tmp_path, database_url)


def _do(db: Seeded, action, *args, **kwargs) -> review.Done:  # type: ignore[no-untyped-def]
    with session_scope(db.svc.factory) as session:
        return action(session, *args, **kwargs)


def _status(db: Seeded) -> dict[str, str]:
    with session_scope(db.svc.factory) as session:
        report = build_report(session, db.svc.settings.deadline, db.svc.clock.now())
    return {e.id: e.status for e in report.entities}


def _audit(db: Seeded, action: str) -> list[AuditEvent]:
    with session_scope(db.svc.factory) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _open_items(db: Seeded) -> list[tuple[int | None, int | None, str]]:
    with session_scope(db.svc.factory) as session:
        return [
            (i.message_id, i.outbox_id, i.reason)
            for i in session.scalars(select(ReviewItem).where(ReviewItem.state == ReviewState.OPEN))
        ]


def test_pending_lists_what_waits_with_its_context(db: Seeded) -> None:
    with session_scope(db.svc.factory) as session:
        entries = review.pending(session)
        report = build_report(session, db.svc.settings.deadline, db.svc.clock.now())
    assert report.summary == EXPECTED_SUMMARY
    by_reason = {(e.reason, e.message_id or e.outbox_id) for e in entries}
    assert by_reason == {
        ("unknown_sender", db.no_form_message),
        ("unknown_sender", db.unknown_form_message),
        ("outbox_unknown", db.held_outbox),
        ("reply_failed", db.failed_outbox),
    }
    held = next(e for e in entries if e.outbox_id == db.held_outbox)
    assert (held.outbox_state, held.outbox_to, held.sender_ids) == (
        "held", "saraban@chiangmai.go.th", ("TH-50",),
    )  # fmt: skip
    unknown = next(e for e in entries if e.message_id == db.unknown_form_message)
    assert unknown.from_address == "staff.somchai@gmail.com" and "เมืองลับแล" in unknown.detail
    assert review.reason_th("unknown_sender").startswith("ไม่ทราบผู้ส่ง")


def test_assign_decides_the_message_for_that_sender_and_a_replay_keeps_it(db: Seeded) -> None:
    done = _do(db, review.assign_message, db.unknown_form_message, "TH-53", ACTOR, "โทรยืนยันแล้ว")
    assert "อุตรดิตถ์" in done.message_th
    review.run_assigned(db.svc, db.unknown_form_message)

    assert _status(db)["TH-53"] == "accepted"
    with session_scope(db.svc.factory) as session:
        message = session.get(Message, db.unknown_form_message)
        assert message is not None and message.assigned_sender_id == "TH-53"
        item = session.scalars(
            select(ReviewItem).where(ReviewItem.message_id == db.unknown_form_message)
        ).one()
        assert (item.state, item.resolved_by, item.note) == (
            ReviewState.RESOLVED, ACTOR, "โทรยืนยันแล้ว",
        )  # fmt: skip
        ack = session.scalars(
            select(Outbox.id).where(Outbox.sender_id == "TH-53", Outbox.kind == "acknowledgement")
        ).all()
        assert len(ack) == 1
    [event] = _audit(db, "assign_message")
    assert (event.actor, event.target, event.detail["sender_id"]) == (
        ACTOR, f"message:{db.unknown_form_message}", "TH-53",
    )  # fmt: skip
    assert event.at is not None

    reprocess(db.svc)  # `intake reprocess --all`: the coordinator's answer stands
    assert _status(db)["TH-53"] == "accepted"
    assert all(m != db.unknown_form_message for m, _, _ in _open_items(db))
    with session_scope(db.svc.factory) as session:
        assert session.scalars(select(Outbox.id).where(Outbox.sender_id == "TH-53")).all() == ack


def test_add_address_makes_mail_from_it_recognised(db: Seeded) -> None:
    _do(db, review.add_address, "TH-52", " Curious@Gmail.com ", ACTOR, "ผู้ประสานงานลำปาง")
    with session_scope(db.svc.factory) as session:
        row = session.scalars(
            select(SenderAddress).where(SenderAddress.address == "curious@gmail.com")
        ).one()
        assert (row.sender_id, row.source) == ("TH-52", "coordinator")
    [event] = _audit(db, "add_address")
    assert (event.target, event.detail["address"], event.detail["new"]) == (
        "sender:TH-52", "curious@gmail.com", True,
    )  # fmt: skip
    # the mail that had no known sender is now Lampang's (no form in it: that is the question)
    reprocess(db.svc, [db.no_form_message])
    assert (db.no_form_message, None, "no_form") in _open_items(db)
    with pytest.raises(review.ReviewError):
        _do(db, review.add_address, "TH-52", "not-an-address", ACTOR)
    with pytest.raises(review.ReviewError):
        _do(db, review.add_address, "TH-999", "a@b.go.th", ACTOR)


def test_accept_and_reject_by_hand_with_a_note(db: Seeded) -> None:
    with session_scope(db.svc.factory) as session:
        lamphun = session.scalars(select(Submission).where(Submission.sender_id == "TH-51")).one()
        chiangmai = session.scalars(select(Submission).where(Submission.sender_id == "TH-50")).one()
    campaign = db.svc.settings.campaign
    with pytest.raises(review.ReviewError):
        _do(db, review.decide_submission, lamphun.id, True, ACTOR, "  ", campaign=campaign)

    _do(db, review.decide_submission, lamphun.id, True, ACTOR, "ยืนยันทางโทรศัพท์",
        campaign=campaign)  # fmt: skip
    _do(db, review.decide_submission, chiangmai.id, False, ACTOR, "ข้อมูลไม่ตรงกับหนังสือ",
        campaign=campaign)  # fmt: skip
    status = _status(db)
    assert (status["TH-51"], status["TH-50"]) == ("accepted", "needs_correction")
    with session_scope(db.svc.factory) as session:
        row = session.get(Submission, lamphun.id)
        assert row is not None
        assert (row.status, row.accepted_by, row.note) == (
            SubmissionStatus.VALID, ACTOR, "ยืนยันทางโทรศัพท์",
        )  # fmt: skip
        assert row.receipt and row.receipt.startswith("2567-")
    assert {e.target for e in _audit(db, "accept_submission")} == {f"submission:{lamphun.id}"}
    assert {e.target for e in _audit(db, "reject_submission")} == {f"submission:{chiangmai.id}"}

    reprocess(db.svc)  # a replay judges the forms again, but a person's decision stands
    status = _status(db)
    assert (status["TH-51"], status["TH-50"]) == ("accepted", "needs_correction")


def test_received_by_another_channel_counts_without_a_message(db: Seeded) -> None:
    when = datetime.fromisoformat("2024-01-19T14:00:00+07:00")
    done = _do(db, review.mark_received, "TH-52", "paper", ACTOR, "หนังสือ ลป 0017/123",
               deadline=DEADLINE, campaign=db.svc.settings.campaign, received_at=when)  # fmt: skip
    assert "ลำปาง" in done.message_th
    with session_scope(db.svc.factory) as session:
        row = session.scalars(select(Submission).where(Submission.sender_id == "TH-52")).one()
        assert (row.message_id, row.channel, row.status, row.late, row.accepted_by) == (
            None, "paper", SubmissionStatus.VALID, False, ACTOR,
        )  # fmt: skip
        assert row.receipt is not None
    assert _status(db)["TH-52"] == "accepted"
    [event] = _audit(db, "mark_received")
    assert (event.target, event.detail["channel"]) == ("sender:TH-52", "paper")
    with pytest.raises(review.ReviewError):
        _do(db, review.mark_received, "TH-52", "pigeon", ACTOR, "", deadline=DEADLINE,
            campaign=db.svc.settings.campaign)  # fmt: skip


def test_resend_and_cancel_a_reply(db: Seeded) -> None:
    _do(db, review.resend_reply, db.held_outbox, ACTOR, "ตรวจแล้วยังไม่ได้ส่ง")
    _do(db, review.cancel_reply, db.failed_outbox, ACTOR, "ที่อยู่ผิด")
    with session_scope(db.svc.factory) as session:
        held, failed = session.get(Outbox, db.held_outbox), session.get(Outbox, db.failed_outbox)
        assert held is not None and failed is not None
        assert (held.state, held.last_error) == (OutboxState.QUEUED, None)
        assert failed.state == OutboxState.CANCELLED
    assert not [i for i in _open_items(db) if i[1] is not None]  # their review items are closed
    with pytest.raises(review.ReviewError):  # a queued reply is not "sent again"
        _do(db, review.resend_reply, db.held_outbox, ACTOR)
    with pytest.raises(review.ReviewError):
        _do(db, review.resend_reply, db.failed_outbox, ACTOR)
    assert [e.target for e in _audit(db, "resend_reply")] == [f"outbox:{db.held_outbox}"]
    assert [e.target for e in _audit(db, "cancel_reply")] == [f"outbox:{db.failed_outbox}"]


def test_extended_deadline_changes_lateness_and_survives_roster_sync(db: Seeded) -> None:
    later = datetime.fromisoformat("2024-01-25T23:59:59+07:00")
    _do(db, review.extend_deadline, "TH-52", later, ACTOR, "ขอขยายตามหนังสือจังหวัด")
    with session_scope(db.svc.factory) as session:
        sync_roster(session, db.svc.roster)  # what every start does
    with session_scope(db.svc.factory) as session:
        sender = session.get(Sender, "TH-52")
        assert sender is not None and sender.deadline_override is not None
        assert as_utc(sender.deadline_override) == later
    # received after the campaign deadline, before Lampang's own: not late
    _do(db, review.mark_received, "TH-52", "hand", ACTOR, "", deadline=DEADLINE,
        campaign=db.svc.settings.campaign,
        received_at=datetime.fromisoformat("2024-01-24T10:00:00+07:00"))  # fmt: skip
    with session_scope(db.svc.factory) as session:
        report = build_report(session, DEADLINE, db.svc.clock.now())
    lampang = next(e for e in report.entities if e.id == "TH-52")
    assert (lampang.status, lampang.late, lampang.deadline_override) == ("accepted", False, later)
    [event] = _audit(db, "extend_deadline")
    assert event.target == "sender:TH-52" and event.detail["deadline"].startswith(
        "2024-01-25T16:59"
    )
    with pytest.raises(review.ReviewError):
        _do(db, review.extend_deadline, "TH-52", datetime(2024, 1, 26), ACTOR)


def test_resolve_closes_an_item_once_and_needs_a_reason(db: Seeded) -> None:
    with session_scope(db.svc.factory) as session:
        item_id = session.scalars(
            select(ReviewItem.id).where(ReviewItem.message_id == db.no_form_message)
        ).one()
    with pytest.raises(review.ReviewError):
        _do(db, review.resolve_item, item_id, ACTOR, "")
    _do(db, review.resolve_item, item_id, ACTOR, "คำถามทั่วไป ตอบทางโทรศัพท์แล้ว")
    assert all(m != db.no_form_message for m, _, _ in _open_items(db))
    with pytest.raises(review.ReviewError):
        _do(db, review.resolve_item, item_id, ACTOR, "อีกครั้ง")
    [event] = _audit(db, "resolve_review")
    assert (event.actor, event.target, event.detail["reason"]) == (
        ACTOR, f"review:{item_id}", "unknown_sender",
    )  # fmt: skip
