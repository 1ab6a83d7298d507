"""Choosing a plan for a task: a playbook when the task names one, else the LLM
planner when one is configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tasks.planning.playbooks import Playbook
from tasks.rules.plans import PlanError
from tasks.rules.policy import Rules
from tasks.store.models import Task

NO_LLM = (
    "Free-text tasks need an LLM: set OPENAI_API_KEY (and OPENAI_BASE_URL and COWORK_MODEL for "
    "another OpenAI-compatible server). Playbooks work without one: say `help` to list them."
)


@dataclass(frozen=True)
class PlanDraft:
    plan: dict[str, object]
    tokens: int = 0
    cost: float = 0.0
    checked: bool = False  # already checked by `parse_plan` against these skills (a playbook's, at load)


class Planner(Protocol):
    async def plan(self, task: Task, known_skills: list[str], rules: Rules) -> PlanDraft: ...


class PlanSource:
    def __init__(self, playbooks: dict[str, Playbook], llm: Planner | None = None):
        self.playbooks = playbooks
        self.llm = llm

    async def plan(self, task: Task, known_skills: list[str], rules: Rules) -> PlanDraft:
        if task.playbook:
            book = self.playbooks.get(task.playbook)
            if book is None:
                raise PlanError(f"no playbook named {task.playbook!r}")
            return PlanDraft(book.plan(), checked=True)
        if self.llm is None:
            raise PlanError(NO_LLM)
        return await self.llm.plan(task, known_skills, rules)
