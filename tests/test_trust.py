"""Who may speak for a sender (issue 11), each finding as a regression test through the real path:
`intake import` / `intake review` / `intake report` as commands, or a poll over the real Dovecot
and aiosmtpd of the fixtures; SQLite and PostgreSQL (`database_url`).

- an address is verified by the roster, by a roster domain with DMARC pass, or by the
  coordinator's confirmation, never by a mail alone;
- a form from an unverified address counts provisionally while no verified address's form
  stands, else it waits; the coordinator confirms (the address is learned) or rejects;
- a reply to our own mail belongs to the sender that mail was about;
- `dmarc=fail` gets no automatic mail, whoever the From claims to be;
- an office that is not an expected sender gets a notice, no receipt, and stays out of the report.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from intake.bootstrap import open_services
from intake.roster import load_roster
from intake.settings import load_settings
from storage import queries
from tests.forms.builders import filled_form_bytes, form_with_errors_bytes
from tests.intake_env import CONFIG_DIR, IntakeRunner, settings_env
from tests.replies_env import (
    NOW,
    ON_TIME,
    XLSX,
    Harness,
    body_of,
    invalid_form,
    make_harness,
    valid_form,
)
from tests.replies_env import mail as province_mail
from tests.worker_env import rows as _rows

CM = "saraban@chiangmai.go.th"
ATTACKER = "attacker@evil.example"
GMAIL_PASS = (
    "mx.google.com; dkim=pass header.i=@chiangmai.go.th header.s=s1 header.b=abc; "
    "spf=pass (google.com: domain of x@chiangmai.go.th designates 1.2.3.4 as permitted sender) "
    "smtp.mailfrom=x@chiangmai.go.th; dmarc=pass (p=NONE sp=NONE dis=NONE) "
    "header.from=chiangmai.go.th"
)


def _form(province: str, contact: str, name: str = "form.xlsx") -> tuple[str, bytes, str]:
    """A valid form whose bytes differ by the contact person (the same file again is a resend)."""
    return (name, filled_form_bytes(province, contact_name=contact), XLSX)


def _with_auth(raw: bytes, result: str) -> bytes:
    """As Gmail delivers it: its own Authentication-Results on top."""
    return f"Authentication-Results: {result}\r\n".encode() + raw


def _on_roster(h: Harness, sender_id: str = "TH-50", address: str = CM) -> None:
    with h.svc.factory.begin() as session:
        queries.add_sender_address(session, sender_id, address, "config")


def _kinds(h: Harness) -> list[tuple[str, str]]:
    return [(m.message["X-Intake-Kind"], m.rcpt_tos[0]) for m in h.smtp.messages]


@pytest.fixture
def harness(tmp_path, database_url, imap_user, smtp_server):
    h = make_harness(tmp_path, database_url, imap_user, smtp_server)
    yield h
    h.close()


@pytest.fixture
def cli(tmp_path, database_url, smtp_server) -> IntakeRunner:
    """The real `intake` command on the test database and SMTP server (no mailbox: `import`)."""
    runner = IntakeRunner(settings_env(tmp_path, database_url, smtp=smtp_server.smtp_settings()))
    runner("db", "upgrade")
    return runner


# --- anyone can replace a province's data: no more -------------------------------------------------


def test_a_form_from_an_unknown_address_counts_provisionally_until_confirmed(
    cli, tmp_path, smtp_server, database_url
):
    """The finding: a form naming เชียงใหม่ from attacker@evil.example became TH-50's data, was
    acknowledged as such and taught the roster the attacker's address. Now it counts only
    provisionally, the report says so, Chiang Mai's own address is told, and only the
    coordinator's `intake review confirm` learns the address."""
    cli("review", "add-address", "TH-50", CM)
    eml = tmp_path / "attack.eml"
    eml.write_bytes(province_mail(1, ATTACKER, "ส่งข้อมูล", [valid_form("เชียงใหม่")]))
    cli("import", str(eml))

    report = cli.report()
    by_id = {e["id"]: e for e in report["entities"]}
    assert set(by_id["TH-50"]) == {
        "id", "kind", "name_th", "name_en", "status", "late", "last_received_at", "versions",
        "receipt", "verified",
    }  # every existing key kept, `verified` added
    assert (by_id["TH-50"]["status"], by_id["TH-50"]["verified"]) == ("accepted", False)
    assert by_id["TH-50"]["receipt"].startswith("2567-")
    assert by_id["TH-51"]["verified"] is None  # nothing counts for a missing sender
    assert [r["reason"] for r in report["review"]] == ["unverified_sender"]

    kinds = sorted((m.message["X-Intake-Kind"], m.rcpt_tos[0]) for m in smtp_server.messages)
    assert kinds == [("acknowledgement", ATTACKER), ("notice", CM)]
    ack = next(m.message for m in smtp_server.messages if m.rcpt_tos == [ATTACKER])
    assert "ยังไม่ได้รับการยืนยันว่าเป็นของจังหวัดเชียงใหม่" in body_of(ack)
    notice = next(m.message for m in smtp_server.messages if m.rcpt_tos == [CM])
    assert ATTACKER in notice["Subject"] and notice["In-Reply-To"] is None
    assert f"ได้รับแบบฟอร์มข้อมูลของจังหวัดเชียงใหม่ จาก {ATTACKER}" in body_of(notice)
    assert notice["Auto-Submitted"] == "auto-generated"

    rows = _rows(database_url, "select address, source from sender_address order by id")
    assert rows == [(CM, "coordinator")]  # the attacker's address was not learned
    [(submission_id,)] = _rows(database_url, "select id from submission")
    listing = cli("review").stdout
    assert f"confirm {submission_id}" in listing and f"reject {submission_id}" in listing

    done = cli("review", "confirm", str(submission_id), "--by", "สมศรี", "--note", "โทรถามแล้ว")
    assert ATTACKER in done.stdout
    assert next(e for e in cli.report()["entities"] if e["id"] == "TH-50")["verified"] is True
    assert cli.report()["review"] == []
    assert _rows(database_url, "select address, source from sender_address order by id") == [
        (CM, "coordinator"), (ATTACKER, "confirmed"),
    ]  # fmt: skip
    [(actor, target)] = _rows(
        database_url, "select actor, target from audit_event where action = 'confirm_sender'"
    )
    assert (actor, target) == ("สมศรี", f"submission:{submission_id}")


