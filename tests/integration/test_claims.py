"""The claim reads runnable tasks from the partial index `ix_task_ready`, in
claim order, on PostgreSQL and SQLite: its cost does not grow with the backlog."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from tasks.rules.clock import utcnow
from tasks.rules.states import CLAIMABLE, FINAL
from tasks.store.db import Database
from tasks.store.models import FINISHED, READY, TASK
from tasks.store.schema import upgrade
from tasks.store.statements import explain_claim
from tasks.store.store import Store

pytestmark = pytest.mark.timeout(120)


def _queue(db: Database, n: int, state: str = "queued", **values: object) -> None:
    now = utcnow()
    rows = [
        {"platform": "test", "tenant": "", "dedupe_key": f"{state}-{i}", "requester": "u", "requester_name": "",
         "text": "", "state": state, "created_at": now, "updated_at": now, "run_after": now, "tokens": 0,
         "cost": 0.0, "steps_run": 0, "version": 0, **values}
        for i in range(n)
    ]  # fmt: skip
    db.run_sync(lambda tx: tx.conn.execute(insert(TASK), rows))


def _plan(db: Database) -> str:
    if db.dialect.name != "sqlite":
        db.run_sync(lambda tx: tx.conn.exec_driver_sql("ANALYZE task"))
    return "\n".join(db.run_sync(lambda tx: explain_claim(tx, utcnow(), 256, analyze=False)))


def test_the_ready_predicate_names_the_claimable_states() -> None:
    assert READY.text == "state IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(CLAIMABLE)))
    assert FINISHED.text == "state IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(FINAL)))


async def test_the_claim_reads_the_ready_index_in_order_with_a_backlog(db: Database) -> None:
    _queue(db, 3000)
    _queue(db, 3000, "succeeded")  # finished work the claim must not read
    plan = _plan(db)
    assert "ix_task_ready" in plan, plan
    assert "Sort" not in plan and "Bitmap" not in plan and "TEMP B-TREE" not in plan, plan
    got = await Store(db).claim_rows("w", 256, 30.0, utcnow())
    assert len(got) == 256 and all(t.lease_holder == "w" for t in got)
    assert [t.id for t in got] == sorted(t.id for t in got)  # same run_after: oldest first


async def test_the_claim_reads_the_ready_index_once_drained(db: Database) -> None:
    _queue(db, 3000)
    db.run_sync(lambda tx: tx.conn.execute(update(TASK).values(state="succeeded")))  # the backlog ran
    _queue(db, 50, "running", run_after=utcnow() + timedelta(hours=1))  # sleeping until a timer
    plan = _plan(db)
    assert "ix_task_ready" in plan, plan
    assert "Seq Scan" not in plan and "ix_task_finished" not in plan and "TEMP B-TREE" not in plan, plan
    assert await Store(db).claim_rows("w", 256, 30.0, utcnow()) == []


async def test_a_leased_task_is_claimed_only_once_its_lease_lapses(db: Database) -> None:
    now = utcnow()
    _queue(db, 3, "running", lease_holder="other", lease_expires_at=now + timedelta(seconds=30))
    store = Store(db)
    assert await store.claim_rows("w", 10, 30.0, now) == []
    taken = await store.claim_rows("w", 10, 30.0, now + timedelta(seconds=31))
    assert len(taken) == 3 and {t.lease_holder for t in taken} == {"w"}
    events = await store.events()
    assert [e.kind for e in events] == ["lease.taken_over"] * 3


async def test_the_upgrade_gives_a_runnable_task_without_run_after_one_so_it_is_claimed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0005")
    db = Database(url)
    try:
        _queue(db, 1, "running", run_after=None)
        _queue(db, 1, "paused", run_after=None)
        upgrade(url)
        got = await Store(db).claim_rows("w", 10, 30.0, utcnow())
        assert [t.state for t in got] == ["running"]
        left = db.run_sync(lambda tx: tx.conn.execute(
            update(TASK).where(TASK.c.run_after.is_(None)).values(text="x").returning(TASK.c.state)
        ).scalars().all())  # fmt: skip
        assert left == ["paused"]  # only claimable tasks are given a time
    finally:
        db.close()
