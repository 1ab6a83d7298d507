"""SlackAdapter: the one class that calls Slack's Web API for the bot.

It keeps to Slack's rate limits with token buckets, tags every post with
message metadata naming its outbox row (so `find` can recognise a post whose
record was lost in a crash), and turns Slack's failures into `DeliveryError`s
the delivery loop understands.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.chat import Card, ConversationRef, DeliveryError, MessageRef
from adapters.pacing import SlidingLimits
from adapters.slack.limits import Buckets, Limits
from adapters.slack.render import fallback, render

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
NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found"})
RESPONSE_URL = "response_url"  # the MessageRef id of an answer posted through a command's response_url
HISTORY_PAGES = 5
LIST_PAGES = 10  # of 1,000 channels each, looking a #name up
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]+$")  # ids are upper case; names are lower case
READ_WAIT = 10.0  # seconds a chat.history read may wait for Slack's read limit (the skill's timeout is 30 s)
Windows = list[tuple[SlidingLimits, str]]  # the windows a call counts against, with its key in each


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
        edit_wait: float = 0.0,
    ):
        self.client = client
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        # An edit that must wait goes back to the outbox at once: its card keeps
        # its place there, while waiting here would hold up the channel's posts
        # (and the delivery round, every other conversation with them). The
        # price, when a workspace wants more edits than Tier 3 allows: an edit
        # handed back returns behind newer changes of other cards, so a card that
        # stopped changing may wait longer than its turn (see the soak figures).
        self.edit_wait = edit_wait
        self.limits = Limits()

    def _too_long(self, key: str, wait: float, limit: float) -> None:
        """Hand a long wait to the delivery loop (Retry-After) rather than hold it up."""
        if wait > limit:
            raise DeliveryError(f"slack: local rate limit for {key}", retry_after=wait)

    async def _take(self, buckets: Buckets, key: str, limit: float) -> None:
        """Wait for a token of the burst bucket when it is due soon."""
        wait = buckets.take(key, self.clock())
        while wait > 0:
            self._too_long(key, wait, limit)
            await self.sleep(wait)
            wait = buckets.take(key, self.clock())

    async def _paced(self, call: Callable[[], Awaitable[AsyncSlackResponse]], windows: Windows,
                     limit: float | None = None) -> AsyncSlackResponse:  # fmt: skip
        """Make the call once every window has room for it (waiting when that is
        soon), counting it in each from the time its answer came back."""
        now = self.clock()
        wait = max((limits.wait(key, now) for limits, key in windows), default=0.0)
        self._too_long(windows[0][1] if windows else "", wait, self.max_wait if limit is None else limit)
        at = now + wait
        for limits, key in windows:
            limits.book(key, at)
        if wait > 0:
            await self.sleep(wait)
        try:
            return await self._call(call())
        finally:
            done = self.clock()
            for limits, key in windows:
                limits.done(key, at, done)

    async def _call(self, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await call
        except SlackApiError as e:
            raise delivery_error(e) from e
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as e:
            raise DeliveryError(f"slack: connection failed: {e!r}") from e

    async def post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        try:
            return await self._post(conversation, card, key=key)
        except DeliveryError as e:
            url = conversation.extra.get("response_url")
            if not (url and e.reason.removeprefix("slack: ") in NOT_A_MEMBER):
                raise
        # A /cowork command in a conversation the bot is not in (a private channel, a DM
        # between others): answer the person privately through the command's response_url.
        await self._respond(str(url), card, replace=False)
        return MessageRef(id=RESPONSE_URL, channel=conversation.channel)

    async def _respond(self, url: str, card: Card, *, replace: bool) -> None:
        """Post (or replace) the ephemeral answer to a slash command: at most five
        times within 30 minutes, Slack's limit for one response_url."""
        try:
            resp = await AsyncWebhookClient(url, timeout=10).send(
                text=fallback(card), blocks=render(card), response_type="ephemeral", replace_original=replace
            )
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as e:
            raise DeliveryError(f"slack: response_url failed: {e!r}") from e
        if resp.status_code == 429:
            raise DeliveryError("slack: ratelimited", retry_after=float(resp.headers.get("Retry-After", 1) or 1))
        if resp.status_code >= 500:
            raise DeliveryError(f"slack: response_url answered {resp.status_code}")
        if resp.status_code != 200:
            raise DeliveryError(f"slack: response_url refused: {resp.body[:200]}", permanent=True)

    async def _post(self, conversation: ConversationRef, card: Card, *, key: str) -> MessageRef:
        channel = f"{conversation.tenant}/{conversation.channel}"
        await self._take(self.limits.posts, channel, self.max_wait)
        resp = await self._paced(
            lambda: self.client.chat_postMessage(
                channel=conversation.channel,
                thread_ts=conversation.thread,
                text=fallback(card),
                blocks=render(card),
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"outbox_key": key}},
            ),
            self._post_windows(conversation.tenant, conversation.channel),
        )
        return MessageRef(id=str(resp["ts"]), channel=str(resp.get("channel") or conversation.channel))

    async def update(self, conversation: ConversationRef, message: MessageRef, card: Card) -> MessageRef:
        if message.id == RESPONSE_URL:
            url = conversation.extra.get("response_url")
            if not url:
                raise DeliveryError("slack: the command's response_url is not known", permanent=True)
            await self._respond(str(url), card, replace=True)
            return message
        await self._take(self.limits.updates, conversation.tenant, self.edit_wait)
        channel = message.channel or conversation.channel
        resp = await self._paced(
            lambda: self.client.chat_update(channel=channel, ts=message.id, text=fallback(card), blocks=render(card)),
            [(self.limits.workspace_updates, conversation.tenant)],
            self.edit_wait,
        )
        return MessageRef(id=str(resp.get("ts") or message.id), channel=str(resp.get("channel") or channel))

    async def notify(self, conversation: ConversationRef, user: str, text: str) -> None:
        if not conversation.channel:  # e.g. a click on the App Home: no channel to whisper in
            await self._paced(lambda: self.client.chat_postMessage(channel=user, text=text),
                              self._post_windows(conversation.tenant, user))  # fmt: skip
            return
        await self._paced(
            lambda: self.client.chat_postEphemeral(
                channel=conversation.channel,
                user=user,
                text=text,
                thread_ts=conversation.thread,
            ),
            [(self.limits.ephemeral, conversation.tenant)],
        )

    def _post_windows(self, tenant: str, channel: str) -> Windows:
        return [(self.limits.channel_posts, f"{tenant}/{channel}"), (self.limits.workspace_posts, tenant)]

    async def find(self, conversation: ConversationRef, key: str) -> MessageRef | None:
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            resp = await self._paced(partial(self._history, conversation, cursor),
                                     [(self.limits.reads, conversation.tenant)])  # fmt: skip
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
        resp = await self._paced(partial(self._history, conversation, None),
                                 [(self.limits.reads, conversation.tenant)], limit=READ_WAIT)  # fmt: skip
        messages = [
            {"user": str(m.get("user") or m.get("bot_id") or ""), "text": str(m.get("text") or ""),
             "ts": str(m.get("ts") or "")}
            for m in (resp.get("messages") or [])
            if outbox_key(m) is None  # the bot's own cards are not conversation
        ]  # fmt: skip
        messages.sort(key=lambda m: float(m["ts"] or 0))
        return messages[-limit:]

    async def check_target(self, conversation: ConversationRef) -> str | None:
        """Why the bot cannot post to the conversation's channel (Slack does not know
        it, it is archived, it is private and the bot is not in it), or None. A
        `#name` is looked up among the channels the bot can see, as Slack resolves
        it when posting; an id with conversations.info. DeliveryError when Slack
        does not answer or the app lacks the scope to look (nobody can tell)."""
        ref = conversation.channel
        if not ref or ref.startswith(("D", "U", "W")):  # a DM or a user: Slack opens it
            return None
        info = (
            await self._channel_named(conversation)
            if not CHANNEL_ID.match(ref)
            else await self._channel_info(conversation)
        )
        if info is None:
            return f"Slack has no channel {ref} that the bot can see (channel_not_found)"
        if info.get("is_archived"):
            return f"{ref} is archived (is_archived)"
        if info.get("is_private") and not info.get("is_member"):
            return f"the bot is not a member of the private channel {ref} (not_in_channel)"
        return None

    async def _channel_info(self, conversation: ConversationRef) -> dict[str, Any] | None:
        try:
            resp = await self._paced(lambda: self.client.conversations_info(channel=conversation.channel),
                                     [(self.limits.reads, conversation.tenant)], limit=READ_WAIT)  # fmt: skip
        except DeliveryError as e:
            if e.reason.removeprefix("slack: ") == "channel_not_found":
                return None
            raise
        channel = resp.get("channel")
        return channel if isinstance(channel, dict) else None

    async def _channel_named(self, conversation: ConversationRef) -> dict[str, Any] | None:
        name = conversation.channel.lstrip("#").lower()
        cursor: str | None = None
        for _ in range(LIST_PAGES):
            resp = await self._paced(
                partial(self.client.conversations_list, types="public_channel,private_channel",
                        exclude_archived=False, limit=1000, cursor=cursor),
                [(self.limits.reads, conversation.tenant)], limit=READ_WAIT,
            )  # fmt: skip
            for channel in resp.get("channels") or []:
                if isinstance(channel, dict) and str(channel.get("name", "")).lower() == name:
                    return channel
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        raise DeliveryError(f"slack: more than {LIST_PAGES} pages of channels; not looked further")

    async def publish_home(self, user: str, view: dict[str, Any], *, tenant: str = "") -> None:
        """Show the person's App Home; a refresh that would wait past `max_wait` for the
        rate limit is dropped (DeliveryError): the next event that shows the Home redraws it."""
        await self._paced(lambda: self.client.views_publish(user_id=user, view=view),
                          [(self.limits.views, tenant)])  # fmt: skip
