"""Cron schedules: whether one is valid, and when it fires next (croniter), in its time
zone (UTC when it names none), daylight saving time included."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from runplane import limits
from runplane.errors import InvalidInput


def check_schedule(schedule: object) -> str:
    """Five fields (minute hour day month weekday), or six with seconds last (croniter's
    form: ``* * * * * */10`` is every ten seconds)."""
    text = limits.check_text("schedule", schedule, 256)
    if not text or not croniter.is_valid(text):
        raise InvalidInput("schedule", f"schedule must be a cron expression such as "
                           f"'*/5 * * * *', got {schedule!r}")
    return text


def check_timezone(timezone: object) -> str | None:
    """An IANA time zone name (``Europe/Paris``), or None for UTC."""
    name = limits.check_text("timezone", timezone, 64)
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone {name!r}") from None
    return name


def next_fire(schedule: str, timezone: str | None, after: float) -> float:
    """The schedule's first time strictly after ``after`` (epoch seconds)."""
    start = datetime.fromtimestamp(after, ZoneInfo(timezone or "UTC"))
    return float(croniter(schedule, start).get_next(float))
