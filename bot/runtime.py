"""Assembly: builds the database, store, engine, conversation and delivery loop
from Settings, and starts and stops the background parts of a process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from adapters.chat import ChatAdapter
from bot.config import Settings
from bot.conversation import Conversation
from bot.delivery import Delivery
from bot.history import AdapterHistory
from bot.prune import background, retention
from bot.targets import AdapterTargets
from tasks import schema
from tasks.clock import utcnow
from tasks.controls import Controls
from tasks.core_skills import core_skills
from tasks.db import Database
from tasks.dialects import dialect_of
from tasks.engine import Engine, EngineConfig, Planner
from tasks.outbox import Outboxes
from tasks.planner import PlanSource
from tasks.playbooks import Playbook, load_playbooks, shipped_folder
from tasks.policy import Policy, load_policy
from tasks.pruning import Pruner
from tasks.scheduler import make_scheduler
from tasks.skills import SkillRegistry
from tasks.store import Store

log = logging.getLogger(__name__)


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


def build_registry(settings: Settings, policy: Policy, llm: Any = None) -> SkillRegistry:
    registry = SkillRegistry(core_skills())
    extra = _optional("tasks.skillbook", "all_skills")
    if extra is not None:
        for skill in extra(policy=policy, settings=settings, llm=llm):
            registry.add(skill)
    registry.load_plugins()
    return registry


def build_llm_client(settings: Settings, policy: Policy) -> Any:
    """One LLM client for the planner and the llm.* skills, or None when no LLM
    is configured; a call that takes longer than COWORK_LLM_TIMEOUT fails and
    is retried (a hung LLM server must not hold a task forever)."""
    make = _optional("tasks.llm", "make_llm")
    if make is None:
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return make(key or None, settings.openai_base_url, settings.cowork_model, policy, timeout=settings.llm_timeout)


def build_llm(settings: Settings, registry: SkillRegistry, client: Any) -> Planner | None:
    if not settings.llm_enabled or client is None:
        return None
    planner = _optional("tasks.llm_planner", "LLMPlanner")
    return None if planner is None else cast(Planner, planner(client, registry))


def _optional(module: str, name: str) -> Any:
    """Parts that land with their own issue are wired when present."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


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
        llm_client = build_llm_client(settings, self.policy)
        self.registry = build_registry(settings, self.policy, llm_client)
        self.playbooks = self._playbooks()
        self.llm = planner or build_llm(settings, self.registry, llm_client)
        self.adapters: dict[str, ChatAdapter] = dict(adapters or {})
        self.services: dict[str, Any] = {
            "controls": self.controls,
            "store": self.store,
            "settings": settings,
            "chat_reader": AdapterHistory(self.adapters),
            "chat_target": AdapterTargets(self.adapters),
        }
        self.engine = Engine(
            self.store, self.registry, PlanSource(self.playbooks, self.llm), policy=self.policy,
            services=self.services, clock=clock,
            config=engine_config or EngineConfig(max_tasks=settings.worker_concurrency,
                                                 lease_seconds=settings.lease_seconds),
        )  # fmt: skip
        self.delivery = Delivery(self.store, self.adapters, base_url=settings.base_url(), clock=clock,
                                 on_answer=self.engine.wake)  # fmt: skip
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
        library = _optional("tasks.skillbook", "library_playbooks")
        if library is not None:
            books = {**library(self.registry.names()), **books}
        return books

    def wake(self) -> None:
        self.engine.wake()
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

    async def stop(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()

    def close(self) -> None:
        self.db.close()
