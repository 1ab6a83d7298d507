"""The rows a state change writes besides the task's own: its audit event and
its outbox rows (a card refresh, a message)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from tasks.store.models import OUTBOX
from tasks.store.tx import Tx


def card_key(task_id: int) -> str:
    return f"task:{task_id}"


def event_row(task_id: int | None, actor: str, kind: str, now: datetime, **detail: object) -> dict[str, object]:
    return {"task_id": task_id, "at": now, "actor": actor, "kind": kind, "detail": detail or None}


def outbox_row(
    *,
    task_id: int | None,
    platform: str,
    kind: str,
    conversation: Mapping[str, object] | None,
    now: datetime,
    card_key: str | None = None,
    payload: Mapping[str, object] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, object]:
    return {
        "task_id": task_id,
        "platform": platform,
        "kind": kind,
        "card_key": card_key,
        "conversation": conversation,
        "payload": payload or {},
        "idempotency_key": idempotency_key,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def card_update(tx: Tx, task_id: int, platform: str, conversation: Mapping[str, object] | None, now: datetime) -> None:
    """Queue a refresh of the task's card (rendered from the task's state when delivered)."""
    if conversation:
        tx.insert_later(
            OUTBOX,
            outbox_row(
                task_id=task_id, platform=platform, kind="task_card", conversation=conversation,
                now=now, card_key=card_key(task_id), payload={"task_id": task_id},
            ),
        )  # fmt: skip
