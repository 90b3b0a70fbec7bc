"""Never answer a robot, but always read it: one real message through IMAP per no-reply rule (its
form is read and counts, unanswered), bounces of our own replies matched and flagged, and the
per-recipient cap that stops a loop the rules missed."""

from __future__ import annotations

import base64

import pytest

from tests.mime_builders import build_bounce, build_multipart, envelope_headers, text_part
from tests.replies_env import ON_TIME, XLSX, make_harness, valid_form
from tests.replies_env import mail as province_mail

CM = "saraban@chiangmai.go.th"


@pytest.fixture
def harness(tmp_path, database_url, imap_user, smtp_server):
    h = make_harness(tmp_path, database_url, imap_user, smtp_server)
    yield h
    h.close()


def _with_form(sender: str, *headers: str) -> bytes:
    """A valid form that WOULD be acknowledged, but for the header(s) given."""
    return province_mail(7, sender, "แบบฟอร์มข้อมูล จังหวัดเชียงใหม่",
                         [valid_form("เชียงใหม่")], extra_headers=list(headers))


def _read_receipt() -> bytes:
    """A disposition notification (a read receipt) from a person's address: a delivery report."""
    headers = envelope_headers("อ่านแล้ว: แบบฟอร์มข้อมูล", f"สนจ.เชียงใหม่ <{CM}>",
                               message_id="<mdn-1@chiangmai.go.th>")
    mdn = (b"Content-Type: message/disposition-notification\r\n\r\n"
           b"Final-Recipient: rfc822; saraban@chiangmai.go.th\r\n"
           b"Disposition: manual-action/MDN-sent-manually; displayed\r\n")
    form = (b"Content-Type: " + XLSX.encode() + b"\r\n"
            b"Content-Disposition: attachment; filename=form.xlsx\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    form += base64.encodebytes(valid_form("เชียงใหม่")[1])
    return build_multipart(headers, [text_part("อ่านแล้ว"), mdn, form], subtype="report",
                           boundary="=_mdn_=", extra_params="; report-type=disposition-notification")


RULES = [
    ("auto-submitted", lambda own: _with_form(CM, "Auto-Submitted: auto-replied")),
    ("auto-submitted", lambda own: _with_form(CM, "Auto-Submitted: auto-generated; owner=x")),
    ("precedence:bulk", lambda own: _with_form(CM, "Precedence: bulk")),
    ("precedence:list", lambda own: _with_form(CM, "Precedence: list")),
    ("precedence:junk", lambda own: _with_form(CM, "Precedence: junk")),
    ("precedence:auto_reply", lambda own: _with_form(CM, "Precedence: auto_reply")),
    ("list-id", lambda own: _with_form(CM, "List-Id: <news.chiangmai.go.th>")),
    ("list-unsubscribe", lambda own: _with_form(CM, "List-Unsubscribe: <mailto:u@x.go.th>")),
    ("x-auto-response-suppress", lambda own: _with_form(CM, "X-Auto-Response-Suppress: OOF, AutoReply")),
    ("empty-return-path", lambda own: _with_form(CM, "Return-Path: <>")),
    ("mailer-daemon", lambda own: _with_form("MAILER-DAEMON@chiangmai.go.th")),
    ("mailer-daemon", lambda own: _with_form("postmaster@chiangmai.go.th")),
    ("mailer-daemon", lambda own: _with_form('"MAILER-DAEMON"@chiangmai.go.th')),
    ("mailer-daemon", lambda own: _with_form("postmaster+bounces@chiangmai.go.th")),
    ("noreply", lambda own: _with_form("no-reply@chiangmai.go.th")),
    ("noreply", lambda own: _with_form("donotreply+x@chiangmai.go.th")),
    ("delivery-report", lambda own: _read_receipt()),
    ("own-address", lambda own: _with_form(own)),
    # every Gmail spelling of our own mailbox (jpp.moi9999@gmail.com in the test settings)
    ("own-address", lambda own: _with_form(own.replace(".", "", 1))),
    ("own-address", lambda own: _with_form(own.replace("@gmail.com", "@googlemail.com").upper())),
    ("own-address", lambda own: _with_form(own.replace("@", "+intake@"))),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "build"), RULES, ids=[f"{i}-{r}" for i, (r, _) in enumerate(RULES)])
