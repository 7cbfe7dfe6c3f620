"""Cron schedules: whether one is valid, and when it fires next (croniter), in its time
zone (UTC when it names none), daylight saving time included."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from runplane import limits
from runplane.errors import InvalidInput


def check_schedule(schedule: object, now: float) -> str:
    """Five fields (minute hour day month weekday), or six with seconds last (croniter's
    form: ``* * * * * */10`` is every ten seconds); one that never comes (``0 0 30 2 *``)
    is refused too."""
    text = limits.check_text("schedule", schedule, 256)
    if not text or not croniter.is_valid(text) or next_fire(text, None, now) is None:
        raise InvalidInput("schedule", f"schedule must be a cron expression with times to "
                           f"come, such as '*/5 * * * *', got {schedule!r}")
    return text


def check_timezone(timezone: object) -> str | None:
    """An IANA time zone name (``Europe/Paris``), or None for UTC."""
    name = limits.check_text("timezone", timezone, 64)
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones
        raise InvalidInput("timezone", f"unknown time zone {name!r}") from None
    return name


def next_fire(schedule: str, timezone: str | None, after: float) -> float | None:
    """The schedule's first time strictly after ``after`` (epoch seconds); None if it has
    none (a year that is past, a day no month has)."""
    start = datetime.fromtimestamp(after, ZoneInfo(timezone or "UTC"))
    try:
        return float(croniter(schedule, start).get_next(float))
    except CroniterBadDateError:
        return None
