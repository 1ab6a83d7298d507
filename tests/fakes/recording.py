"""A chat platform in memory for the bot's own tests: every post, edit and notice kept."""

from __future__ import annotations

from typing import Any

from adapters.chat import Card, ConversationRef, DeliveryError, MessageRef


class RecordingAdapter:
    """A chat platform in memory: keeps every message as the platform would."""

    platform = "console"

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, Any]] = []
        self.notices: list[tuple[str, str]] = []
        self.fail_next: list[DeliveryError] = []

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        if self.fail_next:
            raise self.fail_next.pop(0)
        mid = f"m{len(self.messages) + 1}"
        self.messages[mid] = {"card": card, "channel": conversation.channel, "thread": conversation.thread, "key": key}
        self.log.append(("post", mid))
        return MessageRef(mid, conversation.channel)

    async def update(self, conversation: ConversationRef, message: MessageRef, card: Card) -> MessageRef:
        self.messages[message.id]["card"] = card
        self.log.append(("update", message.id))
        return message

    async def notify(self, conversation: ConversationRef, user: str, text: str) -> None:
        self.notices.append((user, text))

    async def find(self, conversation: ConversationRef, key: str) -> MessageRef | None:
        for mid, m in self.messages.items():
            if m["key"] == key:
                return MessageRef(mid, m["channel"])
        return None

    def titles(self) -> list[str]:
        return [m["card"].title for m in self.messages.values()]
