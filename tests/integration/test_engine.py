"""The engine end to end on a real database: plans, steps, approvals, retries,
timers, budgets, crashes recovered by reconcile."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from tasks.engine.controls import Controls
from tasks.engine.engine import Engine, EngineConfig
from tasks.planning.planner import PlanSource
from tasks.rules.policy import Policy, Rules
from tasks.skills.base import Effect, Skill, SkillError, SkillRegistry, StepContext, StepResult
from tasks.skills.core import core_skills
from tasks.store.db import Database
from tasks.store.outbox import Outboxes
from tasks.store.store import NewTask, Store
from tests.conftest import Clock
from tests.fakes.engine_harness import InlinePlanner, person, settle

CONV = {"platform": "console", "tenant": "t1", "channel": "general", "thread": "m1", "extra": {}}


class Flaky(Skill):
    name = "test.flaky"
    effect = Effect.READ
    max_attempts = 3
    failures: ClassVar[dict[str, int]] = {}

    async def run(self, ctx: StepContext, args: dict[str, Any]) -> StepResult:
        left = self.failures.get(ctx.idempotency_key, int(args.get("fail", 0)))
        if left > 0:
            self.failures[ctx.idempotency_key] = left - 1
            raise SkillError("temporary trouble", retryable=not args.get("fatal"))
        return StepResult(output={"ok": True}, tokens=int(args.get("tokens", 0)), cost=float(args.get("cost", 0)))


class Recorder(Skill):
    """An external effect that counts how often it really happened."""

    name = "test.effect"
    effect = Effect.EXTERNAL
    idempotent = False
    done: ClassVar[dict[str, int]] = {}

    async def run(self, ctx: StepContext, args: dict[str, Any]) -> StepResult:
        self.done[ctx.idempotency_key] = self.done.get(ctx.idempotency_key, 0) + 1
        return StepResult(output={"did": args.get("what")}, effects=(f"did {args.get('what')}",))

    async def reconcile(self, ctx: StepContext, args: dict[str, Any]) -> StepResult | None:
        return StepResult(output={"did": args.get("what")}) if self.done.get(ctx.idempotency_key) else None


class Harness:
    def __init__(self, db: Database, clock: Clock, policy: Policy | None = None):
        self.store = Store(db)
        self.controls = Controls(self.store)
        self.outbox = Outboxes(self.store)
        self.registry = SkillRegistry([*core_skills(), Flaky(), Recorder()])
        self.inline = InlinePlanner()
        self.clock = clock
        self.policy = policy or Policy()
        self.engine = self.make_engine("w1")

    def make_engine(self, name: str) -> Engine:
        from tasks.planning.playbooks import load_playbooks, shipped_folder

        books = load_playbooks([shipped_folder()], self.registry.names())
        source = PlanSource(books, llm=self.inline)
        return Engine(
            self.store,
            self.registry,
            source,
            policy=self.policy,
            clock=self.clock,
            config=EngineConfig(name=name, lease_seconds=30),
        )

    async def submit(
        self,
        steps: list[dict[str, Any]] | None = None,
        *,
        key: str = "e1",
        playbook: str | None = None,
        params: dict[str, Any] | None = None,
        budget: dict[str, Any] | None = None,
        requester: str = "alice",
    ) -> int:
        text = f"plan-{key}"
        if steps is not None:
            self.inline.plans[text] = {"steps": steps}
        task_id, _ = await self.store.create_task(
            NewTask(
                platform="console",
                tenant="t1",
                dedupe_key=key,
                requester=requester,
                conversation=CONV,
                text=text,
                playbook=playbook,
                params=params,
                budget=budget,
            ),
            self.clock(),
        )
        return task_id

    async def drain(self) -> None:
        await self.engine.drain()


@pytest.fixture
def h(db: Database, clock: Clock) -> Harness:
    Flaky.failures.clear()
    Recorder.done.clear()
    h = Harness(db, clock)
    return h


async def test_the_engine_leaves_the_registry_it_is_given_as_it_is(h: Harness) -> None:
    """The plan gate is a skill of the engine's own registry; the registry it was given is not changed."""
    assert "plan.approve" not in h.registry
    assert "plan.approve" in h.engine.registry
    assert h.engine.registry.names() == sorted([*h.registry.names(), "plan.approve"])


async def test_intake_is_idempotent(h: Harness) -> None:
    a = await h.submit([{"key": "a", "skill": "wait"}], key="same")
    b = await h.submit([{"key": "a", "skill": "wait"}], key="same")
    assert a == b
    assert len(await h.store.list_tasks()) == 1


async def test_three_step_plan_runs_to_success_and_writes_audit_trail(h: Harness) -> None:
    task_id = await h.submit(playbook="noop", params={})
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded"
    assert [s.state for s in view.steps] == ["succeeded"] * 3
    kinds = [e.kind for e in await h.store.events(task_id)]
    assert kinds[0] == "task.created"
    assert "plan.ready" in kinds and kinds[-1] == "task.succeeded"
    assert kinds.count("step.succeeded") == 3
    sent = {r.kind for r in await h.outbox.rows(task_id)}
    assert sent == {"task_card"}  # the summary is the card's final state


