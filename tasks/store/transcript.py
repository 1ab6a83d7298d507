"""The transcript: reads and writes of the chat that Cowork hosts itself (the
console), one transaction each. People's messages and the bot's rendered
cards are kept here so a reload or a restart shows the same conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.store import statements as sql
from tasks.store.db import Database
from tasks.store.models import ChatMessage
from tasks.store.tx import Tx


def _message(row: Any) -> ChatMessage:
    return ChatMessage(**dict(row._mapping))


class Transcript:
    def __init__(self, db: Database, platform: str = "console"):
        self.db = db
        self.platform = platform

    async def add(
        self,
        *,
        channel: str,
        user: str,
        now: datetime,
        thread: str | None = None,
        text: str = "",
        card: dict[str, object] | None = None,
        html: str = "",
        key: str | None = None,
        private_to: str | None = None,
    ) -> ChatMessage:
        message = ChatMessage(
            platform=self.platform,
            channel=channel,
            thread=thread,
            user=user,
            text=text,
            card=card,
            html=html,
            key=key,
            private_to=private_to,
            created_at=now,
            updated_at=now,
        )
        values = message.model_dump(exclude={"id"})

        def q(tx: Tx) -> ChatMessage:
            message.id = int(tx.conn.execute(sql.message_insert(values)).scalar_one())
            return message

        return await self.db.run(q)

    async def update(
        self, message_id: int, *, text: str, card: dict[str, object] | None, html: str, now: datetime
    ) -> ChatMessage | None:
        """Edit a message in place; None when there is no such message."""
        values = {"text": text, "card": card, "html": html, "updated_at": now}

        def q(tx: Tx) -> ChatMessage | None:
            row = tx.conn.execute(sql.message_edit(self.platform, message_id, values)).first()
            return _message(row) if row else None

        return await self.db.run(q)

    async def get(self, message_id: int) -> ChatMessage | None:
        def q(tx: Tx) -> ChatMessage | None:
            row = tx.conn.execute(sql.message_by_id(self.platform, message_id)).first()
            return _message(row) if row else None

        return await self.db.run(q)

    async def find_key(self, key: str) -> ChatMessage | None:
        """The bot's message posted for an outbox key, if any."""

        def q(tx: Tx) -> ChatMessage | None:
            row = tx.conn.execute(sql.message_by_key(self.platform, key)).first()
            return _message(row) if row else None

        return await self.db.run(q)

    async def channel(self, channel: str, viewer: str, limit: int = 500) -> list[ChatMessage]:
        """The latest `limit` messages of a channel that `viewer` may see, oldest first."""

        def q(tx: Tx) -> list[ChatMessage]:
            rows = tx.conn.execute(sql.channel_messages(self.platform, channel, viewer, limit)).all()
            return [_message(r) for r in reversed(rows)]

        return await self.db.run(q)

    async def changed_since(self, since: datetime, limit: int = 500) -> list[ChatMessage]:
        """Messages written or edited after `since`, oldest change first: what other
        processes wrote, for the pages open on this one."""

        def q(tx: Tx) -> list[ChatMessage]:
            return [_message(r) for r in tx.conn.execute(sql.messages_changed(self.platform, since, limit)).all()]

        return await self.db.run(q)

    async def recent(self, channel: str, thread: str | None, limit: int) -> list[ChatMessage]:
        """The latest public messages of a thread (its root and replies) or of a
        whole channel, oldest first: what the `chat.history` skill reads."""

        def q(tx: Tx) -> list[ChatMessage]:
            rows = tx.conn.execute(sql.thread_messages(self.platform, channel, thread, limit)).all()
            return [_message(r) for r in reversed(rows)]

        return await self.db.run(q)
