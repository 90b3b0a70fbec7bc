"""OAuth 2.0 sign-in for Gmail's IMAP and SMTP (XOAUTH2): the refresh token and access tokens.

Google's recommended way for IMAP and SMTP is OAuth 2.0; app passwords die with every password
change and are not offered to every account. `intake auth gmail` (intake/commands/auth.py) runs
the one-time consent with google-auth-oauthlib's installed-app flow and keeps the refresh token in
DATA_DIR/oauth2-token.json, mode 0600: never in the TOML file, never in a log line. Every IMAP or
SMTP login then asks `access_token()` for a bearer token: the one on file while it has more than
`REFRESH_MARGIN` left, otherwise a fresh one from the token endpoint (google-auth's
`Credentials.refresh`, with `token_uri` = `oauth.token_uri`), written back for the next login
(the IDLE connection, the next cycle, `intake remind` in another process).

A refresh token the endpoint no longer honours (`invalid_grant`: the owner revoked the app, the
password changed, or the consent screen is still in "Testing" and the token is 7 days old) is
loud: `OAuthRevoked` (a login failure: `intake poll --once` exits 3), the file is marked so that
`intake status` says unhealthy with the reason and later logins fail at once without asking the
endpoint again, and the cycle mails the coordinator (intake.cycle, intake.health). Only a new
consent clears it. A token endpoint that cannot be reached or answers 5xx is transient
(`MailboxUnavailable`): the next cycle tries again.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from intake.errors import MailboxUnavailable, OAuthRevoked, OAuthSignInFailed
from intake.logs import event
from intake.settings import OAuthBinding

log = logging.getLogger(__name__)

# An access token is replaced when less than this is left (Google's live for an hour); longer than
# google-auth's own 3 min 45 s, so a login never presents a token that dies during AUTHENTICATE.
REFRESH_MARGIN = timedelta(minutes=5)
FILE_MODE = 0o600
RENEW = "run `intake auth gmail` again to give consent anew"

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass
class StoredToken:
    """The token file: one JSON object. Only `refresh_token` is needed; the rest saves work."""

    refresh_token: str
    created_at: str  # ISO 8601, when the consent was given
    account: str = ""  # the address the consent was given for (login hint; informative)
    scope: str = ""
    access_token: str | None = None
    expiry: str | None = None  # ISO 8601 UTC, of access_token
    revoked_at: str | None = None  # first refusal of the refresh token (invalid_grant)
    revoked_reason: str | None = None


def now_utc() -> datetime:
    """The real clock: token lifetimes are Google's, never the demo's `INTAKE_NOW`."""
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


# --- the file ---------------------------------------------------------------------------------


def read_token(path: Path) -> StoredToken | None:
    """The token on file, or None when there is none; an unreadable file is a sign-in failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OAuthSignInFailed(
            f"cannot read the OAuth token file {path}: {exc.strerror}"
        ) from None
    try:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in StoredToken.__dataclass_fields__}
        token = StoredToken(**known)
        if not isinstance(token.refresh_token, str) or not token.refresh_token:
            raise ValueError("no refresh_token")
    except (ValueError, TypeError, AttributeError):
        raise OAuthSignInFailed(
            f"the OAuth token file {path} is damaged; {RENEW}"
        ) from None  # never the exception text: it may quote the token
    _tighten(path)
    return token


def write_token(path: Path, token: StoredToken) -> None:
    """Replace the file atomically, readable by this user only (0600) from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # an existing tmp file, or a umask that is not ours
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(token), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _tighten(path: Path) -> None:
    """A token file someone made readable by others is put back to 0600 (and said so)."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(FILE_MODE)
            event(log, "oauth.file_mode_fixed", logging.WARNING, path=path, was=oct(mode))
    except OSError:
        pass


def token_problem(path: Path) -> str | None:
    """Why OAuth sign-in cannot work right now (for `intake status`), or None when it may."""
    try:
        token = read_token(path)
    except OAuthSignInFailed as exc:
        return str(exc)
    if token is None:
        return f"OAuth 2.0 sign-in: no token in {path} yet; run `intake auth gmail` once"
    if token.revoked_at:
        return revoked_message(token)
    return None


def revoked_message(token: StoredToken) -> str:
    reason = f" ({token.revoked_reason})" if token.revoked_reason else ""
    return (
        f"OAuth 2.0 sign-in: the token endpoint refused the refresh token since "
        f"{token.revoked_at}{reason}: it was revoked or expired; {RENEW}"
    )


def store_consent(path: Path, refresh_token: str, account: str, scope: str) -> StoredToken:
    """Write the refresh token of a new consent (any earlier one, revoked or not, is replaced)."""
    token = StoredToken(
        refresh_token=refresh_token, created_at=_iso(now_utc()), account=account, scope=scope
    )
    with _lock(path):
        write_token(path, token)
    return token


# --- access tokens ----------------------------------------------------------------------------


def _lock(path: Path) -> threading.Lock:
    key = path.absolute()
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


