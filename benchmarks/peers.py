"""Cowork against a peer queue, procrastinate, on the same PostgreSQL in the
same run: no-op tasks of three durable steps, one worker process each. Prints
JSON with both rates and their ratio.

`pip install -e '.[peers]'`, then `python -m benchmarks.peers [--tasks 2000]`

Cowork: the `noop` playbook (three `wait 0` steps, each checkpointed), drained
by one `cowork` worker process (benchmarks.engine). procrastinate: a chain of three
jobs per task, each job deferring the next (a step boundary procrastinate
makes durable), run by one worker at each `--concurrency` (its best is the one
compared), until every chain has finished. Each runs in a database of its own
on the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from benchmarks.databases import POSTGRES, fresh_postgres, machine
from benchmarks.engine import throughput_processes

STEPS = 3


async def _procrastinate(url: str, tasks: int, concurrency: int) -> dict[str, Any]:
    import procrastinate

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo, max_size=concurrency + 4))

    @app.task(name="step")
    async def step(n: int, chain: int) -> None:
        if n < STEPS:
            await step.defer_async(n=n + 1, chain=chain)

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, tasks, 1000):
            chains: list[dict[str, Any]] = [{"n": 1, "chain": i} for i in range(start, min(tasks, start + 1000))]
            await step.batch_defer_async(*chains)
        t0 = time.perf_counter()
        while await _left(app):  # a worker that caught up may stop before the chains' next jobs are deferred
            await app.run_worker_async(concurrency=concurrency, wait=False, fetch_job_polling_interval=0.05)
        wall = time.perf_counter() - t0
        done = await app.connector.execute_query_one_async(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'succeeded' AND (args->>'n')::int = %(n)s",
            n=STEPS,
        )
    return {"tasks": tasks, "concurrency": concurrency, "seconds": round(wall, 3),
            "tasks_per_second": round(tasks / wall, 1), "succeeded": int(done["n"])}  # fmt: skip


async def _left(app: Any) -> int:
    row = await app.connector.execute_query_one_async(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
    )
    return int(row["n"])


def run(tasks: int, postgres: str, concurrency: list[int]) -> dict[str, Any]:
    """procrastinate at each concurrency; the ratio is against its best."""
    out: dict[str, Any] = {"machine": machine(), "steps_per_task": STEPS}
    with fresh_postgres(postgres) as url:
        out["cowork"] = throughput_processes(url, tasks, 1)
    runs = []
    for n in concurrency:
        with fresh_postgres(postgres) as url:
            runs.append(asyncio.run(_procrastinate(url, tasks, n)))
    out["procrastinate"] = runs
    best = max(r["tasks_per_second"] for r in runs)
    out["cowork_over_procrastinate"] = round(out["cowork"]["tasks_per_second"] / best, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", default="4,32", help="procrastinate worker concurrency, one run each")
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    concurrency = [int(n) for n in args.concurrency.split(",")]
    print(json.dumps(run(args.tasks, args.postgres, concurrency), indent=2))


if __name__ == "__main__":
    main()
