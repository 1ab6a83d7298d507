"""A step's arguments against its skill's JSON schema (limits included), pure.

The LLM planner checks a plan's arguments before it is saved; playbook
parameters are checked when a person runs the playbook; and every step's
filled-in arguments are checked again just before it runs, whoever planned it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from tasks.rules.plans import PlanError, render_args
from tasks.skills.base import Skill, SkillRegistry


def args_error(skill: Skill, args: Mapping[str, Any], *, later: frozenset[str] = frozenset()) -> str | None:
    """Why `args` do not fit the skill's schema ("seconds: 1e+20 is greater than the
    maximum of 7776000"), or None. `later`: arguments filled in at run time, which
    may not be known yet (they count as present, of any value)."""
    schema = dict(skill.args_schema)
    instance = {k: v for k, v in args.items() if k not in later}
    if later and "required" in schema:
        schema["required"] = [r for r in schema["required"] if r not in later]
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "args"
    return f"{where}: {error.message}"


def playbook_error(name: str, steps: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
                   registry: SkillRegistry) -> str | None:  # fmt: skip
    """Why a playbook's steps cannot run with these parameters (a limit of a skill's
    schema, say), in words for the person who ran it; or None. Arguments that
    depend on earlier steps' results are checked when those steps have run."""
    scope = {**params, "params": dict(params)}
    for step in steps:
        skill = registry.get(str(step["skill"]))
        filled: dict[str, Any] = {}
        later: set[str] = set()
        for key, value in (step.get("args") or {}).items():
            try:
                filled[key] = render_args(value, scope)
            except PlanError:
                later.add(key)
        error = args_error(skill, filled, later=frozenset(later))
        if error is not None:
            return f"{name}: step {step['key']} ({skill.name}) {error}"
    return None
