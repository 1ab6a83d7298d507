"""The built-in skills that need no outside service: `wait` and `chat.post`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from tasks.skills import Effect, OutboxMessage, Skill, SkillError, StepContext, StepResult


class Wait(Skill):
    """A durable timer: the step sleeps in the database, holding no worker."""

    name = "wait"
    description = "Wait for a number of seconds (or until a UTC time) before the next steps."
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "seconds": {"type": "number", "minimum": 0, "maximum": 90 * 86400},
            "minutes": {"type": "number", "minimum": 0, "maximum": 90 * 1440},
            "until": {"type": "string", "description": "ISO 8601 UTC time"},
        },
        "additionalProperties": False,
    }
    effect = Effect.READ
    idempotent = True

    async def run(self, ctx: StepContext, args: dict[str, Any]) -> StepResult:
        if ctx.wake_at is not None:
            if ctx.now >= ctx.wake_at:
                return StepResult(output={"waited_until": ctx.wake_at.isoformat()})
            return StepResult(sleep_until=ctx.wake_at)
        return StepResult(sleep_until=self._until(ctx.now, args))

    @staticmethod
    def _until(now: datetime, args: Mapping[str, Any]) -> datetime:
        if "until" in args:
            try:
                at = datetime.fromisoformat(str(args["until"]).replace("Z", "+00:00"))
            except ValueError as e:
                raise SkillError(f"wait: until is not an ISO time: {args['until']!r}", retryable=False) from e
            return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        try:
            seconds = float(args.get("seconds", 0)) + 60 * float(args.get("minutes", 0))
        except (TypeError, ValueError) as e:
            raise SkillError("wait: seconds must be a number", retryable=False) from e
        if seconds < 0:
            raise SkillError("wait: seconds must not be negative", retryable=False)
        return now + timedelta(seconds=seconds)


class ChatPost(Skill):
    """Post a message. The post is an outbox row written with the step's
    checkpoint, so it is approved, recorded and delivered exactly like cards."""

    name = "chat.post"
    description = "Post a message to a channel (or to the task's thread when no channel is given)."
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 40000},
            "channel": {"type": "string"},
        },
        "required": ["text"],
        "additionalProperties": False,
    }
    effect = Effect.WRITE
    idempotent = False
    max_attempts = 3
    timeout = 10.0

    def _target(self, ctx: StepContext, args: Mapping[str, Any]) -> dict[str, Any]:
        conv = dict(ctx.conversation)
        channel = str(args.get("channel") or "").strip()
        if channel and channel not in (conv.get("channel"), ""):
            conv.update(channel=channel, thread=None)
        return conv

    async def run(self, ctx: StepContext, args: dict[str, Any]) -> StepResult:
        text = str(args.get("text") or "").strip()
        if not text:
            raise SkillError("chat.post: nothing to post (text is empty)", retryable=False)
        target = self._target(ctx, args)
        if not target.get("channel"):
            raise SkillError("chat.post: no channel to post to", retryable=False)
        msg = OutboxMessage(kind="message", conversation=target, payload={"text": text},
                            idempotency_key=ctx.idempotency_key)  # fmt: skip
        where = args.get("channel") or "the thread"
        return StepResult(output={"posted": True, "channel": target["channel"], "text": text},
                          outbox=(msg,), effects=(f"posted a message to {where}",))  # fmt: skip

    async def reconcile(self, ctx: StepContext, args: dict[str, Any]) -> StepResult | None:
        # The outbox row is written in the checkpoint transaction: if it exists,
        # the step was recorded too; if not, nothing was posted.
        if ctx.lookup_outbox is not None and await ctx.lookup_outbox(ctx.idempotency_key):
            target = self._target(ctx, args)
            return StepResult(output={"posted": True, "channel": target["channel"]})
        return None

    def describe(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {"skill": self.name, "target": args.get("channel") or "this thread",
                "text": args.get("text", ""), "args": dict(args)}  # fmt: skip


def core_skills() -> list[Skill]:
    return [Wait(), ChatPost()]
