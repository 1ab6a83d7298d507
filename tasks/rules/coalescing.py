"""Which outbox rows a delivery claim takes, one row per card: pure.

A card's pending updates are coalesced into its oldest one, which keeps the
card's place and takes the newest one's payload (a task card is rendered from
the task's current state when sent, so the latest state always wins); the
others are superseded. `tasks.store.outbox.Outboxes` reads the rows, asks
`coalesce`, and writes what it returns.

A task card's first post waits a moment (`FIRST_POST_WAIT`) while its task is
busy (queued, planning, running), so the post already shows the plan and any
approval the steps ask for: an approval is then one post, not a post and an
edit (edits are the scarcer budget on Slack). `first_post_candidates` picks the
cards that may wait from the rows alone; `first_post_waits` decides with what
the store read of them (whether the card was posted, its task's state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from tasks.rules.states import CLAIMABLE

FIRST_POST_WAIT = 1.0  # seconds a new task card waits for its busy task's plan and approvals
_BUSY = frozenset(s.value for s in CLAIMABLE)


class Row(Protocol):
    """An outbox row as the claim reads it."""

    @property
    def id(self) -> int: ...
    @property
    def card_key(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def next_attempt_at(self) -> datetime: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def payload(self) -> Any: ...
    @property
    def kind(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def task_id(self) -> int | None: ...
    @property
    def platform(self) -> str: ...
    @property
    def conversation(self) -> Any: ...


R = TypeVar("R", bound=Row)


@dataclass(frozen=True)
class Coalesced(Generic[R]):
    """The rows to send, in the order they were written; the carriers' new
    payloads by row id; the ids of the pending rows they stand for."""

    picked: list[R]
    payloads: dict[int, Any]
    superseded: list[int]


def coalesce(
    due: Sequence[R], rows: Sequence[R], now: datetime, limit: int, held: frozenset[str] = frozenset()
) -> Coalesced[R]:
    """`due`: the due rows, oldest due first; `rows`: every pending or sending row
    of the cards among them. One row per card: the card's oldest pending row
    carries it, with the payload of its newest, so the card keeps the place of its
    first unshown change: never behind messages queued later, nor behind other
    cards' changes made while it waited for a rate limit. A card whose carrier
    waits for a retry, or is being sent right now, or is `held` (a first post that
    waits for its task's plan), is left alone."""
    carrier, newest, busy = _cards(rows, now)
    busy |= held
    picked: list[R] = []
    seen: set[str] = set()
    payloads: dict[int, Any] = {}
    for r in due:
        key = r.card_key
        if key and (key in busy or key in seen or carrier[key].next_attempt_at > now):
            continue
        if key:
            seen.add(key)
            r = carrier[key]
            if newest[key].payload != r.payload:
                payloads[r.id] = newest[key].payload
        picked.append(r)
        if len(picked) >= limit:
            break
    picked.sort(key=lambda r: (r.created_at, r.id))
    stale = [r.id for r in rows
             if r.card_key in seen and r.state == "pending" and r.id != carrier[r.card_key].id]  # fmt: skip
    return Coalesced(picked, payloads, stale)


def _cards(rows: Sequence[R], now: datetime) -> tuple[dict[str, R], dict[str, R], set[str]]:
    """Per card: its oldest row not being sent (the carrier), its newest, and the
    cards a process is sending right now."""
    carrier: dict[str, R] = {}
    newest: dict[str, R] = {}
    busy: set[str] = set()
    for r in rows:
        key = r.card_key
        if key is None:
            continue
        if r.state == "sending" and r.next_attempt_at > now:
            busy.add(key)
            continue
        if key not in carrier or r.id < carrier[key].id:
            carrier[key] = r
        if key not in newest or r.id > newest[key].id:
            newest[key] = r
    return carrier, newest, busy


def first_post_waits(asked_at: datetime, task_state: str | None, now: datetime, wait: float) -> bool:
    """Whether a task card never posted yet, asked for at `asked_at`, waits: its task
    is still busy (it may be about to plan or ask for an approval) and `wait`
    seconds have not passed. A task that waits for a person, or has ended, is shown at once."""
    return task_state in _BUSY and now - asked_at < timedelta(seconds=wait)


def _thread(row: Row) -> tuple[str, str, str]:
    conv = row.conversation or {}
    return row.platform, str(conv.get("channel", "")), str(conv.get("thread") or "")


def first_post_candidates(due: Sequence[R], rows: Sequence[R], now: datetime, wait: float) -> dict[str, R]:
    """The task cards whose first post may wait, by card key, with their carrier:
    never tried, younger than `wait`, and alone in their thread (a card never holds
    up a message: with anything else due in its thread it goes now)."""
    company: dict[tuple[str, str, str], set[str | None]] = {}
    for r in due:
        company.setdefault(_thread(r), set()).add(r.card_key)
    carrier, _, _ = _cards(rows, now)
    return {k: r for k, r in carrier.items() if r.task_id is not None and r.kind == "task_card"
            and r.attempts == 0 and now - r.created_at < timedelta(seconds=wait)
            and company.get(_thread(r), set()) <= {k}}  # fmt: skip
