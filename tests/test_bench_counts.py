"""The engine benchmark reports only what became of its own tasks."""

from __future__ import annotations

from sqlalchemy import update

from bot.bench import succeeded
from tasks.db import Database
from tasks.models import Task
from tasks.store import NewTask, Store


async def test_the_engine_bench_counts_only_its_own_tasks(db: Database) -> None:
    store = Store(db)
    for key in ("tp-abc-1", "tp-abc-2", "tp-abcd-1", "other-1"):
        await store.create_task(NewTask("bench", "", key, "bench", None, playbook="noop"))
    task = Task.__table__  # type: ignore[attr-defined]
    await db.run(
        lambda tx: tx.conn.execute(update(task).where(task.c.dedupe_key != "tp-abc-2").values(state="succeeded"))
    )
    assert await succeeded(db, "tp-abc") == 1
