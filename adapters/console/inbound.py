"""Console payloads -> neutral `Inbound` messages and `Click`s. Pure functions.

The page posts `{channel, thread?, user, text}` for a message and
`{user, action, value, message_id}` for a button. Anything malformed raises
`ValueError` with a message fit for the person (the endpoint answers 400).
A message is for the bot when it mentions @cowork, and always in a direct
message with the bot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters import sanitize
from adapters.chat import Click, ConversationRef, Inbound

PLATFORM = "console"
TENANT = "local"
BOT = "cowork"
CHANNELS = ("general", "eng", "random")
USERS = ("alice", "bob", "carol", "dave")
DM_PREFIX = "dm-"
MAX_TEXT = 40_000
_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
_MENTION = re.compile(rf"(?<![\w@])@{BOT}\b", re.IGNORECASE)


@dataclass(frozen=True)
class Post:
    """A message a person wrote in the console, validated."""

    channel: str
    user: str
    text: str
    thread: str | None = None

    @property
    def direct(self) -> bool:
        return self.channel.startswith(DM_PREFIX)

    @property
    def for_bot(self) -> bool:
        return self.direct or bool(_MENTION.search(self.text))


def channel_name(channel: str) -> str:
    """`#eng` and `eng` are the same channel."""
    return channel.strip().lstrip("#").lower()


def dm_channel(user: str) -> str:
    return f"{DM_PREFIX}{user}"


def dm_owner(channel: str) -> str | None:
    return channel[len(DM_PREFIX) :] if channel.startswith(DM_PREFIX) else None


def known_channel(channel: str) -> bool:
    owner = dm_owner(channel)
    return channel in CHANNELS or (owner is not None and bool(_NAME.match(owner)))


def _required_str(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"`{key}` is required and must be a non-empty string")
    return value.strip()


def user_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError("`user` must be a short lowercase name such as `alice`")
    if value == BOT:
        raise ValueError(f"`{BOT}` is the bot; pick a person")
    return value


def _thread(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isdigit():
        raise ValueError("`thread` must be the id of the thread's first message")
    return value


def parse_post(payload: Any) -> Post:
    """Validate a message from the page."""
    if not isinstance(payload, Mapping):
        raise ValueError("the body must be a JSON object")
    user = user_name(payload.get("user"))
    channel = channel_name(_required_str(payload, "channel"))
    if not known_channel(channel):
        raise ValueError(f"there is no channel `{channel}`; channels: {', '.join(CHANNELS)}")
    if dm_owner(channel) not in (None, user):
        raise ValueError("a direct message with the bot belongs to its owner")
    text = sanitize.text(_required_str(payload, "text"))
    if len(text) > MAX_TEXT:
        raise ValueError(f"`text` is {len(text):,} characters; at most {MAX_TEXT:,}")
    return Post(channel=channel, user=user, text=text, thread=_thread(payload.get("thread")))


def without_mention(text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", _MENTION.sub("", text)).strip()


def to_inbound(payload: Any, *, message_id: str, event_id: str) -> Inbound | None:
    """The message as an `Inbound` for the bot, or None when it is not for the bot.

    A mention outside a thread starts one on the person's own message, so the
    bot answers in the thread whose root is `message_id`."""
    post = parse_post(payload)
    if not post.for_bot:
        return None
    conversation = ConversationRef(PLATFORM, TENANT, post.channel, thread=post.thread or message_id)
    return Inbound(
        platform=PLATFORM,
        tenant=TENANT,
        event_id=event_id,
        user=post.user,
        text=without_mention(post.text),
        conversation=conversation,
        user_name=post.user.title(),
        direct=post.direct,
    )


@dataclass(frozen=True)
class Action:
    """A button press from the page, validated."""

    user: str
    action: str
    value: dict[str, Any]
    message_id: int


def parse_action(payload: Any) -> Action:
    if not isinstance(payload, Mapping):
        raise ValueError("the body must be a JSON object")
    user = user_name(payload.get("user"))
    action = _required_str(payload, "action")
    value = payload.get("value", {})
    if not isinstance(value, Mapping):
        raise ValueError("`value` must be a JSON object")
    message_id = sanitize.db_id(payload.get("message_id"))
    if message_id is None:
        raise ValueError("`message_id` must be the id of the message with the button")
    return Action(user=user, action=action, value=dict(value), message_id=message_id)


def to_click(payload: Any, *, channel: str, thread: str | None) -> Click:
    """A button press as a `Click` in the conversation of the card it was on."""
    a = parse_action(payload)
    conversation = ConversationRef(PLATFORM, TENANT, channel, thread=thread)
    return Click(
        platform=PLATFORM,
        tenant=TENANT,
        user=a.user,
        action=a.action,
        value=a.value,
        conversation=conversation,
        user_name=a.user.title(),
        message_id=str(a.message_id),
    )
