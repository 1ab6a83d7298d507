"""The outbox, as the delivery loop sees it: claim due rows, coalesce card
updates, record what the platform answered.

A task card's first post waits a moment (`FIRST_POST_WAIT`) while its task is
busy (queued, planning, running), so the post already shows the plan and any
approval the steps ask for: an approval is then one post, not a post and an
edit (edits are the scarcer budget on Slack).

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
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tasks.models import Card, Outbox
from tasks.skills import Delivered
from tasks.states import CLAIMABLE, StepState, TaskState
from tasks.store import OUTBOX, STEP, TASK, Store, _row
from tasks.tx import Tx

CARD = Card.__table__  # type: ignore[attr-defined]
FIRST_POST_WAIT = 1.0  # seconds a new task card waits for its busy task's plan and approvals
_BUSY = frozenset(s.value for s in CLAIMABLE)


def first_post_waits(asked_at: datetime, task_state: str | None, now: datetime, wait: float) -> bool:
    """Whether a task card never posted yet, asked for at `asked_at`, waits: its task
    is still busy (it may be about to plan or ask for an approval) and `wait`
    seconds have not passed. A task that waits for a person, or has ended, is shown at once."""
    return task_state in _BUSY and now - asked_at < timedelta(seconds=wait)


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
                    platforms: frozenset[str] | None = None, first_wait: float = 0.0) -> list[Claimed]:  # fmt: skip
        """Due rows (of `platforms` only, when given), marked `sending` for `hold_seconds`;
        a new task card's first post waits up to `first_wait` seconds (`first_post_waits`)."""
        return await self.db.run(lambda tx: self._claim(tx, now, limit, hold_seconds, platforms, first_wait))

    def _claim(self, tx: Tx, now: datetime, limit: int, hold: float,
               platforms: frozenset[str] | None, first_wait: float) -> list[Claimed]:  # fmt: skip
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
        picked, payloads = self._coalesce(tx, due, now, limit, first_wait)
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
            row = _row(Outbox, r)
            row.attempts += 1
            row.payload = payloads.get(row.id, row.payload)
            out.append(Claimed(row, cards.get(r.card_key) if r.card_key else None))
        return out

    def _coalesce(self, tx: Tx, due: Sequence[Any], now: datetime,
                  limit: int, first_wait: float) -> tuple[list[Any], dict[int, Any]]:  # fmt: skip
        """One row per card: the card's oldest pending row carries it, with the payload
        of its newest (the latest state; a task card is rendered from the records anyway),
        so the card keeps the place of its first unshown change: never behind messages
        queued later, nor behind other cards' changes made while it waited for a rate
        limit. Every other pending row of the card is superseded. A card whose carrier
        waits for a retry, or is being sent right now, is left alone. The rows picked go
        in the order they were written. Returned with the carriers' new payloads, by row id."""
        keys = {r.card_key for r in due if r.card_key}
        rows = tx.conn.execute(
            select(OUTBOX).where(OUTBOX.c.card_key.in_(keys), OUTBOX.c.state.in_(["pending", "sending"]))
        ).all() if keys else []  # fmt: skip
        carrier: dict[str, Any] = {}
        newest: dict[str, Any] = {}
        busy: set[str] = set()
        for r in rows:
            if r.state == "sending" and r.next_attempt_at > now:
                busy.add(r.card_key)
                continue
            if r.card_key not in carrier or r.id < carrier[r.card_key].id:
                carrier[r.card_key] = r
            if r.card_key not in newest or r.id > newest[r.card_key].id:
                newest[r.card_key] = r
        if first_wait > 0:
            busy |= _waiting_first_posts(tx, carrier, due, now, first_wait)
        picked, seen, payloads = [], set(), {}
        for r in due:
            key = r.card_key
            if key and (key in busy or key in seen or carrier[key].next_attempt_at > now):
                continue
            if key:
                seen.add(key)
                r = carrier[key]
                if newest[key].payload != r.payload:
                    payloads[r.id] = newest[key].payload
                    tx.conn.execute(update(OUTBOX).where(OUTBOX.c.id == r.id).values(payload=payloads[r.id]))
            picked.append(r)
            if len(picked) >= limit:
                break
        picked.sort(key=lambda r: (r.created_at, r.id))
        stale = [r.id for r in rows if r.card_key in seen and r.id != carrier[r.card_key].id and r.state == "pending"]
        if stale:
            tx.conn.execute(
                update(OUTBOX).where(OUTBOX.c.id.in_(stale), OUTBOX.c.state == "pending").values(state="superseded")
            )
        return picked, payloads

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
                ins = (sqlite_insert if self.db.sqlite else pg_insert)(CARD).values(
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
                    n += tx.conn.execute(
                        update(OUTBOX).where(OUTBOX.c.id.in_(list(ids)), OUTBOX.c.state == "sending")
                        .values(state="pending", next_attempt_at=now, attempts=attempts, error=reason)
                    ).rowcount  # fmt: skip
            return n

        return await self.db.run(q)

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
            return [_row(Outbox, r) for r in tx.conn.execute(stmt)]

        return await self.db.run(q)

    async def card_message(self, key: str) -> dict[str, Any] | None:
        def q(tx: Tx) -> dict[str, Any] | None:
            return tx.conn.execute(select(CARD.c.message).where(CARD.c.card_key == key)).scalar()

        return await self.db.run(q)


def _thread(row: Any) -> tuple[str, str, str]:
    conv = row.conversation or {}
    return row.platform, str(conv.get("channel", "")), str(conv.get("thread") or "")


def _waiting_first_posts(tx: Tx, carrier: dict[str, Any], due: Sequence[Any], now: datetime,
                         wait: float) -> set[str]:  # fmt: skip
    """The task cards (of these carriers) whose first post waits (`first_post_waits`).
    A card never holds up a message: with anything else due in its thread it goes now."""
    company: dict[tuple[str, str, str], set[str | None]] = {}
    for r in due:
        company.setdefault(_thread(r), set()).add(r.card_key)
    young = {k: r for k, r in carrier.items() if r.task_id is not None and r.kind == "task_card"
             and r.attempts == 0 and now - r.created_at < timedelta(seconds=wait)
             and company.get(_thread(r), set()) <= {k}}  # fmt: skip
    if not young:
        return set()
    posted = set(tx.conn.execute(select(CARD.c.card_key).where(CARD.c.card_key.in_(list(young)))).scalars())
    ids = {r.task_id for k, r in young.items() if k not in posted}
    states: dict[int, str] = {}
    if ids:
        states = {
            int(i): str(st) for i, st in tx.conn.execute(select(TASK.c.id, TASK.c.state).where(TASK.c.id.in_(ids)))
        }
    return {k for k, r in young.items() if k not in posted and first_post_waits(r.created_at, states.get(r.task_id),
                                                                                 now, wait)}  # fmt: skip


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
