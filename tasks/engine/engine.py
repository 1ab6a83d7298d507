"""The engine: claims runnable tasks under a lease and carries each one forward.

A worker's turn on a task plans it if needed, runs every ready step
concurrently (bounded per task and per process), checkpoints each outcome, and
ends by handing the task back: finished, waiting for a person, paused, or
sleeping until a timer or retry is due. Nothing is held while a task waits.
The decisions (which steps are ready, retry or not, over budget or not) are
pure functions from `tasks.rules.plans`, `tasks.rules.retry` and `tasks.rules.budgets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tasks.engine.steps import StepRunner, TurnState
from tasks.planning.plan_gate import PlanGate, gate_plan
from tasks.planning.planner import Planner
from tasks.rules.budgets import Budget, Usage, over_budget
from tasks.rules.clock import utcnow
from tasks.rules.plans import PLAN_GATE, PlanError, PlanLater, parse_plan
from tasks.rules.policy import Policy, Rules
from tasks.rules.retry import PLAN_PATIENCE, decide_plan_retry, waiting_note
from tasks.rules.states import IllegalTransition, TaskState
from tasks.skills.base import SkillRegistry
from tasks.store.checkpoints import Checkpoints, planned_steps
from tasks.store.models import Task
from tasks.store.outbox import Outboxes
from tasks.store.store import LeaseLost, NotFound, Store
from tasks.store.views import PlannedView, TaskView

log = logging.getLogger(__name__)
# The task whose turn this code runs in: every step task of the turn inherits it,
# so whatever a skill logs can carry the task id (bot.web.observability reads it).
TURN_TASK: ContextVar[int | None] = ContextVar("cowork_turn_task", default=None)
RETRY_CRASHED_TURN = 5.0  # seconds before a turn that crashed is tried again


@dataclass(frozen=True)
class EngineConfig:
    name: str = ""
    max_tasks: int = 64
    max_steps: int = 128
    steps_per_task: int = 8
    lease_seconds: float = 30.0
    claim_batch: int = 64
    poll_seconds: float = 1.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Engine:
    def __init__(
        self,
        store: Store,
        registry: SkillRegistry,
        planner: Planner,
        *,
        policy: Policy | None = None,
        config: EngineConfig | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.store = store
        self.checkpoints = Checkpoints(store)
        outboxes = Outboxes(store)
        # The policy may ask a person to approve whole plans: the gate is a skill of this engine's
        # registry, added to a copy when the one given lacks it (the given one is left as it is).
        self.registry = registry if PLAN_GATE in registry else SkillRegistry([*registry, PlanGate()])
        self.planner = planner
        self.policy = policy or Policy()
        self.config = config or EngineConfig()
        self.name = self.config.name or worker_name()
        self.clock = clock
        self.step_slots = asyncio.Semaphore(self.config.max_steps)
        self.steps = StepRunner(self.checkpoints, self.registry, outboxes, worker=self.name, clock=clock,
                                slots=self.step_slots, lease_seconds=self.config.lease_seconds)  # fmt: skip
        self._running: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self.turns = 0

    # -- the claim loop -------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def serve(self, stop: asyncio.Event) -> None:
        """Claim and run tasks until `stop` is set; renews leases meanwhile."""
        renewer = asyncio.create_task(self._renew_loop(stop))
        try:
            while not stop.is_set():
                got = await self._claim_and_start()
                if got:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
        finally:
            renewer.cancel()
            await self._cancel_all()

    async def drain(self, rounds: int = 1000) -> int:
        """Burst mode: run every task that is runnable now, until none is; return turns taken."""
        before = self.turns
        for _ in range(rounds):
            if not await self._claim_and_start() and not self._running:
                break
            if self._running:
                await asyncio.wait(list(self._running.values()), return_when=asyncio.FIRST_COMPLETED)
        await self.wait_idle()
        return self.turns - before

    async def wait_idle(self) -> None:
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _claim_and_start(self) -> int:
        room = self.config.max_tasks - len(self._running)
        if room <= 0:
            return 0
        try:
            claimed = await self.store.claim_rows(self.name, min(room, self.config.claim_batch),
                                                  self.config.lease_seconds, self.clock())  # fmt: skip
        except Exception as e:
            log.warning("claim failed: %s", e)
            await asyncio.sleep(self.config.poll_seconds)
            return 0
        for task in claimed:
            assert task.id is not None
            t = asyncio.create_task(self._turn(task), name=f"task-{task.id}")
            self._running[task.id] = t
            t.add_done_callback(self._forget(task.id))
        return len(claimed)

    def _forget(self, task_id: int) -> Callable[[asyncio.Task[None]], None]:
        def done(_t: asyncio.Task[None]) -> None:
            self._running.pop(task_id, None)

        return done

    async def _renew_loop(self, stop: asyncio.Event) -> None:
        period = self.config.lease_seconds / 3
        while not stop.is_set():
            await asyncio.sleep(period)
            held = list(self._running)
            try:
                lost = await self.store.renew(self.name, held, self.config.lease_seconds, self.clock())
            except Exception as e:
                log.warning("lease renewal failed: %s", e)
                continue
            for task_id in lost:
                log.warning("lost lease on task %s; stopping its turn", task_id)
                t = self._running.get(task_id)
                if t:
                    t.cancel()

    async def _cancel_all(self) -> None:
        for t in list(self._running.values()):
            t.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    # -- one turn on one task ---------------------------------------------------

    async def _turn(self, task: Task) -> None:
        self.turns += 1
        task_id = task.id
        TURN_TASK.set(task_id)  # this asyncio task's own context: nothing to reset
        try:
            await self._run_turn(task, None)
        except (LeaseLost, IllegalTransition, NotFound) as e:
            log.info("task %s: turn ended: %s", task_id, e)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s: turn crashed; it will be tried again shortly", task_id)
            assert task_id is not None
            try:  # let go at once rather than hold the task until the lease lapses
                await self.store.release(self.name, task_id, self.clock() + timedelta(seconds=RETRY_CRASHED_TURN))
            except Exception as e:
                log.warning("task %s: could not let go of it (%s); its lease will lapse", task_id, e)

    async def run_turn(self, task_id: int) -> None:
        """One turn on a task this worker has claimed."""
        view = await self.store.view(task_id)
        await self._run_turn(view.task, view)

    async def _run_turn(self, task: Task, view: TaskView | PlannedView | None) -> None:
        if task.lease_holder != self.name:
            return
        rules = self.policy.rules_for(task.platform, task.tenant, _channel(task))
        if task.state in (TaskState.QUEUED, TaskState.PLANNING):
            view = await self._plan(task, rules)
            if view is None:
                return
        elif view is None:
            assert task.id is not None
            view = await self.store.view(task.id)
        await self._run_steps(view, rules)

    async def _plan(self, task: Task, rules: Rules) -> PlannedView | None:
        """Plan the task and save the plan; the view of the planned task, built
        in memory (nothing else can change a task this worker holds)."""
        assert task.id is not None
        now = self.clock()
        # A playbook plans at once; an LLM may take seconds, so show "planning" first.
        instant = bool(task.playbook)
        if task.state == TaskState.QUEUED and not instant:
            await self.checkpoints.start_planning(task.id, self.name, now)
        try:
            draft = await self.planner.plan(task, self.registry.names(), rules)
            if draft.checked:
                plan = draft.plan
            else:
                plan = parse_plan(draft.plan, self.registry.names()).to_json()
                if "timeout_seconds" in draft.plan:
                    plan["timeout_seconds"] = draft.plan["timeout_seconds"]
        except PlanLater as e:
            await self._plan_later(task, str(e), e.retry_after, e.cause)
            return None
        except PlanError as e:
            if task.state == TaskState.QUEUED and instant:
                await self.checkpoints.start_planning(task.id, self.name, now)
            await self.checkpoints.finish(task.id, self.name, TaskState.FAILED, self.clock(),
                                          error=f"could not plan: {e}", owner=task)  # fmt: skip
            return None
        if rules.approve_plan:
            plan = gate_plan(plan)
        now = self.clock()
        await self.checkpoints.save_plan(task.id, self.name, plan, now, tokens=draft.tokens, cost=draft.cost,
                                         from_queued=task.state == TaskState.QUEUED and instant,
                                         wake_planning=not instant, owner=task)  # fmt: skip
        task.state, task.plan, task.run_after = TaskState.RUNNING.value, plan, now
        task.tokens += draft.tokens
        task.cost += draft.cost
        task.started_at = task.started_at or now
        return PlannedView(task, planned_steps(task.id, plan), [])

    async def _plan_later(self, task: Task, reason: str, retry_after: float | None, cause: str = "") -> None:
        """The LLM is unavailable: plan again later (the task holds no worker
        meanwhile, its card says why and until when), or give up with the reason
        once patience runs out."""
        assert task.id is not None
        now = self.clock()
        tries = await self.checkpoints.plan_tries(task.id) + 1
        since = task.started_at or task.created_at or now
        decision = decide_plan_retry(tries, since, now, retry_after=retry_after)
        if decision.retry and decision.at is not None:
            log.warning("task %s: planning again at %s: %s", task.id, decision.at.isoformat(), reason)
            note = waiting_note(cause or "unavailable", decision.at, since + PLAN_PATIENCE)
            await self.checkpoints.plan_later(task.id, self.name, now, decision.at, reason=reason, attempt=tries,
                                              note=note)  # fmt: skip
            return
        await self.checkpoints.finish(task.id, self.name, TaskState.FAILED, now,
                                      error=f"could not plan: {reason} ({decision.reason})", owner=task)  # fmt: skip

    async def _run_steps(self, view: TaskView | PlannedView, rules: Rules) -> None:
        task = view.task
        assert task.id is not None
        turn = TurnState.from_view(view)
        budget = Budget.from_json(task.budget) if task.budget else rules.budget
        running: dict[asyncio.Task[None], str] = {}
        stop_reason: tuple[str, str] | None = None
        while not turn.concluded:
            now = self.clock()
            if stop_reason is None:
                stop_reason = await self._limits(task, turn, budget, rules, now)
            if stop_reason is None:
                await self.steps.cancel_blocked(task, turn, now)
                room = self.config.steps_per_task - len(running)
                ready = turn.ready(now, exclude=running.values())[: max(0, room)]
                if len(ready) == 1 and not running:  # a step at a time: no task of its own to wait on
                    await self.steps.run(task, view, turn, ready[0], rules)
                    continue
                for key in ready:
                    t = asyncio.create_task(self.steps.run(task, view, turn, key, rules))
                    running[t] = key
            if not running:
                break
            done, _ = await asyncio.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                running.pop(t)
                t.result()  # LeaseLost and the like end the turn
        await self._conclude(task, turn, stop_reason)

    async def _limits(self, task: Task, turn: TurnState, budget: Budget, rules: Rules,
                      now: datetime) -> tuple[str, str] | None:  # fmt: skip
        timeout = (task.plan or {}).get("timeout_seconds")
        if (
            isinstance(timeout, int | float | str)
            and timeout
            and task.started_at
            and (now - task.started_at).total_seconds() > float(timeout)
        ):
            return TaskState.FAILED.value, f"timed out after {float(timeout):.0f}s"
        usage = Usage(steps=turn.steps_run, tokens=turn.tokens, dollars=turn.cost, started_at=task.started_at)
        reason = over_budget(budget, usage, now)
        if reason is None and rules.person_daily_dollars is not None:
            spent = await self.checkpoints.spent_today(task.platform, task.requester, now)
            if spent >= rules.person_daily_dollars:
                reason = f"daily budget of ${rules.person_daily_dollars:.2f} for {task.requester} reached"
        return (TaskState.PAUSED.value, reason) if reason else None

    async def _conclude(self, task: Task, turn: TurnState, stop: tuple[str, str] | None) -> None:
        assert task.id is not None
        if turn.concluded:
            return
        now = self.clock()

        async def end(target: str, **why: Any) -> None:
            assert task.id is not None
            await self.checkpoints.finish(task.id, self.name, target, now, owner=task, **why)

        if stop is not None and not turn.all_done():
            target, reason = stop
            await end(target, **({"error": reason} if target == TaskState.FAILED else {"reason": reason}))
            return
        failed = turn.failed()
        if failed:
            key, error = failed
            await end(TaskState.FAILED, error=f"step {key} failed: {error}")
        elif turn.all_done():
            await end(TaskState.SUCCEEDED)
        elif turn.waiting_for_person():
            await end(TaskState.WAITING)
        else:
            await end(TaskState.RUNNING, run_after=turn.next_wake())


def _channel(task: Task) -> str:
    return str((task.conversation or {}).get("channel", ""))
