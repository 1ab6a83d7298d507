"""What an approval is bound to: a step's arguments as they will run, with the
placeholders filled in from the task and the results of the steps before it.

The approval card shows these values, the approval records their hash, and the
same hash is taken again right before the effect: if an earlier step's result
changed in between, the values differ and a person is asked again. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.rules.approvals import args_hash
from tasks.rules.plans import PLAN_GATE, PlanError, render_args


def scope(task: Any, results: Mapping[str, Any]) -> dict[str, Any]:
    """What `{{ … }}` may name: the parameters, earlier steps' results, the task."""
    params = dict(task.params or {})
    return {**params, "params": params, "steps": dict(results),
            "task": {"id": task.id, "requester": task.requester, "text": task.text}}  # fmt: skip


def resolve(skill: str, args: Mapping[str, Any], task: Any, results: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments the step runs with. The plan gate shows the other steps'
    arguments as written (their placeholders are filled only when they run)."""
    if skill == PLAN_GATE:
        return dict(args)
    resolved = render_args(dict(args), scope(task, results))
    assert isinstance(resolved, dict)
    return resolved


def bound_hash(skill: str, args: Mapping[str, Any], task: Any, results: Mapping[str, Any]) -> str:
    """The hash an approval of this step must carry now; "" when its placeholders
    cannot be filled (no approval matches that)."""
    try:
        return args_hash(skill, resolve(skill, args, task, results))
    except PlanError:
        return ""
