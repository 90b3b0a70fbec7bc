"""intake.mailbox against a real Dovecot (tests/servers.py)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from intake.errors import MailboxLoginFailed, MailboxUnavailable
from intake.mailbox import FolderState, Mailbox
from intake.settings import ImapSettings
from tests.servers import DovecotServer, DovecotUser, StubTcpServer, free_port

BANGKOK = timezone(timedelta(hours=7))


def make_raw(n: int = 1, *, message_id: str | None = None) -> bytes:
    """A submission-like message with 8-bit UTF-8 Thai in headers and body, CRLF line ends."""
    mid = message_id or f"<m{n}.{uuid.uuid4().hex}@example.go.th>"
    return (
        f"From: =?utf-8?b?4LiI4Lix4LiH4Lir4Lin4Lix4LiU?= <province{n}@example.go.th>\r\n"
        "To: intake@example.test\r\n"
        f"Subject: แบบรายงาน ฉบับที่ {n}\r\n"
        f"Message-ID: {mid}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"ส่งแบบฟอร์มครั้งที่ {n}\r\n"
        "line with trailing spaces   \r\n"
    ).encode()


@pytest.fixture
def user(imap_user: tuple[ImapSettings, DovecotUser]) -> DovecotUser:
    return imap_user[1]


@pytest.fixture
def private_dovecot() -> Iterator[DovecotServer]:
    """A Dovecot of this test's own, for stopping and restarting."""
    server = DovecotServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer(tls=True).start()
    yield server
    server.stop()


# --------------------------------------------------------------------------- state and UIDs


def test_state_reports_uidvalidity_uidnext_and_exists(user: DovecotUser) -> None:
    with Mailbox(user.settings()) as box:
        empty = box.state()
    assert empty.folder == "INBOX"
    assert empty.exists == 0
    assert empty.uidnext == 1
    assert empty.uidvalidity > 0

    user.append(make_raw(1))
    user.append(make_raw(2))
    with Mailbox(user.settings()) as box:
        state = box.state()
    with user.client() as client:
        seen_by_other = client.select_folder("INBOX", readonly=True)
    assert state == FolderState(
        folder="INBOX",
        uidvalidity=seen_by_other[b"UIDVALIDITY"],
        uidnext=3,
        exists=2,
    )
    assert state.uidvalidity == empty.uidvalidity


def test_state_is_fresh_within_one_session(user: DovecotUser) -> None:
    with Mailbox(user.settings()) as box:
        assert box.state().exists == 0
        user.append(make_raw(1))  # another connection
        assert box.state().exists == 1
        assert box.uids_after(0) == [1]


def test_uids_after_on_an_empty_folder_is_empty(user: DovecotUser) -> None:
    with Mailbox(user.settings()) as box:
        assert box.uids_after(0) == []
        assert box.uids_after(41) == []


def test_uids_after_lists_only_higher_uids_and_never_the_last_one_again(
    user: DovecotUser,
) -> None:
    uids = [user.append(make_raw(n)) for n in range(1, 4)]
    assert uids == [1, 2, 3]
    with Mailbox(user.settings()) as box:
        assert box.uids_after(0) == [1, 2, 3]
        assert box.uids_after(1) == [2, 3]
        assert box.uids_after(2) == [3]
        # "UID 4:*" matches UID 3 on the server (n:* includes the highest): filtered out
        assert box.uids_after(3) == []
        assert box.uids_after(1000) == []
        with pytest.raises(ValueError):
            box.uids_after(-1)


# --------------------------------------------------------------------------- fetch


def test_fetch_returns_the_exact_bytes_and_the_append_internaldate(user: DovecotUser) -> None:
    raw = make_raw(7)
    received = datetime(2024, 1, 22, 23, 59, 58, tzinfo=BANGKOK)  # 2 s before the deadline
    uid = user.append(raw, internaldate=received)
    with Mailbox(user.settings()) as box:
        uidvalidity = box.state().uidvalidity
        (message,) = list(box.fetch([uid]))
    assert message.uid == uid
    assert message.uidvalidity == uidvalidity
    assert message.raw == raw
    assert message.internaldate.tzinfo is not None
    assert message.internaldate.utcoffset() is not None
    assert message.internaldate == received
    assert message.internaldate.astimezone(BANGKOK).isoformat() == "2024-01-22T23:59:58+07:00"


