"""Waiting honestly (issue 12): a wait's arguments are held to the skill's
limits however the plan came (a playbook run, an LLM plan), and a wait resumes
at the deadline it worked out first, through retries and restarts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from adapters.chat import ConversationRef, Inbound
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from tasks.store.db import Database
from tasks.store.store import STEP, TASK
from tasks.store.tx import Tx
from tests.conftest import Clock
from tests.fakes.engine_harness import NO_APPROVALS, Harness

NINETY_DAYS = 90 * 86400


async def test_running_a_playbook_past_a_skills_limit_is_refused_with_the_limit(sqlite_url: str, clock: Clock) -> None:
    rt = Runtime(Settings(DATABASE_URL=sqlite_url), clock=clock)
    try:
        conv = ConversationRef("console", "t1", "general", thread="root1")
        said = Inbound("console", "t1", "e1", "alice", "run remind minutes=99999999999999999999 text=hi", conv)
        handled = await rt.conversation.handle_message(said)
        assert handled.kind == "refused"
        assert "remind: step wait (wait) minutes:" in handled.text and "maximum of 129600" in handled.text
        assert await rt.store.list_tasks() == []  # nothing was started
        ok = Inbound("console", "t1", "e2", "alice", "run remind minutes=5 text=hi", conv)
        assert (await rt.conversation.handle_message(ok)).kind == "task"
    finally:
        rt.close()


async def test_a_planned_wait_past_the_limit_fails_with_the_limit_instead_of_ending_at_once(
    db: Database, clock: Clock
) -> None:
    h = Harness(db, clock, policy=NO_APPROVALS)
    task_id = await h.submit(steps=[{"key": "w", "skill": "wait", "args": {"seconds": 1e20}}])
    await h.drain()
    clock.advance(600)  # past any retry
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "failed" and view.steps[0].attempts <= 1
    assert f"wait seconds: 1e+20 is greater than the maximum of {NINETY_DAYS}" in (view.task.error or "")


async def test_a_wait_resumes_at_its_original_deadline_after_a_retry(db: Database, clock: Clock) -> None:
    h = Harness(db, clock, policy=NO_APPROVALS)
    start = clock()
    task_id = await h.submit(steps=[{"key": "w", "skill": "wait", "args": {"seconds": 600}}])
    await h.drain()
    assert (await h.store.view(task_id)).steps[0].state == "sleeping"
    # A fault sends the sleeping step back for a retry one second later, as a failed attempt does.
    retry_at = clock() + timedelta(seconds=1)

    def retry(tx: Tx) -> None:
        tx.conn.execute(update(STEP).where(STEP.c.task_id == task_id).values(state="pending", wake_at=retry_at))
        tx.conn.execute(update(TASK).where(TASK.c.id == task_id).values(run_after=retry_at))

    await db.run(retry)
    clock.advance(2)
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "running" and view.steps[0].state == "sleeping"  # not over early
    assert view.steps[0].wake_at is not None
    assert view.steps[0].wake_at.replace(tzinfo=None) == (start + timedelta(seconds=600)).replace(tzinfo=None)
    clock.advance(600)
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded"
    assert view.steps[0].result == {"waited_until": (start + timedelta(seconds=600)).isoformat()}
