"""What an outbox row shows, rendered from the records as they are when it is
sent (so a coalesced card shows the latest state): the task card, with its
approvals and, once the task has ended, its summary; a message's own card."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.chat import Card
from bot.application import cards
from tasks.store.store import NotFound, Store


async def task_card(store: Store, task_id: int, now: datetime, base_url: str) -> Card:
    """The task's card from its records as they are now (with its summary once it has ended)."""
    view = await store.view(task_id)
    effects = cards.effects_of(await store.events(task_id)) if view.task.state in cards.FINAL else []
    return cards.task_card(view, now, base_url, effects)


async def render(store: Store, kind: str, payload: dict[str, Any], now: datetime, base_url: str) -> Card:
    """The card an outbox row of `kind` shows now."""
    if kind == "task_card":
        return await task_card(store, int(payload["task_id"]), now, base_url)
    # Approval cards and summaries of their own: rows written before both moved onto the task card.
    if kind == "approval_card":
        approval = await store.get_approval(int(payload["approval_id"]))
        if approval is None:
            raise NotFound(f"no approval {payload['approval_id']}")
        task = await store.get_task(approval.task_id)
        if task is None:
            raise NotFound(f"no task {approval.task_id}")
        return cards.approval_card(approval, task, now, base_url)
    if kind == "summary":
        view = await store.view(int(payload["task_id"]))
        events = await store.events(view.task.id)
        return cards.summary_card(view, events, now, base_url)
    if "card" in payload:
        return Card.from_json(payload["card"])
    text = str(payload.get("text", ""))
    return Card(title="", text=text, body=(text,))
