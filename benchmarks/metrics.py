"""GET /metrics latency with 50,000 tasks (and 150,000 steps), on PostgreSQL
and SQLite, through a real `cowork` web app on loopback. Prints JSON.

`python -m benchmarks.metrics [--tasks 50000] [--no-sqlite] [--no-postgres]`

"scrape" is what Prometheus sees (the latest snapshot, fresh when it can be read
within the reader's budget); "read" is one full read of the database figures,
done on the reader's own connection and thread, off the intake path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, literal, select, update

from benchmarks.databases import POSTGRES, fresh_postgres, fresh_sqlite, machine, percentile, queue_tasks
from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.web.server import make_app
from tasks.rules.clock import utcnow
from tasks.store.db import Database
from tasks.store.models import STEP, TASK
from tasks.store.tx import Tx

SCRAPES = 40


def _fill(url: str, tasks: int) -> None:
    """`tasks` tasks, half of them finished, each with three finished steps."""
    db = Database(url)
    try:
        now = utcnow()
        queue_tasks(db, tasks, uuid.uuid4().hex[:6], now)
        cols = ["task_id", "key", "skill", "position", "state", "attempts", "tokens", "cost", "started_at",
                "finished_at"]  # fmt: skip
        for n, key in enumerate(("one", "two", "three")):
            done = now + timedelta(milliseconds=40 * n)
            rows = select(TASK.c.id, literal(key), literal("wait"), literal(n), literal("succeeded"), literal(1),
                          literal(0), literal(0.0), literal(now), literal(done))  # fmt: skip
            stmt = insert(STEP).from_select(cols, rows)
            db.run_sync(partial(_execute, stmt))
        db.run_sync(lambda tx: tx.conn.execute(update(TASK).where(TASK.c.id % 2 == 0).values(state="succeeded")))
        if db.dialect.name != "sqlite":
            db.run_sync(lambda tx: tx.conn.exec_driver_sql("ANALYZE"))
    finally:
        db.close()


def _execute(stmt: Any, tx: Tx) -> None:
    tx.conn.execute(stmt)


async def _scrapes(url: str) -> dict[str, Any]:
    runtime = Runtime(Settings(database_url=url, console=False))
    try:
        async with TestClient(TestServer(make_app(runtime, console=False))) as client:
            reader = runtime.metrics.reader  # type: ignore[attr-defined]
            reads = []
            for _ in range(5):
                t0 = time.perf_counter()
                await reader.refresh(utcnow())
                reads.append((time.perf_counter() - t0) * 1000)
            scrapes = []
            for _ in range(SCRAPES):
                t0 = time.perf_counter()
                resp = await client.get("/metrics")
                await resp.read()
                scrapes.append((time.perf_counter() - t0) * 1000)
                assert resp.status == 200
                await asyncio.sleep(0.05)
            reader.min_interval = 0.0  # every scrape starts a read: the worst case for the scrape
            busy = []
            for _ in range(SCRAPES // 2):
                t0 = time.perf_counter()
                await (await client.get("/metrics")).read()
                busy.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.05)
    finally:
        runtime.close()
    return {"scrape_p50_ms": percentile(scrapes, 0.5), "scrape_p99_ms": percentile(scrapes, 0.99),
            "scrape_while_reading_p50_ms": percentile(busy, 0.5),
            "scrape_while_reading_p99_ms": percentile(busy, 0.99),
            "read_p50_ms": percentile(reads, 0.5), "read_max_ms": round(max(reads), 3)}  # fmt: skip


def run(tasks: int, sqlite: bool, postgres: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": machine(), "tasks": tasks, "steps": tasks * 3}
    if postgres:
        with fresh_postgres(postgres) as url:
            _fill(url, tasks)
            out["postgresql"] = asyncio.run(_scrapes(url))
    if sqlite:
        with fresh_sqlite() as url:
            _fill(url, tasks)
            out["sqlite"] = asyncio.run(_scrapes(url))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    print(json.dumps(run(args.tasks, not args.no_sqlite, None if args.no_postgres else args.postgres), indent=2))


if __name__ == "__main__":
    main()
