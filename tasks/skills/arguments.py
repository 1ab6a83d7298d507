"""A step's arguments against its skill's JSON schema (limits included), pure.

The LLM planner checks a plan's arguments before it is saved; playbook
parameters are checked when a person runs the playbook; and every step's
filled-in arguments are checked again just before it runs, whoever planned it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from tasks.rules.plans import PlanError, StepJSON, render_args
from tasks.skills.base import Skill, SkillRegistry


def args_error(skill: Skill, args: Mapping[str, object], *, later: frozenset[str] = frozenset()) -> str | None:
    """Why `args` do not fit the skill's schema ("seconds: 1e+20 is greater than the
    maximum of 7776000"), or None. `later`: arguments filled in at run time, which
    may not be known yet (they count as present, of any value)."""
    checker = _checker(skill.args_schema, later)
    instance = {k: v for k, v in args.items() if k not in later} if later else args
    if checker.fits(instance):
        return None
    error = jsonschema.exceptions.best_match(checker.validator.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "args"
    return f"{where}: {error.message}"


class _Checker:
    """A skill schema's validator, and the argument sets it found valid lately:
    a playbook's steps run with the same arguments over and over, and checking
    them costs far more than recognising them (`repr` tells 1 from 1.0 and
    True, a list from a tuple)."""

    def __init__(self, schema: Mapping[str, object]):
        self.validator = jsonschema.Draft202012Validator(schema)
        self.valid: dict[str, None] = {}

    def fits(self, instance: Mapping[str, object]) -> bool:
        seen = repr(instance)
        if seen in self.valid:
            return True
        if not self.validator.is_valid(instance):
            return False
        if len(seen) <= 2000:
            if len(self.valid) >= 256:
                self.valid.clear()
            self.valid[seen] = None
        return True


# (id of a skill's schema, arguments filled in later) -> (the schema, its checker);
# the schema is kept so that its id stays its own.
_CHECKERS: dict[tuple[int, frozenset[str]], tuple[Mapping[str, object], _Checker]] = {}


def _checker(args_schema: Mapping[str, Any], later: frozenset[str]) -> _Checker:
    hit = _CHECKERS.get((id(args_schema), later))
    if hit is not None and hit[0] is args_schema:
        return hit[1]
    schema = dict(args_schema)
    if later and "required" in schema:
        schema["required"] = [r for r in schema["required"] if r not in later]
    if len(_CHECKERS) > 4096:  # skills come and go (MCP servers): forget the old ones
        _CHECKERS.clear()
    checker = _Checker(schema)
    _CHECKERS[(id(args_schema), later)] = (args_schema, checker)
    return checker


def playbook_error(name: str, steps: Sequence[StepJSON], params: Mapping[str, object],
                   registry: SkillRegistry) -> str | None:  # fmt: skip
    """Why a playbook's steps cannot run with these parameters (a limit of a skill's
    schema, say), in words for the person who ran it; or None. Arguments that
    depend on earlier steps' results are checked when those steps have run."""
    scope = {**params, "params": dict(params)}
    for step in steps:
        skill = registry.get(str(step["skill"]))
        filled: dict[str, object] = {}
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
