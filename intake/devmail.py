"""A mailbox and a mail server on this machine, for the demo and for trying the service without
Gmail: pymap's in-memory IMAP server (IDLE, MOVE, UIDPLUS) and aiosmtpd, both pure Python.

    python -m intake.devmail --host 0.0.0.0 --seed   # docker compose --profile dev

serves the account the settings name (`imap.username` / `imap.password`) on IMAP port 1143 and
accepts any mail on SMTP port 1025, printing one line per mail received (the replies). `--seed`
puts the demo's sample province mail in the inbox. Mail lives in memory: a restart empties it.
pymap keeps no custom keywords, so point the worker at it with `imap.mark = "move"`.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
import socket
import threading
from argparse import Namespace
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from imapclient import IMAPClient

from intake.settings import ImapSettings, SmtpSettings


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedImap:
    """pymap's dict backend on a background asyncio loop; one account."""

    def __init__(
        self, username: str, password: str, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.username, self.password, self.host = username, password, host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._done: asyncio.Future[None] | None = None
        self._error: BaseException | None = None

    def start(self) -> EmbeddedImap:
        self._thread = threading.Thread(target=self._serve, name="pymap", daemon=True)
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise RuntimeError(f"the embedded IMAP server did not start: {self._error}")
        return self

    def _serve(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from pymap.backend.dict import DictBackend
        from pymap.imap import IMAPService

        args = Namespace(
            host=[self.host], port=str(self.port), debug=False, cert=None, key=None, tls=False,
            demo_data=False, demo_user=self.username, demo_password=self.password,
            passlib_cfg=None, proxy_protocol=None, inherited_sockets=None,
        )  # fmt: skip
        backend, config = await DictBackend.init(
            args, invalid_user_sleep=0.0, secure_auth=False, reject_dnsbl=False
        )
        config.apply_context()
        async with AsyncExitStack() as stack:
            await backend.start(stack)
            await IMAPService(backend, config).start(stack)
            self._done = self._loop.create_future()
            self._ready.set()
            await self._done

    def stop(self) -> None:
        if self._done is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._done.set_result, None)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> EmbeddedImap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> IMAPClient:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        client = IMAPClient(host, port=self.port, ssl=False, timeout=10)
        client.login(self.username, self.password)
        return client

    def append(self, raw: bytes, when: datetime | None = None, folder: str = "INBOX") -> None:
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, msg_time=when)

    def count(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.select_folder(folder, readonly=True)[b"EXISTS"])

    def settings(self, **overrides: Any) -> ImapSettings:
        values: dict[str, Any] = {
            "host": self.host, "port": self.port, "username": self.username,
            "password": self.password, "security": "none", "folder": "INBOX", "mark": "move",
            "done_folder": "intake/processed", "timeout": 10.0,
        } | overrides  # fmt: skip
        return ImapSettings(**values)


@dataclass(frozen=True)
class Received:
    rcpt_tos: list[str]
    message: EmailMessage


class EmbeddedSmtp:
    """aiosmtpd accepting every mail (SMTPUTF8, 8BITMIME) and keeping it in memory."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_mail: Callable[[Received], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.messages: list[Received] = []
        self.on_mail = on_mail
        self._cond = threading.Condition()
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        received = Received(list(envelope.rcpt_tos), message)
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()
        if self.on_mail is not None:
            self.on_mail(received)
        return "250 2.0.0 OK: queued"

    def start(self) -> EmbeddedSmtp:
        from aiosmtpd.controller import Controller

        self._controller = Controller(
            self, hostname=self.host, port=self.port, enable_SMTPUTF8=True
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> EmbeddedSmtp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= n, timeout)

    def settings(self, **overrides: Any) -> SmtpSettings:
        values: dict[str, Any] = {
            "host": self.host, "port": self.port, "security": "none", "username": "",
            "from_address": "jpp.moi9999@gmail.com", "timeout": 10.0,
        } | overrides  # fmt: skip
        return SmtpSettings(**values)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (the compose file's `devmail` service)."""
    from intake.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m intake.devmail", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--imap-port", type=int, default=1143)
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--seed", action="store_true", help="fill the inbox with sample mail")
    args = parser.parse_args(argv)
    imap = load_settings().imap
    username = imap.username or "intake"
    password = imap.password.get_secret_value() or "intake"

    def show(mail: Received) -> None:
        kind = mail.message.get("X-Intake-Kind", "-")
        print(f"smtp: to={','.join(mail.rcpt_tos)} kind={kind} subject={mail.message['Subject']}", flush=True)  # fmt: skip

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with (
        EmbeddedImap(username, password, host=args.host, port=args.imap_port) as server,
        EmbeddedSmtp(host=args.host, port=args.smtp_port, on_mail=show),
    ):
        print(f"imap: {args.host}:{args.imap_port} user {username}; smtp: {args.host}:{args.smtp_port}", flush=True)  # fmt: skip
        if args.seed:
            from intake.demo_mail import sample_mail

            samples = sample_mail()
            for mail in samples:
                server.append(mail.raw, mail.received_at)
            print(f"imap: {len(samples)} sample messages in INBOX", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
