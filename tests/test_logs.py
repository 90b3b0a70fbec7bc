"""Structured log lines: one line per event, key=value or JSON, secrets replaced wherever they are."""

from __future__ import annotations

import io
import json
import logging

import pytest

from intake import logs


@pytest.fixture
def capture():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def configure(fmt: str = "kv", secrets: tuple[str, ...] = ()) -> io.StringIO:
        stream = io.StringIO()
        logs.configure(fmt=fmt, secrets=secrets, stream=stream)
        return stream

    yield configure
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def test_events_are_one_line_of_key_values(capture):
    out = capture()
    log = logging.getLogger("intake.test")
    logs.event(log, "message.handled", id=3, message_id="<a@b>", subject="two words\nand a line",
               senders=("TH-50", "north-upper-2"), skipped=None)  # fmt: skip
    log.info("outbox.sent id=%s to=%s", 4, "x@y.th")
    log.warning("IMAP connect attempt 1/3 failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "event=message.handled id=3 message_id=<a@b>" in lines[0]
    assert 'subject="two words\\nand a line" senders=TH-50,north-upper-2' in lines[0]
    assert "skipped" not in lines[0] and lines[0].startswith("ts=")
    assert "level=info logger=intake.test event=outbox.sent id=4 to=x@y.th" in lines[1]
    assert 'level=warning logger=intake.test msg="IMAP connect attempt 1/3 failed"' in lines[2]


def test_a_traceback_stays_on_the_same_line(capture):
    out = capture()
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("intake.test").exception("cycle.failed error=ValueError")
    [line] = out.getvalue().splitlines()
    assert "event=cycle.failed" in line and "Traceback" in line and "ValueError: boom" in line


def test_json_lines_carry_the_fields(capture):
    out = capture("json")
    logs.event(logging.getLogger("intake.test"), "cycle.done", fetched=5, seconds=0.25)
    data = json.loads(out.getvalue())
    assert data["event"] == "cycle.done" and data["fetched"] == 5 and data["level"] == "info"


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_secrets_never_reach_the_log(capture, fmt):
    secret = 'pa"ss wörd-123'
    out = capture(fmt, secrets=(secret, ""))
    log = logging.getLogger("intake.test")
    log.error("login failed for user with %s", secret)
    logs.event(log, "idle.disconnected", error=f"server said {secret}")
    try:
        raise RuntimeError(secret)
    except RuntimeError:
        log.exception("job.failed")
    text = out.getvalue()
    assert text.count("***") >= 3 and secret not in text and "wörd" not in text
    assert 'pa\\"ss' not in text  # nor its escaped form


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_control_characters_from_a_mail_never_reach_the_log_raw(capture, fmt):
    """A subject's ESC, CR or CSI would recolour the operator's terminal or forge a log line."""
    out = capture(fmt)
    log = logging.getLogger("intake.test")
    logs.event(log, "message.handled", subject="a\x1b[31m\rfake level=error\x9b2J\x00")
    log.warning("raw %s", "b\x1b]0;title\x07")
    text = out.getvalue()
    assert not any(c in text for c in "\x00\x07\x1b\r\x9b")
    lines = text.splitlines()
    assert len(lines) == 2
    if fmt == "json":
        assert json.loads(lines[0])["subject"] == "a\x1b[31m\rfake level=error\x9b2J\x00"
    else:
        assert 'subject="a\\x1b[31m\\x0dfake level=error\\x9b2J\\x00"' in lines[0]
