"""The submission mailbox over IMAP: the only module that imports imapclient.

One `Mailbox` is one IMAP session on one folder (`settings.folder`, selected read-write). It never
relies on or sets `\\Seen` (every fetch is `BODY.PEEK[]`), never deletes, and turns every socket,
TLS or protocol failure into `MailboxUnavailable` (credentials refused: `MailboxLoginFailed`) with
a message that names the server and the user, never the password. Every socket operation carries
`settings.timeout`, so a server that accepts TCP and then says nothing cannot hang the worker.

    with Mailbox(settings.imap) as box:
        state = box.state()                     # UIDVALIDITY, UIDNEXT, EXISTS
        for msg in box.fetch(box.uids_after(last_uid)):
            ...                                 # archive msg.raw before the next one arrives
        box.mark_done(handled_uids)             # keyword, move or Gmail label
"""

from __future__ import annotations

import email.parser
import email.policy
import logging
import re
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import tenacity
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from intake.errors import ConfigError, MailboxLoginFailed, MailboxUnavailable
from intake.settings import ImapSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

SENT_FLAG = b"\\Sent"
# RFC 2177: re-issue IDLE well before the 29-minute server limit; Gmail drops idlers after ~10 min.
IDLE_RENEW_SECONDS = 9 * 60
# Response codes (RFC 5530) on a refused LOGIN that mean "try again later", not "wrong password".
_TRANSIENT_LOGIN_CODES = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)


@dataclass(frozen=True)
class FolderState:
    folder: str
    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True)
class MailboxMessage:
    uid: int
    uidvalidity: int
    internaldate: datetime  # timezone-aware, as the server recorded receipt
    raw: bytes


def is_transient(exc: BaseException) -> bool:
    """Worth another connect attempt: the server was unreachable, not a refusal of credentials."""
    return isinstance(exc, MailboxUnavailable) and not isinstance(exc, MailboxLoginFailed)


def retry_transient(
    action: Callable[[], T],
    *,
    attempts: int = 3,
    wait_initial: float = 1.0,
    wait_max: float = 10.0,
) -> T:
    """Run `action`, retrying with exponential backoff on `MailboxUnavailable` only.

    A login failure is never retried (waiting will not fix a password and repeated failures can
    get an account locked); the last error is re-raised unchanged after `attempts` tries.
    """

    def _log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.info(  # not yet a failure: the last attempt's error is what callers report
            "IMAP connect attempt %d/%d failed (%s); retrying in %.1f s",
            state.attempt_number,
            attempts,
            exc,
            delay,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, attempts)),
        wait=tenacity.wait_exponential(multiplier=wait_initial, max=wait_max),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(action)


