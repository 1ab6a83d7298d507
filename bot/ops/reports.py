"""Text and JSON reports of tasks for operators: `cowork tasks show` and
`cowork tasks export` (the audit trail as JSON lines)."""

from __future__ import annotations

import json
from typing import IO

from bot.application.presentation import event_line, task_text, view_json
from tasks.store.store import Store


async def show_task(store: Store, task_id: int, *, as_json: bool = False) -> str:
    view = await store.view(task_id)
    events = await store.events(task_id)
    if as_json:
        return json.dumps(view_json(view, events), indent=2, default=str)
    return task_text(view, events)


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
