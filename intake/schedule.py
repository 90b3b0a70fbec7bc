"""The worker's APScheduler jobs: what runs when. No logic of its own; `intake.worker` owns the
jobs' bodies, the pipeline, reminders, summary and health modules do the work.

Every job is added with `coalesce=True` (runs missed while the laptop slept become one),
`max_instances=1` (a slow run is never doubled) and an explicit `misfire_grace_time` (APScheduler's
default of one second silently drops a run that starts a little late).

| job       | trigger                                   | does                                        |
| --------- | ----------------------------------------- | ------------------------------------------- |
| poll      | every `worker.poll_interval` (and on IDLE) | one cycle: fetch, process, file, send       |
| heartbeat | every `worker.lease_renew`                | renews the lease, rewrites the health file  |
| health    | every minute (at most `alert_after`/4)    | alert once per outage when polls fail       |
| reminders | every `worker.reminders_interval`         | `intake.reminders.queue_due_reminders(svc)` |
| summary   | daily at `worker.summary_time`, local     | the coordinator's summary mail              |
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from intake.errors import ConfigError
from intake.settings import Settings

log = logging.getLogger(__name__)

SUMMARY_MISFIRE = 6 * 3600  # a summary due while the machine slept is still worth sending


class Jobs(Protocol):
    def poll_job(self) -> None: ...
    def heartbeat_job(self) -> None: ...
    def health_job(self) -> None: ...
    def reminders_job(self) -> None: ...
    def summary_job(self) -> None: ...


def build_scheduler(jobs: Jobs, settings: Settings) -> BackgroundScheduler:
    """A BackgroundScheduler with the worker's jobs (not started)."""
    w = settings.worker
    tz = ZoneInfo(settings.timezone)
    scheduler = BackgroundScheduler(
        timezone=tz, executors={"default": ThreadPoolExecutor(max_workers=6)}
    )
    now = datetime.now(UTC)
    grace = max(1, int(w.misfire_grace))

    def add(func: Callable[[], None], job_id: str, trigger: Any, misfire: int = grace,
            first: datetime | None = None) -> None:  # fmt: skip
        scheduler.add_job(
            func, trigger, id=job_id, name=job_id, coalesce=True, max_instances=1,
            misfire_grace_time=misfire, next_run_time=first, replace_existing=True,
        )  # fmt: skip

    add(jobs.poll_job, "poll", IntervalTrigger(seconds=w.poll_interval, timezone=tz), first=now)
    add(jobs.heartbeat_job, "heartbeat", IntervalTrigger(seconds=w.lease_renew, timezone=tz),
        misfire=max(1, int(w.lease_renew)))  # fmt: skip
    health_every = max(1.0, min(60.0, w.alert_after / 4))
    add(jobs.health_job, "health", IntervalTrigger(seconds=health_every, timezone=tz),
        misfire=max(1, int(health_every)), first=now + timedelta(seconds=health_every))  # fmt: skip
    if settings.reminders.enabled:
        add(jobs.reminders_job, "reminders",
            IntervalTrigger(seconds=w.reminders_interval, timezone=tz),
            first=now + timedelta(seconds=min(30.0, w.reminders_interval)))  # fmt: skip
    if w.coordinator_address:
        hour, minute = parse_time(w.summary_time)
        add(jobs.summary_job, "summary", CronTrigger(hour=hour, minute=minute, timezone=tz),
            misfire=SUMMARY_MISFIRE)  # fmt: skip
    return scheduler


def parse_time(text: str) -> tuple[int, int]:
    try:
        hour, minute = (int(p) for p in text.strip().split(":"))
    except ValueError:
        raise ConfigError(f"worker.summary_time must be HH:MM, not {text!r}") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ConfigError(f"worker.summary_time must be HH:MM, not {text!r}")
    return hour, minute
