"""How a task is shown outside chat (the chat cards are `cards`): the console's task list and
task page data (`task_row`, `task_json`), and the operator's views (`view_json` and `task_text`
for `cowork tasks show`, `event_line` for exports)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.application import cards
from tasks.rules.states import FINAL
from tasks.store.models import Approval, Event, Step, Task
from tasks.store.views import TaskView


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def task_row(task: Task, now: datetime) -> dict[str, Any]:
    conv = task.conversation or {}
    channel = str(conv.get("channel", ""))
    return {
        "id": task.id,
        "title": cards.task_title(task),
        "summary": cards.task_title(task).split(": ", 1)[-1],
        "state": task.state,
        "label": cards.LABELS.get(task.state, task.state),
        "final": task.state in FINAL,
        "text": task.text,
        "playbook": task.playbook,
        "params": task.params,
        "requester": task.requester,
        "requester_name": task.requester_name,
        "platform": task.platform,
        "where": f"{task.platform} #{channel.lstrip('#')}" if channel else task.platform,
        "created_at": _iso(task.created_at),
        "started_at": _iso(task.started_at),
        "finished_at": _iso(task.finished_at),
        "elapsed": cards.duration(cards.elapsed(task, now)),
        "tokens": task.tokens,
        "cost": task.cost,
        "cost_text": cards.money(task.cost),
        "error": task.error,
        "pause_reason": task.pause_reason,
        "plan": task.plan,
    }


def step_json(s: Step) -> dict[str, Any]:
    return {
        "key": s.key,
        "skill": s.skill,
        "args": s.args,
        "depends_on": s.depends_on or [],
        "state": s.state,
        "attempts": s.attempts,
        "result": s.result,
        "error": s.error,
        "started_at": _iso(s.started_at),
        "finished_at": _iso(s.finished_at),
        "tokens": s.tokens,
        "cost": s.cost,
    }


def approval_json(a: Approval) -> dict[str, Any]:
    return {
        "id": a.id,
        "step_key": a.step_key,
        "skill": a.skill,
        "state": a.state,
        "approvers": a.approvers or [],
        "required": a.required,
        "decisions": a.decisions or [],
        "decided_by": a.decided_by,
        "decided_at": _iso(a.decided_at),
        "expires_at": _iso(a.expires_at),
        "created_at": _iso(a.created_at),
        "reason": a.reason,
        "summary": a.summary,
    }


def task_json(view: TaskView, events: Sequence[Event], now: datetime) -> dict[str, Any]:
    """Everything the task page shows: plan, steps, approvals, timeline, cost."""
    return {
        "task": task_row(view.task, now),
        "steps": [step_json(s) for s in view.steps],
        "approvals": [approval_json(a) for a in view.approvals],
        "events": [{"at": _iso(e.at), "actor": e.actor, "kind": e.kind, "detail": e.detail} for e in events],
    }


def view_json(view: TaskView, events: Sequence[Event]) -> dict[str, Any]:
    t = view.task
    return {
        "task": t.model_dump(mode="json", exclude={"conversation"}),
        "steps": [s.model_dump(mode="json") for s in view.steps],
        "approvals": [a.model_dump(mode="json") for a in view.approvals],
        "events": [e.model_dump(mode="json") for e in events],
    }


def task_text(view: TaskView, events: Sequence[Event]) -> str:
    """`cowork tasks show`: the task, its plan and its audit trail as text."""
    t = view.task
    lines = [
        f"Task #{t.id}  {t.state}" + (f"  ({t.pause_reason})" if t.pause_reason else ""),
        f"  requested by {t.requester} on {t.platform} at {t.created_at:%Y-%m-%d %H:%M:%S} UTC",
        f"  {'playbook ' + t.playbook if t.playbook else 'text: ' + ' '.join(t.text.split())[:200]}",
        f"  tokens {t.tokens}  cost ${t.cost:.4f}  steps run {t.steps_run}",
    ]
    if t.error:
        lines.append(f"  error: {t.error}")
    lines.append("Plan:" if view.steps else "Plan: (not planned yet)")
    for s in view.steps:
        deps = f" after {', '.join(s.depends_on or [])}" if s.depends_on else ""
        lines.append(f"  {s.key:<16} {s.skill:<16} {s.state:<17} attempts {s.attempts}{deps}")
        if s.error:
            lines.append(f"  {'':<16} error: {s.error}")
    lines.append("Events:")
    for e in events:
        detail = json.dumps(e.detail, default=str) if e.detail else ""
        lines.append(f"  {e.at:%H:%M:%S}  {e.actor:<20} {e.kind:<20} {detail[:160]}")
    return "\n".join(lines)


def event_line(event: Any) -> str:
    """One audit event as a JSON line (`cowork tasks export`, `cowork db prune --export`)."""
    return json.dumps(event.model_dump(mode="json"), default=str) + "\n"
