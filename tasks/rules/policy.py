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
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tasks.rules.budgets import Budget
from tasks.rules.plans import PLAN_GATE
from tasks.rules.policy_fields import CONVERTERS, AutoApprove, Bad, flag, positive


class PolicyError(ValueError):
    """A policy file that cannot be used, with the line and the reason. `path`
    names the setting (keys and list positions) so the loader can find its line."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()):
        super().__init__(message)
        self.path = path


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
    fetch_allowlist: tuple[str, ...] = ()  # hosts (globs) reads may send model-made arguments to

    def allows(self, skill: str) -> bool:
        if self.allowed_skills is None:
            return True
        return any(fnmatch.fnmatchcase(skill, p) for p in self.allowed_skills)

    def needs_approval(self, skill: str, effect: str, args: Mapping[str, Any],
                       leaves: bool = False) -> tuple[bool, str | None]:  # fmt: skip
        """(needs a person?, name of the auto-approve rule that waived it). `leaves`:
        a read would send untrusted arguments to a host off the `fetch_allowlist`
        (`tasks.rules.egress`); only a person waives that."""
        if skill == PLAN_GATE:  # asked for by the policy itself; no rule waives it
            return self.approve_plan, None
        if leaves:
            return True, None
        effect = self.effect_of(skill, effect)
        if effect not in self.approval_effects:
            return False, None
        for rule in self.auto_approve:
            if rule.matches(skill, args):
                return False, rule.name
        return True, None

    def effect_of(self, skill: str, default: str) -> str:
        """The effect class the policy sets for a skill (exact name, then glob), else `default`."""
        if skill in self.skill_effects:
            return self.skill_effects[skill]
        for pattern, effect in self.skill_effects.items():
            if fnmatch.fnmatchcase(skill, pattern):
                return effect
        return default

    def approvers_for(self, requester: str) -> list[str]:
        people = [requester if a == "requester" else a for a in self.approvers]
        return list(dict.fromkeys(people))

    def escalation(self, approvers: list[str], asked_at: datetime, now: datetime) -> list[str]:
        """People to add to a pending approval that waited too long; [] when none."""
        if self.escalate_after_seconds is None or not self.escalate_to:
            return []
        if (now - asked_at).total_seconds() < self.escalate_after_seconds:
            return []
        return [p for p in dict.fromkeys(self.escalate_to) if p not in approvers]


@dataclass(frozen=True)
class Scope:
    platform: str | None
    tenant: str | None
    channel: str | None
    overrides: dict[str, Any]

    def matches(self, platform: str, tenant: str, channel: str) -> bool:
        return all(
            want is None or fnmatch.fnmatchcase(have, want)
            for want, have in (
                (self.platform, platform),
                (self.tenant, tenant),
                (self.channel, channel),
            )
        )


@dataclass(frozen=True)
class Policy:
    defaults: Rules = Rules()
    scopes: tuple[Scope, ...] = ()
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)  # $ per 1M in/out tokens
    webhooks: dict[str, str] = field(default_factory=dict)
    mcp_servers: tuple[dict[str, Any], ...] = ()
    http_allow_private: bool = False
    http_max_bytes: int = 2_000_000
    http_timeout_seconds: float = 20.0
    smtp_url: str | None = None  # else COWORK_SMTP_URL
    email_from: str = "cowork@localhost"
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


Path_ = tuple[str | int, ...]


def _apply(rules: Rules, data: Any, *, where: str, path: Path_ = ()) -> Rules:
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: must be a mapping of settings", path)
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in CONVERTERS:
            raise PolicyError(f"{where}: unknown setting {key!r}", (*path, key))
        try:
            changes[key] = CONVERTERS[key](value)
        except Bad as e:
            raise PolicyError(f"{where}: {key} {e}", (*path, key)) from None
    out = replace(rules, **changes)
    people = {"requester" if a == "requester" else a for a in out.approvers}
    if out.required > len(people):
        key = "required" if "required" in data else "approvers"
        raise PolicyError(f"{where}: required is {out.required} but there are only "
                          f"{len(people)} approvers", (*path, key))  # fmt: skip
    return out


def _scope(i: int, raw: Any, defaults: Rules) -> Scope:
    where, path = f"scopes[{i}]", ("scopes", i)
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: a scope is a mapping with match and settings", path)
    match = raw.get("match") or {}
    if not isinstance(match, Mapping) or set(match) - {"platform", "tenant", "channel"}:
        raise PolicyError(f"{where}: match takes platform, tenant, channel", (*path, "match"))
    overrides = {k: v for k, v in raw.items() if k != "match"}
    _apply(defaults, overrides, where=where, path=path)
    get = {k: (None if match.get(k) is None else str(match[k])) for k in ("platform", "tenant", "channel")}
    return Scope(get["platform"], get["tenant"], get["channel"], overrides)


def _prices(data: Any) -> dict[str, tuple[float, float]]:
    if not isinstance(data, Mapping):
        raise PolicyError("prices: map model names to {input, output} dollars per 1M tokens", ("prices",))
    out = {}
    for model, p in data.items():
        ok = isinstance(p, Mapping) and not set(p) - {"input", "output"}
        ok = ok and all(isinstance(v, int | float) and v >= 0 for v in p.values())
        if not ok:
            raise PolicyError(f"prices: {model} takes input and output dollars per 1M tokens",
                              ("prices", model))  # fmt: skip
        out[str(model)] = (float(p.get("input", 0)), float(p.get("output", 0)))
    return out


def _webhooks(data: Any) -> dict[str, str]:
    if not isinstance(data, Mapping):
        raise PolicyError("webhooks: map names to http(s) URLs", ("webhooks",))
    for name, url in data.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PolicyError(f"webhooks: {name} must be an http(s) URL", ("webhooks", name))
    return {str(k): str(v) for k, v in data.items()}


def _mcp_servers(data: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(data, list):
        raise PolicyError("mcp_servers: a list of {name, command, args} or {name, url}", ("mcp_servers",))
    for i, server in enumerate(data):
        ok = isinstance(server, Mapping) and isinstance(server.get("name"), str)
        ok = ok and (isinstance(server.get("command"), str) or isinstance(server.get("url"), str))
        if not ok:
            raise PolicyError(f"mcp_servers[{i}]: needs a name and a command or a url", ("mcp_servers", i))
    return tuple(dict(s) for s in data)


def _section(data: Mapping[str, Any], name: str, keys: set[str]) -> Mapping[str, Any]:
    got = data.get(name) or {}
    if not isinstance(got, Mapping):
        raise PolicyError(f"{name}: must be a mapping", (name,))
    unknown = sorted(set(got) - keys)
    if unknown:
        raise PolicyError(f"{name}: unknown setting {unknown[0]!r}", (name, unknown[0]))
    return got


_TOP = {"defaults", "scopes", "prices", "webhooks", "mcp_servers", "http", "email"}


def parse_policy(data: Mapping[str, Any]) -> Policy:
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise PolicyError(f"unknown top-level key {unknown[0]!r}", (unknown[0],))
    defaults = _apply(Rules(), data.get("defaults") or {}, where="defaults", path=("defaults",))
    scopes = data.get("scopes") or []
    if not isinstance(scopes, list):
        raise PolicyError("scopes: must be a list", ("scopes",))
    http = _section(data, "http", {"allow_private", "max_bytes", "timeout_seconds"})
    email = _section(data, "email", {"smtp_url", "from"})
    try:
        max_bytes = int(positive(http.get("max_bytes", 2_000_000)))
        http_timeout = positive(http.get("timeout_seconds", 20.0))
        allow_private = flag(http.get("allow_private", False))
    except Bad as e:
        raise PolicyError(f"http: {e}", ("http",)) from None
    return Policy(
        defaults=defaults,
        scopes=tuple(_scope(i, raw, defaults) for i, raw in enumerate(scopes)),
        prices=_prices(data.get("prices") or {}),
        webhooks=_webhooks(data.get("webhooks") or {}),
        mcp_servers=_mcp_servers(data.get("mcp_servers") or []),
        smtp_url=str(email["smtp_url"]) if email.get("smtp_url") else None,
        email_from=str(email.get("from") or "cowork@localhost"),
        raw=dict(data),
        http_allow_private=allow_private,
        http_max_bytes=max_bytes,
        http_timeout_seconds=http_timeout,
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
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _no_duplicate_keys(root)
        data = yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f" line {mark.line + 1}:" if mark else ""
        raise PolicyError(f"{p}:{line} not valid YAML: {e.problem or e.context}") from e
    if not isinstance(data, Mapping):
        raise PolicyError(f"{p}: line 1: a policy is a mapping of settings")
    try:
        return parse_policy(data)
    except PolicyError as e:
        raise PolicyError(f"{p}: line {line_of(root, e.path)}: {e}", e.path) from e


def _no_duplicate_keys(node: yaml.Node | None) -> None:
    """A key written twice is a mistake YAML would hide by keeping the last one."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value in seen:
                raise yaml.MarkedYAMLError(problem=f"{k.value!r} is given twice", problem_mark=k.start_mark)
            seen.add(str(k.value))
            _no_duplicate_keys(v)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _no_duplicate_keys(item)


def line_of(root: yaml.Node | None, path: Path_) -> int:
    """The 1-based line of the setting at `path` in a composed YAML tree (the
    deepest part of the path that exists; 1 when nothing matches)."""
    node, line = root, 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
