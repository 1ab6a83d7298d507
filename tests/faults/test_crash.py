"""Crash tests (issue 2): real `cowork worker` processes killed with SIGKILL,
including between an effect and its checkpoint, then restarted. Every task
ends, nothing is lost, no effect happens twice. The 100-kill version is
`python -m tests.faults crash` (see docs/deployment.md for its figures)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tasks.engine.faults import parse
from tasks.store.db import Database
from tasks.store.store import Store
from tests.faults.audit import read_books
from tests.faults.crash import CrashPlan, Progress, enqueue, run_crash, write_setup
from tests.faults.fleet import Fleet, base_env
from tests.faults.recorder import recorder


def test_fault_spec_names_points_and_probabilities() -> None:
    assert parse("crash_after_effect:0.25, crash_other") == {"after_effect": 0.25, "other": 1.0}
    assert parse("") == {}
    assert parse("slow:3") == {}


async def _until_exit(fleet: Fleet, name: str, within: float) -> int:
    deadline = time.monotonic() + within
    while (code := fleet.procs[name].poll()) is None:
        assert time.monotonic() < deadline, f"{name} did not die"
        await asyncio.sleep(0.1)
    return code


@pytest.mark.slow
async def test_worker_killed_between_effect_and_checkpoint_posts_once_after_restart(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with recorder() as rec:
        fleet = Fleet(tmp_path, base_env(DATABASE_URL=sqlite_url, **write_setup(tmp_path, rec.url)))
        fleet.web("web")  # delivers the posts
        db = Database(sqlite_url)
        progress = Progress(sqlite_url)
        try:
            await enqueue(Store(db), 0, 1)
            fleet.worker("w0", COWORK_FAULT="crash_after_effect:1")
            assert await _until_exit(fleet, "w0", 30) == -9  # killed itself after the first post
            after_crash = read_books(sqlite_url, 1)
            assert after_crash.intents[(1, "first")] == 1 and not after_crash.succeeded
            assert after_crash.messages == {}  # the post's outbox row dies with its checkpoint
            fleet.worker("w0")
            await progress.until_done(30)
        finally:
            fleet.stop()
            db.close()
            progress.close()
    books = read_books(sqlite_url, 1)
    assert books.problems(rec.hits) == []
    assert books.states == {"succeeded": 1}
    assert books.reconciled == 1 and books.intents[(1, "first")] == 2
    assert rec.hits == {"task-1-hook": 1}


@pytest.mark.slow
@pytest.mark.postgres
async def test_sigkilled_workers_on_postgres_end_every_task_without_repeating_an_effect(
    pg_url: str, tmp_path: Path
) -> None:
    plan = CrashPlan(tasks=20, workers=2, kills=3, fault=0.05, within=60, seed=11)
    out = await run_crash(pg_url, tmp_path, plan)
    assert out["problems"] == []
    assert out["sigkills"] >= 3 and out["tasks"] == 20
    assert out["lease_takeovers"] > 0


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_workers_on_postgres_never_run_a_step_twice(pg_url: str, tmp_path: Path) -> None:
    plan = CrashPlan(tasks=24, workers=2, kills=0, fault=0, within=60, worker_tasks=4)
    out = await run_crash(pg_url, tmp_path, plan)
    books = read_books(pg_url, 24)
    assert out["problems"] == [] and books.states == {"succeeded": 24}
    assert set(books.intents.values()) == {1} and len(books.intents) == 72
    assert set(books.succeeded.values()) == {1} and len(books.succeeded) == 72
    assert books.takeovers == 0
    actors = _step_actors(pg_url)
    assert len(actors) == 2, "both workers took a share of the tasks"


def _step_actors(url: str) -> set[str]:
    from sqlalchemy import create_engine, text

    from tasks.store.db import normalize_url

    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT DISTINCT actor FROM event WHERE kind = 'step.succeeded'"))
        got = {str(a) for (a,) in rows}
    engine.dispose()
    return got
