"""Spoofing: only our receiving server's topmost Authentication-Results counts (intake/auth.py),
and a roster address that fails DMARC gets no acknowledgement (the pipeline, end to end)."""

from __future__ import annotations

import pytest

from intake import message as mail
from intake.auth import aligned, dmarc_verdict, parse_authentication_results, trusted_results
from tests.replies_env import ON_TIME, make_harness, valid_form
from tests.replies_env import mail as province_mail

GMAIL_PASS = (
    "mx.google.com;\r\n       dkim=pass header.i=@chiangmai.go.th header.s=s1 header.b=AbC;\r\n"
    "       spf=pass (google.com: domain of saraban@chiangmai.go.th designates 203.0.113.5 as "
    "permitted sender; x=y) smtp.mailfrom=saraban@chiangmai.go.th;\r\n"
    "       dmarc=pass (p=QUARANTINE sp=QUARANTINE dis=NONE) header.from=chiangmai.go.th"
)
GMAIL_FAIL = (
    "mx.google.com; spf=softfail (google.com: domain of transitioning x@chiangmai.go.th does not "
    "designate 198.51.100.7 as permitted sender) smtp.mailfrom=x@chiangmai.go.th; "
    "dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=chiangmai.go.th"
)


def headers(*auth_results: str) -> dict[str, list[str]]:
    return {"authentication-results": list(auth_results)}


def test_gmail_header_with_comments_holding_separators_parses():
    parsed = parse_authentication_results(GMAIL_PASS)
    assert parsed is not None and parsed.authserv_id == "mx.google.com"
    assert [(r.method, r.result) for r in parsed.results] == [
        ("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass"),
    ]
    assert parsed.of("dkim")[0].properties["header.i"] == "@chiangmai.go.th"
    assert parsed.of("spf")[0].properties["smtp.mailfrom"] == "saraban@chiangmai.go.th"
    assert parsed.of("dmarc")[0].properties["header.from"] == "chiangmai.go.th"


def test_no_results_and_versions_and_junk_are_tolerated():
    assert parse_authentication_results("mx.google.com; none").results == ()
    versioned = parse_authentication_results('mx.google.com 1; dkim/1=pass header.d="a.go.th"')
    assert versioned is not None and versioned.of("dkim")[0].properties["header.d"] == "a.go.th"
    assert parse_authentication_results("") is None
    assert parse_authentication_results("(only a comment)") is None


def test_only_the_topmost_header_of_our_server_is_trusted():
    forged_pass = "mx.google.com; dmarc=pass header.from=chiangmai.go.th"
    # Gmail prepends its header: a sender-written one sits below it and is ignored
    verdict = dmarc_verdict(headers(GMAIL_FAIL, forged_pass), "mx.google.com", "x@chiangmai.go.th")
    assert verdict.outcome == "fail"
    # another authserv-id, even above ours, is ignored
    other = "evil.example; dmarc=pass header.from=chiangmai.go.th"
    verdict = dmarc_verdict(headers(other, GMAIL_FAIL), "mx.google.com", "x@chiangmai.go.th")
    assert verdict.outcome == "fail"
    assert trusted_results(headers(other), "mx.google.com") is None
    # the authserv-id is configurable and compared without case
    assert trusted_results(headers("MX.Example.Org; dmarc=pass"), "mx.example.org") is not None


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        (GMAIL_PASS, "pass"),
        (GMAIL_FAIL, "fail"),
        # no DMARC record (many .go.th domains): an aligned DKIM or SPF pass is enough
        ("mx.google.com; dkim=pass header.d=chiangmai.go.th", "pass"),
        ("mx.google.com; dkim=pass header.i=@mail.chiangmai.go.th", "pass"),
        ("mx.google.com; spf=pass smtp.mailfrom=bounce@chiangmai.go.th", "pass"),
        ("mx.google.com; dmarc=none; spf=pass smtp.mailfrom=chiangmai.go.th", "pass"),
        ("mx.google.com; dmarc=bestguesspass; dkim=pass header.d=chiangmai.go.th", "pass"),
        # passes that do not align with the From domain prove nothing about it
        ("mx.google.com; dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=evil.example",
         "fail"),
        ("mx.google.com; dkim=pass header.d=notchiangmai.go.th", "fail"),
        ("mx.google.com; dmarc=temperror; spf=neutral smtp.mailfrom=chiangmai.go.th", "fail"),
        ("mx.google.com; dmarc=none", "fail"),
        ("mx.google.com; none", "fail"),
        ("mx.google.com; dmarc=fail; dkim=pass header.d=chiangmai.go.th", "fail"),
    ],
)
def test_dmarc_rule(value, outcome):
    verdict = dmarc_verdict(headers(value), "mx.google.com", "saraban@chiangmai.go.th")
    assert verdict.outcome == outcome, verdict.reason


def test_no_header_from_our_server_is_unknown():
    assert dmarc_verdict({}, "mx.google.com", "a@chiangmai.go.th").outcome == "unknown"
    only_other = headers("other.example; dmarc=fail")
    assert dmarc_verdict(only_other, "mx.google.com", "a@chiangmai.go.th").outcome == "unknown"


