"""`intake web`: the coordinator's page (Starlette + Jinja2, server-rendered, no JavaScript).

Safety, in order:
- it binds 127.0.0.1 by default; on any other address it refuses to start without `web.token`
  of at least 16 non-space characters;
- a request whose `Host` is not a loopback name (127.0.0.1, localhost, [::1]), the bound address
  or the host of `web.public_url` gets 400: a page at another name that resolves to this machine
  (DNS rebinding) cannot read or act;
- with a token every page but the login, the health check and the blank template needs it: an
  `Authorization: Bearer` header, HTTP basic auth (any user name, the token as password), or the
  login form, which starts a server-side session (a random id in a signed cookie, HttpOnly,
  SameSite=Lax, Secure when `public_url` is https, 12 hours; logout ends it on the server);
- secrets are compared as bytes of equal length (SHA-256 first), so any text is a plain "no";
- failed authentication (bearer, basic or the login form) is throttled per client address:
  a few typos are free, then each failure doubles the wait (429 with Retry-After);
- every action is a POST carrying the session's CSRF token (checked unless a bearer header, which
  browsers never add by themselves, authenticated the request) and runs the same function as
  `intake review`, one transaction with an audit event naming who acted;
- links and the QR code name `public_url` (or the bound address), never the request's Host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import ipaddress
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from intake import review
from intake.clock import BANGKOK
from intake.errors import ConfigError
from intake.pipeline import Services
from intake.reports import KIND_TH, STATUS_TH, build_report
from intake.settings import os_user
from intake.thai import format_thai_date, format_thai_datetime
from storage.session import session_scope

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parent / "web_templates"
PUBLIC = frozenset({"/login", "/healthz", "/template.xlsx"})
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SESSION_HOURS = 12
MIN_TOKEN = 16  # non-space characters of web.token to serve beyond this machine
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", ""})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str) -> None:
    """Refuse to serve beyond this machine with no token, or one short enough to guess: the page
    shows who sent what and acts on it."""
    if is_loopback(host):
        return
    if not token.strip():
        raise ConfigError(
            f"refusing to serve on {host} without a token: set web.token "
            "(INTAKE_WEB__TOKEN), or bind 127.0.0.1"
        )
    length = len("".join(token.split()))
    if length < MIN_TOKEN:
        raise ConfigError(
            f"refusing to serve on {host}: web.token (INTAKE_WEB__TOKEN) has {length} non-space "
            f"characters, at least {MIN_TOKEN} are needed (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(24))'`)"
        )


def host_name(value: str) -> str:
    """The name in a `Host` header or a bound address, lowercased, without port or final dot;
    an IPv6 address in brackets. "" when it is not a host at all."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value.partition("]")
        if not bracket or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return ""
        return name + "]"
    if value.count(":") > 1:  # a bare IPv6 address (a bound host, never a Host header)
        return f"[{value}]"
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return ""
    return name.rstrip(".")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of any text (non-ASCII included) with the secret: as bytes, and
    hashed first so neither length nor content shows in the time taken."""
    digest = [
        hashlib.sha256(v.encode("utf-8", "surrogatepass")).digest() for v in (given, expected)
    ]
    return hmac.compare_digest(digest[0], digest[1])


class Throttle:
    """Failed authentication per client address, in memory. The first `FREE` failures cost
    nothing (typos); after that each failure makes the client wait `BASE` * 2^n seconds (up to
    `CAP`) before its next credential is even checked; a success forgets the client, and so does
    an hour without failures. Bearer, basic and the login form share it."""

    FREE, BASE, CAP, FORGET, MAX_CLIENTS = 3, 1.0, 900.0, 3600.0, 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # client -> (failures, time of the last failure, blocked until)
        self._state: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    def wait(self, client: str) -> int:
        """Whole seconds the client must still wait before an attempt is checked (0: now)."""
        entry = self._state.get(client)
        if entry is None:
            return 0
        left = entry[2] - self.clock()
        return math.ceil(left) if left > 0 else 0

    def failed(self, client: str) -> int:
        now = self.clock()
        count, last, _ = self._state.pop(client, (0, now, now))
        if now - last > self.FORGET:
            count = 0
        count += 1
        over = count - self.FREE
        delay = min(self.BASE * 2 ** (over - 1), self.CAP) if over > 0 else 0.0
        self._state[client] = (count, now, now + delay)
        while len(self._state) > self.MAX_CLIENTS:  # a flood of addresses cannot fill memory
            self._state.popitem(last=False)
        return math.ceil(delay)

    def succeeded(self, client: str) -> None:
        self._state.pop(client, None)


@dataclass
class _Login:
    name: str
    expires: float


class Sessions:
    """Server-side login sessions: the cookie carries only a random id (never anything derived
    from the token); logout and expiry remove it here, so an old cookie is worth nothing."""

    MAX = 1000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._live: OrderedDict[str, _Login] = OrderedDict()

    def start(self, name: str) -> str:
        sid = secrets.token_urlsafe(32)
        self._live[sid] = _Login(name, self.clock() + SESSION_HOURS * 3600)
        while len(self._live) > self.MAX:
            self._live.popitem(last=False)
        return sid

    def name(self, sid: Any) -> str | None:
        login = self._live.get(sid) if isinstance(sid, str) else None
        if login is None:
            return None
        if login.expires <= self.clock():
            self.end(sid)
            return None
        return login.name

    def end(self, sid: Any) -> None:
        if isinstance(sid, str):
            self._live.pop(sid, None)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _export_writer() -> Callable[..., None] | None:
    """`intake.export.write_consolidated` when that module exists (it is built separately)."""
    try:
        from intake.export import write_consolidated
    except ImportError:
        return None
    return write_consolidated


class Web:
    """The app's state: services, templates and the token (never logged, never rendered)."""

    def __init__(self, svc: Services, host: str, port: int | None = None) -> None:
        self.svc = svc
        self.token = svc.settings.web.token.get_secret_value()
        check_bind(host, self.token)
        self.port = port if port is not None else svc.settings.web.port
        public = svc.settings.web.public_url.strip()
        self.public_url = public.rstrip("/")
        self.secure = public.lower().startswith("https://")
        bound = host_name(host)
        names = set(LOOPBACK_NAMES)
        if bound not in WILDCARDS:
            names.add(bound)
        if public:
            netloc = urlsplit(public if "//" in public else f"//{public}").netloc
            names.add(host_name(netloc.rpartition("@")[2]))
        self.allowed_hosts = frozenset(n for n in names if n)
        shown = "127.0.0.1" if bound in WILDCARDS else bound
        self.own_url = self.public_url or f"http://{shown}:{self.port}"
        self.throttle = Throttle()
        self.sessions = Sessions()
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        env = self.templates.env
        env.filters.update(
            thai_dt=lambda v: format_thai_datetime(v) if v else "–",
            thai_date=lambda v: format_thai_date(v) if v else "–",
            status_th=lambda v: STATUS_TH.get(v, v),
            kind_th=lambda v: KIND_TH.get(v, v),
            reason_th=review.reason_th,
            channel_th=lambda v: review.CHANNELS_TH.get(v, v),
            outbox_th=lambda v: review.OUTBOX_STATE_TH.get(str(v), str(v)),
            enum=lambda v: getattr(v, "value", v),
            action_th=lambda v: review.ACTIONS_TH.get(v, v),
        )
        self.export = _export_writer()

    # --- who is asking ---------------------------------------------------------------------

    def host_allowed(self, value: str | None) -> bool:
        """The `Host` names this page (any port: a name is what DNS rebinding changes)."""
        return bool(value) and host_name(value or "") in self.allowed_hosts

    def token_ok(self, given: str) -> bool:
        return bool(self.token) and same_secret(given, self.token)

    def authenticate(self, request: Request) -> str | None:
        """The actor's name when the request may proceed, else None (with
        `request.state.retry_after` set when the client must wait: throttled)."""
        if not self.token:
            return f"{os_user()} (web)"
        name = self.sessions.name(request.session.get("sid"))
        if name is not None:
            return name
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme not in {"bearer", "basic"}:
            return None
        client = client_of(request)
        wait = self.throttle.wait(client)
        if wait:
            request.state.retry_after = wait
            return None
        user, given = "", None
        if scheme == "bearer":
            given = value.strip()
        else:
            try:
                user, _, given = base64.b64decode(value, validate=True).decode().partition(":")
            except Exception:  # noqa: BLE001 - a malformed header is a failed login
                given = None
        if given is not None and self.token_ok(given):
            self.throttle.succeeded(client)
            if scheme == "bearer":
                request.state.bearer = True
                return "api (bearer)"
            return user or "basic"
        self.throttle.failed(client)
        return None

    def csrf(self, request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return str(request.session["csrf"])

    def csrf_ok(self, request: Request, form: Any) -> bool:
        if getattr(request.state, "bearer", False):
            return True
        sent, kept = str(form.get("csrf", "")), str(request.session.get("csrf", ""))
        return bool(kept) and same_secret(sent, kept)

    def render(
        self,
        request: Request,
        name: str,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        **ctx: Any,
    ) -> Response:
        ctx.update(
            request=request,
            csrf=self.csrf(request),
            flash=request.session.pop("flash", None),
            actor=getattr(request.state, "actor", ""),
            login_needed=bool(self.token),
            has_export=self.export is not None,
            campaign_deadline=self.svc.settings.deadline,
        )
        return self.templates.TemplateResponse(
            request, name, ctx, status_code=status_code, headers=headers
        )

    def template_url(self) -> str:
        """The blank template's address for the link and the QR code: `public_url`, else the
        bound address; never the request's Host, which the client writes."""
        return f"{self.own_url}/template.xlsx"


class HostCheck:
    """400 for a request whose `Host` is not one of this page's names (DNS rebinding)."""

    def __init__(self, app: ASGIApp, web: Web) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and not self.web.host_allowed(
            Headers(scope=scope).get("host")
        ):
            response = PlainTextResponse("unknown Host: open the page at its own address", 400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class AuthMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, web: Web) -> None:
        super().__init__(app)
        self.web = web

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path in PUBLIC:
            return await call_next(request)
        actor = self.web.authenticate(request)
        if actor is None:
            wait = getattr(request.state, "retry_after", 0)
            if wait:
                return PlainTextResponse(
                    f"too many failed attempts: wait {wait} s", 429,
                    headers={"Retry-After": str(wait)},
                )  # fmt: skip
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
            return PlainTextResponse(
                "authentication required",
                401,
                headers={"WWW-Authenticate": 'Basic realm="intake", charset="UTF-8"'},
            )
        request.state.actor = actor
        return await call_next(request)


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(
            {
                "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                "img-src 'self' data:; script-src 'none'; form-action 'self'; "
                "frame-ancestors 'none'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "same-origin",
                "Cache-Control": "no-store",
            }
        )
        return response


def safe_next(value: str | None, default: str = "/") -> str:
    """Only a path on this site (no `//host`, no scheme): no open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def create_app(svc: Services, host: str = "127.0.0.1", port: int | None = None) -> Starlette:
    from intake.web_routes import routes

    web = Web(svc, host, port)
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(HostCheck, web=web),
        Middleware(
            SessionMiddleware,
            secret_key=secrets.token_urlsafe(32),
            session_cookie="intake_session",
            max_age=SESSION_HOURS * 3600,
            same_site="lax",
            https_only=web.secure,
        ),
        Middleware(AuthMiddleware, web=web),
    ]
    app = Starlette(routes=routes(web), middleware=middleware)
    app.state.web = web
    return app


def serve(svc: Services, host: str, port: int) -> None:
    """Run the page with uvicorn until interrupted."""
    import uvicorn

    app = create_app(svc, host, port)
    # log_config=None: uvicorn's lines go through the root handler, in `worker.log_format`
    uvicorn.run(
        app, host=host, port=port, log_level="warning", log_config=None, server_header=False
    )


def parse_local(value: str) -> datetime:
    """A `datetime-local` form value, taken as Bangkok time."""
    return datetime.fromisoformat(value).replace(tzinfo=BANGKOK)


def report_now(svc: Services) -> Any:
    with session_scope(svc.factory) as session:
        return build_report(session, svc.settings.deadline, svc.clock.now())


def xlsx_response(data: bytes, filename: str) -> Response:
    disposition = f"attachment; filename=\"{filename.encode('ascii', 'ignore').decode() or 'file.xlsx'}\"; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=XLSX, headers={"Content-Disposition": disposition})


def bytes_of(write: Callable[[io.BytesIO], Any]) -> bytes:
    buffer = io.BytesIO()
    write(buffer)
    return buffer.getvalue()
