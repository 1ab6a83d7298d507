"""Bounded storage on a real database (SQLite and PostgreSQL): a prune removes
exactly the rows the retention rules name, in bounded transactions, exports
the audit trail first; its dry run writes nothing; a worker runs it on its
scheduler; `cowork db prune` from the shell."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import generate_latest
from sqlalchemy import insert, select

from bot.assembly.config import Settings
from bot.assembly.runtime import Runtime
from bot.ops.prune import background
from bot.web.metrics import mount_metrics
from tasks.rules.approvals import Approver
from tasks.rules.clock import utcnow
from tasks.rules.retention import (
    Cutoffs,
    Retention,
    cutoffs,
    loose_event_prunable,
    message_prunable,
    outbox_prunable,
    task_prunable,
)
from tasks.store.db import Database
from tasks.store.models import EVENT, TABLES, Event, table_of
from tasks.store.pruning import Pruner
from tasks.store.rows import event_row
from tasks.store.store import NewTask
from tasks.store.transcript import Transcript
from tasks.store.tx import Tx
from tests.conftest import Clock
from tests.fakes.engine_harness import CONV, Harness
from tests.faults.fleet import base_env

DAY = timedelta(days=1)

POST = [{"key": "post", "skill": "chat.post", "args": {"text": "hello"}}]
WAIT = [{"key": "w", "skill": "wait", "args": {"seconds": 0}}]
RULES = Retention(task_days=30, outbox_days=7, transcript_days=30, batch=25)


def aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def snapshot(db: Database) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every row of every table, by primary key."""

    def q(tx: Tx) -> dict[str, dict[Any, dict[str, Any]]]:
        out = {}
        for model in TABLES:
            table = table_of(model)
            pk = [c.name for c in table.primary_key.columns]
            out[table.name] = {tuple(r._mapping[k] for k in pk): dict(r._mapping)
                               for r in tx.conn.execute(select(table))}  # fmt: skip
        return out

    return db.run_sync(q)


def expected_removal(before: dict[str, dict[Any, dict[str, Any]]], cut: Cutoffs) -> dict[str, set[Any]]:
    """What the rules say goes, worked out row by row in Python."""
    live = Counter(r["task_id"] for r in before["outbox"].values() if r["state"] in ("pending", "sending"))
    tasks = {k for k, r in before["task"].items()
             if task_prunable(r["state"], aware(r["updated_at"]), live[k[0]], cut)}  # fmt: skip
    ids = {k[0] for k in tasks}
    gone: dict[str, set[Any]] = {"task": tasks}
    for name in ("step", "approval"):
        gone[name] = {k for k, r in before[name].items() if r["task_id"] in ids}
    gone["event"] = {k for k, r in before["event"].items()
                     if r["task_id"] in ids or loose_event_prunable(r["task_id"], aware(r["at"]), cut)}  # fmt: skip
    gone["outbox"] = {k for k, r in before["outbox"].items() if r["task_id"] in ids or outbox_prunable(
        r["state"], aware(r["created_at"]), aware(r["next_attempt_at"]), cut)}  # fmt: skip
    keys = {f"task:{i}" for i in ids}
    keys |= {f"approval:{k[0]}" for k in gone["approval"]}
    keys |= {r["card_key"] for r in before["outbox"].values() if r["task_id"] in ids and r["card_key"]}
    gone["card"] = {k for k in before["card"] if k[0] in keys}
    cards = {k[0] for k in before["card"]} - {k[0] for k in gone["card"]}
    gone["chat_message"] = {k for k, r in before["chat_message"].items()
                            if message_prunable(aware(r["updated_at"]), r["key"] in cards, cut)}  # fmt: skip
    return gone


async def deliver_all(h: Harness, *, hold_back: bool = False) -> int | None:
    """Deliver every due outbox row (a card posted once gets a card row); with
    `hold_back` the first is left to retry later and the second dead (the
    first's task is returned)."""
    now = h.clock()
    claimed = await h.outbox.claim(now, limit=500)
    for i, c in enumerate(claimed):
        if hold_back and i == 0:
            await h.outbox.failed(c.row.id or 0, "rate limited", now, retry_at=now + timedelta(hours=1))
        elif hold_back and i == 1:
            await h.outbox.failed(c.row.id or 0, "channel_not_found", now, retry_at=None)
        else:
            await h.outbox.sent(c.row.id or 0, {"ts": f"{i}.0"}, now)
    return claimed[0].row.task_id if claimed else None


async def approve_all(h: Harness, task_ids: list[int], approve: bool) -> None:
    for task_id in task_ids:
        view = await h.store.view(task_id)
        for a in view.approvals:
            assert (await h.controls.decide(a.id or 0, Approver("console", "t1", "alice"), approve, h.clock())).accepted
    await h.drain()


