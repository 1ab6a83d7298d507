"""The LLM planner: free text becomes a declarative plan through tool calling.

The model is offered one tool, `submit_plan`, and a catalogue of the skills
the policy allows here (name, description, JSON-schema args). The plan it
submits is checked by `check_plan` (pure): the DAG rules of `parse_plan`, the
skills allowed, and each step's args against its skill's schema. A refused
plan goes back to the model once with the reason; a second refusal is a
`PlanError`. Tokens and cost of every call are returned in the `PlanDraft`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from openai.types.chat import ChatCompletionMessageParam, ChatCompletionNamedToolChoiceParam

from tasks.planning.planner import PlanDraft
from tasks.rules.json_types import JSON
from tasks.rules.plans import PLAN_GATE, Plan, PlanError, PlanLater, parse_plan
from tasks.rules.policy import Policy, Rules
from tasks.skills.arguments import args_error
from tasks.skills.base import Skill, SkillError, SkillRegistry
from tasks.skills.llm_client import LLM, Completion, make_llm
from tasks.store.models import Task

SUBMIT = "submit_plan"
_WHOLE_PLACEHOLDER = re.compile(r"^\s*\{\{\s*[A-Za-z0-9_.\-]+\s*\}\}\s*$")

SYSTEM = """You plan work for Cowork, a bot that carries out tasks for people in chat.
Turn the request into a plan: a small DAG of steps, each using one skill from the
catalogue below with arguments that match its JSON schema. Steps run concurrently
unless one lists another in depends_on. A step can use an earlier step's result in
its args with {{ steps.KEY.FIELD }} (for example {{ steps.fetch.text }}); it must
then depend on that step. Use as few steps as the request needs. Effects (posting,
calling webhooks, sending email, scheduling) are shown to a person for approval
before they run, so plan them plainly. Submit the plan by calling submit_plan.

