"""Recurring schedules: cron arithmetic (pure) and firing at most once per fire time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tasks.engine.controls import Controls
from tasks.rules.clock import next_fire
from tasks.store.db import Database
from tasks.store.store import NewTask, Store
from tests.conftest import Clock


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [
        ("0 9 * * mon", "UTC", datetime(2026, 11, 2, 8, 0, tzinfo=UTC), datetime(2026, 11, 2, 9, 0, tzinfo=UTC)),
        ("0 9 * * mon", "UTC", datetime(2026, 11, 2, 9, 0, tzinfo=UTC), datetime(2026, 11, 9, 9, 0, tzinfo=UTC)),
        ("*/15 * * * *", "UTC", datetime(2026, 11, 2, 9, 7, tzinfo=UTC), datetime(2026, 11, 2, 9, 15, tzinfo=UTC)),
        (
            "0 9 * * *",
            "Europe/Berlin",
            datetime(2026, 11, 2, 7, 0, tzinfo=UTC),
            datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
        ),
        ("0 0 1 1 *", "UTC", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_next_fire(cron: str, tz: str, after: datetime, expected: datetime) -> None:
    assert next_fire(cron, tz, after) == expected


async def test_schedule_fires_once_per_fire_time_even_with_several_workers(db: Database, clock: Clock) -> None:
    store = Store(db)
    controls = [Controls(store), Controls(Store(db))]
    new = NewTask(
        platform="console",
        tenant="t",
        dedupe_key="-",
        requester="alice",
        conversation={"platform": "console", "tenant": "t", "channel": "general"},
        playbook="noop",
        params={},
    )
    await controls[0].create_schedule(name="weekly", cron="0 10 * * mon", timezone="UTC", new=new, now=clock())
    clock.advance(3600)  # 10:00 on Monday 2026-11-02
    fired = await asyncio.gather(*(c.fire_schedules(clock()) for c in controls), controls[0].fire_schedules(clock()))
    assert sum(len(f) for f in fired) == 1
    tasks = await store.list_tasks()
    assert len(tasks) == 1 and tasks[0].dedupe_key.startswith("schedule:1:2026-11-02T10:00")
    clock.advance(7 * 24 * 3600)
    assert len(await controls[1].fire_schedules(clock())) == 1
    assert len(await store.list_tasks()) == 2
