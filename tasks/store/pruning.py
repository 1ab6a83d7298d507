"""Pruning: the retention rules of `tasks.rules.retention` as SQL (the statements
are in `tasks.store.statements`), run in bounded batches (`Retention.batch` rows per
transaction), so a prune never holds a long lock and a busy engine's group
commits wait at most one batch.

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

from sqlalchemy import Delete

from tasks.rules.retention import (
    TABLES,
    Cutoffs,
    Retention,
    cutoffs,
    fit_batch,
)
from tasks.store import statements as sql
from tasks.store.db import Database
from tasks.store.models import Event, loaded
from tasks.store.tx import Tx

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


# -- units of work ---------------------------------------------------------------


def plan(tx: Tx, cut: Cutoffs) -> dict[str, int]:
    """Rows per table that a prune at these cutoffs would remove (the dry run)."""
    counts = dict.fromkeys(TABLES, 0)
    counts.update({name: int(tx.conn.execute(stmt).scalar_one()) for name, stmt in sql.prune_counts(cut).items()})
    return counts


def candidates(tx: Tx, cut: datetime, limit: int) -> list[int]:
    """The next finished tasks whose rows (counting the task) fit in `limit`."""
    found = tx.conn.execute(sql.prune_candidates(cut, limit)).all()
    return fit_batch([(int(i), int(n)) for i, n in found], limit)


def events_of(tx: Tx, ids: Sequence[int]) -> list[Event]:
    return [loaded(Event, r._asdict()) for r in tx.conn.execute(sql.events_of_tasks(ids))]


def delete_tasks(tx: Tx, ids: Sequence[int], cut: datetime, exported: set[int] | None) -> dict[str, int]:
    """Delete these tasks' rows where the task is still prunable (checked under
    its row lock) and, with `exported`, every event of it was exported."""
    keep = set(tx.conn.execute(sql.prunable_locked(cut, ids)).scalars())
    if exported is not None:
        seen = tx.conn.execute(sql.event_ids_of(keep)).all()
        keep -= {t for t, e in seen if e not in exported}
    if not keep:
        return {}
    return {name: tx.conn.execute(stmt).rowcount for name, stmt in sql.tasks_pruned(keep)}


def loose_events(tx: Tx, cut: datetime, limit: int) -> list[Event]:
    return [loaded(Event, r._asdict()) for r in tx.conn.execute(sql.loose_events(cut, limit))]


def delete_events(tx: Tx, ids: Sequence[int]) -> dict[str, int]:
    return {"event": tx.conn.execute(sql.events_deleted(ids)).rowcount}


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
            await self._drain("outbox", partial(sql.outbox_pruned, cut.outbox), done, room)
        if cut.transcript is not None:
            await self._drain("chat_message", partial(sql.messages_pruned, cut.transcript), done, room)
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

    async def _drain(self, name: str, oldest: Callable[[int], Delete], done: Pruned, room: Callable[[], bool]) -> None:
        while room():
            n = await self.db.run(lambda tx: tx.conn.execute(oldest(self.retention.batch)).rowcount)
            if not n:
                return
            done.add({name: n})
