"""The built-in skills beyond `wait` and `chat.post`, assembled for a policy
and an LLM: what the runtime adds to its registry at start."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tasks.chat_skills import ChatHistory
from tasks.core_skills import core_skills
from tasks.llm import LLM, make_llm
from tasks.llm_skills import Draft, Summarize
from tasks.mail import EmailSend
from tasks.mcp_bridge import mcp_skills
from tasks.playbooks import Playbook, parse_playbook
from tasks.policy import Policy
from tasks.schedule_skill import ScheduleCreate
from tasks.skills import Skill, SkillRegistry
from tasks.web_skills import HttpFetch, WebhookCall


def builtin_skills(policy: Policy, llm: LLM | None = None) -> list[Skill]:
    """chat.history, http.fetch, webhook.call, schedule.create, email.send, and
    llm.summarize / llm.draft when an LLM is configured. No I/O."""
    skills: list[Skill] = [ChatHistory(), HttpFetch(policy), WebhookCall(policy), ScheduleCreate(),
                           EmailSend(policy)]  # fmt: skip
    if llm is not None:
        skills += [Summarize(llm), Draft(llm)]
    return skills


def all_skills(policy: Policy, settings: Any = None, llm: LLM | None = None) -> list[Skill]:
    """The built-in skills plus the tools of the policy's MCP servers (listed
    now, at start). The LLM comes from `llm`, else from settings'
    openai_api_key / openai_base_url / cowork_model."""
    if llm is None and settings is not None:
        llm = llm_from_settings(settings, policy)
    return [*builtin_skills(policy, llm), *mcp_skills(policy)]


def llm_from_settings(settings: Any, policy: Policy) -> LLM | None:
    key = getattr(settings, "openai_api_key", None)
    if key is not None and hasattr(key, "get_secret_value"):
        key = key.get_secret_value()
    return make_llm(key or None, getattr(settings, "openai_base_url", None),
                    getattr(settings, "cowork_model", None), policy)  # fmt: skip


def builtin_registry(policy: Policy, llm: LLM | None = None) -> SkillRegistry:
    """Core and built-in skills and installed plugins (no MCP servers are started)."""
    registry = SkillRegistry([*core_skills(), *builtin_skills(policy, llm)])
    registry.load_plugins()
    return registry


def playbook_folder() -> Path:
    """Playbooks that need the built-in skills (kept apart from the core ones,
    which run with `wait` and `chat.post` alone)."""
    return Path(__file__).parent / "playbooks" / "library"


def library_playbooks(known_skills: Iterable[str]) -> dict[str, Playbook]:
    """The library playbooks whose skills are all known here (llm.* need an LLM)."""
    known = set(known_skills)
    books: dict[str, Playbook] = {}
    for f in sorted(playbook_folder().glob("*.yaml")):
        data = yaml.safe_load(f.read_text())
        needed = {s.get("skill") for s in data.get("steps") or []}
        if needed <= known:
            book = parse_playbook(data, known, source=str(f))
            books[book.name] = book
    return books
