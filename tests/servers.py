"""Real servers for the tests: Dovecot (IMAP), aiosmtpd (SMTP) and a throwaway PostgreSQL.

Each is a class with `start()` / `stop()` for fixtures (see conftest.py). Subprocesses get
PR_SET_PDEATHSIG, so a killed test run leaves no server behind. A missing binary raises
`ServerUnavailable` with the install command: the suite fails, it never skips.

See shared/reference/test-infra.md for the choices (short /tmp paths, root specifics).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import email
import email.policy
import glob
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from intake.settings import ImapSettings, SmtpSettings

_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PR_SET_PDEATHSIG = 1
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)


class ServerUnavailable(RuntimeError):
    """A test server could not be started (binary missing, did not come up)."""


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive `sig` when this process dies (Linux).

    It runs after Popen's user/group switch (which would clear the setting). If the parent is
    already gone when it runs, the child exits at once.
    """
    parent = os.getpid()
    libc = _libc()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process. All
# server processes are therefore forked by one long-lived thread, so that a server started from
# a short-lived thread (a threading.Timer in a test) lives until the test process dies.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen` from the spawner thread; pass `preexec_fn=die_with_parent(...)`."""

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(args), **kwargs)

    return _SPAWNER.submit(start).result()


def find_binary(name: str, hint: str, extra_dirs: Sequence[str] = ()) -> str:
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":" + _SBIN_PATH)
    if found:
        return found
    raise ServerUnavailable(f"`{name}` not found; install it: {hint}")


