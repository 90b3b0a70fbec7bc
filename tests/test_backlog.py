"""A backlog is filed, answered and logged in bounded chunks (issue 7: memory must not grow with
the number of messages). In process against the real Dovecot, aiosmtpd and database; the IMAP
commands are read from imapclient's own protocol log."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from intake import cycle, pipeline
from intake.outbox import send_outbox
from storage import queries
from tests.replies_env import ON_TIME, Harness, mail, make_harness, valid_form
from tests.servers import StubTcpServer

PROVINCES = ["เชียงใหม่", "ลำพูน", "เชียงราย", "ขอนแก่น", "ภูเก็ต", "สงขลา", "นครราชสีมา", "ชลบุรี"]
N, BATCH = 10, 3
_STORE = re.compile(r"UID STORE ([0-9,:]+) \+FLAGS")


@pytest.fixture
def backlog(tmp_path, database_url, imap_user, smtp_server):  # type: ignore[no-untyped-def]
    """N submissions, each from its own address (no reply is held by the per-address cap),
    waiting in a mailbox read with imap.batch_size = BATCH."""
    _, user = imap_user
    h = make_harness(tmp_path, database_url, (user.settings(batch_size=BATCH), user), smtp_server)
    uids = [
        user.append(
            mail(i, f"saraban{i}@province{i}.go.th", f"ส่งแบบฟอร์ม ครั้งที่ {i}",
                 [valid_form(PROVINCES[i % len(PROVINCES)])]),
            ON_TIME,
        )
        for i in range(N)
    ]  # fmt: skip
    yield h, uids
    h.close()


class _Timeline(logging.Handler):
    """What happened, in order: ("process", n) per decided message, ("store", uids) per STORE."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = _STORE.search(record.getMessage())
        if found:
            self.events.append(("store", found.group(1)))

    def progress(self, stage: str, done: int, total: int) -> None:
        if stage == "process":
            self.events.append(("process", done))


def _uids_in(sequence_set: str) -> list[int]:
    uids: list[int] = []
    for part in sequence_set.split(","):
        low, _, high = part.partition(":")
        uids.extend(range(int(low), int(high or low) + 1))
    return uids


