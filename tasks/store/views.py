"""What the engine and the bot read of a task: its record with its steps and
approvals (`TaskView`), and the engine's in-memory view of a task it has just
planned (`PlannedView`, whose steps are plain `PlannedStep` values rather than
ORM records: the same values the plan inserted)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from tasks.rules.json_types import JSON
from tasks.store.models import Approval, Step, Task

S = TypeVar("S", Step, "PlannedStep")


class TaskOwner(Protocol):
    """What never changes on a task and every write about it needs: where its card and
    messages go and whose budget it spends. A `Task` is one; so is the row a task
    update returns (`RETURNING platform, conversation, requester`)."""

    @property
    def platform(self) -> str: ...
    @property
    def conversation(self) -> Mapping[str, object] | None: ...
    @property
    def requester(self) -> str: ...


@dataclass(slots=True)
class PlannedStep:
    """A step of a plan the engine has just saved, as its turn reads it: the
    same values as the inserted row, without building an ORM record."""

    task_id: int
    key: str
    skill: str
    args: dict[str, object] | None
    depends_on: list[str] | None
    position: int
    state: str
    idempotency_key: str | None
    attempts: int = 0
    tokens: int = 0
    cost: float = 0.0
    result: JSON = None
    error: str | None = None
    intent_at: datetime | None = None
    wake_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    id: int | None = None


@dataclass
class _View(Generic[S]):
    task: Task
    steps: list[S]
    approvals: list[Approval] = field(default_factory=list)

    def step(self, key: str) -> S:
        return _named(self.steps, key)


class PlannedView(_View[PlannedStep]):
    """The engine's view of a task it has just planned (see `PlannedStep`)."""


class TaskView(_View[Step]):
    """A task's record with its steps and approvals, as stored."""


def _named(steps: Sequence[S], key: str) -> S:
    for s in steps:
        if s.key == key:
            return s
    raise KeyError(key)


@dataclass
class Figures:
    """What /metrics reads of the whole deployment, in one transaction."""

    tasks: dict[str, int] = field(default_factory=dict)
    runnable: int = 0
    approvals_pending: int = 0
    tokens: int = 0
    dollars: float = 0.0
    # skill -> (cumulative counts per bucket, count, sum of seconds)
    step_seconds: dict[str, tuple[list[int], int, float]] = field(default_factory=dict)
