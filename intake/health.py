"""Is the service working? The answer `intake status` gives and a container health check reads.

Healthy means one thing: a poll of the mailbox completed within `worker.alert_after` (a worker
that started less than that ago and has not finished one yet is "starting"). The database row
(`worker_status`) is the record; `DATA_DIR/health.json` is a copy the active worker rewrites after
every cycle and heartbeat, so a health check needs no database. Either is judged again against the
clock when read: a worker that died leaves a file that turns unhealthy by itself.

When the mailbox has not been read for `alert_after`, the worker logs `worker.alert` once and, if
`worker.coordinator_address` is set, mails the coordinator once per outage (outbox dedupe key).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from intake.clock import as_utc
from intake.errors import OAuthRevoked
from intake.lease import LEASE_NAME
from intake.logs import event, iso
from intake.settings import Settings
from intake.thai import format_thai_datetime
from storage import queries
from storage.session import session_scope

log = logging.getLogger(__name__)


@dataclass
class Health:
    checked_at: datetime
    healthy: bool
    state: str  # ok | starting | stale | never
    reason: str
    alert_after: float
    mode: str | None = None
    holder: str | None = None
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    outbox: dict[str, int] = field(default_factory=dict)
    review_open: int = 0
    lease_holder: str | None = None
    lease_expires_at: datetime | None = None
    unverified_senders: int = 0  # expected senders no reminder can reach (`intake roster check`)


def assess(
    last_success_at: datetime | None, started_at: datetime | None, now: datetime, alert_after: float
) -> tuple[bool, str, str]:
    """(healthy, state, reason in plain words) from the two times that matter."""
    limit = timedelta(seconds=alert_after)
    if last_success_at is not None:
        age = now - as_utc(last_success_at)
        if age <= limit:
            return True, "ok", f"last successful poll {_ago(age)} ago"
        return False, "stale", f"no successful poll for {_ago(age)} (limit {_ago(limit)})"
    if started_at is not None and now - as_utc(started_at) <= limit:
        return True, "starting", "started, no poll completed yet"
    return False, "never", "no poll has ever completed"


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def collect(factory: sessionmaker[Session], settings: Settings, now: datetime) -> Health:
    """The health as the database records it, judged at `now` (the real clock)."""
    alert_after = settings.worker.alert_after
    with session_scope(factory) as session:
        status = queries.get_worker_status(session, LEASE_NAME)
        lease = queries.get_lease(session, LEASE_NAME)
        outbox = queries.outbox_counts(session)
        review = queries.open_review_count(session)
        unverified = len(queries.unverified_expected_senders(session))
        values: dict[str, Any] = {}
        if status is not None:
            values = {
                "mode": status.mode,
                "holder": status.holder,
                "started_at": _aware(status.started_at),
                "heartbeat_at": _aware(status.heartbeat_at),
                "last_success_at": _aware(status.last_success_at),
                "last_error": status.last_error,
                "last_error_at": _aware(status.last_error_at),
                "consecutive_failures": status.consecutive_failures,
            }
        lease_values: dict[str, Any] = (
            {"lease_holder": lease.holder, "lease_expires_at": as_utc(lease.expires_at)}
            if lease
            else {}
        )
    healthy, state, reason = assess(
        values.get("last_success_at"), values.get("started_at"), now, alert_after
    )
    problem = signin_problem(settings)
    if problem:
        healthy, state, reason = False, "signin", problem
    return Health(
        checked_at=now,
        healthy=healthy,
        state=state,
        reason=reason,
        alert_after=alert_after,
        outbox=outbox,
        review_open=review,
        unverified_senders=unverified,
        **values,
        **lease_values,
    )


def _aware(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def signin_problem(settings: Settings) -> str | None:
    """Why OAuth 2.0 sign-in cannot work (no token yet, refresh token refused), when IMAP or
    SMTP uses it: unhealthy at once, without waiting `alert_after` for polls to go stale."""
    if "oauth2" not in (settings.imap.auth, settings.smtp.auth):
        return None
    from intake.oauth import token_problem

    return token_problem(settings.oauth_token_path)


def with_signin(health: Health, settings: Settings) -> Health:
    """The health read from the file, judged again for OAuth sign-in (`intake status --file`)."""
    problem = signin_problem(settings)
    if problem:
        health.healthy, health.state, health.reason = False, "signin", problem
    return health


# --- the file ---------------------------------------------------------------------------------


def health_path(settings: Settings) -> Path:
    return settings.data_dir / "health.json"


def to_json(health: Health) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in asdict(health).items()}


def write_file(path: Path, health: Health) -> None:
    """Replace the file atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(to_json(health), ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def read_file(path: Path, now: datetime, alert_after: float | None = None) -> Health:
    """The file's health judged again at `now` (a stale file from a dead worker turns unhealthy)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    times = {
        k: datetime.fromisoformat(v.replace("Z", "+00:00")) if isinstance(v, str) else v
        for k, v in data.items()
        if k.endswith("_at")
    }
    data.update(times)
    limit = float(alert_after if alert_after is not None else data.get("alert_after", 900))
    healthy, state, reason = assess(data.get("last_success_at"), data.get("started_at"), now, limit)
    known = {f for f in Health.__dataclass_fields__}
    kept = {k: v for k, v in data.items() if k in known}
    kept.update(checked_at=now, healthy=healthy, state=state, reason=reason, alert_after=limit)
    return Health(**kept)


# --- the alert --------------------------------------------------------------------------------


def check_alert(factory: sessionmaker[Session], settings: Settings, now: datetime) -> str | None:
    """Log and mail once per outage when no poll succeeded within `alert_after`; the outage key."""
    from intake.notices import queue_notice, send_queued

    health = collect(factory, settings, now)
    # polls only: a sign-in problem alerts on its own (signin_alert) and, while it lasts, makes
    # the polls fail, so this alert follows after `alert_after` as for any other outage
    if assess(health.last_success_at, health.started_at, now, health.alert_after)[0]:
        return None
    since = health.last_success_at or health.started_at
    key = f"poll-stale:{iso(since) if since else 'never'}"
    with session_scope(factory) as session:
        status = queries.get_worker_status(session, LEASE_NAME)
        if status is not None and status.alerted_for == key:
            return None
        queries.save_worker_status(session, LEASE_NAME, alerted_for=key)
    event(
        log,
        "worker.alert",
        logging.ERROR,
        reason=health.reason,
        last_success=health.last_success_at,
        last_error=health.last_error,
        coordinator=settings.worker.coordinator_address,
    )
    subject, text = alert_text(health)
    if queue_notice(
        factory, settings, kind="alert", subject=subject, text=text,
        dedupe_key=f"alert:{key}", now=now,
    ):  # fmt: skip
        send_queued(factory, settings, now)
    return key


def signin_alert(
    factory: sessionmaker[Session], settings: Settings, error: OAuthRevoked, now: datetime
) -> bool:
    """Mail the coordinator once per refused refresh token (it is refused once: `revoked_at`)
    that only a new consent helps; logged loudly even when no coordinator address is set."""
    from intake.notices import queue_notice, send_queued

    event(
        log, "worker.alert", logging.ERROR, reason=str(error), since=error.revoked_at,
        coordinator=settings.worker.coordinator_address,
    )  # fmt: skip
    subject, text = signin_alert_text(settings, error.revoked_at)
    queued = queue_notice(
        factory, settings, kind="alert", subject=subject, text=text,
        dedupe_key=f"alert:oauth-revoked:{error.revoked_at}", now=now,
    )  # fmt: skip
    if queued:
        send_queued(factory, settings, now)
    return queued


def signin_alert_text(settings: Settings, revoked_at: str) -> tuple[str, str]:
    """The alert in Thai: Google no longer lets us in, mail is safe, who must do what."""
    try:
        when = format_thai_datetime(datetime.fromisoformat(revoked_at))
    except ValueError:
        when = revoked_at
    account = settings.imap.username or settings.smtp.username or "ของระบบ"
    subject = "[intake] แจ้งเตือน: สิทธิ์เข้าบัญชี Gmail ถูกยกเลิกหรือหมดอายุ ระบบรับอีเมลหยุดทำงาน"
    lines = [
        "เรียน ผู้ประสานงาน",
        "",
        f"ตั้งแต่ {when} Google ไม่ยอมรับสิทธิ์เข้าถึงบัญชี {account} (OAuth 2.0) ที่ระบบใช้อ่าน"
        "และส่งอีเมล ระบบจึงตรวจกล่องจดหมายไม่ได้",
        "สาเหตุที่พบบ่อย: เจ้าของบัญชียกเลิกสิทธิ์ของแอป เปลี่ยนรหัสผ่านบัญชี หรือแอปใน Google Cloud "
        "ยังอยู่ในสถานะทดสอบ (Testing) ซึ่งสิทธิ์มีอายุเพียง 7 วัน",
        "",
        "อีเมลที่ส่งเข้ามาระหว่างนี้ยังอยู่ในกล่องจดหมาย ไม่สูญหาย และจะได้รับการประมวลผลเมื่อให้สิทธิ์ใหม่แล้ว",
        "วิธีแก้: ผู้ดูแลระบบเรียกคำสั่ง intake auth gmail บนเครื่องที่ติดตั้งระบบ แล้วลงชื่อเข้าใช้"
        "บัญชี Gmail และกดอนุญาตอีกครั้ง จากนั้นตรวจสอบด้วยคำสั่ง intake status",
        "",
        "ข้อความนี้ส่งโดยอัตโนมัติจากระบบรับแบบฟอร์มข้อมูลทางอีเมล (intake)",
    ]
    return subject, "\n".join(lines)


def alert_text(health: Health) -> tuple[str, str]:
    """The alert mail in Thai: what is wrong since when, that nothing is lost, what to check."""
    since = health.last_success_at
    when = format_thai_datetime(since) if since else None
    subject = "[intake] แจ้งเตือน: ระบบรับแบบฟอร์มตรวจกล่องจดหมายไม่สำเร็จ"
    lines = ["เรียน ผู้ประสานงาน", ""]
    if when:
        lines.append(f"ระบบรับแบบฟอร์มข้อมูลทางอีเมลตรวจกล่องจดหมายสำเร็จครั้งล่าสุดเมื่อ {when}")
    else:
        lines.append("ระบบรับแบบฟอร์มข้อมูลทางอีเมลยังตรวจกล่องจดหมายไม่สำเร็จเลยนับตั้งแต่เริ่มทำงาน")
    if health.last_error:
        lines.append(f"ข้อผิดพลาดล่าสุด: {health.last_error[:500]}")
    lines += [
        "",
        "ระบบจะพยายามเชื่อมต่อใหม่โดยอัตโนมัติ อีเมลที่ส่งเข้ามาระหว่างนี้จะไม่สูญหาย "
        "และจะได้รับการประมวลผลเมื่อการเชื่อมต่อกลับมาเป็นปกติ",
        "กรุณาตรวจสอบการเชื่อมต่ออินเทอร์เน็ต รหัสผ่านสำหรับแอป (App Password) ของบัญชี Gmail "
        "และสถานะของระบบด้วยคำสั่ง intake status",
        "",
        "ข้อความนี้ส่งโดยอัตโนมัติจากระบบรับแบบฟอร์มข้อมูลทางอีเมล (intake)",
    ]
    return subject, "\n".join(lines)


# --- `intake status` --------------------------------------------------------------------------


def render(console: Any, health: Health) -> None:
    """The health as a Rich table: the verdict first, then what it rests on."""
    from rich.table import Table

    colour = "green" if health.healthy else "red"
    verdict = "HEALTHY" if health.healthy else "UNHEALTHY"
    from intake.display import fit_columns, safe_text

    # the reason and the last error may quote a mail or a server: shown, never interpreted
    console.print(f"[bold {colour}]{verdict}[/] — {safe_text(health.reason)}", highlight=False)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()

    def when(value: datetime | None) -> str:
        if value is None:
            return "–"
        return f"{format_thai_datetime(value)} ({iso(value)})"

    outbox = ", ".join(f"{k} {v}" for k, v in sorted(health.outbox.items())) or "empty"
    lease = (
        f"{health.lease_holder} until {when(health.lease_expires_at)}"
        if health.lease_holder
        else "free (no worker is running)"
    )
    rows = [
        ("worker", f"{health.mode or 'never ran'} ({health.holder or '–'})"),
        ("lease", lease),
        ("started", when(health.started_at)),
        ("heartbeat", when(health.heartbeat_at)),
        ("last successful poll", when(health.last_success_at)),
        (
            "last error",
            f"{health.last_error} at {when(health.last_error_at)}" if health.last_error else "–",
        ),
        ("failures in a row", str(health.consecutive_failures)),
        ("outbox", outbox),
        ("waiting for review", str(health.review_open)),
        ("alert after", f"{health.alert_after:g} s without a successful poll"),
    ]
    for label, value in rows:
        table.add_row(label, safe_text(value))
    fit_columns(console, table)  # a label or a word of an error is never cut, at 80 columns too
    console.print(table)
