"""Text and JSON reports of tasks for operators: `cowork tasks show` and
`cowork tasks export` (the audit trail as JSON lines)."""

from __future__ import annotations

import json
from typing import IO, Any

from tasks.store.store import Store
from tasks.store.views import TaskView


def view_json(view: TaskView, events: list[Any]) -> dict[str, Any]:
    t = view.task
    return {
        "task": t.model_dump(mode="json", exclude={"conversation"}),
        "steps": [s.model_dump(mode="json") for s in view.steps],
        "approvals": [a.model_dump(mode="json") for a in view.approvals],
        "events": [e.model_dump(mode="json") for e in events],
    }


async def show_task(store: Store, task_id: int, *, as_json: bool = False) -> str:
    view = await store.view(task_id)
    events = await store.events(task_id)
    if as_json:
        return json.dumps(view_json(view, events), indent=2, default=str)
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


async def export_events(store: Store, out: IO[str], *, task_id: int | None = None) -> int:
    n, after = 0, 0
    while True:
        batch = await store.events(task_id, after_id=after, limit=1000)
        if not batch:
            return n
        for e in batch:
            out.write(event_line(e))
        n += len(batch)
        after = batch[-1].id or after
