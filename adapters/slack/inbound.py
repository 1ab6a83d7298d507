"""Slack payloads -> neutral `Inbound` messages and `Click`s. Pure functions.

Anything we cannot use (a bot's message, an edit, a malformed payload) becomes
None, which the endpoint acknowledges and ignores: Slack must never see a 500
for bad input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters.chat import Click, ConversationRef, Inbound
from adapters.sanitize import loads
from adapters.slack.render import action_name

PLATFORM = "slack"
USER_SUBTYPES = {None, "file_share", "thread_broadcast"}
_CHANNEL_REF = re.compile(r"<#([A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>")


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


_LEADING_MENTION = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>")


def plain_text(text: str, bot_user_id: str = "") -> str:
    """Message text as the person typed it: the bot's own mention removed, channel
    references as channel ids, links as their URL, Slack's escapes undone."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text)
    text = _CHANNEL_REF.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.strip()


def _is_from_bot(event: Mapping[str, Any], bot_user_id: str) -> bool:
    return bool(event.get("bot_id") or event.get("bot_profile")) or (
        bool(bot_user_id) and event.get("user") == bot_user_id
    )


def _kind(event: Mapping[str, Any]) -> str | None:
    if event.get("type") == "app_mention":
        return "mention"
    if event.get("type") == "message" and event.get("channel_type") == "im":
        return "dm"
    return None


def to_inbound(body: Mapping[str, Any], bot_user_id: str = "") -> Inbound | None:
    """An Events API callback (app_mention, message.im) as an `Inbound`, or None."""
    event = _dict(body.get("event"))
    kind = _kind(event)
    user, channel, ts = _str(event.get("user")), _str(event.get("channel")), _str(event.get("ts"))
    if kind is None or event.get("subtype") not in USER_SUBTYPES or _is_from_bot(event, bot_user_id):
        return None
    if not (user and channel and ts):
        return None
    team = _str(body.get("team_id")) or _str(event.get("team"))
    thread = _str(event.get("thread_ts")) or ts
    text = _str(event.get("text"))
    if kind == "mention" and not bot_user_id:
        # The bot's id is not known yet (Slack's Web API was unreachable): an
        # app_mention's leading mention is the bot's own.
        text = _LEADING_MENTION.sub("", text, count=1)
    return Inbound(
        platform=PLATFORM,
        tenant=team,
        event_id=_str(body.get("event_id")) or f"{channel}:{ts}",
        user=user,
        text=plain_text(text, bot_user_id),
        conversation=ConversationRef(PLATFORM, team, channel, thread),
        direct=kind == "dm",
    )


def command_to_inbound(body: Mapping[str, Any]) -> Inbound | None:
    """A `/cowork ...` slash command as an `Inbound` (dedupe key: the trigger_id)."""
    user, channel = _str(body.get("user_id")), _str(body.get("channel_id"))
    trigger = _str(body.get("trigger_id"))
    if not (user and channel and trigger):
        return None
    team = _str(body.get("team_id"))
    return Inbound(
        platform=PLATFORM,
        tenant=team,
        event_id=f"command:{trigger}",
        user=user,
        user_name=_str(body.get("user_name")),
        text=plain_text(_str(body.get("text"))),
        conversation=ConversationRef(PLATFORM, team, channel, None, extra=_answer_url(body)),
        direct=channel.startswith("D") or body.get("channel_name") == "directmessage",
    )


def _answer_url(body: Mapping[str, Any]) -> dict[str, Any]:
    """The command's response_url, for answering where the bot cannot post (a private
    channel it is not in). The request is signed, so the URL is Slack's."""
    url = _str(body.get("response_url"))
    return {"response_url": url} if url.startswith(("https://", "http://")) else {}


def _value(action: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        value = loads(_str(action.get("value")) or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _where(body: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """(channel, thread root, message ts) of the message holding the button."""
    container, message = _dict(body.get("container")), _dict(body.get("message"))
    channel = _str(_dict(body.get("channel")).get("id")) or _str(container.get("channel_id"))
    ts = _str(container.get("message_ts")) or _str(message.get("ts")) or None
    thread = _str(message.get("thread_ts")) or _str(container.get("thread_ts")) or ts
    return channel, thread, ts


def to_click(body: Mapping[str, Any], actions: frozenset[str]) -> Click | None:
    """A block_actions payload as a `Click` when its action is one of `actions`."""
    acts = body.get("actions")
    action = _dict(acts[0]) if isinstance(acts, list) and acts else {}
    user = _dict(body.get("user"))
    value = _value(action)
    name = action_name(_str(action.get("action_id")))
    if name not in actions or value is None or not _str(user.get("id")):
        return None
    team = _str(_dict(body.get("team")).get("id")) or _str(user.get("team_id"))
    channel, thread, ts = _where(body)
    return Click(
        platform=PLATFORM,
        tenant=team,
        user=_str(user.get("id")),
        user_name=_str(user.get("username")) or _str(user.get("name")),
        action=name,
        value=value,
        conversation=ConversationRef(PLATFORM, team, channel, thread),
        message_id=ts,
    )
