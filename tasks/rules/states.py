"""The task and step state machines: which transitions are legal.

Pure: `check_transition` refuses an illegal move with `IllegalTransition`,
naming both states, so the store can run it inside the transaction that makes
the move.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    QUEUED = "queued"
    PLANNING = "planning"
    RUNNING = "running"
    WAITING = "waiting_approval"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting_approval"
    SLEEPING = "sleeping"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


T = TaskState
FINAL: frozenset[TaskState] = frozenset({T.SUCCEEDED, T.FAILED, T.CANCELLED, T.EXPIRED})
STEP_DONE: frozenset[StepState] = frozenset(
    {StepState.SUCCEEDED, StepState.SKIPPED, StepState.FAILED, StepState.CANCELLED}
)
# States a worker may claim: there is work to do right now (or at run_after).
CLAIMABLE: frozenset[TaskState] = frozenset({T.QUEUED, T.PLANNING, T.RUNNING})

_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    T.QUEUED: frozenset({T.PLANNING, T.PAUSED, T.CANCELLED, T.FAILED}),
    T.PLANNING: frozenset({T.RUNNING, T.WAITING, T.PAUSED, T.FAILED, T.CANCELLED}),
    T.RUNNING: frozenset({T.WAITING, T.PAUSED, T.SUCCEEDED, T.FAILED, T.CANCELLED}),
    T.WAITING: frozenset({T.RUNNING, T.PAUSED, T.FAILED, T.CANCELLED, T.EXPIRED}),
    T.PAUSED: frozenset({T.QUEUED, T.RUNNING, T.WAITING, T.CANCELLED, T.FAILED}),  # resume goes back to where it was
    T.FAILED: frozenset({T.RUNNING}),  # retry from the failed step
    T.EXPIRED: frozenset({T.RUNNING}),  # retry: ask for approval again
    T.SUCCEEDED: frozenset(),
    T.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, task_id: int | None, current: str, target: str):
        super().__init__(f"task {task_id} cannot go from {current} to {target}")
        self.task_id = task_id
        self.current = current
        self.target = target


def can_transition(current: str, target: str) -> bool:
    return TaskState(target) in _ALLOWED[TaskState(current)]


def check_transition(task_id: int | None, current: str, target: str) -> None:
    if not can_transition(current, target):
        raise IllegalTransition(task_id, current, target)


def is_final(state: str) -> bool:
    return TaskState(state) in FINAL


def sources_for(target: str) -> frozenset[str]:
    """The states a task may enter `target` from."""
    t = TaskState(target)
    return frozenset(s.value for s, allowed in _ALLOWED.items() if t in allowed)


# -- what a person's command writes (the shells are in tasks/engine/commands.py) -------


@dataclass(frozen=True)
class Move:
    """A task's move as a command decides it: where to, the event kind, the values set."""

    target: TaskState
    kind: str
    values: Mapping[str, Any]


def resume(*, planned: bool, waiting_step: bool, now: datetime) -> Move:
    """A paused task goes back to where it was: planning again if it has no plan,
    waiting for its approval if a step waits for one, running otherwise."""
    target = T.QUEUED if not planned else (T.WAITING if waiting_step else T.RUNNING)
    return Move(target, "task.resumed", {"pause_reason": None, "run_after": now, "started_at": now})


@dataclass(frozen=True)
class Retry:
    """A retry: the task's move, and which steps start again (and with what)."""

    move: Move
    steps_in: frozenset[str]
    step_values: Mapping[str, Any]


_AGAIN = frozenset({StepState.FAILED.value, StepState.CANCELLED.value, StepState.WAITING.value})
_FRESH_STEP: Mapping[str, Any] = {"state": StepState.PENDING.value, "attempts": 0, "error": None, "wake_at": None,
                                  "intent_at": None, "finished_at": None}  # fmt: skip


def retry(*, planned: bool, state: str, now: datetime) -> Retry:
    """Run a failed (or expired) task again from its failed steps; finished steps
    stay. A task that failed while planning plans again, through running's sources."""
    target = T.RUNNING if planned or state == T.FAILED else T.QUEUED
    values = {"error": None, "finished_at": None, "run_after": now, "started_at": now}
    return Retry(Move(target, "task.retried", values), _AGAIN, _FRESH_STEP)
