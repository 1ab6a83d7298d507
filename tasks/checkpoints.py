"""The engine's writes: plan, step intent, checkpoint, retry, sleep, approval
request, finish. Each is one transaction fenced by the worker's lease, with its
event row and outbox rows in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tasks.db import Tx
from tasks.models import Spend, Step
from tasks.skills import StepResult
from tasks.states import StepState, TaskState
from tasks.store import (
    APPROVAL,
    EVENT,
    OUTBOX,
    STEP,
    Store,
    card_update,
    event_row,
    outbox_row,
    update_step,
)

SPEND = Spend.__table__  # type: ignore[attr-defined]
_LIVE = [TaskState.RUNNING.value]


def step_rows(task_id: int, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The step records of a new plan, before any of them ran."""
    return [
        {"task_id": task_id, "key": s["key"], "skill": s["skill"], "args": s.get("args") or {},
         "depends_on": list(s.get("depends_on") or []), "position": i, "state": StepState.PENDING.value,
         "attempts": 0, "tokens": 0, "cost": 0.0, "idempotency_key": f"task-{task_id}-{s['key']}"}
        for i, s in enumerate(plan["steps"])
    ]  # fmt: skip


def planned_steps(task_id: int, plan: dict[str, Any]) -> list[Step]:
    return [Step(**row) for row in step_rows(task_id, plan)]