class Mailbox:
    """One IMAP session on one folder. Use as a context manager.

    `ssl_context` replaces the default verifying context (a private CA, tests). `connect_attempts`
    and the waits tune the connect retry (`retry_transient`); `connect_attempts=1` fails at once.
    """

    def __init__(
        self,
        settings: ImapSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_attempts: int = 3,
        retry_wait: float = 1.0,
        retry_wait_max: float = 10.0,
    ) -> None:
        if settings.timeout <= 0:
            raise ConfigError("imap.timeout must be a positive number of seconds")
        if settings.batch_size < 1:
            raise ConfigError("imap.batch_size must be at least 1")
        self._settings = settings
        self._ssl_context = ssl_context
        self._connect_attempts = connect_attempts
        self._retry_wait = retry_wait
        self._retry_wait_max = retry_wait_max
        self._client: IMAPClient | None = None
        self._broken = False  # the socket failed: skip LOGOUT on close
        self._selected: str | None = None
        self._uidvalidity = 0
        self._uidnext: int | None = None
        self._exists = 0
        self._permanent_flags: tuple[bytes, ...] | None = None  # None: not announced

    # ------------------------------------------------------------------ session

    def __enter__(self) -> Mailbox:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect, log in and select the folder, retrying transient failures."""
        self.close()
        retry_transient(
            self._open_once,
            attempts=self._connect_attempts,
            wait_initial=self._retry_wait,
            wait_max=self._retry_wait_max,
        )

    def reconnect(self) -> None:
        """Drop the session (quietly) and open a new one, e.g. after a BYE mid-fetch."""
        self.open()

    def close(self) -> None:
        """Log out; if that fails shut the socket; if that fails too, log. Never raises."""
        client, self._client = self._client, None
        broken, self._broken = self._broken, False
        self._selected = None
        if client is None:
            return
        _close_client(client, logout=not broken, where=self._where())

    def _open_once(self) -> None:
        s = self._settings
        self._broken = False
        context = self._tls_context() if s.security in ("ssl", "starttls") else None
        try:
            client = IMAPClient(
                s.host,
                port=s.effective_port(),
                ssl=s.security == "ssl",
                ssl_context=context if s.security == "ssl" else None,
                timeout=s.timeout,
            )
        except (OSError, IMAPClientError) as exc:
            raise MailboxUnavailable(self._describe("connect", exc)) from exc
        client.normalise_times = False  # INTERNALDATE keeps its zone: aware datetimes
        try:
            if s.security == "starttls":
                self._starttls(client, context)
            self._login(client)
            self._client = client
            self._select(s.folder, readonly=False)
        except BaseException:
            self._client = None
            # a refused login or a missing folder leaves a working socket: log out politely;
            # after a socket failure LOGOUT would only wait for another timeout
            _close_client(client, logout=not self._broken, where=self._where())
            raise

    def _tls_context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _starttls(self, client: IMAPClient, context: ssl.SSLContext | None) -> None:
        try:
            offered = client.has_capability("STARTTLS")
        except (OSError, IMAPClientError) as exc:
            self._broken = True
            raise MailboxUnavailable(self._describe("CAPABILITY", exc)) from exc
        if not offered:
            raise MailboxLoginFailed(
                f"IMAP server {self._where()} does not offer STARTTLS; refusing to send the "
                "password in clear (set imap.security to 'ssl' or check the port)"
            )
        try:
            client.starttls(context)
        except (OSError, IMAPClientError) as exc:
            self._broken = True
            raise MailboxUnavailable(self._describe("STARTTLS", exc)) from exc

    def _login(self, client: IMAPClient) -> None:
        s = self._settings
        if s.auth == "oauth2":
            self._oauth2_login(client)
            return
        password = s.password.get_secret_value()
        if not s.username or not password:
            raise MailboxLoginFailed(
                f"IMAP login to {self._where()}: imap.username and imap.password must be set"
            )
        try:
            if (s.username + password).isascii():
                client.login(s.username, password)
            elif client.has_capability("AUTH=PLAIN"):
                client.plain_login(s.username, password)  # SASL PLAIN carries UTF-8
            else:
                raise MailboxLoginFailed(
                    f"IMAP login to {self._where()} as {s.username!r}: the credentials contain "
                    "non-ASCII characters and the server offers no AUTH=PLAIN"
                )
        except LoginError as exc:
            text = _reply_text(str(exc))
            if "socket error" in text:
                self._broken = True
            if self._broken or any(code in text for code in _TRANSIENT_LOGIN_CODES):
                raise MailboxUnavailable(self._describe("LOGIN", exc)) from exc
            raise MailboxLoginFailed(
                f"IMAP server {self._where()} refused the login of {s.username!r}: "
                f"{self._redact(text)} (check INTAKE_IMAP__USERNAME and INTAKE_IMAP__PASSWORD, "
                "the app password)"
            ) from exc
        except (OSError, IMAPClientError) as exc:
            self._broken = True
            raise MailboxUnavailable(self._describe("LOGIN", exc)) from exc

    def _oauth2_login(self, client: IMAPClient) -> None:
        """AUTHENTICATE XOAUTH2 with an access token from intake.oauth (refreshed before expiry).

        A refusal of a token that came from the file (not fresh) is tried once more with a fresh
        one: the owner may have revoked it, and the refresh then says so (OAuthRevoked).
        """
        from intake import oauth

        s = self._settings
        if not s.username:
            raise MailboxLoginFailed(
                f"IMAP login to {self._where()}: imap.username (INTAKE_IMAP__USERNAME) must be "
                "set to the Gmail address that gave consent"
            )
        if s.oauth is None:
            raise ConfigError("imap.auth = 'oauth2' but these IMAP settings carry no OAuth client")
        force = False
        while True:
            token = oauth.access_token(s.oauth, timeout=s.timeout, force=force)
            try:
                client.oauth2_login(s.username, token.token)
                return
            except LoginError as exc:
                text = _printable(str(exc).replace(token.token, "***"))
                if "socket error" in text:
                    self._broken = True
                if self._broken or any(code in text for code in _TRANSIENT_LOGIN_CODES):
                    raise MailboxUnavailable(
                        f"IMAP XOAUTH2 login on {self._where()}: {text}"
                    ) from None
                if not token.fresh:
                    force = True
                    continue
                raise MailboxLoginFailed(
                    f"IMAP server {self._where()} refused the OAuth 2.0 login of {s.username!r} "
                    f"with a fresh access token: {text} (imap.username must be the account that "
                    f"gave consent, with scope {s.oauth.client.scope})"
                ) from None
            except (OSError, IMAPClientError) as exc:
                self._broken = True
                raise MailboxUnavailable(self._describe("AUTHENTICATE XOAUTH2", exc)) from None

    # ------------------------------------------------------------------ the folder

    def state(self) -> FolderState:
        """The folder's UIDVALIDITY, UIDNEXT and message count, fresh from the server."""
        self._select(self._settings.folder, readonly=False)
        return FolderState(
            folder=self._settings.folder,
            uidvalidity=self._uidvalidity,
            uidnext=self._uidnext,
            exists=self._exists,
        )

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above last_uid, ascending (UID SEARCH UID n+1:*, filtered client-side)."""
        if last_uid < 0:
            raise ValueError("last_uid must be >= 0")
        client = self._require()
        with self._guard("UID SEARCH"):
            found = client.search(["UID", f"{last_uid + 1}:*"])
        # "n:*" always matches the highest UID, even when it is below n: filter here.
        return sorted({int(uid) for uid in found if int(uid) > last_uid})

    def fetch(self, uids: Sequence[int]) -> Iterator[MailboxMessage]:
        """BODY.PEEK[] + INTERNALDATE in batches of settings.batch_size; never sets \\Seen.

        Messages come in the order of `uids`, each batch as soon as the server sent it; a UID that
        no longer exists (expunged meanwhile) is skipped with a log line.
        """
        wanted = list(dict.fromkeys(int(uid) for uid in uids))
        size = self._settings.batch_size
        uidvalidity = self._uidvalidity
        for start in range(0, len(wanted), size):
            batch = wanted[start : start + size]
            client = self._require()
            with self._guard(f"UID FETCH of {len(batch)} message(s)"):
                data = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
            for uid in batch:
                item = data.get(uid)
                if item is None:
                    log.warning(
                        "IMAP UID %d in %s vanished before it was fetched", uid, self._selected
                    )
                    continue
                raw = item.get(b"BODY[]")
                internaldate = item.get(b"INTERNALDATE")
                if raw is None or not isinstance(internaldate, datetime):
                    self._broken = True
                    raise MailboxUnavailable(
                        f"IMAP server {self._where()} answered UID FETCH {uid} without "
                        "BODY[] or INTERNALDATE"
                    )
                yield MailboxMessage(
                    uid=uid,
                    uidvalidity=uidvalidity,
                    internaldate=_aware(internaldate),
                    raw=bytes(raw),
                )

    def mark_done(self, uids: Sequence[int]) -> None:
        """File handled messages on the server (keyword, move, or Gmail label); never deletes.

        Idempotent: marking a message twice, or one already moved away, is not an error. One
        command per `settings.batch_size` UIDs, so neither the command line (servers cap it, e.g.
        Dovecot at 64 KB) nor the parsed answer grows with the number of messages.
        """
        wanted = sorted({int(uid) for uid in uids})
        if not wanted:
            return
        mode = self._settings.mark
        if mode == "gmail-label":
            if self._has_capability("X-GM-EXT-1"):
                label = self._settings.done_folder
                for chunk in self._chunks(wanted):
                    with self._guard(f"X-GM-LABELS +{label}"):
                        self._require().add_gmail_labels(chunk, [label], silent=True)
                return
            log.warning(
                "imap.mark = 'gmail-label' but %s is not Gmail (no X-GM-EXT-1); "
                "using keyword %s instead",
                self._where(),
                self._settings.done_keyword,
            )
            mode = "keyword"
        if mode == "move":
            if self._has_capability("MOVE"):
                folder = self._settings.done_folder
                self.ensure_folder(folder)
                for chunk in self._chunks(wanted):
                    with self._guard(f"UID MOVE to {folder!r}"):
                        self._require().move(chunk, folder)
                return
            log.warning(
                "IMAP server %s has no MOVE capability; marking with keyword %s instead "
                "(COPY + \\Deleted would delete, which we never do)",
                self._where(),
                self._settings.done_keyword,
            )
        self._add_keyword(wanted)

    def _chunks(self, uids: list[int]) -> Iterator[list[int]]:
        size = self._settings.batch_size
        for start in range(0, len(uids), size):
            yield uids[start : start + size]

    def _add_keyword(self, uids: list[int]) -> None:
        keyword = self._settings.done_keyword
        if not self.keyword_allowed(keyword):
            raise MailboxUnavailable(
                f"IMAP folder {self._settings.folder!r} on {self._where()} cannot store the "
                f"keyword {keyword!r} permanently (PERMANENTFLAGS "
                f"{b' '.join(self._permanent_flags or ()).decode(errors='replace') or 'none'}); "
                "set imap.mark = 'move' instead"
            )
        wanted = keyword.lower()
        for chunk in self._chunks(uids):
            with self._guard(f"UID STORE +FLAGS {keyword}"):
                result = self._require().add_flags(chunk, [keyword])
            # Some servers answer OK and silently drop custom keywords: check what they report.
            for uid, flags in result.items():
                if wanted not in {_text(flag).lower() for flag in flags}:
                    raise MailboxUnavailable(
                        f"IMAP server {self._where()} accepted STORE but did not keep keyword "
                        f"{keyword!r} on UID {uid}; set imap.mark = 'move' instead"
                    )

    def keyword_allowed(self, keyword: str) -> bool:
        """True when PERMANENTFLAGS of the selected folder admits `keyword` (or any, `\\*`).

        A server that announces no PERMANENTFLAGS at all allows every flag (RFC 3501 7.1).
        """
        if self._permanent_flags is None:
            return True
        flags = {_text(flag).lower() for flag in self._permanent_flags}
        return "\\*" in flags or keyword.lower() in flags

    def flags(self, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """The current flags of messages in the selected folder (a FETCH FLAGS, no body)."""
        if not uids:
            return {}
        with self._guard("UID FETCH FLAGS"):
            data = self._require().fetch(list(uids), ["FLAGS"])
        return {
            int(uid): tuple(_text(f) for f in item.get(b"FLAGS", ())) for uid, item in data.items()
        }

    # ------------------------------------------------------------------ other folders

    def ensure_folder(self, folder: str) -> None:
        """Create `folder` unless it exists (a concurrent creation is fine)."""
        client = self._require()
        with self._guard(f"LIST {folder!r}"):
            if client.folder_exists(folder):
                return
        try:
            with self._guard(f"CREATE {folder!r}"):
                client.create_folder(folder)
        except MailboxUnavailable:
            if self._broken:
                raise
            with self._guard(f"LIST {folder!r}"):
                if not client.folder_exists(folder):
                    raise
        log.info("created IMAP folder %r on %s", folder, self._where())

    def sent_folder(self) -> str | None:
        """`settings.sent_folder`, else the folder flagged SPECIAL-USE \\Sent, else None.

        Found by flag, never by name: Gmail calls it "[Gmail]/Sent Mail", localised UIs otherwise.
        """
        if self._settings.sent_folder:
            return self._settings.sent_folder
        with self._guard("LIST"):
            folders = self._require().list_folders()
        for flags, _delimiter, name in folders:
            if any(_text(flag).lower() == "\\sent" for flag in flags):
                return str(name)
        log.warning(
            "no SPECIAL-USE \\Sent folder on %s; set imap.sent_folder "
            "(INTAKE_IMAP__SENT_FOLDER) to search sent mail",
            self._where(),
        )
        return None

    def find_message_id(self, folder: str, message_id: str) -> bool:
        """True if `folder` holds a message whose Message-ID header is exactly `message_id`.

        `message_id` may come with or without angle brackets. The folder is EXAMINEd (read-only)
        and the session's own folder selected again afterwards. The server's substring SEARCH is
        confirmed client-side against the header itself.
        """
        wanted = _normalise_message_id(message_id)
        if not wanted or not wanted.isascii() or any(c in wanted for c in ' "\\\r\n\t'):
            raise ValueError(f"not a usable Message-ID: {message_id!r}")
        client = self._require()
        try:
            with self._guard(f"EXAMINE {folder!r}"):
                client.select_folder(folder, readonly=True)
            self._selected = folder
            with self._guard("UID SEARCH HEADER Message-ID"):
                found = client.search(["HEADER", "Message-ID", wanted])
            if not found:
                return False
            field = "BODY[HEADER.FIELDS (MESSAGE-ID)]"
            with self._guard("UID FETCH Message-ID"):
                data = client.fetch(list(found), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
            for item in data.values():
                header = item.get(field.encode()) or b""
                values = parser.parsebytes(bytes(header)).get_all("Message-ID") or []
                if any(_normalise_message_id(str(v)) == wanted for v in values):
                    return True
            return False
        finally:
            if not self._broken and self._client is not None:
                self._select(self._settings.folder, readonly=False)

    def append(
        self,
        folder: str,
        raw: bytes,
        internaldate: datetime | None = None,
        flags: Sequence[str] = (),
    ) -> int | None:
        """APPEND `raw` to `folder` (created if missing); the new UID when the server tells it.

        Use with care: on Gmail, mail sent over its SMTP is already in Sent.
        """
        self.ensure_folder(folder)
        with self._guard(f"APPEND to {folder!r}"):
            response = self._require().append(
                folder, raw, flags=tuple(flags), msg_time=internaldate
            )
        match = _APPENDUID.search(response if isinstance(response, bytes) else b"")
        return int(match.group(2)) if match else None

    # ------------------------------------------------------------------ IDLE

    def supports_idle(self) -> bool:
        return self._has_capability("IDLE")

    def idle_wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for new mail in the folder (IDLE); True if some arrived.

        IDLE is re-issued every IDLE_RENEW_SECONDS. A socket that keeps polling readable but
        yields nothing (closed by the server or a middlebox) raises MailboxUnavailable instead of
        spinning; one such wake-up alone (a TLS record with no data) is tolerated.
        """
        client = self._require()
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            round_end = time.monotonic() + min(remaining, IDLE_RENEW_SECONDS)
            new_mail = False
            empty_wakeups = 0
            with self._guard("IDLE"):
                client.idle()
                try:
                    while not new_mail:
                        wait = round_end - time.monotonic()
                        if wait <= 0:
                            break
                        started = time.monotonic()
                        responses = client.idle_check(timeout=wait)
                        if responses or time.monotonic() - started >= wait - 0.05:
                            empty_wakeups = 0
                        else:
                            empty_wakeups += 1
                            if empty_wakeups >= 3:
                                self._broken = True
                                raise MailboxUnavailable(
                                    f"IMAP server {self._where()} closed the connection during IDLE"
                                )
                        new_mail = _announces_mail(responses)
                finally:
                    if not self._broken:
                        _text_done, more = client.idle_done()
                        new_mail = new_mail or _announces_mail(more)
            if new_mail:
                return True

    # ------------------------------------------------------------------ helpers

    def _require(self) -> IMAPClient:
        if self._client is None:
            raise MailboxUnavailable(
                f"IMAP session to {self._where()} is not open (use the Mailbox as a context manager)"
            )
        if self._broken:
            raise MailboxUnavailable(
                f"IMAP session to {self._where()} failed earlier; reconnect before using it again"
            )
        return self._client

    def _select(self, folder: str, *, readonly: bool) -> None:
        client = self._require()
        with self._guard(f"SELECT {folder!r}"):
            response = client.select_folder(folder, readonly=readonly)
        uidvalidity = response.get(b"UIDVALIDITY")
        if not isinstance(uidvalidity, int):
            raise MailboxUnavailable(
                f"IMAP server {self._where()} gave no UIDVALIDITY for folder {folder!r}"
            )
        self._selected = folder
        self._uidvalidity = uidvalidity
        uidnext = response.get(b"UIDNEXT")
        self._uidnext = uidnext if isinstance(uidnext, int) else None
        self._exists = int(response.get(b"EXISTS", 0))
        permanent = response.get(b"PERMANENTFLAGS")
        self._permanent_flags = None if permanent is None else tuple(permanent)

    def _has_capability(self, name: str) -> bool:
        with self._guard("CAPABILITY"):
            return bool(self._require().has_capability(name))

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn socket, TLS and protocol errors into MailboxUnavailable (password redacted)."""
        try:
            yield
        except MailboxUnavailable:
            raise
        except (OSError, IMAPClientError, EOFError) as exc:
            if isinstance(exc, OSError | IMAPClientAbortError | EOFError):
                self._broken = True  # the connection is gone or out of step
            raise MailboxUnavailable(self._describe(action, exc)) from exc

    def _where(self) -> str:
        s = self._settings
        return f"{s.host}:{s.effective_port()}"

    def _describe(self, action: str, exc: BaseException) -> str:
        s = self._settings
        detail = _reply_text(str(exc)) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            detail = f"no answer within {s.timeout:g} s ({detail})"
        user = f" as {s.username!r}" if s.username else ""
        return self._redact(
            f"IMAP {action} failed on {self._where()}{user} ({s.security}): "
            f"{type(exc).__name__}: {detail}"
        )

    def _redact(self, text: str) -> str:
        password = self._settings.password.get_secret_value()
        return text.replace(password, "**********") if password else text


def _printable(text: str) -> str:
    """A server's words on one line, at most 300 characters, no control characters."""
    return "".join(c if c.isprintable() else " " for c in text)[:300]


