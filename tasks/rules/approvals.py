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
from typing import Any


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