def test_alignment_is_relaxed_but_not_a_suffix_match():
    assert aligned("chiangmai.go.th", "CHIANGMAI.GO.TH")
    assert aligned("@mail.chiangmai.go.th", "chiangmai.go.th")
    assert aligned("saraban@chiangmai.go.th", "mail.chiangmai.go.th")
    assert not aligned("xchiangmai.go.th", "chiangmai.go.th")
    assert not aligned("", "chiangmai.go.th")


def test_parsed_message_keeps_headers_topmost_first():
    raw = province_mail(
        1, "saraban@chiangmai.go.th", "ส่งข้อมูล",
        extra_headers=["Authentication-Results: mx.google.com; dmarc=pass header.from=evil"],
    )
    raw = f"Authentication-Results: {GMAIL_FAIL}\r\n".encode() + raw
    parsed = mail.parse(raw)
    verdict = dmarc_verdict(parsed.headers, "mx.google.com", parsed.from_address)
    assert verdict.outcome == "fail"


# --- in the pipeline -------------------------------------------------------------------------------


def _spoofed(n: int, sender: str, result: str, province: str = "เชียงใหม่") -> bytes:
    raw = province_mail(n, sender, f"แบบฟอร์มข้อมูล จังหวัด{province}", [valid_form(province)])
    return f"Authentication-Results: {result}\r\n".encode() + raw


@pytest.fixture
def harness(tmp_path, database_url, imap_user, smtp_server):
    h = make_harness(tmp_path, database_url, imap_user, smtp_server)
    yield h
    h.close()


def test_a_roster_address_failing_dmarc_is_stored_but_not_accepted_nor_answered(harness):
    h = harness
    # the roster has this address (addresses are no longer learned from a form); the first form
    # has no Authentication-Results: unknown, not held
    with h.svc.factory.begin() as session:
        from storage import queries

        queries.add_sender_address(session, "TH-50", "saraban@chiangmai.go.th", "config")
    h.user.append(province_mail(1, "saraban@chiangmai.go.th", "เชียงใหม่",
                                [valid_form("เชียงใหม่")]), ON_TIME)
    h.poll()
    assert len(h.smtp.messages) == 1
    h.user.append(_spoofed(2, "saraban@chiangmai.go.th", GMAIL_FAIL, "ลำพูน"), ON_TIME)
    h.poll()
    assert len(h.smtp.messages) == 1  # nothing went to the claimed address
    # stored, but not accepted: it needs the coordinator (failure mode 55)
    assert h.rows("select status, receipt from submission where sender_id = 'TH-51'") == [
        ("invalid", None)
    ]
    assert h.rows("select code from problem where code = 'sender_unverified'") == [
        ("sender_unverified",)
    ]
    states = h.rows("select kind, state, last_error from outbox order by id")
    assert [s[:2] for s in states] == [("acknowledgement", "sent"), ("correction", "held")]
    assert "dmarc=fail" in states[1][2]
    assert h.review_reasons() == ["dmarc_fail"]
    [(detail, message_id)] = h.rows("select detail, message_id from review_item")
    assert "saraban@chiangmai.go.th" in detail and message_id is not None
    h.poll()  # a later cycle never sends a held row
    assert len(h.smtp.messages) == 1


def test_a_configured_roster_address_with_an_aligned_pass_is_answered(harness):
    h = harness
    with h.svc.factory.begin() as session:
        from storage import queries

        queries.add_sender_address(session, "TH-50", "saraban@chiangmai.go.th", "coordinator")
    h.user.append(_spoofed(3, "saraban@chiangmai.go.th",
                           "mx.google.com; spf=pass smtp.mailfrom=saraban@chiangmai.go.th"), ON_TIME)
    h.poll()
    assert [m.message["X-Intake-Kind"] for m in h.smtp.messages] == ["acknowledgement"]
    assert h.review_reasons() == []


def test_an_address_not_on_the_roster_is_held_only_on_an_explicit_dmarc_fail(harness):
    """The stricter rule (no DMARC policy and no aligned pass) is for roster addresses only; an
    explicit `dmarc=fail` holds whoever the From claims to be (tests/test_trust.py)."""
    h = harness
    soft = "mx.google.com; dmarc=none; spf=neutral smtp.mailfrom=other.example"
    h.user.append(_spoofed(4, "someone@example.org", soft), ON_TIME)
    h.poll()
    assert [m.rcpt_tos for m in h.smtp.messages] == [["someone@example.org"]]
    assert "dmarc_fail" not in h.review_reasons()


def test_require_dmarc_false_turns_the_check_off(harness):
    h = harness
    h.svc.settings.replies.require_dmarc = False
    with h.svc.factory.begin() as session:
        from storage import queries

        queries.add_sender_address(session, "TH-50", "saraban@chiangmai.go.th", "config")
    h.user.append(_spoofed(5, "saraban@chiangmai.go.th", GMAIL_FAIL), ON_TIME)
    h.poll()
    assert len(h.smtp.messages) == 1
    assert h.review_reasons() == []
