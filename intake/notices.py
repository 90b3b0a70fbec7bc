"""Mail from the service to the coordinator (daily summary, alerts), through the outbox.

The same at-most-once path as the replies: a row with its Message-ID fixed is committed first,
then `intake.outbox.send_outbox` sends it. A dedupe key (one per day for the summary, one per
outage for an alert) makes a second worker, a restart or a re-run queue nothing twice.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.logs import event
from intake.replies import build_mime, new_message_id
from intake.settings import Settings
from storage import queries
from storage.models import Outbox, OutboxState
from storage.session import session_scope

log = logging.getLogger(__name__)


def queue_notice(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    kind: str,
    subject: str,
    text: str,
    dedupe_key: str,
    now: datetime,
) -> bool:
    """Queue one mail to `worker.coordinator_address`; False when none is set or already queued."""
    to = (settings.worker.coordinator_address or "").strip()
    if not to:
        return False
    key = dedupe_key[:200]
    message_id = new_message_id(settings.replies.message_id_domain)
    raw = build_mime(
        from_address=settings.smtp.from_address,
        from_name=settings.smtp.from_name,
        to_address=to,
        subject=subject,
        text=text,
        html=_as_html(text),
        message_id=message_id,
        kind=kind,
        in_reply_to=None,
        references=[],
        date=now,
        auto_submitted="auto-generated",
    )
    try:
        with session_scope(factory) as session:
            if queries.outbox_key_exists(session, key):
                return False
            session.add(
                Outbox(
                    message_id_header=message_id,
                    kind=kind,
                    to_address=to.lower(),
                    subject=subject,
                    raw=raw,
                    dedupe_key=key,
                    state=OutboxState.QUEUED,
                )
            )
    except IntegrityError:
        return False  # another worker queued the same notice a moment ago
    event(log, "notice.queued", kind=kind, to=to, key=key)
    return True


def send_queued(factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Send what the outbox holds now (notices must not wait for a mailbox that is down)."""
    from intake.outbox import send_outbox

    report = send_outbox(factory, settings.smtp, settings.replies, lambda: now)
    return report.sent


def _as_html(text: str) -> str:
    paragraphs = text.strip().split("\n\n")
    body = "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
    return f'<html><body style="font-family: sans-serif">{body}</body></html>'
