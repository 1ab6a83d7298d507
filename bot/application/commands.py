"""The command words people type (help, list, status 12, run announce k=v …):
parsing is pure, so every platform shares it."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from adapters.sanitize import db_id

WORDS = ("help", "list", "status", "cancel", "pause", "resume", "retry", "run")
NEEDS_ID = ("status", "cancel", "pause", "resume", "retry")
MAX_TEXT = 40_000

HELP = """Cowork carries work forward for you. Mention me with what you need, or use a command:
• `help`: this message
• `list`: your recent tasks
• `status ID`: a task's card
• `cancel ID`, `pause ID`, `resume ID`, `retry ID`: control a task
• `run PLAYBOOK key=value …`: run a playbook (no LLM needed)"""


@dataclass(frozen=True)
class Command:
    name: str
    task_id: int | None = None
    playbook: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    error: str | None = None


_LEAD = re.compile(r"^\s*(/cowork\b|@cowork\b)\s*", re.IGNORECASE)


def clean(text: str) -> str:
    """Drop a leading /cowork or @cowork and surrounding space."""
    return _LEAD.sub("", text or "").strip()


def parse(text: str) -> Command | None:
    """A command, or None when the text is free-form work for the planner."""
    words = clean(text).split(maxsplit=1)
    if not words or words[0].lower() not in WORDS:
        return None
    name, rest = words[0].lower(), (words[1] if len(words) > 1 else "").strip()
    if name in ("help", "list"):
        return Command(name) if not rest or name == "list" else None
    if name in NEEDS_ID:
        return _with_id(name, rest)
    return _run(rest)


def _with_id(name: str, rest: str) -> Command | None:
    token = rest.lstrip("#").split()[0] if rest else ""
    if not token:
        return Command(name, error=f"Which task? Say `{name} ID`, e.g. `{name} 12`.")
    if not token.isdigit():
        # "status of the deploy" is free text, not a command
        return None if len(rest.split()) > 1 else Command(name, error=f"`{token}` is not a task number.")
    task_id = db_id(token)
    if task_id is None:  # 0, or more digits than any task id has
        return Command(name, error=f"There is no task #{token}.")
    return Command(name, task_id=task_id)


def _run(rest: str) -> Command:
    try:
        parts = shlex.split(rest)
    except ValueError as e:
        return Command("run", error=f"Could not read the parameters: {e}.")
    if not parts:
        return Command("run", error="Which playbook? Say `run PLAYBOOK key=value …`; `help` lists them.")
    params: dict[str, str] = {}
    for p in parts[1:]:
        key, sep, value = p.partition("=")
        if not sep or not key:
            return Command("run", playbook=parts[0], error=f"`{p}` is not key=value.")
        params[key] = value
    return Command("run", playbook=parts[0], params=params)
