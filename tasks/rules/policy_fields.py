"""The settings a policy rule can carry and how each value is checked: each
converter takes the YAML value and returns the typed value or raises `Bad`
with the reason (the policy loader adds where)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks.rules.budgets import Budget


@dataclass(frozen=True)
class AutoApprove:
    """A narrow rule that approves a step without a person; named in the audit trail."""

    name: str
    skill: str
    args: dict[str, Any] = field(default_factory=dict)  # glob patterns per argument

    def matches(self, skill: str, args: Mapping[str, Any]) -> bool:
        if not fnmatch.fnmatchcase(skill, self.skill):
            return False
        return all(k in args and fnmatch.fnmatchcase(str(args[k]), str(pat)) for k, pat in self.args.items())


_EFFECTS = {"read", "write", "external", "payment"}


class Bad(ValueError):
    """A setting's value is wrong; the caller adds where."""


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Bad("must be a list of strings")
    return tuple(value)


def _effects(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not set(value) <= _EFFECTS:
        raise Bad(f"must be a list of {sorted(_EFFECTS)}")
    return frozenset(value)


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Bad("must be a whole number of at least 1")
    return value


def positive(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise Bad("must be a positive number")
    return float(value)


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Bad("must be true or false")
    return value


def _on_reject(value: Any) -> str:
    if value not in ("fail", "skip"):
        raise Bad("must be fail or skip")
    return str(value)


def _budget(value: Any) -> Budget:
    keys = {"steps", "wall_seconds", "tokens", "dollars"}
    if not isinstance(value, Mapping) or set(value) - keys:
        raise Bad("takes steps, wall_seconds, tokens, dollars")
    for v in value.values():
        if v is not None:
            positive(v)
    return Budget.from_json(dict(value))


def _auto_rules(value: Any) -> tuple[AutoApprove, ...]:
    if not isinstance(value, list):
        raise Bad("must be a list of rules")
    rules = []
    for raw in value:
        if not isinstance(raw, Mapping) or "name" not in raw or "skill" not in raw:
            raise Bad("needs a name and a skill in each rule")
        if not isinstance(raw.get("args") or {}, Mapping):
            raise Bad("args of a rule map argument names to patterns")
        rules.append(AutoApprove(name=str(raw["name"]), skill=str(raw["skill"]),
                                 args=dict(raw.get("args") or {})))  # fmt: skip
    return tuple(rules)


def _hosts(value: Any) -> tuple[str, ...]:
    hosts = _strings(value)
    for h in hosts:
        if not h or any(c in h for c in "/:@ "):
            raise Bad(f"takes host names or patterns such as docs.example.com or *.example.com, not {h!r}")
    return tuple(h.lower() for h in hosts)


def _skill_effects(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not set(value.values()) <= _EFFECTS:
        raise Bad(f"maps skill names to {sorted(_EFFECTS)}")
    return {str(k): str(v) for k, v in value.items()}


CONVERTERS: dict[str, Any] = {
    "allowed_skills": _strings,
    "approvers": _strings,
    "escalate_to": _strings,
    "approval_effects": _effects,
    "required": _count,
    "expiry_seconds": positive,
    "escalate_after_seconds": positive,
    "person_daily_dollars": positive,
    "approve_plan": flag,
    "on_reject": _on_reject,
    "budget": _budget,
    "auto_approve": _auto_rules,
    "skill_effects": _skill_effects,
    "fetch_allowlist": _hosts,
}
