"""The built-in skills that need no outside service: `wait` and `chat.post`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

from tasks.rules.json_types import JSON
from tasks.skills.base import Effect, OutboxMessage, Skill, SkillError, StepContext, StepResult

# A post not yet answered by the platform is looked at again this often; the
# delivery loop wakes the task as soon as the platform answers, so this only
# bounds a wake-up that was missed.
CHECK_AGAIN = timedelta(seconds=30)


class TargetCheck(Protocol):
    """Why the bot cannot post to a conversation (no such channel, not a member),
    or None when it can or cannot tell; lent by the bot to `chat.post` when it builds it."""

    async def __call__(self, conversation: dict[str, object]) -> str | None: ...


class Wait(Skill):
    """A durable timer: the step sleeps in the database, holding no worker."""

    name = "wait"
    description = "Wait for a number of seconds (or until a UTC time) before the next steps."
    args_schema: ClassVar[dict[str, JSON]] = {
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

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        # The deadline is worked out once and kept in the step: a retry or a restart
        # resumes the same wait, never one measured from the retry.
        saved = (ctx.saved or {}).get("until")
        until = datetime.fromisoformat(saved) if isinstance(saved, str) else self._until(ctx.now, args)
        if ctx.now >= until:
            return StepResult(output={"waited_until": until.isoformat()})
        return StepResult(sleep_until=until, state={"until": until.isoformat()})

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
        try:
            return now + timedelta(seconds=seconds)
        except OverflowError as e:
            raise SkillError(f"wait: {seconds:g} seconds is too long to wait", retryable=False) from e


class ChatPost(Skill):
    """Post a message. The post is an outbox row written with the step's intent
    and delivered like cards; the step is done when the platform accepted it.

    The first run writes the row (its idempotency key is the step's, so it is
    written once however often the step runs; a new attempt after a refusal,
    such as a person's retry, sends the refused row again) and parks the step, holding no
    worker; the delivery loop wakes the task when the platform answers, and the
    next run reads the row: sent is success, a permanent refusal fails the step
    with the platform's reason. Before approval is asked, the target is checked
    (the `TargetCheck` it was built with)."""

    name = "chat.post"
    description = "Post a message to a channel (or to the task's thread when no channel is given)."
    args_schema: ClassVar[dict[str, JSON]] = {
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

    def __init__(self, targets: TargetCheck | None = None) -> None:
        self.targets = targets

    def _target(self, ctx: StepContext, args: Mapping[str, object]) -> dict[str, Any]:
        conv = dict(ctx.conversation)
        channel = str(args.get("channel") or "").strip()
        if channel and channel not in (conv.get("channel"), ""):
            conv.update(channel=channel, thread=None)
        return conv

    async def preflight(self, ctx: StepContext, args: Mapping[str, JSON]) -> None:
        check = self.targets
        target = self._target(ctx, args)
        elsewhere = target.get("channel") not in ("", None, ctx.conversation.get("channel"))
        why = await check(target) if check is not None and elsewhere else None  # the task's own thread is there
        if why:
            raise SkillError(f"chat.post: cannot post to {args.get('channel') or 'the thread'}: {why}",
                             retryable=False)  # fmt: skip

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        text = str(args.get("text") or "").strip()
        if not text:
            raise SkillError("chat.post: nothing to post (text is empty)", retryable=False)
        target = self._target(ctx, args)
        if not target.get("channel"):
            raise SkillError("chat.post: no channel to post to", retryable=False)
        where = args.get("channel") or "the thread"
        fate = await ctx.delivery(ctx.idempotency_key) if ctx.delivery is not None else None
        if fate is None or (fate.state == "dead" and not ctx.resumed):  # a new attempt (a retry) posts anew
            msg = OutboxMessage(kind="message", conversation=target, payload={"text": text},
                                idempotency_key=ctx.idempotency_key)  # fmt: skip
            return StepResult(outbox=(msg,), sleep_until=ctx.now + CHECK_AGAIN)
        if fate.state == "dead":
            raise SkillError(f"chat.post: {where} refused the message: {fate.error or 'no reason given'}",
                             retryable=False)  # fmt: skip
        if fate.state != "sent":  # the platform has not answered yet
            return StepResult(sleep_until=ctx.now + CHECK_AGAIN)
        return StepResult(output={"posted": True, "channel": target["channel"], "text": text},
                          effects=(f"posted a message to {where}",))  # fmt: skip

    async def reconcile(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult | None:
        # The outbox row is written with the step's park: without it nothing was
        # posted (run again); with it, its delivery says what happened.
        if ctx.lookup_outbox is not None and await ctx.lookup_outbox(ctx.idempotency_key):
            return await self.run(ctx, args)
        return None

    def describe(self, args: Mapping[str, JSON]) -> dict[str, JSON]:
        return {"skill": self.name, "target": args.get("channel") or "this thread",
                "text": args.get("text", ""), "args": dict(args)}  # fmt: skip


def core_skills(targets: TargetCheck | None = None) -> list[Skill]:
    return [Wait(), ChatPost(targets)]
