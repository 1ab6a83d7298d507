"""Choosing a plan for a task: a playbook when the task names one, else the LLM
planner when one is configured."""

from __future__ import annotations

from typing import Any

from tasks.engine import PlanDraft, Planner
from tasks.models import Task
from tasks.plans import PlanError
from tasks.playbooks import Playbook

NO_LLM = (
    "Free-text tasks need an LLM: set OPENAI_API_KEY (and OPENAI_BASE_URL and COWORK_MODEL for "
    "another OpenAI-compatible server). Playbooks work without one: say `help` to list them."
)


class PlanSource:
    def __init__(self, playbooks: dict[str, Playbook], llm: Planner | None = None):
        self.playbooks = playbooks
        self.llm = llm

    async def plan(self, task: Task, known_skills: list[str], rules: Any) -> PlanDraft:
        if task.playbook:
            book = self.playbooks.get(task.playbook)
            if book is None:
                raise PlanError(f"no playbook named {task.playbook!r}")
            return PlanDraft(book.plan(), checked=True)
        if self.llm is None:
            raise PlanError(NO_LLM)
        return await self.llm.plan(task, known_skills, rules)