def _close_client(client: IMAPClient, *, logout: bool, where: str) -> None:
    if logout:
        try:
            client.logout()
            return
        except Exception as exc:  # noqa: BLE001 - closing must never raise
            log.debug("IMAP LOGOUT on %s failed: %s", where, exc)
    try:
        client.shutdown()
    except Exception as exc:  # noqa: BLE001 - closing must never raise
        log.info("could not close the IMAP connection to %s cleanly: %s", where, exc)


def _aware(value: datetime) -> datetime:
    offset = value.utcoffset()
    if offset is None:
        log.warning("IMAP INTERNALDATE %s has no zone; taking it as UTC", value)
        return value.replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC if offset == timedelta(0) else timezone(offset))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


_BYTES_REPR = re.compile(r"""\bb(['"])((?:\\.|(?!\1).)*)\1""", re.DOTALL)


def _reply_text(text: str) -> str:
    """A server's reply as a person reads it: imaplib keeps the reply as bytes and imapclient's
    errors hold their repr (`b'[AUTHENTICATIONFAILED] Authentication failed.'`)."""
    import ast

    def decode(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return match.group(0)
        return _text(value) if isinstance(value, bytes) else match.group(0)

    return _BYTES_REPR.sub(decode, text)


def _normalise_message_id(value: str) -> str:
    return value.strip().removeprefix("<").removesuffix(">").strip()


def _announces_mail(responses: Sequence[Any]) -> bool:
    return any(
        isinstance(r, tuple)
        and len(r) >= 2
        and _text(r[1]).upper() in ("EXISTS", "RECENT")
        and isinstance(r[0], int)
        and r[0] > 0
        for r in responses
    )