def test_an_unverified_form_never_supersedes_a_verified_one_on_its_own(harness, tmp_path):
    """Chiang Mai sent its form from its roster address; a later form in its name from elsewhere
    waits (no receipt, no promise) and its sender is told so. Rejected, nothing changes;
    confirmed, it replaces the earlier version."""
    h = harness
    _on_roster(h)
    h.user.append(province_mail(1, CM, "แบบฟอร์ม จังหวัดเชียงใหม่", [valid_form("เชียงใหม่")]), ON_TIME)
    h.poll()
    [(first_receipt,)] = h.rows("select receipt from submission")
    h.user.append(province_mail(2, ATTACKER, "ส่งข้อมูลใหม่", [_form("เชียงใหม่", "นายปลอม แปลง")]),
                  ON_TIME)
    h.poll()
    rows = h.rows("select version, status, receipt, verified from submission order by version")
    assert rows == [(1, "valid", first_receipt, True), (2, "pending", None, False)]
    entity = _entity(h, "TH-50")
    assert (entity["receipt"], entity["verified"], entity["versions"]) == (first_receipt, True, 2)
    assert h.review_reasons() == ["unverified_pending"]
    assert sorted(_kinds(h)) == [
        ("acknowledgement", CM), ("notice", ATTACKER), ("notice", CM),
    ]  # fmt: skip
    told = next(m.message for m in h.smtp.messages if m.rcpt_tos == [ATTACKER])
    assert "[แจ้งเพื่อทราบ]" in told["Subject"] and "เลขรับ" not in told["Subject"]
    assert "รอผู้ประสานงานตรวจสอบยืนยัน" in body_of(told)
    assert told["In-Reply-To"] == "<m2@province.example>"

    cli = IntakeRunner(settings_env(tmp_path, h.url))
    [(item,)] = h.rows("select id from review_item where reason = 'unverified_pending'")
    cli("review", "reject", "--item", str(item), "--note", "ไม่ใช่เจ้าหน้าที่ของจังหวัด")
    assert h.rows("select status, receipt from submission where version = 2") == [
        ("invalid", None)
    ]
    assert h.rows("select state from review_item") == [("resolved",)]
    assert _entity(h, "TH-50")["receipt"] == first_receipt

    colleague = "cm.planning@gmail.com"
    h.user.append(province_mail(3, colleague, "ฉบับแก้ไข", [_form("เชียงใหม่", "นายสมศักดิ์ ช่วยงาน")]),
                  ON_TIME)
    h.poll()
    [(third,)] = h.rows("select id from submission where version = 3")
    cli("review", "confirm", "--item", str(_open_item(h, third)))
    [(status, receipt)] = h.rows("select status, receipt from submission where version = 3")
    assert status == "valid" and receipt and receipt != first_receipt
    entity = _entity(h, "TH-50")
    assert (entity["receipt"], entity["verified"]) == (receipt, True)


