"""Structured logs for the long-running worker: one line per event, never a secret.

Two formats (`worker.log_format`):

    kv    ts=2024-01-20T03:00:01.250Z level=info logger=intake.worker event=message.handled id=12
          message_id=<m1@chiangmai.go.th> from=saraban@chiangmai.go.th senders=TH-50 outcome=submission
    json  {"ts": "...", "level": "info", "logger": "intake.worker", "event": "message.handled", ...}

`event(log, "name", key=value, ...)` writes one; lines of other modules that already read
"name key=value ..." become events too, anything else is kept as `msg="..."`. A traceback is folded
into the same line. Every known secret (passwords, the database URL's password) is replaced by
`***` in the finished line, whatever wrote it: a refused login must never put the password in a
log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

_EVENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+(\s|$)")
_BARE = re.compile(r"^[A-Za-z0-9_@<>.:/+\-,]+$")
_FIELDS = "intake_fields"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1 (ESC, CR, CSI, ...)


def event(log: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields (None values are left out)."""
    if not log.isEnabledFor(level):
        return
    kept = {k: v for k, v in fields.items() if v is not None}
    text = " ".join([name, *(f"{k}={quote(v)}" for k, v in kept.items())])
    log.log(level, "%s", text, extra={_FIELDS: (name, kept)})


def quote(value: Any) -> str:
    """A value as logfmt writes it: bare when safe, else in double quotes with escapes."""
    if isinstance(value, datetime):
        value = iso(value)
    elif isinstance(value, list | tuple | set | frozenset):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if text and _BARE.match(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    # a subject's ESC or CR must not act on the terminal or forge a line: shown as \x1b
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)
    return f'"{escaped}"'


def iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__()
        self.fmt = fmt
        # longest first, so a secret containing another is replaced whole
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        ts = iso(datetime.fromtimestamp(record.created, UTC))
        level = record.levelname.lower()
        name, fields = getattr(record, _FIELDS, (None, None))
        message = self.redact(record.getMessage())
        if fields is not None:
            fields = {k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        elif _EVENT.match(message):
            name, _, rest = message.partition(" ")
            fields = {"_rest": rest} if rest else {}
        error = self.redact(self.formatException(record.exc_info)) if record.exc_info else None
        if self.fmt == "json":
            data: dict[str, Any] = {"ts": ts, "level": level, "logger": record.name}
            if name is not None:
                data["event"] = name
                data.update({k: v for k, v in (fields or {}).items() if k != "_rest"})
                if fields and "_rest" in fields:
                    data["detail"] = fields["_rest"]
            else:
                data["msg"] = message
            if error:
                data["error"] = error
            line = json.dumps(data, ensure_ascii=False, default=str)
            line = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", line)  # C1 left by json
        else:
            parts = [f"ts={ts}", f"level={level}", f"logger={record.name}"]
            if name is not None:
                parts.append(f"event={message}")
            else:
                parts.append(f"msg={quote(message)}")
            if error:
                parts.append(f"error={quote(error)}")
            line = " ".join(parts)
        return self.redact(line)

    def redact(self, text: str) -> str:
        """Every known secret replaced, raw or in the escaped forms a line may carry it in."""
        for secret in self.secrets:
            for form in {secret, json.dumps(secret)[1:-1], quote(secret)[1:-1]}:
                if form:
                    text = text.replace(form, "***")
        return text


def configure(
    *, verbose: bool = False, fmt: str = "kv", secrets: Iterable[str] = (), stream: Any = None
) -> None:
    """Replace the root handlers with one structured handler on stderr (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(fmt, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # APScheduler narrates every run at INFO; our own events say what matters
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    for noisy in ("imapclient", "mail-parser", "mailparser", "alembic", "pymap"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # the OAuth libraries log request and response bodies (tokens) at DEBUG: never, even with -v
    for talkative in ("requests_oauthlib", "oauthlib", "google", "google_auth_oauthlib"):
        logging.getLogger(talkative).setLevel(logging.WARNING)


def settings_secrets(settings: Any) -> list[str]:
    """Every secret the settings hold, for redaction."""
    from intake.settings import database_passwords

    found = [
        settings.imap.password.get_secret_value(),
        settings.smtp.password.get_secret_value(),
    ]
    web = getattr(settings, "web", None)
    if web is not None and hasattr(web, "token"):
        found.append(web.token.get_secret_value())
    found += database_passwords(settings.effective_database_url)  # "@" in it included
    oauth = getattr(settings, "oauth", None)
    if oauth is not None:  # the client secret, and the tokens on file (intake/oauth.py)
        from intake.oauth import secrets_of

        found.append(oauth.client_secret.get_secret_value())
        found += secrets_of(settings.oauth_token_path)
    return [s for s in found if s]
