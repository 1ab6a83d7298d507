"""Decisions on approvals: a person's click (`decide`), and the clock's — an
approval that waited past its expiry expires with its task, one that waited
past its scope's escalation time gains more approvers. Each is one
transaction; a refused click changes nothing but the audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tasks.rules import approvals as approval_rules
from tasks.rules import binding
from tasks.rules.approvals import Approver, Pending
from tasks.rules.policy import Policy
from tasks.rules.states import StepState, TaskState
from tasks.store import statements as sql
from tasks.store.models import EVENT
from tasks.store.rows import card_update, event_row
from tasks.store.store import NotFound, Store
from tasks.store.tx import Tx


@dataclass(frozen=True)
class DecisionResult:
    accepted: bool
    reason: str
    task_id: int
    state: str


class Decided(Pending, Protocol):
    """An approval row as a decision reads it."""

    @property
    def on_reject(self) -> str: ...


def redraw_card(tx: Tx, task_id: int, now: datetime) -> None:
    """Redraw the task card, where its approvals are shown."""
    task = tx.conn.execute(sql.task_chat(task_id)).first()
    if task:
        card_update(tx, task_id, task.platform, task.conversation, now)


def close_approvals(tx: Tx, task_id: int, state: str, now: datetime) -> None:
    """The task's pending approvals end in `state` (its task ended: no click decides them)."""
    for _ in tx.conn.execute(sql.close_approvals(task_id, state, now)).scalars().all():
        redraw_card(tx, task_id, now)  # once per approval, as each one changed


class Decisions:
    def __init__(self, store: Store, policy: Policy | None = None) -> None:
        self.store = store
        self.db = store.db
        self.policy = policy or Policy()  # for escalation of approvals that wait too long

    async def decide(self, approval_id: int, approver: Approver, approve: bool,
                     now: datetime) -> DecisionResult:  # fmt: skip
        """A person's click. `approver` is who clicked, where: only a person of the
        task's own platform and workspace may decide; any refusal is audited."""
        return await self.db.run(lambda tx: self._decide(tx, approval_id, approver, approve, now))

    def _decide(self, tx: Tx, approval_id: int, who: Approver, approve: bool, now: datetime) -> DecisionResult:
        a = tx.conn.execute(sql.approval_locked(approval_id)).first()
        if a is None:
            raise NotFound(f"no approval {approval_id}")
        task = tx.conn.execute(sql.task_record(a.task_id)).one()
        verdict = approval_rules.decide(
            state=a.state, approvers=a.approvers or [], required=a.required,
            decisions=a.decisions or [], expires_at=a.expires_at, bound_hash=a.args_hash,
            current_hash=self._current_hash(tx, a, task), approver=who,
            task_workspace=(task.platform, task.tenant), approve=approve, now=now,
        )  # fmt: skip
        where = {"platform": who.platform, "tenant": who.tenant,
                 "task_platform": task.platform, "task_tenant": task.tenant}  # fmt: skip
        if not verdict.accepted:
            tx.insert_later(EVENT, event_row(a.task_id, who.user, "approval.refused", now, approval=approval_id,
                                             reason=verdict.reason, **where))  # fmt: skip
            if verdict.new_state == "superseded":
                self._apply_decision(tx, a, "superseded", who.user, now)
                redraw_card(tx, a.task_id, now)
            return DecisionResult(False, verdict.reason, a.task_id, a.state)
        done = verdict.new_state != "pending"
        tx.conn.execute(sql.approval_set(approval_id, {
            "state": verdict.new_state, "decisions": list(verdict.decisions),
            "decided_by": who.user if done else None, "decided_at": now if done else None,
        }))  # fmt: skip
        kind = {"approved": "approval.approved", "rejected": "approval.rejected"}.get(
            verdict.new_state, "approval.noted"
        )
        tx.insert_later(EVENT, event_row(a.task_id, who.user, kind, now, approval=approval_id, step=a.step_key,
                                         **where))  # fmt: skip
        redraw_card(tx, a.task_id, now)
        if done:
            self._apply_decision(tx, a, verdict.new_state, who.user, now)
        return DecisionResult(True, verdict.reason, a.task_id, verdict.new_state)

    def _current_hash(self, tx: Tx, a: Pending, task: object) -> str:
        """The hash of the step's arguments as they would run now."""
        rows = tx.conn.execute(sql.step_outputs(a.task_id)).all()
        step = next((r for r in rows if r.key == a.step_key), None)
        if step is None:
            return ""
        results = {r.key: r.result for r in rows if r.state == StepState.SUCCEEDED.value}
        return binding.bound_hash(step.skill, step.args or {}, task, results)

    def _apply_decision(self, tx: Tx, a: Decided, state: str, user: str, now: datetime) -> None:
        task_state = tx.conn.execute(sql.task_state(a.task_id)).scalar()
        after = approval_rules.after_decision(state=state, on_reject=a.on_reject, user=user,
                                              task_state=str(task_state), now=now)  # fmt: skip
        if state == "superseded":
            tx.conn.execute(sql.approval_set(a.id, {"state": state, "decided_at": now}))
        tx.conn.execute(sql.step_set(a.task_id, [a.step_key], after.step))
        if after.task == "resume":
            self.store.transition(tx, a.task_id, TaskState.RUNNING, actor=user, now=now,
                                  kind="task.resumed", values={"run_after": now})  # fmt: skip
        elif after.task == "due":
            tx.conn.execute(sql.task_due(a.task_id, now))

    async def expire_approvals(self, now: datetime) -> list[int]:
        """Pending approvals past their expiry: the approval and its task expire."""

        def q(tx: Tx) -> list[int]:
            due = tx.conn.execute(sql.approvals_expired(now)).all()
            tasks = {a.task_id for a in due}
            found = tx.conn.execute(sql.task_states(tasks)).all() if tasks else []
            task_states = {int(i): str(s) for i, s in found}
            for e in approval_rules.expiries(due, task_states):
                tx.conn.execute(sql.approval_set(e.approval_id, {"state": "expired"}))
                tx.insert_later(EVENT, event_row(e.task_id, "scheduler", "approval.expired", now,
                                                 approval=e.approval_id, step=e.step_key))  # fmt: skip
                redraw_card(tx, e.task_id, now)
                if e.task_error is not None:
                    self.store.transition(  # redraws the card, with its summary
                        tx, e.task_id, TaskState.EXPIRED, actor="scheduler", now=now,
                        detail={"reason": "approval expired"}, values={"finished_at": now, "error": e.task_error},
                    )  # fmt: skip
            return [a.id for a in due]

        return await self.db.run(q)

    async def escalate_approvals(self, now: datetime) -> list[int]:
        """Pending approvals older than their scope's `escalate_after_seconds`
        gain the `escalate_to` people as approvers (once), with an event and a
        refreshed approval card. Returns the ids of the approvals escalated."""

        def q(tx: Tx) -> list[int]:
            pending = tx.conn.execute(sql.approvals_pending_with_tasks()).all()
            done = []
            for a in pending:
                channel = str((a.conversation or {}).get("channel", ""))
                rules = self.policy.rules_for(a.platform, a.tenant, channel)
                added = rules.escalation(list(a.approvers or []), a.created_at, now)
                if not added:
                    continue
                tx.conn.execute(sql.approval_set(a.id, {"approvers": [*(a.approvers or []), *added]}))
                tx.insert_later(EVENT, event_row(a.task_id, "scheduler", "approval.escalated", now,
                                                 approval=a.id, step=a.step_key, added=added))  # fmt: skip
                redraw_card(tx, a.task_id, now)
                done.append(a.id)
            return done

        return await self.db.run(q)
