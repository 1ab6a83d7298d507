"""ConsoleAdapter: the console's "platform calls". Posting a card stores its
rendered HTML in the transcript and tells the open pages; the transcript is
the console's chat server, as Slack's API is Slack's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from adapters.chat import Card, ConversationRef, DeliveryError, MessageRef
from adapters.console.inbound import BOT, PLATFORM, Post, channel_name, dm_owner, known_channel
from adapters.console.live import Hub
from adapters.console.render import render, render_text


class Record(Protocol):
    """One stored message, as the transcript returns it."""

    @property
    def id(self) -> int | None: ...
    @property
    def channel(self) -> str: ...
    @property
    def thread(self) -> str | None: ...
    @property
    def user(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def card(self) -> dict[str, Any] | None: ...
    @property
    def html(self) -> str: ...
    @property
    def private_to(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


class TranscriptStore(Protocol):
    """Where the console keeps its messages (`tasks.store.transcript.Transcript`)."""

    async def add(
        self,
        *,
        channel: str,
        user: str,
        now: datetime,
        thread: str | None = None,
        text: str = "",
        card: dict[str, Any] | None = None,
        html: str = "",
        key: str | None = None,
        private_to: str | None = None,
    ) -> Record: ...

    async def update(
        self, message_id: int, *, text: str, card: dict[str, Any] | None, html: str, now: datetime
    ) -> Record | None: ...

    async def get(self, message_id: int) -> Record | None: ...

    async def find_key(self, key: str) -> Record | None: ...

    async def channel(self, channel: str, viewer: str, limit: int = 500) -> Sequence[Record]: ...

    async def recent(self, channel: str, thread: str | None, limit: int) -> Sequence[Record]: ...

    async def changed_since(self, since: datetime, limit: int = 500) -> Sequence[Record]: ...


def message_json(r: Record) -> dict[str, Any]:
    """A message as the page gets it (the HTML is already escaped and rendered)."""
    return {
        "id": r.id,
        "channel": r.channel,
        "thread": r.thread,
        "user": r.user,
        "bot": r.user == BOT,
        "text": r.text,
        "html": r.html,
        "private": r.private_to is not None,
        "buttons": bool(r.card and r.card.get("buttons")),
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
    }


def audience(r: Record) -> str | None:
    """Who may see a message: one person (a notice, a DM) or everyone (None)."""
    return r.private_to or dm_owner(r.channel)


def thread_of(r: Record) -> str | None:
    """The thread a reply to this message goes in (its own, or the one it starts)."""
    return r.thread or (str(r.id) if r.id is not None else None)


FEED_SECONDS = 0.5  # how often a process looks for what other processes wrote, while pages are open
FEED_OVERLAP = 5.0  # seconds looked back past the last change seen: commits land after their timestamps


class ConsoleAdapter:
    platform = PLATFORM

    def __init__(self, transcript: TranscriptStore, hub: Hub, clock: Callable[[], datetime]):
        self.transcript = transcript
        self.hub = hub
        self.clock = clock
        self._shown: dict[int, datetime] = {}  # message id -> the version the pages here were sent
        self._cursor = clock()  # the latest change seen in the transcript

    def _publish(self, r: Record, kind: str) -> None:
        if r.id is not None and self.hub.count:
            self._shown[r.id] = max(r.updated_at, self._shown.get(r.id, r.updated_at))
        self.hub.publish({"type": kind, "message": message_json(r)}, private_to=audience(r))

    async def catch_up(self) -> int:
        """Send the pages open on this process what other processes wrote to the
        transcript since the last look (with several web processes, the one that
        delivered a card or took a message is not always the one a page is on);
        what this process sent itself is not sent again. The number sent."""
        if not self.hub.count:
            self._cursor, self._shown = self.clock(), {}
            return 0
        since = self._cursor - timedelta(seconds=FEED_OVERLAP)
        sent = 0
        for r in await self.transcript.changed_since(since):
            self._cursor = max(self._cursor, r.updated_at)
            if r.id is None or (r.id in self._shown and r.updated_at <= self._shown[r.id]):
                continue
            self._publish(r, "update" if r.id in self._shown or r.created_at <= since else "message")
            sent += 1
        cutoff = self._cursor - timedelta(seconds=2 * FEED_OVERLAP)
        self._shown = {i: at for i, at in self._shown.items() if at >= cutoff}
        return sent

    @staticmethod
    def _channel(conversation: ConversationRef) -> str:
        channel = channel_name(conversation.channel)
        if not known_channel(channel):
            raise DeliveryError(f"channel_not_found: {conversation.channel}", permanent=True)
        return channel

    async def check_target(self, conversation: ConversationRef) -> str | None:
        """Why the bot cannot post to the conversation's channel, or None."""
        if known_channel(channel_name(conversation.channel)):
            return None
        return f"there is no channel {conversation.channel} here"

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        channel = self._channel(conversation)
        r = await self.transcript.add(
            channel=channel,
            thread=conversation.thread,
            user=BOT,
            text=card.fallback(),
            card=card.to_json(),
            html=render(card),
            key=key,
            now=self.clock(),
        )
        self._publish(r, "message")
        return MessageRef(str(r.id), channel)

    async def update(self, conversation: ConversationRef, message: MessageRef, card: Card) -> MessageRef:
        if not message.id.isdigit():
            raise DeliveryError(f"message_not_found: {message.id}", permanent=True)
        r = await self.transcript.update(
            int(message.id),
            text=card.fallback(),
            card=card.to_json(),
            html=render(card),
            now=self.clock(),
        )
        if r is None:
            raise DeliveryError(f"message_not_found: {message.id}", permanent=True)
        self._publish(r, "update")
        return MessageRef(str(r.id), r.channel)

    async def notify(self, conversation: ConversationRef, user: str, text: str) -> None:
        r = await self.transcript.add(
            channel=self._channel(conversation),
            thread=conversation.thread,
            user=BOT,
            text=text,
            html=f'<div class="msg-text"><p class="card-line">{render_text(text)}</p></div>',
            private_to=user,
            now=self.clock(),
        )
        self._publish(r, "message")

    async def find(self, conversation: ConversationRef, key: str) -> MessageRef | None:
        r = await self.transcript.find_key(key)
        return MessageRef(str(r.id), r.channel) if r is not None else None

    # -- the page's side ----------------------------------------------------------

    async def receive(self, post: Post) -> Record:
        """Store a person's message and show it on the open pages."""
        html = f'<div class="msg-text"><p class="card-line">{render_text(post.text)}</p></div>'
        r = await self.transcript.add(
            channel=post.channel,
            thread=post.thread,
            user=post.user,
            text=post.text,
            html=html,
            now=self.clock(),
        )
        self._publish(r, "message")
        return r

    async def message(self, message_id: int) -> Record | None:
        return await self.transcript.get(message_id)

    async def history(self, conversation: ConversationRef, limit: int) -> list[dict[str, Any]]:
        """Public messages of the conversation's thread (or channel), oldest first,
        for the `chat.history` skill: people's words, and the bot's as text."""
        records = await self.transcript.recent(channel_name(conversation.channel),
                                               conversation.thread, limit)  # fmt: skip
        return [{"user": r.user, "text": r.text, "ts": str(r.id)} for r in records]

    async def messages(self, channel: str, viewer: str) -> list[dict[str, Any]]:
        return [message_json(r) for r in await self.transcript.channel(channel, viewer)]