def test_fetch_of_nothing_yields_nothing(user: DovecotUser) -> None:
    user.append(make_raw(1))
    with Mailbox(user.settings()) as box:
        assert list(box.fetch([])) == []


def test_fetch_asks_the_server_in_batches_of_batch_size(
    user: DovecotUser, caplog: pytest.LogCaptureFixture
) -> None:
    raws = [make_raw(n) for n in range(1, 6)]
    uids = [user.append(raw) for raw in raws]
    caplog.set_level(logging.DEBUG, logger="imapclient.imaplib")
    with Mailbox(user.settings(batch_size=2)) as box:
        caplog.clear()
        messages = list(box.fetch(box.uids_after(0)))
    fetch_commands = [
        r.getMessage()
        for r in caplog.records
        if "UID FETCH" in r.getMessage() and "BODY.PEEK[]" in r.getMessage()
    ]
    assert len(fetch_commands) == 3, fetch_commands  # 2 + 2 + 1
    assert [m.uid for m in messages] == uids
    assert [m.raw for m in messages] == raws


def test_fetch_yields_each_batch_before_asking_for_the_next(user: DovecotUser) -> None:
    uids = [user.append(make_raw(n)) for n in range(1, 6)]
    with Mailbox(user.settings(batch_size=2)) as box:
        stream = box.fetch(uids)
        first = [next(stream), next(stream)]
        # the last message disappears after the first batch arrived: a lazy fetch skips it
        with user.client() as client:
            client.select_folder("INBOX")
            client.move([uids[4]], "Trash")
        rest = list(stream)
    assert [m.uid for m in first] == uids[:2]
    assert [m.uid for m in rest] == uids[2:4]


def test_fetch_never_sets_seen_and_seen_mail_is_still_listed(user: DovecotUser) -> None:
    unread = user.append(make_raw(1))
    already_read = user.append(make_raw(2), flags=[r"\Seen"])  # opened in the web UI
    with Mailbox(user.settings()) as box:
        assert box.uids_after(0) == [unread, already_read]
        fetched = list(box.fetch([unread, already_read]))
    assert [m.uid for m in fetched] == [unread, already_read]
    assert r"\Seen" not in user.flags(unread)
    assert r"\Seen" in user.flags(already_read)


# --------------------------------------------------------------------------- mark_done


def test_mark_done_keyword_adds_the_keyword_and_nothing_else(user: DovecotUser) -> None:
    done, other = user.append(make_raw(1)), user.append(make_raw(2))
    with Mailbox(user.settings(mark="keyword", done_keyword="$IntakeDone")) as box:
        box.mark_done([done])
        box.mark_done([done])  # idempotent
        assert box.uids_after(0) == [done, other]  # still in the folder
    assert user.flags(done) == ("$IntakeDone",)
    assert user.flags(other) == ()


def test_mark_done_move_files_into_the_done_folder_without_deleting(user: DovecotUser) -> None:
    raws = [make_raw(n) for n in range(1, 4)]
    uids = [user.append(raw) for raw in raws]
    settings = user.settings(mark="move", done_folder="intake/processed")
    with Mailbox(settings) as box:
        box.mark_done(uids[:2])  # the folder does not exist yet
        box.mark_done(uids[:2])  # already moved: no error
        assert box.uids_after(0) == [uids[2]]
        assert box.state().exists == 1
    assert user.uids("INBOX") == [uids[2]]
    with user.client() as client:
        client.select_folder("intake/processed", readonly=True)
        moved = client.fetch(client.search("ALL"), ["BODY.PEEK[]", "FLAGS"])
    assert sorted(item[b"BODY[]"] for item in moved.values()) == sorted(raws[:2])
    assert all(b"\\Deleted" not in item[b"FLAGS"] for item in moved.values())


