"""The bot's neutral cards: task card, approval card, completion summary, help
and lists. Pure functions of records and time; adapters render them natively."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adapters.chat import Button, Card, Field
from tasks.planning.playbooks import Playbook
from tasks.store.models import Approval, Event, Task
from tasks.store.views import TaskView

ICONS = {
    "pending": "○", "running": "◐", "waiting_approval": "⏸", "sleeping": "◷", "succeeded": "✓",
    "failed": "✗", "skipped": "–", "cancelled": "⊘",
}  # fmt: skip
TONES: dict[str, Any] = {
    "succeeded": "good", "failed": "bad", "expired": "bad", "cancelled": "warning",
    "paused": "warning", "waiting_approval": "warning",
}  # fmt: skip
FINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
LABELS = {
    "queued": "Queued", "planning": "Planning", "running": "Running",
    "waiting_approval": "Waiting for approval", "paused": "Paused", "succeeded": "Done",
    "failed": "Failed", "cancelled": "Cancelled", "expired": "Expired",
}  # fmt: skip


def duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def elapsed(task: Task, now: datetime) -> float:
    start = task.created_at
    end = task.finished_at or now
    return (end - start).total_seconds()


def money(cost: float) -> str:
    return f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"


def task_title(task: Task) -> str:
    what = f"run {task.playbook}" if task.playbook else (task.text or "task")
    what = " ".join(what.split())
    return f"Task #{task.id}: {what[:80]}{'…' if len(what) > 80 else ''}"


def task_link(base_url: str, task_id: int | None) -> str | None:
    return f"{base_url.rstrip('/')}/tasks/{task_id}" if base_url and task_id else None


def task_card(view: TaskView, now: datetime, base_url: str = "", effects: Sequence[str] = ()) -> Card:
    """The task's one card in its thread: its state and steps, the approvals its
    steps ask for (with the buttons while they wait), and, once it has ended, the
    summary (outcome, what it did). `effects`: what the steps did (`effects_of`)."""
    task = view.task
    state = LABELS.get(task.state, task.state)
    steps = tuple(
        Field(f"{ICONS.get(s.state, '?')} {s.key}", f"{s.skill} · {s.state.replace('_', ' ')}"
              + (f" (attempt {s.attempts})" if s.attempts > 1 else ""))
        for s in view.steps
    )  # fmt: skip
    asks = shown_approvals(view.approvals)
    buttons = tuple(b for a in asks for b in _approval_buttons(a, task, now, several=_pending(asks, now) > 1))
    return Card(
        title=task_title(task), text=f"{task_title(task)} · {state}", tone=TONES.get(task.state, "info"),
        fields=_task_fields(view, state, now), steps=steps,
        body=(*_task_notes(view), *(_approval_text(a, now) for a in asks), *_outcome(task, state, effects)),
        buttons=buttons, link=task_link(base_url, task.id), footer=f"Task #{task.id} · {task.platform}",
    )  # fmt: skip


def _task_fields(view: TaskView, state: str, now: datetime) -> tuple[Field, ...]:
    task = view.task
    fields = [Field("Status", state), Field("Requested by", task.requester_name or task.requester),
              Field("Time" if task.finished_at else "Elapsed", duration(elapsed(task, now)))]  # fmt: skip
    if task.state in FINAL:
        done = sum(1 for s in view.steps if s.state == "succeeded")
        fields.append(Field("Steps", f"{done} of {len(view.steps)} done"))
    return (*fields, Field("Tokens", str(task.tokens)), Field("Cost", money(task.cost)))


def _task_notes(view: TaskView) -> list[str]:
    task = view.task
    body = []
    if task.state == "planning" or (task.state == "queued" and not view.steps):
        body.append("Planning the steps…")
        if task.state == "planning" and task.pause_reason:
            body.append(task.pause_reason)  # waiting for the LLM: why, and until when
    if task.pause_reason and task.state == "paused":
        body.append(f"Paused: {task.pause_reason}")
    if task.error and task.state in ("failed", "expired"):
        body.append(f"Error: {task.error}")
    return body


def _outcome(task: Task, state: str, effects: Sequence[str]) -> list[str]:
    """The summary, on the card of a task that ended."""
    if task.state not in FINAL:
        return []
    return [f"Outcome: {state}", "What I did: " + ("; ".join(effects) if effects else "no side effects")]


def effects_of(events: Sequence[Event]) -> list[str]:
    """What the task's steps did, from their `step.succeeded` events."""
    return [str(e) for ev in events if ev.kind == "step.succeeded" for e in _listed((ev.detail or {}).get("effects"))]