Skills:
"""


def plan_tool(skills: list[str]) -> dict[str, JSON]:
    names: list[JSON] = [*skills]
    step: dict[str, JSON] = {
        "type": "object",
        "properties": {
            "key": {"type": "string", "description": "short unique id: letters, digits, _ . -"},
            "skill": {"type": "string", "enum": names},
            "args": {"type": "object"},
            "depends_on": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["key", "skill", "args"],
    }
    params: dict[str, JSON] = {
        "type": "object",
        "properties": {
            "summary": {
                "type": "string",
                "description": "one line a person reads on the task card",
            },
            "steps": {"type": "array", "items": step, "minItems": 1},
        },
        "required": ["summary", "steps"],
    }
    return {"type": "function", "function": {"name": SUBMIT, "description": "Submit the plan.",
                                             "parameters": params}}  # fmt: skip


def catalogue(skills: list[Skill]) -> str:
    return "\n".join(
        f"- {s.name} ({s.effect.value}): {s.description}\n  args: {json.dumps(s.args_schema)}" for s in skills
    )


def offered(registry: SkillRegistry, known: list[str], rules: Rules) -> list[Skill]:
    """The skills the model may use for this task: known, allowed, not the plan gate."""
    return [s for s in registry if s.name in known and s.name != PLAN_GATE and rules.allows(s.name)]


def check_plan(data: object, skills: Mapping[str, Skill]) -> Plan:
    """Pure: the plan if every rule holds, else PlanError with a reason the model can act on."""
    if not isinstance(data, Mapping):
        raise PlanError("the plan must be a JSON object with summary and steps")
    plan = parse_plan(data, skills)
    for step in plan.steps:
        if step.key in ("plan", "_plan"):
            raise PlanError(f"step key {step.key!r} is reserved; choose another")
        _check_args(step.key, skills[step.skill], step.args)
    return plan


def _check_args(key: str, skill: Skill, args: Mapping[str, object]) -> None:
    # A value that is one placeholder is filled at run time: it may be of any type.
    later = frozenset(k for k, v in args.items() if isinstance(v, str) and _WHOLE_PLACEHOLDER.match(v))
    error = args_error(skill, args, later=later)
    if error is not None:
        raise PlanError(f"step {key!r}: {skill.name} {error}")


Sleep = Callable[[float], Awaitable[None]]


class LLMPlanner:
    """The Planner for free text. An unavailable LLM (429, 5xx, timeouts) is
    tried again at once, up to `attempts` calls in all and only for waits of at
    most `max_wait` seconds; past that, `PlanLater` hands the task back to the
    engine, which plans it again later without holding a worker. `sleep` is the
    test seam."""

    def __init__(self, llm: LLM, registry: SkillRegistry, *, attempts: int = 2,
                 sleep: Sleep = asyncio.sleep, max_wait: float = 5.0):  # fmt: skip
        self.llm = llm
        self.registry = registry
        self.attempts = attempts
        self.sleep = sleep
        self.max_wait = max_wait

    async def plan(self, task: Task, known_skills: list[str], rules: Rules) -> PlanDraft:
        skills = offered(self.registry, known_skills, rules)
        if not skills:
            raise PlanError("no skill is allowed here, so there is nothing to plan with")
        by_name = {s.name: s for s in skills}
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": SYSTEM + catalogue(skills)},
            {"role": "user", "content": _request(task)},
        ]
        tool = plan_tool(sorted(by_name))
        tokens, cost = 0, 0.0
        for round_ in (1, 2):
            reply = await self._call(messages, tool)
            tokens, cost = tokens + reply.tokens, cost + reply.cost
            try:
                plan = check_plan(_submitted(reply), by_name)
            except PlanError as e:
                if round_ == 2:
                    raise PlanError(f"the LLM made no valid plan: {e}") from e
                messages += _refusal(reply, str(e))
                continue
            return PlanDraft(plan.to_json(), tokens=tokens, cost=cost)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, messages: list[ChatCompletionMessageParam], tool: dict[str, Any]) -> Completion:
        choice: ChatCompletionNamedToolChoiceParam = {"type": "function", "function": {"name": SUBMIT}}
        for attempt in range(1, self.attempts + 1):
            try:
                return await self.llm.complete(messages, tools=[tool], tool_choice=choice)
            except SkillError as e:
                if not e.retryable:
                    raise PlanError(f"the LLM could not plan: {e}") from e
                wait = e.retry_after if e.retry_after is not None else 2.0**attempt
                if attempt == self.attempts or wait > self.max_wait:
                    cause = type(e.__cause__ or e).__name__  # e.g. RateLimitError, APIConnectionError
                    raise PlanLater(f"the LLM is unavailable: {e}", e.retry_after, cause=cause) from e
                await self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _request(task: Task) -> str:
    where = (task.conversation or {}).get("channel") or "a direct message"
    name = task.requester_name or task.requester
    return f"Request from {name} in {where}:\n{task.text}"


def _submitted(reply: Completion) -> Any:
    calls = [c for c in reply.tool_calls if c.name == SUBMIT]
    if not calls:
        said = f" It said: {reply.text[:300]}" if reply.text else ""
        raise PlanError(f"no plan was submitted with {SUBMIT}.{said}")
    try:
        return calls[0].parsed()
    except ValueError as e:
        raise PlanError(f"the {SUBMIT} arguments are not valid JSON: {e}") from e


def _refusal(reply: Completion, reason: str) -> list[ChatCompletionMessageParam]:
    """The model's answer and why it was refused, so it can submit a corrected plan."""
    text = f"The plan was refused: {reason}. Call {SUBMIT} again with a corrected plan."
    calls = [c for c in reply.tool_calls if c.name == SUBMIT]
    if not calls:
        return [reply.as_message(), {"role": "user", "content": text}]
    answer = reply.as_message()
    answer["tool_calls"] = [t for t in answer["tool_calls"] if t["id"] == calls[0].id]
    return [answer, {"role": "tool", "tool_call_id": calls[0].id, "content": text}]


def make_planner(
    api_key: str | None,
    base_url: str | None = None,
    model: str | None = None,
    policy: Policy | None = None,
    registry: SkillRegistry | None = None,
) -> LLMPlanner | None:
    """The LLM planner, or None when no LLM is configured. Pass the runtime's
    registry so every skill (plugins, MCP tools) can be planned with."""
    llm = make_llm(api_key, base_url, model, policy)
    if llm is None:
        return None
    if registry is None:
        from tasks.skills.catalog import builtin_registry

        registry = builtin_registry(policy or Policy(), llm)
    return LLMPlanner(llm, registry)