def test_mark_done_sends_one_command_per_batch_size(
    user: DovecotUser, caplog: pytest.LogCaptureFixture
) -> None:
    """A backlog is filed in commands of batch_size UIDs: the command line and the parsed answer
    stay the same size however many messages there are."""
    uids = [user.append(make_raw(n)) for n in range(1, 6)]
    caplog.set_level(logging.DEBUG, logger="imapclient.imaplib")

    def commands(verb: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if f"UID {verb} " in r.getMessage()]

    with Mailbox(user.settings(batch_size=2, done_keyword="$Done")) as box:
        caplog.clear()
        box.mark_done(uids)
        assert len(commands("STORE")) == 3, commands("STORE")  # 2 + 2 + 1
    assert all(user.flags(uid) == ("$Done",) for uid in uids)
    with Mailbox(user.settings(batch_size=2, mark="move", done_folder="done")) as box:
        caplog.clear()
        box.mark_done(uids)
        assert len(commands("MOVE")) == 3, commands("MOVE")
    assert user.uids("INBOX") == [] and len(user.uids("done")) == 5


def test_mark_done_gmail_label_on_a_plain_server_falls_back_to_the_keyword(
    user: DovecotUser,
) -> None:
    uid = user.append(make_raw(1))
    with Mailbox(user.settings(mark="gmail-label", done_keyword="$Done")) as box:
        box.mark_done([uid])
    assert user.flags(uid) == ("$Done",)
    assert user.uids("INBOX") == [uid]


# --------------------------------------------------------------------------- failures


def test_wrong_password_raises_login_failed_without_the_password_and_without_retry(
    user: DovecotUser,
) -> None:
    secret = "Wr0ng-Secret-" + uuid.uuid4().hex
    settings = user.settings(password=secret)
    started = time.monotonic()
    # a retry would wait 5 s first: login failures must not be retried
    with (
        pytest.raises(MailboxLoginFailed) as caught,
        Mailbox(settings, connect_attempts=3, retry_wait=5.0),
    ):
        pass
    assert time.monotonic() - started < 4.0
    text = str(caught.value)
    assert secret not in text and secret not in repr(caught.value)
    assert user.name in text
    assert "AUTHENTICATIONFAILED" in text or "Authentication failed" in text


def test_unknown_folder_is_reported_as_unavailable(user: DovecotUser) -> None:
    with (
        pytest.raises(MailboxUnavailable, match="Nonexistent") as caught,
        Mailbox(user.settings(folder="Nonexistent"), connect_attempts=1),
    ):
        pass
    assert not isinstance(caught.value, MailboxLoginFailed)
    assert user.password not in str(caught.value)


