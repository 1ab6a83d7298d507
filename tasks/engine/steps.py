"""Running one step: policy, approval, intent, effect, outcome.

`TurnState` is the engine's in-memory picture of a task's steps during one
turn (pure bookkeeping); `StepRunner` runs one step through the skill and
records every outcome through `Checkpoints`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from tasks.engine.faults import crash_point
from tasks.rules import binding, egress
from tasks.rules.approvals import args_hash, gate
from tasks.rules.json_types import JSON
from tasks.rules.plans import PlanError, blocked_steps, ready_steps
from tasks.rules.policy import Rules
from tasks.rules.retry import RetryPolicy, decide_retry
from tasks.rules.states import StepState
from tasks.skills.arguments import args_error
from tasks.skills.base import CannotTell, Effect, Skill, SkillError, SkillRegistry, StepContext, StepResult
from tasks.store.checkpoints import Checkpoints
from tasks.store.db import transient
from tasks.store.models import Approval, Task
from tasks.store.outbox import Outboxes
from tasks.store.views import PlannedView, TaskView

log = logging.getLogger(__name__)
S = StepState


@dataclass
class TurnState:
    states: dict[str, str]
    deps: dict[str, tuple[str, ...]]
    wake: dict[str, datetime | None]
    attempts: dict[str, int]
    results: dict[str, JSON]
    errors: dict[str, str]
    intents: set[str] = field(default_factory=set)
    saved: dict[str, dict[str, JSON]] = field(default_factory=dict)  # kept by unfinished steps
    concluded: bool = False  # the last step's checkpoint also ended the task
    steps_run: int = 0
    tokens: int = 0
    cost: float = 0.0

    @classmethod
    def from_view(cls, view: TaskView | PlannedView) -> TurnState:
        steps = view.steps
        return cls(
            states={s.key: s.state for s in steps},
            deps={s.key: tuple(s.depends_on or ()) for s in steps},
            wake={s.key: s.wake_at for s in steps},
            attempts={s.key: s.attempts for s in steps},
            results={s.key: cast(JSON, s.result) for s in steps if s.state == S.SUCCEEDED},  # a JSON column
            errors={s.key: s.error or "" for s in steps},
            intents={s.key for s in steps if s.state == S.RUNNING and s.intent_at is not None},
            saved={s.key: s.result for s in steps if s.state != S.SUCCEEDED and isinstance(s.result, dict)},
            steps_run=view.task.steps_run,
            tokens=view.task.tokens,
            cost=view.task.cost,
        )

    def ready(self, now: datetime, exclude: Iterable[str] = ()) -> list[str]:
        busy = set(exclude)
        # A step left running by a crashed worker is ready again: it gets reconciled.
        view = {k: (S.PENDING.value if st == S.RUNNING else st) for k, st in self.states.items()}
        due = [k for k, st in view.items() if st == S.SLEEPING and self._due(k, now)]
        for k in due:
            view[k] = S.PENDING.value
        return [k for k in ready_steps(view, self.deps) if k not in busy and self._due(k, now)]

    def _due(self, key: str, now: datetime) -> bool:
        at = self.wake.get(key)
        return at is None or at <= now

    def blocked(self) -> list[str]:
        return blocked_steps(self.states, self.deps)

    def all_done(self) -> bool:
        return all(st in (S.SUCCEEDED, S.SKIPPED) for st in self.states.values())

    def last_left(self, key: str) -> bool:
        """Whether every step but `key` is done."""
        return all(st in (S.SUCCEEDED, S.SKIPPED) for k, st in self.states.items() if k != key)

    def failed(self) -> tuple[str, str] | None:
        for k, st in self.states.items():
            if st == S.FAILED:
                return k, self.errors.get(k, "")
        return None

    def waiting_for_person(self) -> bool:
        return any(st == S.WAITING for st in self.states.values())

    def next_wake(self) -> datetime | None:
        times = [t for k, t in self.wake.items() if t is not None and self.states[k] in (S.PENDING, S.SLEEPING)]
        return min(times) if times else None

    def scope(self, task: Task) -> dict[str, object]:
        return binding.scope(task, self.results)


class StepRunner:
    """Runs the steps of a worker's turns with the collaborators it is given: where
    outcomes are written, the skills, the worker's name and clock, the process's
    step slots, the outbox, and the lease length."""

    def __init__(self, checkpoints: Checkpoints, registry: SkillRegistry, outboxes: Outboxes, *, worker: str,
                 clock: Callable[[], datetime], slots: asyncio.Semaphore, lease_seconds: float) -> None:  # fmt: skip
        self.cp = checkpoints
        self.registry = registry
        self.outboxes = outboxes
        self.worker = worker
        self.clock = clock
        self.slots = slots
        self.lease_seconds = lease_seconds

    async def cancel_blocked(self, task: Task, turn: TurnState, now: datetime) -> None:
        blocked = turn.blocked()
        if blocked and task.id is not None:
            await self.cp.set_steps(task.id, blocked, S.CANCELLED.value, self.worker, now,
                                    reason="a step it depends on failed")  # fmt: skip
            for k in blocked:
                turn.states[k] = S.CANCELLED.value

    async def run(self, task: Task, view: TaskView | PlannedView, turn: TurnState, key: str, rules: Rules) -> None:
        async with self.slots:
            await self._run(task, view, turn, key, rules)

    async def _run(self, task: Task, view: TaskView | PlannedView, turn: TurnState, key: str, rules: Rules) -> None:
        assert task.id is not None
        step = view.step(key)
        skill: Skill = self.registry.get(step.skill)
        try:
            args = binding.resolve(skill.name, step.args or {}, task, turn.results)
        except PlanError as e:
            return await self._fail(task, turn, key, str(e), retry=False)
        if not rules.allows(skill.name):
            return await self._fail(task, turn, key, f"skill {skill.name} is not allowed here", retry=False)
        wrong = args_error(skill, args)
        if wrong is not None:
            return await self._fail(task, turn, key, f"{skill.name} {wrong}", retry=False)
        ctx = self._context(task, key, step.idempotency_key or f"task-{task.id}-{key}", turn)
        if not await self._approved(task, view, turn, key, skill, args, rules, ctx):
            return
        ctx.wake_at = turn.wake.get(key)
        if key in turn.intents and await self._reconciled(task, turn, key, skill, ctx, args):
            return
        await self._attempt(task, turn, key, skill, ctx, args)

    def _context(self, task: Task, key: str, idem: str, turn: TurnState) -> StepContext:
        assert task.id is not None
        return StepContext(
            task_id=task.id, step_key=key, idempotency_key=idem, requester=task.requester,
            conversation=dict(task.conversation or {}), now=self.clock(),
            attempt=turn.attempts[key] + (0 if _resumed(turn, key) else 1), platform=task.platform,
            tenant=task.tenant, lookup_outbox=self.outboxes.exists,
            saved=turn.saved.get(key), delivery=self.outboxes.delivery, resumed=_resumed(turn, key),
        )  # fmt: skip

    async def _approved(self, task: Task, view: TaskView | PlannedView, turn: TurnState, key: str, skill: Skill,
                        args: dict[str, Any], rules: Rules, ctx: StepContext) -> bool:  # fmt: skip
        assert task.id is not None
        # A read whose model-made arguments go to a host off the allowlist can carry data out.
        origin = egress.untrusted_origin(view.step(key).args or {}, planned_by_model=not task.playbook)
        why = egress.leaving(skill.reaches(args), origin, rules.fetch_allowlist)
        need, auto_rule = rules.needs_approval(skill.name, skill.effect.value, args, leaves=why is not None)
        now = self.clock()
        if auto_rule and key not in turn.intents and not _resumed(turn, key):
            await self.cp.note(task.id, "policy", "approval.auto", now, step=key, rule=auto_rule)
        if not need:
            return True
        # Bound to the values that will run (and that the card shows), checked
        # here, right before the effect: an approval of other values does not count.
        bound = args_hash(skill.name, args)
        verdict = gate(_latest(view.approvals, key), bound)
        if verdict.action == "run":
            return True
        if verdict.action == "wait":
            turn.states[key] = S.WAITING.value
            return False
        try:  # nobody is asked to approve what cannot work
            await skill.preflight(ctx, args)
        except SkillError as e:
            await self._fail(task, turn, key, str(e), retry=e.retryable, skill=skill, retry_after=e.retry_after)
            return False
        summary = {**skill.describe(args), "step": key, "effect": skill.effect.value,
                   "requester": task.requester, **({"why": why} if why else {})}  # fmt: skip
        await self.cp.request_approval(
            task.id, key, self.worker, skill=skill.name, args_hash=bound, summary=summary,
            approvers=rules.approvers_for(task.requester), required=rules.required,
            expires_at=now + timedelta(seconds=rules.expiry_seconds), on_reject=rules.on_reject, now=now,
            supersedes=verdict.supersedes,
        )  # fmt: skip
        turn.states[key] = S.WAITING.value
        return False

    async def _reconciled(self, task: Task, turn: TurnState, key: str, skill: Skill,
                          ctx: StepContext, args: dict[str, Any]) -> bool:  # fmt: skip
        """A crash left an intent with no outcome: ask the skill what happened."""
        assert task.id is not None
        try:
            result = await skill.reconcile(ctx, args)
        except CannotTell as e:
            await self._fail(task, turn, key, f"outcome unknown after a crash ({e}); "
                             "check by hand, then retry the task", retry=False)  # fmt: skip
            return True
        except SkillError as e:
            await self._fail(task, turn, key, str(e), retry=e.retryable, skill=skill, attempt=ctx.attempt - 1,
                             retry_after=e.retry_after)  # fmt: skip
            return True
        await self.cp.note(task.id, self.worker, "step.reconciled", self.clock(), step=key,
                           happened=result is not None)  # fmt: skip
        if result is None:
            return False
        await self._outcome(task, turn, key, turn.attempts[key], result)
        return True

    async def _attempt(self, task: Task, turn: TurnState, key: str, skill: Skill, ctx: StepContext,
                       args: dict[str, Any]) -> None:  # fmt: skip
        assert task.id is not None
        attempt = ctx.attempt
        if skill.effect != Effect.READ and not _resumed(turn, key):  # a parked step's effect is recorded
            await self.cp.record_intent(task.id, key, self.worker, attempt, self.clock())
            turn.intents.add(key)
        try:
            async with asyncio.timeout(skill.timeout):  # unlike wait_for, no task of its own per step
                result = await skill.run(ctx, args)
        except SkillError as e:
            return await self._fail(task, turn, key, str(e), retry=e.retryable, skill=skill,
                                    attempt=attempt, retry_after=e.retry_after)  # fmt: skip
        except TimeoutError:
            return await self._fail(task, turn, key, f"timed out after {skill.timeout:g}s", retry=True,
                                    skill=skill, attempt=attempt)  # fmt: skip
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as e:
            log.exception("task %s step %s: skill %s raised", task.id, key, skill.name)
            return await self._fail(task, turn, key, f"{type(e).__name__}: {e}", retry=True, skill=skill,
                                    attempt=attempt)  # fmt: skip
        if skill.effect != Effect.READ:
            crash_point("after_effect")  # tests only: COWORK_FAULT (tasks/engine/faults.py)
        await self._outcome(task, turn, key, attempt, result)

    async def _outcome(self, task: Task, turn: TurnState, key: str, attempt: int, result: StepResult) -> None:
        """Success, or (`sleep_until`) the step parks with its outbox rows and kept state."""
        assert task.id is not None
        if result.sleep_until is None or result.sleep_until <= self.clock():
            return await self._succeed(task, turn, key, attempt, result)
        await self.cp.park(task.id, key, self.worker, attempt, result, self.clock())
        turn.states[key], turn.wake[key] = S.SLEEPING.value, result.sleep_until
        turn.attempts[key] = attempt
        turn.intents.discard(key)
        if result.state is not None:
            turn.saved[key] = result.state

    async def _succeed(self, task: Task, turn: TurnState, key: str, attempt: int, result: StepResult) -> None:
        assert task.id is not None
        task_id = task.id
        last = turn.last_left(key)
        await self._known_outcome(
            task_id, key, attempt, (S.SUCCEEDED.value,),
            lambda: self.cp.checkpoint(task_id, key, self.worker, attempt, result, self.clock(),
                                       last=last, owner=task),
        )  # fmt: skip
        turn.concluded = last
        turn.states[key], turn.results[key] = S.SUCCEEDED.value, result.output
        turn.attempts[key] = attempt
        turn.intents.discard(key)
        turn.steps_run += 1
        turn.tokens += result.tokens
        turn.cost += result.cost

    async def _fail(self, task: Task, turn: TurnState, key: str, error: str, *, retry: bool,
                    skill: Skill | None = None, attempt: int | None = None,
                    retry_after: float | None = None) -> None:  # fmt: skip
        assert task.id is not None
        now = self.clock()
        n = attempt if attempt is not None else turn.attempts[key] + 1
        policy = RetryPolicy(max_attempts=skill.max_attempts if skill else 1)
        decision = decide_retry(n, policy, retryable=retry, now=now, retry_after=retry_after)
        task_id = task.id
        await self._known_outcome(
            task_id, key, n, (S.PENDING.value, S.FAILED.value),
            lambda: self.cp.step_failed(task_id, key, self.worker, n, error, now, retry_at=decision.at),
        )  # fmt: skip
        turn.attempts[key] = n
        turn.errors[key] = error
        turn.intents.discard(key)
        if decision.retry:
            turn.states[key], turn.wake[key] = S.PENDING.value, decision.at
        else:
            turn.states[key] = S.FAILED.value

    async def _known_outcome(self, task_id: int, key: str, attempt: int, states: tuple[str, ...],
                             write: Callable[[], Awaitable[None]]) -> None:  # fmt: skip
        """Write an outcome this worker knows, through a database hiccup: a lost
        connection must not turn a known outcome into "outcome unknown" for the
        next worker. Tried again for up to a lease's length; a write whose commit
        went through but whose answer was lost is found and not written twice."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lease_seconds
        delay = 0.25
        while True:
            try:
                await write()
                return
            except Exception as e:
                if not transient(e) or loop.time() + delay > deadline:
                    raise
                log.warning("task %s step %s: recording the outcome failed (%s); trying again", task_id, key, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)
            with contextlib.suppress(Exception):  # still down: the next write says so
                if await self.cp.step_written(task_id, key, attempt, states):
                    return


def _resumed(turn: TurnState, key: str) -> bool:
    """Whether the step parked earlier (a timer, a post waiting for the platform)
    and is now run again to see whether it is done: its effect is already recorded."""
    return turn.states.get(key) == S.SLEEPING and turn.attempts.get(key, 0) > 0


def _latest(approvals: list[Approval], key: str) -> Approval | None:
    mine = [a for a in approvals if a.step_key == key]
    return mine[-1] if mine else None
