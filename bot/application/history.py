"""The chat reader skills use (`chat.history`): asks the conversation's platform
adapter for recent messages, where the platform lets a bot read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.chat import ChatAdapter, ConversationRef, DeliveryError
from tasks.skills.base import SkillError


class AdapterHistory:
    def __init__(self, adapters: Mapping[str, ChatAdapter]):
        self.adapters = adapters

    async def __call__(self, conversation: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        platform = str(conversation.get("platform", ""))
        adapter = self.adapters.get(platform)
        read = getattr(adapter, "history", None)
        if read is None:
            raise SkillError(f"reading messages is not available on {platform or 'this platform'}", retryable=False)
        try:
            messages: list[dict[str, Any]] = await read(ConversationRef.from_json(conversation), limit)
        except DeliveryError as e:  # the platform's answer (or our own rate limit), as a step error
            raise SkillError(f"could not read messages: {e.reason}", retryable=not e.permanent,
                             retry_after=e.retry_after) from e  # fmt: skip
        return messages