def test_closed_port_raises_unavailable_fast(user: DovecotUser) -> None:
    settings = user.settings(port=free_port(), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(MailboxUnavailable) as caught, Mailbox(settings, connect_attempts=1):
        pass
    assert time.monotonic() - started < 1.0
    assert not isinstance(caught.value, MailboxLoginFailed)
    assert f"127.0.0.1:{settings.port}" in str(caught.value)
    assert user.password not in str(caught.value)


def test_transient_connect_failures_are_retried_then_reported(user: DovecotUser) -> None:
    with StubTcpServer(close=True) as stub:  # accepts, then hangs up at once
        settings = user.settings(port=stub.port, timeout=2.0)
        with (
            pytest.raises(MailboxUnavailable),
            Mailbox(settings, connect_attempts=3, retry_wait=0.05, retry_wait_max=0.1),
        ):
            pass
        assert stub.accepted == 3


@pytest.mark.parametrize(
    "greeting", [None, b"* OK IMAP4rev1 ready\r\n"], ids=["silent", "silent-after-greeting"]
)
def test_server_that_never_answers_times_out_instead_of_hanging(
    user: DovecotUser, greeting: bytes | None
) -> None:
    with StubTcpServer(greeting=greeting) as stub:
        settings = user.settings(port=stub.port, timeout=1.0)
        started = time.monotonic()
        with (
            pytest.raises(MailboxUnavailable, match="no answer within 1 s") as caught,
            Mailbox(settings, connect_attempts=1),
        ):
            pass
        elapsed = time.monotonic() - started
        assert stub.accepted == 1
    assert 0.9 <= elapsed < 3.0
    assert user.password not in str(caught.value)


def test_connect_retry_reaches_a_server_that_comes_back(private_dovecot: DovecotServer) -> None:
    user = private_dovecot.user()
    user.append(make_raw(1))
    private_dovecot.halt()
    timer = threading.Timer(0.4, private_dovecot.start)
    timer.start()
    try:
        with Mailbox(user.settings(timeout=2.0), connect_attempts=6, retry_wait=0.2) as box:
            assert box.uids_after(0) == [1]
    finally:
        timer.join()


def test_a_restart_between_and_during_sessions(private_dovecot: DovecotServer) -> None:
    user = private_dovecot.user()
    raw = make_raw(1)
    uid = user.append(raw)
    with Mailbox(user.settings()) as box:
        before = box.state()
    private_dovecot.restart()
    with Mailbox(user.settings()) as box:
        assert box.state() == before
        assert [m.raw for m in box.fetch(box.uids_after(0))] == [raw]

        private_dovecot.restart()  # the server goes away under an open session
        with pytest.raises(MailboxUnavailable):
            box.uids_after(0)
        with pytest.raises(MailboxUnavailable):  # the broken session stays refused
            box.state()
        box.reconnect()
        assert box.uids_after(0) == [uid]

        private_dovecot.halt()
    # __exit__ on a dead server does not raise (we got here)


def test_a_crash_mid_fetch_raises_and_a_new_session_resumes_without_loss(
    private_dovecot: DovecotServer,
) -> None:
    user = private_dovecot.user()
    raws = [make_raw(n) for n in range(1, 5)]
    uids = [user.append(raw) for raw in raws]
    got = []
    with Mailbox(user.settings(batch_size=1)) as box:
        stream = box.fetch(box.uids_after(0))
        got.append(next(stream))
        private_dovecot.crash()
        with pytest.raises(MailboxUnavailable):
            next(stream)
        private_dovecot.start()
        box.reconnect()
        got.extend(box.fetch(box.uids_after(got[-1].uid)))
    assert [m.uid for m in got] == uids
    assert [m.raw for m in got] == raws


def test_uidvalidity_change_is_visible_in_state(user: DovecotUser) -> None:
    user.append(make_raw(1))
    with Mailbox(user.settings()) as box:
        old = box.state().uidvalidity
    new = old + 1000
    user.set_uidvalidity("INBOX", new)
    with Mailbox(user.settings()) as box:
        state = box.state()
        (message,) = list(box.fetch(box.uids_after(0)))
    assert state.uidvalidity == new
    assert message.uidvalidity == new


# --------------------------------------------------------------------------- other folders


def test_sent_folder_is_found_by_special_use_and_searched_by_message_id(
    user: DovecotUser,
) -> None:
    inbox_uid = user.append(make_raw(1))
    user.append(make_raw(2, message_id="<ack-42.abc@intake.moi.local>"), folder="Sent")
    with Mailbox(user.settings()) as box:
        sent = box.sent_folder()
        assert sent == "Sent"
        assert box.find_message_id(sent, "<ack-42.abc@intake.moi.local>")
        assert box.find_message_id(sent, "ack-42.abc@intake.moi.local")
        # the server's SEARCH matches substrings; the exact header is what counts
        assert not box.find_message_id(sent, "ack-42.abc@intake.moi")
        assert not box.find_message_id(sent, "<ack-4@intake.moi.local>")
        assert not box.find_message_id("INBOX", "ack-42.abc@intake.moi.local")
        # the session is back on its own folder afterwards
        assert box.state().folder == "INBOX"
        assert box.uids_after(0) == [inbox_uid]
        with pytest.raises(ValueError):
            box.find_message_id(sent, "has space@x")


def test_configured_sent_folder_wins_over_special_use(user: DovecotUser) -> None:
    with Mailbox(user.settings(sent_folder="Archive/Sent")) as box:
        assert box.sent_folder() == "Archive/Sent"


def test_append_stores_bytes_and_internaldate_and_returns_the_uid(user: DovecotUser) -> None:
    raw = make_raw(3)
    when = datetime(2024, 1, 15, 8, 30, tzinfo=BANGKOK)
    with Mailbox(user.settings()) as box:
        uid = box.append("Sent", raw, internaldate=when, flags=[r"\Seen"])
        assert box.find_message_id("Sent", make_raw_message_id(raw))
    assert uid is not None
    assert user.uids("Sent") == [uid]
    assert r"\Seen" in user.flags(uid, folder="Sent")
    with user.client() as client:
        client.normalise_times = False
        client.select_folder("Sent", readonly=True)
        data = client.fetch([uid], ["BODY.PEEK[]", "INTERNALDATE"])[uid]
    assert data[b"BODY[]"] == raw
    assert data[b"INTERNALDATE"] == when


def make_raw_message_id(raw: bytes) -> str:
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError("no Message-ID")


# --------------------------------------------------------------------------- IDLE


def test_idle_wait_times_out_without_mail_and_wakes_on_new_mail(user: DovecotUser) -> None:
    with Mailbox(user.settings()) as box:
        assert box.supports_idle()
        started = time.monotonic()
        assert box.idle_wait(0.5) is False
        assert 0.4 <= time.monotonic() - started < 2.0

        timer = threading.Timer(0.3, user.append, args=(make_raw(1),))
        timer.start()
        started = time.monotonic()
        try:
            assert box.idle_wait(10.0) is True
        finally:
            timer.join()
        assert time.monotonic() - started < 5.0
        assert box.uids_after(0) == [1]  # the session is usable after IDLE


@pytest.mark.parametrize("how", ["halt", "crash"])
def test_idle_wait_on_a_vanished_server_raises_instead_of_waiting(
    private_dovecot: DovecotServer, how: str
) -> None:
    user = private_dovecot.user()
    with Mailbox(user.settings(timeout=30.0)) as box:
        # halt: the server says BYE; crash: the socket just closes (readable, then empty)
        timer = threading.Timer(0.3, getattr(private_dovecot, how))
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(MailboxUnavailable) as caught:
                box.idle_wait(20.0)
        finally:
            timer.join()
        assert time.monotonic() - started < 5.0
        if how == "crash":
            assert "closed the connection during IDLE" in str(caught.value)


# --------------------------------------------------------------------------- TLS


def test_implicit_tls_verifies_the_certificate_by_default(tls_dovecot: DovecotServer) -> None:
    user = tls_dovecot.user()
    settings = user.settings(security="ssl", port=tls_dovecot.tls_port)
    with (
        pytest.raises(MailboxUnavailable, match="CERTIFICATE_VERIFY_FAILED") as caught,
        Mailbox(settings, connect_attempts=1),
    ):
        pass
    assert not isinstance(caught.value, MailboxLoginFailed)


def test_implicit_tls_with_a_trusted_certificate(tls_dovecot: DovecotServer) -> None:
    user = tls_dovecot.user()
    user.append(make_raw(1))
    settings = user.settings(security="ssl", port=tls_dovecot.tls_port)
    with Mailbox(settings, ssl_context=tls_dovecot.ssl_context()) as box:
        assert box.uids_after(0) == [1]


def test_starttls_with_a_trusted_certificate(tls_dovecot: DovecotServer) -> None:
    user = tls_dovecot.user()
    user.append(make_raw(1))
    settings = user.settings(security="starttls", port=tls_dovecot.port)
    with Mailbox(settings, ssl_context=tls_dovecot.ssl_context()) as box:
        assert box.uids_after(0) == [1]


def test_starttls_refuses_a_server_without_it(user: DovecotUser) -> None:
    started = time.monotonic()
    with (
        pytest.raises(MailboxLoginFailed, match="does not offer STARTTLS"),
        Mailbox(user.settings(security="starttls"), connect_attempts=3, retry_wait=5.0),
    ):
        pass
    assert time.monotonic() - started < 4.0  # not retried
