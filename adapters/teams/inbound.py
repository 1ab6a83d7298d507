"""Bot Framework activities from Teams -> neutral `Inbound` messages and `Click`s.

Pure functions of a botbuilder `Activity`: no I/O. The conversation reference
(`TurnContext.get_conversation_reference`, serialized) goes into
`ConversationRef.extra` so the bot can post into the conversation later, after
restarts.
"""

from __future__ import annotations

import html
import re
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ActivityTypes, ConversationReference

from adapters.chat import Click, ConversationRef, Inbound

PLATFORM = "teams"
EXECUTE_INVOKE = "adaptiveCard/action"
THREAD_MARK = ";messageid="
_AT_TAG = re.compile(r"<at[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"[ \t\u00a0]+")


def user_id(activity: Activity) -> str:
    """The person's stable id: the AAD object id where Teams gives one."""
    sender = activity.from_property
    if sender is None:
        return ""
    return str(sender.aad_object_id or sender.id or "")


def tenant_of(activity: Activity) -> str:
    conversation = activity.conversation
    if conversation is not None and conversation.tenant_id:
        return str(conversation.tenant_id)
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = data.get("tenant")
    return str(tenant.get("id", "")) if isinstance(tenant, dict) else ""


def is_from_bot(activity: Activity) -> bool:
    sender, recipient = activity.from_property, activity.recipient
    if sender is None:
        return False
    if sender.role == "bot":
        return True
    return recipient is not None and bool(sender.id) and sender.id == recipient.id


def bot_was_added(activity: Activity) -> bool:
    bot = activity.recipient
    added = activity.members_added or []
    return bot is not None and any(member.id == bot.id for member in added)


def conversation_ref(activity: Activity) -> ConversationRef:
    """Where the activity happened; a channel's reply chain becomes the thread."""
    conversation_id = str(activity.conversation.id) if activity.conversation else ""
    channel, _, thread = conversation_id.partition(THREAD_MARK)
    reference = TurnContext.get_conversation_reference(activity)
    conversation_type = activity.conversation.conversation_type if activity.conversation else None
    return ConversationRef(
        platform=PLATFORM,
        tenant=tenant_of(activity),
        channel=channel,
        thread=thread or None,
        extra={
            "service_url": activity.service_url,
            "conversation_type": conversation_type or "",
            "reference": reference.serialize(),
        },
    )


def stored_reference(conversation: ConversationRef) -> ConversationReference:
    """The reference stored by `conversation_ref`, aimed at the ref's channel and thread."""
    reference = ConversationReference().deserialize(conversation.extra.get("reference") or {})
    reference.service_url = conversation.extra.get("service_url") or reference.service_url
    return reference


def conversation_id(conversation: ConversationRef) -> str:
    if conversation.thread:
        return f"{conversation.channel}{THREAD_MARK}{conversation.thread}"
    return conversation.channel


def strip_mentions(text: str, entities: list[Any] | None, bot_id: str | None) -> str:
    """Drop the bot's own mention; keep other people's names without markup."""
    for entity in entities or []:
        props = getattr(entity, "additional_properties", None)
        if getattr(entity, "type", None) != "mention" or not bot_id or not isinstance(props, dict):
            continue
        mentioned = props.get("mentioned")
        tag = props.get("text")
        if isinstance(mentioned, dict) and mentioned.get("id") == bot_id and isinstance(tag, str):
            text = text.replace(tag, " ")
    text = _AT_TAG.sub(lambda m: m.group(1), text)
    text = html.unescape(text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def to_inbound(activity: Activity) -> Inbound | None:
    """A message a person wrote (mention, group chat, personal chat), or None."""
    if activity.type != ActivityTypes.message or is_from_bot(activity):
        return None
    if isinstance(activity.value, dict) and not activity.text:
        return None  # a card submit, see `to_click`
    bot_id = activity.recipient.id if activity.recipient else None
    text = strip_mentions(activity.text or "", activity.entities, bot_id)
    ref = conversation_ref(activity)
    return Inbound(
        platform=PLATFORM,
        tenant=ref.tenant,
        event_id=str(activity.id or ""),
        user=user_id(activity),
        user_name=str(activity.from_property.name or "") if activity.from_property else "",
        text=text or "help",
        conversation=ref,
        direct=ref.extra["conversation_type"] == "personal",
    )


def welcome(activity: Activity) -> Inbound:
    """The bot was added to a conversation: answer as if asked for help."""
    ref = conversation_ref(activity)
    return Inbound(
        platform=PLATFORM,
        tenant=ref.tenant,
        event_id=f"welcome:{activity.id or ref.channel}",
        user=user_id(activity),
        user_name=str(activity.from_property.name or "") if activity.from_property else "",
        text="help",
        conversation=ref,
        direct=ref.extra["conversation_type"] == "personal",
    )


def to_click(activity: Activity) -> Click | None:
    """An Action.Execute invoke or an Action.Submit message -> Click, else None."""
    verb, data = _action_of(activity)
    if not verb:
        return None
    ref = conversation_ref(activity)
    return Click(
        platform=PLATFORM,
        tenant=ref.tenant,
        user=user_id(activity),
        user_name=str(activity.from_property.name or "") if activity.from_property else "",
        action=verb,
        value=data,
        conversation=ref,
        message_id=activity.reply_to_id,
        answered_inline=activity.type == "invoke",
    )


def _action_of(activity: Activity) -> tuple[str, dict[str, Any]]:
    value = activity.value if isinstance(activity.value, dict) else {}
    if activity.type == ActivityTypes.invoke and activity.name == EXECUTE_INVOKE:
        action = _mapping(value.get("action"))
        return str(action.get("verb") or ""), dict(_mapping(action.get("data")))
    if activity.type == ActivityTypes.message and isinstance(value.get("verb"), str):
        return value["verb"], {k: v for k, v in value.items() if k != "verb"}
    return "", {}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