def _listed(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def shown_approvals(approvals: Sequence[Approval]) -> list[Approval]:
    """The approvals a task card shows: the latest one asked for each step, in the order asked."""
    latest: dict[str, Approval] = {}
    for a in sorted(approvals, key=lambda a: a.id or 0):
        latest[a.step_key] = a
    return sorted(latest.values(), key=lambda a: a.id or 0)


def _pending(approvals: Sequence[Approval], now: datetime) -> int:
    return sum(1 for a in approvals if a.state == "pending" and now < a.expires_at)


def _approval_buttons(approval: Approval, task: Task, now: datetime, *, several: bool) -> tuple[Button, ...]:
    if approval.state != "pending" or now >= approval.expires_at:
        return ()
    value = {"approval_id": approval.id, "task_id": task.id}
    which = f" {approval.step_key}" if several else ""
    return (Button(f"Approve{which}", "approve", value, "primary"), Button(f"Reject{which}", "reject", value, "danger"))


def _approval_text(approval: Approval, now: datetime) -> str:
    """One approval on the task card: what is asked, and who decided what."""
    if approval.state == "pending" and now < approval.expires_at:
        who = ", ".join(approval.approvers or []) + (f" ({approval.required} needed)" if approval.required > 1 else "")
        lines = [f"Approval needed for step {approval.step_key}", *_approval_details(approval),
                 f"Approvers: {who}", f"Expires: {approval.expires_at.strftime('%Y-%m-%d %H:%M UTC')}"]  # fmt: skip
        return "\n".join(lines)
    return f"Approval for step {approval.step_key} ({approval.skill}): {_decided(approval, now)}"


def _approval_details(approval: Approval) -> list[str]:
    s = approval.summary or {}
    body = [f"What will be done: {approval.skill}"]
    if s.get("target"):
        body.append(f"Where: {s['target']}")
    if s.get("why"):
        body.append(f"Why a person is asked: {s['why']}")
    if s.get("text"):
        body.append(f"Text to be posted:\n{s['text']}")
    args = s.get("args")
    shown = {k: v for k, v in args.items() if k != "text"} if isinstance(args, dict) else {}
    if shown:
        body.append("Arguments: " + json.dumps(shown, ensure_ascii=False, default=str)[:1500])
    return body


def approval_card(approval: Approval, task: Task, now: datetime, base_url: str = "") -> Card:
    """One approval on its own (the Slack App Home lists those waiting for a person)."""
    fields = (
        Field("Step", approval.step_key),
        Field("Requested by", task.requester_name or task.requester),
        Field("Approvers", ", ".join(approval.approvers or [])
              + (f" ({approval.required} needed)" if approval.required > 1 else "")),
        Field("Expires", approval.expires_at.strftime("%Y-%m-%d %H:%M UTC")),
    )  # fmt: skip
    pending = approval.state == "pending" and now < approval.expires_at
    buttons = _approval_buttons(approval, task, now, several=False)
    footer = "" if pending else _decided(approval, now)
    title = f"Approval needed for task #{task.id}" if pending else f"Approval for task #{task.id}"
    return Card(title=title, text=f"{title}: {approval.skill}", tone="warning" if pending else
                ("good" if approval.state == "approved" else "bad"), fields=fields,
                body=tuple(_approval_details(approval)), buttons=buttons, link=task_link(base_url, task.id),
                footer=footer)  # fmt: skip


def _decided(approval: Approval, now: datetime) -> str:
    when = approval.decided_at.strftime("%Y-%m-%d %H:%M UTC") if approval.decided_at else ""
    if approval.state == "approved":
        return f"Approved by {approval.decided_by} at {when}"
    if approval.state == "rejected":
        return f"Rejected by {approval.decided_by} at {when}"
    if approval.state == "cancelled":
        return "No longer needed: the task was cancelled"
    if approval.state == "superseded":
        return "No longer valid: what the step would do changed since; a new approval is asked"
    return "Expired without a decision"


def summary_card(view: TaskView, events: Sequence[Event], now: datetime, base_url: str = "") -> Card:
    """A separate completion summary: only for `summary` outbox rows written before the
    summary became the task card's final state."""
    task = view.task
    outcome = LABELS.get(task.state, task.state)
    body = [f"Outcome: {outcome}"]
    if task.error:
        body.append(f"Error: {task.error}")
    effects = effects_of(events)
    body.append("What I did: " + ("; ".join(effects) if effects else "no side effects"))
    done = sum(1 for s in view.steps if s.state == "succeeded")
    fields = (
        Field("Steps", f"{done} of {len(view.steps)} done"),
        Field("Time", duration(elapsed(task, now))),
        Field("Tokens", str(task.tokens)),
        Field("Cost", money(task.cost)),
    )
    title = f"Task #{task.id} {outcome.lower()}"
    return Card(title=title, text=f"{title}: {task_title(task)}", tone=TONES.get(task.state, "info"),
                fields=fields, body=tuple(body), link=task_link(base_url, task.id))  # fmt: skip


def text_card(text: str, title: str = "Cowork") -> Card:
    return Card(title=title, text=text, body=(text,))


def help_card(help_text: str, playbooks: dict[str, Playbook]) -> Card:
    body = [help_text]
    if playbooks:
        lines = [f"• `{b.usage()}`: {b.description}" for b in sorted(playbooks.values(), key=lambda b: b.name)]
        body.append("Playbooks:\n" + "\n".join(lines))
    return Card(title="Cowork help", text="Cowork help", body=tuple(body))


def list_card(tasks: Sequence[Task], now: datetime, base_url: str = "") -> Card:
    if not tasks:
        return text_card("You have no tasks yet. Mention me with some work, or say `help`.", "Your tasks")
    lines = [f"#{t.id} · {LABELS.get(t.state, t.state)} · {task_title(t).split(': ', 1)[-1]}" for t in tasks]
    return Card(title="Your tasks", text="Your tasks", body=("\n".join(lines),),
                link=f"{base_url.rstrip('/')}/tasks" if base_url else None, link_label="All tasks")  # fmt: skip
