"""The engine benchmark: it reports only what became of its own tasks, and its
engine is set up as `cowork worker` sets itself up (start-up objects out of the
garbage collector's view)."""

from __future__ import annotations

import gc

from sqlalchemy import update

from benchmarks.engine import noop_engine, succeeded
from tasks.rules.clock import utcnow
from tasks.store.db import Database
from tasks.store.models import TASK
from tasks.store.store import NewTask, Store


async def test_the_engine_bench_counts_only_its_own_tasks(db: Database) -> None:
    store = Store(db)
    for key in ("tp-abc-1", "tp-abc-2", "tp-abcd-1", "other-1"):
        await store.create_task(NewTask("bench", "", key, "bench", None, playbook="noop"), utcnow())
    task = TASK
    await db.run(
        lambda tx: tx.conn.execute(update(task).where(task.c.dedupe_key != "tp-abc-2").values(state="succeeded"))
    )
    assert await succeeded(db, "tp-abc") == 1


async def test_the_bench_engine_is_set_up_with_the_start_up_heap_frozen(db: Database) -> None:
    gc.unfreeze()
    try:
        noop_engine(db, "bench")
        assert gc.get_freeze_count() > 10_000  # modules, tables, skills, playbooks
    finally:
        gc.unfreeze()
