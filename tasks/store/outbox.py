"""The outbox, as the delivery loop sees it: claim due rows, coalesce card
updates, record what the platform answered.

A claimed row is `sending` until its claim lapses, so several delivery loops
(several web processes) never send the same row at once, and never two rows of
the same card at once. A card's pending updates are coalesced into its oldest
one, which keeps the card's place and takes the newest one's payload (a task
card is rendered from the task's current state when sent, so the latest state
always wins and the final state is never dropped); the others are superseded.
A new task card's first post may wait a moment for its task's plan
(`tasks.rules.coalescing.first_post_waits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tasks.rules.coalescing import coalesce, first_post_candidates, first_post_waits
from tasks.skills.base import Delivered
from tasks.store import statements as sql
from tasks.store.models import OUTBOX, Outbox, from_row
from tasks.store.store import Store
from tasks.store.tx import Tx


@dataclass(frozen=True)
class Claimed:
    row: Outbox
    message: dict[str, object] | None  # the card's platform message, when it was posted before


class Outboxes:
    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    async def exists(self, idempotency_key: str) -> bool:
        def q(tx: Tx) -> bool:
            return tx.conn.execute(sql.outbox_by_key(idempotency_key)).first() is not None

        return await self.db.run(q)

    async def delivery(self, idempotency_key: str) -> Delivered | None:
        """What became of the row written under this key; None when there is none."""

        def q(tx: Tx) -> Delivered | None:
            r = tx.conn.execute(sql.outbox_by_key(idempotency_key)).first()
            return None if r is None else Delivered(str(r.state), r.error)

        return await self.db.run(q)

    async def claim(self, now: datetime, limit: int = 50, hold_seconds: float = 60.0, *,
                    platforms: frozenset[str] | None = None, first_wait: float = 0.0) -> list[Claimed]:  # fmt: skip
        """Due rows (of `platforms` only, when given), marked `sending` for `hold_seconds`;
        a new task card's first post waits up to `first_wait` seconds (`first_post_waits`)."""
        return await self.db.run(lambda tx: self._claim(tx, now, limit, hold_seconds, platforms, first_wait))

    def _claim(self, tx: Tx, now: datetime, limit: int, hold: float,
               platforms: frozenset[str] | None, first_wait: float) -> list[Claimed]:  # fmt: skip
        due = tx.conn.execute(sql.outbox_due(now, limit * 4, platforms)).all()
        picked, payloads = self._coalesce(tx, due, now, limit, first_wait)
        if not picked:
            return []
        # Mark them sending, unless another process claimed one meanwhile.
        until = now + timedelta(seconds=hold)
        got = set(tx.conn.execute(sql.outbox_sending([r.id for r in picked], now, until)).scalars())
        chosen = [r for r in picked if r.id in got]
        keys = [r.card_key for r in chosen if r.card_key]
        cards = {
            c.card_key: c.message
            for c in tx.conn.execute(sql.card_messages(keys))
        } if keys else {}  # fmt: skip
        out = []
        for r in chosen:
            row = from_row(Outbox, r)
            row.attempts += 1
            row.payload = payloads.get(r.id, row.payload)
            out.append(Claimed(row, cards.get(r.card_key) if r.card_key else None))
        return out

    def _coalesce(self, tx: Tx, due: Sequence[Any], now: datetime,
                  limit: int, first_wait: float) -> tuple[list[Any], dict[int, Any]]:  # fmt: skip
        """`coalescing.coalesce` over the due rows' cards, and its writes: the
        carriers' new payloads and the superseded rows. Returned with the
        carriers' new payloads, by row id."""
        keys = {r.card_key for r in due if r.card_key}
        rows = tx.conn.execute(sql.outbox_of_cards(keys)).all() if keys else []
        held = self._held_first_posts(tx, due, rows, now, first_wait) if first_wait > 0 else frozenset()
        plan = coalesce(due, rows, now, limit, held)
        for row_id, payload in plan.payloads.items():
            tx.conn.execute(sql.outbox_set(row_id, {"payload": payload}))
        if plan.superseded:
            tx.conn.execute(sql.outbox_superseded(plan.superseded))
        return plan.picked, plan.payloads

    @staticmethod
    def _held_first_posts(tx: Tx, due: Sequence[Any], rows: Sequence[Any], now: datetime,
                          wait: float) -> frozenset[str]:  # fmt: skip
        """The task cards whose first post waits (`first_post_waits`), with what it needs read."""
        young = first_post_candidates(due, rows, now, wait)
        if not young:
            return frozenset()
        posted = set(tx.conn.execute(sql.cards_posted(list(young))).scalars())
        ids = {r.task_id for k, r in young.items() if k not in posted}
        states = {int(i): str(st) for i, st in tx.conn.execute(sql.task_states(ids))} if ids else {}
        waits = {k for k, r in young.items() if first_post_waits(r.created_at, states.get(r.task_id), now, wait)}
        return frozenset(waits - posted)

    async def sent(self, outbox_id: int, message: Mapping[str, object] | None, now: datetime) -> None:
        def q(tx: Tx) -> None:
            r = tx.conn.execute(sql.outbox_sent(outbox_id, message, now)).first()
            if r is not None:
                _wake_poster(tx, r, now)
            if r is not None and r.card_key and message is not None:
                tx.conn.execute(sql.card_posted(self.db.dialect, r.card_key, r.platform, message, now))

        await self.db.run(q)

    async def failed(self, outbox_id: int, error: str, now: datetime, *, retry_at: datetime | None) -> None:
        """A failed delivery: try again at `retry_at`, or (None) mark it undeliverable."""

        def q(tx: Tx) -> None:
            if retry_at is not None:
                tx.conn.execute(sql.outbox_set(outbox_id, {"error": error[:2000], "state": "pending",
                                                           "next_attempt_at": retry_at}))  # fmt: skip
                return
            r = tx.conn.execute(sql.outbox_dead(outbox_id, error[:2000])).first()
            if r is not None:
                _wake_poster(tx, r, now)

        await self.db.run(q)

    async def hand_back(self, unsent: Sequence[int], maybe_sent: Sequence[int], now: datetime) -> int:
        """Rows a stopping process claimed and will not deliver, back to pending and
        due at once, for whoever holds the outbox next. `unsent` never reached the
        platform: their claim does not count as an attempt, so they are sent without a
        lookup. `maybe_sent` were being sent when the process stopped waiting: their
        attempt counts, so the next sender looks for them (`find`) before posting."""
        reason = "handed back at shutdown"

        def q(tx: Tx) -> int:
            n = 0
            for ids, attempts in ((unsent, OUTBOX.c.attempts - 1), (maybe_sent, OUTBOX.c.attempts)):
                if ids:
                    n += tx.conn.execute(sql.outbox_handed_back(list(ids), attempts, now, reason)).rowcount
            return n

        return await self.db.run(q)

    async def stats(self) -> dict[str, int]:
        def q(tx: Tx) -> dict[str, int]:
            return {str(s): int(n) for s, n in tx.conn.execute(sql.OUTBOX_BY_STATE)}

        return await self.db.run(q)

    async def rows(self, task_id: int | None = None) -> list[Outbox]:
        def q(tx: Tx) -> list[Outbox]:
            return [from_row(Outbox, r) for r in tx.conn.execute(sql.outbox_rows(task_id))]

        return await self.db.run(q)

    async def card_message(self, key: str) -> dict[str, object] | None:
        def q(tx: Tx) -> dict[str, object] | None:
            return tx.conn.execute(sql.card_message(key)).scalar()

        return await self.db.run(q)


def _wake_poster(tx: Tx, row: Any, now: datetime) -> None:
    """The platform answered a row a step wrote (an idempotency-keyed post): the step
    waits for that answer, so it and its task are due now (see `ChatPost`)."""
    if row.task_id is None or row.idempotency_key is None:
        return
    tx.conn.execute(sql.poster_woken(row.task_id, row.idempotency_key, now))
    tx.conn.execute(sql.running_task_due(row.task_id, now))
