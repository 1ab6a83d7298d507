"""`TeamsAdapter`: the one class that sends to Teams, through the Bot Connector
REST API at the conversation's stored serviceUrl.

Posts and updates are Adaptive Cards 1.5; `notify` is a reply in the
conversation that @mentions the person (docs/teams.md says why not a 1:1
chat). Every send first passes the conversation's rate-limit windows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    Mention,
)
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
)
from msrest.exceptions import ClientRequestError, HttpOperationError

from adapters.chat import Card, ConversationRef, DeliveryError, MessageRef
from adapters.teams import render as cards
from adapters.teams.errors import delivery_error
from adapters.teams.inbound import conversation_id
from adapters.teams.limits import ConversationLimits

MAX_NAMES = 5_000
Call = Callable[[ConnectorClient, str], Awaitable[Any]]


class TeamsAdapter:
    """ChatAdapter for Microsoft Teams (see adapters/chat.py for the contract)."""

    platform = "teams"

    def __init__(
        self,
        auth: BotFrameworkAuthentication,
        app_id: str = "",
        *,
        limits: ConversationLimits | None = None,
        max_wait: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._auth = auth
        self._app_id = app_id
        self._limits = limits or ConversationLimits()
        self._max_wait = max_wait
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self._connectors: dict[str, ConnectorClient] = {}
        self._names: dict[str, str] = {}

    def remember_name(self, user: str, name: str) -> None:
        """Display names seen on inbound activities, for @mentions in `notify`."""
        if user and name:
            if len(self._names) >= MAX_NAMES:
                self._names.pop(next(iter(self._names)))
            self._names[user] = name

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        target = conversation_id(conversation)
        activity = card_activity(target, card)
        response = await self._send(
            conversation, target, lambda c, cid: c.conversations.send_to_conversation(cid, activity)
        )
        return MessageRef(id=str(response.id), channel=target)

    async def update(self, conversation: ConversationRef, message: MessageRef, card: Card) -> MessageRef:
        target = message.channel or conversation_id(conversation)
        activity = card_activity(target, card)
        activity.id = message.id
        await self._send(
            conversation,
            target,
            lambda c, cid: c.conversations.update_activity(cid, message.id, activity),
        )
        return message

    async def notify(self, conversation: ConversationRef, user: str, text: str) -> None:
        target = conversation_id(conversation)
        activity = mention_activity(target, user, self._names.get(user, "you"), text)
        await self._send(conversation, target, lambda c, cid: c.conversations.send_to_conversation(cid, activity))

    async def find(self, conversation: ConversationRef, key: str) -> MessageRef | None:
        # The Bot Connector cannot list or search a bot's own posts.
        return None

    async def _send(self, conversation: ConversationRef, target: str, call: Call) -> Any:
        service_url = conversation.extra.get("service_url")
        if not service_url:
            raise DeliveryError("no Teams serviceUrl stored for this conversation", permanent=True)
        now = self.clock()
        wait = self._limits.reserve(target, now, self._max_wait)
        if wait > self._max_wait:
            raise DeliveryError("Teams rate limit for this conversation", retry_after=wait)
        if wait > 0:
            await self.sleep(wait)
        connector = await self._connector(str(service_url))
        try:
            return await call(connector, target)
        except HttpOperationError as error:
            raise _http_error(error, self.wall()) from error
        except (ClientRequestError, OSError) as error:
            raise DeliveryError(f"cannot reach the Bot Connector: {error}") from error
        finally:
            self._limits.done(target, now + wait, self.clock())

    async def _connector(self, service_url: str) -> ConnectorClient:
        connector = self._connectors.get(service_url)
        if connector is None:
            claims = ClaimsIdentity(
                {
                    AuthenticationConstants.AUDIENCE_CLAIM: self._app_id,
                    AuthenticationConstants.APP_ID_CLAIM: self._app_id,
                },
                True,
            )
            factory = self._auth.create_connector_factory(claims)
            connector = await factory.create(service_url, None)
            # We decide about retries (DeliveryError); msrest would sleep on
            # Retry-After inside a worker thread.
            connector.config.retry_policy.retries = 0
            self._connectors[service_url] = connector
        return connector


def card_activity(target: str, card: Card) -> Activity:
    attachment = Attachment(content_type=cards.CONTENT_TYPE, content=cards.render(card))
    return Activity(
        type=ActivityTypes.message,
        conversation=ConversationAccount(id=target),
        attachments=[attachment],
        summary=card.fallback()[:200],
    )


def mention_activity(target: str, user: str, name: str, text: str) -> Activity:
    tag = f"<at>{name}</at>"
    mention = Mention(mentioned=ChannelAccount(id=user, name=name), text=tag, type="mention")
    return Activity(
        type=ActivityTypes.message,
        conversation=ConversationAccount(id=target),
        text=f"{tag} {text.replace('<', '&lt;')}",
        entities=[mention],
    )


def _http_error(error: HttpOperationError, now: datetime) -> DeliveryError:
    response = error.response
    status = getattr(response, "status_code", None) or getattr(response, "status", 0)
    headers = dict(getattr(response, "headers", {}) or {})
    return delivery_error(int(status or 0), headers, str(error), now)
