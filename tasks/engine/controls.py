"""What people and the clock do to tasks: cancel, pause, resume, retry, decide
an approval, expire approvals, fire recurring schedules. Each is one
transaction; a refused request changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tasks.rules import approvals as approval_rules
from tasks.rules import binding, states
from tasks.rules.approvals import Approver
from tasks.rules.clock import next_fire
from tasks.rules.policy import Policy
from tasks.rules.states import StepState, TaskState
from tasks.store import statements as sql
from tasks.store.models import EVENT
from tasks.store.rows import approval_card_update, event_row, summary_update
from tasks.store.store import NewTask, NotFound, Store
from tasks.store.tx import Tx


@dataclass(frozen=True)
class DecisionResult:
    accepted: bool
    reason: str
    task_id: int
    state: str


class Controls:
    def __init__(self, store: Store, policy: Policy | None = None):
        self.store = store
        self.db = store.db
        self.policy = policy or Policy()  # for escalation of approvals that wait too long

    def _approval_card(self, tx: Tx, approval_id: int, task_id: int, now: datetime) -> None:
        task = tx.conn.execute(sql.task_chat(task_id)).first()
        if task:
            approval_card_update(tx, task_id, approval_id, task.platform, task.conversation, now)

    def _close_approvals(self, tx: Tx, task_id: int, state: str, now: datetime) -> None:
        ids = tx.conn.execute(sql.close_approvals(task_id, state, now)).scalars().all()
        for approval_id in ids:
            self._approval_card(tx, approval_id, task_id, now)

    # -- commands -----------------------------------------------------------

    async def cancel(self, task_id: int, actor: str, now: datetime) -> None:

        def q(tx: Tx) -> None:
            row = self.store.transition(
                tx, task_id, TaskState.CANCELLED, actor=actor, now=now,
                values={"finished_at": now, "lease_holder": None, "lease_expires_at": None},
            )  # fmt: skip
            tx.conn.execute(sql.cancel_open_steps(task_id, now))
            self._close_approvals(tx, task_id, "cancelled", now)
            summary_update(tx, task_id, row.platform, row.conversation, now)

        await self.db.run(q)

    async def pause(self, task_id: int, actor: str, reason: str = "paused", *, now: datetime) -> None:
        await self.db.run(lambda tx: self.store.transition(
            tx, task_id, TaskState.PAUSED, actor=actor, now=now, detail={"reason": reason},
            values={"pause_reason": reason, "lease_holder": None, "lease_expires_at": None},
        ))  # fmt: skip

    async def resume(self, task_id: int, actor: str, now: datetime) -> str:

        def q(tx: Tx) -> str:
            task = self.store.task_in(tx, task_id)
            if task is None:
                raise NotFound(f"no task {task_id}")
            waiting = tx.conn.execute(sql.waiting_step(task_id)).first()
            move = states.resume(planned=task.plan is not None, waiting_step=waiting is not None, now=now)
            self.store.transition(tx, task_id, move.target, actor=actor, now=now, kind=move.kind,
                                  values=dict(move.values))  # fmt: skip
            return move.target.value

        return await self.db.run(q)

    async def retry(self, task_id: int, actor: str, now: datetime) -> None:
        """Run a failed (or expired) task again from its failed steps; finished steps stay."""

        def q(tx: Tx) -> None:
            task = self.store.task_in(tx, task_id)
            if task is None:
                raise NotFound(f"no task {task_id}")
            again = states.retry(planned=task.plan is not None, state=task.state, now=now)
            self.store.transition(tx, task_id, again.move.target, actor=actor, now=now, kind=again.move.kind,
                                  values=dict(again.move.values))  # fmt: skip
            tx.conn.execute(sql.steps_in(task_id, again.steps_in, again.step_values))

        await self.db.run(q)

    # -- approvals ----------------------------------------------------------

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
                self._approval_card(tx, approval_id, a.task_id, now)
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
        self._approval_card(tx, approval_id, a.task_id, now)
        if done:
            self._apply_decision(tx, a, verdict.new_state, who.user, now)
        return DecisionResult(True, verdict.reason, a.task_id, verdict.new_state)

    def _current_hash(self, tx: Tx, a: Any, task: Any) -> str:
        """The hash of the step's arguments as they would run now."""
        rows = tx.conn.execute(sql.step_outputs(a.task_id)).all()
        step = next((r for r in rows if r.key == a.step_key), None)
        if step is None:
            return ""
        results = {r.key: r.result for r in rows if r.state == StepState.SUCCEEDED.value}
        return binding.bound_hash(step.skill, step.args or {}, task, results)

    def _apply_decision(self, tx: Tx, a: Any, state: str, user: str, now: datetime) -> None:
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
            found: Any = tx.conn.execute(sql.task_states(tasks)) if tasks else []
            task_states = {int(i): str(s) for i, s in found}
            for e in approval_rules.expiries(due, task_states):
                tx.conn.execute(sql.approval_set(e.approval_id, {"state": "expired"}))
                tx.insert_later(EVENT, event_row(e.task_id, "scheduler", "approval.expired", now,
                                                 approval=e.approval_id, step=e.step_key))  # fmt: skip
                self._approval_card(tx, e.approval_id, e.task_id, now)
                if e.task_error is not None:
                    row = self.store.transition(
                        tx, e.task_id, TaskState.EXPIRED, actor="scheduler", now=now,
                        detail={"reason": "approval expired"}, values={"finished_at": now, "error": e.task_error},
                    )  # fmt: skip
                    summary_update(tx, e.task_id, row.platform, row.conversation, now)
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
                self._approval_card(tx, a.id, a.task_id, now)
                done.append(a.id)
            return done

        return await self.db.run(q)

    # -- schedules ----------------------------------------------------------

    async def create_schedule(self, *, name: str, cron: str, timezone: str, new: NewTask,
                              now: datetime) -> int:  # fmt: skip
        first = next_fire(cron, timezone, now)

        def q(tx: Tx) -> int:
            sid = tx.conn.execute(sql.schedule_insert({
                "name": name, "cron": cron, "timezone": timezone, "platform": new.platform, "tenant": new.tenant,
                "requester": new.requester, "conversation": new.conversation, "text": new.text,
                "playbook": new.playbook, "params": new.params, "enabled": True, "next_fire_at": first,
                "created_at": now,
            })).scalar_one()  # fmt: skip
            return int(sid)

        return await self.db.run(q)

    async def fire_schedules(self, now: datetime) -> list[int]:
        """Enqueue one task per due fire time. The task's dedupe key is (schedule,
        fire time), so several workers firing at once make one task."""

        def q(tx: Tx) -> list[int]:
            due = tx.conn.execute(sql.schedules_due(now)).all()
            created: list[int] = []
            for s in due:
                created.extend(self._fire(tx, s, now))
            return created

        return await self.db.run(q)

    def _fire(self, tx: Tx, s: Any, now: datetime) -> list[int]:
        fire_at = s.next_fire_at
        new = NewTask(
            platform=s.platform, tenant=s.tenant, dedupe_key=f"schedule:{s.id}:{fire_at.isoformat()}",
            requester=s.requester, conversation=s.conversation, text=s.text, playbook=s.playbook,
            params=s.params,
        )  # fmt: skip
        task_id, created = self.store.create_in(tx, new, now)
        following = next_fire(s.cron, s.timezone, max(fire_at, now - timedelta(seconds=1)))
        tx.conn.execute(sql.schedule_fired(s.id, fire_at, following))
        return [task_id] if created else []
