"""Commands: `intake review`, what waits for a person and the actions on it (thin over
intake/review.py; the web page offers the same actions)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

review_app = typer.Typer(
    help="What waits for a person (unknown senders, unreadable files, failed replies) and the "
    "actions on it; every action is recorded with who and when.",
    invoke_without_command=True,
)

By = Annotated[
    str | None, typer.Option("--by", help="Who acts, for the audit trail (default: $USER).")
]
Note = Annotated[str, typer.Option("--note", "-n", help="Why (kept in the audit trail).")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `intake` app."""
    app.add_typer(review_app, name="review")


def _act(action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run one action in one transaction and print what it did (errors: exit 2, in Thai)."""
    from intake import cli
    from intake.review import ReviewError
    from storage.session import session_scope

    svc = cli._store()  # the database only: no form reader or mail code to load
    try:
        with session_scope(svc.factory) as session:
            done = action(session, *args, **kwargs)
    except ReviewError as exc:
        cli._fail(2, str(exc))
    from intake.display import safe_text

    cli.console.print(f"[green]✓[/] {safe_text(done.message_th, multiline=True)}", highlight=False)


def _instant(text: str) -> datetime:
    """An ISO 8601 instant that carries its UTC offset (a bare time is ambiguous: refused)."""
    from intake import cli

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        cli._fail(2, f"{text!r}: give a time with its offset, e.g. 2024-01-25T23:59:59+07:00")
    return value  # type: ignore[return-value]


def _actor(by: str | None) -> str:
    from intake.review import actor_name

    return actor_name(by)


@review_app.callback()
def review_list(ctx: typer.Context) -> None:
    """List what waits for a person (with the command that settles each item)."""
    if ctx.invoked_subcommand is not None:
        return
    from intake import cli
    from intake.review import pending
    from storage.session import session_scope

    svc = cli._store()
    with session_scope(svc.factory) as session:
        entries = pending(session)
    render_pending(cli.console, entries)


def render_pending(console: Console, entries: list[Any]) -> None:
    """The queue, one block per item, each ending with the commands that settle it.

    Not a table: at 80 columns (a pipe, a default terminal) five columns left a few cells each,
    and Rich folded Thai mid-word (Thai puts no space between words) and the commands mid-line.
    Here Rich wraps only at spaces over the whole width, and every command is printed whole on
    a line of its own, ready to copy. Subjects, addresses and details come from mail: each
    passes `safe_text` (markup escaped, control characters shown), never printed raw."""
    from intake.display import safe_text as t
    from intake.review import OUTBOX_STATE_TH, reason_th
    from intake.thai import format_thai_datetime

    if not entries:
        console.print("[green]ไม่มีรายการรอตรวจสอบ[/]")
        return
    console.print(f"[bold]รายการรอตรวจสอบ {len(entries)} รายการ[/]", highlight=False)
    for e in entries:
        lines = [f"[bold]รายการที่ {e.id}[/] — {t(reason_th(e.reason))}"]
        if e.message_id is not None:
            when = format_thai_datetime(e.received_at) if e.received_at else ""
            lines.append(f"อีเมล #{e.message_id} จาก {t(e.from_address or '-')} {when}".rstrip())
            lines.append(f"เรื่อง: {t(e.subject or '')}")
        if e.outbox_id is not None:
            state = OUTBOX_STATE_TH.get(e.outbox_state or "", e.outbox_state)
            lines.append(f"ตอบกลับ #{e.outbox_id} ถึง {t(e.outbox_to)} ({t(state)})")
        if e.detail:
            lines.append(f"รายละเอียด: {t(e.detail, multiline=True)}")
        hints = []
        if e.submission_id is not None and e.reason in ("unverified_sender", "unverified_pending"):
            hints += [f"confirm {e.submission_id}", f"reject {e.submission_id} --note …"]
        elif e.submission_id is not None and e.reason == "unexpected_sender":
            hints += [f"accept {e.submission_id} --note …", f"reject {e.submission_id} --note …"]
        if e.message_id is not None and e.outbox_id is None:
            hints += [f"assign {e.message_id} SENDER"]
            if e.from_address:
                hints += [f"add-address SENDER {t(e.from_address)}"]
        if e.outbox_state in {"held", "failed"}:
            hints += [f"resend {e.outbox_id}", f"cancel {e.outbox_id}"]
        hints += [f"resolve {e.id} --note …"]
        console.print()
        for line in lines:
            console.print(line, highlight=False)
        console.print("คำสั่งที่ใช้ได้:", highlight=False)
        for hint in hints:  # whole, however narrow the console: a command cut in two fails
            console.print(f"  intake review {hint}", highlight=False, soft_wrap=True)


@review_app.command("assign")
def assign(
    message: Annotated[int, typer.Argument(help="Message number (from `intake review`).")],
    sender: Annotated[str, typer.Argument(help="Sender id, e.g. TH-50 or north-upper-1.")],
    note: Note = "",
    by: By = None,
) -> None:
    """Say who sent a message; it is decided again for that sender (forms, replies)."""
    from intake import cli
    from intake.review import assign_message, run_assigned

    _act(assign_message, message, sender, _actor(by), note)
    report = run_assigned(cli._services(), message)
    cli._print_cycle(report)


@review_app.command("add-address")
def add_address(
    sender: Annotated[str, typer.Argument(help="Sender id, e.g. TH-50.")],
    address: Annotated[str, typer.Argument(help="E-mail address to recognise as this sender.")],
    note: Note = "",
    by: By = None,
) -> None:
    """Add an e-mail address to a sender's roster (mail from it is then recognised)."""
    from intake.review import add_address as action

    _act(action, sender, address, _actor(by), note)


Item = Annotated[
    int | None,
    typer.Option("--item", help="Instead of SUBMISSION: the review item number that names it."),
]
OptionalSubmission = Annotated[
    int | None, typer.Argument(help="Submission number (review list, sender's history).")
]


def _submission_of(submission: int | None, item: int | None) -> Any:
    """The action's target: SUBMISSION, or the form the review item `--item` names (looked up
    inside the action's own transaction)."""
    from intake import cli
    from intake.review import submission_of_item

    if (submission is None) == (item is None):
        cli._fail(2, "give a submission number, or --item with a review item number (one of them)")
    if submission is not None:
        return lambda _session: submission
    return lambda session: submission_of_item(session, item)  # type: ignore[arg-type]


def _decide(
    submission: int | None, accept: bool, note: str, by: str | None, item: int | None = None
) -> None:
    from intake import cli
    from intake.review import decide_submission

    campaign = cli._settings().campaign
    target = _submission_of(submission, item)

    def action(session: Any) -> Any:
        return decide_submission(
            session, target(session), accept, _actor(by), note, campaign=campaign
        )

    _act(action)


@review_app.command("accept")
def accept(
    submission: Annotated[int, typer.Argument(help="Submission number (sender's history).")],
    note: Note = "",
    by: By = None,
) -> None:
    """Accept a form by hand (with a note saying why)."""
    _decide(submission, True, note, by)


@review_app.command("reject")
def reject(
    submission: OptionalSubmission = None,
    item: Item = None,
    note: Note = "",
    by: By = None,
) -> None:
    """Reject a form by hand (with a note saying why); for a form from an unverified address,
    `reject SUBMISSION` or `reject --item ITEM` (the address is not learned)."""
    _decide(submission, False, note, by, item)


@review_app.command("confirm")
def confirm(
    submission: OptionalSubmission = None,
    item: Item = None,
    note: Note = "",
    by: By = None,
) -> None:
    """Confirm that the address a form came from speaks for its sender: the address is learned,
    the form counts as verified (one that waited now replaces the earlier version)."""
    from intake import cli
    from intake.review import confirm_submission

    campaign = cli._settings().campaign
    target = _submission_of(submission, item)

    def action(session: Any) -> Any:
        return confirm_submission(session, target(session), _actor(by), note, campaign=campaign)

    _act(action)


@review_app.command("received")
def received(
    sender: Annotated[str, typer.Argument(help="Sender id, e.g. TH-50.")],
    channel: Annotated[
        str, typer.Option("--channel", "-c", help="paper, hand, fax or other.")
    ] = "paper",
    at: Annotated[
        str | None,
        typer.Option("--at", help="When it arrived (ISO 8601 with offset); default now."),
    ] = None,
    note: Note = "",
    by: By = None,
) -> None:
    """Record that a sender's data came by another channel (paper, hand delivery)."""
    from intake import cli
    from intake.review import mark_received

    when = _instant(at) if at else None
    settings = cli._settings()
    _act(
        mark_received, sender, channel, _actor(by), note,
        deadline=settings.deadline, campaign=settings.campaign, received_at=when,
    )  # fmt: skip


@review_app.command("resend")
def resend(
    outbox: Annotated[int, typer.Argument(help="Reply number (from `intake review`).")],
    note: Note = "",
    by: By = None,
) -> None:
    """Put a held or failed reply back in the queue (it may reach the recipient twice)."""
    from intake.review import resend_reply

    _act(resend_reply, outbox, _actor(by), note)


@review_app.command("cancel")
def cancel(
    outbox: Annotated[int, typer.Argument(help="Reply number (from `intake review`).")],
    note: Note = "",
    by: By = None,
) -> None:
    """Cancel a queued, held or failed reply: it will never be sent."""
    from intake.review import cancel_reply

    _act(cancel_reply, outbox, _actor(by), note)


@review_app.command("extend")
def extend(
    sender: Annotated[str, typer.Argument(help="Sender id, e.g. TH-50.")],
    deadline: Annotated[str, typer.Argument(help="New deadline, e.g. 2024-01-25T23:59:59+07:00.")],
    note: Note = "",
    by: By = None,
) -> None:
    """Give one sender a later deadline."""
    from intake.review import extend_deadline

    _act(extend_deadline, sender, _instant(deadline), _actor(by), note)


@review_app.command("resolve")
def resolve(
    item: Annotated[int, typer.Argument(help="Review item number (from `intake review`).")],
    note: Note = "",
    by: By = None,
) -> None:
    """Close a review item (dealt with elsewhere, or nothing to do), with the reason."""
    from intake.review import resolve_item

    _act(resolve_item, item, _actor(by), note)