async def history(db: Database, clock: Clock) -> dict[str, Any]:
    """A month of use: old finished tasks (approved, refused, plain), an old
    task still waiting, a schedule, console messages, an audit event of no
    task; then, 31 days later, new tasks and messages."""
    h = Harness(db, clock)
    transcript = Transcript(db)
    plain = [await h.submit(f"old {i}", steps=WAIT, key=f"old{i}") for i in range(8)]
    posted = await h.submit("post", steps=POST, key="post")
    refused = await h.submit("refused", steps=POST, key="refused")
    waiting = await h.submit("waiting", steps=POST, key="waiting")
    await h.drain()
    await approve_all(h, [posted], True)
    await approve_all(h, [refused], False)
    undelivered = await deliver_all(h, hold_back=True)
    await h.drain()  # the delivered post wakes its step; the task ends and its summary goes out
    await deliver_all(h)
    await h.controls.create_schedule(name="daily", cron="0 9 * * *", timezone="UTC", now=clock(), new=NewTask(
        platform="console", tenant="t1", dedupe_key="", requester="alice", conversation=CONV, text="x"))  # fmt: skip
    old_msg = await transcript.add(channel="general", user="alice", text="long ago", now=clock())
    edited = await transcript.add(channel="general", user="alice", text="edited later", now=clock())
    live_card = await transcript.add(channel="general", user="cowork", key=f"task:{waiting}", now=clock())
    done_card = await transcript.add(channel="general", user="cowork", key=f"task:{posted}", now=clock())
    await db.run(lambda tx: tx.conn.execute(insert(EVENT), [event_row(None, "cli", "note", clock())]))
    clock.advance(29 * 86400)
    await transcript.update(edited.id or 0, text="edited", card=None, html="", now=clock())
    clock.advance(2 * 86400)
    recent = await h.submit("recent", steps=WAIT, key="recent")
    await h.drain()
    await transcript.add(channel="general", user="bob", text="today", now=clock())
    return {"plain": plain, "posted": posted, "refused": refused, "waiting": waiting, "recent": recent,
            "undelivered": undelivered, "live_card": live_card.id, "done_card": done_card.id,
            "old_msg": old_msg.id, "edited": edited.id}  # fmt: skip


async def test_prune_removes_exactly_the_old_finished_tasks_rows(db: Database, clock: Clock) -> None:
    ids = await history(db, clock)
    before = snapshot(db)
    cut = cutoffs(RULES, clock())
    gone = expected_removal(before, cut)
    exported: list[Event] = []
    done = await Pruner(db, RULES).prune(clock(), export=exported.extend)
    after = snapshot(db)
    for table, rows in before.items():
        assert set(after[table]) == set(rows) - gone.get(table, set()), table
        assert done.removed.get(table, 0) == len(gone.get(table, ())), table
    removed_tasks = {k[0] for k in gone["task"]}
    assert ids["undelivered"] in ids["plain"]  # an old finished task whose first card still waits: kept
    assert removed_tasks == {*ids["plain"], ids["posted"], ids["refused"]} - {ids["undelivered"]}
    assert all(gone[t] for t in ("step", "approval", "event", "outbox", "card", "chat_message"))
    # kept: the waiting task with its step, approval and audit trail; the new task; the schedule
    assert {(ids["waiting"],), (ids["recent"],)} <= set(after["task"])
    assert any(r["task_id"] == ids["waiting"] for r in after["approval"].values())
    assert any(r["task_id"] == ids["waiting"] for r in after["event"].values())
    assert f"task:{ids['waiting']}" in {k[0] for k in after["card"]}  # its card, where the approval is asked
    assert len(after["schedule"]) == 1 and after["spend"] == before["spend"]
    assert any(r["state"] == "pending" for r in after["outbox"].values())  # an old undelivered row stays
    assert (ids["edited"],) in after["chat_message"] and (ids["old_msg"],) not in after["chat_message"]
    assert (ids["live_card"],) in after["chat_message"] and (ids["done_card"],) not in after["chat_message"]
    # the audit trail left only through the export, and bounded transactions
    assert {e.id for e in exported} == {k[0] for k in gone["event"]}
    assert len(done.batches) >= 3 and max(done.batches) <= RULES.batch


async def test_the_dry_run_counts_what_a_prune_would_remove_and_writes_nothing(db: Database, clock: Clock) -> None:
    await history(db, clock)
    before = snapshot(db)
    counts = await Pruner(db, RULES).plan(clock())
    assert snapshot(db) == before
    gone = expected_removal(before, cutoffs(RULES, clock()))
    assert counts == {table: len(gone[table]) for table in counts}
    assert counts["task"] == 9 and counts["event"] > counts["task"]


async def test_nothing_goes_with_every_window_at_zero(db: Database, clock: Clock) -> None:
    await history(db, clock)
    before = snapshot(db)
    forever = Retention(task_days=0, outbox_days=0, transcript_days=0)
    assert set((await Pruner(db, forever).plan(clock() + 3650 * DAY)).values()) == {0}
    assert (await Pruner(db, forever).prune(clock() + 3650 * DAY)).total == 0
    assert snapshot(db) == before


