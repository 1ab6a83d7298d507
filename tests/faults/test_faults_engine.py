"""The engine when the database connection drops between a step's effect and
its checkpoint (found by the PostgreSQL fault scenario, issue 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy.exc import OperationalError

from tasks.rules.policy import load_policy
from tasks.store.checkpoints import Checkpoints
from tasks.store.db import Database
from tests.conftest import Clock
from tests.fakes.engine_harness import Harness
from tests.faults.recorder import recorder


class CheckpointFailsOnce:
    """Patches `Checkpoints.checkpoint` so that its first call raises `error`:
    before writing anything, or (`after`) once the write is committed, as when
    the answer to a commit is lost. `failed` counts the failures."""

    def __init__(self, error: Exception, *, after: bool = False):
        self.error, self.after, self.failed = error, after, 0

    def patch(self) -> Any:
        real = Checkpoints.checkpoint

        async def checkpoint(cp: Checkpoints, *args: Any, **kw: Any) -> None:
            if self.after:
                await real(cp, *args, **kw)
            if not self.failed:
                self.failed += 1
                raise self.error
            if not self.after:
                await real(cp, *args, **kw)

        return mock.patch.object(Checkpoints, "checkpoint", checkpoint)


def lost(what: str) -> OperationalError:
    return OperationalError("COMMIT", None, ConnectionError(what))


async def test_a_checkpoint_lost_with_the_connection_is_written_again_not_left_unknown(
    sqlite_url: str, clock: Clock, tmp_path: Path
) -> None:
    async with recorder() as rec:
        (tmp_path / "policy.yaml").write_text(
            f"defaults: {{approval_effects: []}}\nwebhooks: {{recorder: '{rec.url}'}}\nhttp: {{timeout_seconds: 5}}\n"
        )
        db = Database(sqlite_url)
        h = Harness(db, clock, policy=load_policy(tmp_path / "policy.yaml"))
        fails = CheckpointFailsOnce(lost("the connection is lost"))
        try:
            task_id = await h.submit(steps=[{"key": "hook", "skill": "webhook.call",
                                             "args": {"webhook": "recorder", "payload": {"n": 1}}}])  # fmt: skip
            with fails.patch():
                await h.drain()
                clock.advance(120)  # any lease the lost turn left behind has lapsed
                await h.drain()
            task = await h.store.get_task(task_id)
        finally:
            db.close()
    assert fails.failed == 1 and sum(rec.hits.values()) == 1
    assert task is not None and (task.state, task.error) == ("succeeded", None)


async def test_a_checkpoint_committed_before_its_answer_was_lost_is_not_written_twice(
    db: Database, clock: Clock
) -> None:
    h = Harness(db, clock)
    fails = CheckpointFailsOnce(lost("the answer to the commit is lost"), after=True)
    now = {"seconds": 0}
    task_id = await h.submit(steps=[{"key": "a", "skill": "wait", "args": now},
                                    {"key": "b", "skill": "wait", "args": now, "depends_on": ["a"]}])  # fmt: skip
    with fails.patch():
        await h.drain()
    task = await h.store.get_task(task_id)
    assert fails.failed == 1 and task is not None and task.state == "succeeded" and task.steps_run == 2
    assert (await h.kinds(task_id)).count("step.succeeded") == 2


async def test_a_crashed_turn_lets_go_of_its_task_at_once(db: Database, clock: Clock) -> None:
    h = Harness(db, clock)
    fails = CheckpointFailsOnce(RuntimeError("a bug"))
    task_id = await h.submit(steps=[{"key": "a", "skill": "wait", "args": {"seconds": 0}}])
    with fails.patch():
        await h.drain()
        task = await h.store.get_task(task_id)
        assert task is not None and task.lease_holder is None and task.state == "running"
        assert task.run_after is not None and (task.run_after - clock()).total_seconds() == 5
        clock.advance(5)  # not the 30 s lease
        await h.drain()
    task = await h.store.get_task(task_id)
    assert fails.failed == 1 and task is not None and task.state == "succeeded"
