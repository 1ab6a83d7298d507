"""The store: every read and write of task records, as units of work.

Each public method is one transaction on the `Database` thread. Writes by a
worker carry a fence (the lease holder): a worker that lost its lease can no
longer change the task. Every state change writes its event row and, where a
person should see it, an outbox row, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from tasks.rules.states import (
    IllegalTransition,
    TaskState,
    can_transition,
    check_transition,
    sources_for,
)
from tasks.store import statements
from tasks.store.db import Database
from tasks.store.dialects import Dialect
from tasks.store.models import APPROVAL as APPROVAL
from tasks.store.models import EVENT as EVENT
from tasks.store.models import OUTBOX as OUTBOX
from tasks.store.models import STEP as STEP
from tasks.store.models import TASK as TASK
from tasks.store.models import Approval, Event, Step, Task, from_row, loaded
from tasks.store.rows import card_update, event_row, outbox_row
from tasks.store.statements import BY_ID, CLAIMABLE_TASKS, task_params, task_update
from tasks.store.statements import update_step as update_step
from tasks.store.tx import Tx
from tasks.store.views import Figures, TaskOwner, TaskView


class LeaseLost(Exception):
    """This worker no longer holds the task (another took it over, or it was stopped)."""


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class NewTask:
    platform: str
    tenant: str
    dedupe_key: str
    requester: str
    conversation: dict[str, object] | None
    text: str = ""
    requester_name: str = ""
    playbook: str | None = None
    params: dict[str, object] | None = None
    budget: dict[str, object] | None = None


def _lease_race() -> Exception:
    return RuntimeError("a claimed task changed under its row lock")


def read_figures(conn: Connection, dialect: Dialect, now: datetime, buckets: Sequence[float]) -> Figures:
    """The deployment's figures for /metrics, on any connection (the metrics
    reader has one of its own): the task table in one pass, step latency
    bucketed in one pass and made cumulative here."""
    figures = Figures(tasks={}, tokens=0, dollars=0.0)
    for state, n, tokens, dollars in conn.execute(statements.TASK_FIGURES):
        figures.tasks[str(state)] = int(n)
        figures.tokens += int(tokens or 0)
        figures.dollars += float(dollars or 0.0)
    figures.runnable = int(conn.execute(statements.runnable(now)).scalar_one())
    figures.approvals_pending = int(conn.execute(statements.APPROVALS_WAITING).scalar_one())
    for skill, i, n, seconds in conn.execute(statements.step_seconds(dialect, buckets)):
        counts, count, total = figures.step_seconds.get(str(skill), ([0] * len(buckets), 0, 0.0))
        for j in range(int(i), len(buckets)):
            counts[j] += int(n)
        figures.step_seconds[str(skill)] = (counts, count + int(n), total + float(seconds or 0.0))
    return figures


def outbox_counts(conn: Connection) -> dict[str, int]:
    """Outbox rows by state."""
    return {str(s): int(n) for s, n in conn.execute(statements.OUTBOX_BY_STATE)}


class Store:
    def __init__(self, db: Database):
        self.db = db

    # -- intake -----------------------------------------------------------

    async def create_task(self, new: NewTask, now: datetime) -> tuple[int, bool]:
        """Insert a task once per (platform, tenant, dedupe key): (id, created?)."""
        return await self.db.run(lambda tx: self.create_in(tx, new, now))

    def create_in(self, tx: Tx, new: NewTask, now: datetime) -> tuple[int, bool]:
        values = {
            "platform": new.platform, "tenant": new.tenant, "dedupe_key": new.dedupe_key,
            "requester": new.requester, "requester_name": new.requester_name,
            "conversation": new.conversation, "text": new.text, "playbook": new.playbook,
            "params": new.params, "budget": new.budget, "state": TaskState.QUEUED.value,
            "created_at": now, "updated_at": now, "run_after": now, "tokens": 0, "cost": 0.0,
            "steps_run": 0, "version": 0,
        }  # fmt: skip
        found = tx.rows(statements.intake(self.db.dialect, tuple(values)), {f"v_{k}": v for k, v in values.items()})
        if not found:
            existing = tx.rows(statements.SAME_TASK, {"p_platform": new.platform, "p_tenant": new.tenant,
                                            "p_dedupe": new.dedupe_key})  # fmt: skip
            return int(existing[0].id), False
        new_id = int(found[0].id)
        tx.insert_later(
            EVENT, event_row(new_id, new.requester, "task.created", now, text=new.text[:500],
                             playbook=new.playbook),
        )  # fmt: skip
        card_update(tx, new_id, new.platform, new.conversation, now)
        return int(new_id), True

    # -- reads ------------------------------------------------------------

    async def ping(self) -> None:
        """A round trip to the database (readiness checks)."""
        await self.db.run(lambda tx: tx.conn.execute(statements.PING).scalar())

    async def get_task(self, task_id: int) -> Task | None:
        return await self.db.run(lambda tx: self.task_in(tx, task_id), task_id)

    @staticmethod
    def task_in(tx: Tx, task_id: int) -> Task | None:
        rows = tx.rows(BY_ID["task"], {"p_id": task_id})
        return from_row(Task, rows[0]) if rows else None

    async def view(self, task_id: int) -> TaskView:
        return await self.db.run(lambda tx: self._view(tx, task_id), task_id)

    def view_sync(self, task_id: int) -> TaskView:
        return self.db.run_sync(lambda tx: self._view(tx, task_id))

    def _view(self, tx: Tx, task_id: int) -> TaskView:
        task = self.task_in(tx, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
        steps = tx.rows(BY_ID["steps"], {"p_id": task_id})
        approvals = tx.rows(BY_ID["approvals"], {"p_id": task_id})
        return TaskView(task, [from_row(Step, r) for r in steps], [from_row(Approval, r) for r in approvals])

    async def list_tasks(
        self,
        *,
        limit: int = 20,
        states: Sequence[str] | None = None,
        requester: str | None = None,
        platform: str | None = None,
        tenant: str | None = None,
    ) -> list[Task]:
        def q(tx: Tx) -> list[Task]:
            stmt = statements.tasks_listed(limit, states, requester, platform, tenant)
            return [from_row(Task, r) for r in tx.conn.execute(stmt)]

        return await self.db.run(q)

    async def events(self, task_id: int | None = None, *, after_id: int = 0, limit: int = 1000) -> list[Event]:
        def q(tx: Tx) -> list[Event]:
            return [from_row(Event, r) for r in tx.conn.execute(statements.events_after(after_id, limit, task_id))]

        return await self.db.run(q)

    async def counts_by_state(self) -> dict[str, int]:
        def q(tx: Tx) -> dict[str, int]:
            return {str(s): int(n) for s, n in tx.conn.execute(statements.TASKS_BY_STATE)}

        return await self.db.run(q)

    # -- claims and leases --------------------------------------------------

    async def claim(self, worker: str, limit: int, lease_seconds: float, now: datetime) -> list[int]:
        return [t.id for t in await self.claim_rows(worker, limit, lease_seconds, now)]  # type: ignore[misc]

    async def claim_rows(self, worker: str, limit: int, lease_seconds: float,
                         now: datetime) -> list[Task]:  # fmt: skip
        """Take up to `limit` runnable tasks under a lease. On PostgreSQL rows are
        locked with FOR UPDATE SKIP LOCKED, so concurrent workers never take the
        same task; SQLite serializes writers with BEGIN IMMEDIATE."""
        return await self.db.run(lambda tx: self._claim(tx, worker, limit, lease_seconds, now))

    def _claim(self, tx: Tx, worker: str, limit: int, lease_seconds: float, now: datetime) -> list[Task]:
        rows = tx.rows(CLAIMABLE_TASKS, {"p_now": now, "p_limit": limit})
        if not rows:
            return []
        until = now + timedelta(seconds=lease_seconds)
        tasks = []
        for r in rows:
            # The rows are locked (FOR UPDATE; SQLite's one writer): each lease update finds its row.
            tx.run_later(
                statements.TAKE_LEASE,
                {"p_id": r.id, "v_lease_holder": worker, "v_lease_expires_at": until},
                _lease_race,
            )
            if r.lease_holder is not None:
                tx.insert_later(EVENT, event_row(r.id, worker, "lease.taken_over", now, previous=r.lease_holder))
            values = r._asdict()
            values["lease_holder"], values["lease_expires_at"] = worker, until
            tasks.append(loaded(Task, values))
        return tasks

    async def renew(self, worker: str, ids: Sequence[int], lease_seconds: float, now: datetime) -> set[int]:
        """Extend the leases this worker holds; returns the ids it has lost. One
        update per database lane, so a renewal locks rows in one lane only."""
        lanes = self.db.lanes
        groups: dict[int, list[int]] = {}
        for i in ids:
            groups.setdefault(i % lanes, []).append(i)

        def q(group: list[int]) -> Any:
            def unit(tx: Tx) -> set[int]:
                until = now + timedelta(seconds=lease_seconds)
                kept = tx.conn.execute(statements.leases_renewed(group, worker, until)).scalars().all()
                return set(group) - set(kept)

            return unit

        lost: set[int] = set()
        for lane, group in groups.items():
            lost |= await self.db.run(q(group), lane)
        return lost

    async def release(self, worker: str, task_id: int, run_after: datetime | None = None) -> None:
        def q(tx: Tx) -> None:
            values: dict[str, Any] = {"lease_holder": None, "lease_expires_at": None}
            if run_after is not None:
                values["run_after"] = run_after
            tx.conn.execute(statements.task_let_go(task_id, worker, values))

        await self.db.run(q)

    # -- transitions --------------------------------------------------------

    def transition(
        self,
        tx: Tx,
        task_id: int,
        target: str,
        *,
        actor: str,
        now: datetime,
        fence: str | None = None,
        kind: str | None = None,
        detail: Mapping[str, object] | None = None,
        values: Mapping[str, object] | None = None,
        add: Mapping[str, object] | None = None,
        card: bool = True,
        via: str | None = None,
        via_actor: str | None = None,
        before: Sequence[Mapping[str, object]] = (),
        owner: TaskOwner | None = None,
    ) -> TaskOwner:
        """Move a task to `target` (refusing illegal moves), write the event and
        queue a card refresh. Returns the task row's platform and conversation.
        `via`: pass through that state on the way, in the same write (both
        moves are checked and both get their event). `before`: event rows that
        belong before this move's own in the audit trail. `owner`: the task as
        its worker knows it (platform, conversation and requester never
        change); the move then runs and is checked at commit (`Tx.run_later`)."""
        vals = {"updated_at": now, **(values or {})}
        inc = add or {}
        if via:
            check_transition(task_id, via, target)
        sources = sources_for(via) if via else sources_for(target)
        stmt = task_update(sources, fenced=fence is not None, target=target, set_keys=tuple(sorted(vals)),
                           add_keys=tuple(sorted(inc)), returning=owner is None)  # fmt: skip
        params = task_params(task_id, fence, vals, inc)
        if owner is not None:
            row = owner
            tx.run_later(stmt, params, lambda: self._refusal(tx, task_id, via or target, fence))
        else:
            found = tx.rows(stmt, params)
            if not found:
                raise self._refusal(tx, task_id, via or target, fence)
            row = found[0]
        for ev in before:
            tx.insert_later(EVENT, ev)
        if via:
            tx.insert_later(EVENT, event_row(task_id, via_actor or actor, f"task.{via}", now))
        tx.insert_later(EVENT, event_row(task_id, actor, kind or f"task.{target}", now, **(detail or {})))
        if card:
            card_update(tx, task_id, row.platform, row.conversation, now)
        return row

    @staticmethod
    def _refusal(tx: Tx, task_id: int, target: str, fence: str | None) -> Exception:
        """Why a move of the task to `target` changed no row."""
        cur = tx.conn.execute(statements.task_hold(task_id)).first()
        if cur is None:
            return NotFound(f"no task {task_id}")
        if not can_transition(cur.state, target):
            return IllegalTransition(task_id, cur.state, target)
        if fence is not None and cur.lease_holder != fence:
            return LeaseLost(f"task {task_id} is no longer held by {fence}")
        return IllegalTransition(task_id, cur.state, target)  # pragma: no cover - raced

    def fenced_task_update(
        self, tx: Tx, task_id: int, fence: str, states: Sequence[str], *,
        add: Mapping[str, object] | None = None, **values: object,
    ) -> None:  # fmt: skip
        """Update the task only while this worker holds it in one of `states`;
        run (and checked: `LeaseLost`) at commit time, see `Tx.run_later`."""
        inc = add or {}
        stmt = task_update(tuple(states), fenced=True, target=None, set_keys=tuple(sorted(values)),
                           add_keys=tuple(sorted(inc)), returning=False)  # fmt: skip
        tx.run_later(stmt, task_params(task_id, fence, values, inc),
                     lambda: LeaseLost(f"task {task_id} is no longer running under {fence}"))  # fmt: skip

    def fenced_task_row(
        self, tx: Tx, task_id: int, fence: str, states: Sequence[str], *,
        add: Mapping[str, object] | None = None, **values: object,
    ) -> TaskOwner:  # fmt: skip
        """`fenced_task_update` at once, returning the task's platform, conversation and requester."""
        inc = add or {}
        stmt = task_update(tuple(states), fenced=True, target=None, set_keys=tuple(sorted(values)),
                           add_keys=tuple(sorted(inc)))  # fmt: skip
        found = tx.rows(stmt, task_params(task_id, fence, values, inc))
        if not found:
            raise LeaseLost(f"task {task_id} is no longer running under {fence}")
        owner: TaskOwner = found[0]  # the RETURNING row: platform, conversation, requester
        return owner

    # -- plain chat output ------------------------------------------------------

    async def post(
        self,
        *,
        platform: str,
        conversation: Mapping[str, object],
        kind: str,
        payload: Mapping[str, object],
        idempotency_key: str | None = None,
        task_id: int | None = None,
        now: datetime,
    ) -> bool:
        """Queue a message (a reply, a private notice) once per idempotency key."""
        row = outbox_row(task_id=task_id, platform=platform, kind=kind, conversation=conversation,
                         now=now, payload=payload, idempotency_key=idempotency_key)  # fmt: skip

        def q(tx: Tx) -> bool:
            return bool(tx.conn.execute(statements.outbox_post(self.db.dialect, row)).rowcount)

        return await self.db.run(q)

    async def get_approval(self, approval_id: int) -> Approval | None:
        def q(tx: Tx) -> Approval | None:
            row = tx.conn.execute(statements.approval_record(approval_id)).first()
            return from_row(Approval, row) if row else None

        return await self.db.run(q)
