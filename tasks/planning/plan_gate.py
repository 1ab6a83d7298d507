"""Approval of a whole plan before any of it runs (policy `approve_plan`).

The gate is an ordinary first step that every other step waits for, so the
plan's approval goes through the same path as any step's: an approval record
bound to the hash of what it shows (the plan itself), approvers, expiry, the
approval card, and a decision only by a person's click.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, cast

from tasks.rules.json_types import JSON
from tasks.rules.plans import PLAN_GATE, StepJSON
from tasks.skills.base import Effect, Skill, StepContext, StepResult


class PlanGate(Skill):
    name = PLAN_GATE
    description = "A person approves the whole plan before any step runs (added by the policy)."
    args_schema: ClassVar[dict[str, JSON]] = {"type": "object"}
    effect = Effect.WRITE
    idempotent = True
    max_attempts = 1

    async def run(self, ctx: StepContext, args: Mapping[str, JSON]) -> StepResult:
        return StepResult(output={"approved": True})

    def describe(self, args: Mapping[str, JSON]) -> dict[str, JSON]:
        steps = cast("list[StepJSON]", args.get("steps", []))  # what `gate_plan` put in the gate's args
        lines = [f"{s['key']}: {s['skill']} {s.get('args') or {}}" for s in steps]
        return {
            "skill": self.name,
            "text": "Run this plan?\n" + "\n".join(lines),
            "args": dict(args),
        }


def gate_plan(plan: Mapping[str, object]) -> dict[str, object]:
    """The plan with a first step asking approval of all the others (a checked plan:
    its steps have the shape of `PlanStep.to_json`). Pure."""
    steps = [StepJSON(**s) for s in cast("list[StepJSON]", plan["steps"])]
    keys = {s["key"] for s in steps}
    key = next(k for k in ("plan", "_plan", "_plan_gate") if k not in keys)
    shown = [{"key": s["key"], "skill": s["skill"], "args": s.get("args") or {}} for s in steps]
    gate = {"key": key, "skill": PLAN_GATE, "depends_on": [],
            "args": {"summary": plan.get("summary", ""), "steps": shown}}  # fmt: skip
    for s in steps:
        s["depends_on"] = [*list(s.get("depends_on") or []), key]
    return {**plan, "steps": [gate, *steps]}