@dataclass(frozen=True)
class AccessToken:
    token: str
    fresh: bool  # just obtained from the endpoint (a refusal of it is not a stale cache)


def access_token(binding: OAuthBinding, *, timeout: float, force: bool = False) -> AccessToken:
    """A bearer token valid for at least `REFRESH_MARGIN`; `force` refreshes regardless (the
    server refused the one on file). Raises OAuthRevoked, OAuthSignInFailed or, for trouble
    reaching the endpoint, MailboxUnavailable."""
    path = binding.token_path
    with _lock(path):
        stored = read_token(path)
        if stored is None:
            raise OAuthSignInFailed(
                f"OAuth 2.0 sign-in: no token in {path}; run `intake auth gmail` once"
            )
        if stored.revoked_at:
            raise OAuthRevoked(revoked_message(stored), stored.revoked_at)
        now = now_utc()
        if not force and stored.access_token and stored.expiry:
            expiry = datetime.fromisoformat(stored.expiry)
            if expiry - now > REFRESH_MARGIN:
                return AccessToken(stored.access_token, fresh=False)
        return AccessToken(_refresh(binding, stored, timeout, now), fresh=True)


def _refresh(binding: OAuthBinding, stored: StoredToken, timeout: float, now: datetime) -> str:
    from google.auth.exceptions import RefreshError, TransportError
    from google.auth.transport.requests import Request
    from google.oauth2.credentials import Credentials

    client = binding.client
    secret = client.client_secret.get_secret_value()
    if not client.client_id or not secret:
        raise OAuthSignInFailed(
            "OAuth 2.0 sign-in needs oauth.client_id and oauth.client_secret "
            "(INTAKE_OAUTH__CLIENT_ID, INTAKE_OAUTH__CLIENT_SECRET)"
        )
    credentials = Credentials(
        token=None,
        refresh_token=stored.refresh_token,
        token_uri=client.token_uri,
        client_id=client.client_id,
        client_secret=secret,
        scopes=[client.scope],
    )
    request: Any = functools.partial(Request(), timeout=timeout)
    try:
        credentials.refresh(request)
    except RefreshError as exc:
        code, description = _error_of(exc)
        if code == "invalid_grant":
            stored.revoked_at = _iso(now)
            stored.revoked_reason = f"invalid_grant: {description}" if description else code
            stored.access_token = stored.expiry = None
            write_token(binding.token_path, stored)
            event(
                log, "oauth.revoked", logging.ERROR,
                token_uri=client.token_uri, reason=stored.revoked_reason,
            )  # fmt: skip
            raise OAuthRevoked(revoked_message(stored), stored.revoked_at) from None
        if code and not exc.retryable:
            raise OAuthSignInFailed(
                f"OAuth 2.0 sign-in: the token endpoint {client.token_uri} refused the client "
                f"({code}{': ' + description if description else ''}); check oauth.client_id "
                "and oauth.client_secret (INTAKE_OAUTH__CLIENT_ID, INTAKE_OAUTH__CLIENT_SECRET)"
            ) from None
        raise MailboxUnavailable(
            f"OAuth 2.0 token endpoint {client.token_uri} failed: {code or 'no usable answer'}"
        ) from None
    except TransportError as exc:
        raise MailboxUnavailable(
            f"cannot reach the OAuth 2.0 token endpoint {client.token_uri}: "
            f"{type(exc.__cause__ or exc).__name__}"
        ) from None
    token = credentials.token
    if not token:
        raise MailboxUnavailable(f"OAuth 2.0 token endpoint {client.token_uri} gave no token")
    expiry = credentials.expiry  # naive UTC (google-auth's convention)
    stored.access_token = token
    stored.expiry = _iso(
        expiry.replace(tzinfo=UTC) if expiry is not None else now + timedelta(minutes=30)
    )
    if credentials.refresh_token and credentials.refresh_token != stored.refresh_token:
        stored.refresh_token = credentials.refresh_token  # the endpoint rotated it
    write_token(binding.token_path, stored)
    event(log, "oauth.refreshed", token_uri=client.token_uri, expires=stored.expiry)
    return token


def _error_of(exc: Exception) -> tuple[str, str]:
    """(OAuth error code, its description) from google-auth's RefreshError, short and printable."""
    data = exc.args[1] if len(exc.args) > 1 else None
    if not isinstance(data, dict):
        return "", ""
    code = str(data.get("error") or "")
    description = str(data.get("error_description") or "")
    clean = "".join(c if c.isprintable() else " " for c in description)[:200]
    return "".join(c for c in code if c.isprintable())[:60], clean


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (Google's format), before base64."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def secrets_of(path: Path) -> list[str]:
    """The tokens on file, for log redaction (an unreadable file has none to hide)."""
    try:
        token = read_token(path)
    except OAuthSignInFailed:
        return []
    if token is None:
        return []
    return [t for t in (token.refresh_token, token.access_token) if t]
