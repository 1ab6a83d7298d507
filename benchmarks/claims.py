"""How long a claim takes with a backlog of 1k, 10k and 50k queued tasks, and
once the queue has drained; with the plan the database chose. Prints JSON.

`python -m benchmarks.claims [--sizes 1000,10000,50000] [--batch 256] [--no-sqlite] [--no-postgres]`

Each claim is `Store.claim_rows` for `--batch` tasks (256 as in issue 17; a
worker's default is 64), timed as the engine sees it
(through the database thread). After each claim the claimed tasks are finished
and as many new ones queued, untimed, so the backlog stays the same size and
the table collects the dead rows a real drain leaves behind. "drained" is
claims on the same table after every task finished (no VACUUM in between).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from sqlalchemy import update

from benchmarks.databases import POSTGRES, fresh_postgres, fresh_sqlite, machine, percentile, queue_tasks
from tasks.rules.clock import utcnow
from tasks.store.db import Database
from tasks.store.models import TASK
from tasks.store.statements import explain_claim
from tasks.store.store import Store

CLAIMS = 30


def _finish(db: Database, ids: list[int]) -> None:
    db.run_sync(lambda tx: tx.conn.execute(
        update(TASK).where(TASK.c.id.in_(ids)).values(state="succeeded", lease_holder=None, lease_expires_at=None)
    ))  # fmt: skip


def _finish_all(db: Database) -> None:
    db.run_sync(lambda tx: tx.conn.execute(
        update(TASK).where(TASK.c.state != "succeeded").values(state="succeeded", lease_holder=None)
    ))  # fmt: skip


def _analyze(db: Database) -> None:
    """Planner statistics, as autovacuum would have gathered them by now on a live system."""
    db.run_sync(lambda tx: tx.conn.exec_driver_sql("ANALYZE task"))


async def _timed_claims(db: Database, batch: int, refill: str | None) -> tuple[list[float], int]:
    store = Store(db)
    timings: list[float] = []
    claimed = 0
    for n in range(CLAIMS):
        t0 = time.perf_counter()
        tasks = await store.claim_rows("bench", batch, 30.0, utcnow())
        timings.append((time.perf_counter() - t0) * 1000)
        claimed += len(tasks)
        if tasks:
            _finish(db, [t.id for t in tasks if t.id is not None])
            if refill is not None:
                queue_tasks(db, len(tasks), f"{refill}-{n}", utcnow())
    return timings, claimed


def measure(url: str, backlog: int, batch: int, plan: bool) -> dict[str, Any]:
    db = Database(url)
    try:
        tag = uuid.uuid4().hex[:6]
        queue_tasks(db, backlog, tag, utcnow())
        _analyze(db)
        queued, claimed = asyncio.run(_timed_claims(db, batch, f"{tag}-r"))
        out: dict[str, Any] = {"backlog": backlog, "claimed": claimed, "claim_p50_ms": percentile(queued, 0.5),
                               "claim_p99_ms": percentile(queued, 0.99)}  # fmt: skip
        if plan:
            out["plan"] = db.run_sync(lambda tx: explain_claim(tx, utcnow(), batch))
        _finish_all(db)
        drained, _ = asyncio.run(_timed_claims(db, batch, None))
        out["drained_p50_ms"], out["drained_p99_ms"] = percentile(drained, 0.5), percentile(drained, 0.99)
        if plan:
            out["drained_plan"] = db.run_sync(lambda tx: explain_claim(tx, utcnow(), batch))
        return out
    finally:
        db.close()


def run(sizes: list[int], batch: int, sqlite: bool, postgres: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": machine(), "batch": batch, "claims_per_size": CLAIMS}
    largest = max(sizes)
    if postgres:
        results = []
        for n in sizes:
            with fresh_postgres(postgres) as url:
                results.append(measure(url, n, batch, plan=n == largest))
        out["postgresql"] = results
    if sqlite:
        results = []
        for n in sizes:
            with fresh_sqlite() as url:
                results.append(measure(url, n, batch, plan=n == largest))
        out["sqlite"] = results
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(json.dumps(run(sizes, args.batch, not args.no_sqlite, None if args.no_postgres else args.postgres), indent=2))


if __name__ == "__main__":
    main()