def _wait_for_greeting(
    port: int, proc: subprocess.Popen[bytes], prefix: bytes, timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerUnavailable(
                f"server exited with code {proc.returncode} before listening on {port}:\n"
                + _tail(log)
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                if sock.recv(200).startswith(prefix):
                    return
        except OSError as exc:
            last_error = exc
        time.sleep(0.02)
    raise ServerUnavailable(
        f"server not ready on port {port} after {timeout} s ({last_error}):\n{_tail(log)}"
    )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _terminate_group(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 15.0) -> None:
    """Signal a server started with `process_group=0` and everything in its group, then reap.

    Dovecot's master leaves running `imap` processes behind when it exits (they keep serving
    their open connections); a test that stops the server means the connections too.
    """
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if not live_processes_in_group(proc.pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def live_processes_in_group(group: int) -> list[int]:
    """PIDs in process group `group`, zombies excluded (orphans are reaped late here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            found.append(int(entry.name))
    return found


# Kills a whole process group when the test process dies: Dovecot's master, once signalled,
# can wait seconds for a login process stuck in a read; this ends them all within ~1 s.
_GROUP_REAPER = """
import os, signal, sys, time
group = int(sys.argv[1])
def alive():
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            return True
    return False
def reap(*_):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            os._exit(0)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if not alive():
                os._exit(0)
            time.sleep(0.05)
    os._exit(0)
signal.signal(signal.SIGTERM, reap)
while True:
    signal.pause()
"""


def spawn_group_reaper(group: int) -> subprocess.Popen[bytes]:
    """A small process that kills process group `group` when this process dies."""
    return spawn(
        [sys.executable, "-c", _GROUP_REAPER, str(group)],
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent(signal.SIGTERM),
    )


def _uid_from_append(response: Any) -> int | None:
    match = _APPENDUID.search(response if isinstance(response, bytes) else b"")
    return int(match.group(2)) if match else None


# --------------------------------------------------------------------------- Dovecot


_DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
instance_name = intake-test-{port}
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = 0
stats_writer_socket_path =
{owner}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users/%u
}}
{oauth2_passdb}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%u
}}
# no growing delay after failed logins from 127.0.0.1 (the tests fail logins on purpose)
service anvil {{
  {login_chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  {login_chroot}
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
"""


class DovecotServer:
    """A private Dovecot instance on 127.0.0.1 with passwd-file users (PLAIN passwords).

    `tls=True` adds a self-signed certificate for localhost/127.0.0.1: STARTTLS on `port` and
    implicit TLS on `tls_port`; `ssl_context()` trusts it.

    `oauth2_introspection_url` adds Dovecot's `oauth2` passdb after the passwd-file one, with
    the XOAUTH2 and OAUTHBEARER mechanisms: a bearer token is valid when a POST of
    `token=...` to that URL answers `{"active": true, "username": "<the login name>"}` (RFC
    7662 introspection, as Google's own servers do it for Gmail). Passwords keep working.
    """

    def __init__(self, *, tls: bool = False, oauth2_introspection_url: str | None = None) -> None:
        self.tls = tls
        self.oauth2_introspection_url = oauth2_introspection_url
        self.dir: Path | None = None
        self.port = 0
        self.tls_port = 0
        self.users: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._dovecot = find_binary("dovecot", "apt-get install -y dovecot-imapd")
        self._doveadm = find_binary("doveadm", "apt-get install -y dovecot-imapd")
        self._user_seq = itertools.count(1)

    # lifecycle --------------------------------------------------------------

    @property
    def conf(self) -> Path:
        assert self.dir is not None, "start() the server first"
        return self.dir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None, "start() the server first"
        return self.dir / "dovecot.log"

    def start(self) -> DovecotServer:
        if self._proc is not None and self._proc.poll() is None:
            return self
        if self.dir is None:
            self._prepare()
        self._launch()
        return self

    def stop(self) -> None:
        """Stop the server and delete its mail and config."""
        self.halt()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def halt(self) -> None:
        """Stop the server and drop its connections, keep the mail: `start()` brings it back."""
        self._end(signal.SIGTERM)

    def crash(self) -> None:
        """SIGKILL the server and its sessions: connections drop without a BYE."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        _terminate_group(self._proc, sig)
        self._proc = None
        if self._reaper is not None:
            self._reaper.kill()
            self._reaper.wait(5)
            self._reaper = None

    def restart(self) -> None:
        self.halt()
        self._launch()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _prepare(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="dc", dir="/tmp"))
        directory.chmod(0o755)  # the dovecot user must traverse it
        self.dir = directory
        self.port = free_port()
        self.tls_port = free_port() if self.tls else 0
        (directory / "mail").mkdir()
        (directory / "users").mkdir()
        if os.geteuid() == 0:
            entry = pwd.getpwnam("dovecot")
            uid, gid, owner, login_chroot = entry.pw_uid, entry.pw_gid, "", ""
            os.chown(directory / "mail", uid, gid)
        else:  # a developer's own account: everything runs as that user
            entry = pwd.getpwuid(os.geteuid())
            uid, gid = entry.pw_uid, entry.pw_gid
            owner = (
                f"default_login_user = {entry.pw_name}\n"
                f"default_internal_user = {entry.pw_name}\n"
                f"default_internal_group = {entry.pw_name}\n"
            )
            login_chroot = "chroot ="

        if self.tls:
            self._make_certificate()
            ssl_conf = (
                f"ssl = yes\nssl_cert = <{directory}/cert.pem\nssl_key = <{directory}/key.pem"
            )
        else:
            ssl_conf = "ssl = no"
        mechanisms, oauth2_passdb = "", ""
        if self.oauth2_introspection_url:
            mechanisms = " xoauth2 oauthbearer"
            oauth2_conf = directory / "dovecot-oauth2.conf.ext"
            oauth2_conf.write_text(
                f"introspection_url = {self.oauth2_introspection_url}\n"
                "introspection_mode = post\n"
                "force_introspection = yes\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
                "timeout_msecs = 10000\n"
            )
            oauth2_passdb = f"passdb {{\n  driver = oauth2\n  args = {oauth2_conf}\n}}\n"
        self.conf.write_text(
            _DOVECOT_CONF.format(
                mechanisms=mechanisms,
                oauth2_passdb=oauth2_passdb,
                dir=directory,
                port=self.port,
                tls_port=self.tls_port,
                ssl=ssl_conf,
                owner=owner,
                login_chroot=login_chroot,
                uid=uid,
                gid=gid,
            )
        )

    def _make_certificate(self) -> None:
        assert self.dir is not None
        openssl = find_binary("openssl", "apt-get install -y openssl")
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(self.dir / "key.pem"), "-out", str(self.dir / "cert.pem"),
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this server's self-signed certificate."""
        assert self.dir is not None and self.tls, "a tls=True server"
        return ssl.create_default_context(cafile=str(self.dir / "cert.pem"))

    def _launch(self) -> None:
        assert self.dir is not None
        with self.log_path.open("ab") as out:
            self._proc = spawn(
                [self._dovecot, "-F", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,  # its children with it: see _terminate_group
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        self._reaper = spawn_group_reaper(self._proc.pid)
        _wait_for_greeting(self.port, self._proc, b"* OK", 15.0, self.log_path)

    # users and mail -----------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> str:
        """Add a user (a fresh name and password by default); returns the name."""
        assert self.dir is not None, "start() the server first"
        name = name or f"u{next(self._user_seq)}-{secrets.token_hex(3)}"
        password = password or secrets.token_urlsafe(12)
        if ":" in name + password or "\n" in name + password:
            raise ValueError("user names and passwords must not contain ':' or newlines")
        if "/" in name or name.startswith("."):
            raise ValueError("user names must not contain '/' or start with '.'")
        # One passwd-file per user: Dovecot re-reads a changed file at most once a second,
        # so a user added to a shared file could not log in right away.
        tmp = self.dir / "users" / f".{name}.tmp"
        tmp.write_text(f"{name}:{{PLAIN}}{password}\n")
        tmp.replace(self.dir / "users" / name)
        self.users[name] = password
        return name

    def user(self, name: str | None = None, password: str | None = None) -> DovecotUser:
        return DovecotUser(self, self.add_user(name, password))

    def client(self, user: str, timeout: float = 10.0) -> IMAPClient:
        """A logged-in IMAPClient for test setup and checks (caller logs out / uses `with`)."""
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=timeout)
        client.login(user, self.users[user])
        return client

    def append(
        self,
        user: str,
        raw: bytes,
        internaldate: datetime | None = None,
        folder: str = "INBOX",
        flags: Sequence[str] = (),
    ) -> int:
        """APPEND one message (folder created if missing); returns its UID."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags), msg_time=internaldate)
        uid = _uid_from_append(response)
        assert uid is not None, f"no APPENDUID in {response!r}"
        return uid

    def set_uidvalidity(self, user: str, folder: str, value: int) -> None:
        subprocess.run(
            [self._doveadm, "-c", str(self.conf), "mailbox", "update", "-u", user,
             "--uid-validity", str(value), folder],
            check=True,
            capture_output=True,
            timeout=30,
        )  # fmt: skip

    def imap_settings(self, user: str, **overrides: Any) -> ImapSettings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "username": user,
            "password": self.users[user],
            "security": "none",
            "folder": "INBOX",
            "mark": "keyword",
            "timeout": 10.0,
        }
        values.update(overrides)
        return ImapSettings(**values)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.dir else ""


@dataclass
class DovecotUser:
    """One mailbox user on a DovecotServer, with the server helpers bound to it."""

    server: DovecotServer
    name: str

    @property
    def password(self) -> str:
        return self.server.users[self.name]

    def settings(self, **overrides: Any) -> ImapSettings:
        return self.server.imap_settings(self.name, **overrides)

    def client(self, timeout: float = 10.0) -> IMAPClient:
        return self.server.client(self.name, timeout)

    def append(
        self,
        raw: bytes,
        internaldate: datetime | None = None,
        folder: str = "INBOX",
        flags: Sequence[str] = (),
    ) -> int:
        return self.server.append(self.name, raw, internaldate, folder, flags)

    def set_uidvalidity(self, folder: str, value: int) -> None:
        self.server.set_uidvalidity(self.name, folder, value)

    def flags(self, uid: int, folder: str = "INBOX") -> tuple[str, ...]:
        """The flags of one message as another client sees them (read-only EXAMINE)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            data = client.fetch([uid], ["FLAGS"])
        assert uid in data, f"UID {uid} not in {folder}"
        return tuple(f.decode() if isinstance(f, bytes) else str(f) for f in data[uid][b"FLAGS"])

    def uids(self, folder: str = "INBOX") -> list[int]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class _SmtpHandler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return self.owner._on_data(envelope)


class _XOAuth2SmtpHandler(_SmtpHandler):
    """AUTH XOAUTH2 (Google's SASL mechanism) as aiosmtpd's custom `auth_<NAME>` hook: the bearer
    token is checked at the introspection endpoint, as Dovecot's oauth2 passdb does it."""

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:  # noqa: N802
        import base64
        import json

        from aiosmtpd.smtp import AuthResult

        if len(args) > 1:
            answer: Any = args[1].encode()
        else:
            answer = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(answer, bytes):
                return AuthResult(success=False)
        try:
            fields = base64.b64decode(answer, validate=True).decode().split("\x01")
            user = next(f[5:] for f in fields if f.startswith("user="))
            token = next(f[12:] for f in fields if f.startswith("auth=Bearer "))
        except (ValueError, StopIteration):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Bad XOAUTH2")
        owner = self.owner
        assert owner.oauth2_introspection_url is not None
        holder = await asyncio.to_thread(introspect, owner.oauth2_introspection_url, token)
        if holder != user:
            # Google's way: a 334 with the error in JSON, the client answers with an empty line
            error = json.dumps(
                {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
            )
            await server.challenge_auth(base64.b64encode(error.encode()), encode_to_b64=False)
            owner.auth_refused.append(user)
            return AuthResult(
                success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
            )
        owner.auth_logins.append(user)
        return AuthResult(success=True, auth_data=user)


def introspect(url: str, token: str) -> str | None:
    """RFC 7662 introspection: the token's username when active, else None."""
    import json
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode({"token": token}).encode()
    with urllib.request.urlopen(url, data=body, timeout=10) as response:  # noqa: S310
        data = json.loads(response.read())
    return data.get("username") if data.get("active") is True else None


class SmtpServer:
    """aiosmtpd on 127.0.0.1 (SMTPUTF8, 8BITMIME) keeping every accepted message.

    `oauth2_introspection_url` makes it a submission server that requires AUTH XOAUTH2 (no other
    mechanism, no mail before it), the bearer token checked at that introspection endpoint;
    `auth_logins` / `auth_refused` list who signed in or was refused.
    """

    def __init__(self, *, oauth2_introspection_url: str | None = None) -> None:
        self.oauth2_introspection_url = oauth2_introspection_url
        self.auth_logins: list[str] = []
        self.auth_refused: list[str] = []
        self.port = 0
        self.messages: list[ReceivedMail] = []
        self.data_attempts = 0  # DATA commands seen, refused ones included
        self._failures: deque[str] = deque()
        self._cond = threading.Condition()
        self._controller: Any = None

    def start(self) -> SmtpServer:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:
            raise ServerUnavailable("aiosmtpd missing: pip install -e '.[test]'") from exc
        self.port = free_port()
        oauth2: dict[str, Any] = {}
        if self.oauth2_introspection_url:
            oauth2 = {
                "auth_required": True,
                "auth_require_tls": False,
                "auth_exclude_mechanism": ["PLAIN", "LOGIN"],
            }
        handler = (_XOAuth2SmtpHandler if self.oauth2_introspection_url else _SmtpHandler)(self)
        self._controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=self.port,
            enable_SMTPUTF8=True,
            **oauth2,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            with contextlib.suppress(AssertionError, RuntimeError, asyncio.CancelledError):
                self._controller.stop()
            self._controller = None

    def _on_data(self, envelope: Any) -> str:
        with self._cond:
            self.data_attempts += 1
            if self._failures:
                return self._failures.popleft()
            raw = envelope.original_content or envelope.content
            if isinstance(raw, str):
                raw = raw.encode("utf-8", "surrogateescape")
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.messages.append(
                ReceivedMail(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    raw=bytes(raw),
                    message=message,
                )
            )
            self._cond.notify_all()
        return "250 2.0.0 OK: queued"

    def fail_next(self, code_and_text: str, times: int = 1) -> None:
        """Answer the next `times` DATA commands with e.g. "451 4.3.0 try later"."""
        with self._cond:
            self._failures.extend([code_and_text] * times)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least `n` messages arrived; AssertionError after `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n, timeout):
                raise AssertionError(
                    f"expected {n} message(s) within {timeout} s, got {len(self.messages)}"
                )
            return list(self.messages)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()
            self._failures.clear()
            self.data_attempts = 0
            self.auth_logins.clear()
            self.auth_refused.clear()

    def smtp_settings(self, **overrides: Any) -> SmtpSettings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "from_address": "intake@example.test",
            "timeout": 10.0,
        }
        values.update(overrides)
        return SmtpSettings(**values)


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path:
    for name in ("postgres", "initdb"):
        found = shutil.which(name)
        if found and Path(found).with_name("initdb").exists():
            return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(re.sub(r"\D", "", Path(p).parent.name) or 0),
        reverse=True,
    )
    for directory in candidates:
        if (Path(directory) / "postgres").exists() and (Path(directory) / "initdb").exists():
            return Path(directory)
    raise ServerUnavailable(
        "PostgreSQL binaries (initdb, postgres) not found; install them: "
        "apt-get install -y postgresql (or set TEST_DATABASE_URL)"
    )


class PostgresServer:
    """A throwaway PostgreSQL cluster, or the server named by TEST_DATABASE_URL."""

    def __init__(self, external_url: str | None = None) -> None:
        self.external_url = (
            external_url
            if external_url is not None
            else (os.environ.get("TEST_DATABASE_URL") or None)
        )
        self.dir: Path | None = None
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._seq = itertools.count(1)

    def start(self) -> PostgresServer:
        if self.external_url:
            self._wait_ready(time.monotonic() + 10, proc=None)
            return self
        bindir = _postgres_bindir()
        base = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
        base.chmod(0o755)
        self.dir = base
        self.port = free_port()
        run_as: dict[str, Any] = {}
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            entry = pwd.getpwnam("postgres")
            os.chown(base, entry.pw_uid, entry.pw_gid)
            run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        log = base / "postgres.log"
        initdb = spawn(
            [str(bindir / "initdb"), "-D", str(base / "data"), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-locale", "--no-sync"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=base,
            preexec_fn=die_with_parent(signal.SIGKILL),
            **run_as,
        )  # fmt: skip
        output, _ = initdb.communicate(timeout=120)
        if initdb.returncode != 0:
            raise ServerUnavailable(
                f"initdb failed ({initdb.returncode}): {output.decode(errors='replace')}"
            )
        with log.open("ab") as out:
            if run_as:
                os.chown(log, run_as["user"], run_as["group"])
            self._proc = spawn(
                [str(bindir / "postgres"), "-D", str(base / "data"), "-k", str(base),
                 "-h", "127.0.0.1", "-p", str(self.port),
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=base,
                preexec_fn=die_with_parent(signal.SIGINT),  # fast shutdown
                **run_as,
            )  # fmt: skip
        self._wait_ready(time.monotonic() + 30, proc=self._proc)
        return self

    def stop(self) -> None:
        _terminate(self._proc, signal.SIGINT)
        self._proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _wait_ready(self, deadline: float, proc: subprocess.Popen[bytes] | None) -> None:
        import psycopg

        last: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                log = self.dir / "postgres.log" if self.dir else Path("/nonexistent")
                raise ServerUnavailable(
                    f"postgres exited with code {proc.returncode}:\n{_tail(log)}"
                )
            try:
                with psycopg.connect(**self._conninfo("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.05)
        raise ServerUnavailable(f"PostgreSQL not reachable at {self.url('postgres')}: {last}")

    def url(self, dbname: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for database `dbname`."""
        if self.external_url:
            from sqlalchemy.engine import make_url

            base = make_url(self.external_url)
            return base.set(database=dbname).render_as_string(hide_password=False)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def _conninfo(self, dbname: str) -> dict[str, Any]:
        if not self.external_url:
            return {"host": "127.0.0.1", "port": self.port, "user": "postgres", "dbname": dbname}
        from sqlalchemy.engine import make_url

        base = make_url(self.external_url)
        info: dict[str, Any] = {"dbname": dbname}
        for key, value in (
            ("host", base.host),
            ("port", base.port),
            ("user", base.username),
            ("password", base.password),
        ):
            if value is not None:
                info[key] = value
        host = base.query.get("host")  # ?host=/run/postgresql
        if host and "host" not in info:
            info["host"] = host if isinstance(host, str) else host[0]
        return info

    def connect(self, dbname: str = "postgres") -> Any:
        """A psycopg connection (autocommit) to `dbname`."""
        import psycopg

        return psycopg.connect(**self._conninfo(dbname), autocommit=True, connect_timeout=5)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name by default); returns its name."""
        from psycopg import sql

        name = name or f"intake_t{os.getpid()}_{next(self._seq)}_{secrets.token_hex(3)}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# --------------------------------------------------------------------------- TCP stubs


class StubTcpServer:
    """A TCP listener that misbehaves on purpose, for timeout and retry tests.

    Each accepted connection gets `greeting` (if any), then either is closed at once
    (`close=True`) or is left open and silent until `stop()`. `accepted` counts connections.
    """

    def __init__(self, *, greeting: bytes | None = None, close: bool = False) -> None:
        self.greeting = greeting
        self.close = close
        self.accepted = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> StubTcpServer:
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with contextlib.suppress(OSError):
                if self.greeting is not None:
                    conn.sendall(self.greeting)
            if self.close:
                conn.close()
            else:
                self._conns.append(conn)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(2)
        self._sock.close()
        for conn in self._conns:
            conn.close()

    def __enter__(self) -> StubTcpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- Gmail labels


_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_CAPABILITY_CODE = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
_LABEL_STORE = re.compile(
    rb"^(\S+) (UID )?STORE (\S+) ([+-]?)X-GM-LABELS(\.SILENT)? \((.*)\)\r\n$", re.IGNORECASE
)
_FETCH = re.compile(rb"^(\S+) (UID )?FETCH (\S+) (.*)\r\n$", re.IGNORECASE)
_SELECT = re.compile(rb"^\S+ (?:SELECT|EXAMINE) (?:\"((?:[^\"\\]|\\.)*)\"|(\S+))", re.IGNORECASE)
_TAGGED_DONE = re.compile(rb"^(\S+) (OK|NO|BAD)\b", re.IGNORECASE)
_FLAGS_ITEM = re.compile(rb"FLAGS \(([^)]*)\)")
_ASTRING = re.compile(rb'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')


class GmailLabelProxy:
    """An IMAP proxy in front of a DovecotServer that speaks Gmail's labels (X-GM-EXT-1).

    Everything is relayed unchanged (literals included) except:
    - CAPABILITY (the untagged answer and the `[CAPABILITY …]` codes) gains `X-GM-EXT-1`;
    - `UID STORE set +X-GM-LABELS[.SILENT] (labels)` (and `-`) becomes a STORE of Dovecot keywords,
      one per label; without .SILENT the FETCH answers carry `X-GM-LABELS (…)` as Gmail's do;
    - `FETCH … X-GM-LABELS` becomes FETCH FLAGS, answered as `X-GM-LABELS (\\Inbox "label" …)`:
      Gmail's system label for the inbox, then every user label quoted (modified UTF-7).
    With `fail_labels` set, every X-GM-LABELS STORE is answered `NO System Error (Failure)`, as
    Gmail answers a store it cannot do, and nothing is stored. `label_stores` counts them.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.fail_labels = False
        self.label_stores = 0
        self._keywords: dict[str, str] = {}  # label -> Dovecot keyword
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._stopped = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True, name="gmail-proxy")

    def start(self) -> GmailLabelProxy:
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(2)
        self._sock.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> GmailLabelProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def imap_settings(self, base: ImapSettings, **overrides: Any) -> ImapSettings:
        """`base` (a Dovecot user's settings) pointed at the proxy, in Gmail-label mode."""
        values = {**base.model_dump(), "port": self.port, "mark": "gmail-label", **overrides}
        return ImapSettings(**values)

    # labels <-> keywords --------------------------------------------------------

    def _keyword(self, label: str) -> str:
        with self._lock:
            if label not in self._keywords:
                self._keywords[label] = f"$GmLabel{len(self._keywords) + 1}"
            return self._keywords[label]

    def _labels_of(self, flags: bytes, inbox: bool) -> bytes:
        from imapclient.imap_utf7 import encode as utf7

        with self._lock:
            by_keyword = {kw.lower(): label for label, kw in self._keywords.items()}
        labels = [b"\\Inbox"] if inbox else []
        for flag in flags.split():
            label = by_keyword.get(flag.decode("ascii", "replace").lower())
            if label is not None:
                quoted = utf7(label).replace(b"\\", b"\\\\").replace(b'"', b'\\"')
                labels.append(b'"' + quoted + b'"')
        return b"X-GM-LABELS (" + b" ".join(labels) + b")"

    # relaying -------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            self._conns += [client, upstream]
            session = _ProxySession(self, client, upstream)
            threading.Thread(target=session.from_client, daemon=True).start()
            threading.Thread(target=session.from_server, daemon=True).start()


class _ProxySession:
    """One client connection and its upstream Dovecot connection."""

    def __init__(self, proxy: GmailLabelProxy, client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.client, self.upstream = client, upstream
        self.to_client = threading.Lock()
        self.rewrite: dict[bytes, bool] = {}  # tag -> also keep FLAGS in FETCH answers
        self.inbox = False

    def _close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _send_client(self, data: bytes) -> None:
        with self.to_client:
            self.client.sendall(data)

    def from_client(self) -> None:
        reader = self.client.makefile("rb")
        in_command = False
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                if not in_command:
                    line = self._command(line)
                if line:
                    self.upstream.sendall(line)
                literal = _LITERAL.search(line) if line else None
                if literal:
                    self.upstream.sendall(reader.read(int(literal.group(1))))
                in_command = bool(literal)
        except OSError:
            return
        finally:
            self._close()

    def _command(self, line: bytes) -> bytes:
        """The command as Dovecot should get it; b"" when the proxy answered it itself."""
        selected = _SELECT.match(line)
        if selected:
            name = selected.group(1) or selected.group(2) or b""
            self.inbox = name.upper() == b"INBOX"
        store = _LABEL_STORE.match(line)
        if store:
            tag, uid, messages, sign, silent, labels = store.groups()
            self.proxy.label_stores += 1
            if self.proxy.fail_labels:
                self._send_client(tag + b" NO System Error (Failure)\r\n")
                return b""
            from imapclient.imap_utf7 import decode as utf7

            names = [
                utf7(quoted.replace(b'\\"', b'"').replace(b"\\\\", b"\\") if quoted else atom)
                for quoted, atom in _ASTRING.findall(labels)
            ]
            keywords = " ".join(self.proxy._keyword(name) for name in names).encode()
            if not silent:
                self.rewrite[tag] = False
            return b"%s %sSTORE %s %sFLAGS%s (%s)\r\n" % (
                tag, uid or b"", messages, sign, silent or b"", keywords,
            )  # fmt: skip
        fetch = _FETCH.match(line)
        if fetch and b"X-GM-LABELS" in fetch.group(4).upper():
            tag, uid, messages, items = fetch.groups()
            keep_flags = re.search(rb"\bFLAGS\b", items, re.IGNORECASE) is not None
            self.rewrite[tag] = keep_flags
            items = re.sub(rb"X-GM-LABELS", b"" if keep_flags else b"FLAGS", items, flags=re.I)
            items = re.sub(rb"\(\s+|\s+\)", lambda m: m.group(0).strip(), items)
            return b"%s %sFETCH %s %s\r\n" % (tag, uid or b"", messages, items)
        return line

    def from_server(self) -> None:
        reader = self.upstream.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                self._send_client(self._answer(line))
                literal = _LITERAL.search(line)
                while literal:  # the literal, then the rest of the same response
                    self._send_client(reader.read(int(literal.group(1))))
                    line = reader.readline()
                    if not line:
                        return
                    self._send_client(self._answer(line))
                    literal = _LITERAL.search(line)
        except OSError:
            return
        finally:
            self._close()

    def _answer(self, line: bytes) -> bytes:
        """A response line as Gmail would send it."""
        line = _CAPABILITY_CODE.sub(lambda m: b"[CAPABILITY " + m.group(1) + b" X-GM-EXT-1]", line)
        if line.upper().startswith(b"* CAPABILITY "):
            line = line.rstrip(b"\r\n") + b" X-GM-EXT-1\r\n"
        done = _TAGGED_DONE.match(line)
        if done and done.group(1) in self.rewrite:
            del self.rewrite[done.group(1)]
        elif self.rewrite and line.startswith(b"* ") and b" FETCH (" in line.upper():
            keep_flags = any(self.rewrite.values())

            def labels(m: re.Match[bytes]) -> bytes:
                mapped = self.proxy._labels_of(m.group(1), self.inbox)
                return m.group(0) + b" " + mapped if keep_flags else mapped

            line = _FLAGS_ITEM.sub(labels, line)
        return line


# --------------------------------------------------------------------------- OAuth 2.0


@dataclass
class _Grant:
    username: str
    revoked: bool = False


@dataclass
class _Access:
    username: str
    refresh_token: str | None
    expires: float  # time.time()


class OAuthServer:
    """A local OAuth 2.0 authorization server in the shape of Google's, on 127.0.0.1.

    - `POST /token`: `authorization_code` (with PKCE S256, as InstalledAppFlow sends it) and
      `refresh_token` grants; the client by HTTP Basic or by form fields. A refresh token that
      was revoked answers 400 `invalid_grant` "Token has been expired or revoked." as Google does.
    - `POST /introspect`: RFC 7662, `{"active": true, "username": ...}` for a live access token;
      Dovecot's oauth2 passdb and the XOAUTH2 SmtpServer ask it.
    - `authorize(username, code_challenge)` plays the person who clicks "Allow" (the code the
      browser would carry to the redirect address); `issue_refresh_token` skips the consent.
    """

    SCOPE = "https://mail.google.com/"

    def __init__(
        self, client_id: str = "intake-test.apps.example", client_secret: str = ""
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(18)
        self.expires_in = 3600
        self.refreshes = 0  # refresh_token grants answered, refused ones included
        self.requests: list[dict[str, str]] = []  # every /token form (tests check what was sent)
        self._grants: dict[str, _Grant] = {}  # refresh token -> grant
        self._access: dict[str, _Access] = {}
        self._codes: dict[str, tuple[str, str]] = {}  # code -> (username, code_challenge)
        self._lock = threading.Lock()
        self._httpd: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def auth_uri(self) -> str:
        return f"{self.url}/auth"

    @property
    def introspection_url(self) -> str:
        return f"{self.url}/introspect"

    def start(self) -> OAuthServer:
        from http.server import ThreadingHTTPServer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _oauth_handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, name="oauth", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # what a test does -------------------------------------------------------

    def authorize(self, username: str, code_challenge: str) -> str:
        code = secrets.token_urlsafe(12)
        with self._lock:
            self._codes[code] = (username, code_challenge)
        return code

    def issue_refresh_token(self, username: str) -> str:
        token = "1//r-" + secrets.token_urlsafe(24)
        with self._lock:
            self._grants[token] = _Grant(username)
        return token

    def revoke(self, refresh_token: str) -> None:
        """The owner removed the app's access: the refresh token and its access tokens die."""
        with self._lock:
            self._grants[refresh_token].revoked = True
            for key in [k for k, a in self._access.items() if a.refresh_token == refresh_token]:
                del self._access[key]

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access.clear()

    def refresh_tokens_of(self, username: str) -> list[str]:
        with self._lock:
            return [t for t, g in self._grants.items() if g.username == username]

    # the endpoints ----------------------------------------------------------

    def _issue(self, username: str, refresh_token: str | None) -> str:
        token = "ya29.a-" + secrets.token_urlsafe(24)
        self._access[token] = _Access(username, refresh_token, time.time() + self.expires_in)
        return token

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        import base64
        import hashlib

        with self._lock:
            self.requests.append(dict(form))
            client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
            if (client_id, secret) != (self.client_id, self.client_secret):
                return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
            grant = form.get("grant_type")
            if grant == "refresh_token":
                self.refreshes += 1
                refresh = form.get("refresh_token", "")
                found = self._grants.get(refresh)
                if found is None or found.revoked:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    }
                return 200, {
                    "access_token": self._issue(found.username, refresh),
                    "expires_in": self.expires_in,
                    "scope": self.SCOPE,
                    "token_type": "Bearer",
                }
            if grant == "authorization_code":
                username, challenge = self._codes.pop(form.get("code", ""), ("", ""))
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                if not username or digest.rstrip(b"=").decode() != challenge:
                    return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                refresh = "1//r-" + secrets.token_urlsafe(24)
                self._grants[refresh] = _Grant(username)
                return 200, {
                    "access_token": self._issue(username, refresh),
                    "expires_in": self.expires_in,
                    "refresh_token": refresh,
                    "scope": self.SCOPE,
                    "token_type": "Bearer",
                }
            return 400, {"error": "unsupported_grant_type"}

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            access = self._access.get(token)
            if access is None or access.expires < time.time():
                return {"active": False}
            return {"active": True, "username": access.username, "scope": self.SCOPE}


def _oauth_handler(server: OAuthServer) -> Any:
    import base64
    import json
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import parse_qsl

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet: pytest shows failures, not traffic
            pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            if self.path == "/token":
                basic = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
                    basic = (user, secret)
                status, data = server.token(form, basic)
            elif self.path == "/introspect":
                status, data = 200, server.introspect(form.get("token", ""))
            else:
                status, data = 404, {"error": "not_found"}
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
