"""Retention from the operator's side: the settings as a `Retention`, the
audit-trail export a prune writes before it deletes, `cowork db prune`, and
the background round a worker runs (a log line of what it removed)."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from bot.assembly.config import Settings
from bot.ops.reports import event_line
from tasks.rules.retention import Retention, cutoffs
from tasks.store.db import Database
from tasks.store.models import Event
from tasks.store.pruning import Pruned, Pruner

log = logging.getLogger(__name__)


def retention(settings: Settings, batch: int = 1000) -> Retention:
    return Retention(
        task_days=settings.retention_days,
        outbox_days=settings.outbox_retention_days,
        transcript_days=settings.transcript_retention_days,
        batch=batch,
    )


class AuditFile:
    """Appends events to a file as JSON lines and makes them durable before
    the prune deletes them: a crash after the write and before the delete
    exports a batch twice at worst, never loses it."""

    def __init__(self, path: str):
        self.path = path
        self.written = 0

    def __call__(self, events: Sequence[Event]) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            out.writelines(event_line(e) for e in events)
            out.flush()
            os.fsync(out.fileno())
        self.written += len(events)


def report(pruned: Pruned) -> dict[str, Any]:
    return {"removed": dict(sorted(pruned.removed.items())), "transactions": len(pruned.batches),
            "largest_transaction": max(pruned.batches, default=0)}  # fmt: skip


async def prune_command(settings: Settings, *, dry_run: bool, export: str | None, batch: int,
                        now: datetime) -> dict[str, Any]:  # fmt: skip
    """`cowork db prune`: what would go (dry run) or what went, as JSON."""
    rules = retention(settings, batch)
    at = now
    cut = cutoffs(rules, at)
    out: dict[str, Any] = {"now": at.isoformat(), "cutoffs": {k: v.isoformat() if v else None
                                                               for k, v in vars(cut).items()}}  # fmt: skip
    db = Database(settings.database_url)
    try:
        pruner = Pruner(db, rules)
        if dry_run:
            return {**out, "dry_run": True, "would_remove": await pruner.plan(at)}
        if export is None:
            return {**out, **report(await pruner.prune(at))}
        sink = AuditFile(export)
        done = await pruner.prune(at, export=sink)
        return {**out, **report(done), "exported_events": sink.written, "export": export}
    finally:
        db.close()


def background(pruner: Pruner, round_limit: int, export: str = "") -> Callable[[datetime], Awaitable[None]]:
    """One round of the worker's periodic prune: at most about `round_limit`
    rows, in the pruner's batches; a log line says what went."""

    async def prune_round(now: datetime) -> None:
        done = await pruner.prune(now, limit=round_limit, export=AuditFile(export) if export else None)
        if done.total:
            log.info("pruned %d rows in %d transactions: %s", done.total, len(done.batches),
                     ", ".join(f"{k} {v}" for k, v in sorted(done.removed.items())))  # fmt: skip

    return prune_round
