"""SlackAdapter: the one class that calls Slack's Web API for the bot.

It keeps to Slack's rate limits with token buckets, tags every post with
message metadata naming its outbox row (so `find` can recognise a post whose
record was lost in a crash), and turns Slack's failures into `DeliveryError`s
the delivery loop understands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.chat import Card, ConversationRef, DeliveryError, MessageRef
from adapters.slack.blocks import fallback, render
from adapters.slack.ratelimit import Buckets, post_buckets, update_buckets

METADATA_EVENT = "cowork_outbox"
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
        "invalid_blocks_format",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "user_not_in_channel",
        "restricted_action",
        "no_text",
        "too_many_attachments",
        "invalid_arguments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
    }
)
HISTORY_PAGES = 5


def delivery_error(e: SlackApiError) -> DeliveryError:
    """What a Slack API failure means for the delivery loop. Pure."""
    status = e.response.status_code
    error = str(e.response.get("error") or f"http_{status}")
    if status == 429 or error == "ratelimited":
        retry = e.response.headers.get("Retry-After") or e.response.headers.get("retry-after")
        return DeliveryError(f"slack: {error}", retry_after=float(retry or 1))
    if status >= 500:
        return DeliveryError(f"slack: {error}")
    return DeliveryError(f"slack: {error}", permanent=error in PERMANENT_ERRORS)


def outbox_key(message: Mapping[str, Any]) -> str | None:
    """The outbox key a message was tagged with, if the bot tagged it. Pure."""
    meta = message.get("metadata")
    if not isinstance(meta, Mapping) or meta.get("event_type") != METADATA_EVENT:
        return None
    payload = meta.get("event_payload")
    key = payload.get("outbox_key") if isinstance(payload, Mapping) else None
    return key if isinstance(key, str) else None


class SlackAdapter:
    """The Slack `ChatAdapter`."""

    platform = "slack"

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = 2.0,
    ):
        self.client = client
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        self.posts: Buckets = post_buckets()
        self.updates: Buckets = update_buckets()

    async def _pace(self, buckets: Buckets, key: str) -> None:
        """Wait for a token when it is due soon; else hand the wait to the
        delivery loop (Retry-After) rather than hold it up."""
        wait = buckets.take(key, self.clock())
        while wait > 0:
            if wait > self.max_wait:
                raise DeliveryError(f"slack: local rate limit for {key}", retry_after=wait)
            await self.sleep(wait)
            wait = buckets.take(key, self.clock())

    async def _call(self, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await call
        except SlackApiError as e:
            raise delivery_error(e) from e
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as e:
            raise DeliveryError(f"slack: connection failed: {e!r}") from e

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        await self._pace(self.posts, f"{conversation.tenant}/{conversation.channel}")
        resp = await self._call(
            self.client.chat_postMessage(
                channel=conversation.channel,
                thread_ts=conversation.thread,
                text=fallback(card),
                blocks=render(card),
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"outbox_key": key}},
            )
        )
        return MessageRef(id=str(resp["ts"]), channel=str(resp.get("channel") or conversation.channel))

    async def update(self, conversation: ConversationRef, message: MessageRef, card: Card) -> MessageRef:
        await self._pace(self.updates, conversation.tenant)
        channel = message.channel or conversation.channel
        resp = await self._call(
            self.client.chat_update(
                channel=channel,
                ts=message.id,
                text=fallback(card),
                blocks=render(card),
            )
        )
        return MessageRef(id=str(resp.get("ts") or message.id), channel=str(resp.get("channel") or channel))

    async def notify(self, conversation: ConversationRef, user: str, text: str) -> None:
        if not conversation.channel:  # e.g. a click on the App Home: no channel to whisper in
            await self._call(self.client.chat_postMessage(channel=user, text=text))
            return
        await self._call(
            self.client.chat_postEphemeral(
                channel=conversation.channel,
                user=user,
                text=text,
                thread_ts=conversation.thread,
            )
        )

    async def find(self, conversation: ConversationRef, key: str) -> MessageRef | None:
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            resp = await self._call(self._history(conversation, cursor))
            for message in resp.get("messages") or []:
                if outbox_key(message) == key:
                    return MessageRef(id=str(message["ts"]), channel=conversation.channel)
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None

    def _history(self, conversation: ConversationRef, cursor: str | None) -> Awaitable[AsyncSlackResponse]:
        if conversation.thread:
            return self.client.conversations_replies(
                channel=conversation.channel,
                ts=conversation.thread,
                cursor=cursor,
                include_all_metadata=True,
                limit=200,
            )
        return self.client.conversations_history(
            channel=conversation.channel, cursor=cursor, include_all_metadata=True, limit=100
        )

    async def history(self, conversation: ConversationRef, limit: int) -> list[dict[str, Any]]:
        """Recent messages of the thread (or channel), oldest first, for chat.history."""
        resp = await self._call(self._history(conversation, None))
        messages = [
            {"user": str(m.get("user") or m.get("bot_id") or ""), "text": str(m.get("text") or ""),
             "ts": str(m.get("ts") or "")}
            for m in (resp.get("messages") or [])
            if outbox_key(m) is None  # the bot's own cards are not conversation
        ]  # fmt: skip
        messages.sort(key=lambda m: float(m["ts"] or 0))
        return messages[-limit:]

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        await self._call(self.client.views_publish(user_id=user, view=view))
