"""The target check skills use before approval is asked (`chat.post`): asks the
conversation's platform adapter whether the channel exists and the bot can post
there. A platform that cannot tell, or does not answer, lets the step go on:
its delivery still says what happened."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.chat import ChatAdapter, ConversationRef, DeliveryError

log = logging.getLogger(__name__)


class AdapterTargets:
    def __init__(self, adapters: Mapping[str, ChatAdapter]):
        self.adapters = adapters

    async def __call__(self, conversation: dict[str, Any]) -> str | None:
        adapter = self.adapters.get(str(conversation.get("platform", "")))
        check = getattr(adapter, "check_target", None)
        if check is None:
            return None
        try:
            why: str | None = await check(ConversationRef.from_json(conversation))
        except DeliveryError as e:  # the platform did not answer: let the delivery tell
            log.info("could not check %s before asking for approval: %s", conversation.get("channel"), e.reason)
            return None
        return why
