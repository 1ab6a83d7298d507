"""`schedule.create`: recurring work ("every Monday at 9") as a schedule that
enqueues a task at each fire time, through the `ScheduleBook` it is built with
(`Controls`). `to_cron` is the pure phrase-to-crontab step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Protocol

from tasks.rules.json_types import JSON
from tasks.skills.base import Effect, Skill, SkillError, StepContext, StepResult
from tasks.store.store import NewTask

_DAYS = {
    "mon": "mon",
    "tue": "tue",
    "wed": "wed",
    "thu": "thu",
    "fri": "fri",
    "sat": "sat",
    "sun": "sun",
}
_CRON = re.compile(r"^\s*(\S+\s+){4}\S+\s*$")
_TIME = re.compile(r"\b(?:at\s+)?(noon|midnight|(\d{1,2})(?::(\d{2}))?\s*(am|pm)?)\s*$")


class BadWhen(ValueError):
    pass


def to_cron(when: str) -> str:
    """'every Monday at 9' -> '0 9 * * mon'. Also takes a 5-field crontab. Pure."""
    phrase = " ".join(when.lower().replace(",", " ").split())
    if _CRON.match(phrase) and not phrase.startswith("every"):
        return _checked(phrase)
    if m := re.fullmatch(r"every (\d+) minutes?", phrase):
        return _checked(f"*/{_in(int(m[1]), 1, 59, when)} * * * *")
    if phrase in ("hourly", "every hour"):
        return "0 * * * *"
    if m := re.fullmatch(r"every (\d+) hours?", phrase):
        return _checked(f"0 */{_in(int(m[1]), 1, 23, when)} * * *")
    rest, hour, minute = _split_time(phrase, when)
    rest = re.sub(r"^(every|each)\s+", "", rest).strip()
    if rest in ("day", "daily", "morning", "") or phrase.startswith("daily"):
        return f"{minute} {hour} * * *"
    if rest in ("weekday", "weekdays", "workday", "working day"):
        return f"{minute} {hour} * * mon-fri"
    if m := re.fullmatch(r"month on the (\d{1,2})(?:st|nd|rd|th)?", rest):
        return f"{minute} {hour} {_in(int(m[1]), 1, 31, when)} * *"
    days = [w[:3] for w in rest.split() if w not in ("and", "on")]
    if days and all(d in _DAYS for d in days):
        return f"{minute} {hour} * * {','.join(dict.fromkeys(days))}"
    raise BadWhen(f"cannot read {when!r} as a schedule; say e.g. 'every Monday at 9' or a crontab")


def _split_time(phrase: str, original: str) -> tuple[str, int, int]:
    phrase = re.sub(r"^daily\b", "every day", phrase)
    m = _TIME.search(phrase)
    if not m or not re.search(r"\bat\b|am|pm|noon|midnight", phrase[m.start() :]):
        return phrase, 9, 0
    if m[1] in ("noon", "midnight"):
        hour, minute = (12 if m[1] == "noon" else 0), 0
    else:
        hour, minute = int(m[2]), int(m[3] or 0)
        if m[4] == "pm" and hour < 12:
            hour += 12
        elif m[4] == "am" and hour == 12:
            hour = 0
    if hour > 23 or minute > 59:
        raise BadWhen(f"{original!r}: no such time of day")
    return phrase[: m.start()].strip(), hour, minute


def _in(n: int, low: int, high: int, when: str) -> int:
    if not low <= n <= high:
        raise BadWhen(f"{when!r}: {n} is out of range")
    return n


def _checked(cron: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(cron)
    except ValueError as e:
        raise BadWhen(f"{cron!r} is not a valid crontab: {e}") from e
    return cron


class ScheduleBook(Protocol):
    """Where schedules are kept (`Controls`)."""

    async def create_schedule(self, *, name: str, cron: str, timezone: str, new: NewTask, now: datetime) -> int: ...


class ScheduleCreate(Skill):
    name = "schedule.create"
    description = (
        "Create recurring work: at each time of `when` ('every Monday at 9', 'every weekday at "
        "17:30', 'every 2 hours' or a crontab) a new task runs `text` (or a playbook) in this "
        "thread for the requester. Result: {schedule_id, cron}."
    )
    args_schema: ClassVar[dict[str, JSON]] = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "minLength": 1},
            "text": {"type": "string", "description": "the request each run carries out"},
            "playbook": {"type": "string"},
            "params": {"type": "object"},
            "timezone": {"type": "string", "default": "UTC"},
            "name": {"type": "string"},
        },
        "required": ["when"],
        "anyOf": [{"required": ["text"]}, {"required": ["playbook"]}],
        "additionalProperties": False,
    }
    effect = Effect.WRITE
    idempotent = False
    max_attempts = 2

    def __init__(self, schedules: ScheduleBook | None = None) -> None:
        self.schedules = schedules

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        controls = self.schedules
        if controls is None:
            raise SkillError("schedule.create: schedules are not available here", retryable=False)
        try:
            cron = to_cron(str(args["when"]))
        except BadWhen as e:
            raise SkillError(f"schedule.create: {e}", retryable=False) from e
        text = str(args.get("text") or "")
        playbook, params = args.get("playbook"), args.get("params")  # a string and an object, by the schema
        new = NewTask(
            platform=ctx.platform, tenant=ctx.tenant, dedupe_key=ctx.idempotency_key,
            requester=ctx.requester, conversation=dict(ctx.conversation), text=text,
            playbook=playbook if isinstance(playbook, str) else None,
            params=dict(params) if isinstance(params, dict) and params else None,
        )  # fmt: skip
        name = str(args.get("name") or text or args.get("playbook"))[:120]
        tz = str(args.get("timezone") or "UTC")
        try:
            sid = await controls.create_schedule(name=name, cron=cron, timezone=tz, new=new, now=ctx.now)
        except (ValueError, LookupError) as e:  # an unknown timezone, say
            raise SkillError(f"schedule.create: {e}", retryable=False) from e
        return StepResult(output={"schedule_id": sid, "cron": cron, "timezone": tz},
                          effects=(f"scheduled {name!r} ({cron}, {tz})",))  # fmt: skip
