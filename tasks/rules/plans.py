"""Declarative plans: a DAG of steps `{key, skill, args, depends_on}`.

Pure: `parse_plan` validates (unknown skill, duplicate key, missing dependency,
cycle) and raises `PlanError` with a reason a person can act on;
`ready_steps` says which steps may run now; `render_args` fills `{{ name }}`
placeholders from playbook params and earlier steps' results.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from tasks.rules.states import StepState


class PlanError(ValueError):
    """A plan that cannot run, with the reason."""


class PlanLater(Exception):
    """No plan now, but maybe later: the LLM is unavailable. The engine puts the
    task back, to be planned again after `retry_after` seconds at the earliest."""

    def __init__(self, reason: str, retry_after: float | None = None, *, cause: str = ""):
        super().__init__(reason)
        self.retry_after = retry_after
        self.cause = cause  # what failed, fit to show a person: the error's class, no message


class StepJSON(TypedDict, total=False):
    """A step of a checked plan as JSON (`PlanStep.to_json`), as plans are stored."""

    key: str
    skill: str
    args: dict[str, object]
    depends_on: list[str]


@dataclass(frozen=True)
class PlanStep:
    key: str
    skill: str
    args: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "skill": self.skill,
            "args": self.args,
            "depends_on": list(self.depends_on),
        }


@dataclass(frozen=True)
class Plan:
    steps: tuple[PlanStep, ...]
    summary: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "steps": [s.to_json() for s in self.steps]}


_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
MAX_STEPS = 50
# The skill of the step that asks approval of a whole plan (`tasks.planning.plan_gate`).
PLAN_GATE = "plan.approve"


def parse_plan(data: Mapping[str, Any], known_skills: Iterable[str]) -> Plan:
    raw = data.get("steps")
    if not isinstance(raw, list) or not raw:
        raise PlanError("a plan needs a non-empty list of steps")
    if len(raw) > MAX_STEPS:
        raise PlanError(f"a plan has at most {MAX_STEPS} steps, this one has {len(raw)}")
    skills = set(known_skills)
    steps = tuple(_parse_step(i, s, skills) for i, s in enumerate(raw))
    keys = [s.key for s in steps]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise PlanError(f"duplicate step key: {', '.join(dupes)}")
    for s in steps:
        missing = [d for d in s.depends_on if d not in keys]
        if missing:
            raise PlanError(f"step {s.key!r} depends on missing step {missing[0]!r}")
    cycle = find_cycle(steps)
    if cycle:
        raise PlanError("dependency cycle: " + " -> ".join(cycle))
    return Plan(steps=steps, summary=str(data.get("summary") or ""))


def _parse_step(index: int, raw: Any, skills: set[str]) -> PlanStep:
    if not isinstance(raw, Mapping):
        raise PlanError(f"step {index + 1} is not a mapping")
    key = str(raw.get("key") or f"step{index + 1}")
    if not _KEY.match(key):
        raise PlanError(f"step key {key!r} must be letters, digits, _ . - (at most 64)")
    skill = raw.get("skill")
    if not isinstance(skill, str) or not skill:
        raise PlanError(f"step {key!r} names no skill")
    if skill not in skills:
        raise PlanError(f"step {key!r} uses unknown skill {skill!r}")
    args = raw.get("args") or {}
    if not isinstance(args, Mapping):
        raise PlanError(f"step {key!r}: args must be a mapping")
    deps = raw.get("depends_on") or []
    if isinstance(deps, str):
        deps = [deps]
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise PlanError(f"step {key!r}: depends_on must be a list of step keys")
    return PlanStep(key=key, skill=skill, args=dict(args), depends_on=tuple(deps))


def find_cycle(steps: Iterable[PlanStep]) -> list[str] | None:
    graph = {s.key: s.depends_on for s in steps}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(k: str) -> list[str] | None:
        state[k] = 1
        path.append(k)
        for d in graph.get(k, ()):
            if state.get(d) == 1:
                return path[path.index(d) :] + [d]
            if state.get(d) is None:
                found = visit(d)
                if found:
                    return found
        path.pop()
        state[k] = 2
        return None

    for k in graph:
        if k not in state:
            found = visit(k)
            if found:
                return found
    return None


_SATISFIED = {StepState.SUCCEEDED.value, StepState.SKIPPED.value}


def ready_steps(states: Mapping[str, str], deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Pending steps whose dependencies all succeeded (or were skipped), in plan order."""
    return [
        k
        for k, st in states.items()
        if st == StepState.PENDING.value and all(states.get(d) in _SATISFIED for d in deps[k])
    ]


def blocked_steps(states: Mapping[str, str], deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Pending steps that can never run: a dependency failed or was cancelled."""
    dead = {StepState.FAILED.value, StepState.CANCELLED.value}
    out: list[str] = []
    changed = True
    current = dict(states)
    while changed:
        changed = False
        for k, st in current.items():
            if st == StepState.PENDING.value and any(current.get(d) in dead for d in deps[k]):
                current[k] = StepState.CANCELLED.value
                out.append(k)
                changed = True
    return out


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


def render_args(args: Any, scope: Mapping[str, Any]) -> Any:
    """Fill `{{ name }}` and `{{ steps.key.field }}` from scope. A string that is
    one placeholder keeps the value's type; unknown names raise PlanError."""
    if isinstance(args, str):
        whole = _PLACEHOLDER.fullmatch(args.strip())
        if whole:
            return _lookup(scope, whole.group(1))
        return _PLACEHOLDER.sub(lambda m: _as_text(_lookup(scope, m.group(1))), args)
    if isinstance(args, Mapping):
        return {k: render_args(v, scope) for k, v in args.items()}
    if isinstance(args, list):
        return [render_args(v, scope) for v in args]
    return args


def _lookup(scope: Mapping[str, Any], path: str) -> Any:
    value: Any = scope
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise PlanError(f"unknown placeholder {{{{ {path} }}}}")
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "text" in value:
        return str(value["text"])
    return str(value)
