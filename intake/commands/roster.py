"""Commands: `intake roster check` — which expected senders no reminder can reach, and how to
give them an address (logic: intake/reminders.py `unverified_senders`)."""

from __future__ import annotations

import shlex

import typer

roster_app = typer.Typer(help="The expected senders and their addresses.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `intake` app."""
    app.add_typer(roster_app, name="roster")


@roster_app.command("check")
def check() -> None:
    """List expected senders without a verified address (no reminder reaches them).

    With any address seen in their mail and the command that adds it; adds nothing itself."""
    from intake import reminders
    from intake.cli import _services, console
    from intake.display import safe_text
    from storage.session import session_scope

    svc = _services()
    with session_scope(svc.factory) as session:
        missing = reminders.unverified_senders(session, svc.own_addresses)
    expected = sum(1 for e in svc.roster.entries if e.expected)
    if not missing:
        console.print(f"all {expected} expected senders have a verified address", highlight=False)
        return
    console.print(
        f"{len(missing)} of {expected} expected senders have no verified address "
        "(reminders cannot reach them):",
        highlight=False,
        soft_wrap=True,
    )
    for item in missing:
        console.print(f"  {safe_text(item.sender_id)}  {safe_text(item.title_th)}", highlight=False)
        for address in item.seen:  # from mail: a suggestion to check, shown, never interpreted
            sender, quoted = shlex.quote(item.sender_id), shlex.quote(address)
            command = f"intake review add-address {sender} {quoted}"
            console.print(f"    seen in mail: {safe_text(address)}", highlight=False)
            console.print(f"      {safe_text(command)}", highlight=False, soft_wrap=True)
    console.print(
        f"Add addresses to {safe_text(reminders.addresses_csv(svc.settings))} (sender_id,address) "
        f"or run `{reminders.ADD_ADDRESS_COMMAND}`; an address seen in mail is only a suggestion: "
        "check with the sender before adding it.",
        highlight=False,
        soft_wrap=True,  # a path and a command are not broken across lines
    )
