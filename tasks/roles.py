"""Roles one process holds at a time, across every process on the database.

A role is a lease row: its holder renews it well before it lapses, and once it
has lapsed (the holder died, or lost the database for longer than the lease)
any process may take it. Taking and renewing are one upsert, so two processes
asking at once never both get it. Used by the delivery loop: one process paces
the rate-limited platforms for everyone (bot/delivery.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update

from tasks.db import Database
from tasks.models import LEASE
from tasks.tx import Tx


class Roles:
    def __init__(self, db: Database):
        self.db = db

    async def hold(self, name: str, holder: str, now: datetime, seconds: float) -> bool:
        """Take or renew `name` for `seconds`: whether `holder` has it now."""
        until = now + timedelta(seconds=seconds)

        def q(tx: Tx) -> bool:
            ins = self.db.dialect.insert(LEASE).values(name=name, holder=holder, expires_at=until)
            upsert = ins.on_conflict_do_update(
                index_elements=["name"],
                set_={"holder": holder, "expires_at": until},
                where=or_(LEASE.c.holder == holder, LEASE.c.expires_at <= now),
            ).returning(LEASE.c.holder)
            return tx.conn.execute(upsert).scalar() == holder

        return await self.db.run(q)

    async def release(self, name: str, holder: str, now: datetime) -> None:
        """Let go of `name` at once (a clean stop), so another process need not wait for it to lapse."""
        await self.db.run(
            lambda tx: tx.conn.execute(
                update(LEASE).where(LEASE.c.name == name, LEASE.c.holder == holder).values(expires_at=now)
            )
        )

    async def holder(self, name: str, now: datetime) -> str | None:
        """Who holds `name` now, if anyone."""

        def q(tx: Tx) -> str | None:
            row = tx.conn.execute(LEASE.select().where(LEASE.c.name == name, LEASE.c.expires_at > now)).first()
            return str(row.holder) if row else None

        return await self.db.run(q)
