"""What people and the clock do to tasks: cancel, pause, resume, retry, decide
an approval, expire approvals, fire recurring schedules. Each is one
transaction; a refused request changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from tasks import approvals as approval_rules
from tasks import binding
from tasks.approvals import Approver
from tasks.clock import next_fire, utcnow
from tasks.models import Schedule
from tasks.policy import Policy
from tasks.rows import card_update, event_row
from tasks.states import StepState, TaskState
from tasks.store import (
    APPROVAL,
    EVENT,
    STEP,
    TASK,
    NewTask,
    NotFound,
    Store,
)
from tasks.tx import Tx

SCHEDULE = Schedule.__table__  # type: ignore[attr-defined]
_OPEN_STEPS = [StepState.PENDING.value, StepState.WAITING.value, StepState.SLEEPING.value,
               StepState.RUNNING.value]  # fmt: skip


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
        """Redraw the task card, where the approval is shown (`approval_id`: which one changed)."""
        task = tx.conn.execute(select(TASK.c.platform, TASK.c.conversation).where(TASK.c.id == task_id)).first()
        if task:
            card_update(tx, task_id, task.platform, task.conversation, now)

    def _close_approvals(self, tx: Tx, task_id: int, state: str, now: datetime) -> None:
        ids = tx.conn.execute(
            update(APPROVAL).where(APPROVAL.c.task_id == task_id, APPROVAL.c.state == "pending")
            .values(state=state, decided_at=now).returning(APPROVAL.c.id)
        ).scalars().all()  # fmt: skip
        for approval_id in ids:
            self._approval_card(tx, approval_id, task_id, now)

    # -- commands -----------------------------------------------------------

    async def cancel(self, task_id: int, actor: str, now: datetime | None = None) -> None:
        t = now or utcnow()

        def q(tx: Tx) -> None:
            self.store.transition(
                tx, task_id, TaskState.CANCELLED, actor=actor, now=t,
                values={"finished_at": t, "lease_holder": None, "lease_expires_at": None},
            )  # fmt: skip
            tx.conn.execute(
                update(STEP).where(STEP.c.task_id == task_id, STEP.c.state.in_(_OPEN_STEPS))
                .values(state=StepState.CANCELLED.value, finished_at=t)
            )  # fmt: skip
            self._close_approvals(tx, task_id, "cancelled", t)  # the move redrew the card, with its summary

        await self.db.run(q)

    async def pause(self, task_id: int, actor: str, reason: str = "paused", now: datetime | None = None) -> None:
        t = now or utcnow()
        await self.db.run(lambda tx: self.store.transition(
            tx, task_id, TaskState.PAUSED, actor=actor, now=t, detail={"reason": reason},
            values={"pause_reason": reason, "lease_holder": None, "lease_expires_at": None},
        ))  # fmt: skip

    async def resume(self, task_id: int, actor: str, now: datetime | None = None) -> str:
        t = now or utcnow()

        def q(tx: Tx) -> str:
            task = self.store._get_task(tx, task_id)
            if task is None:
                raise NotFound(f"no task {task_id}")
            target = TaskState.QUEUED if task.plan is None else TaskState.RUNNING
            waiting = tx.conn.execute(
                select(STEP.c.id).where(STEP.c.task_id == task_id, STEP.c.state == StepState.WAITING.value)
            ).first()  # fmt: skip
            if waiting is not None and task.plan is not None:
                target = TaskState.WAITING
            values = {"pause_reason": None, "run_after": t, "started_at": t}
            self.store.transition(tx, task_id, target, actor=actor, now=t, kind="task.resumed", values=values)
            return target.value

        return await self.db.run(q)

    async def retry(self, task_id: int, actor: str, now: datetime | None = None) -> None:
        """Run a failed (or expired) task again from its failed steps; finished steps stay."""
        t = now or utcnow()

        def q(tx: Tx) -> None:
            task = self.store._get_task(tx, task_id)
            if task is None:
                raise NotFound(f"no task {task_id}")
            target = TaskState.RUNNING if task.plan is not None else TaskState.QUEUED
            if task.plan is None and task.state == TaskState.FAILED:
                # failed while planning: plan again, through running's sources
                target = TaskState.RUNNING
            self.store.transition(
                tx, task_id, target, actor=actor, now=t, kind="task.retried",
                values={"error": None, "finished_at": None, "run_after": t, "started_at": t},
            )  # fmt: skip
            again = [StepState.FAILED.value, StepState.CANCELLED.value, StepState.WAITING.value]
            tx.conn.execute(
                update(STEP).where(STEP.c.task_id == task_id, STEP.c.state.in_(again))
                .values(state=StepState.PENDING.value, attempts=0, error=None, wake_at=None,
                        intent_at=None, finished_at=None)
            )  # fmt: skip

        await self.db.run(q)

    # -- approvals ----------------------------------------------------------

    async def decide(self, approval_id: int, approver: Approver, approve: bool,
                     now: datetime | None = None) -> DecisionResult:  # fmt: skip
        """A person's click. `approver` is who clicked, where: only a person of the
        task's own platform and workspace may decide; any refusal is audited."""
        t = now or utcnow()
        return await self.db.run(lambda tx: self._decide(tx, approval_id, approver, approve, t))

    def _decide(self, tx: Tx, approval_id: int, who: Approver, approve: bool, now: datetime) -> DecisionResult:
        a = tx.conn.execute(select(APPROVAL).where(APPROVAL.c.id == approval_id).with_for_update()).first()
        if a is None:
            raise NotFound(f"no approval {approval_id}")
        task = tx.conn.execute(select(TASK).where(TASK.c.id == a.task_id)).one()
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
        tx.conn.execute(
            update(APPROVAL).where(APPROVAL.c.id == approval_id).values(
                state=verdict.new_state, decisions=list(verdict.decisions),
                decided_by=who.user if done else None, decided_at=now if done else None,
            )
        )  # fmt: skip
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
        rows = tx.conn.execute(select(STEP.c.key, STEP.c.skill, STEP.c.args, STEP.c.state, STEP.c.result)
                               .where(STEP.c.task_id == a.task_id)).all()  # fmt: skip
        step = next((r for r in rows if r.key == a.step_key), None)
        if step is None:
            return ""
        results = {r.key: r.result for r in rows if r.state == StepState.SUCCEEDED.value}
        return binding.bound_hash(step.skill, step.args or {}, task, results)

    def _apply_decision(self, tx: Tx, a: Any, state: str, user: str, now: datetime) -> None:
        if state == "superseded":  # the step runs its turn again, which asks anew
            tx.conn.execute(update(APPROVAL).where(APPROVAL.c.id == a.id).values(state=state, decided_at=now))
        if state in ("approved", "superseded"):
            step_values: dict[str, Any] = {"state": StepState.PENDING.value}
        elif a.on_reject == "skip":
            step_values = {"state": StepState.SKIPPED.value, "finished_at": now}
        else:
            step_values = {"state": StepState.FAILED.value, "finished_at": now,
                           "error": f"rejected by {user}"}  # fmt: skip
        tx.conn.execute(update(STEP).where(STEP.c.task_id == a.task_id, STEP.c.key == a.step_key).values(**step_values))
        task_state = tx.conn.execute(select(TASK.c.state).where(TASK.c.id == a.task_id)).scalar()
        if task_state == TaskState.WAITING.value:
            self.store.transition(tx, a.task_id, TaskState.RUNNING, actor=user, now=now,
                                  kind="task.resumed", values={"run_after": now})  # fmt: skip
        elif task_state == TaskState.RUNNING.value:
            tx.conn.execute(update(TASK).where(TASK.c.id == a.task_id).values(run_after=now))

    async def expire_approvals(self, now: datetime | None = None) -> list[int]:
        """Pending approvals past their expiry: the approval and its task expire."""
        t = now or utcnow()

        def q(tx: Tx) -> list[int]:
            due = tx.conn.execute(
                select(APPROVAL.c.id, APPROVAL.c.task_id, APPROVAL.c.step_key)
                .where(APPROVAL.c.state == "pending", APPROVAL.c.expires_at <= t)
                .with_for_update(skip_locked=True)
            ).all()  # fmt: skip
            for a in due:
                tx.conn.execute(update(APPROVAL).where(APPROVAL.c.id == a.id).values(state="expired"))
                tx.insert_later(EVENT, event_row(a.task_id, "scheduler", "approval.expired", t,
                                                 approval=a.id, step=a.step_key))  # fmt: skip
                self._approval_card(tx, a.id, a.task_id, t)
                state = tx.conn.execute(select(TASK.c.state).where(TASK.c.id == a.task_id)).scalar()
                if state == TaskState.WAITING.value:
                    self.store.transition(  # redraws the card, with its summary
                        tx, a.task_id, TaskState.EXPIRED, actor="scheduler", now=t,
                        detail={"reason": "approval expired"},
                        values={"finished_at": t, "error": f"approval for step {a.step_key} expired"},
                    )  # fmt: skip
            return [a.id for a in due]

        return await self.db.run(q)

    async def escalate_approvals(self, now: datetime | None = None) -> list[int]:
        """Pending approvals older than their scope's `escalate_after_seconds`
        gain the `escalate_to` people as approvers (once), with an event and a
        refreshed approval card. Returns the ids of the approvals escalated."""
        t = now or utcnow()

        def q(tx: Tx) -> list[int]:
            pending = tx.conn.execute(
                select(APPROVAL.c.id, APPROVAL.c.task_id, APPROVAL.c.step_key, APPROVAL.c.approvers,
                       APPROVAL.c.created_at, TASK.c.platform, TASK.c.tenant, TASK.c.conversation)
                .join(TASK, TASK.c.id == APPROVAL.c.task_id)
                .where(APPROVAL.c.state == "pending").with_for_update(skip_locked=True, of=APPROVAL)
            ).all()  # fmt: skip
            done = []
            for a in pending:
                channel = str((a.conversation or {}).get("channel", ""))
                rules = self.policy.rules_for(a.platform, a.tenant, channel)
                added = rules.escalation(list(a.approvers or []), a.created_at, t)
                if not added:
                    continue
                tx.conn.execute(update(APPROVAL).where(APPROVAL.c.id == a.id)
                                .values(approvers=[*(a.approvers or []), *added]))  # fmt: skip
                tx.insert_later(EVENT, event_row(a.task_id, "scheduler", "approval.escalated", t,
                                                 approval=a.id, step=a.step_key, added=added))  # fmt: skip
                self._approval_card(tx, a.id, a.task_id, t)
                done.append(a.id)
            return done

        return await self.db.run(q)

    # -- schedules ----------------------------------------------------------

    async def create_schedule(self, *, name: str, cron: str, timezone: str, new: NewTask,
                              now: datetime | None = None) -> int:  # fmt: skip
        t = now or utcnow()
        first = next_fire(cron, timezone, t)

        def q(tx: Tx) -> int:
            sid = tx.conn.execute(insert(SCHEDULE).values(
                name=name, cron=cron, timezone=timezone, platform=new.platform, tenant=new.tenant,
                requester=new.requester, conversation=new.conversation, text=new.text,
                playbook=new.playbook, params=new.params, enabled=True, next_fire_at=first, created_at=t,
            ).returning(SCHEDULE.c.id)).scalar_one()  # fmt: skip
            return int(sid)

        return await self.db.run(q)

    async def fire_schedules(self, now: datetime | None = None) -> list[int]:
        """Enqueue one task per due fire time. The task's dedupe key is (schedule,
        fire time), so several workers firing at once make one task."""
        t = now or utcnow()

        def q(tx: Tx) -> list[int]:
            due = tx.conn.execute(
                select(SCHEDULE).where(SCHEDULE.c.enabled.is_(True), SCHEDULE.c.next_fire_at <= t)
            ).all()  # fmt: skip
            created: list[int] = []
            for s in due:
                created.extend(self._fire(tx, s, t))
            return created

        return await self.db.run(q)

    def _fire(self, tx: Tx, s: Any, now: datetime) -> list[int]:
        fire_at = s.next_fire_at
        new = NewTask(
            platform=s.platform, tenant=s.tenant, dedupe_key=f"schedule:{s.id}:{fire_at.isoformat()}",
            requester=s.requester, conversation=s.conversation, text=s.text, playbook=s.playbook,
            params=s.params,
        )  # fmt: skip
        task_id, created = self.store._create(tx, new, now)
        following = next_fire(s.cron, s.timezone, max(fire_at, now - timedelta(seconds=1)))
        tx.conn.execute(
            update(SCHEDULE).where(SCHEDULE.c.id == s.id, SCHEDULE.c.next_fire_at == fire_at)
            .values(next_fire_at=following, last_fired_at=fire_at)
        )  # fmt: skip
        return [task_id] if created else []
