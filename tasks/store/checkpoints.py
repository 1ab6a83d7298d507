"""The engine's writes: plan, step intent, checkpoint, retry, sleep, approval
request, finish. Each is one transaction fenced by the worker's lease, with its
event row and outbox rows in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, cast

from tasks.rules.plans import StepJSON
from tasks.rules.states import StepState, TaskState
from tasks.skills.base import StepResult
from tasks.store import statements as sql
from tasks.store.models import EVENT, OUTBOX, STEP, Task
from tasks.store.rows import card_update, event_row, outbox_row
from tasks.store.statements import update_step
from tasks.store.store import Store
from tasks.store.tx import Tx
from tasks.store.views import PlannedStep

_LIVE = [TaskState.RUNNING.value]
_RELEASE: dict[str, Any] = {"lease_holder": None, "lease_expires_at": None}


class StepRow(TypedDict):
    """A step record of a new plan, before it ran: the columns a `PlannedStep` takes."""

    task_id: int
    key: str
    skill: str
    args: dict[str, object]
    depends_on: list[str]
    position: int
    state: str
    attempts: int
    tokens: int
    cost: float
    idempotency_key: str


def step_rows(task_id: int, plan: Mapping[str, object]) -> list[StepRow]:
    """The step records of a new plan, before any of them ran. The plan is a checked
    one (`parse_plan`, a playbook's, `gate_plan`): its steps have the shape of `PlanStep.to_json`."""
    steps = cast("list[StepJSON]", plan["steps"])
    return [
        {"task_id": task_id, "key": s["key"], "skill": s["skill"], "args": s.get("args") or {},
         "depends_on": list(s.get("depends_on") or []), "position": i, "state": StepState.PENDING.value,
         "attempts": 0, "tokens": 0, "cost": 0.0, "idempotency_key": f"task-{task_id}-{s['key']}"}
        for i, s in enumerate(steps)
    ]  # fmt: skip


def planned_steps(task_id: int, plan: Mapping[str, object]) -> list[PlannedStep]:
    return [PlannedStep(**row) for row in step_rows(task_id, plan)]


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
        self, task_id: int, worker: str, plan: Mapping[str, object], now: datetime, *, actor: str = "planner",
        tokens: int = 0, cost: float = 0.0, from_queued: bool = False, wake_planning: bool = False,
        owner: Task,
    ) -> None:  # fmt: skip
        """The plan's steps, and what planning it cost (tokens, dollars) on the task.
        `from_queued`: the plan came at once, so planning starts and ends here.
        `wake_planning`: the LLM answered, so tasks waiting to plan again because
        it did not are due now rather than at their backoff."""

        def q(tx: Tx) -> None:
            if wake_planning:
                tx.run(sql.WAKE_PLANNING, {"p_now": now})
            rows = step_rows(task_id, plan)
            for step in rows:
                tx.insert_later(STEP, step)
            usage = {"tokens": tokens, "cost": round(cost, 6)} if tokens or cost else {}
            values: dict[str, Any] = {"plan": plan, "run_after": now}
            if wake_planning:  # the LLM answered: no more "waiting for the LLM" on the card
                values["pause_reason"] = None
            if from_queued:  # queued -> planning -> running in one write, both moves in the audit trail
                values["started_at"] = now
            row = self.store.transition(
                tx, task_id, TaskState.RUNNING, actor=actor, now=now, fence=worker, kind="plan.ready",
                detail={"steps": [s["key"] for s in rows], "summary": plan.get("summary", ""),
                        **usage},
                values=values, add={"tokens": tokens, "cost": cost},
                via=TaskState.PLANNING if from_queued else None, via_actor=worker, owner=owner,
            )  # fmt: skip
            if tokens or cost:
                self._spend(tx, row.platform, row.requester, now, cost, tokens)

        await self.db.run(q, task_id)

    async def step_written(self, task_id: int, key: str, attempt: int, states: Sequence[str]) -> bool:
        """Whether attempt `attempt` of the step has already been recorded in one of `states`."""

        def q(tx: Tx) -> bool:
            rows = tx.rows(sql.STEP_STATE, {"p_task": task_id, "p_key": key})
            return bool(rows) and rows[0].attempts == attempt and rows[0].state in states

        return await self.db.run(q, task_id)

    async def plan_tries(self, task_id: int) -> int:
        """How many times planning this task was put off (the LLM was unavailable)."""
        return await self.db.run(lambda tx: int(tx.rows(sql.PLAN_TRIES, {"p_task": task_id})[0][0]), task_id)

    async def plan_later(self, task_id: int, worker: str, now: datetime, at: datetime, *, reason: str,
                         attempt: int, note: str | None = None) -> None:  # fmt: skip
        """Planning is put off until `at`: the task waits in the database, not in a
        worker; `note` (why it waits, until when) is kept on it and its card redrawn."""

        def q(tx: Tx) -> None:
            row = self.store.fenced_task_row(tx, task_id, worker, [TaskState.PLANNING.value], updated_at=now,
                                             run_after=at, pause_reason=note, **_RELEASE)  # fmt: skip
            card_update(tx, task_id, row.platform, row.conversation, now)
            tx.insert_later(EVENT, event_row(task_id, worker, "plan.retry", now, error=reason[:1000],
                                             attempt=attempt, at=at.isoformat()))  # fmt: skip

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
        self, task_id: int, key: str, worker: str, attempt: int, result: StepResult, now: datetime,
        *, owner: Task, last: bool = False,
    ) -> None:  # fmt: skip
        """The step's outcome, its outbox messages, usage and card refresh: one
        transaction. `last`: it was the plan's last step, so the task succeeds
        in the same transaction (and the worker lets go of it). `owner`: the
        task as the worker holding it knows it (platform, conversation and
        requester never change), so the fenced update need not read it back."""

        def q(tx: Tx) -> None:
            usage = {"tokens": result.tokens, "cost": result.cost, "steps_run": 1}
            detail: dict[str, Any] = {"step": key, "attempt": attempt}
            if result.effects:
                detail["effects"] = list(result.effects)
            if result.tokens:
                detail.update(tokens=result.tokens, cost=round(result.cost, 6))
            done = event_row(task_id, worker, "step.succeeded", now, **detail)
            if last:
                end = {**_RELEASE, "finished_at": now}
                row = self.store.transition(tx, task_id, TaskState.SUCCEEDED, actor=worker, now=now, fence=worker,
                                            values=end, add=usage, before=[done], owner=owner)  # fmt: skip
            else:
                row = owner
                self.store.fenced_task_update(tx, task_id, worker, _LIVE, updated_at=now, add=usage)
                tx.insert_later(EVENT, done)
            update_step(tx, task_id, key, add={"tokens": result.tokens, "cost": result.cost},
                        state=StepState.SUCCEEDED.value, result=result.output, attempts=attempt,
                        finished_at=now, error=None, wake_at=None)  # fmt: skip
            for msg in result.outbox:
                self._outbox(tx, task_id, row.platform, msg.kind, msg.conversation, msg.payload,
                             now, msg.idempotency_key, msg.card_key)  # fmt: skip
            if result.cost or result.tokens:
                self._spend(tx, row.platform, row.requester, now, result.cost, result.tokens)
            if not last:  # the last step's move to succeeded redraws the card with its summary
                card_update(tx, task_id, row.platform, row.conversation, now)

        await self.db.run(q, task_id)

    def _outbox(self, tx: Tx, task_id: int, platform: str, kind: str, conversation: Mapping[str, object],
                payload: Mapping[str, object], now: datetime, idem: str | None, card: str | None) -> None:  # fmt: skip
        named = conversation.get("platform", platform)  # a message may go to another platform's chat
        row = outbox_row(task_id=task_id, platform=named if isinstance(named, str) else platform, kind=kind,
                         conversation=conversation, now=now, card_key=card, payload=payload,
                         idempotency_key=idem)  # fmt: skip
        if idem is None:
            tx.insert_later(OUTBOX, row)
            return
        # Written once per key; a row the platform refused (never posted) is sent again.
        tx.conn.execute(sql.outbox_once(self.db.dialect, row))

    def _spend(self, tx: Tx, platform: str, person: str, now: datetime, cost: float, tokens: int) -> None:
        tx.conn.execute(sql.spend_add(self.db.dialect, platform, person, now.date().isoformat(), cost, tokens))

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

    async def park(self, task_id: int, key: str, worker: str, attempt: int, result: StepResult,
                   now: datetime) -> None:  # fmt: skip
        """The step is not finished: it sleeps until `result.sleep_until` (holding no
        worker), with the outbox rows it wrote and the state it keeps, in one transaction."""
        until = result.sleep_until
        assert until is not None

        def q(tx: Tx) -> None:
            row = self.store.fenced_task_row(tx, task_id, worker, _LIVE, updated_at=now)
            values: dict[str, Any] = {"state": StepState.SLEEPING.value, "wake_at": until,
                                      "attempts": attempt, "intent_at": None, "finished_at": None}  # fmt: skip
            if result.state is not None:
                values["result"] = result.state
            update_step(tx, task_id, key, **values)
            for msg in result.outbox:
                self._outbox(tx, task_id, row.platform, msg.kind, msg.conversation, msg.payload,
                             now, msg.idempotency_key, msg.card_key)  # fmt: skip
            tx.insert_later(EVENT, event_row(task_id, worker, "step.sleeping", now, step=key,
                                             until=until.isoformat()))  # fmt: skip

        await self.db.run(q, task_id)

    async def set_steps(
        self, task_id: int, keys: Sequence[str], state: str, worker: str, now: datetime,
        *, wake_at: datetime | None = None, reason: str = "",
    ) -> None:  # fmt: skip
        """Put steps in a waiting state (sleeping, skipped, cancelled) with an event."""

        def q(tx: Tx) -> None:
            self.store.fenced_task_update(tx, task_id, worker, _LIVE, updated_at=now)
            tx.conn.execute(sql.step_set(task_id, keys, {
                "state": state, "wake_at": wake_at, "finished_at": None if state == StepState.SLEEPING.value else now,
            }))  # fmt: skip
            for k in keys:
                tx.insert_later(EVENT, event_row(task_id, worker, f"step.{state}", now, step=k,
                                                 reason=reason or None))  # fmt: skip

        await self.db.run(q, task_id)

    async def request_approval(
        self, task_id: int, key: str, worker: str, *, skill: str, args_hash: str,
        summary: Mapping[str, object], approvers: list[str], required: int, expires_at: datetime,
        on_reject: str, now: datetime, supersedes: int | None = None,
    ) -> int:  # fmt: skip
        """Ask for a person's approval. `supersedes` names an approval given to other
        values (an earlier step's result changed since): it no longer counts."""

        def q(tx: Tx) -> int:
            row = self.store.fenced_task_row(tx, task_id, worker, _LIVE, updated_at=now)
            if supersedes is not None:
                self._supersede(tx, task_id, row, supersedes, key, worker, now)
            approval_id = tx.conn.execute(sql.approval_insert({
                "task_id": task_id, "step_key": key, "skill": skill, "args_hash": args_hash, "summary": summary,
                "approvers": approvers, "required": required, "decisions": [], "state": "pending",
                "on_reject": on_reject, "expires_at": expires_at, "created_at": now,
            })).scalar_one()  # fmt: skip
            tx.conn.execute(sql.step_set(task_id, [key], {"state": StepState.WAITING.value}))
            tx.insert_later(EVENT, event_row(task_id, worker, "approval.requested", now, step=key,
                                             approval=approval_id, approvers=approvers))  # fmt: skip
            card_update(tx, task_id, row.platform, row.conversation, now)  # the approval is asked on the card
            return int(approval_id)

        return await self.db.run(q, task_id)

    def _supersede(self, tx: Tx, task_id: int, row: Any, approval_id: int, key: str, worker: str,
                   now: datetime) -> None:  # fmt: skip
        tx.conn.execute(sql.approval_set(approval_id, {"state": "superseded"}))
        tx.insert_later(EVENT, event_row(task_id, worker, "approval.superseded", now, step=key,
                                         approval=approval_id, reason="the values changed after approval"))  # fmt: skip
        card_update(tx, task_id, row.platform, row.conversation, now)

    async def note(self, task_id: int, actor: str, kind: str, now: datetime, **detail: object) -> None:
        """An audit event with no state change (an auto-approve rule fired, say)."""
        await self.db.run(lambda tx: tx.insert_later(EVENT, event_row(task_id, actor, kind, now, **detail)), task_id)

    async def finish(
        self, task_id: int, worker: str, target: str, now: datetime, *, error: str | None = None,
        owner: Task, reason: str | None = None, run_after: datetime | None = None,
    ) -> None:  # fmt: skip
        """End this worker's turn on the task: a final state (with summary), a wait
        for approval, a pause, or (target running) a sleep until `run_after`.
        `owner`: as for `checkpoint`."""

        def q(tx: Tx) -> None:
            if target == TaskState.RUNNING.value:
                # A parked step the delivery loop woke during this turn is due sooner than the turn knows.
                woken = tx.rows(sql.NEXT_WAKE, {"p_task": task_id})[0][0]
                at = min(run_after, woken) if run_after is not None and woken is not None else run_after
                at = now if at is None else at  # a claimable task always has a run_after (the claim's index)
                self.store.fenced_task_update(tx, task_id, worker, _LIVE, run_after=at, **_RELEASE)
                return
            values: dict[str, Any] = dict(_RELEASE)
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
            # The move redraws the card; a task that ended shows its summary there.
            self.store.transition(tx, task_id, target, actor=worker, now=now, fence=worker,
                                  detail=detail, values=values, owner=owner)  # fmt: skip

        await self.db.run(q, task_id)

    async def spent_today(self, platform: str, person: str, now: datetime) -> float:
        def q(tx: Tx) -> float:
            v = tx.conn.execute(sql.spent(platform, person, now.date().isoformat())).scalar()
            return float(v or 0.0)

        return await self.db.run(q)
