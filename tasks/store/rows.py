"""The rows a state change writes besides the task's own: its audit event and
its outbox rows (a card refresh, a message)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.store.models import OUTBOX
from tasks.store.tx import Tx


def card_key(task_id: int) -> str:
    return f"task:{task_id}"


def event_row(task_id: int | None, actor: str, kind: str, now: datetime, **detail: Any) -> dict[str, Any]:
    return {"task_id": task_id, "at": now, "actor": actor, "kind": kind, "detail": detail or None}


def outbox_row(
    *,
    task_id: int | None,
    platform: str,
    kind: str,
    conversation: dict[str, Any] | None,
    now: datetime,
    card_key: str | None = None,
    payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
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


def card_update(tx: Tx, task_id: int, platform: str, conversation: dict[str, Any] | None, now: datetime) -> None:
    """Queue a refresh of the task's card (rendered from the task's state when delivered)."""
    if conversation:
        tx.insert_later(
            OUTBOX,
            outbox_row(
                task_id=task_id, platform=platform, kind="task_card", conversation=conversation,
                now=now, card_key=card_key(task_id), payload={"task_id": task_id},
            ),
        )  # fmt: skip


def summary_update(tx: Tx, task_id: int, platform: str, conversation: dict[str, Any] | None, now: datetime) -> None:
    """Queue the completion summary of a task that ended, for its thread."""
    if conversation:
        tx.insert_later(
            OUTBOX,
            outbox_row(
                task_id=task_id, platform=platform, kind="summary", conversation=conversation,
                now=now, payload={"task_id": task_id},
            ),
        )  # fmt: skip


def approval_card_update(
    tx: Tx, task_id: int, approval_id: int, platform: str, conversation: dict[str, Any] | None, now: datetime
) -> None:
    """Queue the approval card of `approval_id` (rendered from the approval's state when delivered)."""
    if conversation:
        tx.insert_later(
            OUTBOX,
            outbox_row(
                task_id=task_id, platform=platform, kind="approval_card", conversation=conversation,
                now=now, card_key=f"approval:{approval_id}", payload={"approval_id": approval_id},
            ),
        )  # fmt: skip
