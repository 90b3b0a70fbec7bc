"""The one source of "now": `INTAKE_NOW` when set (demos, deadline tests), else the real clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

BANGKOK = ZoneInfo("Asia/Bangkok")


class Clock:
    def __init__(self, fixed: datetime | None = None) -> None:
        self._fixed = fixed

    def now(self) -> datetime:
        """An aware instant in UTC."""
        if self._fixed is not None:
            return self._fixed.astimezone(UTC)
        return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Databases hand back naive datetimes on SQLite; every stored instant is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
