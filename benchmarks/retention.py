"""`python -m benchmarks.retention`: the database size under steady load, with
and without pruning, side by side. Prints JSON.

A moved clock stands in for the days: every simulated hour a fixed number of
tasks arrive (three in four the `noop` playbook, one in four `announce`,
which waits an hour for its approval), each with a console message; the
engine runs them, the outbox is delivered (cards kept in the `card` table, the
console transcript written and edited as the console does), and, in the
pruned run, one background prune round runs (`bot.ops.prune.background`, the
worker's job) with short windows. Every `--sample` hours the database size
(SQLite: the file after a WAL checkpoint; PostgreSQL: the tables' total
relation size, before and after a plain VACUUM, which stands in for
autovacuum: it runs on wall-clock time and cannot keep up with simulated
days) and the row counts are recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bot.ops.prune import background
from tasks.engine.controls import Controls
from tasks.engine.engine import Engine, EngineConfig
from tasks.planning.planner import PlanSource
from tasks.planning.playbooks import load_playbooks, shipped_folder
from tasks.rules.approvals import Approver
from tasks.rules.retention import Retention
from tasks.skills.base import SkillRegistry
from tasks.skills.core import core_skills
from tasks.store.db import Database
from tasks.store.models import TABLES, table_of
from tasks.store.outbox import Outboxes
from tasks.store.pruning import Pruner
from tasks.store.schema import upgrade
from tasks.store.store import NewTask, Store
from tasks.store.transcript import Transcript
from tasks.store.tx import Tx

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CONV: dict[str, Any] = {"platform": "console", "tenant": "", "channel": "general", "thread": None, "extra": {}}


@dataclass
class Load:
    days: float = 10.0
    per_hour: int = 20
    sample_hours: int = 24
    retention: Retention = Retention(task_days=2, outbox_days=1, transcript_days=2)
    round_limit: int = 10_000


class MovedClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Steady:
    """One database under the steady load."""

    def __init__(self, db: Database, clock: MovedClock):
        registry = SkillRegistry(core_skills())
        books = load_playbooks([shipped_folder()], registry.names())
        self.db, self.clock = db, clock
        self.store = Store(db)
        self.controls = Controls(self.store)
        self.outbox = Outboxes(self.store)
        self.transcript = Transcript(db)
        self.engine = Engine(self.store, registry, PlanSource(books), clock=clock,
                             config=EngineConfig(name="soak", max_tasks=256, claim_batch=256))  # fmt: skip
        self.waiting: list[int] = []
        self.posted: dict[str, int] = {}
        self.n = 0

    async def hour(self, per_hour: int) -> None:
        now = self.clock()
        approve, self.waiting = self.waiting, []
        for _ in range(per_hour):
            self.n += 1
            announce = self.n % 4 == 0
            new = NewTask(platform="console", tenant="", dedupe_key=f"soak-{self.n}", requester="alice",
                          conversation=CONV, text=f"task {self.n}", playbook="announce" if announce else "noop",
                          params={"channel": "general", "text": "hello"} if announce else {})  # fmt: skip
            task_id, _ = await self.store.create_task(new, now)
            await self.transcript.add(channel="general", user="alice", text=f"task {self.n}", now=now)
            if announce:
                self.waiting.append(task_id)
        await self.engine.drain()
        for task_id in approve:  # last hour's announcements, approved an hour later
            for a in (await self.store.view(task_id)).approvals:
                await self.controls.decide(a.id or 0, Approver("console", "", "alice"), True, now)
        await self.engine.drain()
        await self.deliver(now)

    async def deliver(self, now: datetime) -> None:
        """What the console's delivery does: a first post writes a transcript
        message, a card update edits it."""
        while claimed := await self.outbox.claim(now, limit=500):
            for c in claimed:
                key = c.row.card_key or f"outbox:{c.row.id}"
                if key in self.posted:
                    await self.transcript.update(self.posted[key], text="card", card=None, html="<p>card</p>", now=now)
                else:
                    msg = await self.transcript.add(channel="general", user="cowork", html="<p>card</p>",
                                                    key=key, now=now)  # fmt: skip
                    self.posted[key] = msg.id or 0
                await self.outbox.sent(c.row.id or 0, {"id": self.posted[key]}, now)


def _rows(tx: Tx) -> dict[str, int]:
    out = {}
    for model in TABLES:
        table = table_of(model)
        out[table.name] = int(tx.conn.execute(select(func.count()).select_from(table)).scalar_one())
    return out


def _pg_bytes(tx: Tx) -> int:
    names = [table_of(m).name for m in TABLES]
    total = 0
    for name in names:
        total += int(tx.conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": name})
                     .scalar_one())  # fmt: skip
    return total


def _sqlite_bytes(url: str) -> int:
    path = make_url(url).database or ""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Path(path).stat().st_size


def _vacuum(url: str) -> None:
    """A plain VACUUM of Cowork's tables: what autovacuum does on its own, on
    wall-clock time (every minute at most), which a moved clock outruns."""
    import psycopg

    names = ", ".join(table_of(m).name for m in TABLES)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {names}")


async def sample(db: Database, url: str, hours: int) -> dict[str, Any]:
    rows = await db.run(_rows)
    out: dict[str, Any] = {"day": round(hours / 24, 2)}
    if db.dialect.name == "sqlite":
        out["db_bytes"] = _sqlite_bytes(url)
    else:
        out["db_bytes_before_vacuum"] = await db.run(_pg_bytes)
        _vacuum(url)
        out["db_bytes"] = await db.run(_pg_bytes)
    return {**out, "rows": rows}


async def soak(url: str, load: Load, *, prune: bool) -> dict[str, Any]:
    upgrade(url)
    db = Database(url)
    clock = MovedClock()
    steady = Steady(db, clock)
    pruner = Pruner(db, load.retention)
    prune_round = background(pruner, load.round_limit)
    samples: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    hours = int(load.days * 24)
    for h in range(1, hours + 1):
        await steady.hour(load.per_hour)
        if prune:
            await prune_round(clock())
        clock.now += timedelta(hours=1)
        if h % load.sample_hours == 0:
            samples.append(await sample(db, url, h))
    db.close()
    return {"pruning": prune, "tasks": steady.n, "wall_seconds": round(time.perf_counter() - t0, 1),
            "pruned_rows": dict(sorted(pruner.removed.items())), "samples": samples}  # fmt: skip


def _scratch(postgres: str | None, folder: Path, name: str) -> str:
    if postgres is None:
        return f"sqlite:///{folder / name}.db"
    import psycopg

    admin = postgres.replace("postgresql+psycopg", "postgresql")
    db = f"cowork_soak_{name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    return f"{admin.rsplit('/', 1)[0]}/{db}"


def _drop(postgres: str | None, url: str) -> None:
    if postgres is None:
        return
    import psycopg

    with psycopg.connect(postgres.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def side_by_side(load: Load, postgres: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"database": "postgresql" if postgres else "sqlite", "days": load.days,
                           "tasks_per_hour": load.per_hour, "retention_days": {
                               "tasks": load.retention.task_days, "outbox": load.retention.outbox_days,
                               "transcript": load.retention.transcript_days}}  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        for prune in (False, True):
            url = _scratch(postgres, Path(d), "pruned" if prune else "unpruned")
            try:
                out["with_pruning" if prune else "without_pruning"] = await soak(url, load, prune=prune)
            finally:
                _drop(postgres, url)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.retention", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=float, default=10.0, help="simulated days")
    p.add_argument("--per-hour", type=int, default=20, help="tasks arriving per simulated hour")
    p.add_argument("--sample", type=int, default=24, help="hours between samples")
    p.add_argument("--task-days", type=float, default=2.0)
    p.add_argument("--outbox-days", type=float, default=1.0)
    p.add_argument("--transcript-days", type=float, default=2.0)
    p.add_argument("--postgres", help="run on this PostgreSQL server (scratch databases) instead of SQLite")
    args = p.parse_args(argv)
    rules = Retention(task_days=args.task_days, outbox_days=args.outbox_days, transcript_days=args.transcript_days)
    load = Load(days=args.days, per_hour=args.per_hour, sample_hours=args.sample, retention=rules)
    print(json.dumps(asyncio.run(side_by_side(load, args.postgres)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
