"""Approval decisions: pure functions. Who may decide, is the decision still
valid, and what the approval becomes.

An approver is a person of one platform's workspace: (platform, tenant, user).
The same user id in another workspace, or on another platform (the console
beside Slack), is somebody else."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from tasks.rules.states import StepState, TaskState


def args_hash(skill: str, args: Mapping[str, Any]) -> str:
    """Bind an approval to exactly what will be done: skill plus normalized args
    (the resolved arguments, placeholders filled in: what the card shows)."""
    canonical = json.dumps({"skill": skill, "args": args}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


STALE = "the step changed since approval was asked; it is asked again"


@dataclass(frozen=True)
class Approver:
    """Who clicked: a user id means something only within its platform and workspace."""

    platform: str
    tenant: str
    user: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of one click: accepted (with the approval's new state) or refused."""

    accepted: bool
    reason: str = ""
    new_state: str = "pending"
    decisions: tuple[dict[str, Any], ...] = ()


def decide(
    *,
    state: str,
    approvers: Sequence[str],
    required: int,
    decisions: Sequence[Mapping[str, Any]],
    expires_at: datetime,
    bound_hash: str,
    current_hash: str,
    approver: Approver,
    task_workspace: tuple[str, str],
    approve: bool,
    now: datetime,
) -> Verdict:
    """`task_workspace` is the task's (platform, tenant). A refusal whose new state
    is `superseded` means what the step would do changed: ask again."""
    if (approver.platform, approver.tenant) != task_workspace:
        return Verdict(False, "this approval belongs to another workspace", state)
    user = approver.user
    if state != "pending":
        return Verdict(False, f"this approval was already {state}", state)
    if now >= expires_at:
        return Verdict(False, "this approval has expired", "expired")
    if user not in approvers:
        return Verdict(False, "you are not allowed to decide this approval", state)
    if bound_hash != current_hash:
        return Verdict(False, STALE, "superseded")
    if any(d["user"] == user for d in decisions):
        return Verdict(False, "you have already decided this approval", state)
    new: tuple[dict[str, Any], ...] = (
        *(dict(d) for d in decisions),
        {"user": user, "approve": approve, "at": now.isoformat()},
    )
    if not approve:
        return Verdict(True, "rejected", "rejected", tuple(new))
    approvals = sum(1 for d in new if d["approve"])
    state_after = "approved" if approvals >= required else "pending"
    return Verdict(True, "approved" if state_after == "approved" else "noted", state_after, tuple(new))


# -- what a decision writes (the shells: tasks/engine/decisions.py, tasks/engine/steps.py) -----


@dataclass(frozen=True)
class AfterDecision:
    """What an approval that was decided (or superseded) does to its step and task:
    `step` the step's new values; `task` "resume" (a waiting task runs again),
    "due" (a running task looks at the step now) or "stay"."""

    step: Mapping[str, Any]
    task: Literal["resume", "due", "stay"]


def after_decision(*, state: str, on_reject: str, user: str, task_state: str, now: datetime) -> AfterDecision:
    """`state` is the approval's new state: approved, rejected or superseded (the
    step runs its turn again, which asks anew)."""
    step: dict[str, Any]
    if state in ("approved", "superseded"):
        step = {"state": StepState.PENDING.value}
    elif on_reject == "skip":
        step = {"state": StepState.SKIPPED.value, "finished_at": now}
    else:
        step = {"state": StepState.FAILED.value, "finished_at": now, "error": f"rejected by {user}"}
    task: Literal["resume", "due", "stay"] = "stay"
    if task_state == TaskState.WAITING.value:
        task = "resume"
    elif task_state == TaskState.RUNNING.value:
        task = "due"
    return AfterDecision(step, task)


class Pending(Protocol):
    """An approval row as the expiry reads it."""

    @property
    def id(self) -> int: ...
    @property
    def task_id(self) -> int: ...
    @property
    def step_key(self) -> str: ...


@dataclass(frozen=True)
class Expiry:
    """An approval past its expiry: it expires; when its task waits (for it), the
    task expires too, with `task_error`."""

    approval_id: int
    task_id: int
    step_key: str
    task_error: str | None


def expiries(due: Sequence[Pending], task_states: Mapping[int, str]) -> list[Expiry]:
    """`due`: pending approvals past their expiry, in order; `task_states`: their
    tasks' states now. A task expires once, with its first expired approval."""
    states = dict(task_states)
    out = []
    for a in due:
        error = None
        if states.get(a.task_id) == TaskState.WAITING.value:
            error = f"approval for step {a.step_key} expired"
            states[a.task_id] = TaskState.EXPIRED.value
        out.append(Expiry(a.id, a.task_id, a.step_key, error))
    return out


class Asked(Protocol):
    """The latest approval asked for a step."""

    @property
    def id(self) -> int | None: ...
    @property
    def state(self) -> str: ...
    @property
    def args_hash(self) -> str: ...


@dataclass(frozen=True)
class Gate:
    """Before a step that needs approval runs: "run" (approved for these very
    values), "wait" (a person has not decided yet) or "ask" (for a new approval,
    which `supersedes` the one given to other values, if any)."""

    action: Literal["run", "wait", "ask"]
    supersedes: int | None = None


def gate(latest: Asked | None, bound: str) -> Gate:
    """`bound`: the hash of the values that will run (`args_hash`); an approval of
    other values does not count."""
    if latest is not None and latest.state == "approved" and latest.args_hash == bound:
        return Gate("run")
    if latest is not None and latest.state == "pending":
        return Gate("wait")
    return Gate("ask", latest.id if latest is not None and latest.state == "approved" else None)
