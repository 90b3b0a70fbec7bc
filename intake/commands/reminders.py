"""Commands: `intake remind` — queue the reminders due now and send them (logic: intake/reminders)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

STATUS_TH = {"missing": "ยังไม่ส่ง", "needs_correction": "รอแก้ไข"}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `intake` app."""
    app.command()(remind)


def remind(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would get which reminder; change nothing.")
    ] = False,
) -> None:
    """Queue the reminders due now (once per sender per reminder time) and send the outbox."""
    from intake import reminders
    from intake.cli import _services, console
    from intake.outbox import send_outbox

    svc = _services()
    if dry_run:
        planned = reminders.pending_reminders(svc)
        _show(console, svc, planned)
        if not (svc.settings.replies.enabled and svc.settings.reminders.enabled):
            console.print("replies or reminders are disabled: nothing would be queued")
        _say_unreachable(svc)
        return
    queued = reminders.queue_due_reminders(svc)
    sent = send_outbox(svc.factory, svc.settings.smtp, svc.settings.replies, svc.clock.now)
    held = sum(q.held for q in queued)
    console.print(
        f"reminders queued {len(queued)} (held {held}), replies sent {sent.sent}", highlight=False
    )
    _say_unreachable(svc)


def _say_unreachable(svc: Any) -> None:
    """Who no reminder reaches: a count of 1 reminder says nothing of the 87 left out."""
    from intake import reminders
    from intake.cli import console
    from intake.display import safe_text
    from storage.session import session_scope

    with session_scope(svc.factory) as session:
        contacts = reminders.load_contacts(session, svc)
        unverified = len(reminders.unverified_senders(session))
    owing = sum(1 for c in contacts if c.status != "accepted" and not c.addresses)
    if unverified or owing:
        line = reminders.unreachable_text(svc.settings, unverified, owing)
        console.print(safe_text(line, multiline=True), highlight=False, soft_wrap=True)


def _show(console: Any, svc: Any, planned: list[Any]) -> None:
    """The dry run as a table; on a console too narrow for it (80 columns, a pipe), where Rich
    would cut the addresses and the Thai subjects mid-word, one block per reminder instead."""
    from intake.display import fit_columns, safe_text
    from intake.reminders import render

    title = f"reminders due now: {len(planned)} (dry run, nothing queued or sent)"
    table = Table(title=title)
    for column in ("sender", "name", "status", "to", "reminder", "subject"):
        table.add_column(column)
    now = svc.clock.now()
    rows = []
    for item in planned:
        subject, _, _ = render(svc, item, now)
        contact = item.contact
        rows.append(  # addresses and names may come from mail: shown, never interpreted
            [*map(safe_text, (
                contact.sender_id, contact.title_th, STATUS_TH.get(contact.status, contact.status),
                item.address, item.slot.key, subject,
            ))]
        )  # fmt: skip
        table.add_row(*rows[-1])
    if fit_columns(console, table):
        console.print(table)
        return
    console.print(title, highlight=False)
    for sender, name, status, address, key, subject in rows:
        console.print(f"{sender} {name} ({status}) → {address} · {key}", highlight=False)
        console.print(f"  {subject}", highlight=False)