async def test_concurrent_steps_run_after_their_dependencies(h: Harness) -> None:
    task_id = await h.submit(
        [
            {"key": "a", "skill": "test.flaky"},
            {"key": "b", "skill": "test.flaky"},
            {"key": "c", "skill": "test.flaky", "depends_on": ["a", "b"]},
        ]
    )
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded"
    done = {s.key: s.finished_at for s in view.steps}
    assert done["c"] >= max(done["a"], done["b"])


async def test_retryable_error_is_retried_with_backoff(h: Harness, clock: Clock) -> None:
    task_id = await h.submit([{"key": "a", "skill": "test.flaky", "args": {"fail": 2}}])
    await h.drain()
    step = (await h.store.view(task_id)).step("a")
    assert step.state == "pending" and step.attempts == 1 and step.wake_at > clock.now
    for _ in range(2):
        clock.advance(120)
        await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded" and view.step("a").attempts == 3


async def test_non_retryable_error_fails_step_and_task_keeping_the_error(h: Harness) -> None:
    task_id = await h.submit(
        [
            {"key": "a", "skill": "test.flaky", "args": {"fail": 1, "fatal": True}},
            {"key": "b", "skill": "test.flaky", "depends_on": ["a"]},
        ]
    )
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "failed"
    assert "temporary trouble" in (view.task.error or "")
    assert view.step("a").state == "failed" and view.step("b").state == "cancelled"


async def test_retry_runs_again_from_the_failed_step_only(h: Harness) -> None:
    task_id = await h.submit(
        [
            {"key": "a", "skill": "test.effect", "args": {"what": "x"}},
            {"key": "b", "skill": "test.flaky", "args": {"fail": 1, "fatal": True}, "depends_on": ["a"]},
        ]
    )
    h.policy = Policy(defaults=Rules(approval_effects=frozenset()))
    h.engine = h.make_engine("w1")
    await h.drain()
    assert (await h.store.get_task(task_id)).state == "failed"  # type: ignore[union-attr]
    await h.controls.retry(task_id, "alice", h.clock())
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded"
    assert Recorder.done == {f"task-{task_id}-a": 1}


async def test_effect_waits_for_approval_and_runs_once_approved(h: Harness) -> None:
    task_id = await h.submit(playbook="announce", params={"channel": "eng", "text": "hello"})
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "waiting_approval" and view.task.lease_holder is None
    (approval,) = view.approvals
    assert approval.approvers == ["alice"] and approval.summary["text"] == "hello"
    refused = await h.controls.decide(approval.id, person("mallory"), True, h.clock())
    assert not refused.accepted and "not allowed" in refused.reason
    assert (await h.store.get_task(task_id)).state == "waiting_approval"  # type: ignore[union-attr]
    ok = await h.controls.decide(approval.id, person("alice"), True, h.clock())
    assert ok.accepted and ok.state == "approved"
    again = await h.controls.decide(approval.id, person("alice"), True, h.clock())
    assert not again.accepted and "already approved" in again.reason
    await settle(h.engine, h.store, h.clock)
    assert (await h.store.get_task(task_id)).state == "succeeded"  # type: ignore[union-attr]
    posts = [r for r in await h.outbox.rows(task_id) if r.kind == "message"]
    assert len(posts) == 1 and posts[0].payload == {"text": "hello"}
    assert posts[0].conversation["channel"] == "eng"


async def test_a_task_paused_while_it_waits_for_approval_resumes_waiting_and_runs_once_approved(h: Harness) -> None:
    task_id = await h.submit(playbook="announce", params={"channel": "eng", "text": "hello"})
    await h.drain()
    await h.controls.pause(task_id, "alice", now=h.clock())
    assert await h.controls.resume(task_id, "alice", h.clock()) == "waiting_approval"
    (approval,) = (await h.store.view(task_id)).approvals
    assert (await h.controls.decide(approval.id, person("alice"), True, h.clock())).accepted
    await settle(h.engine, h.store, h.clock)
    assert (await h.store.get_task(task_id)).state == "succeeded"  # type: ignore[union-attr]
    assert len([r for r in await h.outbox.rows(task_id) if r.kind == "message"]) == 1


async def test_reject_fails_the_task(h: Harness) -> None:
    task_id = await h.submit(playbook="announce", params={"channel": "eng", "text": "hi"})
    await h.drain()
    (approval,) = (await h.store.view(task_id)).approvals
    await h.controls.decide(approval.id, person("alice"), False, h.clock())
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "failed" and "rejected by alice" in (view.task.error or "")
    assert not [r for r in await h.outbox.rows(task_id) if r.kind == "message"]


async def test_approval_expires_and_expired_decision_is_refused(h: Harness, clock: Clock) -> None:
    task_id = await h.submit(playbook="announce", params={"channel": "eng", "text": "hi"})
    await h.drain()
    (approval,) = (await h.store.view(task_id)).approvals
    clock.advance(25 * 3600)
    late = await h.controls.decide(approval.id, person("alice"), True, clock())
    assert not late.accepted and "expired" in late.reason
    assert await h.controls.expire_approvals(clock()) == [approval.id]
    assert (await h.store.get_task(task_id)).state == "expired"  # type: ignore[union-attr]


