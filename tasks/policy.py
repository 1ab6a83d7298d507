"""The policy: which skills may run where, which need a person's approval, who
may approve, budgets and prices. Loaded from YAML (COWORK_POLICY).

A policy has `defaults` and a list of `scopes`, each matching a platform,
tenant (workspace) and/or channel and overriding any default. `rules_for`
resolves the rules that apply to one task; everything it returns is a plain
frozen value used by the engine's pure decisions.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tasks.budgets import Budget


class PolicyError(ValueError):
    """A policy file that cannot be used, with the line and the reason."""


@dataclass(frozen=True)
class AutoApprove:
    """A narrow rule that approves a step without a person; named in the audit trail."""

    name: str
    skill: str
    args: dict[str, Any] = field(default_factory=dict)  # glob patterns per argument

    def matches(self, skill: str, args: Mapping[str, Any]) -> bool:
        if not fnmatch.fnmatchcase(skill, self.skill):
            return False
        return all(
            k in args and fnmatch.fnmatchcase(str(args[k]), str(pat)) for k, pat in self.args.items()
        )


@dataclass(frozen=True)
class Rules:
    allowed_skills: tuple[str, ...] | None = None  # glob patterns; None: all
    approval_effects: frozenset[str] = frozenset({"write", "external", "payment"})
    approve_plan: bool = False
    approvers: tuple[str, ...] = ("requester",)
    required: int = 1
    expiry_seconds: float = 24 * 3600
    escalate_after_seconds: float | None = None
    escalate_to: tuple[str, ...] = ()
    on_reject: str = "fail"  # or "skip"
    budget: Budget = Budget()
    person_daily_dollars: float | None = None
    auto_approve: tuple[AutoApprove, ...] = ()
    skill_effects: dict[str, str] = field(default_factory=dict)

    def allows(self, skill: str) -> bool:
        if self.allowed_skills is None:
            return True
        return any(fnmatch.fnmatchcase(skill, p) for p in self.allowed_skills)

    def needs_approval(self, skill: str, effect: str, args: Mapping[str, Any]) -> tuple[bool, str | None]:
        """(needs a person?, name of the auto-approve rule that waived it)."""
        effect = self.skill_effects.get(skill, effect)
        if effect not in self.approval_effects:
            return False, None
        for rule in self.auto_approve:
            if rule.matches(skill, args):
                return False, rule.name
        return True, None

    def approvers_for(self, requester: str) -> list[str]:
        people = [requester if a == "requester" else a for a in self.approvers]
        return list(dict.fromkeys(people))


@dataclass(frozen=True)
class Scope:
    platform: str | None
    tenant: str | None
    channel: str | None
    overrides: dict[str, Any]

    def matches(self, platform: str, tenant: str, channel: str) -> bool:
        return all(
            want is None or fnmatch.fnmatchcase(have, want)
            for want, have in ((self.platform, platform), (self.tenant, tenant), (self.channel, channel))
        )


@dataclass(frozen=True)
class Policy:
    defaults: Rules = Rules()
    scopes: tuple[Scope, ...] = ()
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)  # $ per 1M in/out tokens
    webhooks: dict[str, str] = field(default_factory=dict)
    mcp_servers: tuple[dict[str, Any], ...] = ()
    http_allow_private: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    def rules_for(self, platform: str, tenant: str, channel: str) -> Rules:
        rules = self.defaults
        for scope in self.scopes:
            if scope.matches(platform, tenant, channel):
                rules = _apply(rules, scope.overrides, where="scope")
        return rules

    def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p_in, p_out = self.prices.get(model, (0.0, 0.0))
        return (prompt_tokens * p_in + completion_tokens * p_out) / 1_000_000


_EFFECTS = {"read", "write", "external", "payment"}


def _apply(rules: Rules, data: Mapping[str, Any], *, where: str) -> Rules:
    unknown = set(data) - set(_CONVERTERS)
    if unknown:
        raise PolicyError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        changes[key] = _convert(key, value, where)
    return replace(rules, **changes)


def _strings(key: str, value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _effects(key: str, value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not set(value) <= _EFFECTS:
        raise PolicyError(f"{where}: {key} must be a list of {sorted(_EFFECTS)}")
    return frozenset(value)


def _count(key: str, value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PolicyError(f"{where}: {key} must be a whole number of at least 1")
    return value


def _positive(key: str, value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise PolicyError(f"{where}: {key} must be a positive number")
    return float(value)


def _flag(key: str, value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{where}: {key} must be true or false")
    return value


def _on_reject(key: str, value: Any, where: str) -> str:
    if value not in ("fail", "skip"):
        raise PolicyError(f"{where}: {key} must be fail or skip")
    return str(value)


def _budget(key: str, value: Any, where: str) -> Budget:
    if not isinstance(value, Mapping) or set(value) - {"steps", "wall_seconds", "tokens", "dollars"}:
        raise PolicyError(f"{where}: {key} takes steps, wall_seconds, tokens, dollars")
    return Budget.from_json(dict(value))


def _auto_rules(key: str, value: Any, where: str) -> tuple[AutoApprove, ...]:
    return tuple(_auto_rule(r, where) for r in value or [])


def _skill_effects(key: str, value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not set(value.values()) <= _EFFECTS:
        raise PolicyError(f"{where}: {key} maps skill names to {sorted(_EFFECTS)}")
    return dict(value)


_CONVERTERS: dict[str, Any] = {
    "allowed_skills": _strings,
    "approvers": _strings,
    "escalate_to": _strings,
    "approval_effects": _effects,
    "required": _count,
    "expiry_seconds": _positive,
    "escalate_after_seconds": _positive,
    "person_daily_dollars": _positive,
    "approve_plan": _flag,
    "on_reject": _on_reject,
    "budget": _budget,
    "auto_approve": _auto_rules,
    "skill_effects": _skill_effects,
}


def _convert(key: str, value: Any, where: str) -> Any:
    return _CONVERTERS[key](key, value, where)


def _auto_rule(raw: Any, where: str) -> AutoApprove:
    if not isinstance(raw, Mapping) or "name" not in raw or "skill" not in raw:
        raise PolicyError(f"{where}: each auto_approve rule needs a name and a skill")
    return AutoApprove(name=str(raw["name"]), skill=str(raw["skill"]), args=dict(raw.get("args") or {}))


def parse_policy(data: Mapping[str, Any]) -> Policy:
    known = {"defaults", "scopes", "prices", "webhooks", "mcp_servers", "http"}
    unknown = set(data) - known
    if unknown:
        raise PolicyError(f"unknown top-level key {sorted(unknown)[0]!r}")
    defaults = _apply(Rules(), data.get("defaults") or {}, where="defaults")
    scopes = []
    for i, raw in enumerate(data.get("scopes") or []):
        match = dict(raw.get("match") or {})
        overrides = {k: v for k, v in raw.items() if k != "match"}
        _apply(defaults, overrides, where=f"scopes[{i}]")
        scopes.append(Scope(match.get("platform"), match.get("tenant"), match.get("channel"), overrides))
    prices = {
        str(m): (float(p.get("input", 0)), float(p.get("output", 0)))
        for m, p in (data.get("prices") or {}).items()
    }
    http = data.get("http") or {}
    return Policy(
        defaults=defaults,
        scopes=tuple(scopes),
        prices=prices,
        webhooks={str(k): str(v) for k, v in (data.get("webhooks") or {}).items()},
        mcp_servers=tuple(data.get("mcp_servers") or ()),
        http_allow_private=bool(http.get("allow_private", False)),
        raw=dict(data),
    )


def load_policy(path: str | Path | None) -> Policy:
    """Read and check a policy file; a bad one raises PolicyError naming the line."""
    if not path:
        return Policy()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise PolicyError(f"{p}: cannot read policy file: {e.strerror}") from e
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise PolicyError(f"{p}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from e
    if not isinstance(data, Mapping):
        raise PolicyError(f"{p}: line 1: a policy is a mapping of settings")
    try:
        return parse_policy(data)
    except PolicyError as e:
        raise PolicyError(f"{p}: line {_line_of(text, str(e))}: {e}") from e


def _line_of(text: str, message: str) -> int:
    """Best effort: the line of the first key the message names."""
    for token in message.replace("'", " ").replace(":", " ").split():
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip().startswith(f"{token}:") or line.strip().startswith(f"- {token}:"):
                return n
    return 1
