"""Group commit: the units of work an event loop submits in one pass commit as
one batch, and the database thread wakes that loop once per batch, not once
per unit."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tasks.store.db import Database
from tasks.store.tx import Tx
from tests.conftest import Clock
from tests.fakes.engine_harness import Harness

pytestmark = pytest.mark.timeout(60)


async def test_units_submitted_in_one_pass_commit_together_and_wake_the_loop_once(db: Database) -> None:
    await db.run(lambda tx: None)  # the database thread is up
    batches, wakes = db.batches, db.wakes
    results = await asyncio.gather(*(db.run(lambda tx, i=i: i) for i in range(100)))
    assert results == list(range(100))
    assert (db.batches - batches, db.wakes - wakes) == (1, 1)


async def test_units_of_one_pass_go_together_even_when_the_pass_is_slow(db: Database) -> None:
    await db.run(lambda tx: None)
    batches, wakes = db.batches, db.wakes

    async def submit(i: int) -> int:
        if i == 1:
            threading.Event().wait(0.05)  # work that holds the loop and lets go of the GIL: the database thread is free
        return await db.run(lambda tx: i)

    assert await asyncio.gather(*(submit(i) for i in range(10))) == list(range(10))
    assert (db.batches - batches, db.wakes - wakes) == (1, 1)


async def test_a_failing_unit_gets_its_own_error_and_the_loop_is_still_woken_once(db: Database) -> None:
    await db.run(lambda tx: None)
    wakes = db.wakes

    def unit(i: int) -> object:
        def run(tx: Tx) -> int:
            if i == 3:
                raise ValueError("unit 3 fails")
            return i

        return run

    results = await asyncio.gather(*(db.run(unit(i)) for i in range(6)), return_exceptions=True)
    assert [r if isinstance(r, int) else str(r) for r in results] == [0, 1, 2, "unit 3 fails", 4, 5]
    assert db.wakes - wakes == 1


async def test_the_engine_wakes_its_loop_once_per_committed_batch_not_per_unit(db: Database, clock: Clock) -> None:
    h = Harness(db, clock)
    steps = [{"key": "one", "skill": "wait", "args": {"seconds": 0}},
             {"key": "two", "skill": "wait", "args": {"seconds": 0}, "depends_on": ["one"]},
             {"key": "three", "skill": "wait", "args": {"seconds": 0}, "depends_on": ["two"]}]  # fmt: skip
    ids = [await h.submit(steps=steps, key=f"n{i}") for i in range(40)]
    batches, units, wakes = db.batches, db.units, db.wakes
    await h.drain()
    assert {(await h.store.get_task(i)).state for i in ids} == {"succeeded"}  # type: ignore[union-attr]
    done_units, done_batches, done_wakes = db.units - units, db.batches - batches, db.wakes - wakes
    assert done_units >= 40 * 4  # plan and three checkpoints each, at least
    assert done_wakes == done_batches  # one wake per batch
    assert done_wakes * 3 <= done_units  # the units the tasks submit in one pass go together
