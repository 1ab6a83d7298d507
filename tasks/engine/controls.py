"""What people and the clock do to tasks, in one place for the callers: people's
commands (tasks/engine/commands.py), decisions on approvals with their expiry
and escalation (tasks/engine/decisions.py), and schedules
(tasks/engine/schedules.py). Each of those owns its writes; this facade only
hands the calls on."""

from __future__ import annotations

from tasks.engine.commands import Commands
from tasks.engine.decisions import DecisionResult, Decisions
from tasks.engine.schedules import Schedules
from tasks.rules.policy import Policy
from tasks.store.store import Store

__all__ = ["Controls", "DecisionResult"]


class Controls:
    def __init__(self, store: Store, policy: Policy | None = None) -> None:
        self.store = store
        self.commands = Commands(store)
        self.decisions = Decisions(store, policy)
        self.schedules = Schedules(store)
        self.cancel = self.commands.cancel
        self.pause = self.commands.pause
        self.resume = self.commands.resume
        self.retry = self.commands.retry
        self.decide = self.decisions.decide
        self.expire_approvals = self.decisions.expire_approvals
        self.escalate_approvals = self.decisions.escalate_approvals
        self.create_schedule = self.schedules.create_schedule
        self.fire_schedules = self.schedules.fire_schedules
