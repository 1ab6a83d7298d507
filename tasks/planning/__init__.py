"""Choosing a plan: the planner protocol, playbooks, the LLM planner, the plan gate.
Imports `tasks.rules`, `tasks.store.store` and `tasks.skills.base`."""
