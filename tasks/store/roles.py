"""Roles one process holds at a time, across every process on the database.

A role is a lease row: its holder renews it well before it lapses, and once it
has lapsed (the holder died, or lost the database for longer than the lease)
any process may take it. Taking and renewing are one upsert, so two processes
asking at once never both get it. Used by the delivery loop: one process paces
the rate-limited platforms for everyone (bot/application/leadership.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tasks.store import statements as sql
from tasks.store.db import Database
from tasks.store.tx import Tx


class Roles:
    def __init__(self, db: Database):
        self.db = db

    async def hold(self, name: str, holder: str, now: datetime, seconds: float) -> bool:
        """Take or renew `name` for `seconds`: whether `holder` has it now."""
        until = now + timedelta(seconds=seconds)

        def q(tx: Tx) -> bool:
            return tx.conn.execute(sql.role_hold(self.db.dialect, name, holder, until, now)).scalar() == holder

        return await self.db.run(q)

    async def release(self, name: str, holder: str, now: datetime) -> None:
        """Let go of `name` at once (a clean stop), so another process need not wait for it to lapse."""
        await self.db.run(lambda tx: tx.conn.execute(sql.role_release(name, holder, now)))

    async def holder(self, name: str, now: datetime) -> str | None:
        """Who holds `name` now, if anyone."""

        def q(tx: Tx) -> str | None:
            row = tx.conn.execute(sql.role_holder(name, now)).first()
            return str(row.holder) if row else None

        return await self.db.run(q)