async def test_a_task_that_gets_an_event_while_its_batch_is_exported_waits_for_the_next(
    db: Database, clock: Clock
) -> None:
    h = Harness(db, clock)
    first = await h.submit("late click", steps=WAIT, key="k1")
    await h.drain()
    await deliver_all(h)
    clock.advance(31 * 86400)
    exported: list[Event] = []

    def racing_export(events: list[Event]) -> None:
        exported.extend(events)
        if len(exported) == len(events):  # a refused click is audited while the export is written
            db.run_sync(lambda tx: tx.conn.execute(insert(EVENT),
                                                   [event_row(first, "bob", "approval.refused", clock())]))  # fmt: skip

    pruner = Pruner(db, RULES)
    assert (await pruner.prune(clock(), export=racing_export)).removed.get("task", 0) == 0
    assert await h.store.events(first)  # kept, with the late event, until it is exported
    done = await pruner.prune(clock(), export=exported.extend)
    assert done.removed["task"] == 1 and not await h.store.events(first)
    assert "approval.refused" in [e.kind for e in exported]


async def test_a_background_round_stops_near_its_limit_and_says_what_it_removed(
    db: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(db, clock)
    for i in range(12):
        await h.submit(f"t{i}", steps=WAIT, key=f"t{i}")
    await h.drain()
    await deliver_all(h)
    clock.advance(31 * 86400)
    pruner = Pruner(db, Retention(batch=10))
    prune_round = background(pruner, round_limit=20)
    with caplog.at_level(logging.INFO, logger="bot.ops.prune"):
        await prune_round(clock())
    first = sum(pruner.removed.values())
    assert 20 <= first < 20 + 10 and (await pruner.plan(clock()))["task"] > 0
    assert any(r.getMessage().startswith(f"pruned {first} rows in ") for r in caplog.records)
    for _ in range(10):
        await prune_round(clock())
    assert set((await pruner.plan(clock())).values()) == {0}
    assert pruner.removed["task"] == 12


def prune_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.ops.cli", "db", "prune", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


async def test_cowork_db_prune_dry_run_then_exports_and_removes(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    clock = Clock()
    clock.now = utcnow() - 40 * DAY
    h = Harness(db, clock)
    old = [await h.submit(f"t{i}", steps=WAIT, key=f"t{i}") for i in range(3)]
    await h.drain()
    await deliver_all(h)
    trail = {e.id for t in old for e in await h.store.events(t)}
    db.close()
    env = base_env(DATABASE_URL=sqlite_url, COWORK_LOG_JSON="0")
    unwritable = prune_cli(env, "--export", str(tmp_path / "missing" / "audit.jsonl"), cwd=tmp_path)
    assert unwritable.returncode == 1 and "nothing was pruned" in unwritable.stderr
    dry = prune_cli(env, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["would_remove"]["task"] == 3
    audit = tmp_path / "audit.jsonl"
    real = prune_cli(env, "--export", str(audit), "--batch", "12", cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    out = json.loads(real.stdout)
    assert out["removed"]["task"] == 3 and out["largest_transaction"] <= 12 and out["transactions"] >= 3
    assert {json.loads(line)["id"] for line in audit.read_text().splitlines()} == trail
    assert out["exported_events"] == len(trail)
    again = prune_cli(env, "--dry-run", cwd=tmp_path)
    assert set(json.loads(again.stdout)["would_remove"].values()) == {0}
    bad = prune_cli(env, "--batch", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--batch" in bad.stderr


async def test_a_worker_prunes_on_its_scheduler_and_metrics_count_it(sqlite_url: str, clock: Clock) -> None:
    db = Database(sqlite_url)
    h = Harness(db, clock)
    for i in range(3):
        await h.submit(f"t{i}", steps=WAIT, key=f"t{i}")
    await h.drain()
    await deliver_all(h)
    db.close()
    clock.advance(31 * 86400)
    runtime = Runtime(Settings(database_url=sqlite_url, prune_interval=60, console=False), clock=clock)
    await runtime.start(worker=True, delivery=False)
    try:
        job = runtime._scheduler.get_job("prune")
        assert job.trigger.interval == timedelta(seconds=60)
        await job.func()
        assert runtime.pruner.removed["task"] == 3
        scraped = generate_latest(mount_metrics(web.Application(), runtime).registry).decode()
        assert 'cowork_pruned_rows_total{table="task"} 3.0' in scraped
        assert set((await runtime.pruner.plan(clock())).values()) == {0}
    finally:
        await runtime.stop()
        runtime.close()
    off = Runtime(Settings(database_url=sqlite_url, prune_interval=0, console=False), clock=clock)
    await off.start(worker=True, delivery=False)
    try:
        assert off._scheduler.get_job("prune") is None
    finally:
        await off.stop()
        off.close()
