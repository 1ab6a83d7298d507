"""Time: one notion of now (aware UTC, as stored) and cron arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def next_fire(cron: str, timezone: str, after: datetime) -> datetime | None:
    """The first fire time of a crontab expression strictly after `after` (UTC)."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(cron, timezone=timezone)
    start = after if after.tzinfo else after.replace(tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, start)
    if fire is not None and fire <= start:
        from datetime import timedelta

        fire = trigger.get_next_fire_time(fire, start + timedelta(seconds=1))
    return fire.astimezone(UTC) if fire else None
