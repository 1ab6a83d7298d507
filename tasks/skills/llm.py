"""LLM steps: `llm.summarize` and `llm.draft`. Each is one completion whose
tokens and cost are recorded on the step (and summed on the task). The
material they work on (a page, a thread) is marked untrusted in the prompt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tasks.rules import untrusted
from tasks.rules.json_types import JSON, whole
from tasks.skills.base import Effect, Skill, StepContext, StepResult
from tasks.skills.llm_client import LLM

MAX_MATERIAL = 60_000  # characters of material sent to the model


class _LLMSkill(Skill):
    effect = Effect.READ
    idempotent = True
    max_attempts = 20  # an LLM outage of ten minutes or so is waited out, as planning does (retries hold no worker)
    timeout = 120.0
    role: ClassVar[str] = ""

    def __init__(self, llm: LLM):
        self.llm = llm

    def messages(self, request: str, material: str, source: str) -> list[dict[str, Any]]:
        """Pure: the prompt, with the material fenced as untrusted data."""
        tag = untrusted.new_tag()
        system = f"{self.role}\n\n{untrusted.system_note(tag)}"
        body = request
        if material:
            fenced = untrusted.mark(material[:MAX_MATERIAL], source or "a previous step", tag)
            body = f"{request}\n\n{fenced}"
        return [{"role": "system", "content": system}, {"role": "user", "content": body}]

    async def ask(self, request: str, material: str, source: str) -> StepResult:
        reply = await self.llm.complete(self.messages(request, material, source))
        return StepResult(
            output={"text": reply.text.strip(), "model": reply.model},
            tokens=reply.tokens,
            cost=reply.cost,
        )


class Summarize(_LLMSkill):
    name = "llm.summarize"
    description = "Summarize text (a page, a thread, a document) with the LLM. Result: {text: the summary}."
    args_schema: ClassVar[dict[str, JSON]] = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "what to summarize"},
            "instructions": {"type": "string", "description": "focus, audience or format"},
            "max_words": {"type": "integer", "minimum": 10, "maximum": 2000},
            "source": {"type": "string", "description": "where the text came from"},
        },
        "required": ["text"],
        "additionalProperties": False,
    }
    role = "You summarize material for busy colleagues: accurate, brief, no invented facts."

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        words = whole(args.get("max_words"), 150)
        request = f"Summarize the material below in at most {words} words."
        if args.get("instructions"):
            request += f" {args['instructions']}"
        return await self.ask(request, str(args.get("text") or ""), str(args.get("source") or ""))


class Draft(_LLMSkill):
    name = "llm.draft"
    description = (
        "Write a text (message, email, announcement) with the LLM from instructions and optional "
        "context material. Result: {text: the draft}."
    )
    args_schema: ClassVar[dict[str, JSON]] = {
        "type": "object",
        "properties": {
            "instructions": {"type": "string", "minLength": 1, "description": "what to write"},
            "context": {"type": "string", "description": "material to draw on"},
            "source": {"type": "string", "description": "where the context came from"},
        },
        "required": ["instructions"],
        "additionalProperties": False,
    }
    role = "You write clear, friendly workplace messages. Reply with the text only."

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        material = str(args.get("context") or "")
        return await self.ask(str(args["instructions"]), material, str(args.get("source") or ""))