async def test_decision_on_changed_args_is_refused(h: Harness, db: Database) -> None:
    from sqlalchemy import update

    from tasks.store.store import STEP

    task_id = await h.submit(playbook="announce", params={"channel": "eng", "text": "hi"})
    await h.drain()
    (approval,) = (await h.store.view(task_id)).approvals
    await db.run(
        lambda tx: tx.conn.execute(
            update(STEP).where(STEP.c.task_id == task_id).values(args={"channel": "#all", "text": "x"})
        )
    )
    refused = await h.controls.decide(approval.id, person("alice"), True, h.clock())
    assert not refused.accepted and "changed" in refused.reason


async def test_wait_is_a_durable_timer_holding_no_worker(h: Harness, clock: Clock) -> None:
    task_id = await h.submit(
        [
            {"key": "w", "skill": "wait", "args": {"seconds": 600}},
            {"key": "after", "skill": "test.flaky", "depends_on": ["w"]},
        ]
    )
    await h.drain()
    task = await h.store.get_task(task_id)
    assert task.state == "running" and task.lease_holder is None  # type: ignore[union-attr]
    clock.advance(599)
    await h.drain()
    assert (await h.store.view(task_id)).step("w").state == "sleeping"
    clock.advance(2)
    await h.drain()
    assert (await h.store.get_task(task_id)).state == "succeeded"  # type: ignore[union-attr]


async def test_budget_pauses_with_a_clear_reason(h: Harness) -> None:
    task_id = await h.submit(
        [{"key": f"s{i}", "skill": "test.flaky", "args": {"tokens": 600}} for i in range(4)], budget={"tokens": 1000}
    )
    h.engine.config = EngineConfig(name="w1", steps_per_task=1, max_steps=1)
    await h.drain()
    task = await h.store.get_task(task_id)
    assert task.state == "paused"  # type: ignore[union-attr]
    assert "token budget" in (task.pause_reason or "")  # type: ignore[union-attr]


async def test_illegal_transition_is_refused_and_changes_nothing(h: Harness) -> None:
    from tasks.rules.states import IllegalTransition

    task_id = await h.submit(playbook="noop", params={})
    await h.drain()
    with pytest.raises(IllegalTransition, match="succeeded to cancelled"):
        await h.controls.cancel(task_id, "alice", h.clock())
    assert (await h.store.get_task(task_id)).state == "succeeded"  # type: ignore[union-attr]


async def test_cancel_pause_resume(h: Harness, clock: Clock) -> None:
    task_id = await h.submit([{"key": "w", "skill": "wait", "args": {"seconds": 60}}])
    await h.drain()
    await h.controls.pause(task_id, "alice", now=clock())
    clock.advance(120)
    await h.drain()
    assert (await h.store.get_task(task_id)).state == "paused"  # type: ignore[union-attr]
    await h.controls.resume(task_id, "alice", clock())
    await h.drain()
    assert (await h.store.get_task(task_id)).state == "succeeded"  # type: ignore[union-attr]
    other = await h.submit([{"key": "w", "skill": "wait", "args": {"seconds": 60}}], key="e2")
    await h.drain()
    await h.controls.cancel(other, "alice", clock())
    view = await h.store.view(other)
    assert view.task.state == "cancelled" and view.step("w").state == "cancelled"


async def test_crash_between_effect_and_checkpoint_is_reconciled_not_repeated(h: Harness, clock: Clock) -> None:
    h.policy = Policy(defaults=Rules(approval_effects=frozenset()))
    h.engine = h.make_engine("w1")
    task_id = await h.submit([{"key": "a", "skill": "test.effect", "args": {"what": "pay"}}])
    cp = h.engine.checkpoints

    class Died(BaseException):
        """The process dies right here: nothing after this line runs."""

    async def crash(*args: Any, **kw: Any) -> None:
        raise Died()

    cp.checkpoint = crash  # type: ignore[method-assign]
    with pytest.raises(Died):
        await h.engine.run_turn((await h.store.claim("w1", 1, 30, clock()))[0])
    assert Recorder.done == {f"task-{task_id}-a": 1}
    clock.advance(31)  # the dead worker's lease lapses
    h.engine = h.make_engine("w2")
    await h.drain()
    view = await h.store.view(task_id)
    assert view.task.state == "succeeded"
    assert Recorder.done == {f"task-{task_id}-a": 1}
    kinds = [e.kind for e in await h.store.events(task_id)]
    assert "lease.taken_over" in kinds and "step.reconciled" in kinds


async def test_two_workers_never_claim_the_same_task(h: Harness, clock: Clock) -> None:
    for i in range(20):
        await h.submit(playbook="noop", params={}, key=f"k{i}")
    a = await h.store.claim("w1", 15, 30, clock())
    b = await h.store.claim("w2", 15, 30, clock())
    assert len(a) == 15 and len(b) == 5 and not set(a) & set(b)
