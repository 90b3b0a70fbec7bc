"""`intake web`: the coordinator's page (Starlette + Jinja2, server-rendered, no JavaScript).

Safety, in order:
- it binds 127.0.0.1 by default; on any other address it refuses to start without `web.token`;
- with a token every page but the login, the health check and the blank template needs it: an
  `Authorization: Bearer` header, HTTP basic auth (any user name, the token as password), or the
  login form, which sets a signed session cookie (HttpOnly, SameSite=Lax, 12 hours);
- every action is a POST carrying the session's CSRF token (checked unless a bearer header, which
  browsers never add by themselves, authenticated the request) and runs the same function as
  `intake review`, one transaction with an audit event naming who acted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import ipaddress
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str) -> None:
    """Refuse to serve beyond this machine with no token: the page shows who sent what."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve on {host} without a token: set web.token "
            "(INTAKE_WEB__TOKEN), or bind 127.0.0.1"
        )


def _export_writer() -> Callable[..., None] | None:
    """`intake.export.write_consolidated` when that module exists (it is built separately)."""
    try:
        from intake.export import write_consolidated
    except ImportError:
        return None
    return write_consolidated


class Web:
    """The app's state: services, templates and the token (never logged, never rendered)."""

    def __init__(self, svc: Services, host: str) -> None:
        self.svc = svc
        self.token = svc.settings.web.token.get_secret_value()
        check_bind(host, self.token)
        self.fingerprint = hashlib.sha256(self.token.encode()).hexdigest() if self.token else ""
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

    def authenticate(self, request: Request) -> str | None:
        """The actor's name when the request may proceed, else None."""
        if not self.token:
            return f"{os_user()} (web)"
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(value.strip(), self.token):
            request.state.bearer = True
            return "api (bearer)"
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except Exception:  # noqa: BLE001 - a malformed header is just not a login
                return None
            if secrets.compare_digest(password, self.token):
                return user or "basic"
        session = request.session
        if session.get("auth") and secrets.compare_digest(session["auth"], self.fingerprint):
            return str(session.get("name") or "web")
        return None

    def csrf(self, request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return str(request.session["csrf"])

    def csrf_ok(self, request: Request, form: Any) -> bool:
        if getattr(request.state, "bearer", False):
            return True
        sent, kept = str(form.get("csrf", "")), str(request.session.get("csrf", ""))
        return bool(kept) and secrets.compare_digest(sent, kept)

    def render(self, request: Request, name: str, status_code: int = 200, **ctx: Any) -> Response:
        ctx.update(
            request=request,
            csrf=self.csrf(request),
            flash=request.session.pop("flash", None),
            actor=getattr(request.state, "actor", ""),
            login_needed=bool(self.token),
            has_export=self.export is not None,
            campaign_deadline=self.svc.settings.deadline,
        )
        return self.templates.TemplateResponse(request, name, ctx, status_code=status_code)

    def template_url(self, request: Request) -> str:
        base = self.svc.settings.web.public_url.rstrip("/") or str(request.base_url).rstrip("/")
        return f"{base}/template.xlsx"


class AuthMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, web: Web) -> None:
        super().__init__(app)
        self.web = web

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path in PUBLIC:
            return await call_next(request)
        actor = self.web.authenticate(request)
        if actor is None:
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


def create_app(svc: Services, host: str = "127.0.0.1") -> Starlette:
    from intake.web_routes import routes

    web = Web(svc, host)
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secrets.token_urlsafe(32),
            session_cookie="intake_session",
            max_age=SESSION_HOURS * 3600,
            same_site="lax",
            https_only=False,
        ),
        Middleware(SecurityHeaders),
        Middleware(AuthMiddleware, web=web),
    ]
    app = Starlette(routes=routes(web), middleware=middleware)
    app.state.web = web
    return app


def serve(svc: Services, host: str, port: int) -> None:
    """Run the page with uvicorn until interrupted."""
    import uvicorn

    app = create_app(svc, host)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


def parse_local(value: str) -> datetime:
    """A `datetime-local` form value, taken as Bangkok time."""
    return datetime.fromisoformat(value).replace(tzinfo=BANGKOK)


async def slow_down() -> None:
    """A failed login costs a second (guessing a token by brute force is not practical)."""
    await asyncio.sleep(1)


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
