"""The outbox, as the delivery loop sees it: claim due rows, coalesce card
updates, record what the platform answered.

A claimed row is `sending` until its claim lapses, so several delivery loops
(several web processes) never send the same row at once, and never two rows of
the same card at once. A card's pending updates are coalesced into its oldest
one, which keeps the card's place and takes the newest one's payload (a task
card is rendered from the task's current state when sent, so the latest state
always wins and the final state is never dropped); the others are superseded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from tasks.rules.coalescing import coalesce
from tasks.rules.states import StepState, TaskState
from tasks.skills.base import Delivered
from tasks.store.models import CARD, OUTBOX, STEP, TASK, Outbox, from_row
from tasks.store.store import Store
from tasks.store.tx import Tx


@dataclass(frozen=True)
class Claimed:
    row: Outbox
    message: dict[str, Any] | None  # the card's platform message, when it was posted before


class Outboxes:
    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    async def exists(self, idempotency_key: str) -> bool:
        def q(tx: Tx) -> bool:
            return (
                tx.conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.idempotency_key == idempotency_key)).first()
                is not None
            )

        return await self.db.run(q)

    async def delivery(self, idempotency_key: str) -> Delivered | None:
        """What became of the row written under this key; None when there is none."""

        def q(tx: Tx) -> Delivered | None:
            r = tx.conn.execute(
                select(OUTBOX.c.state, OUTBOX.c.error).where(OUTBOX.c.idempotency_key == idempotency_key)
            ).first()
            return None if r is None else Delivered(str(r.state), r.error)

        return await self.db.run(q)

    async def claim(self, now: datetime, limit: int = 50, hold_seconds: float = 60.0, *,
                    platforms: frozenset[str] | None = None) -> list[Claimed]:  # fmt: skip
        """Due rows (of `platforms` only, when given), marked `sending` for `hold_seconds`."""
        return await self.db.run(lambda tx: self._claim(tx, now, limit, hold_seconds, platforms))

    def _claim(self, tx: Tx, now: datetime, limit: int, hold: float,
               platforms: frozenset[str] | None) -> list[Claimed]:  # fmt: skip
        where = [OUTBOX.c.state.in_(["pending", "sending"]), OUTBOX.c.next_attempt_at <= now]
        if platforms is not None:
            where.append(OUTBOX.c.platform.in_(sorted(platforms)))
        due = tx.conn.execute(
            select(OUTBOX)
            .where(*where)
            # Oldest due first: a row that failed and waits for its retry goes behind
            # rows that have not been tried yet, so a throttled card cannot starve posts.
            .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
            .limit(limit * 4)
            .with_for_update(skip_locked=True)
        ).all()
        picked, payloads = self._coalesce(tx, due, now, limit)
        if not picked:
            return []
        # Mark them sending, unless another process claimed one meanwhile.
        claimable = or_(OUTBOX.c.state == "pending", OUTBOX.c.next_attempt_at <= now)
        got = set(tx.conn.execute(
            update(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in picked]), claimable).values(
                state="sending", attempts=OUTBOX.c.attempts + 1,
                next_attempt_at=now + timedelta(seconds=hold)).returning(OUTBOX.c.id)
        ).scalars())  # fmt: skip
        chosen = [r for r in picked if r.id in got]
        keys = [r.card_key for r in chosen if r.card_key]
        cards = {
            c.card_key: c.message
            for c in tx.conn.execute(select(CARD).where(CARD.c.card_key.in_(keys)))
        } if keys else {}  # fmt: skip
        out = []
        for r in chosen:
            row = from_row(Outbox, r)
            row.attempts += 1
            row.payload = payloads.get(r.id, row.payload)
            out.append(Claimed(row, cards.get(r.card_key) if r.card_key else None))
        return out

    def _coalesce(self, tx: Tx, due: Sequence[Any], now: datetime,
                  limit: int) -> tuple[list[Any], dict[int, Any]]:  # fmt: skip
        """`coalescing.coalesce` over the due rows' cards, and its writes: the
        carriers' new payloads and the superseded rows. Returned with the
        carriers' new payloads, by row id."""
        keys = {r.card_key for r in due if r.card_key}
        rows = tx.conn.execute(
            select(OUTBOX).where(OUTBOX.c.card_key.in_(keys), OUTBOX.c.state.in_(["pending", "sending"]))
        ).all() if keys else []  # fmt: skip
        plan = coalesce(due, rows, now, limit)
        for row_id, payload in plan.payloads.items():
            tx.conn.execute(update(OUTBOX).where(OUTBOX.c.id == row_id).values(payload=payload))
        if plan.superseded:
            tx.conn.execute(
                update(OUTBOX).where(OUTBOX.c.id.in_(plan.superseded), OUTBOX.c.state == "pending")
                .values(state="superseded")
            )  # fmt: skip
        return plan.picked, plan.payloads

    async def sent(self, outbox_id: int, message: dict[str, Any] | None, now: datetime) -> None:
        def q(tx: Tx) -> None:
            r = tx.conn.execute(
                update(OUTBOX).where(OUTBOX.c.id == outbox_id)
                .values(state="sent", sent_at=now, message=message, error=None)
                .returning(OUTBOX.c.card_key, OUTBOX.c.platform, OUTBOX.c.task_id, OUTBOX.c.idempotency_key)
            ).first()  # fmt: skip
            if r is not None:
                _wake_poster(tx, r, now)
            if r is not None and r.card_key and message is not None:
                ins = self.db.dialect.insert(CARD).values(
                    card_key=r.card_key, platform=r.platform, message=message, updated_at=now
                )
                tx.conn.execute(ins.on_conflict_do_update(
                    index_elements=["card_key"], set_={"message": message, "updated_at": now}))  # fmt: skip

        await self.db.run(q)

    async def failed(self, outbox_id: int, error: str, now: datetime, *, retry_at: datetime | None) -> None:
        """A failed delivery: try again at `retry_at`, or (None) mark it undeliverable."""
        values: dict[str, Any] = {"error": error[:2000]}
        if retry_at is None:
            values["state"] = "dead"
        else:
            values.update(state="pending", next_attempt_at=retry_at)

        def q(tx: Tx) -> None:
            stmt = update(OUTBOX).where(OUTBOX.c.id == outbox_id).values(**values)
            if retry_at is not None:
                tx.conn.execute(stmt)
                return
            r = tx.conn.execute(stmt.returning(OUTBOX.c.task_id, OUTBOX.c.idempotency_key)).first()
            if r is not None:
                _wake_poster(tx, r, now)

        await self.db.run(q)

    async def stats(self) -> dict[str, int]:
        def q(tx: Tx) -> dict[str, int]:
            rows = tx.conn.execute(select(OUTBOX.c.state, func.count()).group_by(OUTBOX.c.state))
            return {str(s): int(n) for s, n in rows}

        return await self.db.run(q)

    async def rows(self, task_id: int | None = None) -> list[Outbox]:
        def q(tx: Tx) -> list[Outbox]:
            stmt = select(OUTBOX).order_by(OUTBOX.c.id)
            if task_id is not None:
                stmt = stmt.where(and_(OUTBOX.c.task_id == task_id))
            return [from_row(Outbox, r) for r in tx.conn.execute(stmt)]

        return await self.db.run(q)

    async def card_message(self, key: str) -> dict[str, Any] | None:
        def q(tx: Tx) -> dict[str, Any] | None:
            return tx.conn.execute(select(CARD.c.message).where(CARD.c.card_key == key)).scalar()

        return await self.db.run(q)


def _wake_poster(tx: Tx, row: Any, now: datetime) -> None:
    """The platform answered a row a step wrote (an idempotency-keyed post): the step
    waits for that answer, so it and its task are due now (see `ChatPost`)."""
    if row.task_id is None or row.idempotency_key is None:
        return
    tx.conn.execute(
        update(STEP).where(STEP.c.task_id == row.task_id, STEP.c.idempotency_key == row.idempotency_key,
                           STEP.c.state == StepState.SLEEPING.value).values(wake_at=now)
    )  # fmt: skip
    tx.conn.execute(
        update(TASK).where(TASK.c.id == row.task_id, TASK.c.state == TaskState.RUNNING.value,
                           TASK.c.run_after > now).values(run_after=now)
    )  # fmt: skip
