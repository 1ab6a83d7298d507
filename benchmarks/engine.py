"""`cowork bench`: engine overhead per checkpointed step and throughput of
no-op 3-step tasks, on SQLite in one process and on PostgreSQL with 1 and 2
worker processes. Prints JSON. Durability is not traded for speed: SQLite runs
WAL with synchronous=NORMAL (every commit survives a process crash), and every
checkpoint is committed before the next step starts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tasks.engine.engine import Engine, EngineConfig
from tasks.planning.planner import PlanSource
from tasks.planning.playbooks import load_playbooks, shipped_folder
from tasks.rules.clock import utcnow
from tasks.skills.base import SkillRegistry
from tasks.skills.core import core_skills
from tasks.store.checkpoints import Checkpoints
from tasks.store.db import Database
from tasks.store.schema import upgrade
from tasks.store.store import NewTask, Store


def _engine(db: Database, name: str, **config: Any) -> Engine:
    registry = SkillRegistry(core_skills())
    books = load_playbooks([shipped_folder()], registry.names())
    return Engine(Store(db), registry, PlanSource(books), config=EngineConfig(name=name, **config))


async def _enqueue(db: Database, n: int, tag: str) -> None:
    store = Store(db)
    for start in range(0, n, 500):
        await asyncio.gather(*(
            store.create_task(NewTask(platform="bench", tenant="", dedupe_key=f"{tag}-{i}", requester="bench",
                                      conversation=None, playbook="noop", params={}), utcnow())
            for i in range(start, min(n, start + 500))
        ))  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def step_overhead(url: str, tasks: int = 200) -> dict[str, float]:
    """One task at a time: how long the engine takes to checkpoint one step."""
    db = Database(url)
    engine = _engine(db, "bench-seq", max_tasks=1, claim_batch=1)
    timings: list[float] = []
    original = Checkpoints.checkpoint

    async def timed(self: Checkpoints, *a: Any, **kw: Any) -> None:
        t0 = time.perf_counter()
        await original(self, *a, **kw)
        timings.append((time.perf_counter() - t0) * 1000)

    engine.checkpoints.checkpoint = timed.__get__(engine.checkpoints)  # type: ignore[method-assign]
    await _enqueue(db, tasks, f"seq-{uuid.uuid4().hex[:6]}")
    t0 = time.perf_counter()
    await engine.drain(rounds=tasks * 4)
    wall = time.perf_counter() - t0
    db.close()
    return {"checkpoint_p50_ms": round(_pct(timings, 0.5), 3), "checkpoint_p99_ms": round(_pct(timings, 0.99), 3),
            "step_wall_ms": round(wall * 1000 / (tasks * 3), 3), "steps": len(timings)}  # fmt: skip


async def throughput_in_process(url: str, tasks: int) -> dict[str, float]:
    db = Database(url)
    await _enqueue(db, tasks, f"tp-{uuid.uuid4().hex[:6]}")
    engine = _engine(db, "bench-1", max_tasks=256, claim_batch=256, max_steps=512)
    t0 = time.perf_counter()
    await engine.drain(rounds=tasks)
    wall = time.perf_counter() - t0
    counts = await Store(db).counts_by_state()
    db.close()
    return {"tasks": tasks, "seconds": round(wall, 3), "tasks_per_second": round(tasks / wall, 1),
            "succeeded": counts.get("succeeded", 0)}  # fmt: skip


def throughput_processes(url: str, tasks: int, workers: int) -> dict[str, float]:
    """Worker processes drain the queue together; timed from a common start signal."""
    db = Database(url)
    asyncio.run(_enqueue(db, tasks, f"mp-{uuid.uuid4().hex[:6]}"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "benchmarks.engine", "worker", url]
    procs = [subprocess.Popen([*command, f"w{i}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for i in range(workers)]  # fmt: skip
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    turns = [int((p.communicate()[0] or "0").strip() or 0) for p in procs]
    wall = time.perf_counter() - t0
    counts = asyncio.run(Store(db).counts_by_state())
    db.close()
    return {"workers": workers, "tasks": tasks, "seconds": round(wall, 3),
            "tasks_per_second": round(tasks / wall, 1), "succeeded": counts.get("succeeded", 0),
            "turns": sum(turns)}  # fmt: skip


async def _worker_main(url: str, name: str) -> None:
    db = Database(url)
    engine = _engine(db, name, max_tasks=256, claim_batch=128, max_steps=512)
    await Store(db).counts_by_state()  # connect before the clock starts
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    n = await engine.drain(rounds=10**6)
    db.close()
    print(n, flush=True)


def _fresh_pg(admin_url: str) -> str:
    import psycopg

    name = f"cowork_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    upgrade(url)
    return url


def _drop_pg(admin_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def run_bench(*, tasks: int = 2000, postgres: str | None = None, workers: list[int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'bench.db'}"
        upgrade(url)
        out["sqlite_step_overhead"] = asyncio.run(step_overhead(url))
        out["sqlite_one_process"] = asyncio.run(throughput_in_process(url, tasks))
    if postgres:
        for label in ("postgres_step_overhead",):
            u = _fresh_pg(postgres)
            try:
                out[label] = asyncio.run(step_overhead(u))
            finally:
                _drop_pg(postgres, u)
        for n in workers or [1, 2]:
            u = _fresh_pg(postgres)
            try:
                out[f"postgres_{n}_workers"] = throughput_processes(u, tasks, n)
            finally:
                _drop_pg(postgres, u)
    return out


def main(argv: list[str]) -> int:
    """`python -m benchmarks.engine [--tasks N] [--postgres URL] [--workers N ...]`: prints JSON
    (the same as `cowork bench`)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=2000, help="no-op 3-step tasks per run")
    p.add_argument("--postgres", help="also measure on this PostgreSQL URL (a scratch database)")
    p.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="worker processes on PostgreSQL")
    args = p.parse_args(argv)
    print(json.dumps(run_bench(tasks=args.tasks, postgres=args.postgres, workers=args.workers), indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "worker":
        asyncio.run(_worker_main(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(main(sys.argv[1:]))