def test_a_backlog_is_filed_a_batch_at_a_time_as_it_is_decided(
    backlog: tuple[Harness, list[int]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h, uids = backlog
    timeline = _Timeline()
    imap_log = logging.getLogger("imapclient.imaplib")
    imap_log.addHandler(timeline)
    caplog.set_level(logging.DEBUG, logger="imapclient.imaplib")
    caplog.set_level(logging.INFO, logger="intake.cycle")
    monkeypatch.setattr(cycle, "LOG_PAGE", 4)
    try:
        report = cycle.run_cycle(h.svc, progress=timeline.progress)
    finally:
        imap_log.removeHandler(timeline)

    stores = [_uids_in(arg) for kind, arg in timeline.events if kind == "store"]
    assert [len(s) for s in stores] == [3, 3, 3, 1]  # never more than imap.batch_size at once
    assert sorted(u for s in stores for u in s) == uids  # each message filed once
    # filed as each batch is decided, not the whole backlog at the end
    kinds = [kind if kind == "store" else arg for kind, arg in timeline.events]
    assert kinds == [1, 2, "store", 3, 4, 5, "store", 6, 7, 8, "store", 9, 10, "store"]

    assert (report.processed, report.marked, report.sent) == (N, N, N)
    assert all("$IntakeDone" in h.user.flags(uid) for uid in uids)
    assert h.rows("select state, count(*) from message group by state") == [("done", N)]
    assert h.rows("select count(*) from message_location where marked_at is null") == [(0,)]
    assert h.rows("select state, count(*) from outbox group by state") == [("sent", N)]
    assert sorted(m.rcpt_tos[0] for m in h.smtp.messages) == sorted(
        f"saraban{i}@province{i}.go.th" for i in range(N)
    )
    handled = [r.getMessage() for r in caplog.records if r.name == "intake.cycle"]
    ids = [int(m.split(" id=")[1].split()[0]) for m in handled if m.startswith("message.handled")]
    assert sorted(ids) == [r[0] for r in h.rows("select id from message order by id")]  # 4+4+2

    again = h.poll()  # nothing left to file or send
    assert (again.fetched, again.marked, again.sent) == (0, 0, 0)


def test_the_end_of_cycle_pass_files_leftovers_in_pages(
    backlog: tuple[Harness, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages decided but never filed (a crash before step 8) are filed by the next cycle's
    final pass, a page of imap.batch_size at a time."""
    h, uids = backlog
    h.svc.settings.replies.dry_run = True
    real_mark = pipeline.mark_handled
    monkeypatch.setattr(pipeline, "mark_handled", lambda *a, **k: 0)
    h.poll()  # decided and committed, filed nowhere: as after a crash at that point
    assert h.rows("select count(*) from message_location where marked_at is null") == [(N,)]
    assert not any("$IntakeDone" in h.user.flags(uid) for uid in uids)

    monkeypatch.setattr(pipeline, "mark_handled", real_mark)
    pages: list[int] = []
    locations_to_mark = queries.locations_to_mark

    def spy(*args: Any, **kwargs: Any) -> list[tuple[int, int]]:
        page = locations_to_mark(*args, **kwargs)
        pages.append(len(page))
        return page

    monkeypatch.setattr(queries, "locations_to_mark", spy)
    report = cycle.run_cycle(h.svc)
    assert pages == [3, 3, 3, 1] and report.marked == N
    assert all("$IntakeDone" in h.user.flags(uid) for uid in uids)
    assert h.rows("select state, count(*) from message group by state") == [("done", N)]


def test_the_outbox_is_read_and_sent_in_pages(
    backlog: tuple[Harness, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    h, _ = backlog
    h.svc.settings.replies.dry_run = True
    h.poll()  # N replies queued, none sent
    h.svc.settings.replies.dry_run = False
    pages: list[list[int]] = []
    outbox_due = queries.outbox_due

    def spy(*args: Any, **kwargs: Any) -> list[int]:
        page = outbox_due(*args, **kwargs)
        pages.append(page)
        return page

    monkeypatch.setattr(queries, "outbox_due", spy)
    s = h.svc.settings
    sent = send_outbox(h.svc.factory, s.smtp, s.replies, h.svc.clock.now, page=BATCH)
    assert sent.sent == N and [len(p) for p in pages] == [3, 3, 3, 1]
    every_id = [r[0] for r in h.rows("select id from outbox order by id")]
    assert [i for p in pages for i in p] == every_id  # each row looked at once, oldest first
    assert len(h.smtp.messages) == N
    assert h.rows("select state, count(*) from outbox group by state") == [("sent", N)]
    assert send_outbox(h.svc.factory, s.smtp, s.replies, h.svc.clock.now).sent == 0


def test_an_unreachable_smtp_server_ends_the_round_at_the_first_reply(
    backlog: tuple[Harness, list[int]],
) -> None:
    """A server that hangs up is tried once per round, not once per queued reply (each would
    wait for the same timeout); no reply is charged an attempt, and all go out once it is back."""
    h, _ = backlog
    h.svc.settings.replies.dry_run = True
    h.poll()  # N replies queued, none sent
    h.svc.settings.replies.dry_run = False
    s = h.svc.settings
    with StubTcpServer(close=True) as stub:  # accepts, then hangs up at once
        down = s.smtp.model_copy(update={"port": stub.port, "security": "none"})
        report = send_outbox(h.svc.factory, down, s.replies, h.svc.clock.now)
        assert stub.accepted == 1
    assert (report.sent, report.deferred, len(report.errors)) == (0, 1, 1)
    assert "cannot reach" in report.errors[0]
    assert h.rows("select state, attempts, count(*) from outbox group by state, attempts") == [
        ("queued", 0, N)
    ]
    assert send_outbox(h.svc.factory, s.smtp, s.replies, h.svc.clock.now).sent == N
    assert len(h.smtp.messages) == N
