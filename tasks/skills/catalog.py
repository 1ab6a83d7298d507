"""The built-in skills beyond `wait` and `chat.post`, assembled for a policy,
an LLM and what the bot lends them (a chat reader, where schedules are kept):
what the runtime adds to its registry at start."""

from __future__ import annotations

from tasks.rules.policy import Policy
from tasks.skills.base import Skill, SkillRegistry
from tasks.skills.chat import ChatHistory, ChatReader
from tasks.skills.core import core_skills
from tasks.skills.llm import Draft, Summarize
from tasks.skills.llm_client import LLM, make_llm
from tasks.skills.mail import EmailSend
from tasks.skills.mcp import mcp_skills
from tasks.skills.schedule import ScheduleBook, ScheduleCreate
from tasks.skills.web import HttpFetch, WebhookCall


def builtin_skills(policy: Policy, llm: LLM | None = None, *, reader: ChatReader | None = None,
                   schedules: ScheduleBook | None = None) -> list[Skill]:  # fmt: skip
    """chat.history, http.fetch, webhook.call, schedule.create, email.send, and
    llm.summarize / llm.draft when an LLM is configured. No I/O."""
    skills: list[Skill] = [ChatHistory(reader), HttpFetch(policy), WebhookCall(policy), ScheduleCreate(schedules),
                           EmailSend(policy)]  # fmt: skip
    if llm is not None:
        skills += [Summarize(llm), Draft(llm)]
    return skills


def all_skills(policy: Policy, settings: object = None, llm: LLM | None = None, *, reader: ChatReader | None = None,
               schedules: ScheduleBook | None = None) -> list[Skill]:  # fmt: skip
    """The built-in skills plus the tools of the policy's MCP servers (listed
    now, at start). The LLM comes from `llm`, else from settings'
    openai_api_key / openai_base_url / cowork_model."""
    if llm is None and settings is not None:
        llm = llm_from_settings(settings, policy)
    return [*builtin_skills(policy, llm, reader=reader, schedules=schedules), *mcp_skills(policy)]


def llm_from_settings(settings: object, policy: Policy) -> LLM | None:
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
