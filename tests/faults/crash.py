"""The crash scenario (issue 2): worker processes killed with SIGKILL at random
moments, and killing themselves between an effect and its checkpoint
(COWORK_FAULT=crash_after_effect:p, see tasks/engine/faults.py), then restarted.

Every task posts a message (chat.post: an outbox row, delivered to the console
by a web process), calls a webhook (a loopback recorder in this process) and
posts again. Afterwards the books must
show every task ended, no step succeeded twice, no message or webhook call
made twice, and every message of a succeeded step made exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tasks.rules.clock import utcnow
from tasks.store.db import Database, normalize_url
from tasks.store.store import NewTask, Store
from tests.faults.audit import FINAL_STATES, read_books
from tests.faults.fleet import Fleet, base_env
from tests.faults.recorder import Recorder, recorder

PLAYBOOK = """\
name: crashtest
description: post, call a webhook, post again
params:
  n: {type: string}
steps:
  - {key: first, skill: chat.post, args: {text: "first {{ n }}"}}
  - key: hook
    skill: webhook.call
    args: {webhook: recorder, payload: {n: "{{ n }}"}}
    depends_on: [first]
  - {key: last, skill: chat.post, args: {text: "last {{ n }}"}, depends_on: [hook]}
"""


@dataclass(frozen=True)
class CrashPlan:
    tasks: int = 40
    workers: int = 2
    kills: int = 10  # SIGKILLs from outside
    fault: float = 0.05  # chance of a self-kill after each effect, until the kills are done
    kill_every: tuple[float, float] = (0.3, 1.5)
    within: float = 300.0
    seed: int | None = None
    worker_tasks: int = 64  # COWORK_WORKER_TASKS: tasks one worker holds at once
    hang: float = 0.2  # the webhook takes this long to answer: tasks are in flight for a while


def write_setup(folder: Path, webhook_url: str, extra_policy: str = "") -> dict[str, str]:
    """A playbook folder and a policy (no approvals; the recorder as a webhook)."""
    books = folder / "playbooks"
    books.mkdir(parents=True, exist_ok=True)
    (books / "crashtest.yaml").write_text(PLAYBOOK)
    policy = folder / "policy.yaml"
    policy.write_text(
        "defaults: {approval_effects: []}\n"
        f"webhooks: {{recorder: '{webhook_url}'}}\n"
        "http: {timeout_seconds: 5}\n" + extra_policy
    )
    return {"COWORK_POLICY": str(policy), "COWORK_PLAYBOOKS": str(books)}


async def enqueue(store: Store, start: int, stop: int, tag: str = "crash") -> None:
    # Console tasks: a web process (`serve --no-worker`) delivers their posts, as in production.
    conv = {"platform": "console", "tenant": "T1", "channel": "general", "thread": "1.0"}
    await asyncio.gather(*(
        store.create_task(NewTask(platform="console", tenant="T1", dedupe_key=f"{tag}-{i}",
                                  requester="U1", conversation=conv, playbook="crashtest",
                                  params={"n": str(i)}), utcnow())
        for i in range(start, stop)
    ))  # fmt: skip


class Progress:
    """How many tasks have not ended, read from the database."""

    def __init__(self, url: str):
        self.engine = create_engine(normalize_url(url))

    def _count(self, where: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM task WHERE {where}")).scalar_one())

    def _unfinished(self) -> int:
        return self._count(f"state NOT IN ({', '.join(repr(s) for s in sorted(FINAL_STATES))})")

    async def unfinished(self) -> int:
        return await asyncio.to_thread(self._unfinished)

    def _started(self) -> int:
        return self._count("state <> 'queued'")

    async def until_started(self, within: float) -> None:
        """Until a worker has taken up some task (the processes have booted)."""
        t0 = time.monotonic()
        while not await asyncio.to_thread(self._started):
            if time.monotonic() - t0 > within:
                raise TimeoutError(f"no worker started any task within {within:g}s")
            await asyncio.sleep(0.1)

    async def until_done(self, within: float) -> float:
        """Seconds until no task is left unfinished (raises TimeoutError)."""
        t0 = time.monotonic()
        while await self.unfinished():
            if time.monotonic() - t0 > within:
                raise TimeoutError(f"tasks still unfinished after {within:g}s")
            await asyncio.sleep(0.2)
        return time.monotonic() - t0

    def _holders(self) -> list[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT DISTINCT lease_holder FROM task WHERE lease_holder IS NOT NULL"))
            return [int(str(h).rsplit(":", 1)[1]) for (h,) in rows]

    async def holders(self) -> list[int]:
        """Process ids of the workers holding a lease now."""
        return await asyncio.to_thread(self._holders)

    def close(self) -> None:
        self.engine.dispose()


async def run_crash(url: str, folder: Path, plan: CrashPlan) -> dict[str, Any]:
    async with recorder() as rec:
        env = base_env(DATABASE_URL=url, **write_setup(folder, rec.url))
        fleet = Fleet(folder, env)
        fleet.web("web")  # delivers the posts: a post's step is done when it was delivered
        db = Database(url)
        progress = Progress(url)
        try:
            return await _crash(fleet, Store(db), progress, rec, plan, url)
        finally:
            fleet.stop()
            db.close()
            progress.close()


class CrashRun:
    """One scenario's moving parts: kill, restart, feed work, count."""

    def __init__(self, fleet: Fleet, store: Store, progress: Progress, plan: CrashPlan):
        self.fleet, self.store, self.progress, self.plan = fleet, store, progress, plan
        self.rnd = random.Random(plan.seed)
        self.fault = {"COWORK_FAULT": f"crash_after_effect:{plan.fault}"} if plan.fault else {}
        self.names = [f"w{i}" for i in range(plan.workers)]
        self.enqueued = 0
        self.self_kills = 0
        fleet.env["COWORK_WORKER_TASKS"] = str(plan.worker_tasks)

    async def feed(self, n: int) -> None:
        stop = min(self.plan.tasks, self.enqueued + n)
        await enqueue(self.store, self.enqueued, stop)
        self.enqueued = stop

    async def kill_round(self) -> None:
        """Kill a worker that holds a lease right now (mid-task), or any live one."""
        await asyncio.sleep(self.rnd.uniform(*self.plan.kill_every))
        dead = self.fleet.dead()
        self.self_kills += len(dead)  # every worker was alive after the last round
        alive = {self.fleet.procs[n].pid: n for n in self.names if n not in dead}
        holding: list[str] = []
        deadline = time.monotonic() + 3.0  # a fast engine may be between tasks: wait for one in flight
        while not holding and time.monotonic() < deadline:
            holding = [alive[pid] for pid in await self.progress.holders() if pid in alive]
            if not holding:
                await asyncio.sleep(0.05)
        if holding or alive:
            self.fleet.kill(self.rnd.choice(holding or sorted(alive.values())))
        self.restart(self.fault)

    def restart(self, extra: dict[str, str]) -> None:
        for n in self.fleet.dead():
            if n in self.names:
                self.fleet.worker(n, **extra)

    async def run(self) -> float:
        """Kill until the plan's kills are done; the seconds the last drain took."""
        plan = self.plan
        await self.feed(plan.tasks // 2)
        for n in self.names:
            self.fleet.worker(n, **self.fault)
        t0 = time.monotonic()
        await self.progress.until_started(60)
        batch = max(1, (plan.tasks - self.enqueued) // max(1, plan.kills))
        while self.fleet.kills < plan.kills and time.monotonic() - t0 < plan.within:
            await self.feed(batch)  # work keeps arriving while workers die
            await self.kill_round()
        await self.feed(plan.tasks)
        self.self_kills += len(self.fleet.dead())
        if self.fault:  # one last kill of every worker still carrying the fault
            for n in self.names:
                self.fleet.kill(n)
        self.restart({})
        return await self.progress.until_done(max(10.0, plan.within - (time.monotonic() - t0)))


async def _crash(fleet: Fleet, store: Store, progress: Progress, rec: Recorder, plan: CrashPlan,
                 url: str) -> dict[str, Any]:  # fmt: skip
    t0 = time.monotonic()
    rec.hang_seconds = plan.hang
    run = CrashRun(fleet, store, progress, plan)
    drain = await run.run()
    books = read_books(url, plan.tasks)
    return {
        **books.counts(),
        "workers": plan.workers,
        "sigkills": fleet.kills,
        "self_kills_after_effect": run.self_kills,
        "worker_starts": fleet.starts,
        "webhook_calls": sum(rec.hits.values()),
        "webhook_called_twice": len(rec.twice()),
        "seconds": round(time.monotonic() - t0, 1),
        "drain_seconds_after_last_kill": round(drain, 1),
        "problems": books.problems(rec.hits),
    }