class Checkpoints:
    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    async def start_planning(self, task_id: int, worker: str, now: datetime) -> None:
        def q(tx: Tx) -> None:
            self.store.transition(tx, task_id, TaskState.PLANNING, actor=worker, now=now, fence=worker,
                                  values={"started_at": now}, card=False)  # fmt: skip

        await self.db.run(q, task_id)

    async def save_plan(
        self, task_id: int, worker: str, plan: dict[str, Any], now: datetime, *, actor: str = "planner",
        tokens: int = 0, cost: float = 0.0, from_queued: bool = False,
    ) -> None:  # fmt: skip
        """The plan's steps, and what planning it cost (tokens, dollars) on the task.
        `from_queued`: the plan came at once, so planning starts and ends here."""

        def q(tx: Tx) -> None:
            if from_queued:
                self.store.transition(tx, task_id, TaskState.PLANNING, actor=worker, now=now, fence=worker,
                                      values={"started_at": now}, card=False)  # fmt: skip
            tx.conn.execute(insert(STEP), step_rows(task_id, plan))
            usage = {"tokens": tokens, "cost": round(cost, 6)} if tokens or cost else {}
            row = self.store.transition(
                tx, task_id, TaskState.RUNNING, actor=actor, now=now, fence=worker, kind="plan.ready",
                detail={"steps": [s["key"] for s in plan["steps"]], "summary": plan.get("summary", ""),
                        **usage},
                values={"plan": plan, "run_after": now}, add={"tokens": tokens, "cost": cost},
            )  # fmt: skip
            if tokens or cost:
                self._spend(tx, row.platform, row.requester, now, cost, tokens)

        await self.db.run(q, task_id)

    async def record_intent(self, task_id: int, key: str, worker: str, attempt: int, now: datetime) -> None:
        """Before an effect: the step is running, attempt N, from now."""

        def q(tx: Tx) -> None:
            self.store.fenced_task_update(tx, task_id, worker, _LIVE, updated_at=now)
            update_step(tx, task_id, key, state=StepState.RUNNING.value, intent_at=now, attempts=attempt,
                        started_at=now, error=None)  # fmt: skip
            tx.insert_later(EVENT, event_row(task_id, worker, "step.intent", now, step=key, attempt=attempt))

        await self.db.run(q, task_id)

    async def checkpoint(
        self, task_id: int, key: str, worker: str, attempt: int, result: StepResult, now: datetime
    ) -> None:
        """The step's outcome, its outbox messages, usage and card refresh: one transaction."""

        def q(tx: Tx) -> None:
            row = self.store.fenced_task_update(
                tx, task_id, worker, _LIVE, updated_at=now,
                add={"tokens": result.tokens, "cost": result.cost, "steps_run": 1},
            )  # fmt: skip
            update_step(tx, task_id, key, add={"tokens": result.tokens, "cost": result.cost},
                        state=StepState.SUCCEEDED.value, result=result.output, attempts=attempt,
                        finished_at=now, error=None, wake_at=None)  # fmt: skip
            for msg in result.outbox:
                self._outbox(tx, task_id, row.platform, msg.kind, msg.conversation, msg.payload,
                             now, msg.idempotency_key, msg.card_key)  # fmt: skip
            if result.cost or result.tokens:
                self._spend(tx, row.platform, row.requester, now, result.cost, result.tokens)
            detail: dict[str, Any] = {"step": key, "attempt": attempt}
            if result.effects:
                detail["effects"] = list(result.effects)
            if result.tokens:
                detail.update(tokens=result.tokens, cost=round(result.cost, 6))
            tx.insert_later(EVENT, event_row(task_id, worker, "step.succeeded", now, **detail))
            card_update(tx, task_id, row.platform, row.conversation, now)

        await self.db.run(q, task_id)

    def _outbox(self, tx: Tx, task_id: int, platform: str, kind: str, conversation: dict[str, Any],
                payload: dict[str, Any], now: datetime, idem: str | None, card: str | None) -> None:  # fmt: skip
        row = outbox_row(task_id=task_id, platform=conversation.get("platform", platform), kind=kind,
                         conversation=conversation, now=now, card_key=card, payload=payload,
                         idempotency_key=idem)  # fmt: skip
        if idem is None:
            tx.insert_later(OUTBOX, row)
            return
        ins = (sqlite_insert if self.db.sqlite else pg_insert)(OUTBOX).values(**row)
        tx.conn.execute(ins.on_conflict_do_nothing(index_elements=["idempotency_key"]))

    def _spend(self, tx: Tx, platform: str, person: str, now: datetime, cost: float, tokens: int) -> None:
        ins = (sqlite_insert if self.db.sqlite else pg_insert)(SPEND).values(
            platform=platform, person=person, day=now.date().isoformat(), cost=cost, tokens=tokens
        )
        tx.conn.execute(
            ins.on_conflict_do_update(
                index_elements=["platform", "person", "day"],
                set_={"cost": SPEND.c.cost + cost, "tokens": SPEND.c.tokens + tokens},
            )
        )

    async def step_failed(
        self, task_id: int, key: str, worker: str, attempt: int, error: str, now: datetime,
        *, retry_at: datetime | None = None, usage: tuple[int, float] = (0, 0.0),
    ) -> None:  # fmt: skip
        """A failed attempt: back to pending until `retry_at`, or failed for good."""

        def q(tx: Tx) -> None:
            tokens, cost = usage
            self.store.fenced_task_update(tx, task_id, worker, _LIVE, updated_at=now,
                                          add={"tokens": tokens, "cost": cost})  # fmt: skip
            state = StepState.PENDING if retry_at else StepState.FAILED
            update_step(tx, task_id, key, add={"tokens": tokens, "cost": cost}, state=state.value,
                        error=error[:4000], attempts=attempt, wake_at=retry_at, intent_at=None,
                        finished_at=None if retry_at else now)  # fmt: skip
            kind = "step.retry" if retry_at else "step.failed"
            extra = {"retry_at": retry_at.isoformat()} if retry_at else {}
            tx.insert_later(EVENT, event_row(task_id, worker, kind, now, step=key, attempt=attempt,
                                             error=error[:1000], **extra))  # fmt: skip

        await self.db.run(q, task_id)

    async def set_steps(
        self, task_id: int, keys: Sequence[str], state: str, worker: str, now: datetime,
        *, wake_at: datetime | None = None, reason: str = "",
    ) -> None:  # fmt: skip
        """Put steps in a waiting state (sleeping, skipped, cancelled) with an event."""

        def q(tx: Tx) -> None:
            self.store.fenced_task_update(tx, task_id, worker, _LIVE, updated_at=now)
            tx.conn.execute(
                update(STEP).where(STEP.c.task_id == task_id, STEP.c.key.in_(list(keys)))
                .values(state=state, wake_at=wake_at,
                        finished_at=None if state == StepState.SLEEPING.value else now)
            )  # fmt: skip
            for k in keys:
                tx.insert_later(EVENT, event_row(task_id, worker, f"step.{state}", now, step=k,
                                                 reason=reason or None))  # fmt: skip

        await self.db.run(q, task_id)

    async def request_approval(
        self, task_id: int, key: str, worker: str, *, skill: str, args_hash: str,
        summary: dict[str, Any], approvers: list[str], required: int, expires_at: datetime,
        on_reject: str, now: datetime,
    ) -> int:  # fmt: skip
        def q(tx: Tx) -> int:
            row = self.store.fenced_task_update(tx, task_id, worker, _LIVE, updated_at=now)
            approval_id = tx.conn.execute(
                insert(APPROVAL).values(
                    task_id=task_id, step_key=key, skill=skill, args_hash=args_hash, summary=summary,
                    approvers=approvers, required=required, decisions=[], state="pending",
                    on_reject=on_reject, expires_at=expires_at, created_at=now,
                ).returning(APPROVAL.c.id)
            ).scalar_one()  # fmt: skip
            tx.conn.execute(
                update(STEP).where(STEP.c.task_id == task_id, STEP.c.key == key)
                .values(state=StepState.WAITING.value)
            )  # fmt: skip
            tx.insert_later(EVENT, event_row(task_id, worker, "approval.requested", now, step=key,
                                             approval=approval_id, approvers=approvers))  # fmt: skip
            if row.conversation:
                tx.insert_later(OUTBOX, outbox_row(
                    task_id=task_id, platform=row.platform, kind="approval_card",
                    conversation=row.conversation, now=now, card_key=f"approval:{approval_id}",
                    payload={"approval_id": approval_id},
                ))  # fmt: skip
            return int(approval_id)

        return await self.db.run(q, task_id)

    async def note(self, task_id: int, actor: str, kind: str, now: datetime, **detail: Any) -> None:
        """An audit event with no state change (an auto-approve rule fired, say)."""
        await self.db.run(lambda tx: tx.insert_later(EVENT, event_row(task_id, actor, kind, now, **detail)), task_id)

    async def finish(
        self, task_id: int, worker: str, target: str, now: datetime, *, error: str | None = None,
        reason: str | None = None, run_after: datetime | None = None,
    ) -> None:  # fmt: skip
        """End this worker's turn on the task: a final state (with summary), a wait
        for approval, a pause, or (target running) a sleep until `run_after`."""

        def q(tx: Tx) -> None:
            release = {"lease_holder": None, "lease_expires_at": None}
            if target == TaskState.RUNNING.value:
                self.store.fenced_task_update(tx, task_id, worker, _LIVE, run_after=run_after, **release)
                return
            values: dict[str, Any] = dict(release)
            detail: dict[str, Any] = {}
            if error is not None:
                values["error"] = error[:4000]
                detail["error"] = error[:1000]
            if reason is not None:
                values["pause_reason"] = reason
                detail["reason"] = reason
            final = target in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.EXPIRED)
            if final:
                values["finished_at"] = now
            row = self.store.transition(tx, task_id, target, actor=worker, now=now, fence=worker,
                                        detail=detail, values=values)  # fmt: skip
            if final and row.conversation:
                tx.insert_later(OUTBOX, outbox_row(
                    task_id=task_id, platform=row.platform, kind="summary",
                    conversation=row.conversation, now=now, payload={"task_id": task_id},
                ))  # fmt: skip

        await self.db.run(q, task_id)

    async def spent_today(self, platform: str, person: str, now: datetime) -> float:
        def q(tx: Tx) -> float:
            v = tx.conn.execute(
                select(SPEND.c.cost).where(SPEND.c.platform == platform, SPEND.c.person == person,
                                           SPEND.c.day == now.date().isoformat())
            ).scalar()  # fmt: skip
            return float(v or 0.0)

        return await self.db.run(q)