def test_no_reply_to_a_robot_but_its_form_is_read_and_counts(harness, reason, build):
    """Robot markers decide whether we reply, never whether we read: the form in each of these
    mails is recorded and counts for Chiang Mai (provisionally: no address is verified here),
    and nothing at all is sent."""
    h = harness
    h.svc.settings.smtp.from_address = "jpp.moi9999@gmail.com"  # the letter's Gmail mailbox
    h.user.append(build(h.svc.settings.smtp.from_address), ON_TIME)
    report = h.poll()
    assert report.outcomes == {"submission": 1}
    assert h.rows("select outcome, noise_reason, state from message") == [
        ("submission", reason, "done")
    ]
    assert h.rows("select sender_id, status, verified from submission") == [
        ("TH-50", "valid", False)
    ]
    assert h.rows("select count(*) from attachment") == [(1,)]
    assert h.rows("select count(*) from outbox") == [(0,)]
    assert h.smtp.data_attempts == 0
    assert h.review_reasons() == ["unverified_sender"]


def test_a_robot_mail_without_a_form_is_noise_and_raises_nothing(harness):
    h = harness
    h.user.append(province_mail(8, "no-reply@chiangmai.go.th", "ข่าวประชาสัมพันธ์ จังหวัดเชียงใหม่",
                                [("logo.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")]),
                  ON_TIME)
    report = h.poll()
    assert report.outcomes == {"noise": 1}
    assert h.rows("select count(*) from attachment") == [(1,)]
    assert h.rows("select count(*) from submission") == [(0,)]
    assert h.review_reasons() == [] and h.smtp.data_attempts == 0


def test_the_same_message_from_a_person_is_answered(harness):
    """The control for the test above: without the robot's mark the form is acknowledged."""
    h = harness
    h.user.append(_with_form(CM, "Auto-Submitted: no", "X-Auto-Response-Suppress: DR, RN"), ON_TIME)
    h.poll()
    assert [m.message["X-Intake-Kind"] for m in h.smtp.messages] == ["acknowledgement"]


def _on_roster(h, address: str = CM) -> None:  # type: ignore[no-untyped-def]
    from storage import queries

    with h.svc.factory.begin() as session:
        queries.add_sender_address(session, "TH-50", address, "config")


def test_a_bounce_of_our_ack_flags_the_address_and_is_never_answered(harness):
    h = harness
    _on_roster(h)  # addresses are no longer learned from a form: the roster has it
    h.user.append(_with_form(CM), ON_TIME)
    h.poll()
    [(outbox_id, ours)] = h.rows("select id, message_id_header from outbox")
    assert h.rows("select bounced_at from sender_address where address = :a", a=CM) == [(None,)]
    h.user.append(build_bounce(ours.strip("<>"), returned="rfc822"), ON_TIME)
    h.poll("2024-01-20T11:00:00+07:00")
    assert len(h.smtp.messages) == 1  # only the ack
    [(bounced_at,)] = h.rows("select bounced_at from sender_address where address = :a", a=CM)
    assert bounced_at is not None and str(bounced_at).startswith("2024-01-20 04:00")
    assert h.rows("select reason, outbox_id from review_item") == [("bounce", outbox_id)]
    assert h.rows("select outcome, noise_reason from message order by id")[-1] == (
        "noise", "delivery-report",
    )


def test_a_bounce_of_mail_we_never_sent_flags_nothing(harness):
    h = harness
    _on_roster(h)
    h.user.append(_with_form(CM), ON_TIME)
    h.poll()
    h.user.append(build_bounce("someone-else@elsewhere.example"), ON_TIME)
    h.poll()
    assert h.rows("select bounced_at from sender_address") == [(None,)]
    assert h.review_reasons() == []


def test_the_cap_stops_a_loop_the_rules_missed(harness):
    """A robot that marks nothing: each of its mails would get a reply; the sixth in 24 h waits.
    Its mails carry a file (a scan: a correction each time); a mail with nothing attached from a
    stranger is a question, which gets one notice per address, loop or not."""
    h = harness
    robot = "auto.responder@example.org"
    scan = [("scan.pdf", b"%PDF-1.4\n% a scan\n", "application/pdf")]
    for n in range(6):
        h.user.append(province_mail(100 + n, robot, f"Re: ส่งข้อมูล ({n})", scan), ON_TIME)
    h.poll()
    states = [s for (s,) in h.rows("select state from outbox order by id")]
    assert states == ["sent"] * 5 + ["held"]
    assert len(h.smtp.messages) == 5
    assert h.review_reasons() == ["unknown_sender"] * 6 + ["reply_cap"]
    # a day later the cap has room again
    h.user.append(province_mail(200, robot, "Re: ส่งข้อมูล (อีกครั้ง)", scan), ON_TIME)
    h.poll("2024-01-21T10:30:00+07:00")
    assert len(h.smtp.messages) == 6
