"""The clock of a worker process (APScheduler 3, AsyncIOScheduler): wakes the
claim loop, expires (and escalates) approvals, reaps lapsed leases, fires
recurring schedules and prunes rows past their retention (`tasks.store.pruning`).
Each job is one short store call (a prune round: a few bounded batches);
several processes may run the same jobs, because every job is safe to run
concurrently."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from tasks.engine.controls import Controls
from tasks.engine.engine import Engine

log = logging.getLogger(__name__)


def _guarded(name: str, fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        try:
            await fn()
        except Exception as e:  # the database may be down for a while: try at the next tick
            log.warning("scheduled job %s failed: %s", name, e)

    return job


def make_scheduler(
    engine: Engine,
    controls: Controls,
    *,
    tick: float = 1.0,
    housekeeping: float = 5.0,
    prune: Callable[[datetime], Awaitable[object]] | None = None,
    prune_every: float = 300.0,
) -> AsyncIOScheduler:
    """`prune`, when given, runs every `prune_every` seconds with the engine's time."""
    sched = AsyncIOScheduler(timezone="UTC")
    opts: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}

    async def wake() -> None:
        engine.wake()

    async def approvals() -> None:
        await controls.expire_approvals(engine.clock())
        escalate = getattr(controls, "escalate_approvals", None)
        if escalate is not None:
            await escalate(engine.clock())

    async def schedules() -> None:
        if await controls.fire_schedules(engine.clock()):
            engine.wake()

    sched.add_job(wake, "interval", seconds=tick, id="wake", **opts)
    sched.add_job(_guarded("approvals", approvals), "interval", seconds=housekeeping, id="approvals", **opts)
    sched.add_job(_guarded("schedules", schedules), "interval", seconds=housekeeping, id="schedules", **opts)
    if prune is not None and prune_every > 0:
        sched.add_job(_guarded("prune", lambda: prune(engine.clock())), "interval", seconds=prune_every,
                      id="prune", **opts)  # fmt: skip
    return sched
