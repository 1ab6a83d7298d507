"""Which outbox rows a delivery claim takes, one row per card: pure.

A card's pending updates are coalesced into its oldest one, which keeps the
card's place and takes the newest one's payload (a task card is rendered from
the task's current state when sent, so the latest state always wins); the
others are superseded. `tasks.store.outbox.Outboxes` reads the rows, asks
`coalesce`, and writes what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar


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


R = TypeVar("R", bound=Row)


@dataclass(frozen=True)
class Coalesced(Generic[R]):
    """The rows to send, in the order they were written; the carriers' new
    payloads by row id; the ids of the pending rows they stand for."""

    picked: list[R]
    payloads: dict[int, Any]
    superseded: list[int]


def coalesce(due: Sequence[R], rows: Sequence[R], now: datetime, limit: int) -> Coalesced[R]:
    """`due`: the due rows, oldest due first; `rows`: every pending or sending row
    of the cards among them. One row per card: the card's oldest pending row
    carries it, with the payload of its newest, so the card keeps the place of its
    first unshown change: never behind messages queued later, nor behind other
    cards' changes made while it waited for a rate limit. A card whose carrier
    waits for a retry, or is being sent right now, is left alone."""
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