def test_a_roster_domain_verifies_with_dmarc_pass_only(tmp_path, database_url, imap_user,
                                                       smtp_server):
    """`domains` in the roster: an address of the province hall's own domain speaks for it when
    Gmail says DMARC pass; without that proof it is as unverified as any other address."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    provinces = config / "senders" / "provinces.csv"
    lines = provinces.read_text(encoding="utf-8").splitlines()
    out = [lines[0] + ",domains"]
    out += [line + (",chiangmai.go.th; @Mail.Example.Go.Th." if line.startswith("TH-50,")
                    else ",") for line in lines[1:]]
    provinces.write_text("\n".join(out) + "\n", encoding="utf-8")
    assert load_roster(config / "senders").by_id["TH-50"].domains == (
        "chiangmai.go.th", "mail.example.go.th",
    )  # fmt: skip
    h = _harness_with_config(tmp_path, database_url, imap_user, smtp_server, config)
    try:
        staff = "new.staff@chiangmai.go.th"
        raw = province_mail(1, staff, "แบบฟอร์ม", [valid_form("เชียงใหม่")])
        h.user.append(_with_auth(raw, GMAIL_PASS), ON_TIME)
        h.poll()
        assert h.rows("select status, verified from submission") == [("valid", True)]
        assert h.review_reasons() == []
        assert _kinds(h) == [("acknowledgement", staff)]
        assert "ยังไม่ได้รับการยืนยัน" not in body_of(h.smtp.messages[0].message)
        # the same domain with no Authentication-Results (no proof): unverified, it waits
        other = "other@chiangmai.go.th"
        h.user.append(province_mail(2, other, "แบบฟอร์ม", [_form("เชียงใหม่", "นางสาวอื่น ใด")]),
                      ON_TIME)
        h.poll()
        assert h.rows("select status, verified from submission where version = 2") == [
            ("pending", False)
        ]
        assert h.review_reasons() == ["unverified_pending"]
        assert h.rows("select count(*) from sender_address") == [(0,)]
    finally:
        h.close()


def test_a_value_without_at_is_never_an_address(harness):
    h = harness
    raw = province_mail(1, "<script>", "แบบฟอร์ม", [valid_form("เชียงใหม่")])
    h.user.append(raw, ON_TIME)
    h.poll()
    assert h.rows("select from_address from message") == [(None,)]  # parsing drops a non-address
    assert h.rows("select sender_id, verified from submission") == [("TH-50", False)]
    assert h.rows("select count(*) from sender_address") == [(0,)]
    assert h.rows("select count(*) from outbox") == [(0,)]
    with h.svc.factory.begin() as session:
        assert not queries.add_sender_address(session, "TH-50", "script", "config")
        assert not queries.address_is_known(session, "script")


# --- a reply to our own mail ---------------------------------------------------------------------------


def test_a_reply_to_our_mail_belongs_to_the_sender_it_was_about(harness):
    """The finding: a corrected form sent back from a colleague's address without the province's
    name landed in review as unknown and got a second correction for an unknown sender. Our
    Message-ID in In-Reply-To names Lamphun, before any name in the subject (here: Chiang Rai)."""
    h = harness
    office, colleague = "lamphun.office@gmail.com", "somsak.lp@gmail.com"
    h.user.append(province_mail(1, office, "ข้อมูลจังหวัดลำพูน", [invalid_form("ลำพูน")]), ON_TIME)
    h.poll()
    [(ours,)] = h.rows("select message_id_header from outbox")
    reply = province_mail(
        2, colleague, "Re: แก้ไขแล้ว (ส่งแทนเพื่อนที่เชียงราย)",
        [("fixed.xlsx", filled_form_bytes(""), XLSX)],  # the name cell left empty
        extra_headers=[f"In-Reply-To: {ours}", f"References: <m1@province.example> {ours}"],
    )
    h.user.append(reply, ON_TIME)
    h.poll()
    assert h.rows("select sender_id, version from submission order by id") == [
        ("TH-51", 1), ("TH-51", 2),
    ]  # fmt: skip
    assert "unknown_sender" not in h.review_reasons()
    second = h.smtp.messages[1].message
    assert h.smtp.messages[1].rcpt_tos == [colleague]
    assert "จังหวัดลำพูน" in body_of(second)  # it answers for Lamphun, not "unknown"


def test_our_receipt_number_in_the_subject_identifies_the_sender(harness):
    h = harness
    _on_roster(h)
    h.user.append(province_mail(1, CM, "แบบฟอร์ม จังหวัดเชียงใหม่", [valid_form("เชียงใหม่")]), ON_TIME)
    h.poll()
    [(receipt,)] = h.rows("select receipt from submission")
    thai_digits = receipt.translate(str.maketrans("0123456789", "๐๑๒๓๔๕๖๗๘๙"))
    h.user.append(
        province_mail(2, "helper@gmail.com", f"ขอแก้ไขข้อมูล อ้างถึงเลขรับที่ {thai_digits}",
                      [("v2.xlsx", form_with_errors_bytes(""), XLSX)]),
        ON_TIME,
    )
    h.poll()
    assert h.rows("select sender_id, status, verified from submission order by id") == [
        ("TH-50", "valid", True), ("TH-50", "invalid", False),
    ]  # fmt: skip
    assert "unknown_sender" not in h.review_reasons()


# --- backscatter ---------------------------------------------------------------------------------------


def test_dmarc_fail_gets_no_automatic_mail_whoever_it_claims_to_be(harness):
    """The finding: a mail forged as ceo@victim.example, marked dmarc=fail by Gmail, got a
    correction sent to the victim. Now it is stored and in review, and nothing is sent."""
    h = harness
    forged = "mx.google.com; spf=fail smtp.mailfrom=victim.example; dmarc=fail (p=REJECT) " \
             "header.from=victim.example"
    h.user.append(_with_auth(province_mail(1, "ceo@victim.example", "invoice", []), forged),
                  ON_TIME)
    h.user.append(_with_auth(province_mail(2, "ceo@victim.example", "แบบฟอร์ม",
                                           [valid_form("เชียงใหม่")]), forged), ON_TIME)
    h.poll()
    h.poll("2024-01-21T10:00:00+07:00")
    assert h.smtp.data_attempts == 0
    assert {s for (s,) in h.rows("select state from outbox")} == {"held"}
    assert h.rows("select count(*) from message") == [(2,)]
    assert h.rows("select status, receipt from submission") == [("invalid", None)]
    assert h.review_reasons().count("dmarc_fail") == 2


# --- offices that are not senders of this letter -------------------------------------------------------


def test_an_office_not_expected_gets_a_notice_no_receipt_and_is_not_reported(harness):
    """The finding: Bangkok's complete form got a receipt and "the latest correct version counts"
    although the letter did not ask Bangkok. Now: a notice, no receipt, review, not reported."""
    h = harness
    bkk = "saraban@bangkok.go.th"
    h.user.append(province_mail(1, bkk, "ข้อมูลกรุงเทพมหานคร", [valid_form("กรุงเทพมหานคร")]),
                  ON_TIME)
    h.poll()
    assert h.rows("select sender_id, status, receipt from submission") == [
        ("TH-10", "pending", None)
    ]
    assert h.review_reasons() == ["unexpected_sender"]
    [sent] = h.smtp.messages
    assert sent.message["X-Intake-Kind"] == "notice" and sent.rcpt_tos == [bkk]
    body = body_of(sent.message)
    assert "ไม่อยู่ในรายชื่อหน่วยงานที่ต้องจัดส่งข้อมูล" in body and "ไม่ออกเลขรับ" in body
    assert "ระบบจะถือฉบับล่าสุด" not in body and "[เลขรับ" not in sent.message["Subject"]
    report = _report(h)
    assert "TH-10" not in {e["id"] for e in report["entities"]}
    assert report["summary"]["accepted"] == 0


def test_every_mail_kind_is_one_of_the_contract(harness):
    """acknowledgement, correction, reminder, notice: nothing else reaches a sender."""
    from intake.reminders import queue_due_reminders

    h = harness
    _on_roster(h)
    h.user.append(province_mail(1, CM, "เชียงใหม่", [valid_form("เชียงใหม่")]), ON_TIME)
    h.user.append(province_mail(2, "x@lamphun.go.th", "ลำพูน", [invalid_form("ลำพูน")]), ON_TIME)
    h.user.append(province_mail(3, ATTACKER, "x", [_form("เชียงใหม่", "นายปลอม แปลง")]), ON_TIME)
    h.user.append(province_mail(4, "a@bangkok.go.th", "x", [valid_form("กรุงเทพมหานคร")]), ON_TIME)
    h.poll()
    _on_roster(h, "TH-52", "saraban@lampang.go.th")
    h.at("2024-01-21T09:00:00+07:00")
    queue_due_reminders(h.svc)
    h.send()
    kinds = {m.message["X-Intake-Kind"] for m in h.smtp.messages}
    assert kinds == {"acknowledgement", "correction", "notice", "reminder"}


# --- helpers -------------------------------------------------------------------------------------------


def _report(h: Harness) -> dict[str, Any]:
    from intake.reports import build_report, to_json

    with h.svc.factory() as session:
        report = build_report(session, h.svc.settings.deadline, h.svc.clock.now())
    return dict(json.loads(to_json(report)))


def _entity(h: Harness, sender_id: str) -> dict[str, Any]:
    return dict(next(e for e in _report(h)["entities"] if e["id"] == sender_id))


def _open_item(h: Harness, submission_id: int) -> int:
    [(item,)] = h.rows(
        "select id from review_item where submission_id = :s and state = 'open'", s=submission_id
    )
    return int(item)


def _harness_with_config(
    tmp_path: Path, database_url: str, imap_user: Any, smtp: Any, config: Path
) -> Harness:
    imap, user = imap_user
    settings = load_settings(
        tmp_path / "absent.toml", config_dir=config, data_dir=tmp_path / "var",
        database_url=database_url, imap=imap, smtp=smtp.smtp_settings(),
        now=datetime.fromisoformat(NOW),
    )  # fmt: skip
    return Harness(open_services(settings), user, smtp, database_url)


def test_the_page_confirms_and_rejects_like_the_command(tmp_path, database_url):
    """The review queue on the page offers confirm and reject for a form from an unverified
    address; each is one `intake.review` action with its audit event."""
    import warnings

    from intake.pipeline import import_files
    from storage.session import migrate
    from tests.coordinator_seed import seed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from intake.web import create_app

    migrate(database_url)
    db = seed(tmp_path, database_url)
    for n, contact in ((1, "นายปลอม แปลง"), (2, "นายสมศักดิ์ ช่วยงาน")):
        raw = province_mail(60 + n, f"helper{n}@gmail.com", "ส่งข้อมูล", [_form("เชียงใหม่", contact)])
        import_files(db.svc, [(raw, datetime.fromisoformat(f"2024-01-19T1{n}:00:00+07:00"))])
    with db.svc.factory() as session:
        from sqlalchemy import text

        waiting = dict(
            session.execute(
                text(
                    "select m.from_address, s.id from submission s join message m "
                    "on m.id = s.message_id where s.status = 'pending' order by s.id"
                )
            ).all()
        )
    assert set(waiting) == {"helper1@gmail.com", "helper2@gmail.com"}
    client = TestClient(create_app(db.svc, "127.0.0.1"), base_url="http://127.0.0.1",
                        follow_redirects=False)
    page = client.get("/review", headers={"accept": "text/html"}).text
    assert 'data-action="confirm"' in page and 'value="confirm"' in page
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    csrf = page[start : page.index('"', start)]
    for action, address, note in (("reject", "helper1@gmail.com", "ไม่รู้จัก"),
                                  ("confirm", "helper2@gmail.com", "")):
        done = client.post("/act", data={"action": action, "csrf": csrf, "next": "/review",
                                          "submission_id": str(waiting[address]), "note": note})
        assert done.status_code == 303
    with db.svc.factory() as session:
        from sqlalchemy import text

        statuses = dict(
            session.execute(
                text("select id, status from submission where id in (:a, :b)"),
                {"a": waiting["helper1@gmail.com"], "b": waiting["helper2@gmail.com"]},
            ).all()
        )
        actions = [a for (a,) in session.execute(text("select action from audit_event order by id"))]
        learned = session.execute(
            text("select source from sender_address where address = 'helper2@gmail.com'")
        ).scalar_one()
    assert statuses == {waiting["helper1@gmail.com"]: "invalid", waiting["helper2@gmail.com"]: "valid"}
    assert actions[-2:] == ["reject_submission", "confirm_sender"] and learned == "confirmed"
    db.svc.factory.kw["bind"].dispose()


def test_the_senders_page_shows_a_waiting_unverified_form_as_such(tmp_path, database_url):
    import warnings

    from intake.pipeline import import_files
    from storage.session import migrate
    from tests.coordinator_seed import seed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from intake.web import create_app

    migrate(database_url)
    db = seed(tmp_path, database_url)
    raw = province_mail(70, ATTACKER, "ส่งข้อมูล", [_form("เชียงใหม่", "นายปลอม แปลง")])
    import_files(db.svc, [(raw, datetime.fromisoformat("2024-01-19T11:00:00+07:00"))])
    client = TestClient(create_app(db.svc, "127.0.0.1"), base_url="http://127.0.0.1")
    page = client.get("/sender/TH-50", headers={"accept": "text/html"}).text
    assert "รอผู้ประสานงานพิจารณา" in page and "ผู้ส่งยังไม่ยืนยัน" in page
    db.svc.factory.kw["bind"].dispose()


def test_a_replay_keeps_the_coordinators_decisions_and_asks_nothing_twice(harness, tmp_path):
    """`intake reprocess` after confirm / accept / reject: the same outcome, no new review item,
    no second mail."""
    from intake.pipeline import reprocess

    h = harness
    _on_roster(h)
    h.user.append(province_mail(9, CM, "เชียงใหม่", [valid_form("เชียงใหม่")]), ON_TIME)
    for n, sender in ((1, "a@gmail.com"), (2, "b@gmail.com"), (3, "c@gmail.com")):
        h.user.append(province_mail(n, sender, "x", [_form("เชียงใหม่", f"นาย ก {n}")]), ON_TIME)
    h.poll()  # Chiang Mai's own form (v1); a, b and c wait (v2-v4)
    rows = h.rows("select id, version, status, verified from submission order by version")
    assert [r[1:] for r in rows] == [
        (1, "valid", True), (2, "pending", False), (3, "pending", False), (4, "pending", False),
    ]  # fmt: skip
    ids = [str(r[0]) for r in rows]
    cli = IntakeRunner(settings_env(tmp_path, h.url))
    cli("review", "accept", ids[1], "--note", "ตรวจแล้ว")
    cli("review", "confirm", ids[2])
    cli("review", "reject", ids[3], "--note", "ไม่ใช่")
    before = (h.rows("select version, status, verified, receipt from submission order by version"),
              h.rows("select count(*) from outbox"))
    assert [tuple(r[1:3]) for r in before[0]] == [
        ("valid", True), ("valid", True), ("valid", True), ("invalid", False),
    ]  # fmt: skip
    assert h.rows("select count(*) from review_item where state = 'open'") == [(0,)]
    reprocess(h.svc)
    after = (h.rows("select version, status, verified, receipt from submission order by version"),
             h.rows("select count(*) from outbox"))
    assert after == before
    assert h.rows("select count(*) from review_item where state = 'open'") == [(0,)]


# --- the pure rules behind the above ---------------------------------------------------------------


def test_receipt_numbers_are_read_only_after_the_word_for_them():
    from intake.identify import receipts_in

    assert receipts_in("Re: ส่งข้อมูล [เลขรับ 2567-0001]") == ["2567-0001"]
    assert receipts_in("อ้างถึงเลขรับที่ ๒๕๖๗-๐๐๔๒ และเลขรับ: 2567-0042") == ["2567-0042"]
    assert receipts_in("แผนงานปี 2567-2570") == []


def test_the_thread_comes_after_a_known_address_and_before_names():
    from intake.identify import Identifier

    roster = load_roster(CONFIG_DIR / "senders")
    ident = Identifier(roster, {"TH-50": {CM}})
    assert ident.for_message("x@gmail.com", "ข้อมูลจังหวัดเชียงราย", "", "TH-51").sender_id == "TH-51"
    assert ident.for_message(CM, "", "", "TH-51").sender_id == "TH-50"
    assert ident.for_message("x@gmail.com", "เชียงราย", "", "TH-99").sender_id == "TH-57"
    assert ident.by_address("script").reason == "unknown"


def test_every_gmail_spelling_of_our_mailbox_is_the_same_mailbox():
    from intake.message import mailbox_key

    ours = mailbox_key("Jpp.moi9999@gmail.com")
    for spelling in ("jppmoi9999@gmail.com", "J.P.P.MOI9999@googlemail.com",
                     "jpp.moi9999+intake@gmail.com", "<jppmoi9999@GMAIL.COM>"):
        assert mailbox_key(spelling) == ours, spelling
    assert mailbox_key("jpp.moi9999@chiangmai.go.th") != ours
    assert mailbox_key("saraban+x@chiangmai.go.th") == "saraban@chiangmai.go.th"
