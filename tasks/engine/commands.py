"""People's commands on a task: cancel, pause, resume, retry. Each is one
transaction; a refused request (an illegal move, no such task) changes nothing."""

from __future__ import annotations

from datetime import datetime

from tasks.engine.decisions import close_approvals
from tasks.rules import states
from tasks.rules.states import TaskState
from tasks.store import statements as sql
from tasks.store.store import NotFound, Store
from tasks.store.tx import Tx


class Commands:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    async def cancel(self, task_id: int, actor: str, now: datetime) -> None:

        def q(tx: Tx) -> None:
            self.store.transition(
                tx, task_id, TaskState.CANCELLED, actor=actor, now=now,
                values={"finished_at": now, "lease_holder": None, "lease_expires_at": None},
            )  # fmt: skip
            tx.conn.execute(sql.cancel_open_steps(task_id, now))
            close_approvals(tx, task_id, "cancelled", now)  # the move redrew the card, with its summary

        await self.db.run(q)

    async def pause(self, task_id: int, actor: str, reason: str = "paused", *, now: datetime) -> None:
        await self.db.run(lambda tx: self.store.transition(
            tx, task_id, TaskState.PAUSED, actor=actor, now=now, detail={"reason": reason},
            values={"pause_reason": reason, "lease_holder": None, "lease_expires_at": None},
        ))  # fmt: skip

    async def resume(self, task_id: int, actor: str, now: datetime) -> str:

        def q(tx: Tx) -> str:
            task = self.store.task_in(tx, task_id)
            if task is None:
                raise NotFound(f"no task {task_id}")
            waiting = tx.conn.execute(sql.waiting_step(task_id)).first()
            move = states.resume(planned=task.plan is not None, waiting_step=waiting is not None, now=now)
            self.store.transition(tx, task_id, move.target, actor=actor, now=now, kind=move.kind,
                                  values=dict(move.values))  # fmt: skip
            return move.target.value

        return await self.db.run(q)

    async def retry(self, task_id: int, actor: str, now: datetime) -> None:
        """Run a failed (or expired) task again from its failed steps; finished steps stay."""

        def q(tx: Tx) -> None:
            task = self.store.task_in(tx, task_id)
            if task is None:
                raise NotFound(f"no task {task_id}")
            again = states.retry(planned=task.plan is not None, state=task.state, now=now)
            self.store.transition(tx, task_id, again.move.target, actor=actor, now=now, kind=again.move.kind,
                                  values=dict(again.move.values))  # fmt: skip
            tx.conn.execute(sql.steps_in(task_id, again.steps_in, again.step_values))

        await self.db.run(q)
