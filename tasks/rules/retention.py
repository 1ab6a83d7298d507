"""Retention: how long each kind of row is kept, and which rows may go now.

Pure rules with time passed in; `tasks.store.pruning` turns the same rules into SQL
and deletes in bounded batches. What is kept, always: tasks that are not
finished and every row of theirs except delivered outbox rows past the outbox
window; pending (or being sent) outbox rows; schedules; spend; role leases.

- A finished task (succeeded, failed, cancelled, expired) untouched for
  `task_days`, with nothing left to deliver, goes with its steps, approvals,
  events, outbox rows and cards.
- An outbox row that is done (sent, dead, superseded) and older than
  `outbox_days` goes, whichever task it belongs to.
- A console transcript message not written or edited for `transcript_days`
  goes, unless it shows a card whose task is kept.
- An audit event of no task older than `task_days` goes.

A window of 0 days keeps those rows forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks.rules.states import FINAL

FINISHED: tuple[str, ...] = tuple(sorted(s.value for s in FINAL))
OUTBOX_DONE: tuple[str, ...] = ("dead", "sent", "superseded")
OUTBOX_LIVE: tuple[str, ...] = ("pending", "sending")
TABLES: tuple[str, ...] = ("task", "step", "approval", "event", "outbox", "card", "chat_message")


@dataclass(frozen=True)
class Retention:
    """The windows, in days (0 = keep forever), and the size of one transaction."""

    task_days: float = 30.0
    outbox_days: float = 7.0
    transcript_days: float = 30.0
    batch: int = 1000

    def __post_init__(self) -> None:
        if min(self.task_days, self.outbox_days, self.transcript_days) < 0:
            raise ValueError("retention windows are days >= 0 (0 keeps rows forever)")
        if self.batch < 1:
            raise ValueError("the prune batch must be at least 1 row")


@dataclass(frozen=True)
class Cutoffs:
    """Rows last touched before these times may go; None keeps them."""

    tasks: datetime | None
    outbox: datetime | None
    transcript: datetime | None


def _before(now: datetime, days: float) -> datetime | None:
    return None if days == 0 else now - timedelta(days=days)


def cutoffs(retention: Retention, now: datetime) -> Cutoffs:
    return Cutoffs(
        tasks=_before(now, retention.task_days),
        outbox=_before(now, retention.outbox_days),
        transcript=_before(now, retention.transcript_days),
    )


def task_prunable(state: str, updated_at: datetime, undelivered: int, cut: Cutoffs) -> bool:
    """A finished task that nothing has changed since the cutoff (a retry moves
    `updated_at`) and that has no outbox row still to deliver (`undelivered`:
    its pending or sending rows): a card or message waiting for its platform
    is never dropped."""
    return cut.tasks is not None and state in FINISHED and updated_at < cut.tasks and undelivered == 0


def outbox_prunable(state: str, created_at: datetime, last_try: datetime, cut: Cutoffs) -> bool:
    """A delivered, dead or superseded row written and last tried before the
    cutoff (`last_try` is its `next_attempt_at`: the claim's end for a row that
    was sent). A pending or sending row is never prunable."""
    return cut.outbox is not None and state in OUTBOX_DONE and max(created_at, last_try) < cut.outbox


def message_prunable(updated_at: datetime, is_card: bool, cut: Cutoffs) -> bool:
    """A console message not written or edited since the cutoff, unless it is a
    card still in the `card` table (its task is kept, and may edit it again)."""
    return cut.transcript is not None and updated_at < cut.transcript and not is_card


def loose_event_prunable(task_id: int | None, at: datetime, cut: Cutoffs) -> bool:
    """An audit event of no task (a task's own go with the task)."""
    return task_id is None and cut.tasks is not None and at < cut.tasks


def fit_batch(candidates: Sequence[tuple[int, int]], limit: int) -> list[int]:
    """The tasks of one transaction: (task id, its rows counting itself) in
    order, as many as fit in `limit` rows. A task's rows go together, so one
    task larger than the limit still goes, alone."""
    chosen: list[int] = []
    total = 0
    for task_id, rows in candidates:
        if chosen and total + rows > limit:
            break
        chosen.append(task_id)
        total += rows
    return chosen
