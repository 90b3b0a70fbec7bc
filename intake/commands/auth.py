"""Command: `intake auth gmail`, the one-time OAuth 2.0 consent for Gmail's IMAP and SMTP.

Google's installed-app flow (google-auth-oauthlib's `InstalledAppFlow`, PKCE, a redirect to a
one-request server on the loopback address): the person signs in to the mailbox's Google Account
in a browser and allows access; the refresh token is then written to DATA_DIR/oauth2-token.json
with mode 0600 (intake/oauth.py), replacing any earlier one, revoked or not. The token is never
printed or logged. Exit 1 when the OAuth client settings are missing, 3 when the consent fails.
"""

from __future__ import annotations

from typing import Annotated

import typer

auth_app = typer.Typer(help="Sign-in to the mailbox with OAuth 2.0 (Gmail).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `intake` app."""
    auth_app.command("gmail")(gmail)
    app.add_typer(auth_app, name="auth")


def gmail(
    no_browser: Annotated[
        bool,
        typer.Option(
            "--no-browser",
            help="Do not open a browser: print the address to open (from another machine, "
            "forward the redirect port first, e.g. ssh -L PORT:localhost:PORT).",
        ),
    ] = False,
    host: Annotated[
        str, typer.Option("--host", help="Host of the local redirect address (a loopback name).")
    ] = "localhost",
    port: Annotated[
        int, typer.Option("--port", help="Port of the local redirect server; 0 picks a free one.")
    ] = 0,
    bind: Annotated[
        str | None,
        typer.Option(
            "--bind",
            help="Address the redirect server listens on (default: the --host); 0.0.0.0 in a "
            "container whose --port is published.",
        ),
    ] = None,
    timeout: Annotated[
        int, typer.Option("--timeout", help="Seconds to wait for the browser's answer.")
    ] = 600,
) -> None:
    """Give intake access to the Gmail mailbox with OAuth 2.0, once: Google's consent page, then
    the refresh token is kept in DATA_DIR/oauth2-token.json (mode 0600). Needs oauth.client_id and
    oauth.client_secret; used when imap.auth / smtp.auth is "oauth2"."""
    from intake import cli, oauth

    settings = cli._settings()
    client = settings.oauth
    secret = client.client_secret.get_secret_value()
    if not client.client_id or not secret:
        cli._fail(
            cli.EXIT_CONFIG,
            "oauth.client_id and oauth.client_secret must be set (INTAKE_OAUTH__CLIENT_ID, "
            "INTAKE_OAUTH__CLIENT_SECRET): the Desktop OAuth client from the Google Cloud console",
        )
    from google_auth_oauthlib.flow import InstalledAppFlow

    config = {
        "installed": {
            "client_id": client.client_id,
            "client_secret": secret,
            "auth_uri": client.auth_uri,
            "token_uri": client.token_uri,
            "redirect_uris": ["http://localhost"],
        }
    }
    flow = InstalledAppFlow.from_client_config(config, scopes=[client.scope])
    account = settings.imap.username or settings.smtp.username
    # the flow fills in {url} with str.format: the account's own braces are escaped
    who = f" as {account}".replace("{", "{{").replace("}", "}}") if account else ""
    prompt = (
        f"Open this address in a browser, sign in{who} and allow access:\n{{url}}\n"
        if no_browser
        else f"A browser opens Google's consent page; sign in{who} and allow access. "
        "If none opens, open this address:\n{url}\n"
    )
    extra = {"login_hint": account} if account else {}
    try:
        credentials = flow.run_local_server(
            host=host,
            bind_addr=bind,
            port=port,
            open_browser=not no_browser,
            authorization_prompt_message=prompt,
            success_message="intake: access granted. You may close this window.",
            timeout_seconds=timeout,
            access_type="offline",  # a refresh token, not only an hour's access token
            prompt="consent",  # a refresh token even when this client had consent before
            **extra,
        )
    except Exception as exc:  # noqa: BLE001 - refused, timed out, port taken: one line each
        cli._fail(cli.EXIT_MAILBOX, f"OAuth consent failed: {_describe(exc)}")
    refresh = credentials.refresh_token
    if not refresh:
        cli._fail(
            cli.EXIT_MAILBOX,
            "OAuth consent gave no refresh token; remove intake's access in the Google Account "
            "(Security, Third-party apps) and run `intake auth gmail` again",
        )
    path = settings.oauth_token_path
    oauth.store_consent(path, refresh, account, client.scope)
    cli.console.print(
        f"refresh token stored in {path} (mode 0600)", highlight=False, markup=False, soft_wrap=True
    )
    if "oauth2" not in (settings.imap.auth, settings.smtp.auth):
        cli.console.print(
            "to use it, set imap.auth and smtp.auth to oauth2 "
            "(INTAKE_IMAP__AUTH=oauth2, INTAKE_SMTP__AUTH=oauth2)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _describe(exc: BaseException) -> str:
    """The reason on one printable line (oauthlib's errors carry the endpoint's `error`)."""
    text = getattr(exc, "description", None) or getattr(exc, "error", None) or str(exc)
    line = " ".join(str(text).split())
    line = "".join(c for c in line if c.isprintable())[:200]
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
