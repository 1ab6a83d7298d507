"""`chat.history`: read the messages of a thread or channel.

The bot owns every call to a chat platform, so it lends this skill a reader
(the `ChatReader` protocol) when it builds it. What it returns is
other people's words: untrusted when it reaches a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol

from tasks.rules.json_types import JSON, whole
from tasks.skills.base import Effect, Skill, SkillError, StepContext, StepResult

MAX_MESSAGES = 200


class ChatReader(Protocol):
    """Reads up to `limit` recent messages of a conversation, oldest first, as
    dicts with `user`, `text` and `ts`."""

    async def __call__(self, conversation: dict[str, object], limit: int) -> list[dict[str, object]]: ...


class ChatHistory(Skill):
    name = "chat.history"
    description = (
        "Read recent messages of this thread, or of another channel when `channel` is given. "
        "Result: {messages: [{user, text, ts}], text: the messages as 'user: text' lines}."
    )
    args_schema: ClassVar[dict[str, JSON]] = {
        "type": "object",
        "properties": {
            "channel": {
                "type": "string",
                "description": "a channel id or name; default this thread",
            },
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_MESSAGES, "default": 50},
        },
        "additionalProperties": False,
    }
    effect = Effect.READ
    idempotent = True
    timeout = 30.0

    def __init__(self, reader: ChatReader | None = None) -> None:
        self.reader = reader

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        reader = self.reader
        if reader is None:
            raise SkillError("chat.history: this bot cannot read chat history", retryable=False)
        conversation = dict(ctx.conversation)
        channel = str(args.get("channel") or "").strip()
        if channel and channel != conversation.get("channel"):
            conversation.update(channel=channel, thread=None)
        limit = max(1, min(MAX_MESSAGES, whole(args.get("limit"), 50)))
        try:
            got = await reader(conversation, limit)
        except SkillError:
            raise
        except Exception as e:
            raise SkillError(f"chat.history: could not read messages: {e}", retryable=True) from e
        messages: list[dict[str, str]] = [
            {
                "user": str(m.get("user", "")),
                "text": str(m.get("text", "")),
                "ts": str(m.get("ts", "")),
            }
            for m in got[-limit:]
        ]
        text = "\n".join(f"{m['user']}: {m['text']}" for m in messages)
        source = f"chat:{conversation.get('channel', '')}"
        shown: list[JSON] = [dict[str, JSON](m) for m in messages]
        return StepResult(output={"messages": shown, "text": text, "source": source,
                                  "untrusted": True})  # fmt: skip
