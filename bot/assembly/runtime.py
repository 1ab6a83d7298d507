"""Assembly: builds the database, store, engine, conversation and delivery loop
from Settings, and starts and stops the background parts of a process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.chat import ChatAdapter
from bot.application.conversation import Conversation
from bot.application.delivery import STOP_GRACE, Delivery
from bot.application.history import AdapterHistory
from bot.application.targets import AdapterTargets
from bot.assembly.config import Settings
from bot.ops.prune import background, retention
from tasks.engine.controls import Controls
from tasks.engine.engine import Engine, EngineConfig
from tasks.engine.scheduler import make_scheduler
from tasks.planning.llm_planner import LLMPlanner
from tasks.planning.plan_gate import PlanGate
from tasks.planning.planner import Planner, PlanSource
from tasks.planning.playbooks import Playbook, library_playbooks, load_playbooks, shipped_folder
from tasks.rules.clock import utcnow
from tasks.rules.plans import PLAN_GATE
from tasks.rules.policy import Policy, load_policy
from tasks.skills.base import SkillRegistry
from tasks.skills.catalog import all_skills
from tasks.skills.chat import ChatReader
from tasks.skills.core import TargetCheck, core_skills
from tasks.skills.llm_client import make_llm
from tasks.skills.schedule import ScheduleBook
from tasks.store import schema
from tasks.store.db import Database
from tasks.store.dialects import dialect_of
from tasks.store.outbox import Outboxes
from tasks.store.pruning import Pruner
from tasks.store.store import Store

STOP_WITHIN = STOP_GRACE + 3.0  # delivery's grace for sends under way, and its hand-back

log = logging.getLogger(__name__)


def settle_heap() -> None:
    """Take what start-up built (modules, tables, compiled statements, skills,
    playbooks) out of the garbage collector's view. Each full collection
    would otherwise walk all of it again: measured at a quarter of the
    engine's CPU on no-op tasks (see docs/performance.md). Objects frozen this
    way are still freed by reference counting; only cycles among them stay."""
    gc.collect()
    gc.freeze()


def prepare_database(url: str) -> None:
    """`cowork serve` upgrades an empty (or older) SQLite file itself; on
    PostgreSQL the operator runs `cowork db upgrade` as a release step, and a
    process refuses to start on a schema older than its code needs."""
    if dialect_of(url).upgrades_itself:
        schema.upgrade(url)
    elif schema.is_empty(url):
        raise SystemExit(f"the database at {_safe(url)} has no tables: run `cowork db upgrade` first")
    elif (head := schema.behind(rev := schema.current(url))) is not None:
        raise SystemExit(f"the database at {_safe(url)} has schema revision {rev}; this version of Cowork "
                         f"needs {head}: run `cowork db upgrade` first")  # fmt: skip


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def build_registry(settings: Settings, policy: Policy, llm: Any = None, *, reader: ChatReader | None = None,
                   targets: TargetCheck | None = None,
                   schedules: ScheduleBook | None = None) -> SkillRegistry:  # fmt: skip
    """Core, built-in and MCP skills, installed plugins, and the plan gate (the policy may
    ask a person to approve a whole plan). Each skill is built with what it needs of the bot:
    `chat.history` a reader, `chat.post` a target check, `schedule.create` where schedules go."""
    registry = SkillRegistry(core_skills(targets))
    for skill in all_skills(policy=policy, settings=settings, llm=llm, reader=reader, schedules=schedules):
        registry.add(skill)
    registry.load_plugins()
    if PLAN_GATE not in registry:
        registry.add(PlanGate())
    return registry


def build_llm_client(settings: Settings, policy: Policy) -> Any:
    """One LLM client for the planner and the llm.* skills, or None when no LLM
    is configured; a call that takes longer than COWORK_LLM_TIMEOUT fails and
    is retried (a hung LLM server must not hold a task forever)."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return make_llm(key or None, settings.openai_base_url, settings.cowork_model, policy, timeout=settings.llm_timeout)


def build_llm(settings: Settings, registry: SkillRegistry, client: Any) -> Planner | None:
    if not settings.llm_enabled or client is None:
        return None
    return LLMPlanner(client, registry)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        adapters: dict[str, ChatAdapter] | None = None,
        clock: Callable[[], datetime] = utcnow,
        planner: Planner | None = None,
        engine_config: EngineConfig | None = None,
    ):
        self.settings = settings
        self.clock = clock
        self.db = Database(settings.database_url)
        self.store = Store(self.db)
        self.policy = load_policy(settings.cowork_policy)
        self.controls = Controls(self.store, self.policy)
        self.outboxes = Outboxes(self.store)
        self.adapters: dict[str, ChatAdapter] = dict(adapters or {})
        self.chat_reader = AdapterHistory(self.adapters)  # the platforms' adapters, as they are added
        llm_client = build_llm_client(settings, self.policy)
        self.registry = build_registry(settings, self.policy, llm_client, reader=self.chat_reader,
                                       targets=AdapterTargets(self.adapters), schedules=self.controls)  # fmt: skip
        self.playbooks = self._playbooks()
        self.llm = planner or build_llm(settings, self.registry, llm_client)
        self.engine = Engine(
            self.store, self.registry, PlanSource(self.playbooks, self.llm), policy=self.policy, clock=clock,
            config=engine_config or EngineConfig(max_tasks=settings.worker_concurrency,
                                                 lease_seconds=settings.lease_seconds),
        )  # fmt: skip
        # Wakes the claim loop: this process's engine, or the child running it (bot/assembly/engine_process.py).
        self.wake_engine: Callable[[], None] = self.engine.wake
        self.delivery = Delivery(self.store, self.adapters, base_url=settings.base_url(), clock=clock,
                                 on_answer=lambda: self.wake_engine())  # fmt: skip
        self.conversation = Conversation(
            store=self.store, controls=self.controls, playbooks=self.playbooks, policy=self.policy,
            llm_enabled=self.llm is not None, base_url=settings.base_url(), clock=clock, wake=self.wake,
            registry=self.registry,
        )  # fmt: skip
        self.pruner = Pruner(self.db, retention(settings))
        self.prune_round = background(self.pruner, settings.prune_round, settings.prune_export)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._scheduler: Any = None

    def _playbooks(self) -> dict[str, Playbook]:
        folders: list[str | Path] = [shipped_folder()]
        if self.settings.cowork_playbooks:
            folders.append(self.settings.cowork_playbooks)
        books = load_playbooks(folders, self.registry.names())
        return {**library_playbooks(self.registry.names()), **books}

    def wake(self) -> None:
        self.wake_engine()
        self.delivery.wake()

    def add_adapter(self, platform: str, adapter: ChatAdapter) -> None:
        self.adapters[platform] = adapter

    async def start(self, *, worker: bool = True, delivery: bool = True) -> None:
        self._stop.clear()
        if worker:
            self._tasks.append(asyncio.create_task(self.engine.serve(self._stop), name="engine"))
            self._scheduler = make_scheduler(self.engine, self.controls, prune=self.prune_round,
                                             prune_every=self.settings.prune_interval)  # fmt: skip
            self._scheduler.start()
        if delivery:
            self._tasks.append(asyncio.create_task(self.delivery.serve(self._stop), name="delivery"))

    async def stop(self, within: float = STOP_WITHIN) -> None:
        """Stop the engine and delivery: each ends its own way (delivery hands back
        what it has not sent) and is cancelled only if it takes longer than `within`
        seconds; cancelled at once, a claim under way would leave its rows claimed."""
        self._stop.set()
        self.wake()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=within)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()

    def close(self) -> None:
        self.db.close()
