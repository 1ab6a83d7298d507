"""An engine on a real database with the built-in skills, for the skill and
planner tests: submit a task (free text for the LLM planner, or an inline
plan), drain, look at steps, approvals, events and outbox rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters.console import ConsoleAdapter, Hub
from bot.application.delivery import Delivery
from tasks.engine.controls import Controls
from tasks.engine.engine import Engine, EngineConfig
from tasks.planning.llm_planner import LLMPlanner
from tasks.planning.planner import PlanDraft, Planner, PlanSource
from tasks.rules.approvals import Approver
from tasks.rules.clock import utcnow
from tasks.rules.policy import Policy, Rules
from tasks.skills.base import Skill, SkillRegistry
from tasks.skills.catalog import builtin_skills
from tasks.skills.chat import ChatReader
from tasks.skills.core import core_skills
from tasks.skills.llm_client import LLM
from tasks.store.db import Database
from tasks.store.outbox import Outboxes
from tasks.store.store import NewTask, Store
from tasks.store.transcript import Transcript
from tests.conftest import Clock

CONV = {"platform": "console", "tenant": "t1", "channel": "general", "thread": "m1", "extra": {}}
NO_APPROVALS = Policy(defaults=Rules(approval_effects=frozenset()))


def person(user: str) -> Approver:
    """A person of the workspace the harness's tasks belong to."""
    return Approver("console", "t1", user)


async def no_sleep(seconds: float) -> None:
    return None


def console_delivery(store: Store, clock: Callable[[], datetime] = utcnow) -> Delivery:
    """A real delivery loop and console adapter on the store's database."""
    return Delivery(store, {"console": ConsoleAdapter(Transcript(store.db), Hub(), clock=clock)}, clock=clock)


async def deliver_console(store: Store) -> int:
    return await console_delivery(store).drain()


async def settle(engine: Engine, store: Store, clock: Clock, rounds: int = 10) -> None:
    """Run the engine and deliver what it wrote to the console, until neither
    has work: a post is done once the platform took it."""
    delivery = console_delivery(store, clock)
    for _ in range(rounds):
        turns = await engine.drain()
        if not await delivery.drain() and not turns:
            return


class InlinePlanner:
    def __init__(self) -> None:
        self.plans: dict[str, dict[str, Any]] = {}

    async def plan(self, task: Any, known: list[str], rules: Any) -> PlanDraft:
        return PlanDraft(self.plans[task.text])


class Harness:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        policy: Policy | None = None,
        llm: LLM | None = None,
        extra: list[Skill] = (),
        reader: ChatReader | None = None,
    ):
        self.store = Store(db)
        self.policy = policy or Policy()
        self.controls = Controls(self.store, self.policy)
        self.outbox = Outboxes(self.store)
        self.clock = clock
        self.registry = SkillRegistry(
            [*core_skills(), *builtin_skills(self.policy, llm, reader=reader, schedules=self.controls), *extra]
        )
        self.inline = InlinePlanner()
        planner: Planner = LLMPlanner(llm, self.registry, sleep=no_sleep) if llm else self.inline
        self.engine = Engine(
            self.store,
            self.registry,
            PlanSource({}, llm=planner),
            policy=self.policy,
            clock=clock,
            config=EngineConfig(name="w1"),
        )

    async def submit(
        self,
        text: str = "do it",
        *,
        steps: list[dict[str, Any]] | None = None,
        key: str = "e1",
        requester: str = "alice",
    ) -> int:
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
            ),
            self.clock(),
        )
        return task_id

    async def drain(self) -> None:
        await self.engine.drain()

    async def settle(self) -> None:
        """Drain, delivering posts to the console as they are made."""
        await settle(self.engine, self.store, self.clock)

    async def kinds(self, task_id: int) -> list[str]:
        return [e.kind for e in await self.store.events(task_id)]

    async def messages(self, task_id: int) -> list[Any]:
        return [r for r in await self.outbox.rows(task_id) if r.kind == "message"]
