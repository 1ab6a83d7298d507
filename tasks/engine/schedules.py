"""Recurring schedules: kept, and fired by the clock. Firing enqueues one task
per due fire time, deduplicated by (schedule, fire time), so several workers
firing at once make one task."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from tasks.rules.clock import next_fire
from tasks.store import statements as sql
from tasks.store.store import NewTask, Store
from tasks.store.tx import Tx


class Due(Protocol):
    """A schedule row as firing reads it."""

    @property
    def id(self) -> int: ...
    @property
    def next_fire_at(self) -> datetime: ...
    @property
    def cron(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def platform(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def requester(self) -> str: ...
    @property
    def conversation(self) -> dict[str, object] | None: ...
    @property
    def text(self) -> str: ...
    @property
    def playbook(self) -> str | None: ...
    @property
    def params(self) -> dict[str, object] | None: ...


class Schedules:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    async def create_schedule(self, *, name: str, cron: str, timezone: str, new: NewTask,
                              now: datetime) -> int:  # fmt: skip
        first = next_fire(cron, timezone, now)

        def q(tx: Tx) -> int:
            sid = tx.conn.execute(sql.schedule_insert({
                "name": name, "cron": cron, "timezone": timezone, "platform": new.platform, "tenant": new.tenant,
                "requester": new.requester, "conversation": new.conversation, "text": new.text,
                "playbook": new.playbook, "params": new.params, "enabled": True, "next_fire_at": first,
                "created_at": now,
            })).scalar_one()  # fmt: skip
            return int(sid)

        return await self.db.run(q)

    async def fire_schedules(self, now: datetime) -> list[int]:
        """Enqueue one task per due fire time; the ids of the tasks created."""

        def q(tx: Tx) -> list[int]:
            due = tx.conn.execute(sql.schedules_due(now)).all()
            created: list[int] = []
            for s in due:
                created.extend(self._fire(tx, s, now))
            return created

        return await self.db.run(q)

    def _fire(self, tx: Tx, s: Due, now: datetime) -> list[int]:
        fire_at = s.next_fire_at
        new = NewTask(
            platform=s.platform, tenant=s.tenant, dedupe_key=f"schedule:{s.id}:{fire_at.isoformat()}",
            requester=s.requester, conversation=s.conversation, text=s.text, playbook=s.playbook,
            params=s.params,
        )  # fmt: skip
        task_id, created = self.store.create_in(tx, new, now)
        following = next_fire(s.cron, s.timezone, max(fire_at, now - timedelta(seconds=1)))
        tx.conn.execute(sql.schedule_fired(s.id, fire_at, following))
        return [task_id] if created else []
