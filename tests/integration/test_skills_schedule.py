"""schedule.create: phrases to crontabs (one table), and a schedule made by a
step that fires a task at its time."""

from __future__ import annotations

import pytest

from tasks.skills.schedule import BadWhen, to_cron
from tasks.store.db import Database
from tests.conftest import Clock
from tests.fakes.engine_harness import NO_APPROVALS, Harness


@pytest.mark.parametrize(
    ("when", "cron"),
    [
        ("every Monday at 9", "0 9 * * mon"),
        ("every monday at 9:30am", "30 9 * * mon"),
        ("every Mon and Fri at 5pm", "0 17 * * mon,fri"),
        ("every Tuesday, Thursday at 12:15", "15 12 * * tue,thu"),
        ("every weekday at 17:30", "30 17 * * mon-fri"),
        ("every day at noon", "0 12 * * *"),
        ("daily at 8", "0 8 * * *"),
        ("every day", "0 9 * * *"),
        ("every friday", "0 9 * * fri"),
        ("every 15 minutes", "*/15 * * * *"),
        ("every hour", "0 * * * *"),
        ("every 2 hours", "0 */2 * * *"),
        ("every month on the 1st at 9", "0 9 1 * *"),
        ("every sunday at midnight", "0 0 * * sun"),
        ("every day at 12am", "0 0 * * *"),
        ("0 9 * * 1-5", "0 9 * * 1-5"),
    ],
)
def test_phrases_become_crontabs(when: str, cron: str) -> None:
    assert to_cron(when) == cron


@pytest.mark.parametrize(
    "when", ["whenever", "every 90 minutes", "every day at 25", "every blursday at 9", "61 * * * *"]
)
def test_unreadable_schedules_are_refused(when: str) -> None:
    with pytest.raises(BadWhen):
        to_cron(when)


async def test_a_step_creates_a_schedule_that_fires_a_task(db: Database, clock: Clock) -> None:
    h = Harness(db, clock, policy=NO_APPROVALS)
    args = {"when": "every Monday at 9:30", "text": "post the standup reminder"}
    task_id = await h.submit(steps=[{"key": "s", "skill": "schedule.create", "args": args}])
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded" and view.step("s").result["cron"] == "30 9 * * mon"
    assert await h.controls.fire_schedules(clock()) == []  # the clock says Monday 09:00
    clock.advance(30 * 60)
    (fired,) = await h.controls.fire_schedules(clock())
    new = await h.store.get_task(fired)
    assert new is not None and new.text == "post the standup reminder" and new.requester == "alice"
    assert new.conversation is not None and new.conversation["channel"] == "general"


async def test_schedule_creation_waits_for_approval_by_default(db: Database, clock: Clock) -> None:
    h = Harness(db, clock)
    args = {"when": "every day", "text": "x"}
    task_id = await h.submit(steps=[{"key": "s", "skill": "schedule.create", "args": args}])
    await h.drain()
    assert (await h.store.get_task(task_id)).state == "waiting_approval"  # type: ignore[union-attr]
