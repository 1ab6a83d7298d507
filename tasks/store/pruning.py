"""Pruning: the retention rules of `tasks.rules.retention` as SQL, run in bounded
batches (`Retention.batch` rows per transaction), so a prune never holds a
long lock and a busy engine's group commits wait at most one batch.

A finished task's rows go together in one transaction (children and cards
first, the task row last), chosen again under the row lock so a task retried
meanwhile is left alone. When an `export` is given, each batch's audit events
are handed to it before they are deleted, and a task that got an event the
export did not see is left for the next batch: nothing leaves the audit trail
unexported. The other tables (done outbox rows, console transcript, events of
no task) go oldest first, `batch` rows per statement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import String, cast, delete, false, func, literal, or_, select, union

from tasks.rules.retention import (
    OUTBOX_DONE,
    OUTBOX_LIVE,
    TABLES,
    Cutoffs,
    Retention,
    cutoffs,
    fit_batch,
)
from tasks.store.db import Database
from tasks.store.models import APPROVAL, CARD, EVENT, MESSAGE, OUTBOX, STEP, TASK, Event, loaded
from tasks.store.models import FINISHED as FINISHED_TASK
from tasks.store.tx import Tx

CHILDREN = (("step", STEP), ("approval", APPROVAL), ("event", EVENT), ("outbox", OUTBOX))
Export = Callable[[Sequence[Event]], None]


@dataclass
class Pruned:
    """What a prune removed: rows per table, and rows per transaction."""

    removed: Counter[str] = field(default_factory=Counter)
    batches: list[int] = field(default_factory=list)

    def add(self, counts: dict[str, int]) -> None:
        counts = {k: v for k, v in counts.items() if v}
        if counts:
            self.removed.update(counts)
            self.batches.append(sum(counts.values()))

    @property
    def total(self) -> int:
        return sum(self.removed.values())


# -- the rules as SQL -------------------------------------------------------------


def _prunable_task(cut: datetime) -> Any:
    """`retention.task_prunable` as a condition on the task row."""
    undelivered = select(OUTBOX.c.id).where(OUTBOX.c.task_id == TASK.c.id, OUTBOX.c.state.in_(OUTBOX_LIVE))
    return FINISHED_TASK & (TASK.c.updated_at < cut) & ~undelivered.exists()  # its partial index's predicate


def _finished(cut: datetime) -> Any:
    return select(TASK.c.id).where(_prunable_task(cut))


def _outbox_done(cut: datetime) -> Any:
    return OUTBOX.c.state.in_(OUTBOX_DONE) & (OUTBOX.c.created_at < cut) & (OUTBOX.c.next_attempt_at < cut)


def _old_message(cut: datetime, going: Any = None) -> Any:
    """`retention.message_prunable` as a condition on the message row; the
    cards of `going` (a select of task ids) count as gone already."""
    card = select(CARD.c.card_key).where(CARD.c.card_key == MESSAGE.c.key)
    if going is not None:
        card = card.where(CARD.c.card_key.not_in(_card_keys(going)))
    return (MESSAGE.c.updated_at < cut) & ~card.exists()


def _card_keys(ids: Any) -> Any:
    """The card keys of these tasks: their task card, their approval cards and
    any other key their outbox rows name."""
    return union(
        select(literal("task:") + cast(TASK.c.id, String)).where(TASK.c.id.in_(ids)),
        select(literal("approval:") + cast(APPROVAL.c.id, String)).where(APPROVAL.c.task_id.in_(ids)),
        select(OUTBOX.c.card_key).where(OUTBOX.c.task_id.in_(ids), OUTBOX.c.card_key.is_not(None)),
    )


def _oldest(table: Any, where: Any, limit: int) -> Any:
    """Up to `limit` ids matching `where`, oldest first, skipping rows another
    pruner holds (PostgreSQL; SQLite has one writer)."""
    return select(table.c.id).where(where).order_by(table.c.id).limit(limit).with_for_update(skip_locked=True)


def _count(tx: Tx, table: Any, where: Any) -> int:
    return int(tx.conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())


def plan(tx: Tx, cut: Cutoffs) -> dict[str, int]:
    """Rows per table that a prune at these cutoffs would remove (the dry run)."""
    counts = dict.fromkeys(TABLES, 0)
    of_tasks = None
    if cut.tasks is not None:
        of_tasks = _finished(cut.tasks)
        counts["task"] = _count(tx, TASK, _prunable_task(cut.tasks))
        counts["step"] = _count(tx, STEP, STEP.c.task_id.in_(of_tasks))
        counts["approval"] = _count(tx, APPROVAL, APPROVAL.c.task_id.in_(of_tasks))
        counts["card"] = _count(tx, CARD, CARD.c.card_key.in_(_card_keys(of_tasks)))
    counts["event"] = _count(tx, EVENT, or_(*_event_rules(cut, of_tasks)))
    outbox = [OUTBOX.c.task_id.in_(of_tasks)] if of_tasks is not None else []
    if cut.outbox is not None:
        outbox.append(_outbox_done(cut.outbox))
    counts["outbox"] = _count(tx, OUTBOX, or_(false(), *outbox))
    if cut.transcript is not None:
        counts["chat_message"] = _count(tx, MESSAGE, _old_message(cut.transcript, of_tasks))
    return counts


def _event_rules(cut: Cutoffs, of_tasks: Any) -> list[Any]:
    if cut.tasks is None:
        return [false()]
    return [EVENT.c.task_id.in_(of_tasks), EVENT.c.task_id.is_(None) & (EVENT.c.at < cut.tasks)]


def candidates(tx: Tx, cut: datetime, limit: int) -> list[int]:
    """The next finished tasks whose rows (counting the task) fit in `limit`."""
    rows = [func.coalesce(select(func.count()).where(t.c.task_id == TASK.c.id).scalar_subquery(), 0)
            for _, t in CHILDREN]  # fmt: skip
    total = sum(rows[1:], rows[0]) + 1
    found = tx.conn.execute(select(TASK.c.id, total).where(_prunable_task(cut)).order_by(TASK.c.id).limit(limit)).all()
    return fit_batch([(int(i), int(n)) for i, n in found], limit)


def events_of(tx: Tx, ids: Sequence[int]) -> list[Event]:
    rows = tx.conn.execute(select(EVENT).where(EVENT.c.task_id.in_(ids)).order_by(EVENT.c.id))
    return [loaded(Event, r._asdict()) for r in rows]


def delete_tasks(tx: Tx, ids: Sequence[int], cut: datetime, exported: set[int] | None) -> dict[str, int]:
    """Delete these tasks' rows where the task is still prunable (checked under
    its row lock) and, with `exported`, every event of it was exported."""
    locked = _finished(cut).where(TASK.c.id.in_(ids)).with_for_update(skip_locked=True)
    keep = set(tx.conn.execute(locked).scalars())
    if exported is not None:
        seen = tx.conn.execute(select(EVENT.c.task_id, EVENT.c.id).where(EVENT.c.task_id.in_(keep))).all()
        keep -= {t for t, e in seen if e not in exported}
    if not keep:
        return {}
    gone = sorted(keep)
    counts = {"card": tx.conn.execute(delete(CARD).where(CARD.c.card_key.in_(_card_keys(gone)))).rowcount}
    for name, table in CHILDREN:
        counts[name] = tx.conn.execute(delete(table).where(table.c.task_id.in_(gone))).rowcount
    counts["task"] = tx.conn.execute(delete(TASK).where(TASK.c.id.in_(gone))).rowcount
    return counts


def delete_oldest(tx: Tx, name: str, table: Any, where: Any, limit: int) -> dict[str, int]:
    return {name: tx.conn.execute(delete(table).where(table.c.id.in_(_oldest(table, where, limit)))).rowcount}


def loose_events(tx: Tx, cut: datetime, limit: int) -> list[Event]:
    where = EVENT.c.task_id.is_(None) & (EVENT.c.at < cut)
    rows = tx.conn.execute(select(EVENT).where(where).order_by(EVENT.c.id).limit(limit))
    return [loaded(Event, r._asdict()) for r in rows]


def delete_events(tx: Tx, ids: Sequence[int]) -> dict[str, int]:
    return {"event": tx.conn.execute(delete(EVENT).where(EVENT.c.id.in_(ids))).rowcount}


# -- the loop ---------------------------------------------------------------------


class Pruner:
    """Runs the retention rules against one database; `removed` counts what
    this process has pruned since it started (for /metrics)."""

    def __init__(self, db: Database, retention: Retention):
        self.db = db
        self.retention = retention
        self.removed: Counter[str] = Counter()

    async def plan(self, now: datetime) -> dict[str, int]:
        cut = cutoffs(self.retention, now)
        return await self.db.run(lambda tx: plan(tx, cut))

    async def prune(self, now: datetime, *, limit: int | None = None, export: Export | None = None) -> Pruned:
        """Remove what the rules allow at `now`, one bounded transaction at a
        time, until nothing is left or about `limit` rows are gone."""
        cut = cutoffs(self.retention, now)
        done = Pruned()

        def room() -> bool:
            return limit is None or done.total < limit

        if cut.tasks is not None:
            await self._tasks(cut.tasks, done, room, export)
            await self._loose(cut.tasks, done, room, export)
        if cut.outbox is not None:
            await self._drain("outbox", OUTBOX, _outbox_done(cut.outbox), done, room)
        if cut.transcript is not None:
            await self._drain("chat_message", MESSAGE, _old_message(cut.transcript), done, room)
        self.removed.update(done.removed)
        return done

    async def _tasks(self, cut: datetime, done: Pruned, room: Callable[[], bool], export: Export | None) -> None:
        n = self.retention.batch
        while room():
            ids = await self.db.run(lambda tx: candidates(tx, cut, n))
            if not ids:
                return
            exported: set[int] | None = None
            if export is not None:
                events = await self.db.run(partial(events_of, ids=ids))
                export(events)
                exported = {e.id for e in events if e.id is not None}
            counts = await self.db.run(partial(delete_tasks, ids=ids, cut=cut, exported=exported))
            if not counts:
                return  # taken by another pruner, retried or changed meanwhile: the next round sees it
            done.add(counts)

    async def _loose(self, cut: datetime, done: Pruned, room: Callable[[], bool], export: Export | None) -> None:
        while room():
            events = await self.db.run(lambda tx: loose_events(tx, cut, self.retention.batch))
            if not events:
                return
            if export is not None:
                export(events)
            done.add(await self.db.run(partial(delete_events, ids=[e.id for e in events if e.id is not None])))

    async def _drain(self, name: str, table: Any, where: Any, done: Pruned, room: Callable[[], bool]) -> None:
        while room():
            counts = await self.db.run(lambda tx: delete_oldest(tx, name, table, where, self.retention.batch))
            if not counts[name]:
                return
            done.add(counts)
